"""What ``yaxmpp watch`` prints: one event record per change or resync, as JSON or as one
escaped text line, and the ``--path``/``--type`` filters.

A record is a dict ready for :func:`json.dumps`:

- ``{"event": "change", "type", "path", "disk_path", "fid", "size", "received_at", ...,
  "op": {...}, "query": {...}}``: one per ``<op>`` of a push (one with empty fields for a push
  without any).  ``received_at`` is an ISO 8601 UTC time with milliseconds; every attribute of
  the ``op`` is under ``"op"`` (as the server sent it), and also at the top level when its
  name is not one of the record's own keys; the ``query`` element's attributes are under
  ``"query"``.
- ``{"event": "resync", "since", "until", "reason"}`` (epoch seconds as floats, the reason in
  words), plus ``"revision_changed"``, ``"revision"`` and ``"previous_revision"`` when the
  REST revision check is on.

Text lines are fields separated by one space: ``received_at type path`` and then
``key=value`` fields.  No field ever holds a space, a control character or a line break: each
such character and the backslash are escaped (:func:`escape`), so ``line.split(" ")`` always
gives the fields, and :func:`unescape` (or ``printf '%b'`` in bash) gives the text back.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence

from ..protocol.disk import disk_path

__all__ = [
    "Event",
    "events_of",
    "change_records",
    "resync_record",
    "text_line",
    "escape",
    "unescape",
    "iso",
    "Filter",
]

#: The keys a change record has of its own (op attributes of these names only go under "op").
CHANGE_KEYS = ("event", "type", "path", "disk_path", "fid", "size", "received_at", "op", "query")
_OWN_OP_ATTRS = ("type", "key", "fid", "size")


class Event(NamedTuple):
    """One record and when it happened (``time.time()``: a change's arrival, a resync's end)."""

    record: Dict[str, Any]
    at: float


def iso(timestamp: float) -> str:
    """``timestamp`` as ISO 8601 UTC with milliseconds, e.g. ``2026-12-01T23:10:00.123Z``."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def change_records(notification: Any) -> List[Dict[str, Any]]:
    """One record per change of a push (one with empty fields for a push without changes)."""
    received = iso(notification.received_at)
    query = dict(notification.attrs)
    changes = notification.changes
    if not changes:
        return [
            {
                "event": "change",
                "type": None,
                "path": None,
                "disk_path": None,
                "fid": None,
                "size": None,
                "received_at": received,
                "op": {},
                "query": query,
            }
        ]
    records = []
    for change in changes:
        attrs = dict(change.attrs)
        record: Dict[str, Any] = {
            "event": "change",
            "type": change.type,
            "path": change.path,
            "disk_path": change.disk_path,
            "fid": change.fid,
            "size": change.size,
            "received_at": received,
        }
        for key, value in attrs.items():
            if key not in _OWN_OP_ATTRS and key not in CHANGE_KEYS:
                record[key] = value
        record["op"] = attrs
        record["query"] = query
        records.append(record)
    return records


def resync_record(resync: Any, check_revision: bool = False) -> Dict[str, Any]:
    """The record of a :class:`yaxmpp.Resync` (the revision fields only with the check on)."""
    record: Dict[str, Any] = {
        "event": "resync",
        "since": float(resync.since),
        "until": float(resync.until),
        "reason": str(resync.reason),
    }
    if check_revision:
        record["revision_changed"] = resync.revision_changed
        record["revision"] = resync.revision
        record["previous_revision"] = resync.previous_revision
    return record


def events_of(item: Any, check_revision: bool = False) -> List[Event]:
    """The events of one item of ``client.notifications()``: a resync or a push."""
    if getattr(item, "is_resync", False):
        return [Event(resync_record(item, check_revision), float(item.until))]
    at = float(item.received_at)
    return [Event(record, at) for record in change_records(item)]


# -- text lines ----------------------------------------------------------------------------

#: What is escaped: the backslash, every whitespace character (str.isspace(): the space, tabs,
#: line breaks of every kind, the no-break space...), every other C0/C1 control and DEL.
_ESCAPED = re.compile(r"[\\\s\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHORT = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_UNESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[\\ntr])")
_SHORT_BACK = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r"}


def _escape_one(match: "re.Match[str]") -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if code <= 0xFF:
        return "\\x%02x" % code
    if code <= 0xFFFF:
        return "\\u%04x" % code
    return "\\U%08x" % code  # pragma: no cover - no whitespace or control lies beyond the BMP


def escape(text: str) -> str:
    """``text`` as one field: ``\\`` becomes ``\\\\``, newline ``\\n``, tab ``\\t``, carriage
    return ``\\r``; the space and every other whitespace or control character ``\\xHH`` or
    ``\\uHHHH``.  An empty text is written ``-``, like an absent value; a lone ``-`` is
    written ``\\x2d``."""
    if text == "-":
        return "\\x2d"
    if not text:
        return "-"
    return _ESCAPED.sub(_escape_one, text)


def unescape(field: str) -> str:
    """The text of a field written by :func:`escape` (``-`` gives the empty text)."""
    if field == "-":
        return ""

    def back(match: "re.Match[str]") -> str:
        code = match.group(1)
        if len(code) == 1:
            return _SHORT_BACK[code]
        return chr(int(code[1:], 16))

    return _UNESCAPE.sub(back, field)


def _field(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def text_line(record: Mapping[str, Any]) -> str:
    """One line (without its newline) for a record: ``received_at type path key=value...``."""
    if record.get("event") == "resync":
        parts = [iso(record["until"]), "resync", "-", "since=" + iso(record["since"]), "reason=" + _field(record["reason"])]
        if "revision_changed" in record:
            changed = record["revision_changed"]
            parts.append("revision_changed=" + ("unknown" if changed is None else _field(changed)))
        return " ".join(parts)
    parts = [record["received_at"], _field(record["type"]), _field(record["path"])]
    if record["size"] is not None:
        parts.append("size=%d" % record["size"])
    if record["fid"] is not None:
        parts.append("fid=" + _field(record["fid"]))
    for key, value in record.items():
        if key not in CHANGE_KEYS:
            parts.append("%s=%s" % (escape(key), _field(value)))
    return " ".join(parts)


# -- filters -------------------------------------------------------------------------------


def _normal_prefix(prefix: str) -> str:
    path = disk_path(prefix) or prefix
    if not path.startswith("/"):
        path = "/" + path
    while len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


class Filter:
    """``--path PREFIX`` (any of them) and ``--type TYPE`` (any of them); both must match.

    A prefix matches a change whose disk path is the prefix or lies under it, whichever key
    form the server used and the prefix is written in (``/disk/Photos``, ``disk:/Photos`` and
    ``/Photos`` are one prefix; ``/Photos`` does not match ``/Photos2``).  A key in neither
    known form is compared as it is.  Resync events always pass.
    """

    def __init__(self, paths: Optional[Sequence[str]] = None, types: Optional[Sequence[str]] = None) -> None:
        self.paths = tuple(_normal_prefix(p) for p in paths or ())
        self.types = frozenset(types or ())

    @property
    def active(self) -> bool:
        return bool(self.paths or self.types)

    def passes(self, record: Mapping[str, Any]) -> bool:
        if record.get("event") != "change":
            return True
        if self.types and record.get("type") not in self.types:
            return False
        if self.paths:
            path = record.get("disk_path") or record.get("path")
            if path is None:
                return False
            return any(prefix == "/" or path == prefix or path.startswith(prefix + "/") for prefix in self.paths)
        return True

    def select(self, events: Iterable[Event]) -> List[Event]:
        return [event for event in events if self.passes(event.record)]
