"""The rules of ``process``: keyed lanes, concurrency slots and retries, with no I/O.

:class:`Lanes` is a core in the manner of a sans-I/O protocol: it has no threads, locks,
clocks or handler calls. Its driver reports what happened (an item arrived, a call returned,
a call ran past its timeout, a retry delay passed, the stream ends) and carries out what each
report returns: start a call, settle an item, wait before a retry, complete. It is not
thread-safe: the driver calls it under one lock, and acts on the returned actions outside it.

What it guarantees:

- at most ``concurrency`` calls run at once; a call that timed out keeps its slot (and its
  worker) until it returns;
- with ``key_ordered``, the items of one key are handled one at a time, in arrival order: a
  key stays held from its job's first call until that job is settled and its last call has
  returned, retries included;
- each item taken in ends exactly once: :class:`Succeeded`, :class:`Failed` (after its last
  attempt) or :class:`Dropped` (left unsettled when the stream stops, or when it ``lapsed``:
  its socket is gone, for the broker to redeliver);
- retries of failed attempts start before new items; nothing starts after the end.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from enum import StrEnum
from typing import Any, Generic, TypeVar

from rxstargate.operators._jobs import (
    Action,
    Completed,
    Dropped,
    Failed,
    Job,
    JobState,
    RetryLater,
    Start,
    Succeeded,
)
from rxstargate.operators._retry import Retry

__all__ = [
    "Action",
    "Completed",
    "Dropped",
    "Failed",
    "Job",
    "JobState",
    "Lanes",
    "LanesState",
    "NotRetriable",
    "RetryLater",
    "Start",
    "Succeeded",
]

T = TypeVar("T")


class NotRetriable:
    """Marks an error that retrying cannot help: its item fails at once, whatever the policy."""


class LanesState(StrEnum):
    """Where the whole stage is in its life."""

    OPEN = "open"
    DRAINING = "draining"  # stopping: failed attempts are dropped instead of retried
    COMPLETED = "completed"
    STOPPED = "stopped"


# Members as module constants: an Enum member looked up on its class costs as much as the
# rest of a job's bookkeeping (Python 3.11).
_WAITING, _RUNNING, _DELAYED = JobState.WAITING, JobState.RUNNING, JobState.DELAYED
_DUE, _SETTLED, _DROPPED = JobState.DUE, JobState.SETTLED, JobState.DROPPED
_DRAINING = LanesState.DRAINING


_COMPLETED = Completed()


class Lanes(Generic[T]):
    """Keyed lanes, concurrency slots and retry bookkeeping of one ``process`` subscription.

    Each event method returns the actions to carry out, in order (an outcome before the
    start it makes room for, so per-key emission order follows per-key call order).

    Example:
        >>> lanes = Lanes(1)
        >>> [start] = lanes.offer("a")
        >>> lanes.returned(start.job, start.attempt, start.worker, result="A")
        [Succeeded(job=Job('a', key=None, settled, attempt=1), attempt=1, result='A')]
    """

    def __init__(
        self,
        concurrency: int,
        *,
        key_ordered: bool = False,
        retry: Retry | None = None,
        lapsed: Callable[[T], bool] | None = None,
    ):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.key_ordered = key_ordered
        self.state = LanesState.OPEN
        self.ended = False  # completed or stopped: nothing starts, outcomes are ignored
        self.running = 0  # calls started and not returned, timed-out ones included
        self._retry = retry
        self._lapsed = lapsed  # lapsed(item): True once it cannot be settled (drop_lapsed)
        self._upstream_done = False
        self._open: set[Job[T]] = set()  # taken in and not ended yet
        self._ready: collections.deque[Job[T]] = collections.deque()  # may start, in order
        self._due: collections.deque[Job[T]] = collections.deque()  # retries: before new ones
        self._held: dict[Hashable, collections.deque[Job[T]]] = {}  # key -> jobs behind it
        self._workers = list(range(concurrency - 1, -1, -1))  # free ones; 0 is taken first

    @property
    def open(self) -> int:
        """Items taken in and not ended (succeeded, failed or dropped) yet."""
        return len(self._open)

    def __repr__(self) -> str:
        return (
            f"Lanes({self.state}, running={self.running}/{self.concurrency},"
            f" open={len(self._open)}, key_ordered={self.key_ordered})"
        )

    # -- events ------------------------------------------------------------------------

    def offer(self, item: T, key: Hashable = None) -> list[Action[T]]:
        """An item arrived (``key`` orders it with ``key_ordered``). Ignored after the end."""
        actions: list[Action[T]] = []
        if self.ended:
            return actions
        job = Job(item, key)
        self._open.add(job)
        if self.key_ordered:
            behind = self._held.get(key)
            if behind is not None:
                behind.append(job)  # its key is held: it waits for the job before it
                return actions
            self._held[key] = collections.deque()
        if self.running < self.concurrency and not self._due and not self._ready:
            self.running += 1  # the common case: a free slot, nothing before it
            job.calls = job.attempt = 1
            job.state = _RUNNING
            actions.append(Start(job, 1, self._workers.pop()))
            return actions
        self._ready.append(job)
        self._start(actions)
        return actions

    def returned(
        self,
        job: Job[T],
        attempt: int,
        worker: int,
        result: Any = None,
        error: BaseException | None = None,
    ) -> list[Action[T]]:
        """A call returned ``result`` (or raised ``error``): its slot and worker are free.

        It decides that attempt unless its timeout did already.
        """
        self.running -= 1
        self._workers.append(worker)
        job.calls -= 1
        actions: list[Action[T]] = []
        if self.ended:
            return actions
        # A job decided by its timeout is no longer open: a lapse does not release its key.
        settled = job.state is _SETTLED
        lapsed = self._drop_if_lapsed(job, actions)  # its outcome ignored, its key released
        if attempt > job.decided and job.state is not _DROPPED:
            self._decide(job, attempt, result, error, actions)
        elif not job.calls and (settled or not lapsed):
            self._after_last_call(job)
        if self._due or self._ready:
            self._start(actions)
        if self._upstream_done:
            self._maybe_complete(actions)
        return actions

    def timed_out(self, job: Job[T], attempt: int, error: BaseException) -> list[Action[T]]:
        """``attempt`` ran past its timeout: it fails with ``error`` now, and its call keeps
        its slot (and, with ``key_ordered``, its key) until it returns."""
        actions: list[Action[T]] = []
        if self.ended or attempt <= job.decided or job.state is _DROPPED:
            return actions  # it returned in time, or it is over
        if self._drop_if_lapsed(job, actions):
            self._maybe_complete(actions)
            return actions
        self._decide(job, attempt, None, error, actions)
        self._maybe_complete(actions)
        return actions

    def retry_due(self, job: Job[T]) -> list[Action[T]]:
        """``job``'s retry delay passed: it starts at the next free slot."""
        if self.ended or job.state is not _DELAYED:
            return []  # dropped meanwhile
        job.state = _DUE
        if self.key_ordered and job.calls:
            return []  # its timed-out call still runs: the retry follows once it returns
        self._due.append(job)
        actions: list[Action[T]] = []
        self._start(actions)
        self._maybe_complete(actions)  # it may have lapsed, the last one open
        return actions

    def upstream_done(self) -> list[Action[T]]:
        """The upstream completed: complete once every item has ended."""
        self._upstream_done = True
        actions: list[Action[T]] = []
        self._maybe_complete(actions)
        return actions

    def drop_delayed(self) -> list[Action[T]]:
        """Stopping: leave the jobs that wait for a retry delay (with ``key_ordered``, and the
        jobs behind their keys) unsettled, and every attempt that fails from now on."""
        return self._drain(lambda job: job.state is _DELAYED)

    def drop_waiting(self) -> list[Action[T]]:
        """The source is gone (its socket closed): what has not started never will. Leaves
        every job that is not running unsettled, and every attempt that fails from now on."""
        return self._drain(lambda job: job.state is not _RUNNING)

    def drop_lapsed(self) -> list[Action[T]]:
        """The source's socket was replaced: the jobs whose items lapsed are left unsettled (the
        broker redelivers them); a call in progress keeps its slot, its outcome ignored."""
        actions: list[Action[T]] = []
        if not self.ended and self._forget_lapsed(actions):
            self._start(actions)
            self._maybe_complete(actions)
        return actions

    def stop(self) -> list[Action[T]]:
        """The stream ended (disposed, or failed): every open job is left unsettled."""
        if self.ended:
            return []
        self.state = LanesState.STOPPED
        self.ended = True
        dropped = tuple(self._open)
        for job in dropped:
            job.state = _DROPPED
        self._open.clear()
        self._ready.clear()
        self._due.clear()
        self._held.clear()
        return [Dropped(dropped)] if dropped else []

    # -- rules -------------------------------------------------------------------------

    def _start(self, actions: list[Action[T]]) -> None:
        """Start what may start: retries first, then items in arrival order."""
        due, ready, lapsed = self._due, self._ready, self._lapsed
        while (due or ready) and self.running < self.concurrency:
            job = due.popleft() if due else ready.popleft()
            if lapsed is not None and self._drop_if_lapsed(job, actions):  # not started
                due, ready = self._due, self._ready
                continue
            self.running += 1
            job.calls += 1
            job.attempt += 1
            job.state = _RUNNING
            actions.append(Start(job, job.attempt, self._workers.pop()))

    def _decide(
        self,
        job: Job[T],
        attempt: int,
        result: Any,
        error: BaseException | None,
        actions: list[Action[T]],
    ) -> None:
        job.decided = attempt
        if error is None:
            actions.append(Succeeded(job, attempt, result))
        elif _retries(self._retry, error, attempt):
            if self.state is _DRAINING:
                self._drop([job], actions)
            else:
                job.state = _DELAYED
                assert self._retry is not None
                actions.append(RetryLater(job, attempt, self._retry.delay(attempt)))
            return
        else:
            actions.append(Failed(job, attempt, error))
        job.state = _SETTLED
        self._open.discard(job)
        if self.key_ordered and not job.calls:
            self._release(job)

    def _after_last_call(self, job: Job[T]) -> None:
        """A late call returned and none of ``job``'s runs any more: what waited for it goes."""
        if not self.key_ordered:
            return
        if job.state is _SETTLED or job.state is _DROPPED:
            self._release(job)
        elif job.state is _DUE:
            self._due.append(job)

    def _release(self, job: Job[T]) -> None:
        """``job`` is over: the next job of its key (if any) may start (``key_ordered``)."""
        behind = self._held.get(job.key)
        if behind is None:
            return
        if behind:
            self._ready.append(behind.popleft())  # it holds the key now
        else:
            del self._held[job.key]

    def _drop(self, jobs: list[Job[T]], actions: list[Action[T]]) -> None:
        """Leave ``jobs`` unsettled; with ``key_ordered``, the jobs behind their keys too (none
        may be settled before the job it waits for)."""
        dropped: list[Job[T]] = []
        for job in jobs:
            if job.state is _DROPPED:
                continue
            job.state = _DROPPED
            dropped.append(job)
            behind = self._held.get(job.key) if self.key_ordered else None
            if behind is not None and job not in behind:  # it holds its key
                for waiting in behind:
                    if waiting.state is not _DROPPED:
                        waiting.state = _DROPPED
                        dropped.append(waiting)
                behind.clear()
                if not job.calls:
                    del self._held[job.key]  # else once its timed-out call returns
        if dropped:
            self._forget(dropped)
            actions.append(Dropped(tuple(dropped)))

    def _drain(self, leave: Callable[[Job[T]], bool]) -> list[Action[T]]:
        """Draining: the open jobs ``leave`` picks are left unsettled (see :meth:`_drop`)."""
        if self.ended:
            return []
        self.state = LanesState.DRAINING
        actions: list[Action[T]] = []
        self._drop([job for job in self._open if leave(job)], actions)
        self._maybe_complete(actions)
        return actions

    def _forget(self, dropped: list[Job[T]]) -> None:
        """Take jobs just dropped out of the open set and every queue."""
        self._open.difference_update(dropped)
        self._ready = collections.deque(j for j in self._ready if j.state is not _DROPPED)
        self._due = collections.deque(j for j in self._due if j.state is not _DROPPED)
        for key, queue in self._held.items():  # empty unless key_ordered
            self._held[key] = collections.deque(j for j in queue if j.state is not _DROPPED)

    def _drop_if_lapsed(self, job: Job[T], actions: list[Action[T]]) -> bool:
        """If ``job`` lapsed, drop it with every other lapsed job (its socket's); says so."""
        lapsed = self._lapsed
        return bool(lapsed and job.state is not _DROPPED and lapsed(job.item)) and (
            self._forget_lapsed(actions)
        )

    def _forget_lapsed(self, actions: list[Action[T]]) -> bool:
        """Leave the lapsed jobs unsettled, each alone: the next job of its key may start (its
        redelivered copy comes after it). False when none lapsed."""
        lapsed = self._lapsed
        jobs = [job for job in self._open if lapsed(job.item)] if lapsed is not None else []
        behind = {id(job) for queue in self._held.values() for job in queue}
        holders = [job for job in jobs if id(job) not in behind and not job.calls]
        for job in jobs:
            job.state = _DROPPED
        self._forget(jobs)
        for job in holders:  # a running one releases its key when its call returns
            self._release(job)
        if jobs:  # first: its driver counts them out before emitting what came before
            actions.insert(0, Dropped(tuple(jobs)))
        return bool(jobs)

    def _maybe_complete(self, actions: list[Action[T]]) -> None:
        if self._upstream_done and not self._open and not self.running and not self.ended:
            self.state = LanesState.COMPLETED
            self.ended = True
            actions.append(_COMPLETED)


def _retries(retry: Retry | None, error: BaseException, attempt: int) -> bool:
    """Whether a failed ``attempt`` is tried again."""
    if retry is None or isinstance(error, NotRetriable):
        return False
    return retry.retries(error, attempt)
