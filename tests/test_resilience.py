"""Staying connected: reconnect policy, keepalive, stream errors, redirects, fault injection,
concurrency."""

from __future__ import annotations

import random
import socket
import threading
import time
from typing import Callable, List, Tuple, Type

import pytest

import yaxmpp
from yaxmpp.policy import Reconnect
from yaxmpp.testing.server import CA_FILE

from .conftest import LOGIN, TOKEN, LogEvent, Recorder, library_threads
from .proxy import CutProxy
from .scripted import ScriptedServer, read_until, tls_redirector, wait_for_eof

FAST = dict(initial=0.02, maximum=0.1)


class Longest(random.Random):
    """A 'random' source whose full-jitter draw is always the longest wait; ``drawn`` is set
    once the reconnect loop has chosen a delay (it waits that delay next)."""

    def __init__(self) -> None:
        super().__init__()
        self.drawn = threading.Event()

    def uniform(self, a: float, b: float) -> float:
        self.drawn.set()
        return b


def reconnect_threads() -> List[threading.Thread]:
    return [t for t in library_threads() if t.name.startswith("yaxmpp-reconnect")]


# -- the policy on its own --------------------------------------------------------------------


def test_backoff_is_capped_exponential_with_full_jitter():
    policy = Reconnect(initial=1, maximum=30, multiplier=2, rng=random.Random(7))
    assert [policy.cap(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.cap(10_000) == 30  # no overflow
    draws = [policy.delay(4) for _ in range(2000)]
    assert 0 <= min(draws) < 1 and 15 < max(draws) <= 16  # spread over the whole [0, cap]


def test_policy_gives_up_on_auth_errors_and_after_max_attempts():
    policy = Reconnect(max_attempts=3)
    assert policy.gives_up(0, yaxmpp.AuthError("not-authorized"))
    assert policy.gives_up(0, yaxmpp.StreamError("conflict"))
    assert not policy.gives_up(0, yaxmpp.StreamError("system-shutdown"))
    assert not policy.gives_up(2, yaxmpp.ConnectionLost("x"))
    assert policy.gives_up(3, yaxmpp.ConnectionLost("x"))
    assert not Reconnect().gives_up(10**6, yaxmpp.ConnectionLost("x"))
    with pytest.raises(AttributeError):
        policy.initial = 5  # type: ignore[misc]
    with pytest.raises(ValueError):
        Reconnect(initial=5, maximum=1)


# -- reconnecting -----------------------------------------------------------------------------


def test_reconnects_resubscribes_and_notifications_carry_on(server, make_client):
    events = Recorder()
    client = make_client(
        server,
        reconnect=Reconnect(**FAST),
        on_connect=lambda c: events("connect"),
        on_disconnect=events,
    ).connect()
    first = server.wait_for_session()
    first.wait_reply(first.push([{"type": "new", "key": "/disk/before"}]))
    first.drop()
    second = server.wait_for_session(index=1, timeout=10)
    assert second.subscribed.wait(5), "not subscribed again after the reconnect"
    second.push([{"type": "new", "key": "/disk/after"}])
    got = ["RESYNC" if n.is_resync else n.changes[0].path for n in client.notifications(timeout=3)]
    assert got == ["/disk/before", "RESYNC", "/disk/after"]
    assert client.connected
    assert events.wait_for(3)
    calls = events.calls
    assert len(calls) == 3 and calls[0] == "connect" and isinstance(calls[1], yaxmpp.ConnectionLost) and calls[2] == "connect"
    threads = sorted(t.name for t in library_threads())
    assert len(threads) == 3  # reader, reconnect loop, callbacks: none added per attempt
    client.close()
    assert events.wait_for(4) and len(events.calls) == 4 and events.calls[3] is None


def test_auth_error_is_never_retried(server, make_client):
    client = make_client(server, reconnect=Reconnect(**FAST)).connect()
    server.accounts[LOGIN] = "the-token-was-revoked"
    server.wait_for_session().drop()
    with pytest.raises(yaxmpp.AuthError):
        for _ in client.notifications():
            pass
    # The client has ended (wait() raises what ended it) and its reconnect loop has returned:
    # any retry would have had to come before this point.
    with pytest.raises(yaxmpp.AuthError):
        client.wait(5)
    for thread in reconnect_threads():
        thread.join(5)
    assert reconnect_threads() == []
    assert len(server.sessions) == 2


def test_attempts_reset_only_after_a_stable_session(server, make_client):
    # Every session is dropped right after it subscribes: the sessions come up, but never
    # stay up, so the attempt count keeps growing until max_attempts ends it.
    stop = threading.Event()

    def dropper():
        index = 0
        while not stop.is_set():
            try:
                session = server.wait_for_session(index=index, timeout=0.5)
            except TimeoutError:
                continue
            if session.subscribed.wait(5):
                session.drop()
            index += 1

    thread = threading.Thread(target=dropper)
    thread.start()
    try:
        client = make_client(server, reconnect=Reconnect(max_attempts=3, stable_after=60, **FAST))
        client.connect()
        with pytest.raises(yaxmpp.ConnectionLost):
            while True:  # one resync per reconnect, then the end
                assert client.get_notification(timeout=10).is_resync
        assert len(server.sessions) == 4  # the first connect and three reconnects
    finally:
        stop.set()
        thread.join(5)


def test_close_during_a_backoff_wait_returns_at_once(server, make_client):
    rng = Longest()
    client = make_client(server, reconnect=Reconnect(initial=30, maximum=30, rng=rng)).connect()
    server.wait_for_session().drop()
    assert rng.drawn.wait(5)  # the loop chose its 30 s delay and waits it now
    assert client.state is yaxmpp.State.RECONNECTING
    started = time.monotonic()
    client.close(timeout=5)
    assert time.monotonic() - started < 3
    assert library_threads() == []
    assert len(server.sessions) == 1


def test_without_a_policy_nothing_reconnects(server, make_client):
    client = make_client(server).connect()
    server.wait_for_session().drop()
    with pytest.raises(yaxmpp.ConnectionLost):
        client.get_notification(timeout=5)
    with pytest.raises(yaxmpp.ConnectionLost):
        client.wait(5)  # the client ended with the loss, and no loop was ever started to retry
    assert reconnect_threads() == []
    assert len(server.sessions) == 1


# -- keepalive ----------------------------------------------------------------------------------


def test_silence_makes_the_client_ping_the_server(server, make_client):
    with LogEvent("yaxmpp.xml", lambda m: m.startswith("SEND <iq") and "urn:xmpp:ping" in m) as pinged:
        make_client(server, keepalive=0.2, keepalive_timeout=2).connect()
        session = server.wait_for_session()
        assert pinged.wait(5)
    # The client's ping is out; the answer to a ping the server sends now comes after it on
    # the same stream, so once that answer is in, the server has recorded the client's ping.
    session.wait_reply(session.ping())
    ping = [s for s in session.stanzas if s.find("{urn:xmpp:ping}ping") is not None][0]
    assert ping.get("type") == "get" and ping.get("to") == "ya.ru"


def test_a_dead_peer_is_detected_and_reported(server, make_client):
    client = make_client(server, keepalive=0.2, keepalive_timeout=0.3).connect()
    server.wait_for_session().mute()  # the TCP connection stays, nothing comes back
    with pytest.raises(yaxmpp.ConnectionLost, match="keepalive"):
        client.get_notification(timeout=10)


def test_a_dead_peer_triggers_a_reconnect(server, make_client):
    client = make_client(server, keepalive=0.2, keepalive_timeout=0.3, reconnect=Reconnect(**FAST)).connect()
    server.wait_for_session().mute()
    second = server.wait_for_session(index=1, timeout=10)
    assert second.subscribed.wait(5)
    second.push([{"type": "new", "key": "/disk/alive"}])
    assert client.get_notification(timeout=5).is_resync
    assert client.get_notification(timeout=5).changes[0].path == "/disk/alive"


def test_any_received_byte_refreshes_liveness(server, make_client):
    client = make_client(server, keepalive=0.3, keepalive_timeout=0.2).connect()
    session = server.wait_for_session()
    for _ in range(10):  # 1 s of steady traffic, each gap shorter than the keepalive
        session.send(" ")
        time.sleep(0.1)  # pacing the traffic (what the test is about), not waiting for a state
    session.wait_reply(session.ping())  # a ping the client sent before its answer is recorded now
    assert not any(s.find("{urn:xmpp:ping}ping") is not None for s in session.stanzas)
    assert client.connected


# -- stream errors and redirects ----------------------------------------------------------------


def test_stream_error_after_the_session_reaches_the_iterator_and_on_disconnect(server, make_client):
    seen = Recorder()
    client = make_client(server, on_disconnect=seen).connect()
    server.wait_for_session().send(
        "<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>maintenance</text></stream:error></stream:stream>"
    )
    with pytest.raises(yaxmpp.StreamError) as info:
        client.get_notification(timeout=5)
    assert (info.value.condition, info.value.text) == ("system-shutdown", "maintenance")
    assert seen.wait_for(1) and len(seen.calls) == 1 and seen.calls[0] is info.value
    assert server.wait_for_session().client_closed.wait(5)


def test_fatal_stream_error_is_not_retried(server, make_client):
    client = make_client(server, reconnect=Reconnect(**FAST)).connect()
    server.wait_for_session().send(
        "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
    )
    with pytest.raises(yaxmpp.StreamError, match="conflict"):
        client.get_notification(timeout=5)
    with pytest.raises(yaxmpp.StreamError, match="conflict"):
        client.wait(5)  # the client has ended: its reconnect loop gave up
    for thread in reconnect_threads():
        thread.join(5)
    assert reconnect_threads() == []
    assert len(server.sessions) == 1


def redirecting_server(target: str) -> Callable[[socket.socket], None]:
    """Redirects to ``target`` once the stream is TLS (a redirect before TLS is not followed)."""
    return tls_redirector(target.encode())


def test_see_other_host_before_tls_is_not_followed(server):
    def script(sock: socket.socket) -> None:
        read_until(sock, b"xml:lang")
        sock.sendall(
            b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams' id='1' from='ya.ru' version='1.0'>"
            b"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>127.0.0.1:%d</see-other-host>"
            b"</stream:error></stream:stream>" % server.starttls_port
        )
        wait_for_eof(sock, 5)

    with ScriptedServer(script) as redirector:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=redirector.port, tls_port=None, cafile=server.cafile, timeout=5
        )
        with pytest.raises(yaxmpp.StreamError) as info:
            client.connect()
        assert info.value.condition == "see-other-host" and info.value.other_host is None
        assert "before TLS" in str(info.value)
        assert len(redirector.connections) == 1
    assert server.sessions == []
    assert library_threads() == []


def test_see_other_host_during_connect_is_followed(server):
    with ScriptedServer(redirecting_server("127.0.0.1:%d" % server.starttls_port)) as redirector:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=redirector.port, tls_port=None, cafile=server.cafile, timeout=5
        )
        try:
            client.connect()
            assert client.connected and client.port == server.starttls_port
            assert server.wait_for_session().subscribed.wait(5)  # set just after its answer is sent
        finally:
            client.close()


