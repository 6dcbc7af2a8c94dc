"""The exception taxonomy: one base class, grouped by what a caller can do about a failure.

::

    Error
    ├── UsageError (also ValueError)    the caller passed something unusable
    ├── LocalProtocolError              the sans-IO core was driven wrongly
    ├── NetworkError                    the connection could not be made or kept
    │   ├── ConnectError (ConnectionError)   DNS, refused, unreachable
    │   ├── TLSError                         handshake, certificate, no STARTTLS
    │   ├── Timeout (TimeoutError)           a deadline passed; ``.step`` names it
    │   └── ConnectionLost                   broken, or closed by the server
    ├── ProtocolError                   the server broke the protocol
    ├── StreamError                     ``<stream:error>``; ``.condition``
    ├── AuthError                       SASL failure; ``.condition``
    ├── IqError                         an iq request was refused; ``.condition``
    │   └── SubscribeError                   the Disk push subscription was refused
    ├── APIError                        an HTTPS API (Disk REST, OAuth) said no; ``.status``, ``.error``
    └── ClientClosed                    the client was closed by its user

Every error pickles and unpickles to an equal message and equal fields: each class passes
exactly its constructor's arguments to :class:`Exception`, so ``args`` rebuilds it.  Messages
never carry the OAuth token: they are built from conditions and server texts, and those are
masked by the client's redactor before an error is raised (see :mod:`yaxmpp.protocol.redact`).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

__all__ = [
    "Error",
    "UsageError",
    "NetworkError",
    "ConnectError",
    "TLSError",
    "Timeout",
    "AuthError",
    "StreamError",
    "ProtocolError",
    "LocalProtocolError",
    "IqError",
    "ConnectionLost",
    "ClientClosed",
    "SubscribeError",
    "APIError",
]


class Error(Exception):
    """Base class of every yaxmpp error."""


class UsageError(Error, ValueError):
    """An argument the library cannot work with (a bad option, an absurd timeout, a payload
    that is not XML, a call that does not fit the client's configuration).  Also a
    :class:`ValueError`."""


class LocalProtocolError(Error):
    """The protocol core was driven wrongly by its caller (a bug in the driver, not the server)."""


class NetworkError(Error):
    """The connection to the server could not be made or kept: catch this one for every
    failure of the network or of the peer's transport (:class:`ConnectError`,
    :class:`TLSError`, :class:`Timeout`, :class:`ConnectionLost`)."""


class ConnectError(NetworkError, ConnectionError):
    """The server could not be reached (DNS, refused, unreachable, TCP timeout).

    ``host`` and ``port`` say where (``port`` None when no port was tried yet, e.g. DNS).
    Also a built-in :class:`ConnectionError`.
    """

    def __init__(self, message: str, host: Optional[str] = None, port: Optional[int] = None) -> None:
        super().__init__(message)  # one argument: OSError would read more as errno and strerror
        self.host = host
        self.port = port

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.args[0], self.host, self.port))


class TLSError(NetworkError):
    """The TLS handshake or certificate check failed, or TLS was not offered.

    Raised too when the server does not offer ``<starttls/>`` on the STARTTLS port: the
    client never authenticates over an unencrypted stream.
    """


class Timeout(NetworkError, TimeoutError):
    """A deadline passed.  ``step`` names what was being waited for (e.g. ``"TLS handshake"``),
    when known.  Also a built-in :class:`TimeoutError`."""

    def __init__(self, message: str, step: Optional[str] = None) -> None:
        super().__init__(message)  # one argument: OSError would read more as errno and strerror
        self.step = step

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.args[0], self.step))


class ConnectionLost(NetworkError):
    """The connection ended without the caller closing it: broken by the network or the peer,
    or closed by the server."""


class ProtocolError(Error):
    """The server broke the protocol or sent hostile or malformed XML."""


class _Conditioned(Error):
    """An error with an RFC 6120 ``condition`` and an optional server ``text``."""

    condition: str
    text: Optional[str]

    def __str__(self) -> str:
        return self._message()

    def _message(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class AuthError(_Conditioned):
    """SASL authentication failed.  ``condition`` is the RFC 6120 condition, e.g. ``not-authorized``."""

    def __init__(self, condition: str, text: Optional[str] = None) -> None:
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def _message(self) -> str:
        message = "authentication failed: %s" % self.condition
        if self.text:
            message += " (%s)" % self.text
        return message


class StreamError(_Conditioned):
    """The server ended the stream with ``<stream:error>``.

    ``condition`` is the RFC 6120 condition (``conflict``, ``see-other-host``, ...), ``text`` the
    optional human-readable text, ``other_host`` the host named by ``see-other-host`` (only
    when the client may follow it: never before TLS).
    """

    def __init__(self, condition: str, text: Optional[str] = None, other_host: Optional[str] = None) -> None:
        super().__init__(condition, text, other_host)
        self.condition = condition
        self.text = text
        self.other_host = other_host

    def _message(self) -> str:
        message = "stream error from server: %s" % self.condition
        if self.other_host:
            message += " -> %s" % self.other_host
        if self.text:
            message += " (%s)" % self.text
        return message


class IqError(_Conditioned):
    """An iq request was answered with ``type="error"``.

    ``what`` names the request, ``condition`` is the stanza error condition
    (``service-unavailable``, ``conflict``, ...), ``type`` the error type (``cancel``,
    ``auth``, ...), ``text`` its optional text.
    """

    def __init__(self, what: str, condition: str, type: Optional[str] = None, text: Optional[str] = None) -> None:
        super().__init__(what, condition, type, text)
        self.what = what
        self.condition = condition
        self.type = type
        self.text = text

    def _message(self) -> str:
        message = "%s failed: %s" % (self.what, self.condition)
        if self.text:
            message += " (%s)" % self.text
        return message


class SubscribeError(IqError):
    """The Disk push subscription was refused; ``condition`` says why."""

    def __init__(self, condition: str, type: Optional[str] = None, text: Optional[str] = None) -> None:
        _Conditioned.__init__(self, condition, type, text)
        self.what = "Disk push subscription"
        self.condition = condition
        self.type = type
        self.text = text


class ClientClosed(Error):
    """The operation needs an open client, but the client was closed by its user."""


class APIError(Error):
    """An HTTPS API (the Disk REST API, Yandex OAuth) answered with an error, or with
    something that is not the JSON it documents.

    ``status`` is the HTTP status (None when the answer was not HTTP at all), ``error`` the
    API's machine-readable error (``UnauthorizedError``, ``authorization_pending``, ...) when
    it gave one, ``description`` its human-readable text.  Secrets the request carried are
    masked out of both before this is raised.
    """

    def __init__(self, message: str, status: Optional[int] = None, error: Optional[str] = None, description: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.description = description

    def __reduce__(self) -> Tuple[Any, ...]:
        return (type(self), (self.args[0], self.status, self.error, self.description))
