"""yaxmpp: Yandex.Disk change notifications over XMPP, with a blocking client.

::

    import yaxmpp

    with yaxmpp.Client("login", token) as client:
        print(client.jid)

The protocol core (:mod:`yaxmpp.protocol`) is sans-IO; :class:`Client` drives it over a
socket with TLS and a background reader thread.  :mod:`yaxmpp.testing` is a loopback
stand-in for push.xmpp.yandex.ru.
"""

from ._version import __version__  # noqa: E402

import logging as _logging  # noqa: E402

# A library logs; the application decides where it goes (no "lastResort" output by default).
_logging.getLogger("yaxmpp").addHandler(_logging.NullHandler())

from .protocol import redact as _redact  # noqa: E402

# Every logger yaxmpp writes to masks the secrets of the client a record is about (the
# redactor bound to the logging thread, or named by the record), traceback included.
_redact.install("yaxmpp", "yaxmpp.xml", "yaxmpp.testing")

from .client import DEFAULT_HOST, Client  # noqa: E402
from .options import Options  # noqa: E402
from .session import State  # noqa: E402
from .errors import (  # noqa: E402
    AuthError,
    APIError,
    ClientClosed,
    ConnectError,
    ConnectionLost,
    Error,
    IqError,
    LocalProtocolError,
    NetworkError,
    ProtocolError,
    StreamError,
    SubscribeError,
    Timeout,
    TLSError,
    UsageError,
)
from .protocol.disk import Change, Notification  # noqa: E402
from .resync import Resync  # noqa: E402
from .policy import Reconnect  # noqa: E402
from .protocol.limits import Limits  # noqa: E402
from .protocol.sasl import Mechanism, Plain, XOAuth2, XYandexOAuth  # noqa: E402

__all__ = [
    "__version__",
    "Client",
    "Options",
    "State",
    "DEFAULT_HOST",
    "Limits",
    "Reconnect",
    "Mechanism",
    "XYandexOAuth",
    "Plain",
    "XOAuth2",
    "Notification",
    "Resync",
    "Change",
    "SubscribeError",
    "Error",
    "ConnectError",
    "TLSError",
    "Timeout",
    "AuthError",
    "StreamError",
    "ProtocolError",
    "LocalProtocolError",
    "NetworkError",
    "UsageError",
    "IqError",
    "ConnectionLost",
    "ClientClosed",
    "APIError",
]
