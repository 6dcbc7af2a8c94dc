"""The client against hostile servers, over real loopback sockets.

Every hostile input must give a typed :class:`yaxmpp.Error` within its timeout: no hang, no
unbounded memory, no thread left behind, and the token in no log line and no message.

Two places are attacked:

* during negotiation: a :class:`ScriptedServer` speaks the connection steps itself (plain XML
  on the STARTTLS port, then real TLS with the stand-in's certificate) and injects the bad
  bytes at one step; ``connect()`` must raise the typed error;
* after the session opened: the stand-in :class:`FakeServer` writes the bad bytes into the
  established stream; the error that ended the connection must come out of
  ``get_notification()``.

Plain data right after ``<proceed/>`` is also in test_client.py
(``test_plain_data_after_proceed_is_a_tls_error_not_xml``); here it is repeated only with the
token, log and thread checks.
"""

from __future__ import annotations

import base64
import logging
import re
import socket
import threading
import time
import tracemalloc
from typing import Any, Callable, Dict, Optional, Tuple, Type, Union

import pytest

import yaxmpp
from yaxmpp.testing import CA_FILE
from yaxmpp.transport import Transport

from .conftest import LOGIN, TOKEN, library_threads
from .scripted import ScriptedServer, server_tls_context, wait_for_eof
from .secrets_check import assert_no_secret

PAYLOAD = base64.b64encode(("%s\0%s" % (LOGIN, TOKEN)).encode()).decode()
SECRETS = (TOKEN, PAYLOAD)

#: A loose upper bound for "came in time": no test asserts tight timings.
BOUND = 10.0
MiB = 1 << 20

# -- what a well-behaved server says, step by step ---------------------------------------------

CLIENT_HEADER_END = b'1998/namespace">'  # the end of the client's stream header
STREAM_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='%s' from='ya.ru' version='1.0' xml:lang='en'>"
)
FEATURES_STARTTLS = (
    b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"
)
PROCEED = b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
FEATURES_SASL = (
    b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
    b"<mechanism>X-YANDEX-OAUTH</mechanism></mechanisms></stream:features>"
)
SUCCESS = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
FEATURES_BIND = (
    b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
    b"<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>"
)
BIND_RESULT = (
    b"<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
    b"<jid>test@ya.ru/YaDisk-client</jid></bind></iq>"
)
SESSION_RESULT = b"<iq type='result' id='session_1'/>"
UNEXPECTED = b"<message xmlns='jabber:client' from='ya.ru'><body>hi</body></message>"

# -- hostile documents ---------------------------------------------------------------------------


def _billion_laughs_dtd() -> bytes:
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append('<!ENTITY lol%d "%s">' % (level, ("&lol%d;" % (level - 1)) * 10))
    return ("<!DOCTYPE stream:stream [%s]>" % "".join(entities)).encode()


BILLION_LAUGHS_DTD = _billion_laughs_dtd()
BILLION_LAUGHS_BODY = b"<stream:features><x>&lol9;</x></stream:features>"
QUADRATIC_DTD = b'<!DOCTYPE stream:stream [<!ENTITY a "' + b"A" * 50000 + b'">]>'
QUADRATIC_BODY = b"<stream:features><x>" + b"&a;" * 50000 + b"</x></stream:features>"
EXTERNAL_DTD = b'<!DOCTYPE stream:stream [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
EXTERNAL_BODY = b"<stream:features><x>&xxe;</x></stream:features>"
EXTERNAL_SUBSET = b'<!DOCTYPE stream:stream SYSTEM "file:///etc/passwd">'
PLAIN_DTD = b"<!DOCTYPE x>"
DEEP = 10000
DEEP_BODY = b"<stream:features>" + b"<a>" * DEEP + b"</a>" * DEEP + b"</stream:features>"
INVALID_UTF8 = b"<stream:features><x>caf\xc3\x28 \xff\xfe \xed\xa0\x80</x></stream:features>"
HTTP_GARBAGE = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\noops\n"
BINARY_GARBAGE = bytes(range(256)) * 4


