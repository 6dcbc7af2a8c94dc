"""A loopback stand-in for push.xmpp.yandex.ru that follows the official connection steps.

:class:`FakeServer` listens on 127.0.0.1 on two ports: one speaking STARTTLS (like 5222) and
one with TLS from the first byte (like 443), with the test certificate shipped in
``yaxmpp/testing/certs`` (valid for ``127.0.0.1`` and ``localhost``, signed by a test CA
that nothing trusts unless told to).  It checks the ``X-YANDEX-OAUTH`` token, binds, opens
the session, asks for the client's version, pings, routes stanzas between the sessions it
holds, answers the client's close, and records what every client sent so tests can assert
on the bytes.  :class:`~yaxmpp.testing.options.ServerOptions` make it misbehave the ways
tests need.

This module holds the listeners and the accepting thread; each connection is served by a
:class:`~yaxmpp.testing.session.ServerSession` on its own thread, whose
:class:`~yaxmpp.testing.conversation.Conversation` decides every answer.  The server runs
no user code.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import selectors
import socket
import ssl
import threading
from typing import Any, Dict, List, Optional, Tuple

from ..transport import Transport
from .options import CA_FILE, CERT_FILE, KEY_FILE, WRITE_MODES, ServerOptions
from .peer import ScriptedSession
from .router import Router
from .session import ServerSession
from .stanzas import query_xml

__all__ = [
    "FakeServer",
    "ServerSession",
    "ServerOptions",
    "ScriptedSession",
    "query_xml",
    "CA_FILE",
    "CERT_FILE",
    "KEY_FILE",
    "WRITE_MODES",
]

log = logging.getLogger("yaxmpp.testing")

_OPTION_ATTRIBUTES = frozenset(ServerOptions.names()) - {"starttls_port", "tls_port"}


class FakeServer:
    """The stand-in server.  Use it as a context manager, or call :meth:`start`/:meth:`stop`.

    ``accounts`` maps logins to tokens (``login``/``token`` add one).  ``client_options()``
    gives the keyword arguments that point a :class:`yaxmpp.Client` at this server.

    Everything else is a :class:`ServerOptions` field: pass ``options=ServerOptions(...)``,
    or the fields as keyword arguments (``FakeServer(write_mode="bytewise")``), or both (the
    keywords win).  :attr:`options` is the result.

    Disk pushes: :meth:`push` sends one to every subscribed client (``session.push`` to one);
    the clients' acknowledgements are recorded like every iq reply (``session.wait_reply``).
    A second account: :meth:`scripted_session`.
    """

    def __init__(
        self,
        login: Optional[str] = "test",
        token: Optional[str] = "t",
        *,
        accounts: Optional[Dict[str, str]] = None,
        options: Optional[ServerOptions] = None,
        **switches: Any,
    ) -> None:
        unknown = sorted(set(switches) - set(ServerOptions.names()))
        if unknown:
            raise TypeError("FakeServer got unknown option(s): %s" % ", ".join(unknown))
        self.options = dataclasses.replace(options or ServerOptions(), **switches)
        self.accounts: Dict[str, str] = dict(accounts or {})
        if login is not None and token is not None:
            self.accounts[login] = token
        self.router = Router()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(self.options.certfile, self.options.keyfile)
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

    # Every option also reads (and, for later connections, writes) as an attribute, as
    # before the options object: server.ping_interval, server.ask_version = False.  (The
    # attributes starttls_port and tls_port are the ports bound, the options those asked for.)
    def __getattr__(self, name: str) -> Any:
        if name in _OPTION_ATTRIBUTES and "options" in self.__dict__:
            return getattr(self.options, name)
        raise AttributeError("%r object has no attribute %r" % (type(self).__name__, name))

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OPTION_ATTRIBUTES and "options" in self.__dict__:
            value = dataclasses.replace(self.options, **{name: value})
            name = "options"
        object.__setattr__(self, name, value)

    @property
    def domain(self) -> str:
        return self.options.domain

    @property
    def host(self) -> str:
        return self.options.host

    @property
    def cafile(self) -> str:
        return self.options.cafile

    @property
    def mechanisms(self) -> Tuple[str, ...]:
        return self.options.mechanisms

    @property
    def write_mode(self) -> str:
        return self.options.write_mode

    # -- life ----------------------------------------------------------------------------

    def start(self) -> "FakeServer":
        """Listen (OSError if a port is taken) and start accepting."""
        try:
            self.starttls_port = self._listen(self.options.starttls_port, direct_tls=False)
            if self.options.tls_port is not None:
                self.tls_port = self._listen(self.options.tls_port, direct_tls=True)
        except BaseException:
            for sock, _ in self._listeners:
                sock.close()
            self._listeners.clear()
            raise
        self._wake_r, self._wake_w = socket.socketpair()
        self._accepter = threading.Thread(target=self._accept_loop, name="yaxmpp-testing-accept", daemon=True)
        self._accepter.start()
        return self

    def _listen(self, port: int, direct_tls: bool) -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
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

    # -- driving -------------------------------------------------------------------------

    def live_sessions(self) -> List[ServerSession]:
        """The connections not yet ended, oldest first."""
        return [s for s in list(self.sessions) if not s.ended.is_set()]

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
            for session in self.live_sessions()
            if session.subscribed.is_set()
        ]

    def wait_for_session(self, index: int = -1, timeout: float = 5.0) -> ServerSession:
        """Wait until a connection exists (the last one by default) and return it."""
        with self._sessions_cond:
            want = index + 1 if index >= 0 else 1
            if not self._sessions_cond.wait_for(lambda: len(self.sessions) >= want, timeout):
                raise TimeoutError("no client connected within %gs" % timeout)
            return self.sessions[index]

    def scripted_session(self, login: str = "other", resource: str = "scripted") -> ScriptedSession:
        """Bind ``login@domain/resource`` for the test to drive (see
        :class:`~yaxmpp.testing.peer.ScriptedSession`): another account on this server."""
        return ScriptedSession(self, "%s@%s/%s" % (login, self.domain, resource))

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

    def _serve(self, conn: socket.socket, direct_tls: bool, number: int) -> None:
        session = ServerSession(self, number, Transport(conn), direct_tls)
        with self._sessions_cond:
            self.sessions.append(session)
            self._sessions_cond.notify_all()
        session.run()
        if session.error is not None:
            log.debug("connection %d ended: %r", number, session.error)
