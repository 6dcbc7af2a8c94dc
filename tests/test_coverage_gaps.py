"""What no other test reached: host names (not only 127.0.0.1), a resolver that hangs under
the whole client's connect() deadline, IPv6 loopback, and requests from many threads whose
answers come back interleaved."""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import pytest
import trustme

import yaxmpp
import yaxmpp.dial as dial_module
from yaxmpp.testing import CA_FILE, FakeServer

from .conftest import LOGIN, TOKEN, join_library_threads, library_threads
from .scripted import ScriptedServer
from .test_hostile import (
    BIND_RESULT,
    CLIENT_HEADER_END,
    FEATURES_BIND,
    FEATURES_SASL,
    FEATURES_STARTTLS,
    PROCEED,
    SESSION_RESULT,
    SUCCESS,
    Peer,
    header,
    sent_id,
)


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- host names ----------------------------------------------------------------------------------


def test_localhost_by_name_connects_and_checks_the_certificate_against_that_name(server, make_client):
    client = make_client(server, host="localhost").connect()
    assert client.connected and client.host == "localhost"
    session = server.wait_for_session()
    assert session.subscribed.wait(5) and session.tls
    tls = client._session.connection.transport._tls  # the ssl.SSLObject of the connection
    assert tls is not None and tls.server_hostname == "localhost"  # the name is what TLS checks
    assert session.wait_reply(session.push([{"type": "new", "key": "/disk/by-name"}])).get("type") == "result"
    assert client.get_notification(timeout=5).changes[0].path == "/disk/by-name"


def test_localhost_with_a_certificate_that_names_only_the_address_is_a_tls_error(make_server, make_client, tmp_path):
    # The stand-in's usual certificate names both; this one is valid (same kind of CA) but
    # names only 127.0.0.1, so the client configured with "localhost" must refuse it.
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = make_server(certfile=str(pem), keyfile=str(pem), cafile=str(tmp_path / "ca.pem"))
    with pytest.raises(yaxmpp.TLSError) as info:
        make_client(server, host="localhost", tls_port=None).connect()
    assert "localhost" in str(info.value)
    assert all(b"<auth" not in bytes(s.received) for s in server.sessions)
    assert library_threads() == []


# -- a resolver that hangs, under connect()'s deadline --------------------------------------------


def test_connect_deadline_holds_while_the_resolver_hangs(monkeypatch):
    entered = threading.Event()
    release = threading.Event()

    def hanging_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(30)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(dial_module.socket, "getaddrinfo", hanging_getaddrinfo)
    client = yaxmpp.Client(LOGIN, TOKEN, host="xmpp.test", timeout=30, subscribe=False)
    try:
        started = time.monotonic()
        with pytest.raises(yaxmpp.Timeout) as info:
            client.connect(timeout=1)
        elapsed = time.monotonic() - started
        assert entered.is_set()  # it did wait on the resolver, not fail before asking it
        assert elapsed < 2.5, elapsed  # the deadline (1 s) and a generous margin
        assert info.value.step == dial_module.STEP_RESOLVE
        assert client.state is yaxmpp.State.FAILED and not client.connected
    finally:
        release.set()  # the resolver answers at last: its helper thread ends by itself
        client.close(timeout=2)
    assert join_library_threads() == []


# -- IPv6 ---------------------------------------------------------------------------------------


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_loopback_with_starttls_and_direct_tls(make_server, make_client):
    # The stand-in's certificate names ::1 (an IP address entry; see tools/make_test_certs.py),
    # so the usual verification applies: no check is turned off.
    server = make_server(host="::1")
    client = make_client(server, host="::1").connect()
    assert client.connected and client.port == server.starttls_port
    session = server.wait_for_session()
    assert session.subscribed.wait(5) and not session.direct_tls
    assert client._session.connection.transport.sock.family == socket.AF_INET6
    session.push([{"type": "new", "key": "/disk/v6"}])
    assert client.get_notification(timeout=5).changes[0].path == "/disk/v6"
    client.close()
    direct = make_client(server, host="::1", port=None).connect()
    assert direct.port == server.tls_port
    assert server.wait_for_session(index=1).direct_tls


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_refused_port_is_a_connect_error(make_client, make_server):
    from .conftest import closed_port

    server = make_server(host="::1")
    client = make_client(server, host="::1", port=closed_port("::1"), tls_port=None)
    with pytest.raises(yaxmpp.ConnectError) as info:
        client.connect()
    assert "refused" in str(info.value).lower()
    assert server.sessions == []


