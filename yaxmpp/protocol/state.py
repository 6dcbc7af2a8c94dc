"""The steps of a client stream and every transition between them, in one table.

:class:`~yaxmpp.protocol.core.ClientProtocol` changes its step only through
:func:`check_transition`; a change the table does not list is a bug of the core (or of its
driver) and raises :class:`~yaxmpp.errors.LocalProtocolError`.

::

    STREAM ──header──> FEATURES ──no TLS yet──> STARTTLS ──<proceed/>──> TLS ──handshake──> STREAM
                          │  ├──zlib offered──> COMPRESS ──<compressed/>──> COMPRESSION ──> STREAM
                          │  │                     └──<failure/>──> AUTH or BIND
                          │  ├──not authenticated──> AUTH ──<success/>──> STREAM
                          │  └──authenticated──> BIND ──result──> SESSION ──result──> ESTABLISHED
    any step but CLOSED ──close()──> CLOSING ──server's close──> CLOSED
    any step ──failure, end of file, connection_lost()──> CLOSED

During TLS and COMPRESSION the driver changes the transport and nothing may be written, so
``close()`` there goes straight to CLOSED.
"""

from __future__ import annotations

import enum
from typing import Dict, FrozenSet, Tuple

from ..errors import LocalProtocolError

__all__ = ["Step", "INITIAL", "TRANSITIONS", "NEGOTIATING", "DRIVER_TURN", "AFTER_AUTH", "check_transition"]


class Step(enum.Enum):
    """Where the connection is; the value says it in words (it names the step in timeouts)."""

    STREAM = "waiting for the server's stream header"
    FEATURES = "waiting for the stream features"
    STARTTLS = "waiting for <proceed/> after <starttls/>"
    TLS = "TLS handshake"
    COMPRESS = "waiting for <compressed/> after <compress/>"
    COMPRESSION = "starting zlib compression"
    AUTH = "waiting for the SASL result"
    BIND = "waiting for the resource binding result"
    SESSION = "waiting for the session result"
    ESTABLISHED = "session open"
    CLOSING = "waiting for the server to close the stream"
    CLOSED = "closed"


#: The step of a new core.
INITIAL = Step.STREAM

_S = Step

#: For each step, the steps it may go to (CLOSED is reachable from everywhere but itself).
TRANSITIONS: Dict[Step, FrozenSet[Step]] = {
    # the server's header opens the stream
    _S.STREAM: frozenset({_S.FEATURES, _S.CLOSING, _S.CLOSED}),
    # what the features allow: STARTTLS first, then compression, SASL, or binding
    _S.FEATURES: frozenset({_S.STARTTLS, _S.COMPRESS, _S.AUTH, _S.BIND, _S.CLOSING, _S.CLOSED}),
    # <proceed/>: the driver's TLS handshake
    _S.STARTTLS: frozenset({_S.TLS, _S.CLOSING, _S.CLOSED}),
    # tls_established() restarts the stream; nothing can be written during the handshake
    _S.TLS: frozenset({_S.STREAM, _S.CLOSED}),
    # <compressed/>, or a refusal and on to SASL (before authentication) or binding (after)
    _S.COMPRESS: frozenset({_S.COMPRESSION, _S.AUTH, _S.BIND, _S.CLOSING, _S.CLOSED}),
    # compression_established() restarts the stream
    _S.COMPRESSION: frozenset({_S.STREAM, _S.CLOSED}),
    # <success/> restarts the stream (challenges stay in AUTH)
    _S.AUTH: frozenset({_S.STREAM, _S.CLOSING, _S.CLOSED}),
    _S.BIND: frozenset({_S.SESSION, _S.CLOSING, _S.CLOSED}),
    _S.SESSION: frozenset({_S.ESTABLISHED, _S.CLOSING, _S.CLOSED}),
    _S.ESTABLISHED: frozenset({_S.CLOSING, _S.CLOSED}),
    # our close is out: only the server's close (or a failure) remains
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}


#: Steps of the negotiation: the parser stops after each stanza, so that bytes after
#: ``<proceed/>`` or ``<compressed/>`` are left for the new transport.
NEGOTIATING: Tuple[Step, ...] = (
    _S.STREAM, _S.FEATURES, _S.STARTTLS, _S.COMPRESS, _S.AUTH, _S.BIND, _S.SESSION
)
#: Steps in which the driver changes the transport: nothing is read or written by the core.
DRIVER_TURN: Tuple[Step, ...] = (_S.TLS, _S.COMPRESSION)
#: Steps after authentication in which stanzas the core does not handle go to the driver.
AFTER_AUTH: Tuple[Step, ...] = (_S.BIND, _S.SESSION, _S.ESTABLISHED, _S.CLOSING)


def check_transition(old: Step, new: Step) -> None:
    """Raise :class:`LocalProtocolError` unless the table allows going from ``old`` to ``new``."""
    if new not in TRANSITIONS[old]:
        raise LocalProtocolError("the core may not go from %s to %s (a bug)" % (old.name, new.name))
