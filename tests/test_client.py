"""The blocking client over loopback with real TLS, against the stand-in server."""

from __future__ import annotations

import base64
import logging
import re
import socket
import ssl
import threading
import time
import warnings
from xml.etree.ElementTree import Element

import pytest
import trustme

import yaxmpp
from yaxmpp.protocol import ns
from yaxmpp.testing import FakeServer

from .conftest import LOGIN, TOKEN, closed_port, join_library_threads, library_threads
from .scripted import ScriptedServer, read_until, server_tls_context, wait_for_eof

PAYLOAD = base64.b64encode(("%s\0%s" % (LOGIN, TOKEN)).encode()).decode()
HEADER = (
    b'<?xml version="1.0"?>\n<stream:stream xmlns:stream="http://etherx.jabber.org/streams" version="1.0" '
    b'xmlns="jabber:client" to="ya.ru" xml:lang="en" xmlns:xml="http://www.w3.org/XML/1998/namespace">'
)


def child_tags(stanza: Element) -> list:
    return [child.tag for child in stanza]


# -- the whole sequence ---------------------------------------------------------------------


def test_connect_runs_every_step_in_order(server, make_client):
    client = make_client(server)
    assert client.connect() is client
    assert client.connected
    assert client.jid == "test@ya.ru/YaDisk-client"
    session = server.wait_for_session()
    assert client.stream_id == session.stream_id
    assert client.port == server.starttls_port
    assert client.tls_version in ("TLSv1.2", "TLSv1.3")

    sent = bytes(session.received)
    # Step 1, 3 and 6: the stream header, byte for byte, three times.
    assert sent.count(HEADER) == 3
    assert sent.startswith(HEADER + b'<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>' + HEADER)
    # Step 5: X-YANDEX-OAUTH with base64(login NUL token).
    auth = b'<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="X-YANDEX-OAUTH">%s</auth>' % PAYLOAD.encode()
    assert auth in sent
    # Steps 7 and 8: bind with the resource, then the session, in that order.
    # Their ids are random (another account cannot answer for the server), unlike the seed's.
    bind = re.search(
        rb'<iq type="set" id="bind_[0-9a-f]{16}"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">'
        rb"<resource>YaDisk-client</resource></bind></iq>",
        sent,
    )
    session_iq = re.search(
        rb'<iq type="set" id="session_[0-9a-f]{16}"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>', sent
    )
    assert bind is not None and session_iq is not None
    assert sent.index(auth) < bind.start() < session_iq.start()
    # The streams after TLS and after <success/> each got their own header.
    assert sent.index(HEADER, sent.index(auth)) < bind.start()


def test_version_query_is_answered_with_name_version_and_os(server, make_client):
    make_client(server, client_name="DiskWatcher", client_version="2.5", client_os="Linux").connect()
    reply = server.wait_for_session().wait_reply("ask_version")
    assert reply.get("type") == "result"
    assert reply.get("to") == "ya.ru"
    query = reply.find("{jabber:iq:version}query")
    assert query is not None
    assert query.findtext("{jabber:iq:version}name") == "DiskWatcher"
    assert query.findtext("{jabber:iq:version}version") == "2.5"
    assert query.findtext("{jabber:iq:version}os") == "Linux"


def test_version_reply_omits_os_by_default(server, make_client):
    make_client(server).connect()
    reply = server.wait_for_session().wait_reply("ask_version")
    assert reply.find("{jabber:iq:version}query/{jabber:iq:version}os") is None
    assert reply.findtext("{jabber:iq:version}query/{jabber:iq:version}version") == yaxmpp.__version__


def test_server_pings_are_answered_by_the_reader_thread(server, make_client):
    make_client(server).connect()
    session = server.wait_for_session()
    for _ in range(3):
        iq_id = session.ping()
        reply = session.wait_reply(iq_id)
        assert reply.get("type") == "result"
        assert reply.get("to") == "ya.ru"
        assert len(reply) == 0
    assert b'<iq type="result" to="ya.ru" id="ping_1"/>' in bytes(session.received)


