"""The resync item: after every reconnect (never the first connect) one yaxmpp.Resync comes in
the notification stream before any push of the new session, for the pull iterator and the
callback alike (yaxmpp/session.py, yaxmpp/delivery.py)."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any, List

import pytest

import yaxmpp
from yaxmpp.protocol.disk import push_xml
from yaxmpp.testing import FakeServer

from .conftest import LOGIN, TOKEN, Recorder
from .scripted import STREAM_HEAD, ScriptedServer, read_until, server_tls_context, wait_for_eof
from .secrets_check import assert_no_secret

FAST = dict(initial=0.02, maximum=0.05)


def change(path: str) -> List[dict]:
    return [{"type": "new", "key": path, "fid": "1", "size": "1"}]


def paths(items: List[Any]) -> List[str]:
    """What the stream carried: each push's first path, or "RESYNC"."""
    return ["RESYNC" if isinstance(item, yaxmpp.Resync) else item.changes[0].path for item in items]


def take(client: yaxmpp.Client, count: int, timeout: float = 10.0) -> List[Any]:
    return [client.get_notification(timeout=timeout) for _ in range(count)]


def resubscribed(server: FakeServer, index: int) -> "yaxmpp.testing.ServerSession":
    session = server.wait_for_session(index=index, timeout=10)
    assert session.subscribed.wait(10), "not subscribed again after the reconnect"
    return session


# -- a dropped session ---------------------------------------------------------------------------


def test_a_dropped_session_puts_one_resync_before_the_new_sessions_pushes(server, make_client):
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST)).connect()
    first = server.wait_for_session(0)
    first.wait_reply(first.push(change("/disk/before")))
    [before] = take(client, 1)
    assert not isinstance(before, yaxmpp.Resync) and before.is_resync is False  # no resync on the first connect

    dropped_at = time.time()
    first.drop()
    second = resubscribed(server, 1)
    second.wait_reply(second.push(change("/disk/after")))
    confirmed = time.time()
    resync, after = take(client, 2)

    assert isinstance(resync, yaxmpp.Resync) and resync.is_resync is True
    assert paths([after]) == ["/disk/after"]
    assert dropped_at <= resync.since <= resync.until <= confirmed
    assert isinstance(resync.error, yaxmpp.ConnectionLost)
    assert resync.reason == str(resync.error) and resync.reason
    assert resync.changes == () and resync.received_at == resync.until
    assert resync.revision_changed is None and resync.revision is None and resync.previous_revision is None
    assert client.pending_notifications == 0


def test_code_that_reads_changes_keeps_working(server, make_client):
    """The loop of the README's quick start meets the resync item and sees no change in it."""
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST)).connect()
    server.wait_for_session(0).drop()
    resubscribed(server, 1).push(change("/disk/x"))
    seen = []
    for notification in client.notifications(timeout=10):
        for item in notification.changes:
            seen.append(item.path)
        if seen:
            break
    assert seen == ["/disk/x"]


def test_a_stream_the_server_closes_gives_a_resync_too(server, make_client):
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST)).connect()
    server.wait_for_session(0).close_stream()
    resubscribed(server, 1).push(change("/disk/after"))
    resync, after = take(client, 2)
    assert isinstance(resync, yaxmpp.Resync) and isinstance(resync.error, yaxmpp.ConnectionLost)
    assert paths([after]) == ["/disk/after"]


def test_pushes_racing_the_subscription_still_come_after_the_resync(server, make_client):
    """Pushes sent the moment the new session is open, before (or while) the client
    subscribes, belong to the new session: behind its resync."""
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST)).connect()
    server.wait_for_session(0).drop()
    second = server.wait_for_session(index=1, timeout=10)
    assert second.session_started.wait(10)
    ids = second.push_many(50, change("/disk/early"))
    for iq_id in ids:
        second.wait_reply(iq_id)  # acknowledged, so already queued
    assert second.subscribed.wait(10)
    items = take(client, 51)
    assert paths(items) == ["RESYNC"] + ["/disk/early"] * 50
    assert [item.iq_id for item in items[1:]] == ids
    assert items[0].since <= items[0].until <= items[1].received_at  # the times agree with the order


def test_every_reconnect_gives_its_own_resync(server, make_client):
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST)).connect()
    for index in range(3):
        session = resubscribed(server, index)
        session.wait_reply(session.push(change("/disk/%d" % index)))
        session.drop()
    resubscribed(server, 3).push(change("/disk/3"))
    items = take(client, 7)
    assert paths(items) == ["/disk/0", "RESYNC", "/disk/1", "RESYNC", "/disk/2", "RESYNC", "/disk/3"]
    resyncs = [item for item in items if isinstance(item, yaxmpp.Resync)]
    assert all(a.until <= b.since for a, b in zip(resyncs, resyncs[1:]))


