"""Disk pushes: subscription, parsing, delivery (pull and callback), acknowledgement, bounds."""

from __future__ import annotations

import logging
import threading
import time
from xml.etree.ElementTree import fromstring

import pytest

import yaxmpp
from yaxmpp.protocol import ns
from yaxmpp.protocol.disk import Change, Notification, disk_path
from yaxmpp.testing.server import query_xml

from .conftest import LOGIN, TOKEN, Recorder, join_library_threads, library_threads

# -- parsing (no network) -------------------------------------------------------------------


def parse(query: str) -> Notification:
    iq = fromstring('<iq xmlns="jabber:client" type="set" id="p1" from="ya.ru">%s</iq>' % query)
    return Notification.from_iq(iq, received_at=123.5)


def test_one_op():
    n = parse('<query xmlns="yandex:push:disk"><diff><op type="new" key="/disk/a.txt" fid="77" size="10"/></diff></query>')
    assert len(n.changes) == 1
    change = n.changes[0]
    assert (change.type, change.path, change.fid, change.size) == ("new", "/disk/a.txt", "77", 10)
    assert change.attrs == {"type": "new", "key": "/disk/a.txt", "fid": "77", "size": "10"}
    assert n.received_at == 123.5 and n.iq_id == "p1" and n.sender == "ya.ru"
    assert n.element.tag == ns.DISK_QUERY


def test_several_ops_keep_their_order():
    n = parse(
        '<query xmlns="yandex:push:disk"><diff>'
        '<op type="deleted" key="/disk/1"/><op type="published" key="/disk/2"/><op type="new" key="/disk/3"/>'
        "</diff></query>"
    )
    assert [c.type for c in n.changes] == ["deleted", "published", "new"]
    assert [c.path for c in n.changes] == ["/disk/1", "/disk/2", "/disk/3"]


def test_no_diff_gives_no_changes_but_keeps_everything():
    n = parse('<query xmlns="yandex:push:disk" uid="42" t="x"><something else="1"/></query>')
    assert n.changes == ()
    assert n.attrs == {"uid": "42", "t": "x"}
    assert n.element.find("{yandex:push:disk}something").get("else") == "1"
    assert 'uid="42"' in n.xml and "<something" in n.xml


def test_unknown_attributes_and_children_are_kept():
    n = parse(
        '<query xmlns="yandex:push:disk" version="3"><diff extra="y"><op type="moved" key="disk:/x" from="disk:/y" '
        'fid="00012" size="not-a-number" md5="abc"><child/></op><note>hi</note></diff><other/></query>'
    )
    change = n.changes[0]
    assert change.type == "moved"
    assert change.fid == "00012"  # stays a string
    assert change.size is None
    assert change.attrs["md5"] == "abc" and change.attrs["from"] == "disk:/y"
    assert n.attrs == {"version": "3"}
    reparsed = fromstring(n.xml)
    assert reparsed.find("{yandex:push:disk}other") is not None
    assert reparsed.find("{yandex:push:disk}diff/{yandex:push:disk}note").text == "hi"


def test_both_key_prefixes():
    n = parse(
        '<query xmlns="yandex:push:disk"><diff><op type="new" key="/disk/Photos/a.jpg"/>'
        '<op type="new" key="disk:/Photos/a.jpg"/><op type="new" key="/disk"/><op type="new" key="trash:/x"/>'
        "</diff></query>"
    )
    assert [c.path for c in n.changes] == ["/disk/Photos/a.jpg", "disk:/Photos/a.jpg", "/disk", "trash:/x"]
    assert [c.disk_path for c in n.changes] == ["/Photos/a.jpg", "/Photos/a.jpg", "/", None]
    assert disk_path("disk:relative") == "/relative"
    assert disk_path("/diskette/x") is None


def test_change_is_read_only_mapping():
    change = Change({"type": "new"})
    with pytest.raises(TypeError):
        change.attrs["type"] = "x"  # type: ignore[index]


# -- subscription ---------------------------------------------------------------------------