def test_periodic_pings_after_silence_are_answered(make_server, make_client):
    server = make_server(ping_interval=0.2)
    make_client(server).connect()
    session = server.wait_for_session()
    assert session.wait_reply("ping_1").get("type") == "result"
    assert session.wait_reply("ping_2").get("type") == "result"


def test_other_requests_get_service_unavailable(server, make_client):
    make_client(server).connect()
    session = server.wait_for_session()
    session.send('<iq from="ya.ru" type="get" id="q1"><query xmlns="jabber:iq:last"/></iq>')
    session.send('<iq from="ya.ru" type="set" id="q2"><x xmlns="urn:example"/></iq>')
    for iq_id in ("q1", "q2"):
        reply = session.wait_reply(iq_id)
        assert reply.get("type") == "error"
        assert reply.find("{jabber:client}error/{%s}service-unavailable" % ns.STANZAS) is not None


def test_resource_none_takes_the_resource_the_server_assigns(server, make_client):
    client = make_client(server, resource=None).connect()
    sent = bytes(server.wait_for_session().received)
    assert b'<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>' in sent
    assert client.jid == "test@ya.ru/yaxmpp-1"


def test_context_manager_connects_and_closes(server):
    with yaxmpp.Client(LOGIN, TOKEN, timeout=5, **server.client_options()) as client:
        assert client.connected
        assert [t.name for t in library_threads()] == ["yaxmpp-reader-%d" % client._session.connection.number]
    assert not client.connected
    assert library_threads() == []
    assert server.wait_for_session().client_closed.wait(5)


# -- how the server writes ------------------------------------------------------------------


def test_server_writes_split_into_single_bytes(make_server, make_client):
    server = make_server(write_mode="bytewise")
    client = make_client(server).connect()
    assert client.jid == "test@ya.ru/YaDisk-client"
    session = server.wait_for_session()
    assert session.wait_reply("ask_version").get("type") == "result"
    assert session.wait_reply(session.ping()).get("type") == "result"


def test_all_server_writes_in_one_segment(make_server, make_client):
    # The session result, the version query and a ping arrive in the same TLS record.
    server = make_server(write_mode="coalesced")
    client = make_client(server).connect()
    assert client.connected
    session = server.wait_for_session()
    assert session.wait_reply("ask_version").get("type") == "result"
    assert session.wait_reply("ping_0").get("type") == "result"


def test_ping_before_bind_finishes_is_answered(make_server, make_client):
    server = make_server(ping_before_bind=True)
    make_client(server).connect()
    reply = server.wait_for_session().wait_reply("ping_early")
    assert reply.get("type") == "result"
    sent = bytes(server.wait_for_session().received)
    assert sent.index(b'id="ping_early"') < sent.index(b'id="session_')


# -- ports ----------------------------------------------------------------------------------


def test_falls_back_to_direct_tls_port_when_starttls_port_refuses(server, make_client):
    client = make_client(server, port=closed_port()).connect()
    assert client.connected
    assert client.port == server.tls_port
    session = server.wait_for_session()
    assert session.direct_tls
    assert b"<starttls" not in bytes(session.received)
    assert bytes(session.received).startswith(HEADER)


def test_port_none_means_direct_tls_only(server, make_client):
    client = make_client(server, port=None).connect()
    assert client.port == server.tls_port
    assert server.wait_for_session().direct_tls


def test_tls_port_none_disables_the_fallback(server, make_client):
    client = make_client(server, port=closed_port(), tls_port=None)
    with pytest.raises(yaxmpp.ConnectError):
        client.connect()
    assert server.sessions == []