def test_redirects_are_bounded():
    holder = {}
    with ScriptedServer(lambda sock: redirecting_server("127.0.0.1:%d" % holder["port"])(sock)) as loop:
        holder["port"] = loop.port
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=loop.port, tls_port=None, cafile=CA_FILE, timeout=5, max_redirects=2
        )
        with pytest.raises(yaxmpp.StreamError) as info:
            client.connect()
        assert info.value.condition == "see-other-host"
        assert len(loop.connections) == 3  # the first try and two redirects
    assert library_threads() == []


# -- fault injection ------------------------------------------------------------------------------


def reference_chunks(server) -> List[int]:
    """The server's writes in one whole session up to a push, as seen through the proxy."""
    with CutProxy(server.starttls_port) as proxy:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=proxy.port, tls_port=None, cafile=server.cafile, timeout=5
        )
        client.connect()
        session = server.sessions[-1]
        session.wait_reply(session.push([{"type": "new", "key": "/disk/ref"}]))
        chunks = list(proxy.chunks)  # the last one is the push: the client acknowledged it
        client.close()
        return chunks


#: What the stand-in answers to <starttls/>: the last plaintext bytes of a session.
PROCEED = b'<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'


def expected_cut_errors(chunks: List[int], cut: int) -> Tuple[Type[yaxmpp.Error], ...]:
    """The error classes a cut of the server's bytes at ``cut`` may give during connect():
    before TLS the stream just ends (ConnectionLost); inside the server's handshake flight,
    the handshake fails (TLSError); after it, a cut between TLS records reads as the
    connection's end (ConnectionLost) and one inside a record as a truncated TLS stream
    (TLSError), and where the records fall depends on the reads."""
    proceed = chunks.index(len(PROCEED))  # the plaintext ends with <proceed/>
    plain_end = sum(chunks[: proceed + 1])
    handshake_end = plain_end + chunks[proceed + 1]
    if cut < plain_end:
        return (yaxmpp.ConnectionLost,)
    if cut < handshake_end:
        return (yaxmpp.TLSError,)
    return (yaxmpp.ConnectionLost, yaxmpp.TLSError)


