"""The gateway's per-key order on a Key_Shared subscription, rule by rule (no broker)."""

from __future__ import annotations

from dataclasses import dataclass

from rxstargate.local._gateway._key_order import (
    DUE_BACK_SECONDS,
    JOIN_WAIT_SECONDS,
    REPLAY_QUIET_SECONDS,
    KeyOrder,
)


@dataclass(frozen=True)
class Id:
    entry: int

    def ledger_id(self) -> int:
        return 7

    def entry_id(self) -> int:
        return self.entry

    def batch_index(self) -> int:
        return -1


@dataclass(frozen=True)
class Message:
    """What the gateway reads of a broker client's message."""

    entry: int
    key: str
    redelivered: int = 0

    def message_id(self) -> Id:
        return Id(self.entry)

    def topic_name(self) -> str:
        return "persistent://public/default/t"

    def ordering_key(self) -> str:
        return ""

    def partition_key(self) -> str:
        return self.key

    def redelivery_count(self) -> int:
        return self.redelivered


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_waits_while_another_socket_holds_it_and_goes_once_that_one_is_acked() -> None:
    order, first, second = KeyOrder("sub"), object(), object()
    order.join(first)
    order.join(second)
    order.idle(first)
    held = Message(1, "a")
    assert order.arrive(first, held)
    assert not order.arrive(second, Message(5, "a"))
    assert order.arrive(second, Message(6, "b"))  # another key goes at once
    assert order.ready(second, 10) == []
    order.settled(first, held)
    assert order.ready(second, 10) == [Message(5, "a")]
    assert not order.arrive(first, Message(9, "a"))  # now the second holds the key


def test_held_back_messages_go_out_in_order_and_only_as_the_window_allows() -> None:
    order, first, second = KeyOrder("sub"), object(), object()
    order.join(first)
    order.join(second)
    order.idle(first)
    held = Message(1, "a")
    assert order.arrive(first, held)
    for entry in (7, 5, 6):
        assert not order.arrive(second, Message(entry, "a"))
    order.settled(first, held)
    assert order.ready(second, 2) == [Message(5, "a"), Message(6, "a")]
    assert not order.arrive(second, Message(8, "a"))  # behind the one still waiting
    assert order.ready(second, 5) == [Message(7, "a"), Message(8, "a")]


def test_a_joining_socket_waits_until_the_others_took_in_what_they_were_sent() -> None:
    order, first, second = KeyOrder("sub"), object(), object()
    order.join(first)
    assert order.arrive(first, Message(1, "a"))
    order.join(second)
    assert not order.arrive(second, Message(10, "b"))
    assert order.ready(second, 10) == []
    assert order.arrive(first, Message(11, "c"))  # newer than the joiner's first: drained
    assert order.ready(second, 10) == [Message(10, "b")]


def test_a_joining_socket_stops_waiting_for_a_socket_that_found_its_queue_empty() -> None:
    order, first, second = KeyOrder("sub"), object(), object()
    order.join(first)
    order.join(second)
    assert not order.arrive(second, Message(10, "b"))
    order.idle(first)
    assert order.ready(second, 10) == [Message(10, "b")]


def test_what_a_departed_socket_held_goes_before_newer_messages_of_its_keys() -> None:
    clock = Clock()
    order, first, second = KeyOrder("sub", clock), object(), object()
    order.join(first)
    order.join(second)
    order.idle(first)
    assert order.arrive(first, Message(1, "a"))
    order.leave(first, [Message(1, "a"), Message(3, "a")])  # held, and in its queue
    assert not order.arrive(second, Message(8, "a"))
    assert order.arrive(second, Message(1, "a", redelivered=1))
    assert order.ready(second, 10) == []  # 3 is still due back
    assert order.arrive(second, Message(3, "a", redelivered=1))  # ahead of 8, which waits
    clock.now += REPLAY_QUIET_SECONDS  # and the broker sent nothing else back
    assert order.ready(second, 10) == [Message(8, "a")]


def test_a_message_on_its_way_to_a_departed_socket_goes_before_newer_messages_of_its_key() -> None:
    # The socket left having taken in 1 and 3; 5 was on its way to it (the broker had sent it,
    # the socket never saw it), so the broker sends it again among the messages that socket
    # held, while newer ones of its key come as well.
    clock = Clock()
    order, first, second = KeyOrder("sub", clock), object(), object()
    order.join(first)
    order.join(second)
    order.idle(first)
    order.leave(first, [Message(1, "a"), Message(3, "a")])
    assert order.arrive(second, Message(1, "a", redelivered=1))
    assert not order.arrive(second, Message(8, "a"))
    assert order.arrive(second, Message(3, "a", redelivered=1))
    assert order.ready(second, 10) == []  # the broker may be sending more of what it held
    assert order.arrive(second, Message(5, "a", redelivered=1))
    assert order.arrive(second, Message(2, "b"))  # a key it did not hold goes at once
    clock.now += REPLAY_QUIET_SECONDS - 0.1
    assert order.ready(second, 10) == []
    assert order.arrive(second, Message(6, "a", redelivered=1))  # still coming back
    clock.now += REPLAY_QUIET_SECONDS - 0.1
    assert order.ready(second, 10) == []
    assert order.arrive(second, Message(6, "a", redelivered=2))  # nacked: no more coming back
    clock.now += 0.2  # then nothing else came back for REPLAY_QUIET_SECONDS
    assert order.ready(second, 10) == [Message(8, "a")]
    assert order.arrive(second, Message(9, "a"))


def test_messages_due_back_are_waited_for_while_they_keep_coming_and_no_longer() -> None:
    clock = Clock()
    order, first, second = KeyOrder("sub", clock), object(), object()
    order.join(first)
    order.join(second)
    order.idle(first)
    order.leave(first, [Message(1, "a"), Message(2, "a"), Message(3, "b")])
    assert not order.arrive(second, Message(8, "a"))
    clock.now += DUE_BACK_SECONDS - 1
    assert order.arrive(second, Message(3, "b", redelivered=1))  # one came: wait on
    clock.now += DUE_BACK_SECONDS - 1
    assert order.arrive(second, Message(1, "a", redelivered=1))
    assert order.ready(second, 10) == []
    clock.now += DUE_BACK_SECONDS + 1  # 2 never came (dead-lettered on its way, say)
    assert order.ready(second, 10) == [Message(8, "a")]


def test_a_joining_socket_waits_while_the_others_take_in_their_queues_and_no_longer() -> None:
    clock = Clock()
    order, first, second = KeyOrder("sub", clock), object(), object()
    order.join(first)
    assert order.arrive(first, Message(1, "a"))
    order.join(second)
    assert not order.arrive(second, Message(10, "b"))
    clock.now += JOIN_WAIT_SECONDS - 1
    assert order.arrive(first, Message(2, "a"))  # still older than the joiner's: at work
    clock.now += JOIN_WAIT_SECONDS - 1
    assert order.ready(second, 10) == []
    clock.now += 2  # then nothing came for JOIN_WAIT_SECONDS
    assert order.ready(second, 10) == [Message(10, "b")]


def test_one_socket_alone_delivers_everything_at_once() -> None:
    order, only = KeyOrder("sub"), object()
    order.join(only)
    assert all(order.arrive(only, Message(entry, "a")) for entry in range(5))
    assert order.ready(only, 10) == []
