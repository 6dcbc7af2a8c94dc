"""The parser's fast path: Disk pushes of the usual shape, recognised straight from the bytes.

Nearly everything a long-lived stream carries is pushes of one shape::

    <iq type="set" id="…" from="…" to="…"><query xmlns="yandex:push:disk" …><diff><op type="…" key="…" …/></diff></query></iq>

Run through expat and ElementTree, each one costs about 35,000 instructions (most of the
client's work per push); recognised here by one regular expression, a few thousand.  Between
stanzas, :class:`~yaxmpp.protocol.parser.StreamParser` first hands the bytes to :func:`scan`,
which takes the pushes at their front and leaves everything from the first byte it is not sure
of to expat, as if the fast path did not exist.

What is taken is a strict subset of well-formed XML whose meaning is fixed, so nothing of the
parser's guard is skipped:

- exactly ``iq`` > ``query`` > ``diff`` (no attributes) > one or more empty ``op``, with no text,
  comment, CDATA, PI or whitespace between them (whitespace only inside tags and before the
  ``<iq``), so the nesting is four levels (:class:`~yaxmpp.Limits` allows no fewer);
- unprefixed ASCII names; ``xmlns`` only as the query's, exactly ``yandex:push:disk``, or the
  iq's, exactly ``jabber:client`` (which must otherwise be the stream's default namespace);
- attribute values without ``<``, ``&`` (so no reference of any kind), control characters
  (tab, CR and LF included, which expat would normalise) or anything that is not a valid XML
  character in valid UTF-8; no attribute twice; ``type="set"`` on the iq;
- the whole of it within both the stanza and the tag byte limits.

Anything else, including a push of another shape, goes to expat.  The differential tests feed
the same bytes to a parser with and without this path, split at every byte, and require the
same stanzas and the same errors.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional
from xml.etree.ElementTree import Element

from . import ns
from .disk import Compact, rebuild_query

__all__ = ["Push", "scan"]

_S = "[ \t\r\n]"
_NAME = "[A-Za-z_][A-Za-z0-9._-]*"
# Valid XML characters of valid UTF-8 (the bytes are decoded with "surrogateescape", so an
# invalid byte is a lone surrogate) other than "<", "&", controls and the closing quote.
_CHARS = "<&\x00-\x1f\ud800-\udfff\ufffe\uffff"
_VALUE = "(?:\"[^\"%s]*\"|'[^'%s]*')" % (_CHARS, _CHARS)
_ATTRS = "(?:%s+%s%s*=%s*%s)*" % (_S, _NAME, _S, _S, _VALUE)

_PUSH = re.compile(
    "%s*<iq(%s)%s*><query(%s)%s*><diff%s*>((?:<op%s%s*/>)+)</diff%s*></query%s*></iq%s*>"
    % (_S, _ATTRS, _S, _ATTRS, _S, _S, _ATTRS, _S, _S, _S, _S)
)
_OP = re.compile("<op(%s)" % _ATTRS)
_DOUBLE = re.compile("(%s)%s*=%s*\"([^\"]*)\"" % (_NAME, _S, _S))
_SINGLE = re.compile("(%s)%s*=%s*'([^']*)'" % (_NAME, _S, _S))
_EITHER = re.compile("(%s)%s*=%s*(?:\"([^\"]*)\"|'([^']*)')" % (_NAME, _S, _S))

_IQ = ns.qname(ns.CLIENT, "iq")


class Push(tuple):  # type: ignore[type-arg]
    """One push taken by :func:`scan`: ``(iq attributes, (query attributes, ops))``, where ops
    is the op's attribute dict, or a tuple of them for several.  Made in C (a tuple), as it is
    made once per push; :meth:`element` gives the iq expat would have built."""

    __slots__ = ()

    @property
    def attrib(self) -> Dict[str, str]:
        return self[0]  # type: ignore[no-any-return]

    @property
    def compact(self) -> Compact:
        return self[1]  # type: ignore[no-any-return]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self[0].get(name, default)  # type: ignore[no-any-return]

    def element(self) -> Element:
        """The iq element, equal in tags, attributes and text to what expat makes of the bytes."""
        query_attrs, ops = self[1]
        iq = Element(_IQ, self[0])
        iq.append(rebuild_query(query_attrs, (ops,) if type(ops) is dict else ops))
        return iq

    def __repr__(self) -> str:
        return "Push(%r, %r)" % (self[0], self[1])


def _attributes(text: str) -> Optional[Dict[str, str]]:
    """The attributes of a tag's attribute text (already matched by the push pattern), or None
    if one is given twice."""
    if "'" not in text:
        pairs = _DOUBLE.findall(text)
    elif '"' not in text:
        pairs = _SINGLE.findall(text)
    else:
        pairs = [(name, double or single) for name, double, single in _EITHER.findall(text)]
    attrs = dict(pairs)
    return attrs if len(attrs) == len(pairs) else None


def scan(text: str, items: List[Any], limit: int, default_client: bool) -> int:
    """Append to ``items`` a :class:`Push` for each push of the usual shape at the front of
    ``text`` (the bytes decoded with ``surrogateescape``); return how many characters they
    took (whitespace before each included).  ``limit``: the most characters one may take
    (the stanza and tag limits); ``default_client``: the stream's default namespace is
    ``jabber:client``."""
    pos = 0
    match = _PUSH.match
    double = _DOUBLE.findall
    append = items.append
    while True:
        found = match(text, pos)
        if found is None:
            return pos
        end = found.end()
        if end - pos > limit:
            return pos
        head, query, ops = found.group(1, 2, 3)
        # The usual case (double quotes, no attribute twice, no xmlns on the iq) in line.
        if "'" in head:
            iq = _attributes(head)
        else:
            pairs = double(head)
            iq = dict(pairs)
            if len(iq) != len(pairs):
                iq = None
        if iq is None or iq.get("type") != "set":
            return pos
        if "xmlns" in iq:
            if iq.pop("xmlns") != ns.CLIENT:
                return pos
        elif not default_client:
            return pos
        attrs = _attributes(query)
        if attrs is None or attrs.pop("xmlns", None) != ns.DISK:
            return pos
        texts = _OP.findall(ops)
        if len(texts) == 1:
            op = _attributes(texts[0])
            if op is None or "xmlns" in op:
                return pos
            append(Push((iq, (attrs, op))))
        else:
            several = tuple(map(_attributes, texts))
            if any(op is None or "xmlns" in op for op in several):
                return pos
            append(Push((iq, (attrs, several))))
        pos = end
