"""Yandex.Disk pushes: the subscription request and the notification format.

What is known (``docs/protocol.md``): the client subscribes with
``<iq to="LOGIN@ya.ru" type="set"><s xmlns="yandex:push:disk"/></iq>``; pushes arrive as iq
``set`` carrying ``<query xmlns="yandex:push:disk">`` with a ``<diff>`` of ``<op>`` elements
(``type``, ``fid``, ``key``, ``size``).  Everything else is unknown, so parsing keeps every
attribute and the raw element, and never fails on what it does not recognise.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping, Optional, Tuple
from xml.etree.ElementTree import Element

from . import ns
from .stanzas import escape_attr
from .xmltext import to_xml

__all__ = ["Change", "Notification", "subscribe_payload", "subscribe_target", "disk_path"]

SUBSCRIBE = '<s xmlns="%s"/>' % ns.DISK
_EMPTY: Mapping[str, str] = MappingProxyType({})


def subscribe_payload() -> str:
    """The child of the subscription iq."""
    return SUBSCRIBE


def subscribe_target(login: str, domain: str) -> str:
    """Where the subscription goes: the user's own bare JID, login lower-cased."""
    return "%s@%s" % (login.lower(), domain)


def disk_path(key: Optional[str]) -> Optional[str]:
    """The path inside the disk for a key in either known form, else None.

    ``/disk/a/b.txt`` and ``disk:/a/b.txt`` both give ``/a/b.txt``; ``/disk`` and ``disk:``
    give ``/``.
    """
    if key is None:
        return None
    if key == "/disk" or key.startswith("/disk/"):
        rest = key[5:]
    elif key.startswith("disk:"):
        rest = key[5:]
    else:
        return None
    if not rest.startswith("/"):
        rest = "/" + rest
    return rest


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


_DIFF = ns.qname(ns.DISK, "diff")
_OP = ns.qname(ns.DISK, "op")


class Change:
    """One ``<op>`` of a push: ``type`` (``new``, ``changed``, ``deleted``, ``published``,
    ``unpublished``, or whatever the server sends), ``path`` (the ``key`` as sent), ``fid``
    (a string), ``size`` (bytes as an int, or None), ``attrs`` (every attribute of the op).

    Read-only; the fields are read from the attributes when asked for.
    """

    __slots__ = ("_attrs",)

    def __init__(self, attrs: Mapping[str, str]) -> None:
        self._attrs = attrs

    @property
    def attrs(self) -> Mapping[str, str]:
        return MappingProxyType(self._attrs)

    @property
    def type(self) -> Optional[str]:
        return self._attrs.get("type")

    @property
    def path(self) -> Optional[str]:
        return self._attrs.get("key")

    @property
    def fid(self) -> Optional[str]:
        return self._attrs.get("fid")

    @property
    def size(self) -> Optional[int]:
        size = self._attrs.get("size")
        try:
            return int(size) if size is not None else None
        except ValueError:
            return None

    @property
    def disk_path(self) -> Optional[str]:
        """``path`` with its ``/disk`` or ``disk:`` prefix normalised away (see :func:`disk_path`)."""
        return disk_path(self.path)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Change):
            return NotImplemented
        return dict(self._attrs) == dict(other._attrs)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._attrs.items())))

    def __repr__(self) -> str:
        return "Change(type=%r, path=%r, fid=%r, size=%r)" % (self.type, self.path, self.fid, self.size)


class Notification:
    """One Disk push.

    ``changes`` (a tuple of :class:`Change`), ``attrs`` (the ``query``'s attributes),
    ``element`` (the ``query`` element), ``xml`` (its text), ``received_at`` (``time.time()``
    when it arrived), ``iq_id`` and ``sender`` (the push iq's ``id`` and ``from``).
    ``changes`` and ``xml`` are worked out on first use.
    """

    __slots__ = ("element", "received_at", "iq_id", "sender", "_changes", "_xml")

    #: False here, True on a :class:`yaxmpp.Resync` (the gap marker after a reconnect).
    is_resync = False

    def __init__(
        self,
        element: Element,
        received_at: float,
        iq_id: Optional[str] = None,
        sender: Optional[str] = None,
        changes: Optional[Tuple[Change, ...]] = None,
    ) -> None:
        self.element = element
        self.received_at = received_at
        self.iq_id = iq_id
        self.sender = sender
        self._changes = changes
        self._xml: Optional[str] = None

    @property
    def changes(self) -> Tuple[Change, ...]:
        changes = self._changes
        if changes is None:
            changes = self._changes = self.parse_changes(self.element)
        return changes

    @property
    def attrs(self) -> Mapping[str, str]:
        attrib = self.element.attrib
        return MappingProxyType(attrib) if attrib else _EMPTY

    @staticmethod
    def parse_changes(query: Element) -> Tuple[Change, ...]:
        """Every ``op`` inside a ``diff`` of the query (or directly inside it), in order."""
        changes = []
        for child in query:
            tag = child.tag
            if tag == _DIFF or _local(tag) == "diff":
                for op in child:
                    if op.tag == _OP or _local(op.tag) == "op":
                        changes.append(Change(op.attrib))
            elif tag == _OP or _local(tag) == "op":
                changes.append(Change(child.attrib))
        return tuple(changes)

    @classmethod
    def from_iq(cls, iq: Element, received_at: float) -> "Notification":
        query = iq.find(ns.DISK_QUERY)
        if query is None:
            raise ValueError("not a Disk push: no <query xmlns='%s'>" % ns.DISK)
        return cls(query, received_at, iq.get("id"), iq.get("from"))

    @property
    def xml(self) -> str:
        """The ``query`` element as XML text."""
        if self._xml is None:
            self._xml = to_xml(self.element)
        return self._xml

    def __repr__(self) -> str:
        return "Notification(changes=%r, attrs=%r)" % (self.changes, dict(self.attrs))


def push_xml(iq_id: str, query_xml: str, sender: Optional[str] = None, to: Optional[str] = None) -> str:
    """A push iq as the server sends it (used by the stand-in server and the tests)."""
    head = '<iq type="set" id="%s"' % escape_attr(iq_id)
    if sender:
        head += ' from="%s"' % escape_attr(sender)
    if to:
        head += ' to="%s"' % escape_attr(to)
    return head + ">" + query_xml + "</iq>"
