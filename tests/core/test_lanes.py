"""The processing core: keyed lanes, concurrency slots and retries, fed events, no threads."""

from __future__ import annotations

from typing import Any

import pytest

from rxstargate.operators import Retry
from rxstargate.operators._lanes import (
    Action,
    Completed,
    Dropped,
    Failed,
    Job,
    JobState,
    Lanes,
    LanesState,
    NotRetriable,
    RetryLater,
    Start,
    Succeeded,
)

BOOM = RuntimeError("boom")


def starts(actions: list[Action[Any]]) -> list[Any]:
    return [a.job.item for a in actions if isinstance(a, Start)]


def only_start(actions: list[Action[Any]]) -> Start[Any]:
    [action] = [a for a in actions if isinstance(a, Start)]
    return action


def ok(lanes: Lanes[Any], start: Start[Any], result: Any = None) -> list[Action[Any]]:
    return lanes.returned(start.job, start.attempt, start.worker, result=result)


def fail(lanes: Lanes[Any], start: Start[Any], error: Exception = BOOM) -> list[Action[Any]]:
    return lanes.returned(start.job, start.attempt, start.worker, error=error)


def no_wait_retry(attempts: int) -> Retry:
    return Retry(attempts=attempts, initial=1.0, factor=2.0, cap=100.0, jitter=0.0)


# -- slots --------------------------------------------------------------------------------


def test_items_start_at_once_up_to_the_concurrency_then_wait_in_arrival_order() -> None:
    lanes: Lanes[str] = Lanes(2)
    first, second = only_start(lanes.offer("a")), only_start(lanes.offer("b"))
    assert lanes.offer("c") == [] and lanes.offer("d") == []
    assert lanes.running == 2 and {first.worker, second.worker} == {0, 1}
    actions = ok(lanes, second, "B")
    assert actions == [Succeeded(second.job, 1, "B"), Start(actions[1].job, 1, second.worker)]
    assert starts(actions) == ["c"]
    assert starts(ok(lanes, first)) == ["d"]


def test_the_upstream_completing_completes_once_every_item_ended() -> None:
    lanes: Lanes[str] = Lanes(1)
    start = only_start(lanes.offer("a"))
    assert lanes.upstream_done() == []
    assert ok(lanes, start, "A") == [Succeeded(start.job, 1, "A"), Completed()]
    assert lanes.state is LanesState.COMPLETED and lanes.ended
    assert lanes.offer("late") == [] and lanes.open == 0


# -- keys ---------------------------------------------------------------------------------


def test_a_key_runs_one_item_at_a_time_in_order_while_other_keys_run() -> None:
    lanes: Lanes[str] = Lanes(4, key_ordered=True)
    a1 = only_start(lanes.offer("a1", "a"))
    assert lanes.offer("a2", "a") == []  # behind a1
    b1 = only_start(lanes.offer("b1", "b"))
    n1 = only_start(lanes.offer("n1", None))  # no key is a key too
    assert lanes.offer("n2", None) == []
    assert lanes.running == 3
    assert starts(ok(lanes, a1)) == ["a2"]
    assert starts(ok(lanes, n1)) == ["n2"]
    assert starts(ok(lanes, b1)) == []


def test_a_timed_out_call_keeps_its_slot_and_key_until_it_returns() -> None:
    lanes: Lanes[str] = Lanes(2, key_ordered=True)
    a1 = only_start(lanes.offer("a1", "a"))
    assert lanes.offer("a2", "a") == []
    assert lanes.timed_out(a1.job, 1, BOOM) == [Failed(a1.job, 1, BOOM)]
    assert lanes.running == 1  # the call still runs
    other = only_start(lanes.offer("b1", "b"))
    assert lanes.offer("c1", "c") == []  # both slots taken: the timed-out call holds one
    assert starts(ok(lanes, a1, "late")) == ["c1"]  # ignored, but its slot is free
    assert a1.job.state is JobState.SETTLED  # and its key: "a2" is next in line
    assert starts(ok(lanes, other)) == ["a2"]


def test_a_late_result_after_a_timeout_is_ignored() -> None:
    lanes: Lanes[str] = Lanes(1)
    start = only_start(lanes.offer("a"))
    lanes.timed_out(start.job, 1, BOOM)
    assert ok(lanes, start, "late") == []
    assert lanes.timed_out(start.job, 1, BOOM) == []  # decided already


# -- retries ------------------------------------------------------------------------------


