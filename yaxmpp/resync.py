"""The resync item: changes may have been missed while the connection was down.

A push is a hint, not a journal: nothing replays the changes made while the client was
disconnected.  So after every reconnect (never after the first connect) the client puts one
:class:`Resync` into the notification stream, before any push of the new session, for the pull
iterator and the callback alike.  It looks enough like a :class:`~yaxmpp.Notification` that code
reading ``notification.changes`` keeps working (it has none); code that cares tests
``isinstance(item, yaxmpp.Resync)`` or ``item.is_resync`` and resynchronises (lists the disk
again, or compares ``revision_changed``).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Optional, Tuple, Union

from .errors import Error
from .protocol.disk import Notification

__all__ = ["Resync", "Item"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Resync:
    """Changes may have been missed between ``since`` and ``until``.

    - ``since``: ``time.time()`` when the previous session was found lost;
    - ``until``: ``time.time()`` when the new session's subscription was confirmed (never
      later than the ``received_at`` of the first push after it);
    - ``reason``: why the connection was lost, in words (masked like every message);
      ``error``: that :class:`~yaxmpp.Error` itself (a :class:`~yaxmpp.ConnectionLost` when
      the server simply closed the stream or the connection);
    - ``revision_changed``: with the REST revision check on (``check_revision=True``),
      whether the disk's revision differs across the gap: True, False, or None when it could
      not be told (a request failed, or the check is off); ``revision`` and
      ``previous_revision`` are the numbers, when known.

    ``changes`` is empty, ``attrs`` is empty, ``received_at`` is ``until``, ``is_resync`` is
    True (and False on a :class:`~yaxmpp.Notification`).
    """

    __slots__ = ("since", "until", "reason", "error", "revision_changed", "revision", "previous_revision")

    is_resync = True
    changes: Tuple[Any, ...] = ()
    attrs: Mapping[str, str] = _EMPTY
    element = None
    iq_id = None
    sender = None
    xml = ""

    def __init__(
        self,
        since: float,
        until: float,
        reason: str,
        error: Optional[Error] = None,
        revision_changed: Optional[bool] = None,
        revision: Optional[int] = None,
        previous_revision: Optional[int] = None,
    ) -> None:
        self.since = since
        self.until = until
        self.reason = reason
        self.error = error
        self.revision_changed = revision_changed
        self.revision = revision
        self.previous_revision = previous_revision

    @property
    def received_at(self) -> float:
        return self.until

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resync):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__ if name != "error")

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Resync(since=%.3f, until=%.3f, reason=%r, revision_changed=%r)" % (
            self.since,
            self.until,
            self.reason,
            self.revision_changed,
        )


#: What the notification stream carries: a push, or the resync item of a reconnect.
Item = Union[Notification, Resync]
