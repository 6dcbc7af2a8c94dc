"""A loopback stand-in for push.xmpp.yandex.ru that follows the official connection steps.

:class:`FakeServer` listens on 127.0.0.1 on two ports: one speaking STARTTLS (like 5222) and
one with TLS from the first byte (like 443), with the test certificate shipped in
``yaxmpp/testing/certs`` (valid for ``127.0.0.1`` and ``localhost``, signed by a test CA
that nothing trusts unless told to).  It checks the ``X-YANDEX-OAUTH`` token, binds, opens
the session, asks for the client's version, pings, answers the client's close, and records
what every client sent so tests can assert on the bytes.  Options make it misbehave the ways
tests need: no STARTTLS, split or coalesced writes, an early ping, an unanswered close.

Each client connection is served by its own thread; the server runs no user code.
"""

from __future__ import annotations

import base64
import itertools
import logging
import os
import random
import selectors
import socket
import ssl
import threading
from typing import Any, Dict, List, Optional, Tuple
from xml.etree.ElementTree import Element

from ..errors import Error
from ..protocol import ns
from ..protocol.disk import push_xml
from ..protocol.parser import STREAM_END, StreamHeader, StreamParser
from ..protocol.stanzas import escape_attr, escape_text
from ..transport import Transport

__all__ = ["FakeServer", "ServerSession", "query_xml", "CA_FILE", "CERT_FILE", "KEY_FILE"]

log = logging.getLogger("yaxmpp.testing")

_CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")
#: The test CA that signed the stand-in server's certificate.
CA_FILE = os.path.join(_CERTS, "ca.pem")
CERT_FILE = os.path.join(_CERTS, "server.pem")
KEY_FILE = os.path.join(_CERTS, "server-key.pem")

WRITE_MODES = ("normal", "bytewise", "coalesced")


def query_xml(changes: List[Dict[str, str]], attrs: Optional[Dict[str, str]] = None) -> str:
    """A Disk push ``<query>`` with one ``<op>`` per change inside a ``<diff>``."""
    head = "".join(' %s="%s"' % (k, escape_attr(v)) for k, v in (attrs or {}).items())
    ops = "".join("<op%s/>" % "".join(' %s="%s"' % (k, escape_attr(str(v))) for k, v in op.items()) for op in changes)
    return '<query xmlns="%s"%s><diff>%s</diff></query>' % (ns.DISK, head, ops)


