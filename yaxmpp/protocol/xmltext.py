"""Serialising a received element back to readable XML (for logs and ``.xml`` texts).

ElementTree's own ``tostring`` invents ``ns0:`` prefixes; this writes default-namespace
declarations instead, the way XMPP servers write stanzas: ``<iq xmlns="jabber:client" ...>``.
"""

from __future__ import annotations

from typing import List, Optional
from xml.etree.ElementTree import Element

from . import ns
from .stanzas import escape_attr, escape_text

__all__ = ["to_xml"]

_XML_PREFIX = "{%s}" % ns.XML


def _split(tag: str) -> "tuple[Optional[str], str]":
    if tag[:1] == "{":
        uri, _, local = tag[1:].partition("}")
        return uri, local
    return None, tag


def _attr_name(name: str) -> str:
    if name.startswith(_XML_PREFIX):
        return "xml:" + name[len(_XML_PREFIX) :]
    if name[:1] == "{":
        # A namespaced attribute other than xml:*: keep its namespace visible.
        uri, local = _split(name)
        return "%s:%s" % (uri, local)
    return name


def _write(elem: Element, parent_ns: Optional[str], out: List[str]) -> None:
    uri, local = _split(elem.tag)
    out.append("<" + local)
    if uri != parent_ns:
        out.append(' xmlns="%s"' % escape_attr(uri or ""))
    for key, value in elem.attrib.items():
        out.append(' %s="%s"' % (_attr_name(key), escape_attr(value)))
    if elem.text is None and len(elem) == 0:
        out.append("/>")
    else:
        out.append(">")
        if elem.text:
            out.append(escape_text(elem.text))
        for child in elem:
            _write(child, uri, out)
            if child.tail:
                out.append(escape_text(child.tail))
        out.append("</%s>" % local)


def to_xml(elem: Element, parent_ns: Optional[str] = None) -> str:
    """``elem`` as XML text, with default-namespace declarations where the namespace changes.

    ``parent_ns`` is the namespace in scope around it (``None``: declare it on the root).
    """
    out: List[str] = []
    _write(elem, parent_ns, out)
    return "".join(out)
