"""Delivery.take() without the lock when something is queued: every item still reaches
exactly one consumer, in order, within ``max_pending``, and a waiting consumer still wakes.

Real threads throughout; they meet on events (or on a consumer being seen waiting on the
condition), never on sleeps."""

from __future__ import annotations

import threading
import time
from typing import Any, List, Optional

import pytest

import yaxmpp
from yaxmpp.delivery import Delivery

ROUNDS = 300


def _pull(max_pending: int = 1000) -> Delivery:
    delivery = Delivery(max_pending, None, False, "yaxmpp-test-delivery")
    delivery.reopen()
    return delivery


def _wait_blocked(delivery: Delivery, waiters: int) -> None:
    """Until ``waiters`` consumers wait on the condition (they hold no item and no lock)."""
    give_up = time.monotonic() + 10.0
    while len(delivery._cond._waiters) < waiters:  # type: ignore[attr-defined]
        assert time.monotonic() < give_up, "the consumers never started waiting"
        threading.Event().wait(0.001)


class Consumer(threading.Thread):
    """Takes items until ``take`` raises or returns None; keeps what it got and how it ended."""

    def __init__(self, delivery: Delivery, timeout: Optional[float] = None, limit: Optional[int] = None) -> None:
        super().__init__(daemon=True)
        self.delivery = delivery
        self.timeout = timeout
        self.limit = limit
        self.items: List[Any] = []
        self.ended: Optional[BaseException] = None
        self.started_taking = threading.Event()

    def run(self) -> None:
        self.started_taking.set()
        try:
            while self.limit is None or len(self.items) < self.limit:
                item = self.delivery.take(self.timeout)
                if item is None:
                    return
                self.items.append(item)
        except BaseException as error:  # what ended it: the test looks at it
            self.ended = error


def test_take_does_not_touch_the_lock_when_an_item_is_queued() -> None:
    delivery = _pull()
    delivery.put_notifications(["a", "b"])

    class NoLock:
        def __enter__(self) -> None:
            raise AssertionError("take() took the lock with an item queued")

        def __exit__(self, *args: Any) -> None:
            pass

    lock = delivery._lock
    delivery._lock = NoLock()  # type: ignore[assignment]
    try:
        assert delivery.take(0) == "a" and delivery.take(None) == "b"
    finally:
        delivery._lock = lock
    assert len(delivery) == 0 and delivery.take(0) is None


def test_concurrent_consumers_get_every_item_exactly_once() -> None:
    delivery = _pull(max_pending=100000)
    consumers = [Consumer(delivery) for _ in range(6)]
    for consumer in consumers:
        consumer.start()
    sent = list(range(20000))
    for start in range(0, len(sent), 7):  # small batches, while the consumers take
        assert delivery.put_notifications(sent[start:start + 7]) == len(sent[start:start + 7])
    delivery.end(None)
    for consumer in consumers:
        consumer.join(10)
        assert not consumer.is_alive()
        assert isinstance(consumer.ended, yaxmpp.ClientClosed)
        assert consumer.items == sorted(consumer.items)  # each consumer sees the queue's order
    got = sorted(item for consumer in consumers for item in consumer.items)
    assert got == sent
    assert len(delivery) == 0 and delivery.refused == 0


def test_consumers_with_short_timeouts_race_for_items_without_error() -> None:
    """A waiting consumer woken for an item that a consumer outside the lock took first
    waits on (or times out), it does not fail."""
    delivery = _pull(max_pending=100000)
    consumers = [Consumer(delivery, timeout=0.05) for _ in range(4)]
    fast = [Consumer(delivery, timeout=5.0) for _ in range(2)]
    for consumer in consumers + fast:
        consumer.start()
    for consumer in consumers + fast:
        consumer.started_taking.wait(5)
    sent = list(range(5000))
    for item in sent:
        delivery.put_notifications([item])
    delivery.end(None)
    for consumer in consumers + fast:
        consumer.join(10)
        assert not consumer.is_alive()
        assert consumer.ended is None or isinstance(consumer.ended, yaxmpp.ClientClosed), consumer.ended
    got = sorted(item for consumer in consumers + fast for item in consumer.items)
    assert got == sent