# -- many threads, answers interleaved ----------------------------------------------------------

THREADS = 8
ROUNDS = 5
ECHO = "urn:test:echo"
REQUEST = re.compile(rb'<iq[^>]* id="([^"]+)"[^>]*>.*?<n>([^<]*)</n>', re.S)


def interleaving_server(rounds: int, threads: int, answered: threading.Event, errors: List[BaseException]):
    """A script that walks the connection steps, then, ``rounds`` times, reads ``threads``
    requests (one from each blocked caller) and answers them all at once, in a shuffled
    order, in one write: results echo the request's <n>, every third is an error."""
    rng = random.Random(1234)

    def script(sock: socket.socket) -> None:
        peer = Peer(sock, threading.Event())
        try:
            peer.expect(CLIENT_HEADER_END)
            peer.send(header("i1") + FEATURES_STARTTLS)
            peer.expect(b"<starttls")
            peer.expect(b"/>")
            peer.send(PROCEED)
            peer.start_tls()
            peer.expect(CLIENT_HEADER_END)
            peer.send(header("i2") + FEATURES_SASL)
            peer.expect(b"</auth>")
            peer.send(SUCCESS)
            peer.expect(CLIENT_HEADER_END)
            peer.send(header("i3") + FEATURES_BIND)
            peer.send(BIND_RESULT.replace(b"bind_1", sent_id(peer.expect(b"</iq>"))))
            peer.send(SESSION_RESULT.replace(b"session_1", sent_id(peer.expect(b"</iq>"))))
            for _ in range(rounds):
                asked: List[Tuple[bytes, bytes]] = []
                while len(asked) < threads:
                    match = REQUEST.search(peer.expect(b"</iq>"))
                    assert match is not None
                    asked.append((match.group(1), match.group(2)))
                rng.shuffle(asked)
                replies = []
                for iq_id, n in asked:
                    if int(n.split(b"-")[1]) % 3 == 2:
                        replies.append(
                            b"<iq type='error' id='%s'><error type='cancel'>"
                            b"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % iq_id
                        )
                    else:
                        replies.append(
                            b"<iq type='result' id='%s'><query xmlns='%s'><n>%s</n></query></iq>"
                            % (iq_id, ECHO.encode(), n)
                        )
                peer.send(b"".join(replies))
            answered.set()
            peer.expect(b"</stream:stream>")
            peer.send(b"</stream:stream>")
        except BaseException as exc:
            errors.append(exc)
            raise

    return script


def test_requests_from_many_threads_get_their_own_answers_when_answers_interleave():
    answered = threading.Event()
    script_errors: List[BaseException] = []
    with ScriptedServer(interleaving_server(ROUNDS, THREADS, answered, script_errors)) as scripted:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, cafile=CA_FILE,
            timeout=5, subscribe=False, keepalive=None,
        )
        client.connect()
        got: Dict[str, Optional[str]] = {}
        failures: List[BaseException] = []
        start = threading.Barrier(THREADS)

        def worker(number: int) -> None:
            try:
                start.wait(5)
                for index in range(ROUNDS):
                    n = "%d-%d" % (number, index)
                    payload = "<query xmlns='%s'><n>%s</n></query>" % (ECHO, n)
                    if index % 3 == 2:
                        with pytest.raises(yaxmpp.IqError) as info:
                            client.request(payload, timeout=10)
                        assert info.value.condition == "item-not-found"
                        got[n] = None
                    else:
                        reply = client.request(payload, timeout=10)
                        assert reply.get("type") == "result"
                        got[n] = reply.findtext("{%s}query/{%s}n" % (ECHO, ECHO))
            except BaseException as exc:  # reported below
                failures.append(exc)

        workers = [threading.Thread(target=worker, args=(i,), name="interleave-%d" % i) for i in range(THREADS)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(30)
        try:
            assert not any(t.is_alive() for t in workers)
            assert failures == [] and script_errors == []
            assert answered.wait(5)
            expected = {
                "%d-%d" % (t, i): (None if i % 3 == 2 else "%d-%d" % (t, i)) for t in range(THREADS) for i in range(ROUNDS)
            }
            assert got == expected  # each caller got the answer to its own request, none other
            assert client.connected
            assert client._session.connection._waiters == {}  # nothing left waiting
        finally:
            client.close(timeout=2)
    assert library_threads() == []