def header(stream_id: str = "h1") -> bytes:
    return STREAM_HEADER % stream_id.encode()


def bare_header(stream_id: str) -> bytes:
    """A stream header without the XML declaration (a declaration mid-document is already
    malformed XML, which expat reports before the parser sees the element)."""
    return header(stream_id)[len(b"<?xml version='1.0'?>") :]


# -- helpers -------------------------------------------------------------------------------------


def assert_token_never_shown(caplog: pytest.LogCaptureFixture, *errors: Optional[BaseException]) -> None:
    """No client log record, formatted log text, exception message or repr carries the token
    (or its SASL base64 form).  The stand-in server's own records are not the client's."""
    records = [r for r in caplog.records if r.name.startswith("yaxmpp") and not r.name.startswith("yaxmpp.testing")]
    assert records, "nothing was logged: the log check would prove nothing"
    texts = [r.getMessage() for r in records]
    texts.append(caplog.text)
    for error in errors:
        if error is not None:
            texts += [str(error), repr(error), str(error.args)]
    for secret in SECRETS:
        for text in texts:
            assert secret not in text
    assert_no_secret(texts, TOKEN, LOGIN)  # not even in part


def call_bounded(function: Callable[[], Any], bound: float) -> Tuple[Optional[BaseException], float, bool]:
    """Run ``function`` on a helper thread; wait at most ``bound`` seconds.

    Returns (the exception it raised or None, seconds it took, whether it finished).  The
    helper thread is not a library thread, so a hang shows up as a failed assertion rather
    than a hung test run.
    """
    box: Dict[str, BaseException] = {}

    def run() -> None:
        try:
            function()
        except BaseException as exc:  # reported to the test
            box["error"] = exc

    thread = threading.Thread(target=run, name="hostile-caller", daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(bound)
    return box.get("error"), time.monotonic() - started, not thread.is_alive()


def sent_id(stanza: bytes) -> bytes:
    """The id of the iq the client sent."""
    match = re.search(rb' id="([^"]*)"', stanza)
    assert match is not None, stanza
    return match.group(1)


class Peer:
    """The server's end of one scripted connection, with a read buffer and a TLS switch."""

    def __init__(self, sock: socket.socket, halt: threading.Event) -> None:
        self.sock = sock
        self.halt = halt
        self.buffer = b""

    def expect(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionAbortedError("the client hung up while the server waited for %r" % marker)
            self.buffer += chunk
        end = self.buffer.index(marker) + len(marker)
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def start_tls(self) -> None:
        assert not self.buffer, "the client sent bytes before the TLS handshake"
        self.sock = server_tls_context().wrap_socket(self.sock, server_side=True)

    def drain(self) -> None:
        """Read (and drop) whatever the client still sends until it hangs up; answer its
        ``</stream:stream>`` with ours and hang up too, as a polite server would."""
        self.sock.settimeout(0.2)
        seen = self.buffer
        while not self.halt.is_set():
            if b"</stream:stream>" in seen:
                self.sock.sendall(b"</stream:stream>")
                self.sock.shutdown(socket.SHUT_RDWR)
                self.sock.close()
                return
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            seen = seen[-32:] + chunk

    def trickle(self, data: bytes, interval: float = 1.0) -> None:
        """One byte every ``interval`` seconds, until the client hangs up or the test ends."""
        for index in range(len(data)):
            self.send(data[index : index + 1])
            if self.halt.wait(interval):
                return

    def flood(self, chunk: bytes, total: Optional[int]) -> int:
        """Send ``chunk`` again and again (``total`` bytes, or until halted when None); the
        client may cut the connection at any time.  Returns what the kernel accepted."""
        sent = 0
        try:
            while (total is None or sent < total) and not self.halt.is_set():
                self.sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        return sent


Injection = Union[bytes, Callable[[Peer], None]]

STEPS = (
    "stream",  # the first bytes of the server (header and the bytes before it)
    "features",  # the first <stream:features>
    "proceed",  # the answer to <starttls/>
    "tls_stream",  # the stream header over TLS
    "tls_features",  # the features over TLS
    "auth_result",  # the answer to <auth/>
    "auth_stream",  # the stream header after authentication
    "auth_features",  # the features after authentication
    "bind_result",  # the answer to the bind iq
    "session_result",  # the answer to the session iq
)


class _Injected(Exception):
    pass


def negotiating_server(
    at: Optional[str] = None,
    inject: Injection = b"",
    before: Optional[Dict[str, bytes]] = None,
    stream_ids: Optional[Dict[str, str]] = None,
) -> Callable[[socket.socket], None]:
    """A script that walks the connection steps like the real server, but at step ``at``
    sends ``inject`` (bytes, or a callable given the :class:`Peer`) instead of the normal
    answer and then only drains the connection.  ``before`` adds bytes before a step's normal
    answer; ``stream_ids`` chooses the id of the stream headers.  ``script.halt`` stops a
    trickle or a flood (set by :func:`check_connect_fails`)."""
    assert at is None or at in STEPS
    before = before or {}
    ids = {"stream": "s1", "tls_stream": "s2", "auth_stream": "s3"}
    ids.update(stream_ids or {})
    halt = threading.Event()

    def script(sock: socket.socket) -> None:
        peer = Peer(sock, halt)

        def say(step: str, normal: bytes) -> None:
            if step in before:
                peer.send(before[step])
            if step == at:
                if callable(inject):
                    inject(peer)
                else:
                    peer.send(inject)
                peer.drain()
                raise _Injected()
            peer.send(normal)

        try:
            peer.expect(CLIENT_HEADER_END)
            say("stream", header(ids["stream"]))
            say("features", FEATURES_STARTTLS)
            peer.expect(b"<starttls xmlns=\"urn:ietf:params:xml:ns:xmpp-tls\"/>")
            say("proceed", PROCEED)
            peer.start_tls()
            peer.expect(CLIENT_HEADER_END)
            say("tls_stream", header(ids["tls_stream"]))
            say("tls_features", FEATURES_SASL)
            peer.expect(b"</auth>")
            say("auth_result", SUCCESS)
            peer.expect(CLIENT_HEADER_END)
            say("auth_stream", header(ids["auth_stream"]))
            say("auth_features", FEATURES_BIND)
            # The client's ids are random: answer with the ones it sent.
            say("bind_result", BIND_RESULT.replace(b"bind_1", sent_id(peer.expect(b"</iq>"))))
            say("session_result", SESSION_RESULT.replace(b"session_1", sent_id(peer.expect(b"</iq>"))))
            peer.drain()
        except _Injected:
            pass

    script.halt = halt  # type: ignore[attr-defined]
    return script


def scripted_client(port: int, timeout: float = 3.0, direct_tls: bool = False, **options: Any) -> yaxmpp.Client:
    """A client for a scripted server on ``port``: its STARTTLS port, or with ``direct_tls``
    its only, direct-TLS port.  No fallback, no subscription."""
    options.setdefault("subscribe", False)
    ports = {"port": None, "tls_port": port} if direct_tls else {"port": port, "tls_port": None}
    return yaxmpp.Client(LOGIN, TOKEN, host="127.0.0.1", cafile=CA_FILE, timeout=timeout, **ports, **options)


def check_connect_fails(
    caplog: pytest.LogCaptureFixture,
    script: Callable[[socket.socket], None],
    error: Type[BaseException],
    *,
    timeout: float = 3.0,
    bound: float = BOUND,
    direct_tls: bool = False,
    **options: Any,
) -> BaseException:
    """connect() against ``script`` raises ``error`` within ``bound`` seconds, leaves no
    thread behind and shows the token nowhere.  Returns the exception."""
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    halt = getattr(script, "halt", None)
    with ScriptedServer(script) as scripted:
        client = scripted_client(scripted.port, timeout, direct_tls, **options)
        try:
            exc, elapsed, finished = call_bounded(client.connect, bound)
        finally:
            if halt is not None:
                halt.set()
        assert finished, "connect() still blocked after %gs" % bound
        client.close(timeout=2)
        assert scripted.errors == []
    assert isinstance(exc, error), "expected %s, got %r" % (error.__name__, exc)
    assert elapsed < bound
    assert not client.connected
    assert library_threads() == []
    assert_token_never_shown(caplog, exc)
    return exc


def open_session(caplog: pytest.LogCaptureFixture, server: Any, make_client: Callable[..., yaxmpp.Client], **options: Any) -> Tuple[yaxmpp.Client, Any]:
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    client = make_client(server, **options).connect()
    session = server.wait_for_session()
    assert session.subscribed.wait(5)
    return client, session


def check_session_ends(
    caplog: pytest.LogCaptureFixture,
    client: yaxmpp.Client,
    session: Any,
    error: Type[BaseException] = yaxmpp.ProtocolError,
    bound: float = BOUND,
) -> BaseException:
    """The established connection ended with ``error``, which get_notification() raises; the
    client hung up, and after close() no thread, no token."""
    started = time.monotonic()
    with pytest.raises(error) as info:
        client.get_notification(timeout=bound)
    assert time.monotonic() - started < bound
    with pytest.raises(error) as ended:
        client.wait(bound)  # the client has ended with that same error (no reconnect policy)
    assert ended.value is info.value
    assert not client.connected
    assert session.wait_ended(5), "the client did not hang up"
    client.close(timeout=2)
    assert library_threads() == []
    assert_token_never_shown(caplog, info.value)
    return info.value


# == entities and DTDs ===========================================================================


DTD_ATTACKS = {
    "billion-laughs": BILLION_LAUGHS_DTD + header() + BILLION_LAUGHS_BODY,
    "quadratic-blowup": QUADRATIC_DTD + header() + QUADRATIC_BODY,
    "external-entity": EXTERNAL_DTD + header() + EXTERNAL_BODY,
    "external-subset": EXTERNAL_SUBSET + header() + FEATURES_STARTTLS,
    "any-dtd": PLAIN_DTD + header() + FEATURES_STARTTLS,
}


@pytest.mark.parametrize("name", sorted(DTD_ATTACKS))
def test_dtd_attacks_during_negotiation_are_refused(caplog, name):
    document = b"<?xml version='1.0'?>" + DTD_ATTACKS[name]
    exc = check_connect_fails(caplog, negotiating_server("stream", document), yaxmpp.ProtocolError)
    assert str(exc).startswith("forbidden XML from server:")  # every DTD is refused as such, none parsed
    logged = caplog.text + str(exc)
    assert "root:" not in logged  # nothing of /etc/passwd was read
    assert "lollollol" not in logged


DTD_AFTER_SESSION = {
    "billion-laughs": BILLION_LAUGHS_DTD + b"<message>&lol9;</message>",
    "billion-laughs-no-dtd": b"<message><body>&lol9;&lol9;&lol9;</body></message>",
    "quadratic-blowup": QUADRATIC_DTD + b"<message><body>" + b"&a;" * 50000 + b"</body></message>",
    "external-entity": EXTERNAL_DTD + b"<message><body>&xxe;</body></message>",
    "external-entity-no-dtd": b"<message><body>&xxe;</body></message>",
    "any-dtd": PLAIN_DTD + b"<message/>",
}


@pytest.mark.parametrize("name", sorted(DTD_AFTER_SESSION))
def test_dtd_attacks_after_the_session_end_the_connection(caplog, server, make_client, name):
    client, session = open_session(caplog, server, make_client)
    session.send(DTD_AFTER_SESSION[name])
    exc = check_session_ends(caplog, client, session)
    assert "root:" not in caplog.text + str(exc)


# == size and depth ==============================================================================


def test_100mb_stanza_during_negotiation_fails_at_the_size_limit(caplog):
    # The error is decided after about max_stanza_bytes; connect() then still reads (and drops)
    # the rest of the 100 MB, which on loopback takes a fraction of a second.  That it keeps
    # reading as long as the server sends is the bug exposed by
    # test_never_ending_text_node_during_negotiation_returns_within_the_timeout.
    chunk = b"x" * MiB

    def huge_features(peer: Peer) -> None:
        peer.send(b"<stream:features><x>")
        peer.flood(chunk, 100 * MiB)

    exc = check_connect_fails(caplog, negotiating_server("features", huge_features), yaxmpp.ProtocolError)
    assert "larger than %d bytes" % MiB in str(exc)


def test_100mb_stanza_after_the_session_fails_at_the_size_limit_with_bounded_memory(caplog, server, make_client):
    client, session = open_session(caplog, server, make_client)
    chunk = b"y" * MiB
    done = threading.Event()

    def sender() -> None:
        session.send(b"<message from='ya.ru'><body>")
        sent = 0
        while sent < 100 * MiB and not session.ended.is_set():
            session.send(chunk)  # the stand-in swallows the broken pipe once the client hangs up
            sent += len(chunk)
        done.set()

    tracemalloc.start()
    try:
        thread = threading.Thread(target=sender, name="hostile-sender", daemon=True)
        thread.start()
        exc = check_session_ends(caplog, client, session)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert done.wait(BOUND)
    thread.join(BOUND)
    assert "larger than %d bytes" % MiB in str(exc)
    # The client stopped reading after about max_stanza_bytes: the server could not get
    # anything near 100 MB out (what it did send sat in socket buffers at most).
    assert session.transport.bytes_sent < 32 * MiB, session.transport.bytes_sent
    # Neither the parser nor anything else held on to the stanza as it grew.
    assert peak < 40 * MiB, peak


def test_10000_deep_nesting_during_negotiation(caplog):
    exc = check_connect_fails(caplog, negotiating_server("features", DEEP_BODY), yaxmpp.ProtocolError)
    assert "nested deeper than 32" in str(exc)


def test_10000_deep_nesting_after_the_session(caplog, server, make_client):
    client, session = open_session(caplog, server, make_client)
    session.send(b"<message from='ya.ru'>" + b"<a>" * DEEP + b"</a>" * DEEP + b"</message>")
    exc = check_session_ends(caplog, client, session)
    assert "nested deeper than 32" in str(exc)


def test_never_ending_text_node_after_the_session(caplog, server, make_client):
    client, session = open_session(caplog, server, make_client, limits=yaxmpp.Limits(max_stanza_bytes=65536))
    text = b"z" * 8192
    stop = threading.Event()

    def sender() -> None:
        session.send(b"<message from='ya.ru'><body>")
        while not stop.is_set() and not session.ended.is_set():
            session.send(text)

    thread = threading.Thread(target=sender, name="hostile-sender", daemon=True)
    thread.start()
    try:
        exc = check_session_ends(caplog, client, session)
    finally:
        stop.set()
        thread.join(BOUND)
    assert not thread.is_alive()
    assert "larger than 65536 bytes" in str(exc)


def test_never_ending_text_node_during_negotiation_returns_within_the_timeout(caplog):
    def endless_features(peer: Peer) -> None:
        peer.send(b"<stream:features><x>")
        peer.flood(b"z" * 65536, None)  # until the client hangs up or the test halts it

    exc = check_connect_fails(
        caplog,
        negotiating_server("features", endless_features),
        yaxmpp.ProtocolError,
        timeout=2.0,
        bound=6.0,
        limits=yaxmpp.Limits(max_stanza_bytes=65536),
    )
    assert "larger than 65536 bytes" in str(exc)


# == malformed bytes =============================================================================


MALFORMED_NEGOTIATION = {
    "invalid-utf8-in-features": ("features", INVALID_UTF8),
    "invalid-utf8-in-header": ("stream", b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='\xff\xfe'>"),
    "http-garbage": ("stream", HTTP_GARBAGE),
    "binary-garbage": ("stream", BINARY_GARBAGE),
    "garbage-after-header": ("features", b"\x00\x01\x02 not xml at all <<<>>>"),
    "second-stream-header": ("features", bare_header("again")),
    "second-stream-header-over-tls": ("tls_features", bare_header("again")),
    "second-stream-header-with-declaration": ("features", header("again")),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_NEGOTIATION))
def test_malformed_bytes_during_negotiation(caplog, name):
    at, data = MALFORMED_NEGOTIATION[name]
    exc = check_connect_fails(caplog, negotiating_server(at, data), yaxmpp.ProtocolError)
    if name.startswith("second-stream-header") and "declaration" not in name:
        assert "second stream header" in str(exc)


MALFORMED_SESSION = {
    "invalid-utf8": b"<message from='ya.ru'><body>caf\xc3\x28 \xff\xfe</body></message>",
    "invalid-utf8-surrogate": b"<message from='ya.ru'><body>\xed\xa0\x80</body></message>",
    "http-garbage": HTTP_GARBAGE,
    "binary-garbage": BINARY_GARBAGE,
    "nul-byte": b"<message from='ya.ru'>\x00</message>",
    "second-stream-header": bare_header("again"),
    "second-stream-header-with-declaration": header("again"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_SESSION))
def test_malformed_bytes_after_the_session(caplog, server, make_client, name):
    client, session = open_session(caplog, server, make_client)
    session.send(MALFORMED_SESSION[name])
    exc = check_session_ends(caplog, client, session)
    if name == "second-stream-header":
        assert "second stream header" in str(exc)


# == unexpected elements at each negotiation step ==============================================


@pytest.mark.parametrize(
    "at, inject",
    [
        ("stream", UNEXPECTED),  # an element instead of the stream header
        ("features", UNEXPECTED),
        ("features", SUCCESS),
        ("proceed", UNEXPECTED),
        ("proceed", SUCCESS),
        ("tls_stream", UNEXPECTED),
        ("tls_features", UNEXPECTED),
        ("tls_features", PROCEED),
        ("auth_result", UNEXPECTED),
        ("auth_result", FEATURES_BIND),
        ("auth_features", UNEXPECTED),
        ("auth_features", SUCCESS),
    ],
    ids=lambda value: value if isinstance(value, str) else value[1:].split(b" ")[0].split(b">")[0].decode(),
)
def test_unexpected_element_at_a_negotiation_step_is_a_protocol_error(caplog, at, inject):
    if at == "stream":
        inject = b"<?xml version='1.0'?>" + inject
    exc = check_connect_fails(caplog, negotiating_server(at, inject), yaxmpp.ProtocolError)
    assert "expected" in str(exc)  # "expected <proceed/>, got ...", "unexpected <...> while ..."


@pytest.mark.parametrize(
    "at, inject, step",
    [
        ("bind_result", UNEXPECTED, "resource binding"),
        ("bind_result", FEATURES_BIND, "resource binding"),
        ("session_result", UNEXPECTED, "session result"),
        ("session_result", BIND_RESULT, "session result"),
    ],
    ids=["message-for-bind", "features-for-bind", "message-for-session", "bind-result-for-session"],
)
def test_unexpected_element_while_binding_is_ignored_until_the_timeout(caplog, at, inject, step):
    # After authentication stray stanzas are passed over (they are not errors in XMPP), so the
    # missing answer shows as a Timeout naming the step, within connect()'s timeout.
    started = time.monotonic()
    exc = check_connect_fails(caplog, negotiating_server(at, inject), yaxmpp.Timeout, timeout=1.0)
    assert time.monotonic() - started < 5
    assert step in str(exc)


def test_scripted_negotiation_succeeds_when_nothing_is_injected(caplog):
    # The scripted server is a faithful enough stand-in: without injection, connect() works.
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    script = negotiating_server()
    with ScriptedServer(script) as scripted:
        client = scripted_client(scripted.port)
        try:
            client.connect()
            assert client.connected
            assert client.jid == "test@ya.ru/YaDisk-client"
            with pytest.raises(yaxmpp.Timeout):  # all the script said came before connect() returned
                client.get_notification(timeout=0)
        finally:
            script.halt.set()  # type: ignore[attr-defined]
            client.close(timeout=2)
        assert scripted.errors == []
    assert library_threads() == []
    assert_token_never_shown(caplog)


def test_push_injected_before_starttls_is_never_delivered(caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    forged = (
        b"<iq type='set' id='forged' from='ya.ru'><query xmlns='yandex:push:disk'><diff>"
        b"<op type='deleted' key='/disk/important.txt' fid='1' size='1'/></diff></query></iq>"
    )
    # Before TLS nothing the server says is trusted: the forged push is refused like any
    # request the client does not serve (service-unavailable), and the negotiation goes on.
    script = negotiating_server(before={"features": forged})
    with ScriptedServer(script) as scripted:
        client = scripted_client(scripted.port)
        try:
            client.connect()
            assert client.connected
            # The push came before the session opened, so had it been delivered it would be
            # queued by now: nothing to wait for.
            with pytest.raises(yaxmpp.Timeout):
                client.get_notification(timeout=0)
        finally:
            script.halt.set()  # type: ignore[attr-defined]
            client.close(timeout=2)
        assert scripted.errors == []
    assert any("unsupported request (id forged)" in r.getMessage() for r in caplog.records)
    assert library_threads() == []


# == iq results nobody asked for ================================================================


def test_iq_result_with_an_unknown_id_is_ignored(caplog, server, make_client):
    client, session = open_session(caplog, server, make_client)
    session.send("<iq type='result' id='nobody-asked' from='ya.ru'/>")
    session.send(
        "<iq type='error' id='yx999' from='ya.ru'><error type='cancel'>"
        "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    session.send("<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>x@y/z</jid></bind></iq>")
    session.send("<iq type='result'/>")
    # The connection stays up: a ping is still answered and a later push still arrives.
    assert session.wait_reply(session.ping()).get("type") == "result"
    push_id = session.push([{"type": "new", "key": "/disk/after.txt", "fid": "7", "size": "3"}])
    notification = client.get_notification(timeout=5)
    assert [change.path for change in notification.changes] == ["/disk/after.txt"]
    assert session.wait_reply(push_id).get("type") == "result"
    assert client.connected
    assert client.jid == "test@ya.ru/YaDisk-client"
    client.close(timeout=2)
    assert library_threads() == []
    assert_token_never_shown(caplog)


# == silence and trickles =======================================================================


def test_server_that_accepts_and_never_speaks_gives_a_timeout(caplog):
    def silent(sock: socket.socket) -> None:
        wait_for_eof(sock)

    started = time.monotonic()
    exc = check_connect_fails(caplog, silent, yaxmpp.Timeout, timeout=1.0)
    assert time.monotonic() - started < 5
    assert isinstance(exc, TimeoutError)
    assert "stream header" in str(exc)


def test_direct_tls_port_that_never_speaks_gives_a_timeout(caplog):
    def silent(sock: socket.socket) -> None:
        wait_for_eof(sock)

    started = time.monotonic()
    exc = check_connect_fails(caplog, silent, yaxmpp.Timeout, timeout=1.0, direct_tls=True)
    assert isinstance(exc, TimeoutError)
    assert time.monotonic() - started < 5


def test_direct_tls_timeout_names_the_tls_handshake(caplog):
    def silent(sock: socket.socket) -> None:
        wait_for_eof(sock)

    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    with ScriptedServer(silent) as scripted:
        client = scripted_client(scripted.port, 1.0, direct_tls=True)
        with pytest.raises(yaxmpp.Timeout) as info:
            client.connect()
    assert "TLS" in str(info.value)
    assert "stream header" not in str(info.value)


def _trickle(data: bytes) -> Callable[[Peer], None]:
    return lambda peer: peer.trickle(data)


@pytest.mark.parametrize(
    "at, data, step",
    [
        ("stream", header(), "stream header"),
        ("features", FEATURES_STARTTLS, "stream features"),
        ("tls_features", FEATURES_SASL, "stream features"),  # one TLS record per byte
    ],
    ids=["header", "features", "features-over-tls"],
)
def test_server_trickling_one_byte_a_second_gives_a_timeout_naming_the_step(caplog, at, data, step):
    started = time.monotonic()
    exc = check_connect_fails(caplog, negotiating_server(at, _trickle(data)), yaxmpp.Timeout, timeout=2.0)
    assert time.monotonic() - started < 6
    assert "2s" in str(exc)
    assert step in str(exc)


# == TLS ========================================================================================


def test_non_tls_garbage_on_the_direct_tls_port_is_a_tls_error(caplog):
    def garbage(sock: socket.socket) -> None:
        assert sock.recv(65536)  # the ClientHello
        sock.sendall(HTTP_GARBAGE + b"<html>" + b"garbage " * 100 + b"</html>")
        wait_for_eof(sock)

    check_connect_fails(caplog, garbage, yaxmpp.TLSError, direct_tls=True)


def test_garbage_records_after_the_tls_handshake_are_a_tls_error(caplog):
    def garbage_after_handshake(sock: socket.socket) -> None:
        transport = Transport(sock)
        transport.start_tls(server_tls_context(), None, server_side=True)
        received = b""
        while CLIENT_HEADER_END not in received:
            data = transport.recv()
            if not data:
                return
            received += data
        sock.sendall(b"\x17\x03\x03\x00\x10" + b"\xaa" * 16)  # an application-data record of junk
        wait_for_eof(sock)

    check_connect_fails(caplog, garbage_after_handshake, yaxmpp.TLSError, direct_tls=True)


def test_plain_data_after_proceed_is_a_tls_error(caplog):
    # Also in test_client.py; here with the thread and token checks.
    inject = PROCEED + b"<iq type='get' id='x'/><stream:features/>"
    check_connect_fails(caplog, negotiating_server("proceed", inject), yaxmpp.TLSError)


# == the token echoed back by the server ==========================================================


def test_token_echoed_in_an_unexpected_element_name_is_not_shown(caplog):
    def echo(peer: Peer) -> None:
        peer.send(b"<x%s/>" % TOKEN.encode())

    check_connect_fails(caplog, negotiating_server("auth_result", echo), yaxmpp.ProtocolError)


def test_token_echoed_in_a_stream_error_condition_is_not_shown(caplog, server, make_client):
    client, session = open_session(caplog, server, make_client)
    session.send(
        "<stream:error><x%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>" % TOKEN
    )
    check_session_ends(caplog, client, session, yaxmpp.StreamError)


def test_token_echoed_as_the_stream_id_is_not_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    script = negotiating_server(stream_ids={"auth_stream": "id-%s" % TOKEN})
    with ScriptedServer(script) as scripted:
        client = scripted_client(scripted.port)
        try:
            client.connect()
        finally:
            script.halt.set()  # type: ignore[attr-defined]
            client.close(timeout=2)
    assert library_threads() == []
    assert_token_never_shown(caplog)
