"""Events the protocol core hands to its driver: small, immutable, one class per happening."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, List, Optional, Union
from xml.etree.ElementTree import Element

from ..errors import Error, IqError

if TYPE_CHECKING:
    from .disk import Compact

__all__ = [
    "Event",
    "StreamOpened",
    "TLSRequested",
    "CompressionRequested",
    "Authenticated",
    "Bound",
    "SessionStarted",
    "RequestAnswered",
    "IqResponse",
    "StanzaReceived",
    "PushesReceived",
    "StreamClosed",
]


class Event:
    """Base class of core events."""

    __slots__ = ()


@dataclass(frozen=True)
class StreamOpened(Event):
    """The server opened (or re-opened) its stream; ``step`` says which restart it was."""

    stream_id: Optional[str]
    step: str


@dataclass(frozen=True)
class TLSRequested(Event):
    """The server said ``<proceed/>``: the driver must now run the TLS handshake, then call
    :meth:`ClientProtocol.tls_established`.  ``leftover`` holds bytes read past ``<proceed/>``:
    they belong to the TLS layer and must be fed to it first."""

    leftover: bytes = b""


@dataclass(frozen=True)
class CompressionRequested(Event):
    """The server said ``<compressed/>``: the driver must switch both directions of the
    transport to zlib, then call :meth:`ClientProtocol.compression_established`."""


@dataclass(frozen=True)
class Authenticated(Event):
    mechanism: str


@dataclass(frozen=True)
class Bound(Event):
    jid: str


@dataclass(frozen=True)
class SessionStarted(Event):
    """Steps 1-8 are done: the session is open."""

    jid: str
    stream_id: Optional[str]


@dataclass(frozen=True)
class RequestAnswered(Event):
    """The core answered a server request by itself: ``kind`` is ``ping``, ``version`` or
    ``unsupported`` (an iq error ``service-unavailable``)."""

    kind: str
    iq_id: str
    sender: Optional[str]


@dataclass(frozen=True)
class IqResponse(Event):
    """The answer to an iq sent with :meth:`ClientProtocol.send_iq`; ``error`` is set when the
    answer was ``type="error"``."""

    iq_id: str
    element: Element = field(compare=False)
    error: Optional[IqError] = None


@dataclass(frozen=True)
class StanzaReceived(Event):
    """A stanza the core does not handle itself (messages, presences, other iqs)."""

    element: Element = field(compare=False)


class PushesReceived(Event):
    """Disk pushes (iq ``set`` with ``<query xmlns="yandex:push:disk">``) that arrived one
    after another, as parallel lists: ``iq_ids``, ``senders`` (their ``from``) and ``queries``
    (the query elements, or for a push of the usual shape taken by the parser's fast path its
    :data:`~yaxmpp.protocol.disk.Compact` attributes; :class:`~yaxmpp.Notification` takes either).  A run of pushes is one event: at thousands of pushes a second, an
    object per push would cost more than the parsing.  The core does not answer them: the
    driver calls :meth:`ClientProtocol.acknowledge_all` once they are safe.  Read-only."""

    __slots__ = ("iq_ids", "senders", "queries")

    def __init__(self) -> None:
        self.iq_ids: List[str] = []
        self.senders: List[Optional[str]] = []
        self.queries: List[Union[Element, "Compact"]] = []

    def __len__(self) -> int:
        return len(self.iq_ids)

    def __repr__(self) -> str:
        return "PushesReceived(iq_ids=%r)" % (self.iq_ids,)


@dataclass(frozen=True)
class StreamClosed(Event):
    """The stream is over.  ``error`` is ``None`` when the client closed it and the server
    answered; otherwise it says why it ended (server close, broken connection, stream error,
    authentication failure, protocol violation).  Always the last event."""

    error: Optional[Error] = None