def test_connect_subscribes_to_the_users_bare_jid(make_server, make_client):
    server = make_server(login="Test.User", token=TOKEN)
    make_client(server, login="Test.User").connect()
    session = server.wait_for_session()
    assert session.subscribed.wait(5)  # set just after the server sent its answer
    sent = bytes(session.received)
    subscription = [s for s in session.stanzas if s.find("{yandex:push:disk}s") is not None]
    assert len(subscription) == 1
    iq = subscription[0]
    assert (iq.get("type"), iq.get("to")) == ("set", "test.user@ya.ru")
    assert b'<s xmlns="yandex:push:disk"/></iq>' in sent
    # The subscription comes after the session is open.
    assert sent.index(b'id="session_') < sent.index(b"yandex:push:disk")


def test_subscription_error_raises_and_leaves_nothing_behind(make_server, make_client):
    server = make_server(subscribe_error="not-allowed")
    client = make_client(server)
    with pytest.raises(yaxmpp.SubscribeError) as info:
        client.connect()
    assert info.value.condition == "not-allowed"
    assert type(info.value) is yaxmpp.SubscribeError and isinstance(info.value, yaxmpp.IqError)
    assert not client.connected
    assert library_threads() == []
    assert server.wait_for_session().client_closed.wait(5)


def test_subscribe_false_then_subscribe_later(server, make_client):
    client = make_client(server, subscribe=False).connect()
    session = server.wait_for_session()
    session.wait_reply(session.ping())  # the session is idle and running
    assert not session.subscribed.is_set()
    client.subscribe(timeout=5)
    assert session.subscribed.wait(5)  # the server marks it right after answering
    server.push([{"type": "new", "key": "/disk/late.txt"}])
    assert client.get_notification(timeout=5).changes[0].path == "/disk/late.txt"


def test_subscribe_before_connect_is_client_closed(server, make_client):
    with pytest.raises(yaxmpp.ClientClosed):
        make_client(server).subscribe()


# -- pull delivery --------------------------------------------------------------------------