# -- a burst of pushes ----------------------------------------------------------------------------


def test_a_burst_on_both_sides_of_the_gap_keeps_its_order(server, make_client):
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST)).connect()
    first = server.wait_for_session(0)
    before = first.push_many(300, change("/disk/before"))
    first.wait_reply(before[-1])
    first.drop()
    second = resubscribed(server, 1)
    after = second.push_many(300, change("/disk/after"))
    second.wait_reply(after[-1])
    items = take(client, 601)
    assert paths(items) == ["/disk/before"] * 300 + ["RESYNC"] + ["/disk/after"] * 300
    assert [item.iq_id for item in items[:300]] == before and [item.iq_id for item in items[301:]] == after


def test_the_resync_never_counts_against_max_pending(server, make_client):
    """A full queue refuses pushes, never the resync item."""
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST), max_pending=3).connect()
    first = server.wait_for_session(0)
    ids = first.push_many(3, change("/disk/a"))
    first.wait_reply(ids[-1])
    first.drop()
    second = resubscribed(server, 1)
    refused = second.wait_reply(second.push(change("/disk/refused")))
    assert refused.get("type") == "error"
    items = take(client, 4)
    assert paths(items) == ["/disk/a"] * 3 + ["RESYNC"]


# -- a server restart -----------------------------------------------------------------------------


def test_a_server_restart_on_the_same_ports(make_server, make_client):
    old = make_server()
    retries = Recorder()
    client = make_client(old, reconnect=yaxmpp.Reconnect(on_retry=retries, **FAST)).connect()
    first = old.wait_for_session(0)
    assert first.subscribed.wait(5)  # set just after the answer went out, maybe after connect() returned
    first.wait_reply(first.push(change("/disk/old")))
    stopped_at = time.time()
    old.stop()
    assert retries.wait_for(3, 10), "no reconnect attempts while the server is down"
    new = make_server(starttls_port=old.starttls_port, tls_port=old.tls_port)
    session = resubscribed(new, 0)
    session.wait_reply(session.push(change("/disk/new")))
    items = take(client, 3)
    assert paths(items) == ["/disk/old", "RESYNC", "/disk/new"]
    resync = items[1]
    assert stopped_at <= resync.since < resync.until
    assert isinstance(resync.error, yaxmpp.ConnectionLost)  # what ended the session, not a failed attempt
    assert any(isinstance(error, yaxmpp.ConnectError) for error in retries.calls[1:])


# -- pushes in the same TCP segment as the subscription's answer ---------------------------------------


def _iq_id(data: bytes) -> str:
    match = re.search(rb"<iq[^>]*\sid=['\"]([^'\"]+)['\"]", data)
    assert match, data
    return match.group(1).decode()


