"""The public blocking client: ``Client(login, token).connect()`` ... ``close()``."""

from __future__ import annotations

import math
import ssl
import threading
from typing import Any, Optional
from xml.etree.ElementTree import Element

from . import __version__
from .connection import Connection, Settings
from .deadline import Deadline
from .errors import ClientClosed, Error
from .protocol.core import VersionInfo
from .protocol.limits import Limits
from .protocol.sasl import XYandexOAuth
from .tls import create_default_context

__all__ = ["Client", "DEFAULT_HOST"]

DEFAULT_HOST = "push.xmpp.yandex.ru"


def _check_port(name: str, value: Optional[int]) -> None:
    if value is not None and (not isinstance(value, int) or not 0 < value < 65536):
        raise ValueError("%s must be a TCP port number or None" % name)


def _check_text(name: str, value: Optional[str]) -> None:
    if value is not None and (not isinstance(value, str) or any(ord(c) < 32 for c in value)):
        raise ValueError("%s must be a string without control characters" % name)


class Client:
    """A Yandex.Disk push client for one account.

    ``connect()`` blocks until the session is open (steps 1-8 of the connection sequence);
    from then on a background thread reads the stream and answers the server's pings and
    version queries by itself.  ``close()`` ends the stream politely and joins the thread.

    ``host`` is where to connect and the name the server certificate must match; ``domain`` is
    the stream's ``to``.  ``port`` is the STARTTLS port; if the TCP connect to it fails and
    ``tls_port`` is set, the client connects to ``tls_port`` with TLS from the first byte
    (``port=None``: direct TLS only; ``tls_port=None``: no fallback).  ``timeout`` is one
    overall deadline for ``connect()`` and the default bound of ``close()`` and requests.
    ``cafile`` defaults to certifi's bundle; ``ssl_context`` replaces the whole TLS setup.
    ``resource=None`` lets the server choose the resource.  ``limits`` caps what the server
    may send (see :class:`yaxmpp.Limits`).
    """

    def __init__(
        self,
        login: str,
        token: str,
        *,
        host: str = DEFAULT_HOST,
        port: Optional[int] = 5222,
        tls_port: Optional[int] = 443,
        domain: str = "ya.ru",
        resource: Optional[str] = "YaDisk-client",
        timeout: float = 30.0,
        cafile: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        client_name: str = "yaxmpp",
        client_version: str = __version__,
        client_os: Optional[str] = None,
        limits: Optional[Limits] = None,
    ) -> None:
        _check_text("login", login)
        _check_text("host", host)
        _check_text("domain", domain)
        _check_text("resource", resource)
        _check_text("client_name", client_name)
        _check_text("client_version", client_version)
        _check_text("client_os", client_os)
        _check_port("port", port)
        _check_port("tls_port", tls_port)
        if port is None and tls_port is None:
            raise ValueError("port and tls_port cannot both be None")
        if not isinstance(timeout, (int, float)) or not timeout > 0 or math.isinf(timeout):
            raise ValueError("timeout must be a positive number of seconds")
        if resource == "":
            raise ValueError("resource must be a non-empty string, or None to let the server choose")
        self.login = login
        self.host = host
        self.timeout = float(timeout)
        self._settings = Settings(
            mechanism=XYandexOAuth(login, token),
            host=host,
            port=port,
            tls_port=tls_port,
            domain=domain,
            resource=resource,
            timeout=self.timeout,
            ssl_context=ssl_context if ssl_context is not None else create_default_context(cafile),
            version=VersionInfo(client_name, client_version, client_os),
            limits=limits or Limits(),
        )
        self._lock = threading.Lock()
        self._connection: Optional[Connection] = None

    # -- state ---------------------------------------------------------------------------

    @property
    def jid(self) -> Optional[str]:
        """The JID the server bound, e.g. ``test@ya.ru/YaDisk-client``; None before connect()."""
        conn = self._connection
        return conn.core.jid if conn is not None and conn.core is not None else None

    @property
    def stream_id(self) -> Optional[str]:
        """The id of the server's current stream."""
        conn = self._connection
        return conn.core.stream_id if conn is not None and conn.core is not None else None

    @property
    def connected(self) -> bool:
        """True while the session is open."""
        conn = self._connection
        return conn is not None and conn.core is not None and conn.core.established and not conn.ended

    @property
    def port(self) -> Optional[int]:
        """The server port of the current connection (the STARTTLS or the direct-TLS port)."""
        conn = self._connection
        return conn.port if conn is not None else None

    @property
    def tls_version(self) -> Optional[str]:
        conn = self._connection
        return conn.transport.tls_version if conn is not None and conn.transport is not None else None

    # -- life ----------------------------------------------------------------------------

    def connect(self, timeout: Optional[float] = None) -> "Client":
        """Connect and open the session within ``timeout`` (default: the client's ``timeout``).

        Returns the client.  On failure raises a :class:`yaxmpp.Error` subclass and leaves no
        socket or thread behind.  Calling it while connected does nothing.
        """
        deadline = Deadline(self.timeout if timeout is None else timeout)
        with self._lock:
            current = self._connection
            if current is not None and not current.ended:
                if current.core is not None and current.core.established:
                    return self
                raise Error("connect() is already in progress in another thread")
            connection = Connection(self._settings, self)
            self._connection = connection
        try:
            connection.open(deadline)
        except BaseException:
            with self._lock:
                if self._connection is connection:
                    self._connection = None
            raise
        return self

    def close(self, timeout: Optional[float] = None) -> None:
        """End the stream and the connection within ``timeout`` (default: the client's).

        Sends ``</stream:stream>``, waits for the server's, closes the socket and joins the
        reader thread.  Idempotent and safe from any thread; also stops a ``connect()`` in
        progress in another thread, which then raises :class:`yaxmpp.ClientClosed`.
        """
        deadline = Deadline(self.timeout if timeout is None else timeout)
        with self._lock:
            connection = self._connection
        if connection is None:
            return
        if not connection.opened:
            connection.abort()
            return
        connection.close(deadline)

    def __enter__(self) -> "Client":
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.connected:
            state = "connected jid=%r" % self.jid
        elif self._connection is not None and not self._connection.ended:
            state = "connecting"
        else:
            state = "closed"
        return "<yaxmpp.Client login=%r host=%r %s>" % (self.login, self.host, state)

    # -- sink: called on the reader thread, must return at once ----------------------------

    def stanza_received(self, connection: Connection, element: Element) -> None:
        pass

    def connection_ended(self, connection: Connection, error: Optional[Error]) -> None:
        pass

    def _require_connection(self) -> Connection:
        connection = self._connection
        if connection is None:
            raise ClientClosed("the client is not connected")
        return connection
