"""A small shop as an rxstargate service: orders are charged and receipts published.

Run it (from this directory, with a Pulsar WebSocket API such as `rxstargate local`):

    rxstargate run shop.toml --processes 2 --metrics-port 9100
    python orders.py 1000 | rxstargate produce orders -K : -q

`shop.toml` names the handlers of this module. `audit_app` is a second app, built in code: a
reader that keeps a running total of the receipts (`rxstargate run shop:audit_app`).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import rxstargate as rs
from rxstargate import operators as rso

log = logging.getLogger("shop")


class BadOrderError(ValueError):
    """An order that cannot be charged: retrying will not help."""


def charge(message: rs.Message[Any]) -> bytes:
    """Charge one order (``{"order": 7, "amount": 1250}``, keyed by customer): its receipt.

    The app publishes the receipt to `receipts` (with the order's key) and acks the order only
    once the receipt is stored; an order that cannot be read goes to `orders-dlq`.
    """
    try:
        order = json.loads(message.payload)
        amount = int(order["amount"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadOrderError(f"unreadable order {message.payload[:80]!r}") from exc
    receipt = {"order": order.get("order"), "customer": message.key, "charged": amount}
    receipt["worker"] = os.getpid()  # which process charged it, to see the work spread
    return json.dumps(receipt).encode()


class Totals(rso.MessageHandler[tuple[int, dict[str, int]]]):
    """Keeps the total charged per customer; logs the totals every 100 receipts."""

    def init(self) -> tuple[int, dict[str, int]]:
        return 0, {}

    def handle(
        self, message: rs.Message[Any], state: tuple[int, dict[str, int]]
    ) -> tuple[Any, tuple[int, dict[str, int]]]:
        count, totals = state
        receipt = json.loads(message.payload)
        customer = str(receipt["customer"])
        totals[customer] = totals.get(customer, 0) + int(receipt["charged"])
        if (count + 1) % 100 == 0:
            log.info("%d receipts; totals: %s", count + 1, dict(sorted(totals.items())))
        return None, (count + 1, totals)


def audit_app() -> rs.App:
    """A reader of every receipt, keeping totals (the URL from $RXSTARGATE_URL)."""
    return rs.App(
        os.environ.get("RXSTARGATE_URL", "ws://127.0.0.1:8080"),
        readers={"audit": rs.ReaderSpec("receipts", handler=Totals, start="earliest")},
    )
