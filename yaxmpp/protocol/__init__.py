"""The sans-IO protocol core: no sockets, no threads, no clocks.

:class:`~yaxmpp.protocol.core.ClientProtocol` turns bytes into events and calls into bytes;
:class:`~yaxmpp.protocol.parser.StreamParser` is its incremental, defused XML reader.
"""

from .core import ClientProtocol, Step, VersionInfo
from .disk import Change, Notification
from .events import (
    Authenticated,
    Bound,
    CompressionRequested,
    Event,
    IqResponse,
    PushesReceived,
    RequestAnswered,
    SessionStarted,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    TLSRequested,
)
from .limits import Limits
from .parser import STREAM_END, StreamHeader, StreamParser
from .sasl import Mechanism, XYandexOAuth

__all__ = [
    "ClientProtocol",
    "Change",
    "Notification",
    "Step",
    "VersionInfo",
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
    "Limits",
    "StreamParser",
    "StreamHeader",
    "STREAM_END",
    "Mechanism",
    "XYandexOAuth",
]
