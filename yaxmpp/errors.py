"""The exception taxonomy: one base class, one subclass per way a connection can fail.

Every error the library raises on purpose is a :class:`Error`.  Messages never carry the
OAuth token: they are built from conditions and server texts, and server texts are
scrubbed of the token before they get here (see :mod:`yaxmpp.redact`).
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "Error",
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
]


class Error(Exception):
    """Base class of every yaxmpp error."""


class ConnectError(Error):
    """The server could not be reached (DNS, refused, unreachable, TCP timeout)."""


class TLSError(Error):
    """The TLS handshake or certificate check failed, or TLS was not offered.

    Raised too when the server does not offer ``<starttls/>`` on the STARTTLS port: the
    client never authenticates over an unencrypted stream.
    """


class Timeout(Error, TimeoutError):
    """A deadline passed.  Also a built-in :class:`TimeoutError`."""


class AuthError(Error):
    """SASL authentication failed.  ``condition`` is the RFC 6120 condition, e.g. ``not-authorized``."""

    def __init__(self, condition: str, text: Optional[str] = None) -> None:
        self.condition = condition
        self.text = text
        message = "authentication failed: %s" % condition
        if text:
            message += " (%s)" % text
        super().__init__(message)


class StreamError(Error):
    """The server ended the stream with ``<stream:error>``.

    ``condition`` is the RFC 6120 condition (``conflict``, ``see-other-host``, ...), ``text`` the
    optional human-readable text, ``other_host`` the host named by ``see-other-host``.
    """

    def __init__(self, condition: str, text: Optional[str] = None, other_host: Optional[str] = None) -> None:
        self.condition = condition
        self.text = text
        self.other_host = other_host
        message = "stream error from server: %s" % condition
        if other_host:
            message += " -> %s" % other_host
        if text:
            message += " (%s)" % text
        super().__init__(message)


class ProtocolError(Error):
    """The server broke the protocol or sent hostile or malformed XML."""


class LocalProtocolError(Error):
    """The protocol core was driven wrongly by its caller (a bug in the driver, not the server)."""


class IqError(Error):
    """An iq request was answered with ``type="error"``.

    ``condition`` is the stanza error condition (``service-unavailable``, ``conflict``, ...),
    ``type`` the error type (``cancel``, ``auth``, ...), ``text`` its optional text.
    """

    def __init__(self, what: str, condition: str, type: Optional[str] = None, text: Optional[str] = None) -> None:
        self.condition = condition
        self.type = type
        self.text = text
        message = "%s failed: %s" % (what, condition)
        if text:
            message += " (%s)" % text
        super().__init__(message)


class ConnectionLost(Error):
    """The connection ended without the caller closing it: broken by the network or the peer,
    or closed by the server."""


class ClientClosed(Error):
    """The operation needs an open connection, but the client was closed by the caller."""


class SubscribeError(IqError):
    """The Disk push subscription was refused; ``condition`` says why."""

    def __init__(self, condition: str, type: Optional[str] = None, text: Optional[str] = None) -> None:
        super().__init__("Disk push subscription", condition, type, text)
