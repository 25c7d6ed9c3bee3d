"""``process``: run a handler over messages with bounded concurrency, per-key order and retries.

The operator checks its arguments and makes a :class:`~rxstargate.operators._run.Run` per
subscription (a :class:`~rxstargate.operators._direct.DirectRun` for a handler called inline
with no timeout or retry); the rules live in ``_lanes``, the ways of calling a handler in
``_handlers`` and ``_executors``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from rxstargate._config import checked_seconds
from rxstargate.exceptions import ConfigurationError
from rxstargate.models import Message
from rxstargate.operators._direct import DirectRun
from rxstargate.operators._failure import FailurePolicy, validate_policy
from rxstargate.operators._handlers import Handler, HandlerCall
from rxstargate.operators._outcomes import MessageHandler, Processed
from rxstargate.operators._retry import Retry
from rxstargate.operators._run import ProcessSettings, Run
from rxstargate.operators._stats import ProcessingStats
from rxstargate.streams import Stream

__all__ = [
    "MAX_CONCURRENCY",
    "DirectRun",
    "Handler",
    "Run",
    "checked_settings",
    "operator_of",
    "process",
    "run_for",
]

#: The most calls ``process`` runs at once: no stream has more messages in hand than its
#: ``max_in_flight`` (at most 100,000), so more slots would never be used.
MAX_CONCURRENCY = 100_000


def process(
    handler: Handler,
    *,
    concurrency: int = 1,
    key_ordered: bool = False,
    timeout: float | timedelta | None = None,
    retry: Retry | None = None,
    on_failure: FailurePolicy = "nack",
    scheduler: abc.SchedulerBase | None = None,
    stats: ProcessingStats | None = None,
) -> Callable[[Observable[Message[Any]]], Stream[Processed[Any]]]:
    """Run ``handler(message)`` for each message, at most ``concurrency`` calls at once.

    Emits a :class:`Processed` item (the message and the handler's result) per success, which
    :func:`~rxstargate.acknowledger` acks: nothing is acked before its work is done. The
    handler returns a result (acked), ``Leave(result)`` (emitted unsettled, for a later stage)
    or ``Nack()`` (nacked now, nothing emitted). It is a function (called on the delivering
    thread at ``concurrency=1``, else on a pool of threads), a coroutine function (or a partial
    of one, or an object whose ``__call__`` is one: tasks on an event loop of the operator's
    own) or a :class:`MessageHandler` (a state per worker). A plain handler that returns an
    awaitable fails its message with a ``TypeError`` (never retried: its work never ran).

    A call that raises or runs past ``timeout`` is retried by ``retry`` (delays on
    ``scheduler``), then its message is settled by ``on_failure``: ``"nack"``,
    :func:`dead_letter` (a copy to a dead-letter topic, then acked) or ``"error"`` (the stream
    ends with it); so is a message that failed the stream's schema, without a call. With
    ``key_ordered`` a key's messages are handled one at a time in arrival order (no key is a
    key too). A threaded call past its timeout cannot be stopped: its message is settled then,
    and the call keeps its slot and key until it returns (a coroutine is cancelled). What the
    downstream ``on_next`` raises reaches its ``on_error``, once, and ends the stream.
    Disposing leaves messages waiting for a retry unsettled (redelivered), and so does a dropped
    consumer socket, as in Pulsar's clients: its messages not yet called are dropped and the
    outcome of calls in progress for them ignored (the broker redelivers them).

    Marble::

        messages:  --a--b--c-------|
        process:   ----A-----C--B--|     (B took longer; with key_ordered, per key in order)

    Args:
        handler: the work for one message.
        concurrency: the most calls at once, 1 to 100,000 (threads, or tasks for coroutines);
            more than the stream's ``max_in_flight`` would never be used.
        key_ordered: keep each key's order while running keys in parallel.
        timeout: seconds (or a timedelta) a call may take before it counts as failed.
        retry: how to retry a failed call (None: not at all).
        on_failure: what to do with a message after its last failed attempt.
        scheduler: the Rx scheduler of retry delays and timeouts (a TestScheduler in tests).
        stats: counters to update (a message left unsettled is counted out of ``received``).

    Raises:
        ConfigurationError: for a bad argument, naming it, before anything runs.

    Example:
        >>> stream.pipe(process(charge, concurrency=8)).subscribe(acknowledger())  # doctest: +SKIP
    """
    settings = checked_settings(
        handler, concurrency, key_ordered, timeout, retry, on_failure, scheduler, stats
    )
    return operator_of(settings)


def checked_settings(
    handler: Any,
    concurrency: Any = 1,
    key_ordered: Any = False,
    timeout: Any = None,
    retry: Any = None,
    on_failure: Any = "nack",
    scheduler: Any = None,
    stats: Any = None,
    refuse_leave: bool = False,
) -> ProcessSettings:
    """``process``'s arguments, checked; a ConfigurationError names the first bad one."""
    if not (callable(handler) or isinstance(handler, MessageHandler)):
        raise ConfigurationError(f"handler must be callable or a MessageHandler, not {handler!r}")
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise ConfigurationError(
            f"concurrency must be an int from 1 to {MAX_CONCURRENCY:,} (no stream has more"
            f" than its max_in_flight messages to work on at once), not {concurrency!r}"
        )
    if not isinstance(key_ordered, bool):
        raise ConfigurationError(f"key_ordered must be True or False, not {key_ordered!r}")
    seconds = None if timeout is None else checked_seconds(timeout, "timeout")
    if retry is not None and not isinstance(retry, Retry):
        raise ConfigurationError(
            f"retry must be a rxstargate.operators.Retry or None, not {retry!r}"
        )
    policy = validate_policy(on_failure)
    if scheduler is not None and not isinstance(scheduler, abc.SchedulerBase):
        raise ConfigurationError(f"scheduler must be an Rx scheduler or None, not {scheduler!r}")
    if stats is not None and not isinstance(stats, ProcessingStats):
        raise ConfigurationError(f"stats must be a ProcessingStats or None, not {stats!r}")
    return ProcessSettings(
        handler, concurrency, key_ordered, seconds, retry, policy, scheduler, stats, refuse_leave
    )


def operator_of(
    settings: ProcessSettings, on_run: Callable[[Run | DirectRun], None] | None = None
) -> Callable[[Observable[Message[Any]]], Stream[Processed[Any]]]:
    """The operator for ``settings``; ``on_run`` gets each subscription's state (the Pipeline
    uses it to drop what waits when it stops)."""

    def operator(source: Observable[Message[Any]]) -> Stream[Processed[Any]]:
        def subscribe(
            observer: abc.ObserverBase[Processed[Any]],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            run = run_for(settings, observer)
            if on_run is not None:
                on_run(run)
            upstream = source.subscribe(
                run.on_next, run.on_error, run.on_completed, scheduler=scheduler
            )
            return CompositeDisposable(upstream, Disposable(run.dispose))

        return Stream(subscribe)

    return operator


def run_for(
    settings: ProcessSettings, observer: abc.ObserverBase[Processed[Any]]
) -> Run | DirectRun:
    """The state of one subscription: a :class:`DirectRun` for a plain handler at concurrency
    1 with no timeout and no retry (called inline, settled at once), else a :class:`Run`."""
    call = HandlerCall(settings.handler, refuse_leave=settings.refuse_leave)
    if (
        settings.concurrency == 1
        and not call.is_async
        and settings.timeout is None
        and settings.retry is None
    ):
        return DirectRun(call, settings.policy, settings.stats, observer)
    return Run(settings, call, observer)
