"""Blocking broker-client calls that may wait long (closes) run on threads of their own.

A close can wait for the broker up to the operation timeout (15 s) when the broker stalls. On
asyncio's shared pool a few such closes would hold every worker, and the subscribes and creates
of other sockets would queue behind them: one subscription's trouble would stall every socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

log = logging.getLogger("rxstargate.gateway")


def in_own_thread(function: Callable[[], object], name: str) -> threading.Event:
    """Run ``function`` on a daemon thread of its own; the event is set once it returned.

    What it raises is logged (a broker-side close that fails leaves nothing to undo).
    """
    done = threading.Event()

    def run() -> None:
        try:
            function()
        except Exception as exc:
            log.warning("%s failed: %s", name, exc)
        finally:
            done.set()

    threading.Thread(target=run, name=f"rxstargate-gateway-{name}", daemon=True).start()
    return done


async def off_loop(function: Callable[[], object], name: str) -> None:
    """Run ``function`` on a daemon thread of its own and wait for it; re-raises what it raised."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if result.done():
            return
        if error is None:
            result.set_result(None)
        else:
            result.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            function()
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name=f"rxstargate-gateway-{name}", daemon=True).start()
    await result