def _session_script(pushes_with_answer: int, then_drop: bool, acks: List[bytes]) -> Any:
    """A whole session by hand (STARTTLS, SASL, bind, session, subscription) whose answer to
    the subscription is written together with ``pushes_with_answer`` pushes, in one write."""

    def script(sock: socket.socket) -> None:
        read_until(sock, b"xml:lang")
        sock.sendall(STREAM_HEAD + b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>")
        read_until(sock, b"<starttls")
        sock.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        tls = server_tls_context().wrap_socket(sock, server_side=True)
        read_until(tls, b"xml:lang")
        tls.sendall(
            STREAM_HEAD + b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            b"<mechanism>X-YANDEX-OAUTH</mechanism></mechanisms></stream:features>"
        )
        read_until(tls, b"</auth>")
        tls.sendall(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        read_until(tls, b"xml:lang")
        tls.sendall(
            STREAM_HEAD + b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
            b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>"
        )
        bind = read_until(tls, b"</iq>")
        tls.sendall(
            b"<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>test@ya.ru/r</jid></bind></iq>"
            % _iq_id(bind[bind.find(b"<iq") :]).encode()
        )
        started = read_until(tls, b"</iq>")
        tls.sendall(b"<iq type='result' id='%s'/>" % _iq_id(started[started.find(b"<iq") :]).encode())
        subscription = read_until(tls, b"yandex:push:disk")
        answer = "<iq type='result' id='%s' from='test@ya.ru'/>" % _iq_id(subscription[subscription.find(b"<iq") :])
        burst = "".join(
            push_xml(
                "same_%d" % n,
                '<query xmlns="yandex:push:disk"><diff><op type="new" key="/disk/same-%d" fid="%d" size="1"/></diff></query>'
                % (n, n),
                "ya.ru",
            )
            for n in range(pushes_with_answer)
        )
        tls.sendall((answer + burst).encode())  # the answer and the pushes in one write
        got = b""
        while got.count(b"type=\"result\"") + got.count(b"type='result'") < pushes_with_answer:
            chunk = tls.recv(65536)
            if not chunk:
                break
            got += chunk
        acks.append(got)
        if then_drop:
            tls.shutdown(socket.SHUT_RDWR)
            tls.close()
            return
        wait_for_eof(tls, 10)

    return script


def test_pushes_in_the_same_segment_as_the_subscription_answer_come_after_the_resync(server):
    acks: List[bytes] = []
    scripts = [_session_script(2, True, acks), _session_script(5, False, acks)]
    count = iter(range(2))

    def script(sock: socket.socket) -> None:
        scripts[next(count)](sock)

    with ScriptedServer(script) as scripted:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, cafile=server.cafile,
            reconnect=yaxmpp.Reconnect(**FAST), timeout=5,
        )
        try:
            client.connect()
            items = take(client, 8)
        finally:
            client.close()
    assert not scripted.errors, scripted.errors
    assert paths(items) == ["/disk/same-0", "/disk/same-1", "RESYNC"] + ["/disk/same-%d" % n for n in range(5)]
    resync = items[2]
    assert items[1].received_at <= resync.since <= resync.until <= items[3].received_at
    assert len(acks) == 2 and all(b"same_" in got for got in acks)


# -- callbacks ----------------------------------------------------------------------------------


def test_the_callback_gets_the_resync_in_order_with_the_lifecycle_calls(server, make_client):
    events: List[Any] = []
    lock = threading.Lock()
    arrived = threading.Condition(lock)
    threads = set()

    def record(kind: str) -> Any:
        def callback(item: Any, *rest: Any) -> None:
            with arrived:
                threads.add(threading.current_thread().name)
                if kind == "item":
                    # what README code does with a notification: it sees no change in a resync
                    events.append(("item", "RESYNC" if item.is_resync else item.changes[0].path, len(item.changes)))
                else:
                    events.append((kind,))
                arrived.notify_all()

        return callback

    client = make_client(
        server,
        reconnect=yaxmpp.Reconnect(on_retry=record("retry"), **FAST),
        on_notification=record("item"),
        on_connect=record("connect"),
        on_disconnect=record("disconnect"),
    ).connect()
    first = server.wait_for_session(0)
    first.wait_reply(first.push(change("/disk/a")))
    first.drop()
    second = resubscribed(server, 1)
    second.wait_reply(second.push(change("/disk/b")))
    with arrived:
        assert arrived.wait_for(lambda: ("item", "/disk/b", 1) in events, 10), events
    assert events == [
        ("connect",),
        ("item", "/disk/a", 1),
        ("disconnect",),
        ("retry",),
        ("connect",),
        ("item", "RESYNC", 0),
        ("item", "/disk/b", 1),
    ]
    assert threads == {"yaxmpp-dispatch-%d" % client.number}


# -- no resync where there was no gap ---------------------------------------------------------------


def test_no_resync_after_a_connect_by_the_user(server, make_client):
    """A connect() after close() is the user's own: no resync (only the reconnect loop's)."""
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST)).connect()
    client.close()
    client.connect()
    session = resubscribed(server, 1)
    session.wait_reply(session.push(change("/disk/x")))
    assert paths(take(client, 1)) == ["/disk/x"]


def test_close_while_reconnecting_delivers_what_was_received_and_no_resync(server, make_client):
    retries = Recorder()
    client = make_client(server, reconnect=yaxmpp.Reconnect(initial=30, maximum=30, on_retry=retries)).connect()
    first = server.wait_for_session(0)
    first.wait_reply(first.push(change("/disk/a")))
    first.drop()
    assert retries.wait_for(1)
    client.close()
    assert paths(list(client.notifications())) == ["/disk/a"]


def test_the_reason_is_masked(make_server, make_client, caplog):
    """A server that echoes the token in its stream error text: the reason never shows it."""
    server = make_server()
    client = make_client(server, reconnect=yaxmpp.Reconnect(**FAST)).connect()
    server.wait_for_session(0).send(
        "<stream:error><internal-server-error xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad token %s</text></stream:error></stream:stream>" % TOKEN
    )
    resubscribed(server, 1).push(change("/disk/x"))
    resync, _ = take(client, 2)
    assert isinstance(resync.error, yaxmpp.StreamError)
    assert "internal-server-error" in resync.reason
    assert_no_secret([resync.reason, str(resync.error), repr(resync), caplog.text], TOKEN, login=LOGIN)
