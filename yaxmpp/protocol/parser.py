"""Incremental XMPP stream parser: bytes in, stream header / stanzas / stream end out.

One :class:`StreamParser` reads one XML stream (a fresh one is made at every stream restart).
It is built on an expat parser created and defused by :mod:`defusedxml` (DTDs, entity
declarations and external references are refused), and adds the limits a long-lived stream
needs: a cap on the bytes of one stanza (which also bounds never-ending text nodes, tags and
comments) and a cap on nesting depth.  Stanzas come out as :class:`xml.etree.ElementTree.Element`
trees, as soon as their last byte has been fed.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union
from xml.etree.ElementTree import Element, SubElement
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ..errors import ProtocolError
from . import ns
from .limits import Limits

__all__ = ["StreamHeader", "STREAM_END", "StreamParser"]

_SLICE = 65536  # the most bytes handed to expat at once, so limits are checked often enough


class StreamHeader:
    """The server's ``<stream:stream>`` opening tag."""

    __slots__ = ("attrs",)

    def __init__(self, attrs: Dict[str, str]) -> None:
        self.attrs = attrs

    @property
    def id(self) -> Optional[str]:
        return self.attrs.get("id")

    def __repr__(self) -> str:
        return "StreamHeader(%r)" % (self.attrs,)


class _StreamEnd:
    __slots__ = ()

    def __repr__(self) -> str:
        return "STREAM_END"


#: Marker for the server's ``</stream:stream>``.
STREAM_END = _StreamEnd()

Item = Union[StreamHeader, Element, _StreamEnd]


class _NoTarget:
    """A target with no callbacks: the parser installs its own expat handlers."""