def test_both_ports_refused_is_a_connect_error(server, make_client):
    client = make_client(server, port=closed_port(), tls_port=closed_port())
    with pytest.raises(yaxmpp.ConnectError) as info:
        client.connect()
    assert "refused" in str(info.value).lower()
    assert library_threads() == []


# -- failures -------------------------------------------------------------------------------


def test_wrong_token_is_an_auth_error_and_the_stream_is_closed_cleanly(server, make_client):
    client = make_client(server, token="wrong-token-wrong-token")
    with pytest.raises(yaxmpp.AuthError) as info:
        client.connect()
    assert info.value.condition == "not-authorized"
    assert not client.connected
    session = server.wait_for_session()
    assert session.client_closed.wait(5), "the client did not send </stream:stream>"
    assert session.wait_ended()
    assert library_threads() == []


def test_no_starttls_offered_fails_and_never_sends_the_token(make_server, make_client):
    server = make_server(offer_starttls=False)
    client = make_client(server, tls_port=None)
    with pytest.raises(yaxmpp.TLSError) as info:
        client.connect()
    assert "STARTTLS" in str(info.value)
    session = server.wait_for_session()
    session.wait_ended()
    sent = bytes(session.received)
    assert sent.startswith(HEADER)
    assert b"<auth" not in sent
    assert TOKEN.encode() not in sent and PAYLOAD.encode() not in sent


def test_unknown_ca_is_a_tls_error(server, make_client):
    # certifi's bundle does not know the stand-in's test CA.
    client = make_client(server, cafile=None)
    with pytest.raises(yaxmpp.TLSError) as info:
        client.connect()
    assert "certificate" in str(info.value).lower()
    assert b"<auth" not in bytes(server.wait_for_session().received)
    assert library_threads() == []


def test_certificate_for_another_name_is_a_tls_error(make_server, make_client, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("example.org")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = make_server(certfile=str(tmp_path / "cert.pem"), keyfile=str(tmp_path / "key.pem"))
    client = make_client(server, cafile=str(tmp_path / "ca.pem"))
    with pytest.raises(yaxmpp.TLSError):
        client.connect()


def test_tls_below_1_2_is_refused(make_client, tmp_path):
    def old_tls_server(sock: socket.socket) -> None:
        context = server_tls_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        try:
            context.wrap_socket(sock, server_side=True)
        except ssl.SSLError:
            pass

    with ScriptedServer(old_tls_server) as scripted:
        fake = FakeServer()
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=None, tls_port=scripted.port, cafile=fake.cafile, timeout=5
        )
        with pytest.raises(yaxmpp.TLSError):
            client.connect()