def test_cuts_at_every_step_give_typed_errors_or_a_clean_reconnect(server):
    chunks = reference_chunks(server)
    assert len(chunks) >= 8
    boundaries = []
    total = 0
    for size in chunks:
        if size > 1:
            boundaries.append(total + size // 2)  # in the middle of a step (or stanza)
        total += size
        boundaries.append(total)  # right after a step
    outcomes = {"connect-error": 0, "reconnected": 0}
    for cut in boundaries:
        first = len(server.sessions)  # the index of this cut's first session on the server
        with CutProxy(server.starttls_port, cut_down=cut) as proxy:
            client = yaxmpp.Client(
                LOGIN,
                TOKEN,
                host="127.0.0.1",
                port=proxy.port,
                tls_port=None,
                cafile=server.cafile,
                timeout=5,
                reconnect=Reconnect(**FAST),
            )
            try:
                try:
                    client.connect()
                except yaxmpp.Error as exc:
                    expected = expected_cut_errors(chunks, cut)
                    assert type(exc) in expected, (cut, exc, expected)
                    outcomes["connect-error"] += 1
                    assert library_threads() == [], cut
                    continue
                # The cut comes after the session opened (perhaps only when the push below
                # crosses it): the client must come back by itself, subscribed, and deliver.
                path = "/disk/cut-%d" % cut
                for _ in range(2):
                    if proxy.cut_done.is_set():
                        session = server.wait_for_session(index=first + 1, timeout=10)  # the reconnect
                    else:
                        session = server.sessions[first]
                    assert session.subscribed.wait(5), cut
                    session.push([{"type": "new", "key": path}])
                    if path in [n.changes[0].path for n in client.notifications(timeout=1) if not n.is_resync]:
                        break
                else:
                    raise AssertionError("push not delivered after cut %d" % cut)
                outcomes["reconnected"] += 1
            finally:
                client.close(timeout=2)
    assert outcomes["connect-error"] >= 5 and outcomes["reconnected"] >= 1, outcomes


def test_cut_after_the_session_without_policy_reaches_the_consumer(server):
    chunks = reference_chunks(server)
    cut = sum(chunks[:-1]) + chunks[-1] // 2  # in the middle of the push
    with CutProxy(server.starttls_port, cut_down=cut) as proxy:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=proxy.port, tls_port=None, cafile=server.cafile, timeout=5
        )
        client.connect()
        session = server.sessions[-1]
        session.push([{"type": "new", "key": "/disk/cut"}])
        # An established connection whose bytes stop, even inside a TLS record, is lost.
        with pytest.raises(yaxmpp.ConnectionLost):
            client.get_notification(timeout=5)
        client.close()