def test_max_pending_is_enforced_with_a_concurrent_consumer() -> None:
    max_pending = 50
    delivery = _pull(max_pending)
    consumer = Consumer(delivery)
    consumer.start()
    accepted: List[int] = []
    offered = 0
    for start in range(0, 30000, 13):
        batch = list(range(start, start + 13))
        taken = delivery.put_notifications(batch)
        offered += len(batch)
        assert len(delivery) <= max_pending
        accepted.extend(batch[:taken])
    delivery.end(None)
    consumer.join(10)
    assert not consumer.is_alive() and isinstance(consumer.ended, yaxmpp.ClientClosed)
    assert consumer.items == accepted  # what was taken, in order, nothing more
    assert delivery.refused == offered - len(accepted)
    assert len(delivery) == 0


def test_a_taken_item_frees_exactly_one_place() -> None:
    delivery = _pull(3)
    assert delivery.put_notifications([1, 2, 3]) == 3
    consumer = Consumer(delivery, limit=1)
    consumer.start()
    consumer.join(5)
    assert consumer.items == [1] and len(delivery) == 2
    assert delivery.put_notifications([4, 5]) == 1
    assert delivery.refused == 1 and len(delivery) == 3
    assert [delivery.take(0) for _ in range(3)] == [2, 3, 4]
    assert delivery.take(0) is None and len(delivery) == 0


def test_len_is_exact_after_takes_held_items_and_resync() -> None:
    delivery = _pull(10)
    delivery.put_notifications(["a", "b", "c"])
    assert len(delivery) == 3
    assert delivery.take(0) == "a"
    assert len(delivery) == 2
    delivery.hold()
    delivery.put_notifications(["d", "e"])
    assert len(delivery) == 4  # the held ones count
    assert delivery.put_notifications(list("fghijklm")) == 6
    assert len(delivery) == 10
    delivery.release(lambda first: ("RESYNC", first))
    assert len(delivery) == 11  # the resync item is never refused, and counts
    assert [delivery.take(0) for _ in range(3)] == ["b", "c", ("RESYNC", "d")]
    assert len(delivery) == 8
    assert delivery.put_notifications(["n", "o", "p"]) == 2
    taken = [delivery.take(0) for _ in range(10)]
    assert taken == list("defghijkno")
    assert len(delivery) == 0 and delivery.take(0) is None


def test_a_waiting_consumer_gets_the_resync_before_the_held_items() -> None:
    for _ in range(50):
        delivery = _pull()
        delivery.hold()
        delivery.put_notifications(["a", "b"])
        consumer = Consumer(delivery, limit=3)
        consumer.start()
        _wait_blocked(delivery, 1)  # held items are not for the consumer yet
        delivery.release(lambda first: "RESYNC before %s" % first)
        consumer.join(5)
        assert consumer.items == ["RESYNC before a", "a", "b"]


def test_nothing_overtakes_a_release_with_consumers_running() -> None:
    delivery = _pull(100000)
    consumer = Consumer(delivery)
    consumer.start()
    expected: List[Any] = []
    for round in range(200):
        batch = ["%d-%d" % (round, i) for i in range(3)]
        delivery.put_notifications(batch)
        expected.extend(batch)
        delivery.hold()
        held = ["%d-held-%d" % (round, i) for i in range(2)]
        delivery.put_notifications(held)
        delivery.release(lambda first: ("RESYNC", first))
        expected.append(("RESYNC", held[0]))
        expected.extend(held)
    delivery.end(None)
    consumer.join(10)
    assert consumer.items == expected


