"""A few messages read without leaving a subscription behind: what ``Topic.peek`` does."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from rxstargate._context import ClientContext
from rxstargate._receiver import observe
from rxstargate._receiver_spec import ReceiverSpec
from rxstargate.exceptions import StargateTimeoutError
from rxstargate.models import Message

__all__ = ["peek"]


def peek(
    context: ClientContext, spec: ReceiverSpec, n: int, idle: float, timeout: float
) -> list[Message[Any]]:
    """Up to ``n`` messages of a reader opened by ``spec``, then close it.

    Stops at ``n``, when nothing arrived for ``idle`` seconds since the reader opened (the end
    of the topic), or after ``timeout`` seconds.

    Raises:
        StargateError: when the reader cannot be opened (StargateTimeoutError when it did not
            open within ``timeout``).
    """
    got: list[Message[Any]] = []
    failed: list[Exception] = []
    ended = threading.Event()
    opened = threading.Event()

    def on_next(message: Message[Any]) -> None:
        if len(got) < n:
            got.append(message)
        if len(got) >= n:
            ended.set()

    def on_error(error: Exception) -> None:
        failed.append(error)
        ended.set()

    stream = observe(context, replace(spec, on_open=opened.set))
    handle = stream.subscribe(on_next, on_error, ended.set)
    try:
        deadline = time.monotonic() + timeout
        seen, quiet_since = 0, time.monotonic()
        while not ended.wait(min(0.05, idle)):
            now = time.monotonic()
            if len(got) != seen or not opened.is_set():
                seen, quiet_since = len(got), now  # silence counts once the reader is open
            if now - quiet_since >= idle or now >= deadline:
                break
    finally:
        handle.dispose()
    if failed:
        raise failed[0]
    if not opened.is_set():
        raise StargateTimeoutError(f"the reader on {spec.topic} did not open in {timeout:g} s")
    return got[:n]
