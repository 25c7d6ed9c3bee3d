"""Properties of the processing core under any order of events (hypothesis).

A simulated driver feeds :class:`Lanes` what a real one could see, in an order hypothesis
picks: items arriving, calls returning or failing, timeouts, retry delays passing, the
upstream completing, stop, the two drops and items lapsing (their socket is gone). After
every step it checks the invariants: never more than ``concurrency`` calls at once (timed-out
ones included), no worker used by two calls, one call per key at a time with ``key_ordered``
and each key's items started and settled in arrival order, nothing started after the end,
no call started for a lapsed item nor a lapsed call's outcome counted; and once everything
has run out, every item ended exactly once (succeeded, failed or dropped) and the stage
completed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from rxstargate.operators import Retry
from rxstargate.operators._lanes import (
    Action,
    Completed,
    Dropped,
    Failed,
    Job,
    Lanes,
    NotRetriable,
    RetryLater,
    Start,
    Succeeded,
)


class Hopeless(NotRetriable, ValueError):
    """An error retrying cannot help."""


FAILURE = RuntimeError("failed")
TIMEOUT = TimeoutError("timed out")
HOPELESS = Hopeless("never retried")


@dataclass
class Driver:
    """Feeds the lanes and checks every action they return."""

    lanes: Lanes[int]
    keys: list[str | None]  # item i's key
    attempts: int | None  # the retry policy's attempts, None without retries
    offered: int = 0
    taken: list[int] = field(default_factory=list)  # offered before the end (the rest is left)
    upstream_done: bool = False
    ended_by_stop: bool = False
    drained: bool = False  # stop(), drop_delayed() or drop_waiting() was reported
    calls: list[Start[int]] = field(default_factory=list)  # started and not returned
    delayed: list[Job[int]] = field(default_factory=list)  # waiting for retry_due
    ended: dict[int, str] = field(default_factory=dict)  # item -> how it ended
    started: dict[str | None, list[int]] = field(default_factory=dict)  # first attempts
    settled: dict[str | None, list[int]] = field(default_factory=dict)
    completed: int = 0
    lapsed: set[int] = field(default_factory=set)  # items whose socket is gone

    def offer(self) -> None:
        item = self.offered
        self.offered += 1
        if not self.lanes.ended:  # as a driver does: after the end an item is left alone
            self.taken.append(item)
        self.apply(self.lanes.offer(item, self.keys[item]))

    def apply(self, actions: list[Action[int]]) -> None:
        for action in actions:
            if isinstance(action, Start):
                self._started(action)
            elif isinstance(action, Succeeded | Failed):
                assert action.job.item not in self.lapsed, "a lapsed item's outcome counted"
                self._end(action.job.item, type(action).__name__)
                self.settled.setdefault(action.job.key, []).append(action.job.item)
                if isinstance(action, Failed) and action.error is FAILURE:
                    assert self.attempts is None or action.attempt == self.attempts
            elif isinstance(action, RetryLater):
                assert self.attempts is not None and action.attempt < self.attempts
                assert action.job.item not in self.ended
                self.delayed.append(action.job)
            elif isinstance(action, Dropped):
                for job in action.jobs:
                    self._end(job.item, "dropped")
                    if job in self.delayed:
                        self.delayed.remove(job)
            else:
                assert isinstance(action, Completed)
                assert self.upstream_done and self.offered == len(self.keys)
                assert len(self.ended) == len(self.taken)  # every item ended before it
                self.completed += 1
        self._check()

    def _started(self, start: Start[int]) -> None:
        assert not self.ended_by_stop and not self.completed, "a call started after the end"
        assert start.job.item not in self.ended
        assert start.job.item not in self.lapsed, "a lapsed item started"
        if start.attempt == 1:
            self.started.setdefault(start.job.key, []).append(start.job.item)
        self.calls.append(start)

    def _end(self, item: int, how: str) -> None:
        assert item not in self.ended, f"item {item} ended twice ({self.ended[item]}, {how})"
        self.ended[item] = how

    def _check(self) -> None:
        lanes = self.lanes
        assert len(self.calls) == lanes.running <= lanes.concurrency
        workers = [call.worker for call in self.calls]
        assert len(set(workers)) == len(workers)
        assert all(0 <= worker < lanes.concurrency for worker in workers)
        if lanes.key_ordered:
            keys = [call.job.key for call in self.calls]
            assert len(set(keys)) == len(keys), "two calls of one key at once"
            for by_key in (self.started, self.settled):
                for items in by_key.values():
                    assert items == sorted(items), "a key's items out of arrival order"


def step(driver: Driver, data: st.DataObject, ends: list[str]) -> bool:
    """One event, picked by hypothesis among those that can happen now (``ends``: which of
    stop and the drops may, each far less often than the rest)."""
    lanes = driver.lanes
    choices = list(ends)
    if driver.offered < len(driver.keys):
        choices += ["offer"] * 8
    elif not driver.upstream_done:
        choices.append("upstream_done")
    if driver.calls:
        choices += ["return"] * 4 + ["fail"] * 2 + ["time_out"] * 2 + ["hopeless"]
    if driver.delayed:
        choices += ["retry_due"] * 4
    if not choices:
        return False  # nothing can happen any more
    choice = data.draw(st.sampled_from(choices))
    if choice == "offer":
        driver.offer()
    elif choice == "upstream_done":
        driver.upstream_done = True
        driver.apply(lanes.upstream_done())
    elif choice in ("return", "fail", "hopeless"):
        call = driver.calls.pop(data.draw(st.integers(0, len(driver.calls) - 1)))
        error = {"return": None, "fail": FAILURE, "hopeless": HOPELESS}[choice]
        driver.apply(lanes.returned(call.job, call.attempt, call.worker, call.job.item, error))
    elif choice == "time_out":
        call = driver.calls[data.draw(st.integers(0, len(driver.calls) - 1))]
        driver.apply(lanes.timed_out(call.job, call.attempt, TIMEOUT))
    elif choice == "retry_due":
        job = driver.delayed.pop(data.draw(st.integers(0, len(driver.delayed) - 1)))
        driver.apply(lanes.retry_due(job))
    elif choice == "lapse":  # a socket drops: what was taken so far lapses
        driver.drained = True
        driver.lapsed.update(driver.taken)
        if data.draw(st.booleans()):  # a new socket's first item arrives
            driver.apply(lanes.drop_lapsed())
    elif choice == "stop":
        driver.ended_by_stop = driver.ended_by_stop or not lanes.ended
        driver.drained = True
        driver.apply(lanes.stop())
    else:
        driver.drained = True
        driver.apply(getattr(lanes, choice)())
    return True


def run_out(driver: Driver) -> None:
    """Let everything finish: the rest arrives, every call returns, every delay passes."""
    lanes = driver.lanes
    while driver.offered < len(driver.keys):
        driver.offer()
    if not driver.upstream_done:
        driver.upstream_done = True
        driver.apply(lanes.upstream_done())
    while driver.calls or driver.delayed:
        if driver.calls:
            call = driver.calls.pop(0)
            driver.apply(lanes.returned(call.job, call.attempt, call.worker, call.job.item))
        else:
            driver.apply(lanes.retry_due(driver.delayed.pop(0)))


@given(
    concurrency=st.integers(1, 4),
    key_ordered=st.booleans(),
    attempts=st.none() | st.integers(1, 3),
    keys=st.lists(st.sampled_from(["a", "b", "c", None]), max_size=12),
    data=st.data(),
)
def test_the_lanes_keep_their_promises_whatever_happens_in_any_order(
    concurrency: int,
    key_ordered: bool,
    attempts: int | None,
    keys: list[str | None],
    data: st.DataObject,
) -> None:
    retry = None if attempts is None else Retry(attempts=attempts, initial=0.0, jitter=0.0)
    lapsed: set[int] = set()
    lanes: Lanes[int] = Lanes(
        concurrency, key_ordered=key_ordered, retry=retry, lapsed=lapsed.__contains__
    )
    driver = Driver(lanes, keys, attempts, lapsed=lapsed)
    ends = data.draw(
        st.lists(st.sampled_from(["stop", "drop_delayed", "drop_waiting", "lapse", "lapse"]))
    )
    for _ in range(data.draw(st.integers(0, 60))):
        if not step(driver, data, ends):
            break
    run_out(driver)
    assert lanes.ended and lanes.open == 0 and lanes.running == 0
    assert sorted(driver.ended) == driver.taken  # each ended, exactly once
    assert driver.completed == (0 if driver.ended_by_stop else 1)
    if not driver.drained:  # only stop() and the drops leave items unsettled
        assert "dropped" not in driver.ended.values()


def test_each_item_ends_exactly_once_when_nothing_goes_wrong() -> None:
    lanes: Lanes[int] = Lanes(3, key_ordered=True)
    driver = Driver(lanes, ["a", "b", "a", None, "b", "a"], None)
    run_out(driver)
    assert driver.ended == dict.fromkeys(range(6), "Succeeded")
    assert driver.completed == 1
    assert driver.settled == {"a": [0, 2, 5], "b": [1, 4], None: [3]}