@pytest.mark.parametrize(
    "cut_up,error",
    [
        (10, yaxmpp.ConnectionLost),  # inside the client's stream header: the server hangs up
        (200, yaxmpp.ConnectionLost),
        (400, yaxmpp.TLSError),  # inside the ClientHello: the handshake fails
        (700, yaxmpp.TLSError),
    ],
)
def test_cuts_in_what_the_client_sends_give_typed_errors(server, cut_up, error):
    with CutProxy(server.starttls_port, cut_up=cut_up) as proxy:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=proxy.port, tls_port=None, cafile=server.cafile, timeout=3
        )
        with pytest.raises(error) as info:
            client.connect()
        assert type(info.value) is error
    assert library_threads() == []


# -- concurrency ------------------------------------------------------------------------------------


def test_requests_from_many_threads_never_interleave(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    errors: List[BaseException] = []

    def worker():
        try:
            for _ in range(100):
                reply = client.request('<ping xmlns="urn:xmpp:ping"/>', to="ya.ru", timeout=10)
                assert reply.get("type") == "result"
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    pings = [s for s in session.stanzas if s.find("{urn:xmpp:ping}ping") is not None]
    assert len(pings) == 800 and len({p.get("id") for p in pings}) == 800
    assert session.error is None and not session.ended.is_set()


def test_request_error_and_timeout(server, make_client):
    client = make_client(server).connect()
    with pytest.raises(yaxmpp.IqError) as info:
        client.request('<query xmlns="jabber:iq:last"/>', to="ya.ru")
    assert info.value.condition == "service-unavailable"
    server.wait_for_session().mute()
    with pytest.raises(yaxmpp.Timeout):
        client.request('<ping xmlns="urn:xmpp:ping"/>', timeout=0.3)


def test_close_from_many_threads_at_once(server, make_client):
    client = make_client(server, reconnect=Reconnect(**FAST), on_notification=lambda n: None).connect()
    threads = [threading.Thread(target=client.close, kwargs={"timeout": 3}) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads)
    assert library_threads() == []
    assert server.wait_for_session().client_closed.wait(5)


def test_without_keepalive_the_reader_sleeps_until_data_comes(server, make_client):
    import struct

    client = make_client(server, keepalive=None, timeout=7).connect()
    sock = client._session.connection.transport.sock
    assert client._session.connection.transport.timeout is None  # no periodic wake-up
    seconds, micros = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))
    assert seconds == 7  # but a send still cannot block for ever
    session = server.wait_for_session()
    assert session.wait_reply(session.ping()).get("type") == "result"
