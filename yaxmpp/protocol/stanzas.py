"""Outgoing XML, byte for byte: the stream header and the stanzas the client sends.

Templates follow the official connection steps (``shared/seeds``) where those give bytes.
Every value that comes from outside (ids, JIDs, names) is escaped here.
"""

from __future__ import annotations

import re
from typing import List, Optional

from . import ns

__all__ = [
    "escape_text",
    "escape_attr",
    "stream_header",
    "STREAM_CLOSE",
    "STARTTLS",
    "auth",
    "bind",
    "session",
    "iq",
    "iq_result",
    "iq_results",
    "iq_error",
    "version_result",
]

_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


_TEXT_SPECIAL = re.compile(r"[&<>]").search
_ATTR_SPECIAL = re.compile(r'[&<>"\n\r\t]').search
_ATTR_CHARS = '&<>"\n\r\t'  # what _ATTR_SPECIAL finds


def escape_text(value: str) -> str:
    """Escape character data."""
    return value.translate(_TEXT) if _TEXT_SPECIAL(value) else value


def escape_attr(value: str) -> str:
    """Escape a value for a double-quoted attribute."""
    return value.translate(_ATTR) if _ATTR_SPECIAL(value) else value


def stream_header(domain: str, lang: str = "en") -> bytes:
    """The stream header of step 1, with exactly the seed's attributes in the seed's order."""
    return (
        '<?xml version="1.0"?>\n'
        '<stream:stream xmlns:stream="%s" version="1.0" xmlns="%s" to="%s" xml:lang="%s" xmlns:xml="%s">'
        % (ns.STREAMS, ns.CLIENT, escape_attr(domain), escape_attr(lang), ns.XML)
    ).encode("utf-8")


STREAM_CLOSE = b"</stream:stream>"
STARTTLS = ('<starttls xmlns="%s"/>' % ns.TLS).encode()
COMPRESS_ZLIB = '<compress xmlns="%s"><method>zlib</method></compress>' % ns.COMPRESS


def auth(mechanism: str, payload_b64: Optional[str]) -> str:
    """``<auth>`` with the base64 initial response (``=`` for an empty one, RFC 6120 6.4.2)."""
    head = '<auth xmlns="%s" mechanism="%s">' % (ns.SASL, escape_attr(mechanism))
    if payload_b64 is None:
        return head[:-1] + "/>"
    return head + (payload_b64 or "=") + "</auth>"


def sasl_response(payload_b64: str) -> str:
    return '<response xmlns="%s">%s</response>' % (ns.SASL, payload_b64 or "=")


def bind(iq_id: str, resource: Optional[str]) -> str:
    if resource is None:
        return '<iq type="set" id="%s"><bind xmlns="%s"/></iq>' % (escape_attr(iq_id), ns.BIND)
    return '<iq type="set" id="%s"><bind xmlns="%s"><resource>%s</resource></bind></iq>' % (
        escape_attr(iq_id),
        ns.BIND,
        escape_text(resource),
    )


def session(iq_id: str) -> str:
    return '<iq type="set" id="%s"><session xmlns="%s"/></iq>' % (escape_attr(iq_id), ns.SESSION)


def _iq_head(iq_type: str, to: Optional[str], iq_id: str) -> str:
    if to is None:
        return '<iq type="%s" id="%s"' % (iq_type, escape_attr(iq_id))
    return '<iq type="%s" to="%s" id="%s"' % (iq_type, escape_attr(to), escape_attr(iq_id))


def iq(iq_type: str, to: Optional[str], iq_id: str, payload: str = "") -> str:
    """An iq with ``payload`` (already serialised XML) as its child."""
    head = _iq_head(iq_type, to, iq_id)
    return head + ("/>" if not payload else ">" + payload + "</iq>")


def iq_result(to: Optional[str], iq_id: str) -> str:
    """An empty result: the ping reply of the seed, and the acknowledgement of a push."""
    if to is None:
        return '<iq type="result" id="%s"/>' % escape_attr(iq_id)
    return '<iq type="result" to="%s" id="%s"/>' % (escape_attr(to), escape_attr(iq_id))


def iq_results(to: Optional[str], iq_ids: "List[str]") -> Optional[str]:
    """The empty results of :func:`iq_result` for every id in ``iq_ids``, all to ``to``, in one
    string; None if an id needs escaping or is empty (then build them one by one).  One join
    and one search for all: the acknowledgements of a run of pushes cost no Python per push."""
    if not iq_ids or "" in iq_ids:
        return None
    joined = "".join(iq_ids)
    for char in _ATTR_CHARS:  # seven C searches per run: cheaper than a regex over the run
        if char in joined:
            return None
    head = '<iq type="result" id="' if to is None else '<iq type="result" to="%s" id="' % escape_attr(to)
    return head + ('"/>' + head).join(iq_ids) + '"/>'


def iq_error(to: Optional[str], iq_id: str, condition: str = "service-unavailable", error_type: str = "cancel") -> str:
    return '%s><error type="%s"><%s xmlns="%s"/></error></iq>' % (
        _iq_head("error", to, iq_id),
        error_type,
        condition,
        ns.STANZAS,
    )


def version_result(to: Optional[str], iq_id: str, name: str, version: str, os: Optional[str]) -> str:
    """The XEP-0092 answer of step 9."""
    body = "<name>%s</name><version>%s</version>" % (escape_text(name), escape_text(version))
    if os:
        body += "<os>%s</os>" % escape_text(os)
    return '%s><query xmlns="%s">%s</query></iq>' % (_iq_head("result", to, iq_id), ns.VERSION, body)