def test_silent_server_gives_timeout_naming_the_step(make_client):
    with ScriptedServer(lambda sock: wait_for_eof(sock)) as scripted:
        client = yaxmpp.Client(LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(yaxmpp.Timeout) as info:
            client.connect()
        assert time.monotonic() - started < 5
        assert isinstance(info.value, TimeoutError)
        assert "stream header" in str(info.value)
        assert library_threads() == []


def test_server_cut_during_negotiation_is_a_typed_error():
    def cut_after_header(sock: socket.socket) -> None:
        read_until(sock, b"xml:lang")
        sock.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' ")
        sock.close()

    with ScriptedServer(cut_after_header) as scripted:
        client = yaxmpp.Client(LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, timeout=5)
        with pytest.raises(yaxmpp.ConnectionLost):
            client.connect()
    assert library_threads() == []


def test_plain_data_after_proceed_is_a_tls_error_not_xml():
    def garbage_after_proceed(sock: socket.socket) -> None:
        read_until(sock, b"xml:lang")
        sock.sendall(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1' "
            b"version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
            b"</stream:features>"
        )
        read_until(sock, b"<starttls")
        sock.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='x'/>")
        wait_for_eof(sock)

    with ScriptedServer(garbage_after_proceed) as scripted:
        client = yaxmpp.Client(
            LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, cafile=FakeServer().cafile, timeout=5
        )
        with pytest.raises(yaxmpp.TLSError):
            client.connect()


# -- closing --------------------------------------------------------------------------------


def test_close_sends_stream_close_and_joins_the_reader(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    assert library_threads()
    client.close()
    assert session.client_closed.wait(5)
    assert bytes(session.received).endswith(b"</stream:stream>")
    assert library_threads() == []
    assert not client.connected
    client.close()  # idempotent
    client.close(timeout=0)


def test_close_is_bounded_when_the_server_never_answers(make_server, make_client):
    server = make_server(answer_close=False)
    client = make_client(server).connect()
    started = time.monotonic()
    client.close(timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 4, elapsed  # the bound is the timeout plus a short join; nothing hangs
    assert library_threads() == []
    assert server.wait_for_session().client_closed.wait(5)


def test_server_closes_first_and_the_client_answers_by_itself(server, make_client):
    client = make_client(server).connect()
    session = server.wait_for_session()
    session.close_stream()
    assert session.client_closed.wait(5), "the client did not answer with </stream:stream>"
    with pytest.raises(yaxmpp.ConnectionLost):
        client.wait(5)  # without a reconnect policy the server's close ends the client
    assert not client.connected
    assert join_library_threads() == []  # its threads end by themselves, before close()
    started = time.monotonic()
    client.close()
    assert time.monotonic() - started < 1


def test_server_drops_the_connection(server, make_client):
    client = make_client(server).connect()
    server.wait_for_session().drop()
    with pytest.raises(yaxmpp.ConnectionLost):
        client.wait(5)
    assert not client.connected
    client.close()
    assert library_threads() == []


def test_close_from_another_thread_stops_connect():
    accepted = threading.Event()

    def silent(sock: socket.socket) -> None:
        read_until(sock, b'namespace">')  # the client's whole stream header: it now waits for ours
        accepted.set()
        wait_for_eof(sock)

    with ScriptedServer(silent) as scripted:
        client = yaxmpp.Client(LOGIN, TOKEN, host="127.0.0.1", port=scripted.port, tls_port=None, timeout=30)
        closer = threading.Thread(target=lambda: (accepted.wait(5), client.close()))
        closer.start()
        started = time.monotonic()
        with pytest.raises(yaxmpp.ClientClosed):
            client.connect()
        assert time.monotonic() - started < 10
        closer.join(5)
        assert not closer.is_alive()
    assert library_threads() == []


def test_connect_after_close_opens_a_new_session(server, make_client):
    client = make_client(server).connect()
    first = client.stream_id
    client.close()
    client.connect()
    assert client.connected and client.stream_id != first
    assert len(server.sessions) == 2


# -- secrets --------------------------------------------------------------------------------


def test_token_never_in_logs_reprs_or_errors(server, make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    client = make_client(server).connect()
    session = server.wait_for_session()
    session.wait_reply(session.ping())
    text = repr(client) + str(client.__dict__) + repr(client.options.mechanism)
    client.close()
    bad = make_client(server, token="another-secret-token-value")
    with pytest.raises(yaxmpp.AuthError) as info:
        bad.connect()
    text += str(info.value) + repr(info.value)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "SEND" in logged and "RECV" in logged and "X-YANDEX-OAUTH" in logged
    for secret in (TOKEN, PAYLOAD, "another-secret-token-value"):
        assert secret not in logged
        assert secret not in text


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError):
        yaxmpp.Client(LOGIN, TOKEN, port=None, tls_port=None)
    with pytest.raises(ValueError):
        yaxmpp.Client(LOGIN, TOKEN, timeout=0)
    with pytest.raises(ValueError):
        yaxmpp.Client("", TOKEN)
    with pytest.raises(ValueError):
        yaxmpp.Client(LOGIN, "")
    with pytest.raises(ValueError):
        yaxmpp.Client(LOGIN, TOKEN, resource="bad\nresource")
