"""The public blocking client: ``Client(login, token).connect()`` ... ``close()``.

A thin facade: it builds the :class:`~yaxmpp.options.Options` from its keywords and hands
every call to the :class:`~yaxmpp.session.Session` that owns the client's life.
"""

from __future__ import annotations

import ssl
from typing import Any, Callable, Iterator, Optional
from xml.etree.ElementTree import Element

from ._version import __version__
from .diskapi import DEFAULT_API_URL
from .errors import Error, Timeout
from .options import DEFAULT_HOST, Options
from .policy import Reconnect
from .protocol.limits import Limits
from .protocol.sasl import Mechanism
from .resync import Item
from .session import Session, State

__all__ = ["Client", "DEFAULT_HOST"]


class Client:
    """A Yandex.Disk push client for one account.

    ``connect()`` blocks until the session is open (steps 1-8 of the connection sequence) and
    subscribed; from then on a background thread reads the stream and answers the server's
    pings and version queries by itself.  ``close()`` ends the stream politely and joins the
    threads.  A closed client may be connected again.

    ``host`` is where to connect and the name the server certificate must match (also after
    a ``see-other-host`` redirect); ``domain`` is the stream's ``to``.  ``port`` is the
    STARTTLS port; if the TCP connect to it fails and ``tls_port`` is set, the client connects
    to ``tls_port`` with TLS from the first byte (``port=None``: direct TLS only;
    ``tls_port=None``: no fallback).  ``cafile`` defaults to certifi's bundle;
    ``ssl_context`` replaces the whole TLS setup.  ``resource=None`` lets the server choose
    the resource.  ``limits`` caps what the server may send (see :class:`yaxmpp.Limits`).

    Timeouts, each in seconds: ``timeout`` bounds ``connect()`` as a whole (name resolution,
    TCP, TLS, every step, the subscription); ``close_timeout`` bounds ``close()``;
    ``request_timeout`` (default: ``timeout``) bounds ``request()`` and ``subscribe()``.

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

    Staying connected: after ``keepalive`` seconds without data from the server the client
    pings it, and if nothing arrives within ``keepalive_timeout`` more the connection counts
    as broken.  With ``reconnect=yaxmpp.Reconnect(...)`` a broken connection is re-established
    (and re-subscribed) in the background; ``notifications()`` and ``on_notification`` carry
    on across reconnects.  ``on_connect(client)`` and ``on_disconnect(error)`` report each
    transition (``error`` is None after ``close()``); like ``on_notification`` they run on the
    dispatcher thread, never on the reader.

    Missed changes: after every reconnect (never after the first connect) one
    :class:`yaxmpp.Resync` comes in the notification stream (pull and callback alike) before
    any push of the new session: changes made while disconnected are never pushed again.
    With ``check_revision=True`` each session start also asks the Disk REST API at
    ``api_url`` for the disk's revision (within ``api_timeout``, on a thread of its own,
    never delaying the XMPP session), and the resync says whether it changed.

    Invalid options raise :class:`yaxmpp.UsageError` (a ``ValueError``) here, at once.
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
        close_timeout: float = 5.0,
        request_timeout: Optional[float] = None,
        cafile: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        client_name: str = "yaxmpp",
        client_version: str = __version__,
        client_os: Optional[str] = None,
        limits: Optional[Limits] = None,
        subscribe: bool = True,
        on_notification: Optional[Callable[[Item], None]] = None,
        max_pending: int = 10000,
        compress: bool = False,
        reconnect: Optional[Reconnect] = None,
        keepalive: Optional[float] = 60.0,
        keepalive_timeout: float = 20.0,
        on_connect: Optional[Callable[["Client"], None]] = None,
        on_disconnect: Optional[Callable[[Optional[Error]], None]] = None,
        max_redirects: int = 3,
        mechanism: "str | Mechanism | None" = None,
        check_revision: bool = False,
        api_url: str = DEFAULT_API_URL,
        api_timeout: float = 10.0,
    ) -> None:
        options = Options(
            login,
            token,
            host=host,
            port=port,
            tls_port=tls_port,
            domain=domain,
            resource=resource,
            timeout=timeout,
            close_timeout=close_timeout,
            request_timeout=request_timeout,
            cafile=cafile,
            ssl_context=ssl_context,
            client_name=client_name,
            client_version=client_version,
            client_os=client_os,
            limits=limits,
            subscribe=subscribe,
            on_notification=on_notification,
            max_pending=max_pending,
            compress=compress,
            reconnect=reconnect,
            keepalive=keepalive,
            keepalive_timeout=keepalive_timeout,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
            max_redirects=max_redirects,
            mechanism=mechanism,
            check_revision=check_revision,
            api_url=api_url,
            api_timeout=api_timeout,
        )
        self._session = Session(options, self)

    # -- configuration and state ---------------------------------------------------------

    @property
    def options(self) -> Options:
        """The client's configuration (read-only)."""
        return self._session.options

    @property
    def login(self) -> str:
        return self._session.options.login

    @property
    def host(self) -> str:
        return self._session.options.host

    @property
    def domain(self) -> str:
        return self._session.options.domain

    @property
    def timeout(self) -> float:
        return self._session.options.timeout

    @property
    def number(self) -> int:
        """This client's number in the names of its threads (``yaxmpp-reader-N`` aside)."""
        return self._session.number

    @property
    def jid(self) -> Optional[str]:
        """The JID the server bound, e.g. ``test@ya.ru/YaDisk-client``; None when not connected."""
        connection = self._session.connection
        return connection.jid if connection is not None else None

    @property
    def stream_id(self) -> Optional[str]:
        """The id of the server's current stream; None when not connected."""
        connection = self._session.connection
        return connection.stream_id if connection is not None else None

    @property
    def connected(self) -> bool:
        """True while the session is open."""
        connection = self._session.connection
        return connection is not None and connection.established

    @property
    def state(self) -> State:
        """Where the client is in its life (:class:`yaxmpp.State`)."""
        return self._session.state

    @property
    def port(self) -> Optional[int]:
        """The server port of the current connection (the STARTTLS or the direct-TLS port)."""
        connection = self._session.connection
        return connection.port if connection is not None else None

    @property
    def compressed(self) -> bool:
        """True when the current stream is zlib-compressed (asked for with ``compress=True``)."""
        connection = self._session.connection
        return connection is not None and connection.compressed

    @property
    def tls_version(self) -> Optional[str]:
        connection = self._session.connection
        return connection.tls_version if connection is not None else None

    @property
    def refused_notifications(self) -> int:
        """Pushes refused because ``max_pending`` notifications were already waiting."""
        return self._session.delivery.refused

    @property
    def pending_notifications(self) -> int:
        """Received pushes not yet taken by the consumer."""
        return len(self._session.delivery)

    # -- life ----------------------------------------------------------------------------

    def connect(self, timeout: Optional[float] = None, *, retry: bool = False) -> "Client":
        """Connect, open the session and subscribe within ``timeout`` (default: ``timeout``).

        Follows ``see-other-host`` redirects (at most ``max_redirects``).  Returns the client.
        On failure raises a :class:`yaxmpp.Error` subclass and leaves no socket or thread
        behind.  Calling it while connected does nothing; after ``close()`` or a failure it
        connects anew.  A second ``connect()`` while one runs raises :class:`yaxmpp.UsageError`.

        ``retry=True`` (needs ``reconnect``, else :class:`yaxmpp.UsageError`): a failure of the
        network's (:class:`~yaxmpp.ConnectError`, :class:`~yaxmpp.Timeout`,
        :class:`~yaxmpp.ConnectionLost`) is retried like a reconnect, with the policy's delays,
        give-up rule and ``on_retry``, ``timeout`` bounding each attempt; it returns once
        connected, raises the last error when the policy gives up, or
        :class:`~yaxmpp.ClientClosed` when ``close()`` stops it.  Any other failure (TLS,
        authentication, usage, stream or protocol errors) is raised at once.
        """
        self._session.connect(timeout, retry)
        return self

    def close(self, timeout: Optional[float] = None) -> None:
        """End the stream and the connection within ``timeout`` (default: ``close_timeout``).

        Sends ``</stream:stream>``, waits for the server's, closes the socket and joins the
        reader thread, then lets queued callbacks finish (within what is left of the timeout)
        and joins their thread.  Stops reconnecting, also during a backoff wait.  Idempotent
        and safe from any thread, callbacks included; also stops a ``connect()`` in progress
        in another thread, which then raises :class:`yaxmpp.ClientClosed`.
        """
        self._session.close(timeout)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the client has ended: closed (from any thread or callback) or given up.

        Returns True after ``close()``; raises the error that ended the client otherwise;
        returns False if ``timeout`` passed first.  The main loop of a callback program.
        """
        return self._session.wait(timeout)

    def subscribe(self, timeout: Optional[float] = None) -> None:
        """Subscribe to Disk pushes (done by ``connect()`` unless ``subscribe=False``).

        Blocks until the server answers, at most ``timeout`` (default: ``request_timeout``).
        Raises :class:`yaxmpp.SubscribeError` when the server refuses.
        """
        self._session.subscribe(timeout)

    def request(self, payload: str, *, type: str = "get", to: Optional[str] = None, timeout: Optional[float] = None) -> Element:
        """Send an iq ``get`` or ``set`` whose child is ``payload`` (one serialised XML element)
        and wait for the answer, at most ``timeout`` (default: ``request_timeout``).  Returns the
        result ``iq`` element; raises :class:`yaxmpp.IqError` for an error answer,
        :class:`yaxmpp.Timeout` when none came, :class:`yaxmpp.UsageError` for a payload that
        is not well-formed XML.  Only an answer from the JID the request went to counts.  Safe
        from any thread: stanzas never interleave on the wire."""
        return self._session.request(payload, type, to, timeout)

    # -- notifications -------------------------------------------------------------------

    def get_notification(self, timeout: Optional[float] = None) -> Item:
        """The next Disk push (or :class:`yaxmpp.Resync` after a reconnect), waiting at most
        ``timeout`` seconds (None: until one comes or the client ends).  Raises
        :class:`yaxmpp.Timeout` if none came in time,
        :class:`yaxmpp.ClientClosed` after ``close()`` once all received pushes were taken,
        or the error that ended the client."""
        self._session.check_pull()
        notification = self._session.next_notification(timeout)
        if notification is None:
            raise Timeout("no notification within %gs" % (timeout or 0.0), "waiting for a notification")
        return notification

    def notifications(self, timeout: Optional[float] = None) -> Iterator[Item]:
        """Iterate over Disk pushes in arrival order (with a :class:`yaxmpp.Resync` after
        each reconnect, before the new session's pushes).

        Blocks while waiting.  Ends after ``timeout`` seconds without a new push (when given),
        or after ``close()`` once everything received has been yielded.  If the client ended
        any other way (broken connection without reconnect, the reconnect policy gave up, a
        failure inside the library), yields what was received, then raises the error saying
        why.  Raises :class:`yaxmpp.UsageError` when ``on_notification`` is set.
        """
        session = self._session
        session.check_pull()
        take, seconds = session.notification_taker(timeout)  # a bad timeout raises here, at the call
        return self._iterate(take, seconds)

    def _iterate(self, take: "Callable[[Optional[float]], Optional[Item]]", seconds: Optional[float]) -> Iterator[Item]:
        session = self._session
        while True:
            try:
                notification = take(seconds)
            except Error:
                if session.delivery.error is None:
                    return  # closed by the user: the end of the iteration
                raise
            if notification is None:
                return  # ``timeout`` passed without a push
            yield notification

    def __enter__(self) -> "Client":
        return self.connect()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<yaxmpp.Client login=%r host=%r %s>" % (self.login, self.host, self._session.describe())
