"""The public blocking client: ``Client(login, token).connect()`` ... ``close()``."""

from __future__ import annotations

import itertools
import logging
import math
import ssl
import threading
from typing import Any, Callable, Iterator, List, Optional
from xml.etree.ElementTree import Element

from . import __version__
from .connection import Connection, Settings
from .deadline import Deadline
from .dial import parse_host_port
from .dispatcher import Call, Dispatcher
from .errors import ClientClosed, Error, IqError, StreamError, SubscribeError, Timeout
from .inbox import Inbox
from .policy import Reconnect
from .supervisor import Supervisor
from .protocol.core import VersionInfo
from .protocol.disk import Notification, subscribe_payload, subscribe_target
from .protocol.limits import Limits
from .protocol.sasl import Mechanism, make_mechanism
from .tls import create_default_context

__all__ = ["Client", "DEFAULT_HOST"]

DEFAULT_HOST = "push.xmpp.yandex.ru"

_clients = itertools.count(1)
log = logging.getLogger("yaxmpp")


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

    Disk pushes: ``connect()`` subscribes (``subscribe=False`` leaves it to
    :meth:`subscribe`).  Pushes are read with :meth:`notifications` or
    :meth:`get_notification`, or, with ``on_notification`` set, passed to that callable on a
    dedicated thread.  At most ``max_pending`` received pushes wait for the consumer; pushes
    beyond that are refused (answered with an error, not acknowledged) and counted in
    :attr:`refused_notifications`.

    ``mechanism`` picks the SASL mechanism: ``"X-YANDEX-OAUTH"`` (the default, what
    push.xmpp.yandex.ru wants), ``"PLAIN"`` or ``"X-OAUTH2"`` (both with the token as the
    secret), or any :class:`yaxmpp.Mechanism`.  No mechanism ever sends anything before TLS.

    ``compress=True`` asks for zlib stream compression (XEP-0138) when the server offers it,
    never before TLS; if the server refuses, the client goes on uncompressed.

    Staying connected: after ``keepalive`` seconds without a byte from the server the client
    pings it, and if nothing arrives within ``keepalive_timeout`` more the connection counts
    as broken.  With ``reconnect=yaxmpp.Reconnect(...)`` a broken connection is re-established
    (and re-subscribed) in the background; ``notifications()`` and ``on_notification`` carry
    on across reconnects.  ``on_connect(client)`` and ``on_disconnect(error)`` report each
    transition (``error`` is None after ``close()``); like ``on_notification`` they run on the
    dispatcher thread, never on the reader.
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
        subscribe: bool = True,
        on_notification: Optional[Callable[[Notification], None]] = None,
        max_pending: int = 10000,
        compress: bool = False,
        reconnect: Optional[Reconnect] = None,
        keepalive: Optional[float] = 60.0,
        keepalive_timeout: float = 20.0,
        on_connect: Optional[Callable[["Client"], None]] = None,
        on_disconnect: Optional[Callable[[Optional[Error]], None]] = None,
        max_redirects: int = 3,
        mechanism: "str | Mechanism | None" = None,
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
        if keepalive is not None and not keepalive > 0:
            raise ValueError("keepalive must be a positive number of seconds, or None")
        if not keepalive_timeout > 0:
            raise ValueError("keepalive_timeout must be a positive number of seconds")
        if reconnect is not None and not isinstance(reconnect, Reconnect):
            raise TypeError("reconnect must be a yaxmpp.Reconnect policy or None")
        if resource == "":
            raise ValueError("resource must be a non-empty string, or None to let the server choose")
        self.login = login
        self.host = host
        self.timeout = float(timeout)
        self._settings = Settings(
            mechanism=make_mechanism(mechanism, login, token),
            host=host,
            port=port,
            tls_port=tls_port,
            domain=domain,
            resource=resource,
            timeout=self.timeout,
            ssl_context=ssl_context if ssl_context is not None else create_default_context(cafile),
            version=VersionInfo(client_name, client_version, client_os),
            limits=limits or Limits(),
            compress=compress,
            keepalive=keepalive,
            keepalive_timeout=keepalive_timeout,
        )
        self.domain = domain
        self.number = next(_clients)
        self._subscribe_on_connect = subscribe
        self._on_notification = on_notification
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._reconnect = reconnect
        self._max_redirects = max_redirects
        self._inbox: Inbox[Any] = Inbox(max_pending)
        self._inbox.end(ClientClosed("the client is not connected"))
        # Callbacks run on the dispatcher thread, fed by the notification inbox when
        # on_notification is set (so they keep their order), else by an inbox of their own.
        self._calls: Optional[Inbox[Any]] = None
        if on_notification is not None:
            self._calls = self._inbox
        elif on_connect is not None or on_disconnect is not None:
            self._calls = Inbox(1)
        self._dispatcher: Optional[Dispatcher] = None
        self._supervisor: Optional[Supervisor] = None
        self._closed = False
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
    def compressed(self) -> bool:
        """True when the current stream is zlib-compressed (asked for with ``compress=True``)."""
        conn = self._connection
        return conn is not None and conn.transport is not None and conn.transport.compressed

    @property
    def refused_notifications(self) -> int:
        """Pushes refused because ``max_pending`` notifications were already waiting."""
        return self._inbox.refused

    @property
    def pending_notifications(self) -> int:
        """Received pushes not yet taken by the consumer."""
        return len(self._inbox)

    @property
    def tls_version(self) -> Optional[str]:
        conn = self._connection
        return conn.transport.tls_version if conn is not None and conn.transport is not None else None

    # -- life ----------------------------------------------------------------------------

    def connect(self, timeout: Optional[float] = None) -> "Client":
        """Connect, open the session and subscribe within ``timeout`` (default: the client's).

        Follows ``see-other-host`` redirects (at most ``max_redirects``).  Returns the client.
        On failure raises a :class:`yaxmpp.Error` subclass and leaves no socket or thread
        behind.  Calling it while connected does nothing.
        """
        deadline = Deadline(self.timeout if timeout is None else timeout)
        with self._lock:
            current = self._connection
            if current is not None and not current.ended:
                if current.core is not None and current.core.established:
                    return self
                raise Error("connect() is already in progress in another thread")
            self._closed = False
            self._inbox.reopen()
            if self._calls is not self._inbox and self._calls is not None:
                self._calls.reopen()
        try:
            connection = self._open(deadline, None)
        except Error as exc:
            self._give_up(exc)  # a consumer waiting for notifications learns why none come
            raise
        if self._calls is not None and (self._dispatcher is None or not self._dispatcher.alive):
            self._dispatcher = Dispatcher(self._calls, self._on_notification, "yaxmpp-dispatch-%d" % self.number)
            self._dispatcher.start()
        self._post(self._on_connect, self)
        if self._reconnect is not None:
            supervisor = Supervisor(self, self._reconnect, connection, "yaxmpp-reconnect-%d" % self.number)
            with self._lock:
                previous, self._supervisor = self._supervisor, supervisor
            if previous is not None:
                previous.stop()
                previous.join(1.0)
            supervisor.start()
        return self

    def _open(self, deadline: Deadline, redirect: Optional[str]) -> Connection:
        """One connect: dial, negotiate, subscribe; follow redirects; clean up on failure."""
        settings = self._settings
        redirects = 0
        while True:
            if redirect is not None:
                host, port = parse_host_port(redirect)
                settings = self._settings.redirected(host, port)
                log.info("redirected to %s", redirect)
            connection = Connection(settings, self)
            with self._lock:
                if self._closed:
                    raise ClientClosed("the client was closed")
                self._connection = connection
            try:
                connection.open(deadline)
                if self._subscribe_on_connect:
                    self._subscribe(connection, deadline)
                return connection
            except BaseException as exc:
                connection.close(Deadline(min(1.0, deadline.remaining() or 0.0)))
                with self._lock:
                    if self._connection is connection:
                        self._connection = None
                other = exc.other_host if isinstance(exc, StreamError) else None
                if other is None or redirects >= self._max_redirects:
                    raise
                redirects += 1
                redirect = other

    def _reopen(self, redirect: Optional[str]) -> Connection:
        """A reconnect, from the supervisor thread."""
        connection = self._open(Deadline(self.timeout), redirect)
        log.info("reconnected as %s", connection.core.jid if connection.core is not None else None)
        self._post(self._on_connect, self)
        return connection

    def _give_up(self, error: Optional[Error]) -> None:
        """The reconnect policy gave up: the consumer learns why."""
        self._inbox.end(error)
        if self._calls is not None and self._calls is not self._inbox:
            self._calls.end(error)

    def _post(self, function: Optional[Callable[..., Any]], *args: Any) -> None:
        """Run a lifecycle callback on the dispatcher thread (never on the reader)."""
        if function is not None and self._calls is not None:
            self._calls.put_control(Call(function, *args))

    def subscribe(self, timeout: Optional[float] = None) -> None:
        """Subscribe to Disk pushes (done by ``connect()`` unless ``subscribe=False``).

        Blocks until the server answers, at most ``timeout`` (default: the client's).  Raises
        :class:`yaxmpp.SubscribeError` when the server refuses.
        """
        self._subscribe(self._require_connection(), Deadline(self.timeout if timeout is None else timeout))

    def _subscribe(self, connection: Connection, deadline: Deadline) -> None:
        to = subscribe_target(self.login, self.domain)
        try:
            connection.request("set", subscribe_payload(), to, deadline.remaining())
        except IqError as exc:
            raise SubscribeError(exc.condition, exc.type, exc.text) from None
        except Timeout:
            raise Timeout("no answer to the Disk push subscription within %gs" % deadline.seconds) from None
        log.info("subscribed to Disk pushes for %s", to)

    def request(self, payload: str, *, type: str = "get", to: Optional[str] = None, timeout: Optional[float] = None) -> Element:
        """Send an iq ``get`` or ``set`` whose child is ``payload`` (serialised XML) and wait for
        the answer, at most ``timeout`` (default: the client's).  Returns the result ``iq``
        element; raises :class:`yaxmpp.IqError` for an error answer, :class:`yaxmpp.Timeout`
        when none came.  Safe from any thread: stanzas never interleave on the wire."""
        connection = self._require_connection()
        return connection.request(type, payload, to, self.timeout if timeout is None else timeout)

    # -- notifications ---------------------------------------------------------------------

    def get_notification(self, timeout: Optional[float] = None) -> Notification:
        """The next Disk push, waiting at most ``timeout`` seconds (None: until one comes or
        the client ends).  Raises :class:`yaxmpp.Timeout` if none came in time,
        :class:`yaxmpp.ClientClosed` after ``close()`` once all received pushes were taken,
        or the error that ended the connection."""
        self._check_pull()
        return self._inbox.get(timeout)

    def notifications(self, timeout: Optional[float] = None) -> Iterator[Notification]:
        """Iterate over Disk pushes in arrival order.

        Blocks while waiting.  Ends after ``timeout`` seconds without a new push (when given),
        or after ``close()`` once everything received has been yielded.  If the connection
        ended any other way, yields what was received, then raises the error saying why.
        """
        self._check_pull()
        while True:
            try:
                notification = self._inbox.get(timeout)
            except (Timeout, ClientClosed):
                return
            yield notification

    def _check_pull(self) -> None:
        if self._on_notification is not None:
            raise RuntimeError("on_notification is set: notifications go to the callback only")

    def close(self, timeout: Optional[float] = None) -> None:
        """End the stream and the connection within ``timeout`` (default: the client's).

        Sends ``</stream:stream>``, waits for the server's, closes the socket and joins the
        reader thread, then lets queued callbacks finish (within what is left of the timeout)
        and joins their thread.  Stops reconnecting, also during a backoff wait.  Idempotent
        and safe from any thread, callbacks included; also stops a ``connect()`` in progress
        in another thread, which then raises :class:`yaxmpp.ClientClosed`.
        """
        deadline = Deadline(self.timeout if timeout is None else timeout)
        with self._lock:
            self._closed = True
            connection = self._connection
            supervisor = self._supervisor
        if supervisor is not None:
            supervisor.stop()
        if connection is not None:
            if connection.opened:
                connection.close(deadline)
            else:
                connection.abort()  # connect() in another thread raises ClientClosed
        if supervisor is not None:
            supervisor.join(max(0.5, deadline.remaining() or 0.0))
        self._inbox.end(None)
        if self._calls is not None and self._calls is not self._inbox:
            self._calls.end(None)
        dispatcher = self._dispatcher
        if dispatcher is not None:
            dispatcher.join(max(0.5, deadline.remaining() or 0.0))

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
        pass  # messages and presences carry nothing for this client

    def pushes_received(self, connection: Connection, notifications: List[Notification]) -> int:
        return self._inbox.put_many(notifications)

    def connection_ended(self, connection: Connection, error: Optional[Error]) -> None:
        if connection is not self._connection:
            return
        self._post(self._on_disconnect, error)
        if error is not None and self._reconnect is None:
            self._give_up(error)  # no reconnecting: the consumer learns why it ended
        # With a reconnect policy the supervisor (started by connect(), perhaps only after
        # this very connection ended) takes it from here.

    def _require_connection(self) -> Connection:
        connection = self._connection
        if connection is None:
            raise ClientClosed("the client is not connected")
        return connection
