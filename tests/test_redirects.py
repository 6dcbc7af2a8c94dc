"""``see-other-host`` redirects, the way an attacker on the path would use them: never acted on
before TLS, and never a change of whom the client trusts (RFC 6120 §4.9.3.19)."""

from __future__ import annotations

import socket
import ssl
from typing import Callable

import pytest
import trustme

import yaxmpp
from yaxmpp.testing import FakeServer

from .conftest import LOGIN, TOKEN
from .scripted import ScriptedServer, read_until, see_other_host, tls_redirector, wait_for_eof

def plaintext_redirector(target: bytes) -> Callable[[socket.socket], None]:
    """Redirects before STARTTLS, as anyone on the network path could."""

    def script(sock: socket.socket) -> None:
        read_until(sock, b"xml:lang")
        sock.sendall(see_other_host(target))
        wait_for_eof(sock, 5)

    return script


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(*names).configure_cert(context)
    return context


def _client_context(ca: trustme.CA, *cafiles: str) -> ssl.SSLContext:
    """Trusts ``ca`` (and the stand-in's test CA, when given)."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    ca.configure_trust(context)
    for cafile in cafiles:
        context.load_verify_locations(cafile)
    return context


def _client(port: int, **options) -> yaxmpp.Client:
    options.setdefault("timeout", 5)
    return yaxmpp.Client(LOGIN, TOKEN, host="127.0.0.1", port=port, tls_port=None, **options)


def test_a_redirect_before_tls_is_never_followed(server):
    with ScriptedServer(plaintext_redirector(b"127.0.0.1:%d" % server.starttls_port)) as attacker:
        client = _client(attacker.port, cafile=server.cafile)
        with pytest.raises(yaxmpp.StreamError) as info:
            client.connect()
        client.close()
    assert info.value.condition == "see-other-host"
    assert info.value.other_host is None
    assert server.sessions == []  # the client never went where the plaintext said


def test_after_a_redirect_the_certificate_must_still_match_the_configured_host(ca, tmp_path):
    """The legitimate server (certificate for 127.0.0.1) redirects to 'localhost', where a
    server holds a certificate that is valid, from the same CA, but only for 'localhost'.
    Checking it against the redirect target would hand that server the token."""
    evil_pem = tmp_path / "evil.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(evil_pem))
    with FakeServer(login=LOGIN, token=TOKEN, certfile=str(evil_pem), keyfile=str(evil_pem), tls_port=None) as evil:
        target = b"localhost:%d" % evil.starttls_port
        with ScriptedServer(tls_redirector(target, _server_context(ca, "127.0.0.1"))) as legit:
            client = _client(legit.port, ssl_context=_client_context(ca))
            with pytest.raises(yaxmpp.TLSError, match="127.0.0.1"):
                client.connect()
            client.close()
        for session in evil.sessions:
            assert not session.authenticated
            assert b"<auth" not in bytes(session.received)


def test_a_redirect_after_tls_to_a_host_with_a_matching_certificate_is_followed(ca):
    context = _server_context(ca, "127.0.0.1")
    with FakeServer(login=LOGIN, token=TOKEN, tls_port=None) as new:
        # The stand-in's certificate names 127.0.0.1 and localhost: it matches the configured host.
        target = b"localhost:%d" % new.starttls_port
        with ScriptedServer(tls_redirector(target, context)) as old:
            client = _client(old.port, ssl_context=_client_context(ca, new.cafile))
            try:
                client.connect()
                assert client.connected and client.port == new.starttls_port
                assert new.wait_for_session().subscribed.wait(5)
            finally:
                client.close()


def test_a_portless_redirect_keeps_the_configured_ports(ca):
    context = _server_context(ca, "127.0.0.1")
    with ScriptedServer(tls_redirector(b"127.0.0.1", context)) as loop:
        client = _client(loop.port, ssl_context=_client_context(ca), max_redirects=2)
        with pytest.raises(yaxmpp.StreamError) as info:
            client.connect()
        client.close()
        assert info.value.condition == "see-other-host"
        assert len(loop.connections) == 3  # the first try and two redirects, all to the same port


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_a_redirect_to_a_bracketed_ipv6_address(ca):
    context = _server_context(ca, "127.0.0.1")
    with FakeServer(login=LOGIN, token=TOKEN, host="::1", tls_port=None) as new:
        with ScriptedServer(tls_redirector(b"[::1]:%d" % new.starttls_port, context)) as old:
            client = _client(old.port, ssl_context=_client_context(ca, new.cafile))
            try:
                client.connect()
                assert client.connected and client.port == new.starttls_port
            finally:
                client.close()


@pytest.mark.parametrize(
    "target",
    [b"", b"host:0", b"host:99999", b"host:12ab", b"a..b:5222", b"::1:5222", b"x" * 64 + b".example", b"a b"],
    ids=["empty", "zero-port", "big-port", "garbage-port", "empty-label", "bare-ipv6", "long-label", "space"],
)
def test_a_bad_redirect_target_is_a_typed_error(ca, target):
    context = _server_context(ca, "127.0.0.1")
    with ScriptedServer(tls_redirector(target, context)) as old:
        client = _client(old.port, ssl_context=_client_context(ca))
        with pytest.raises(yaxmpp.Error) as info:
            client.connect()
        client.close()
    assert isinstance(info.value, (yaxmpp.ProtocolError, yaxmpp.StreamError))
    assert not isinstance(info.value, ValueError)