class ServerSession:
    """One client connection as the server saw it.

    ``received`` holds every plaintext byte the client sent (before and after TLS), ``stanzas``
    every stanza it sent, ``headers`` the attributes of each stream header it sent.
    """

    def __init__(self, server: "FakeServer", number: int, transport: Transport, direct_tls: bool) -> None:
        self.server = server
        self.number = number
        self.transport = transport
        self.direct_tls = direct_tls
        self.received = bytearray()
        self.stanzas: List[Element] = []
        self.headers: List[Dict[str, str]] = []
        self.tls = direct_tls
        self.compressed = False
        self.authenticated = False
        self.login: Optional[str] = None
        self.jid: Optional[str] = None
        self.stream_id: Optional[str] = None
        self.error: Optional[BaseException] = None
        self.session_started = threading.Event()
        self.subscribed = threading.Event()  # the client subscribed to Disk pushes
        self.client_closed = threading.Event()  # the client sent </stream:stream>
        self.ended = threading.Event()  # the connection is gone
        self._replies: Dict[str, Element] = {}
        self._replies_cond = threading.Condition()
        self._out: List[bytes] = []
        self._write_lock = threading.Lock()
        self._server_closed = False
        self.muted = False
        self._pings = itertools.count(1)
        self._pushes = itertools.count(1)

    def __repr__(self) -> str:
        return "<ServerSession #%d jid=%r>" % (self.number, self.jid)

    # -- what tests call ---------------------------------------------------------------------

    def send(self, xml: "str | bytes") -> None:
        """Write raw XML to the client now (from any thread)."""
        data = xml.encode("utf-8") if isinstance(xml, str) else xml
        self._write(data, flush=True)

    def send_wire(self, data: bytes) -> None:
        """Write bytes below the compression layer (still inside TLS): for hand-made zlib data."""
        if self.muted:
            return
        with self._write_lock:
            try:
                self.transport.send(data, compress=False)
            except (OSError, Error):
                self.transport.shutdown()

    def ping(self) -> str:
        """Send a XEP-0199 ping as in the seed; returns its id (see :meth:`wait_reply`)."""
        iq_id = "ping_%d" % next(self._pings)
        self.send(self.server._ping_xml(self.jid, iq_id))
        return iq_id

    def ask_version(self, iq_id: str = "ask_version") -> str:
        """Send the XEP-0092 query of step 9; returns its id."""
        self.send(
            '<iq from="%s" type="get" to="%s" id="%s"><query xmlns="%s"/></iq>'
            % (self.server.domain, escape_attr(self.jid or ""), escape_attr(iq_id), ns.VERSION)
        )
        return iq_id

    def push(
        self,
        changes: Optional[List[Dict[str, str]]] = None,
        *,
        xml: Optional[str] = None,
        attrs: Optional[Dict[str, str]] = None,
    ) -> str:
        """Send one Disk push; returns its iq id (its acknowledgement: :meth:`wait_reply`).

        ``changes`` is a list of ``op`` attribute dicts (``type``, ``key``, ``fid``, ``size``,
        anything else); ``xml`` replaces the whole ``<query>`` with raw XML; ``attrs`` are
        attributes of the ``query``.
        """
        iq_id = "push_%d" % next(self._pushes)
        self.send(push_xml(iq_id, xml if xml is not None else query_xml(changes or [], attrs), self.server.domain, self.jid))
        return iq_id

    def push_many(self, count: int, changes: Optional[List[Dict[str, str]]] = None) -> List[str]:
        """Send ``count`` pushes in as few writes as possible; returns their ids."""
        ids = []
        parts = []
        query = query_xml(changes or [{"type": "new", "key": "/disk/file.txt", "fid": "1", "size": "1"}])
        for _ in range(count):
            iq_id = "push_%d" % next(self._pushes)
            ids.append(iq_id)
            parts.append(push_xml(iq_id, query, self.server.domain, self.jid))
            if len(parts) >= 256:
                self.send("".join(parts))
                parts = []
        if parts:
            self.send("".join(parts))
        return ids

    def wait_reply(self, iq_id: str, timeout: float = 5.0) -> Element:
        """Wait for the client's iq result/error with ``iq_id``; raises TimeoutError."""
        with self._replies_cond:
            if not self._replies_cond.wait_for(lambda: iq_id in self._replies, timeout):
                raise TimeoutError("no reply to %s within %gs" % (iq_id, timeout))
            return self._replies[iq_id]

    def replies(self) -> Dict[str, Element]:
        with self._replies_cond:
            return dict(self._replies)

    def close_stream(self) -> None:
        """The server closes first: send ``</stream:stream>`` and wait for the client's."""
        self._server_closed = True
        self.send(b"</stream:stream>")

    def mute(self) -> None:
        """From now on send nothing at all (a dead peer that keeps the TCP connection open)."""
        self.muted = True

    def drop(self) -> None:
        """Cut the TCP connection without any goodbye."""
        self.transport.shutdown()

    def wait_ended(self, timeout: float = 5.0) -> bool:
        return self.ended.wait(timeout)

    # -- writing ---------------------------------------------------------------------------

    def _write(self, data: bytes, flush: bool = False) -> None:
        with self._write_lock:
            self._out.append(data)
            if flush or self.server.write_mode != "coalesced":
                self._flush_locked()

    def _flush(self) -> None:
        with self._write_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        data = b"".join(self._out)
        self._out.clear()
        if not data or self.muted:
            return
        try:
            if self.server.write_mode == "bytewise":
                wire = self.transport.compress(data)  # split what goes on the wire, not the XML
                for i in range(len(wire)):
                    self.transport.send(wire[i : i + 1], compress=False)
            else:
                self.transport.send(data)
        except (OSError, Error):
            self.transport.shutdown()


