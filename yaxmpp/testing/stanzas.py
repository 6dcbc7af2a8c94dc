"""Every piece of XML the stand-in server writes, built in one place.

Each builder returns ``str``; the conversation encodes.  :func:`serialize` writes a parsed
element back out (for stanzas the server routes from one session to another), with default
namespace declarations as servers write them.
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional
from xml.etree.ElementTree import Element

from ..protocol import ns
from ..protocol.disk import push_xml
from ..protocol.stanzas import escape_attr, escape_text

__all__ = [
    "DISCO_INFO",
    "ROSTER",
    "query_xml",
    "stream_header",
    "stream_error",
    "features",
    "iq",
    "iq_result",
    "iq_error",
    "error_type",
    "ping",
    "version_query",
    "push",
    "bind_result",
    "session_result",
    "sasl_failure",
    "serialize",
]

DISCO_INFO = "http://jabber.org/protocol/disco#info"
ROSTER = "jabber:iq:roster"
DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
STREAM_CLOSE = "</stream:stream>"

#: The RFC 6120 (8.3.3) error type of the conditions the server sends; others are "cancel".
_ERROR_TYPES = {
    "bad-request": "modify",
    "not-acceptable": "modify",
    "jid-malformed": "modify",
    "not-authorized": "auth",
    "forbidden": "auth",
    "resource-constraint": "wait",
}


def _attrs(pairs: Iterable["tuple[str, Optional[str]]"]) -> str:
    return "".join(' %s="%s"' % (name, escape_attr(value)) for name, value in pairs if value is not None)


def query_xml(changes: List[Dict[str, str]], attrs: Optional[Dict[str, str]] = None) -> str:
    """A Disk push ``<query>`` with one ``<op>`` per change inside a ``<diff>``."""
    head = _attrs((k, v) for k, v in (attrs or {}).items())
    ops = "".join("<op%s/>" % _attrs((k, str(v)) for k, v in op.items()) for op in changes)
    return '<query xmlns="%s"%s><diff>%s</diff></query>' % (ns.DISK, head, ops)


def stream_header(stream_id: str, sender: Optional[str]) -> str:
    """The server's stream header, as the seed shows it (numeric id, single quotes)."""
    source = " from='%s'" % escape_attr(sender) if sender else ""
    return (
        "<?xml version='1.0'?>\n<stream:stream xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' id='%s'%s version='1.0' xml:lang='en'>"
        % (escape_attr(stream_id), source)
    )


def stream_error(condition: str, text: Optional[str] = None) -> str:
    """A stream error followed by the end of the stream (RFC 6120 4.9)."""
    body = "<%s xmlns='%s'/>" % (condition, ns.STREAM_ERRORS)
    if text:
        body += "<text xmlns='%s'>%s</text>" % (ns.STREAM_ERRORS, escape_text(text))
    return "<stream:error>%s</stream:error>%s" % (body, STREAM_CLOSE)


def features(*, starttls: bool, zlib: bool, mechanisms: Optional[Iterable[str]], bind: bool) -> str:
    """``<stream:features>``: ``mechanisms`` None leaves SASL out, empty gives the seed's
    empty ``<mechanisms/>``; ``bind`` adds bind and the RFC 3921 session."""
    body = '<starttls xmlns="%s"/>' % ns.TLS if starttls else ""
    if zlib:
        body += '<compression xmlns="%s"><method>zlib</method></compression>' % ns.COMPRESS_FEATURE
    if mechanisms is not None:
        offered = "".join("<mechanism>%s</mechanism>" % escape_text(m) for m in mechanisms)
        body += '<mechanisms xmlns="%s"%s' % (ns.SASL, ">%s</mechanisms>" % offered if offered else "/>")
    if bind:
        body += '<bind xmlns="%s"/><session xmlns="%s"/>' % (ns.BIND, ns.SESSION)
    return "<stream:features>%s</stream:features>" % body