def test_a_failed_attempt_waits_its_delay_then_runs_again_before_new_items() -> None:
    lanes: Lanes[str] = Lanes(1, retry=no_wait_retry(3))
    first = only_start(lanes.offer("a"))
    assert lanes.offer("b") == []
    actions = fail(lanes, first)
    assert actions[0] == RetryLater(first.job, 1, 1.0)
    assert starts(actions) == ["b"]  # the slot is free while "a" waits
    b = only_start(actions)
    assert lanes.offer("c") == []
    assert lanes.retry_due(first.job) == []  # due, but no slot yet
    second = only_start(ok(lanes, b))  # the retry goes before "c"
    assert (second.job, second.attempt) == (first.job, 2)
    actions = fail(lanes, second)
    assert actions[0] == RetryLater(first.job, 2, 2.0)  # the delay grows
    c = only_start(actions)
    assert lanes.retry_due(first.job) == []  # due; "c" has the slot
    assert lanes.retry_due(first.job) == []  # reported twice: ignored
    third = only_start(ok(lanes, c))
    assert (third.job, third.attempt) == (first.job, 3)
    assert lanes.running == 1


def test_the_last_attempt_fails_for_good_and_reports_how_many_it_took() -> None:
    lanes: Lanes[str] = Lanes(1, retry=no_wait_retry(2))
    start = only_start(lanes.offer("a"))
    fail(lanes, start)
    again = only_start(lanes.retry_due(start.job))
    assert fail(lanes, again) == [Failed(start.job, 2, BOOM)]
    assert lanes.open == 0


def test_errors_retrying_cannot_help_fail_at_once() -> None:
    class Hopeless(NotRetriable, TypeError):
        pass

    error = Hopeless("never ran")
    lanes: Lanes[str] = Lanes(1, retry=no_wait_retry(5))
    start = only_start(lanes.offer("a"))
    assert fail(lanes, start, error) == [Failed(start.job, 1, error)]
    not_listed = Retry(attempts=5, on=KeyError)
    lanes = Lanes(1, retry=not_listed)
    start = only_start(lanes.offer("a"))
    assert fail(lanes, start) == [Failed(start.job, 1, BOOM)]


def test_with_key_order_a_retry_waits_for_its_timed_out_call() -> None:
    lanes: Lanes[str] = Lanes(2, key_ordered=True, retry=no_wait_retry(2))
    start = only_start(lanes.offer("a1", "a"))
    assert lanes.timed_out(start.job, 1, BOOM) == [RetryLater(start.job, 1, 1.0)]
    assert lanes.retry_due(start.job) == []  # the timed-out call still runs
    retry = only_start(ok(lanes, start, "late"))
    assert (retry.job, retry.attempt) == (start.job, 2)


def test_without_key_order_a_retry_may_overlap_its_timed_out_call() -> None:
    lanes: Lanes[str] = Lanes(2, retry=no_wait_retry(2))
    start = only_start(lanes.offer("a"))
    lanes.timed_out(start.job, 1, BOOM)
    retry = only_start(lanes.retry_due(start.job))
    assert retry.worker != start.worker and lanes.running == 2
    assert ok(lanes, start, "late") == []
    assert ok(lanes, retry, "A") == [Succeeded(start.job, 2, "A")]


# -- ends ---------------------------------------------------------------------------------


def test_stop_drops_every_open_item_and_nothing_starts_after_it() -> None:
    lanes: Lanes[str] = Lanes(1, retry=no_wait_retry(3))
    running = only_start(lanes.offer("a"))
    lanes.offer("b")
    [dropped] = lanes.stop()
    assert isinstance(dropped, Dropped)
    assert sorted(job.item for job in dropped.jobs) == ["a", "b"]
    assert lanes.state is LanesState.STOPPED and lanes.open == 0
    assert ok(lanes, running) == [] and lanes.offer("c") == [] and lanes.stop() == []
    assert lanes.upstream_done() == []


def test_draining_drops_what_waits_for_a_retry_and_what_waits_behind_it() -> None:
    lanes: Lanes[str] = Lanes(2, key_ordered=True, retry=no_wait_retry(3))
    a1 = only_start(lanes.offer("a1", "a"))
    lanes.offer("a2", "a")
    b1 = only_start(lanes.offer("b1", "b"))
    fail(lanes, a1)  # a1 waits for its retry; a2 waits behind it
    lanes.upstream_done()
    [dropped] = lanes.drop_delayed()
    assert isinstance(dropped, Dropped)
    assert sorted(job.item for job in dropped.jobs) == ["a1", "a2"]
    assert lanes.retry_due(a1.job) == []
    [gone] = fail(lanes, b1)[:1]  # from now on a failed attempt is dropped, not retried
    assert isinstance(gone, Dropped) and [job.item for job in gone.jobs] == ["b1"]
    assert lanes.state is LanesState.COMPLETED


def test_when_the_source_is_gone_what_has_not_started_never_starts() -> None:
    lanes: Lanes[str] = Lanes(2, key_ordered=True)
    a1 = only_start(lanes.offer("a1", "a"))
    lanes.offer("a2", "a")
    b1 = only_start(lanes.offer("b1", "b"))
    lanes.offer("c1", "c")
    [dropped] = lanes.drop_waiting()
    assert isinstance(dropped, Dropped)
    assert sorted(job.item for job in dropped.jobs) == ["a2", "c1"]
    assert lanes.upstream_done() == []
    assert starts(ok(lanes, a1)) == []
    assert ok(lanes, b1) == [Succeeded(b1.job, 1, None), Completed()]


