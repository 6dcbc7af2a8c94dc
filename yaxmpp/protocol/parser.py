"""Incremental XMPP stream parser: bytes in, stream header / stanzas / stream end out.

One :class:`StreamParser` reads one XML stream (a fresh one is made at every stream restart),
in two stages:

1. **Prolog and stream header, through defusedxml.**  Until the ``<stream:stream>`` start tag
   is complete, bytes go to an expat parser created and defused by :mod:`defusedxml`: a DTD,
   an entity declaration or an external reference is refused there.  The prolog is the only
   place XML allows those, and expat itself rejects a DTD once the root element has begun.
2. **Stanzas, through ElementTree's C tree builder.**  The same bytes, header included, are
   then fed to :class:`xml.etree.ElementTree.XMLPullParser`, which builds each stanza as an
   :class:`~xml.etree.ElementTree.Element` in C: several times faster than Python callbacks.

Around both, the limits a long-lived stream needs (:class:`~yaxmpp.Limits`): bytes per
stanza, nesting depth, and bytes per tag.  Unfinished tags are held back here, not fed to
expat, until their closing ``>`` arrives: expat would re-read an unfinished tag from its start
at every feed (quadratic time for a tag trickled in small pieces), and a held tag longer than
``max_tag_bytes`` is refused.  A stanza comes out the moment its last byte is fed.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Union
from xml.etree.ElementTree import Element, ParseError, XMLPullParser
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ..errors import ProtocolError
from . import ns
from .limits import Limits

__all__ = ["StreamHeader", "STREAM_END", "StreamParser"]

_MAX_SLICE = 65536  # the most bytes handed to the tree builder at once
_STREAM_TAG = ns.STREAM


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


class _HeaderSeen(Exception):
    """Stops the defused parser once the stream header is read."""


class _NoTarget:
    """A target with no callbacks: the header stage installs its own expat handler."""


# -- holding back unfinished tags ------------------------------------------------------------

_TAG_SPECIAL = re.compile(rb"[<>\"']")
_MARKUP_ENDS = ((b"<!--", b"-->"), (b"<![CDATA[", b"]]>"), (b"<?", b"?>"))


class _TagGuard:
    """Splits incoming bytes so that expat is only ever given complete tags.

    The bytes from the last ``<`` on are held while that tag is unfinished (quotes are
    followed, so a ``>`` inside an attribute value does not end it).  ``<`` cannot appear in
    an attribute value, so the last ``<`` always starts markup.
    """

    __slots__ = ("held", "quote", "closer", "limit", "error")

    def __init__(self, limit: int) -> None:
        self.error: Optional[ProtocolError] = None  # raised once the bytes before it are parsed
        self.held = b""
        self.quote: Optional[bytes] = None  # inside a quoted attribute value
        self.closer: Optional[bytes] = None  # inside a comment, CDATA section or PI
        self.limit = limit

    def ready(self, data: bytes) -> bytes:
        """What of ``held + data`` can be fed now; the rest stays held."""
        if self.held and self.held[1:2] in (b"", b"!", b"?"):
            # A comment, CDATA section or PI (whose opener may have been cut): look again.
            data, self.held = self.held + data, b""
        if self.held:
            end = self._scan(data, 0)
            if end < 0:
                self.held += data
                self._check()
                return b""
            head = self.held + data[:end]
            self.held = b""
            data = data[end:]
        else:
            head = b""
        lt = data.rfind(b"<")
        if lt < 0:
            return head + data if head else data
        self.quote = self.closer = None
        for opener, closer in _MARKUP_ENDS:
            if data.startswith(opener, lt):
                self.closer = closer
                break
        end = self._scan(data, lt + 1)
        if end >= 0:
            return head + data if head else data
        previous = data.rfind(b"<", 0, lt)
        if previous >= 0 and data.find(b">", previous, lt) < 0:
            if not data.startswith((b"<!--", b"<![CDATA["), previous):
                # What comes before the broken tag is still parsed; then the error.
                self.error = ProtocolError("malformed XML from server: '<' inside a tag")
                return head + data[:previous]
        self.held = data[lt:]
        self._check()
        return head + data[:lt]

    def _scan(self, data: bytes, pos: int) -> int:
        """Continue the held tag through ``data`` from ``pos``: the index just past its end, or -1."""
        closer = self.closer
        if closer is not None:
            # The terminator may straddle the boundary with what is held.
            start = max(0, pos - len(closer) + 1) if not self.held else 0
            joined = self.held[-(len(closer) - 1) :] + data if self.held else data
            found = joined.find(closer, start)
            if found < 0:
                return -1
            end = found + len(closer) - (len(joined) - len(data))
            self.closer = None
            return end
        quote = self.quote
        length = len(data)
        while pos < length:
            if quote is not None:
                found = data.find(quote, pos)
                if found < 0:
                    self.quote = quote
                    return -1
                pos = found + 1
                quote = None
                continue
            match = _TAG_SPECIAL.search(data, pos)
            if match is None:
                self.quote = None
                return -1
            at = match.start()
            char = data[at]
            if char == 62:  # ">"
                self.quote = None
                return at + 1
            if char == 60:  # "<" inside a tag: never well-formed
                raise ProtocolError("malformed XML from server: '<' inside a tag")
            quote = data[at : at + 1]
            pos = at + 1
        self.quote = quote
        return -1

    def _check(self) -> None:
        if len(self.held) > self.limit:
            raise ProtocolError("a tag or other markup longer than %d bytes" % self.limit)


# -- the parser ------------------------------------------------------------------------------


class StreamParser:
    """Parse one XMPP stream incrementally.

    :meth:`feed` appends what became complete to :attr:`items`: a :class:`StreamHeader`, then
    stanza elements, then :data:`STREAM_END`.  The caller drains :attr:`items` itself, which
    keeps whatever completed before an error available after :meth:`feed` raised
    :class:`~yaxmpp.ProtocolError`.  After an error the parser is dead.
    """

    def __init__(self, limits: Optional[Limits] = None) -> None:
        self.limits = limits = limits or Limits()
        self._max_depth = limits.max_depth + 1  # XML depth: the stream element is 1
        self._max_stanza = limits.max_stanza_bytes
        self._slice = min(_MAX_SLICE, max(256, limits.max_stanza_bytes // 8))
        self.items: List[Item] = []
        self.ended = False
        self._guard = _TagGuard(min(limits.max_tag_bytes, limits.max_stanza_bytes))
        self._started = False  # a non-whitespace byte has arrived
        self._error: Optional[ProtocolError] = None
        self._fed = 0  # bytes given to the tree builder
        self._began = 0  # where the open stanza began (to within one slice)
        self._depth = 0  # XML depth: 1 inside <stream:stream>, 2 inside a stanza
        # Stage 1: the defused header parser.
        self._prolog = b""
        self._defused: Optional[DefusedXMLParser] = DefusedXMLParser(
            target=_NoTarget(), encoding="utf-8", forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        header_parser = self._defused.parser
        if header_parser.StartDoctypeDeclHandler is None or header_parser.EntityDeclHandler is None:  # pragma: no cover
            raise RuntimeError("defusedxml did not install its DTD and entity guards")
        header_parser.DefaultHandlerExpand = None
        header_parser.StartElementHandler = self._on_header
        header_parser.ordered_attributes = False
        # Stage 2: the tree builder, made once the header is read.
        self._pull: Optional[XMLPullParser] = None
        self._events: Optional[Deque[Any]] = None
        self._root: Optional[Element] = None
        self._last_out: Optional[Element] = None  # the last stanza taken out of the tree

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse ``data``; complete items are appended to :attr:`items`."""
        if self._error is not None:
            raise self._error
        try:
            if not self._started:
                # Whitespace a server writes between elements may precede the next stream's
                # <?xml?> declaration after a restart; XML allows nothing before it.
                data = data.lstrip(b" \t\r\n")
                self._started = bool(data)
            guard = self._guard
            data = guard.ready(data)
            if data:
                self._feed(data)
            if guard.error is not None:
                raise guard.error
        except ProtocolError as exc:
            self._error = exc
            raise
        except DefusedXmlException as exc:
            self._error = ProtocolError("forbidden XML from server: %s" % type(exc).__name__)
            raise self._error from None
        except (ExpatError, ParseError) as exc:
            self._error = ProtocolError("malformed XML from server: %s" % exc)
            raise self._error from None

    def _feed(self, data: bytes) -> None:
        if self._pull is None:
            self._feed_header(data)
        else:
            self._feed_sliced(data)

    def _feed_sliced(self, data: bytes) -> None:
        step = self._slice
        if len(data) <= step:
            self._feed_tree(data)
            return
        # Feed in slices, so the limits are checked as a big read goes in, cut after a
        # '>' so no slice ends inside a tag (expat would re-read it).
        start, length = 0, len(data)
        while start < length:
            stop = start + step
            if stop < length:
                gt = data.rfind(b">", start, stop)
                if gt < 0:  # one long tag or text run: up to its end, in one piece
                    gt = data.find(b">", stop)
                stop = gt + 1 if gt >= 0 else length
            self._feed_tree(data[start:stop])
            start = stop

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

    # -- stage 1: prolog and header through defusedxml --------------------------------------

    def _feed_header(self, data: bytes) -> None:
        self._prolog += data
        if len(self._prolog) > self._max_stanza:
            raise ProtocolError("stream header larger than %d bytes" % self._max_stanza)
        assert self._defused is not None
        try:
            self._defused.parser.Parse(data, False)
        except _HeaderSeen:
            prolog, self._prolog = self._prolog, b""
            self._defused = None
            self._start_tree(prolog)

    def _on_header(self, name: str, attrs: Dict[str, str]) -> None:
        tag = "{" + name if "}" in name else name
        if tag != ns.STREAM:
            raise ProtocolError("expected <stream:stream>, got <%s>" % tag)
        fixed = {("{" + k if "}" in k else k): v for k, v in attrs.items()}
        self.items.append(StreamHeader(fixed))
        raise _HeaderSeen()

    # -- stage 2: stanzas through the C tree builder ------------------------------------------

    def _start_tree(self, prolog: bytes) -> None:
        pull = self._pull = XMLPullParser(events=("start", "end"))
        queue = getattr(pull, "_events_queue", None)
        # Draining ElementTree's event deque directly saves a generator step per event;
        # read_events() is the public fallback should the deque ever change.
        self._events = queue if isinstance(queue, deque) else None
        self._feed_tree(prolog)

    def _feed_tree(self, data: bytes) -> None:
        pull = self._pull
        assert pull is not None
        start = self._fed
        self._fed = end = start + len(data)
        pull.feed(data)
        flushed: Optional[BaseException] = None
        flush = getattr(pull, "flush", None)
        if flush is not None:  # expat >= 2.6: a complete tag must not wait for more data
            try:
                flush()
            except ParseError as exc:  # raised, not queued: keep the events before it
                flushed = exc
        queue = self._events
        if queue is not None:
            events: Any = list(queue)
            queue.clear()
            failure = events.pop() if events and isinstance(events[-1], BaseException) else None
        else:
            events, failure = self._read_public(pull)
        failure = failure or flushed
        depth = self._depth
        began = self._began
        max_depth = self._max_depth
        complete = []  # stanzas finished in this slice
        add = complete.append
        for kind, elem in events:  # eight events per Disk push: kept lean
            if kind == "start":
                depth += 1
                if depth == 2:
                    began = start
                    if elem.tag == _STREAM_TAG:
                        raise ProtocolError("a second stream header inside the stream")
                elif depth > max_depth:
                    raise ProtocolError("stanza nested deeper than %d levels" % self.limits.max_depth)
                elif depth == 1:
                    self._root = elem
            else:
                depth -= 1
                if depth == 1:
                    if end - began > self._max_stanza:
                        self.items += complete
                        raise ProtocolError("stanza larger than %d bytes" % self._max_stanza)
                    add(elem)
                elif depth == 0:
                    self.ended = True
                    add(STREAM_END)
        self.items += complete
        completed = len(complete)
        self._depth = depth
        self._began = began
        if failure is not None:
            raise ProtocolError("malformed XML from server: %s" % failure)
        if depth >= 2 and end - began > self._max_stanza:
            raise ProtocolError("stanza larger than %d bytes" % self._max_stanza)
        if completed:
            self._trim(completed, depth)
        if depth == 1:
            # Text after the last tag, between stanzas: the tree builder keeps it to itself
            # until the next tag, so look at the bytes.
            trailing = data[data.rfind(b">") + 1 :]
            if trailing and not trailing.isspace():
                raise ProtocolError("text between stanzas: %r" % trailing[:40])

    @staticmethod
    def _read_public(pull: XMLPullParser) -> "tuple[list, Optional[BaseException]]":
        events = []
        try:
            for event in pull.read_events():
                events.append(event)
        except ParseError as exc:
            return events, exc
        return events, None

    def _trim(self, completed: int, depth: int) -> None:  # noqa: ARG002
        """Drop delivered stanzas from the tree (the one still open stays), checking that only
        whitespace stood between them."""
        root = self._root
        if root is None:
            return
        keep = 1 if depth >= 2 else 0
        done = len(root) - keep
        # The text between stanzas sits in their tails (and the root's text); with the last
        # stanza taken out before, all of it must be whitespace.
        gaps = [child.tail for child in root[:done]]
        if self._last_out is not None:
            gaps.append(self._last_out.tail)
        gaps.append(root.text)
        between = "".join(filter(None, gaps))
        if between and not between.isspace():
            raise ProtocolError("text between stanzas: %r" % between.strip()[:40])
        root.text = None
        if done:
            self._last_out = root[done - 1]
        del root[:done]