def iq(iq_type: str, iq_id: Optional[str], payload: str = "", sender: Optional[str] = None, to: Optional[str] = None) -> str:
    """Any iq; attributes in the order the seed writes them (type, id, from, to)."""
    head = "<iq%s" % _attrs((("type", iq_type), ("id", iq_id), ("from", sender), ("to", to)))
    return head + (">%s</iq>" % payload if payload else "/>")


def iq_result(iq_id: Optional[str], payload: str = "", sender: Optional[str] = None, to: Optional[str] = None) -> str:
    return iq("result", iq_id, payload, sender, to)


def error_type(condition: str) -> str:
    return _ERROR_TYPES.get(condition, "cancel")


def iq_error(iq_id: Optional[str], condition: str, sender: Optional[str] = None, to: Optional[str] = None) -> str:
    """An iq error with a defined condition (and its RFC 6120 error type)."""
    payload = '<error type="%s"><%s xmlns="%s"/></error>' % (error_type(condition), condition, ns.STANZAS)
    return iq("error", iq_id, payload, sender, to)


def message_error(message_id: Optional[str], condition: str, sender: Optional[str] = None) -> str:
    """A message bounced with a defined condition (what a server answers a message it will
    not take)."""
    head = "<message%s>" % _attrs((("type", "error"), ("id", message_id), ("from", sender)))
    return head + '<error type="%s"><%s xmlns="%s"/></error></message>' % (error_type(condition), condition, ns.STANZAS)


def ping(iq_id: str, sender: str, to: Optional[str]) -> str:
    """A XEP-0199 ping as in the seed."""
    return iq("get", iq_id, '<ping xmlns="%s"/>' % ns.PING, sender, to)


def version_query(iq_id: str, sender: str, to: Optional[str]) -> str:
    """The XEP-0092 query of the seed's step 9."""
    return iq("get", iq_id, '<query xmlns="%s"/>' % ns.VERSION, sender, to)


def push(iq_id: str, query: str, sender: Optional[str], to: Optional[str]) -> str:
    """A Disk push iq around a ``<query>`` (see :func:`query_xml`)."""
    return push_xml(iq_id, query, sender, to)


def bind_result(iq_id: str, jid: str) -> str:
    """The answer to the bind request, exactly as the seed's step 7 shows it."""
    return '<iq xmlns="jabber:client" type="result" id="%s"><bind xmlns="%s"><jid>%s</jid></bind></iq>' % (
        escape_attr(iq_id),
        ns.BIND,
        escape_text(jid),
    )


def session_result(iq_id: str) -> str:
    """The answer to the session request, as the seed's step 8 shows it."""
    return '<iq type="result" id="%s"><session xmlns="%s"/></iq>' % (escape_attr(iq_id), ns.SESSION)


def sasl_failure(condition: str) -> str:
    return '<failure xmlns="%s"><%s/></failure>' % (ns.SASL, condition)


def _split(tag: str) -> "tuple[str, str]":
    if tag.startswith("{"):
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return "", tag


def serialize(elem: Element, parent_ns: str = "") -> str:
    """``elem`` as XML text: a default ``xmlns`` wherever the namespace changes, ``xml:lang``
    as such, other namespaced attributes under their own prefixes."""
    uri, local = _split(elem.tag)
    out = ["<", local]
    if uri != parent_ns:
        out.append(' xmlns="%s"' % escape_attr(uri))
    prefixes = 0
    for name, value in elem.attrib.items():
        attr_ns, attr_local = _split(name)
        if not attr_ns:
            out.append(' %s="%s"' % (attr_local, escape_attr(value)))
        elif attr_ns == ns.XML:
            out.append(' xml:%s="%s"' % (attr_local, escape_attr(value)))
        else:
            prefixes += 1
            out.append(' xmlns:a%d="%s" a%d:%s="%s"' % (prefixes, escape_attr(attr_ns), prefixes, attr_local, escape_attr(value)))
    children = list(elem)
    if not children and not elem.text:
        out.append("/>")
    else:
        out.append(">")
        out.append(escape_text(elem.text or ""))
        for child in children:
            out.append(serialize(child, uri))
            out.append(escape_text(child.tail or ""))
        out.append("</%s>" % local)
    return "".join(out)