def test_items_that_lapsed_are_dropped_instead_of_started() -> None:
    lapsed: set[str] = set()
    lanes: Lanes[str] = Lanes(1, lapsed=lapsed.__contains__)
    old = only_start(lanes.offer("old1"))
    lanes.offer("old2")
    lanes.offer("old3")
    lapsed.update({"old1", "old2", "old3"})  # their socket dropped
    lanes.offer("new1")
    actions = ok(lanes, old, "ignored")  # the outcome of a lapsed call does not count
    assert isinstance(actions[0], Dropped)
    assert sorted(job.item for job in actions[0].jobs) == ["old1", "old2", "old3"]
    assert starts(actions) == ["new1"] and len(actions) == 2
    assert lanes.open == 1 and lanes.running == 1


def test_a_retry_that_lapsed_while_it_waited_is_dropped_when_due() -> None:
    lapsed: set[str] = set()
    lanes: Lanes[str] = Lanes(1, lapsed=lapsed.__contains__, retry=no_wait_retry(3))
    first = only_start(lanes.offer("a"))
    [later] = fail(lanes, first)
    assert isinstance(later, RetryLater)
    lanes.upstream_done()
    lapsed.add("a")
    [dropped, completed] = lanes.retry_due(first.job)
    assert isinstance(dropped, Dropped) and [job.item for job in dropped.jobs] == ["a"]
    assert completed == Completed() and lanes.running == 0


def test_a_lapsed_call_in_progress_keeps_its_slot_and_its_outcome_is_ignored() -> None:
    lapsed: set[str] = set()
    lanes: Lanes[str] = Lanes(1, lapsed=lapsed.__contains__, retry=no_wait_retry(3))
    old = only_start(lanes.offer("old"))
    lanes.offer("new")
    lapsed.add("old")
    [dropped] = lanes.drop_lapsed()
    assert isinstance(dropped, Dropped) and [job.item for job in dropped.jobs] == ["old"]
    assert lanes.running == 1 and lanes.open == 1  # "new" waits for the slot
    assert lanes.timed_out(old.job, old.attempt, BOOM) == []
    assert starts(fail(lanes, old)) == ["new"]  # no retry, no failure: just the slot back
    assert lanes.open == 1 and lanes.running == 1


def test_with_key_order_a_lapsed_item_lets_the_next_of_its_key_start() -> None:
    lapsed: set[str] = set()
    lanes: Lanes[str] = Lanes(2, key_ordered=True, lapsed=lapsed.__contains__)
    a1 = only_start(lanes.offer("a1", "a"))
    b1 = only_start(lanes.offer("b1", "b"))
    lanes.offer("c1", "c")  # waits for a slot, holding its key
    lanes.offer("a2", "a")
    lanes.offer("c2", "c")
    lanes.offer("b2", "b")
    lapsed.update({"a1", "b1", "c1"})
    [dropped] = lanes.drop_lapsed()
    assert isinstance(dropped, Dropped)
    assert sorted(job.item for job in dropped.jobs) == ["a1", "b1", "c1"]
    # c2 holds "c" now; a2 and b2 wait for a1's and b1's calls to return
    assert starts(ok(lanes, a1)) == ["c2"]
    assert starts(ok(lanes, b1)) == ["a2"]
    assert lanes.open == 3 and lanes.running == 2


def test_with_key_order_a_timed_out_call_that_lapsed_still_frees_its_key_on_return() -> None:
    """Found by the lanes' property test: the next of its key was never started."""
    lapsed: set[str] = set()
    lanes: Lanes[str] = Lanes(1, key_ordered=True, lapsed=lapsed.__contains__)
    a1 = only_start(lanes.offer("a1", "a"))
    lanes.offer("a2", "a")
    [failed] = lanes.timed_out(a1.job, a1.attempt, BOOM)  # its call keeps its key
    assert isinstance(failed, Failed)
    lapsed.update({"a1", "a2"})  # their socket dropped; no new socket's item seen yet
    lanes.offer("a3", "a")  # the redelivered copy
    actions = ok(lanes, a1)
    assert [job.item for a in actions if isinstance(a, Dropped) for job in a.jobs] == ["a2"]
    assert starts(actions) == ["a3"]


def test_a_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        Lanes(0)


def test_jobs_and_lanes_say_where_they_are() -> None:
    lanes: Lanes[str] = Lanes(2, key_ordered=True)
    start = only_start(lanes.offer("a", "k"))
    assert repr(start.job) == "Job('a', key='k', running, attempt=1)"
    assert repr(lanes) == "Lanes(open, running=1/2, open=1, key_ordered=True)"
    assert isinstance(start.job, Job)