class StreamParser:
    """Parse one XMPP stream incrementally.

    :meth:`feed` appends what became complete to :attr:`items`: a :class:`StreamHeader`, then
    stanza elements, then :data:`STREAM_END`.  The caller drains :attr:`items` itself, which
    keeps whatever completed before an error available after :meth:`feed` raised
    :class:`~yaxmpp.ProtocolError`.  After an error the parser is dead.
    """

    def __init__(self, limits: Optional[Limits] = None) -> None:
        self.limits = limits or Limits()
        self.items: List[Item] = []
        self._defused = DefusedXMLParser(
            target=_NoTarget(), encoding="utf-8", forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        parser = self._parser = self._defused.parser
        if parser.StartDoctypeDeclHandler is None or parser.EntityDeclHandler is None:  # pragma: no cover
            raise RuntimeError("defusedxml did not install its DTD and entity guards")
        parser.DefaultHandlerExpand = None
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._data
        parser.CommentHandler = self._markup
        parser.ProcessingInstructionHandler = self._markup
        parser.ordered_attributes = False
        parser.buffer_text = True
        # expat >= 2.6 may hold back a complete token until more data arrives ("reparse
        # deferral"); a stanza must come out the moment its last byte is fed.
        if hasattr(parser, "SetReparseDeferralEnabled"):
            parser.SetReparseDeferralEnabled(False)
        self._names: Dict[str, str] = {}
        self._stack: List[Element] = []
        self._last: Optional[Element] = None  # last closed child of the open element
        self._text: List[str] = []
        self._depth = 0  # XML depth: 1 inside <stream:stream>, 2 inside a stanza
        self._fed = 0  # bytes fed so far
        self._mark = 0  # byte offset where the open stanza (or stream-level gap) began
        self._event = 0  # byte offset of the latest parser event (to bound one tag)
        self._piece_end = 0  # byte offset of the end of the data being parsed
        self._error: Optional[ProtocolError] = None
        self.ended = False

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data``; complete items are appended to :attr:`items`."""
        if self._error is not None:
            raise self._error
        if not self._fed:
            # Whitespace a server writes between elements may precede the next stream's
            # <?xml?> declaration after a restart; XML allows nothing before it.
            data = data.lstrip(b" \t\r\n")
            if not data:
                return
        try:
            if len(data) <= _SLICE:
                self._parse(data)
            else:
                view = memoryview(data)
                for start in range(0, len(data), _SLICE):
                    self._parse(bytes(view[start : start + _SLICE]))
        except ProtocolError as exc:
            self._error = exc
            raise
        except DefusedXmlException as exc:
            self._error = ProtocolError("forbidden XML from server: %s" % type(exc).__name__)
            raise self._error from None
        except ExpatError as exc:
            self._error = ProtocolError("malformed XML from server: %s" % exc)
            raise self._error from None
        except RecursionError:  # pragma: no cover - depth is capped well below the recursion limit
            self._error = ProtocolError("XML nested too deeply")
            raise self._error from None

    def feed_until_stanza(self, data: bytes) -> bytes:
        """Feed ``data`` only up to the end of the next complete item and return the rest.

        Used where the next stanza switches layers (``<proceed/>``, ``<success/>``,
        ``<compressed/>``): the bytes after it belong to another layer or another parser and
        must not reach this one.  Every element ends with ``>``, so the data is fed in pieces
        that end at a ``>`` and feeding stops as soon as an item completed.
        """
        before = len(self.items)
        start = 0
        end = len(data)
        while start < end:
            gt = data.find(b">", start)
            stop = end if gt < 0 else gt + 1
            self.feed(data[start:stop])
            start = stop
            if len(self.items) > before:
                return data[start:]
        return b""

    def _parse(self, data: bytes) -> None:
        self._piece_end = self._fed + len(data)
        self._parser.Parse(data, False)
        self._fed = self._piece_end
        limits = self.limits
        if self._fed - self._mark > limits.max_stanza_bytes:
            raise ProtocolError("stanza larger than %d bytes" % limits.max_stanza_bytes)
        if self._fed - self._event > limits.max_tag_bytes:
            raise ProtocolError("a tag or other markup longer than %d bytes" % limits.max_tag_bytes)

    # -- expat handlers --------------------------------------------------------------------

    def _fix(self, name: str) -> str:
        """expat's ``ns}local`` -> ElementTree's ``{ns}local`` (memoised, bounded)."""
        fixed = self._names.get(name)
        if fixed is None:
            fixed = "{" + name if "}" in name else name
            if len(self._names) >= 4096:
                self._names.clear()
            self._names[name] = fixed
        return fixed

    def _fix_attrs(self, attrs: Dict[str, str]) -> Dict[str, str]:
        for key in attrs:
            if "}" in key:
                fix = self._fix
                return {fix(k): v for k, v in attrs.items()}
        return attrs

    def _flush_text(self) -> None:
        text = self._text
        joined = text[0] if len(text) == 1 else "".join(text)
        text.clear()
        last = self._last
        if last is not None:
            last.tail = joined
        else:
            self._stack[-1].text = joined

    def _start(self, name: str, attrs: Dict[str, Any]) -> None:
        depth = self._depth
        tag = self._names.get(name) or self._fix(name)
        if attrs:
            attrs = self._fix_attrs(attrs)
        if depth == 1:
            if tag == ns.STREAM:
                raise ProtocolError("a second stream header inside the stream")
            self._text.clear()  # whitespace between stanzas
            self._mark = self._event = self._parser.CurrentByteIndex
            elem = Element(tag, attrs)
            self._stack.append(elem)
            self._last = None
            self._depth = 2
            return
        if depth == 0:
            if tag != ns.STREAM:
                raise ProtocolError("expected <stream:stream>, got <%s>" % tag)
            self._depth = 1
            self._mark = self._event = self._parser.CurrentByteIndex
            self.items.append(StreamHeader(attrs))
            return
        if depth > self.limits.max_depth:
            raise ProtocolError("stanza nested deeper than %d levels" % self.limits.max_depth)
        if self._text:
            self._flush_text()
        self._event = self._parser.CurrentByteIndex
        self._stack.append(SubElement(self._stack[-1], tag, attrs))
        self._last = None
        self._depth = depth + 1

    def _end(self, name: str) -> None:
        depth = self._depth
        if depth == 1:
            self._depth = 0
            self.ended = True
            self.items.append(STREAM_END)
            return
        if self._text:
            self._flush_text()
        elem = self._stack.pop()
        self._depth = depth - 1
        here = self._event = self._parser.CurrentByteIndex
        if depth == 2:
            if here - self._mark > self.limits.max_stanza_bytes:
                raise ProtocolError("stanza larger than %d bytes" % self.limits.max_stanza_bytes)
            self._last = None
            self._mark = here
            self.items.append(elem)
        else:
            self._last = elem

    def _data(self, data: str) -> None:
        # Where this text ends: expat reports it from its start or its end, depending on
        # whether its buffer filled up; either way not past the data being parsed.
        here = min(self._parser.CurrentByteIndex + len(data), self._piece_end)
        self._event = here
        if self._depth >= 2:
            self._text.append(data)
        else:
            # Whitespace between stanzas (keepalives) is dropped; it starts a new gap.
            # Any other text there is not XMPP.
            if not data.isspace():
                raise ProtocolError("text between stanzas: %r" % data[:40])
            self._mark = here

    def _markup(self, *args: object) -> None:
        """A comment or processing instruction: dropped, but it is progress."""
        self._event = self._parser.CurrentByteIndex