def test_end_is_drained_first_then_raises_the_error() -> None:
    delivery = _pull()
    delivery.put_notifications([1, 2])
    delivery.end(yaxmpp.ConnectionLost("gone"))
    assert delivery.take(0) == 1 and delivery.take(None) == 2
    with pytest.raises(yaxmpp.ConnectionLost):
        delivery.take(None)
    with pytest.raises(yaxmpp.ConnectionLost):
        delivery.take(0)
    assert len(delivery) == 0


def test_take_times_out_with_none() -> None:
    delivery = _pull()
    assert delivery.take(0) is None
    started = time.monotonic()
    assert delivery.take(0.2) is None
    assert time.monotonic() - started < 0.2 + 1.5
    with pytest.raises(yaxmpp.Timeout):
        delivery.get(0.05)


def test_a_waiting_take_wakes_on_put_every_time() -> None:
    """No lost wakeup: half the rounds put as the consumer starts taking (racing its
    check of the empty queue), half once it is seen waiting."""
    delivery = _pull()
    for round in range(ROUNDS):
        consumer = Consumer(delivery, timeout=10.0, limit=1)
        consumer.start()
        if round % 2:
            _wait_blocked(delivery, 1)
        else:
            consumer.started_taking.wait(5)
        delivery.put_notifications([round])
        consumer.join(10)
        assert consumer.items == [round], "round %d: the consumer missed the put" % round
    assert len(delivery) == 0


def test_many_waiting_consumers_each_wake_for_one_item() -> None:
    delivery = _pull()
    for round in range(20):
        consumers = [Consumer(delivery, limit=1) for _ in range(5)]
        for consumer in consumers:
            consumer.start()
        _wait_blocked(delivery, len(consumers))
        for i in range(len(consumers)):
            delivery.put_notifications([(round, i)])
        for consumer in consumers:
            consumer.join(10)
            assert not consumer.is_alive() and consumer.ended is None
        assert sorted(item for consumer in consumers for item in consumer.items) == [(round, i) for i in range(5)]


def test_end_wakes_every_waiting_take() -> None:
    for round in range(50):
        delivery = _pull()
        consumers = [Consumer(delivery) for _ in range(3)]
        for consumer in consumers:
            consumer.start()
        _wait_blocked(delivery, len(consumers))
        error = yaxmpp.ConnectionLost("round %d" % round) if round % 2 else None
        delivery.end(error)
        for consumer in consumers:
            consumer.join(10)
            assert not consumer.is_alive() and consumer.items == []
            assert isinstance(consumer.ended, yaxmpp.ConnectionLost if error else yaxmpp.ClientClosed)


def test_callback_mode_counts_only_notifications() -> None:
    """With on_notification the calls share the queue: they never count as pending."""
    seen: List[Any] = []
    done = threading.Event()
    gate = threading.Event()

    def on_notification(item: Any) -> None:
        gate.wait(10)
        seen.append(item)

    delivery = Delivery(3, on_notification, True, "yaxmpp-test-dispatch")
    delivery.reopen()
    calls: List[str] = []
    delivery.put_call(calls.append, "first")
    assert delivery.put_notifications([1, 2, 3, 4]) == 3
    delivery.put_call(calls.append, "second")
    assert len(delivery) == 3 and delivery.refused == 1
    delivery.start()
    try:
        gate.set()
        delivery.put_notifications([5])  # may or may not fit, depending on the dispatcher
        assert len(delivery) <= 3
        delivery.put_call(done.set)  # runs once what was queued before it has
        assert done.wait(10)
        assert len(delivery) == 0
        assert delivery.put_notifications([6, 7, 8, 9]) == 3
        assert len(delivery) <= 3
    finally:
        delivery.end(None)
        assert delivery.join(10)
    assert calls == ["first", "second"]
    assert seen[:3] == [1, 2, 3] and seen[-3:] == [6, 7, 8]
    assert len(delivery) == 0