class FakeServer:
    """The stand-in server.  Use it as a context manager, or call :meth:`start`/:meth:`stop`.

    ``accounts`` maps logins to tokens (``login``/``token`` add one).  ``client_options()``
    gives the keyword arguments that point a :class:`yaxmpp.Client` at this server.

    Behaviour switches (all default to the real server's documented behaviour):
    ``offer_starttls`` (False: never offer ``<starttls/>``), ``write_mode`` (``"normal"``,
    ``"bytewise"``: every byte in its own write, ``"coalesced"``: everything the server has to
    say in one write, e.g. the session result, the version query and a ping together),
    ``ask_version`` (send the version query after the session), ``ping_before_bind`` (ping
    between the post-auth features and the bind result), ``ping_interval`` (seconds of client
    silence before a ping; None: no periodic pings), ``answer_close`` (False: never answer the
    client's ``</stream:stream>``), ``auth_failure`` (the SASL condition sent for a bad token),
    ``subscribe_error`` (a stanza error condition to refuse the Disk subscription with).

    Compression (XEP-0138): zlib is offered as the seed shows (``compression=False``: never);
    ``compression_after_auth`` offers it only after authentication (as ejabberd does);
    ``compression_failure`` refuses it with that condition (``setup-failed``...);
    ``after_compressed`` are plain bytes sent right after ``<compressed/>`` (a broken server).

    ``mechanisms`` are the SASL mechanisms offered after TLS: ``X-YANDEX-OAUTH`` (as the real
    server) and/or ``PLAIN`` (the token as the password, for generic XMPP clients).

    Disk pushes: :meth:`push` sends one to every subscribed client (``session.push`` to one);
    the clients' acknowledgements are recorded like every iq reply (``session.wait_reply``).
    """

    def __init__(
        self,
        login: Optional[str] = "test",
        token: Optional[str] = "t",
        *,
        accounts: Optional[Dict[str, str]] = None,
        domain: str = "ya.ru",
        host: str = "127.0.0.1",
        starttls_port: int = 0,
        tls_port: Optional[int] = 0,
        offer_starttls: bool = True,
        write_mode: str = "normal",
        ask_version: bool = True,
        ping_before_bind: bool = False,
        ping_interval: Optional[float] = None,
        answer_close: bool = True,
        auth_failure: str = "not-authorized",
        subscribe_error: Optional[str] = None,
        compression: bool = True,
        compression_after_auth: bool = False,
        compression_failure: Optional[str] = None,
        after_compressed: bytes = b"",
        mechanisms: Tuple[str, ...] = ("X-YANDEX-OAUTH",),
        certfile: str = CERT_FILE,
        keyfile: str = KEY_FILE,
        cafile: str = CA_FILE,
    ) -> None:
        if write_mode not in WRITE_MODES:
            raise ValueError("write_mode must be one of %s" % (WRITE_MODES,))
        self.accounts: Dict[str, str] = dict(accounts or {})
        if login is not None and token is not None:
            self.accounts[login] = token
        self.domain = domain
        self.host = host
        self.offer_starttls = offer_starttls
        self.write_mode = write_mode
        self.ask_version = ask_version
        self.ping_before_bind = ping_before_bind
        self.ping_interval = ping_interval
        self.answer_close = answer_close
        self.auth_failure = auth_failure
        self.subscribe_error = subscribe_error
        self.compression = compression
        self.compression_after_auth = compression_after_auth
        self.compression_failure = compression_failure
        self.after_compressed = after_compressed
        self.mechanisms = tuple(mechanisms)
        self.cafile = cafile
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(certfile, keyfile)
        self._requested_ports = (starttls_port, tls_port)
        self.starttls_port: Optional[int] = None
        self.tls_port: Optional[int] = None
        self.sessions: List[ServerSession] = []
        self._sessions_cond = threading.Condition()
        self._listeners: List[Tuple[socket.socket, bool]] = []
        self._threads: List[threading.Thread] = []
        self._numbers = itertools.count(1)
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._stopping = False
        self._accepter: Optional[threading.Thread] = None

    # -- life ----------------------------------------------------------------------------

    def start(self) -> "FakeServer":
        starttls_port, tls_port = self._requested_ports
        self.starttls_port = self._listen(starttls_port, direct_tls=False)
        if tls_port is not None:
            self.tls_port = self._listen(tls_port, direct_tls=True)
        self._wake_r, self._wake_w = socket.socketpair()
        self._accepter = threading.Thread(target=self._accept_loop, name="yaxmpp-testing-accept", daemon=True)
        self._accepter.start()
        return self

    def _listen(self, port: int, direct_tls: bool) -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.listen(128)
        self._listeners.append((sock, direct_tls))
        bound: int = sock.getsockname()[1]
        return bound

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listeners and every connection; join all threads."""
        if self._stopping:
            return
        self._stopping = True
        if self._wake_w is not None:
            self._wake_w.send(b"x")
        if self._accepter is not None:
            self._accepter.join(timeout)
        for sock, _ in self._listeners:
            sock.close()
        for session in list(self.sessions):
            session.transport.shutdown()
        for thread in list(self._threads):
            thread.join(timeout)
        for s in (self._wake_r, self._wake_w):
            if s is not None:
                s.close()

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def client_options(self) -> Dict[str, Any]:
        """Keyword arguments for :class:`yaxmpp.Client` that point it at this server."""
        return {
            "host": self.host,
            "port": self.starttls_port,
            "tls_port": self.tls_port,
            "domain": self.domain,
            "cafile": self.cafile,
        }

    def push(
        self,
        changes: Optional[List[Dict[str, str]]] = None,
        *,
        xml: Optional[str] = None,
        attrs: Optional[Dict[str, str]] = None,
    ) -> List[Tuple[ServerSession, str]]:
        """Send a Disk push to every subscribed client; returns (session, iq id) pairs."""
        return [
            (session, session.push(changes, xml=xml, attrs=attrs))
            for session in list(self.sessions)
            if session.subscribed.is_set() and not session.ended.is_set()
        ]

    def wait_for_session(self, index: int = -1, timeout: float = 5.0) -> ServerSession:
        """Wait until a connection exists (the last one by default) and return it."""
        with self._sessions_cond:
            want = index + 1 if index >= 0 else 1
            if not self._sessions_cond.wait_for(lambda: len(self.sessions) >= want, timeout):
                raise TimeoutError("no client connected within %gs" % timeout)
            return self.sessions[index]

    # -- accepting -----------------------------------------------------------------------

    def _accept_loop(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            assert self._wake_r is not None
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            for sock, direct_tls in self._listeners:
                selector.register(sock, selectors.EVENT_READ, direct_tls)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.data is None:
                        return
                    try:
                        conn, _addr = key.fileobj.accept()  # type: ignore[union-attr]
                    except OSError:
                        continue
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    number = next(self._numbers)
                    thread = threading.Thread(
                        target=self._serve,
                        args=(conn, key.data, number),
                        name="yaxmpp-testing-conn-%d" % number,
                        daemon=True,
                    )
                    self._threads = [t for t in self._threads if t.is_alive()]
                    self._threads.append(thread)
                    thread.start()
        finally:
            selector.close()

    # -- serving one client ----------------------------------------------------------------

    def _serve(self, conn: socket.socket, direct_tls: bool, number: int) -> None:
        transport = Transport(conn)
        session = ServerSession(self, number, transport, direct_tls)
        with self._sessions_cond:
            self.sessions.append(session)
            self._sessions_cond.notify_all()
        try:
            if direct_tls:
                transport.start_tls(self.context, None, server_side=True)
            _Conversation(self, session).run()
        except Exception as exc:  # a misbehaving client ends its connection, not the server
            session.error = exc
            log.debug("connection %d ended: %r", number, exc)
        finally:
            transport.close(polite=False)
            session.ended.set()

    # -- stanzas the server sends ------------------------------------------------------------

    def _header(self, stream_id: str) -> bytes:
        return (
            "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' id='%s' from='%s' version='1.0' xml:lang='en'>"
            % (stream_id, escape_attr(self.domain))
        ).encode()

    def _features(self, session: ServerSession) -> bytes:
        offer_zlib = self.compression and not session.compressed
        if offer_zlib and self.compression_after_auth:
            offer_zlib = session.authenticated
        zlib = '<compression xmlns="%s"><method>zlib</method></compression>' % ns.COMPRESS_FEATURE if offer_zlib else ""
        if session.authenticated:
            body = zlib + '<bind xmlns="%s"/><session xmlns="%s"/>' % (ns.BIND, ns.SESSION)
        elif session.tls:
            offered = "".join("<mechanism>%s</mechanism>" % m for m in self.mechanisms)
            body = zlib + '<mechanisms xmlns="%s">%s</mechanisms>' % (ns.SASL, offered)
        else:
            body = (
                ('<starttls xmlns="%s"/>' % ns.TLS if self.offer_starttls else "")
                + zlib
                + '<mechanisms xmlns="%s"/>' % ns.SASL
            )
        return ("<stream:features>%s</stream:features>" % body).encode()

    def _ping_xml(self, jid: Optional[str], iq_id: str) -> str:
        to = ' to="%s"' % escape_attr(jid) if jid else ""
        return '<iq from="%s" type="get"%s id="%s"><ping xmlns="%s"/></iq>' % (
            escape_attr(self.domain),
            to,
            escape_attr(iq_id),
            ns.PING,
        )


class _Conversation:
    """The server's side of one stream, step by step, on the connection's thread."""

    def __init__(self, server: FakeServer, session: ServerSession) -> None:
        self.server = server
        self.session = session
        self.transport = session.transport
        self.parser = StreamParser()
        self.pending = b""

    def next_item(self) -> object:
        """The next header, stanza or stream end from the client; None at end of file."""
        session = self.session
        while True:
            if self.parser.items:
                return self.parser.items.pop(0)
            if self.pending:
                data, self.pending = self.pending, b""
            else:
                session._flush()
                try:
                    data = self.transport.recv()
                except socket.timeout:
                    if session.jid is not None and not session._server_closed:
                        session.ping()
                    continue
                if not data:
                    return None
                session.received += data
            # Stop after each item: the bytes after <starttls/> or <auth/> belong elsewhere.
            self.pending = self.parser.feed_until_stanza(data)

    def restart(self) -> None:
        """A fresh parser for the client's next stream; bytes already read go to it."""
        self.parser = StreamParser()

    def run(self) -> None:
        server, session = self.server, self.session
        if server.ping_interval is not None:
            self.transport.set_timeout(server.ping_interval)
        while True:
            item = self.next_item()
            if item is None:
                return
            if isinstance(item, StreamHeader):
                session.headers.append(dict(item.attrs))
                session.stream_id = str(random.randint(10**9, 4 * 10**9))
                session._write(server._header(session.stream_id) + server._features(session))
                if session.authenticated and server.ping_before_bind:
                    session._write(server._ping_xml(None, "ping_early").encode())
                continue
            if item is STREAM_END:
                session.client_closed.set()
                if server.answer_close and not session._server_closed:
                    session.send(b"</stream:stream>")
                if server.answer_close or session._server_closed:
                    return
                while self.transport.recv():  # never answer; wait for the client to hang up
                    pass
                return
            assert isinstance(item, Element)
            session.stanzas.append(item)
            if not self.handle(item):
                return

    def handle(self, elem: Element) -> bool:
        """React to one client stanza; False ends the conversation."""
        server, session = self.server, self.session
        tag = elem.tag
        if tag == ns.STARTTLS and not session.tls and server.offer_starttls:
            session.send('<proceed xmlns="%s"/>' % ns.TLS)
            self.transport.start_tls(server.context, None, self.pending, server_side=True)
            self.pending = b""
            session.tls = True
            self.restart()
        elif tag == ns.qname(ns.COMPRESS, "compress") and not session.compressed:
            method = elem.findtext(ns.qname(ns.COMPRESS, "method"))
            if server.compression_failure or method != "zlib":
                condition = server.compression_failure or "unsupported-method"
                session.send('<failure xmlns="%s"><%s/></failure>' % (ns.COMPRESS, condition))
                return True
            session.send(('<compressed xmlns="%s"/>' % ns.COMPRESS).encode() + server.after_compressed)
            self.transport.start_compression(leftover=self.pending)
            self.pending = b""
            session.compressed = True
            self.restart()
        elif tag == ns.qname(ns.SASL, "auth"):
            if not self.check_auth(elem):
                session.send('<failure xmlns="%s"><%s/></failure>' % (ns.SASL, server.auth_failure))
                return True  # the client closes the stream next
            session.authenticated = True
            session.send('<success xmlns="%s"/>' % ns.SASL)
            self.restart()
        elif tag == ns.IQ:
            self.handle_iq(elem)
        return True

    def check_auth(self, elem: Element) -> bool:
        mechanism = elem.get("mechanism")
        if not self.session.tls or mechanism not in self.server.mechanisms:
            return False
        try:
            raw = base64.b64decode((elem.text or "").strip(), validate=True).decode("utf-8")
            if mechanism == "PLAIN":  # authzid NUL authcid NUL password; the token is the password
                _, login, token = raw.split("\0", 2)
                login = login.split("@", 1)[0]
            else:
                login, token = raw.split("\0", 1)
        except ValueError:
            return False
        expected = self.server.accounts.get(login)
        if expected is None or expected != token:
            return False
        self.session.login = login
        return True

    def handle_iq(self, elem: Element) -> None:
        server, session = self.server, self.session
        iq_type, iq_id = elem.get("type"), elem.get("id") or ""
        child = elem[0] if len(elem) else None
        if iq_type in ("result", "error"):
            with session._replies_cond:
                session._replies[iq_id] = elem
                session._replies_cond.notify_all()
            return
        if not session.authenticated:
            session.send(self.iq_error(iq_id, "not-authorized"))
        elif child is not None and child.tag == ns.BIND_TAG:
            resource = (child.findtext(ns.qname(ns.BIND, "resource")) or "").strip() or "yaxmpp-%d" % session.number
            session.jid = "%s@%s/%s" % (session.login, server.domain, resource)
            session._write(
                (
                    '<iq xmlns="jabber:client" type="result" id="%s"><bind xmlns="%s"><jid>%s</jid></bind></iq>'
                    % (escape_attr(iq_id), ns.BIND, escape_text(session.jid))
                ).encode()
            )
        elif child is not None and child.tag == ns.qname(ns.DISK, "s") and iq_type == "set":
            if server.subscribe_error:
                session.send(self.iq_error(iq_id, server.subscribe_error))
            else:
                session.send('<iq type="result" id="%s" from="%s"/>' % (escape_attr(iq_id), escape_attr(elem.get("to") or "")))
                session.subscribed.set()
        elif child is not None and child.tag == ns.SESSION_TAG:
            session._write(
                ('<iq type="result" id="%s"><session xmlns="%s"/></iq>' % (escape_attr(iq_id), ns.SESSION)).encode()
            )
            if server.ask_version:
                session._write(
                    (
                        '<iq from="%s" type="get" to="%s" id="ask_version"><query xmlns="%s"/></iq>'
                        % (escape_attr(server.domain), escape_attr(session.jid or ""), ns.VERSION)
                    ).encode()
                )
            if server.write_mode == "coalesced":
                session._write(server._ping_xml(session.jid, "ping_0").encode())
            session.session_started.set()
        elif child is not None and child.tag == ns.PING_TAG and iq_type == "get":
            session.send('<iq type="result" id="%s" from="%s"/>' % (escape_attr(iq_id), escape_attr(server.domain)))
        else:
            session.send(self.iq_error(iq_id, "service-unavailable"))

    def iq_error(self, iq_id: str, condition: str) -> str:
        return '<iq type="error" id="%s"><error type="cancel"><%s xmlns="%s"/></error></iq>' % (
            escape_attr(iq_id),
            condition,
            ns.STANZAS,
        )