def test_push_is_delivered_and_acknowledged(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    iq_id = session.push([{"type": "new", "key": "/disk/a.txt", "fid": "1", "size": "3"}], attrs={"uid": "9"})
    notification = client.get_notification(timeout=5)
    assert notification.changes[0].path == "/disk/a.txt"
    assert notification.attrs == {"uid": "9"}
    assert notification.iq_id == iq_id
    assert abs(notification.received_at - time.time()) < 60
    ack = session.wait_reply(iq_id)
    assert ack.get("type") == "result" and ack.get("to") == "ya.ru" and len(ack) == 0


@pytest.mark.parametrize(
    "sender, delivered",
    [
        (None, True),
        ("ya.ru", True),
        ("push.xmpp.yandex.ru", True),
        ("test@ya.ru", True),
        ("TEST@ya.ru/other-resource", True),
        ("mallory@ya.ru/x", False),
        ("test@evil.example", False),
    ],
)
def test_only_the_service_or_the_users_own_account_can_push(server, make_client, sender, delivered):
    client = make_client(server).connect()
    session = server.wait_for_session()
    origin = "" if sender is None else ' from="%s"' % sender
    session.send('<iq type="set" id="p"%s>%s</iq>' % (origin, query_xml([{"type": "deleted", "key": "/disk/x"}])))
    reply = session.wait_reply("p")
    if delivered:
        assert reply.get("type") == "result"
        assert client.get_notification(timeout=5).sender == sender
    else:
        assert reply.get("type") == "error"
        # A round trip after the push: once the client answered it, its reader is past the
        # push, so had the push been queued it would be there now.
        session.wait_reply(session.ping())
        with pytest.raises(yaxmpp.Timeout):
            client.get_notification(timeout=0)


def test_ack_is_sent_only_after_the_push_is_queued(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    seen_at_queue_time = []
    connection = client._session.connection
    real_put_many = connection._on_pushes

    def put_many(items):
        items = list(items)
        # At the moment of queueing, the server must not have any acknowledgement yet.
        seen_at_queue_time.append([n.iq_id in session.replies() for n in items])
        return real_put_many(items)

    connection._on_pushes = put_many  # type: ignore[assignment]
    ids = [session.push([{"type": "new", "key": "/disk/%d" % i}]) for i in range(5)]
    for iq_id in ids:
        session.wait_reply(iq_id)
    assert seen_at_queue_time and not any(any(flags) for flags in seen_at_queue_time)
    assert [client.get_notification(timeout=5).iq_id for _ in ids] == ids


def test_order_is_kept_over_10000_pushes(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    ids = session.push_many(10000)
    received = [client.get_notification(timeout=10).iq_id for _ in range(10000)]
    assert received == ids
    assert session.wait_reply(ids[-1]).get("type") == "result"


def test_get_notification_timeout(server, make_client):
    client = make_client(server).connect()
    with pytest.raises(yaxmpp.Timeout) as info:
        client.get_notification(timeout=0.2)
    assert isinstance(info.value, TimeoutError)


def test_iterator_with_timeout_ends_after_silence(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    session.push([{"type": "new", "key": "/disk/1"}])
    session.push([{"type": "new", "key": "/disk/2"}])
    paths = [n.changes[0].path for n in client.notifications(timeout=0.5)]
    assert paths == ["/disk/1", "/disk/2"]
    assert client.connected


def test_iterator_ends_after_close_once_everything_received_was_yielded(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    ids = session.push_many(50)
    session.wait_reply(ids[-1])  # all 50 are queued (acks follow queueing)
    client.close()
    assert [n.iq_id for n in client.notifications()] == ids


def test_iterator_in_another_thread_ends_when_close_is_called(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    got = []
    consumer = threading.Thread(target=lambda: got.extend(client.notifications()))
    consumer.start()
    session.wait_reply(session.push([{"type": "new", "key": "/disk/x"}]))
    client.close()
    consumer.join(5)
    assert not consumer.is_alive()
    assert [n.changes[0].path for n in got] == ["/disk/x"]


@pytest.mark.parametrize("how", ["drop", "server-close"])
def test_iterator_yields_what_came_then_raises_when_the_connection_ends(server, make_client, how):
    client = make_client(server).connect()
    session = server.wait_for_session()
    ids = [session.push([{"type": "new", "key": "/disk/%d" % i}]) for i in range(3)]
    session.wait_reply(ids[-1])
    if how == "drop":
        session.drop()
    else:
        session.close_stream()
    got = []
    with pytest.raises(yaxmpp.ConnectionLost):
        for notification in client.notifications():
            got.append(notification.iq_id)
    assert got == ids


def test_pushes_before_the_servers_close_are_acknowledged_before_our_close(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    query = query_xml([{"type": "new", "key": "/disk/last"}])
    session.send(
        '<iq type="set" id="e1" from="ya.ru">%s</iq><iq type="set" id="e2" from="ya.ru">%s</iq></stream:stream>'
        % (query, query)
    )
    assert session.client_closed.wait(5)
    sent = bytes(session.received)
    assert sent.index(b'id="e1"') < sent.index(b'id="e2"') < sent.rindex(b"</stream:stream>")
    assert [client.get_notification(timeout=5).iq_id for _ in range(2)] == ["e1", "e2"]
    with pytest.raises(yaxmpp.ConnectionLost):
        client.get_notification(timeout=5)


def test_queue_bound_refuses_pushes_it_cannot_hold(server, make_client, caplog):
    client = make_client(server, max_pending=5).connect()
    session = server.wait_for_session()
    ids = [session.push([{"type": "new", "key": "/disk/%d" % i}]) for i in range(8)]
    replies = [session.wait_reply(iq_id) for iq_id in ids]
    assert [r.get("type") for r in replies] == ["result"] * 5 + ["error"] * 3
    error = replies[-1].find("{jabber:client}error")
    assert error.get("type") == "wait"
    assert error.find("{%s}resource-constraint" % ns.STANZAS) is not None
    assert client.refused_notifications == 3
    assert client.pending_notifications == 5
    # The reader is not held up by the full queue: pings are still answered.
    assert session.wait_reply(session.ping()).get("type") == "result"
    assert [client.get_notification(timeout=5).iq_id for _ in range(5)] == ids[:5]
    # Once there is room again, pushes are taken again.
    more = session.push([{"type": "new", "key": "/disk/again"}])
    assert session.wait_reply(more).get("type") == "result"
    assert "refused" in caplog.text


# -- callback delivery ----------------------------------------------------------------------


def test_callback_runs_on_its_own_thread_in_order(server, make_client):
    got = []
    done = threading.Event()

    def on_notification(notification):
        got.append((notification.iq_id, threading.current_thread().name))
        if len(got) == 20:
            done.set()

    client = make_client(server, on_notification=on_notification).connect()
    ids = server.wait_for_session().push_many(20)
    assert done.wait(5)
    assert [iq_id for iq_id, _ in got] == ids
    assert {name for _, name in got} == {"yaxmpp-dispatch-%d" % client.number}
    with pytest.raises(yaxmpp.UsageError):
        client.get_notification(timeout=0)


def test_slow_callback_does_not_delay_ping_replies(server, make_client):
    release = threading.Event()
    calls = Recorder()

    def on_notification(notification):
        calls(notification.iq_id)
        release.wait(10)  # a callback that blocks for a long time

    client = make_client(server, on_notification=on_notification).connect()
    session = server.wait_for_session()
    first = session.push([{"type": "new", "key": "/disk/slow"}])
    assert calls.wait_for(1) and calls.calls == [first]
    second = session.push([{"type": "new", "key": "/disk/next"}])
    for _ in range(3):
        assert session.wait_reply(session.ping(), timeout=2).get("type") == "result"
    assert session.wait_reply(second, timeout=2).get("type") == "result"  # queued and acked meanwhile
    assert calls.calls == [first]
    release.set()
    assert calls.wait_for(2) and calls.calls == [first, second]
    client.close()


def test_callback_exception_is_logged_and_delivery_goes_on(server, make_client, caplog):
    got = Recorder()

    def on_notification(notification):
        got(notification.iq_id)
        if len(got.calls) == 1:
            raise ValueError("boom in user code")

    client = make_client(server, on_notification=on_notification).connect()
    session = server.wait_for_session()
    ids = [session.push([{"type": "new", "key": "/disk/%d" % i}]) for i in range(2)]
    assert got.wait_for(2) and got.calls == ids
    assert "boom in user code" in caplog.text
    assert client.connected
    assert session.wait_reply(session.ping()).get("type") == "result"


def test_close_from_inside_the_callback(server, make_client):
    closed = threading.Event()
    holder = {}

    def on_notification(notification):
        holder["client"].close()
        closed.set()

    client = make_client(server, on_notification=on_notification)
    holder["client"] = client
    client.connect()
    server.wait_for_session().push([{"type": "new", "key": "/disk/bye"}])
    assert closed.wait(5)
    assert not client.connected
    assert join_library_threads() == []  # the dispatcher returns from the callback, then ends
    client.close()  # again, from the main thread


def test_close_joins_the_dispatcher_after_pending_callbacks(server, make_client):
    got = []
    # A slow callback (the sleep stands for work), so callbacks are still queued at close().
    client = make_client(server, on_notification=lambda n: (time.sleep(0.01), got.append(n.iq_id)))
    client.connect()
    session = server.wait_for_session()
    ids = session.push_many(20)
    session.wait_reply(ids[-1])
    client.close(timeout=5)
    assert got == ids
    assert library_threads() == []


def test_token_is_not_in_notification_reprs(server, make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    client = make_client(server).connect()
    server.wait_for_session().push([{"type": "new", "key": "/disk/a"}])
    notification = client.get_notification(timeout=5)
    assert TOKEN not in repr(notification) + notification.xml + caplog.text
    assert LOGIN in repr(client)


def test_after_a_failed_connect_the_consumer_learns_why_instead_of_waiting(server, make_client):
    client = make_client(server).connect()
    client.close()
    server.accounts[LOGIN] = "revoked-token-value"
    with pytest.raises(yaxmpp.AuthError):
        client.connect()
    started = time.monotonic()
    with pytest.raises(yaxmpp.AuthError):
        client.get_notification()  # no timeout: it must not block
    assert time.monotonic() - started < 2
