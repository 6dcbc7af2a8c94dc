"""Disk pushes in the sans-IO core: runs of pushes, who may push, acknowledgements."""

from __future__ import annotations

from yaxmpp import Notification
from yaxmpp.protocol import IqResponse, PushesReceived, StanzaReceived, StreamClosed

from .core_harness import CLIENT_CLOSE, PING, SERVER_CLOSE, established


def push(iq_id: str, sender: str = "ya.ru") -> bytes:
    origin = b" from='%s'" % sender.encode() if sender else b""
    return (
        b"<iq type='set' id='%s'%s><query xmlns='yandex:push:disk'><diff>"
        b"<op type='new' key='/disk/%s'/></diff></query></iq>" % (iq_id.encode(), origin, iq_id.encode())
    )


def test_consecutive_pushes_are_one_event_in_order():
    driver = established()
    events = driver.feed(push("a") + push("b") + b"<message/>" + push("c"))
    assert [type(e) for e in events] == [PushesReceived, StanzaReceived, PushesReceived]
    assert events[0].iq_ids == ["a", "b"] and events[2].iq_ids == ["c"]
    assert events[0].senders == ["ya.ru", "ya.ru"]
    # A query element, or (from the parser's fast path) its compact form: a Notification takes either.
    assert [Notification(q, 0).element.tag for q in events[0].queries] == ["{yandex:push:disk}query"] * 2
    assert driver.out() == b""  # nothing is acknowledged before the driver says so


def test_acknowledge_all_accepts_then_refuses():
    driver = established()
    (run,) = driver.feed(push("a") + push("b") + push("c"))
    driver.proto.acknowledge_all(run, 2)
    out = driver.out()
    assert out.startswith(b'<iq type="result" to="ya.ru" id="a"/><iq type="result" to="ya.ru" id="b"/>')
    assert b'id="c"><error type="wait"><resource-constraint' in out


def test_a_push_from_another_user_is_refused_not_delivered():
    driver = established()
    events, out = driver.exchange(push("x", "mallory@ya.ru/r"))
    assert not any(isinstance(e, PushesReceived) for e in events)
    assert b'id="x"><error type="cancel"><service-unavailable' in out


def test_our_close_waits_for_the_acknowledgements_of_pushes_before_the_servers_close():
    driver = established()
    events = driver.feed(push("a") + push("b") + SERVER_CLOSE)
    assert isinstance(events[-1], StreamClosed)
    assert driver.out() == b""  # the close is owed, not sent: the acks must go first
    driver.proto.acknowledge_all(events[0], 2)
    out = driver.out()
    assert out.index(b'id="a"') < out.index(b'id="b"') < out.index(CLIENT_CLOSE)
    assert out.endswith(CLIENT_CLOSE)


def test_pushes_after_our_close_are_delivered_but_not_acknowledged():
    driver = established()
    driver.proto.close()
    assert driver.out() == CLIENT_CLOSE
    events = driver.feed(push("late") + PING)
    assert isinstance(events[0], PushesReceived)
    driver.proto.acknowledge_all(events[0], 1)
    assert driver.out() == b""  # nothing may follow our </stream:stream>


def test_iq_response_between_pushes_keeps_its_place():
    driver = established()
    iq_id = driver.proto.send_iq("get", "<ping xmlns='urn:xmpp:ping'/>")
    driver.out()
    events = driver.feed(push("a") + b"<iq type='result' id='%s'/>" % iq_id.encode() + push("b"))
    assert [type(e) for e in events] == [PushesReceived, IqResponse, PushesReceived]
