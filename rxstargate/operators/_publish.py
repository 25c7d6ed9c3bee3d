"""``publish``: send each item to a producer's topic, passing the input on once it is stored."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from rxstargate._producer import Producer, RelayedSends, send_error_for
from rxstargate._serial import HandOff
from rxstargate.exceptions import ConfigurationError, StargateError
from rxstargate.models import OutgoingMessage, ProducerAck
from rxstargate.operators._failure import FailurePolicy, settle_failure, validate_policy
from rxstargate.operators._filter import message_of
from rxstargate.operators._outcomes import Processed
from rxstargate.streams import Stream

__all__ = ["publish"]

T = TypeVar("T")


def _nothing() -> None:
    return None


def _default_message(item: Any) -> Any:
    if type(item) is Processed:  # the common case, straight from process()
        message, payload = item.message, item.result
    else:
        message = message_of(item)
        payload = item.result if isinstance(item, Processed) else message.payload
    if message.key is None and not message.properties:
        return payload  # the producer's fast path: nothing but a payload to send
    return OutgoingMessage(payload, key=message.key, properties=dict(message.properties) or None)


def publish(
    producer: Producer[Any],
    to_message: Callable[[Any], OutgoingMessage | bytes | str] | None = None,
    *,
    on_failure: FailurePolicy = "nack",
) -> Callable[[Observable[T]], Stream[T]]:
    """Send each item to ``producer``'s topic; emit the input once its output is stored.

    So ``observe(...).pipe(process(transform), publish(producer)).subscribe(rs.acknowledger())``
    acks each input only after what it produced is stored: at least once, end to end. Sends are
    pipelined (up to the producer's ``max_in_flight``, and the input stream's own credit);
    items are emitted in the order their outputs are acknowledged. An output that fails is
    settled by ``on_failure`` on the input (nack by default).

    Downstream stages run on a thread of the subscription's own ("rxstargate-publish-<topic>",
    ended by dispose or the end of the stream), never on the producer's threads, so a slow
    stage cannot stop the producer from reading its acks and pings (outputs' acks reach that
    thread straight from its receive thread). What raises downstream ends it with ``on_error``.

    Args:
        producer: where outputs go.
        to_message: builds the output from an item; by default a processed item's result (or a
            message's payload) with the input's key and properties. If it raises, the stream
            ends with that error (as in ``ops.map``); its input is redelivered.
        on_failure: for an output the broker refused: ``"nack"``, ``dead_letter(producer)`` or
            ``"error"``.

    Marble::

        items:    --a--b--c----|
        outputs:  ---A--B--C        (sent to the producer's topic)
        publish:  -----a--b--c-|    (each once its output is acked)

    Example:
        >>> out = client.topic("enriched").producer()  # doctest: +SKIP
        >>> stream.pipe(process(enrich), publish(out)).subscribe(rs.acknowledger())  # doctest: +SKIP
    """  # noqa: E501
    if not isinstance(producer, Producer):
        raise ConfigurationError("publish() takes a producer: topic.producer()")
    if to_message is not None and not callable(to_message):
        raise ConfigurationError(f"to_message must be callable or None, not {to_message!r}")
    policy = validate_policy(on_failure)
    build = to_message or _default_message

    def operator(source: Observable[T]) -> Stream[T]:
        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            publishing = _Publishing(observer, producer, build, policy)
            upstream = source.subscribe(
                publishing.on_next,
                publishing.on_error,
                publishing.on_completed,
                scheduler=scheduler,
            )
            return CompositeDisposable(upstream, Disposable(publishing.stop))

        return Stream(subscribe)

    return operator


class _Publishing(Generic[T]):  # a Relay
    """One subscription to ``publish``: the sends in flight and the end once they are in."""

    def __init__(
        self,
        observer: abc.ObserverBase[T],
        producer: Producer[Any],
        build: Callable[[Any], OutgoingMessage | bytes | str],
        policy: FailurePolicy,
    ) -> None:
        sends = RelayedSends(producer)
        self._submission, self._submit = sends.submission, sends.submit
        self._refuse, self._timeout = sends.refuse, sends.timeout
        self._build = build
        self._policy = policy
        # Emitted on a thread of its own: outputs' acks are taken on the producer's receive
        # thread (relayed), which must never wait for downstream stages, nor for a dead
        # letter's slot. That thread is the only emitter, so the observer needs no lock.
        name = f"rxstargate-publish-{producer.topic.topic}"
        self._out: HandOff[T] = HandOff(observer, name)
        self._started = False
        # Outputs sent, counted by the upstream's thread alone (Rx serializes on_next), so
        # without a lock; their acks are counted under the lock, a batch at a time, by the
        # threads that relay them. Every send is counted before its ack can come.
        self._sent = 0
        self._lock = threading.Lock()
        self._acked = 0
        self._upstream_done = False

    def on_next(self, item: T) -> None:
        if self._out.closed:
            return  # the stream is ending: send nothing more
        try:
            outgoing = self._build(item)
        except Exception as exc:
            self._out.on_error(exc)
            return
        if not self._started:  # here, not on the receive thread that hands it its first item
            self._started = True
            self._out.start()
        self._sent += 1
        submission = self._submission(outgoing, None)
        submission.relay = self  # no handle object a message: the Submission holds both
        submission.item = item
        try:
            self._submit(submission, self._timeout)
        except StargateError as exc:
            self._refuse(submission, exc)

    def on_error(self, error: Exception) -> None:
        self._out.on_error(error)

    def on_completed(self) -> None:
        with self._lock:
            self._upstream_done = True
            done = self._acked == self._sent
        if done:
            self._out.on_completed()

    def stop(self) -> None:
        self._out.stop()

    def relayed(self, items: list[Any], failed: list[tuple[int, ProducerAck]]) -> None:
        """Outputs' acks, on the thread that settled them: hand their inputs on (never
        blocks; a failed one's input is settled by the policy on the stage's thread)."""
        out = self._out
        if failed:
            first = 0  # of the inputs not handed on yet
            for index, ack in failed:
                out.on_next_all(items[first:index])
                first = index + 1
                if self._policy == "error":
                    out.on_error(send_error_for(ack))
                else:  # a dead letter is a send, which may wait for a slot: not on this thread
                    out.call(self._settle_failure, items[index], ack)
            out.on_next_all(items[first:])
        else:
            out.on_next_all(items)
        with self._lock:
            self._acked += len(items)
            done = self._upstream_done and self._acked == self._sent
        if done:
            out.on_completed()

    def _settle_failure(self, item: T, ack: ProducerAck) -> None:
        settle_failure(self._policy, message_of(item), send_error_for(ack), 1, _nothing)
