"""Yandex.Disk pushes: the subscription request and the notification format.

What is known (``docs/protocol.md``): the client subscribes with
``<iq to="LOGIN@ya.ru" type="set"><s xmlns="yandex:push:disk"/></iq>``; pushes arrive as iq
``set`` carrying ``<query xmlns="yandex:push:disk">`` with a ``<diff>`` of ``<op>`` elements
(``type``, ``fid``, ``key``, ``size``).  Everything else is unknown, so parsing keeps every
attribute and the raw element, and never fails on what it does not recognise.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Dict, Iterable, Mapping, Optional, Tuple, Union
from xml.etree.ElementTree import Element, SubElement

from . import ns
from .stanzas import escape_attr
from .xmltext import to_xml

__all__ = [
    "Change",
    "Compact",
    "Notification",
    "compact_notifications",
    "rebuild_query",
    "subscribe_payload",
    "subscribe_target",
    "disk_path",
]

SUBSCRIBE = '<s xmlns="%s"/>' % ns.DISK
_EMPTY: Mapping[str, str] = MappingProxyType({})

#: A query of the usual shape by its attributes alone: the query's, and the op's (or a tuple of
#: them for several).  A :class:`Notification` can be made from it instead of an element.
Compact = Tuple[Dict[str, str], Union[Dict[str, str], Tuple[Dict[str, str], ...]]]


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

    # A push of the usual shape (a query holding one diff of ops, attributes only) is kept as
    # its attribute dictionaries alone until ``element`` is asked for: ``_attrs`` (the query's)
    # and ``_ops`` (the op's, or a tuple of them for several), dicts of strings, which the
    # cyclic garbage collector does not track, where the parsed elements are three or more
    # tracked objects per push (see :func:`compact_notifications`).  ``_element`` is None until then.
    __slots__ = ("_element", "received_at", "iq_id", "sender", "_changes", "_xml", "_attrs", "_ops")

    #: False here, True on a :class:`yaxmpp.Resync` (the gap marker after a reconnect).
    is_resync = False

    def __init__(
        self,
        element: "Union[Element, Compact]",
        received_at: float,
        iq_id: Optional[str] = None,
        sender: Optional[str] = None,
        changes: Optional[Tuple[Change, ...]] = None,
    ) -> None:
        self.received_at = received_at
        self.iq_id = iq_id
        self.sender = sender
        self._changes = changes
        self._xml: Optional[str] = None
        if type(element) is tuple:  # the compact form (see Compact), from the parser's fast path
            self._element: Optional[Element] = None
            self._attrs: Optional[Dict[str, str]] = element[0]
            self._ops: "Union[Dict[str, str], Tuple[Dict[str, str], ...], None]" = element[1]
        else:
            self._element = element  # type: ignore[assignment]
            self._attrs = None  # (see compact_notifications())
            self._ops = None

    @property
    def element(self) -> Element:
        element = self._element
        if element is None:
            element = self._element = rebuild_query(self._attrs, self._op_attrs())
        return element

    @element.setter
    def element(self, element: Element) -> None:
        self._element = element
        self._attrs = self._ops = None

    def _op_attrs(self) -> Tuple[Dict[str, str], ...]:
        ops = self._ops
        return (ops,) if type(ops) is dict else ops  # type: ignore[return-value]

    @property
    def changes(self) -> Tuple[Change, ...]:
        changes = self._changes
        if changes is None:
            if self._element is None:
                changes = self._changes = tuple(map(Change, self._op_attrs()))
            else:
                changes = self._changes = self.parse_changes(self.element)
        return changes

    @property
    def attrs(self) -> Mapping[str, str]:
        attrib = self._attrs if self._element is None else self.element.attrib
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


def _compact(query: Element) -> Optional[Compact]:
    """The attributes of ``query`` if they are all it holds: one ``diff`` (no attributes) of
    one or more ``op`` elements (no children), and no text or tail anywhere; else None."""
    if len(query) != 1 or query.text is not None or query.tail is not None:
        return None
    diff = query[0]
    if diff.tag != _DIFF or diff.text is not None or diff.tail is not None or diff.keys() or not len(diff):
        return None
    if len(diff) == 1:  # the usual push: one op
        op = diff[0]
        if op.tag != _OP or len(op) or op.text is not None or op.tail is not None:
            return None
        return query.attrib, op.attrib
    ops = diff[:]  # (a slice: iterating an element ends in an IndexError)
    for op in ops:
        if op.tag != _OP or len(op) or op.text is not None or op.tail is not None:
            return None
    return query.attrib, tuple([op.attrib for op in ops])


def rebuild_query(attrib: Optional[Dict[str, str]], ops: Tuple[Dict[str, str], ...]) -> Element:
    """The query element a compact push was made from (equal in tags, attributes and text)."""
    query = Element(ns.DISK_QUERY, attrib or {})
    diff = SubElement(query, _DIFF)
    for op in ops:
        SubElement(diff, _OP, op)
    return query


def compact_notifications(notifications: Iterable[object]) -> None:
    """Let the usual pushes among fresh ``notifications`` (nobody has looked at them yet) keep
    their attributes only, dropping their elements (made again if asked for): a backlog of
    queued pushes then costs the garbage collector one object each, not four or more.  What
    the notifications show is the same either way.  Others are left as they are."""
    for notification in notifications:
        if type(notification) is Notification:
            element = notification._element
            if element is not None and notification._changes is None and notification._xml is None:
                compact = _compact(element)
                if compact is not None:
                    notification._element = None
                    notification._attrs, notification._ops = compact


def push_xml(iq_id: str, query_xml: str, sender: Optional[str] = None, to: Optional[str] = None) -> str:
    """A push iq as the server sends it (used by the stand-in server and the tests)."""
    head = '<iq type="set" id="%s"' % escape_attr(iq_id)
    if sender:
        head += ' from="%s"' % escape_attr(sender)
    if to:
        head += ' to="%s"' % escape_attr(to)
    return head + ">" + query_xml + "</iq>"
