"""Incremental XMPP stream parser: bytes in, stream header / stanzas / stream end out.

One :class:`StreamParser` reads one XML stream (a fresh one is made at every stream restart),
in two stages:

1. **Prolog and stream header, through defusedxml.**  Until the ``<stream:stream>`` start tag
   is complete, bytes go to an expat parser created and defused by :mod:`defusedxml`: a DTD,
   an entity declaration or an external reference is refused there.  The prolog is the only
   place XML allows those, and expat itself rejects a DTD once the root element has begun.
   XMPP streams are UTF-8 (RFC 6120, 11.6): a declaration of any other encoding, or a NUL
   byte (UTF-16 or UTF-32 markup), is refused, so no codec is ever looked up by name.
2. **Stanzas, through ElementTree's C tree builder.**  The same bytes, from the header's
   ``<`` on, are then fed to :class:`xml.etree.ElementTree.XMLPullParser`, which builds each
   stanza as an :class:`~xml.etree.ElementTree.Element` in C: several times faster than
   Python callbacks.

Around both, the limits a long-lived stream needs (:class:`~yaxmpp.Limits`): bytes per
stanza, nesting depth, and bytes per tag.  Unfinished markup (a tag, comment, CDATA section
or PI) is held back here, not fed to expat, until its end arrives: expat would re-read it from
its start at every feed (quadratic time for markup trickled in small pieces), and held markup
longer than ``max_tag_bytes`` is refused.  A stanza comes out the moment its last byte is fed.
Whatever the input, :meth:`StreamParser.feed` raises nothing but :class:`~yaxmpp.Error`, and
its messages quote no server text beyond whole element names.
"""

from __future__ import annotations

import re
from collections import deque
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, Deque, Dict, List, Optional, Tuple, Union
from xml.etree.ElementTree import Element, ParseError, XMLPullParser
from xml.parsers.expat import ErrorString, ExpatError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from ..errors import ProtocolError
from . import ns
from .limits import Limits
from .pushscan import PushRun, scan

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

Item = Union[StreamHeader, Element, PushRun, _StreamEnd]


class _HeaderSeen(Exception):
    """Stops the defused parser once the stream header is read."""


class _NoTarget:
    """A target with no callbacks: the header stage installs its own expat handler."""


# -- holding back unfinished markup ----------------------------------------------------------

# Lexical states of the guard between feeds.  Only _TEXT holds nothing.
_TEXT = 0  # between markup: nothing held
_OPEN = 1  # a "<" whose kind the bytes so far do not tell ("<", "<!", "<![CDA"...)
_TAG = 2  # a start or end tag: quotes are followed, "<" outside them is an error
_DECL = 3  # "<!" other than a comment or CDATA (a DOCTYPE...): refused, never held
_COMMENT = 4  # "<!--" ... "-->"
_CDATA = 5  # "<![CDATA[" ... "]]>"
_PI = 6  # "<?" ... "?>"

_TERMINATOR = {_COMMENT: b"-->", _CDATA: b"]]>", _PI: b"?>"}
_IN_TAG = re.compile(rb"[<>\"']")
# The end of an attribute value, or a "<" (never in one).
_IN_VALUE = {39: re.compile(rb"['<]"), 34: re.compile(rb'["<]')}
_MARKUP = re.compile(rb"<[!?]")  # starts a comment, CDATA section, PI or declaration
_COMMENT_OPENER = b"<!--"
# Whitespace between stanzas, written as such or as character references, perhaps ending with
# the start of one.
_SPACE_TEXT = re.compile(
    rb"(?:[ \t\r\n]|&#(?:x0*(?:20|9|[aAdD])|0*(?:32|9|1[03]));)*(&(?:#(?:x[0-9a-fA-F]{0,8}|[0-9]{0,10}))?)?\Z"
)
_CDATA_OPENER = b"<![CDATA["


def _lt_in_tag() -> ProtocolError:
    return ProtocolError("malformed XML from server: '<' inside a tag")


def _kind(buf: Union[bytes, bytearray], lt: int) -> "tuple[int, int]":
    """The kind of the markup that starts with the ``<`` at ``lt``, and where its body starts
    (``_OPEN`` while the bytes so far could still open a comment or a CDATA section)."""
    second = buf[lt + 1 : lt + 2]
    if second == b"?":
        return _PI, lt + 2
    if second != b"!":
        return (_TAG, lt + 1) if second else (_OPEN, lt)
    if buf.startswith(_COMMENT_OPENER, lt):
        return _COMMENT, lt + 4
    if buf.startswith(_CDATA_OPENER, lt):
        return _CDATA, lt + 9
    start = buf[lt : lt + 9]
    if _COMMENT_OPENER.startswith(start) or _CDATA_OPENER.startswith(start):
        return _OPEN, lt
    return _DECL, lt + 2


class _TagGuard:
    """Splits incoming bytes so that expat is only ever given complete markup.

    Expat re-reads an unfinished tag, comment, CDATA section or PI from its start at every
    feed, so bytes from the start of unfinished markup on are held here instead, in a buffer
    that grows as bytes arrive and is searched only over the new ones (plus the few bytes a
    terminator such as ``]]>`` may straddle): the cost stays linear in the markup's size.

    The lexical state survives between feeds: text, tag (with the quote it is inside),
    comment, CDATA section or PI.  A declaration (``<!DOCTYPE``...) is refused at once.  A ``<`` inside a comment, CDATA section or PI
    is their content; only in text does it start markup.  A push holds no ``<!`` or ``<?``,
    so when nothing is held and neither occurs, the last ``<`` starts the last tag (a ``<``
    cannot appear in an attribute value) and only that tag is looked at.
    """

    __slots__ = ("held", "state", "quote", "resume", "limit", "error", "work", "markup")

    def __init__(self, limit: int) -> None:
        self.error: Optional[ProtocolError] = None  # raised once the bytes before it are parsed
        self.held = bytearray()  # the unfinished markup, from its "<"
        self.state = _TEXT
        self.quote: Optional[int] = None  # inside a quoted attribute value (tags only)
        self.resume = 0  # where in held a terminator may start (comments, CDATA, PIs)
        self.limit = limit
        self.work = 0  # bytes searched or copied while markup was held (for the tests)
        self.markup = False  # a comment, CDATA section or PI went out (the parser resets it)

    def ready(self, data: bytes) -> bytes:
        """What of the held bytes and ``data`` can be fed now; the rest stays held."""
        head = b""
        if self.state:
            done = self._continue(data)
            if done is None:
                return b""
            head, data = done
        if (b"!" in data or b"?" in data) and (b"<!" in data or b"<?" in data):
            skipped: List["tuple[int, int]"] = []
            self.markup = True
            out = self._scan_text(data, 0, skipped)
        else:
            skipped = []
            # The common path: every "<" starts a tag; only the last one can be unfinished.
            lt = data.rfind(b"<")
            if lt < 0 or self._tag_end(data, lt + 1) >= 0:
                out = data
            else:
                out = self._hold_tag(data, 0, lt)
        if len(data) > self.limit:
            # A tag wholly inside this read is never held, so never measured there: look for
            # one longer than the limit (whatever the reads, the same tags are refused).
            out = self._long_tag(data, out, skipped)
        return head + out if head else out

    def _long_tag(self, data: bytes, out: bytes, skipped: "List[tuple[int, int]]") -> bytes:
        """``out`` (the part of ``data`` to feed), or less with :attr:`error` set if a tag
        within it is longer than the limit.  Any such tag holds no ``<`` after its own, so it
        covers one of the windows of ``limit // 2`` bytes searched here (C-speed ``find``)."""
        step = max(1, self.limit // 2)
        stop = len(out)
        pos = 0
        while pos + step <= stop:
            if data.find(b"<", pos, pos + step) >= 0:
                pos += step
                continue
            lt = data.rfind(b"<", 0, pos)
            following = data.find(b"<", pos + step)
            if following < 0:
                following = len(data)
            if lt >= 0 and not any(a <= lt < b for a, b in skipped):
                end = self._extent(data, lt)  # -1: unfinished, measured as it is held
                if end - lt > self.limit:
                    self.state = _TEXT
                    self.held = bytearray()
                    self.quote = None
                    self.error = self._too_long()
                    return data[:lt]
            pos = max(pos + step, following)
        return out

    @staticmethod
    def _extent(data: bytes, lt: int) -> int:
        """Where the tag at ``lt`` ends (just past its ``>``), or -1; never raises."""
        if data[lt + 1 : lt + 2] in (b"!", b"?"):
            return lt + 1  # a comment, CDATA section, PI or declaration: measured elsewhere
        pos = lt + 1
        length = len(data)
        while pos < length:
            match = _IN_TAG.search(data, pos)
            if match is None:
                return -1
            at = match.start()
            char = data[at]
            if char == 62:
                return at + 1
            if char == 60:
                return at  # malformed: refused by expat or the guard
            close = data.find(bytes((char,)), at + 1)
            if close < 0:
                return -1
            pos = close + 1
        return -1

    def _scan_text(self, data: bytes, pos: int, skipped: "List[tuple[int, int]]") -> bytes:
        """From text at ``pos``: skip each comment, CDATA section and PI whole (tags and text
        between them are left to expat, the skipped ones listed in ``skipped``), holding the
        first unfinished one."""
        search = _MARKUP.search
        while True:
            match = search(data, pos)
            if match is None:
                break
            lt = match.start()
            previous = data.rfind(b"<", pos, lt)
            if previous >= 0 and data.find(b">", previous, lt) < 0:
                return self._broken(data, previous)
            kind, body = _kind(data, lt)
            if kind == _DECL:
                # A DTD is refused in the prolog (see StreamParser), and any other "<!"
                # declaration is malformed: say so now rather than hold a long one.
                self.error = ProtocolError("forbidden XML from server: a DTD or other <!...> declaration")
                return data[:lt]
            if kind == _OPEN:
                return self._hold(data, lt, _OPEN, lt)
            closer = _TERMINATOR[kind]
            found = data.find(closer, body)
            if found < 0:
                return self._hold(data, lt, kind, max(body, len(data) - len(closer) + 1))
            pos = found + len(closer)
            if pos - lt > self.limit:
                self.error = self._too_long()
                return data[:lt]
            skipped.append((lt, pos))
        lt = data.rfind(b"<", pos)
        if lt < 0 or self._tag_end(data, lt + 1) >= 0:
            return data
        return self._hold_tag(data, pos, lt)

    def _hold_tag(self, data: bytes, pos: int, lt: int) -> bytes:
        """Hold the unfinished tag at ``lt`` (the last ``<`` after ``pos``, in text)."""
        previous = data.rfind(b"<", pos, lt)
        if previous >= 0 and data.find(b">", previous, lt) < 0:
            return self._broken(data, previous)
        if lt + 1 == len(data):  # a lone "<": perhaps the start of a comment, CDATA or PI
            return self._hold(data, lt, _OPEN, lt)
        return self._hold(data, lt, _TAG, len(data))

    def _broken(self, data: bytes, lt: int) -> bytes:
        """The tag at ``lt`` holds a ``<``: what comes before it is still parsed, then the error."""
        self.quote = None
        self.error = _lt_in_tag()
        return data[:lt]

    def _hold(self, data: bytes, lt: int, state: int, resume: int) -> bytes:
        """Hold ``data[lt:]`` as unfinished markup of kind ``state``; return what precedes."""
        held = self.held = bytearray(data[lt:])
        self.state = state
        self.resume = resume - lt
        self.work += len(held)
        if len(held) > self.limit:
            self.error = self._too_long()
        return data[:lt]

    def _continue(self, data: bytes) -> "Optional[tuple[bytes, bytes]]":
        """Go on with the held markup through ``data``: None while it is unfinished, else the
        completed markup and the bytes of ``data`` after it.  ``data`` is searched where it
        lies; of the held bytes only the few a terminator may straddle are looked at again."""
        held = self.held
        state = self.state
        self.work += len(data)
        if state == _OPEN:  # at most eight bytes: read them again with what follows
            self.state = _TEXT
            self.held = bytearray()
            return b"", bytes(held) + data
        if state >= _COMMENT:
            self.markup = True
            closer = _TERMINATOR[state]
            size = len(closer)
            start = self.resume  # the last size - 1 bytes held (or the body's start)
            found = (held[start:] + data[: size - 1]).find(closer)
            if found >= 0:
                end = found + size - (len(held) - start)
            else:
                found = data.find(closer)
                if found < 0:
                    held += data
                    self.resume = max(start, len(held) - size + 1)
                    if len(held) > self.limit:
                        raise self._too_long()
                    return None
                end = found + size
        else:
            end = self._tag_end(data, 0)
            if end < 0:
                held += data
                if len(held) > self.limit:
                    raise self._too_long()
                return None
        self.state = _TEXT
        self.held = bytearray()
        held += data[:end]
        self.work += len(held)
        if len(held) > self.limit:  # completed, but longer than the limit all the same
            raise self._too_long()
        return bytes(held), data[end:]

    def _tag_end(self, data: bytes, pos: int) -> int:
        """Follow a tag through ``data`` from ``pos``, inside :attr:`quote` if set: the index
        just past its ``>``, or -1 (with :attr:`quote` kept for later)."""
        quote = self.quote
        special = _IN_TAG
        length = len(data)
        while pos < length:
            if quote is not None:
                match = _IN_VALUE[quote].search(data, pos)
                if match is None:
                    break
                pos = match.start()
                if data[pos] == 60:  # "<" inside an attribute value: never well-formed
                    raise _lt_in_tag()
                pos += 1
                quote = None
                continue
            match = special.search(data, pos)
            if match is None:
                break
            at = match.start()
            char = data[at]
            if char == 62:  # ">"
                self.quote = None
                return at + 1
            if char == 60:  # "<" inside a tag: never well-formed
                raise _lt_in_tag()
            quote = char
            pos = at + 1
        self.quote = quote
        return -1

    def _too_long(self) -> ProtocolError:
        return ProtocolError("a tag or other markup longer than %d bytes" % self.limit)


def _check_declaration(version: Optional[str], encoding: Optional[str], standalone: int) -> None:  # noqa: ARG001
    """The ``<?xml?>`` declaration's encoding: XMPP streams are UTF-8 (RFC 6120, 11.6)."""
    if encoding is not None and encoding.lower() != "utf-8":
        # Not echoed: the server chose this text.
        raise ProtocolError("the server's stream declares an encoding other than UTF-8")


def _malformed(exc: BaseException) -> ProtocolError:
    """A ProtocolError for expat's or ElementTree's error, from its code and position only."""
    code = getattr(exc, "code", None)
    line: object
    column: object
    if isinstance(exc, ExpatError):
        line, column = exc.lineno, exc.offset
    else:
        line, column = getattr(exc, "position", (None, None))
    try:
        what = ErrorString(code) if isinstance(code, int) else None
    except Exception:  # pragma: no cover - an unknown code
        what = None
    message = "malformed XML from server: %s" % (what or "not well-formed")
    if isinstance(line, int) and isinstance(column, int):
        message += ": line %d, column %d" % (line, column)
    return ProtocolError(message)


_tag_of = attrgetter("tag")
_children = itemgetter(slice(None))


def _deeper(elements: "List[Any]", depth: int, limit: int) -> bool:
    """Whether anything in the subtrees of ``elements`` (at ``depth``) lies deeper than
    ``limit``: one C-built list per level."""
    level = list(elements)
    while level:
        if depth > limit:
            return True
        # Slices, not iteration: iterating an element ends in an IndexError, raised in C
        # but still dear; leaves (most elements) are filtered out first.
        level = list(chain.from_iterable(map(_children, filter(len, level))))
        depth += 1
    return False


# -- the parser ------------------------------------------------------------------------------


class StreamParser:
    """Parse one XMPP stream incrementally.

    :meth:`feed` appends what became complete to :attr:`items`: a :class:`StreamHeader`, then
    stanza elements, then :data:`STREAM_END`.  The caller drains :attr:`items` itself, which
    keeps whatever completed before an error available after :meth:`feed` raised
    :class:`~yaxmpp.ProtocolError`.  After an error the parser is dead.
    """

    def __init__(self, limits: Optional[Limits] = None, pushes: bool = False) -> None:
        """``pushes``: take Disk pushes of the usual shape by the fast path (see
        :mod:`~yaxmpp.protocol.pushscan`), as :class:`~yaxmpp.protocol.pushscan.PushRun` items."""
        self.limits = limits = limits or Limits()
        self._max_stanza = limits.max_stanza_bytes
        self._slice = min(_MAX_SLICE, max(256, limits.max_stanza_bytes // 8))
        self.items: List[Item] = []
        self.ended = False
        self._guard = _TagGuard(min(limits.max_tag_bytes, limits.max_stanza_bytes))
        self._started = False  # a non-whitespace byte has arrived
        self._error: Optional[ProtocolError] = None
        self._fed = 0  # bytes given to the tree builder
        self._began = 0  # where the open stanza began (to within one slice)
        self._open: Optional[Element] = None  # the stanza open after the last slice
        self._frontier: List["tuple[Element, int]"] = []  # its rightmost path then (see _check_open)
        self._public = False  # the tree builder reports start events too (see _start_tree)
        self._pushes = pushes
        self._scan = False  # the fast path is on (from the stream header on, if pushes)
        self._one_item = False  # in feed_until_stanza
        self._default_ns: Optional[str] = None  # declared by the stream header
        self._fast_limit = min(limits.max_tag_bytes, limits.max_stanza_bytes)
        self._plans: Dict[Tuple[str, ...], Any] = {}  # the fast path's markups (see pushscan)
        # Stage 1: the defused header parser.
        self._prolog = b""
        self._header_at = 0  # where in the prolog the stream header starts
        self._defused: Optional[DefusedXMLParser] = DefusedXMLParser(
            target=_NoTarget(), encoding="utf-8", forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        header_parser = self._defused.parser
        if header_parser.StartDoctypeDeclHandler is None or header_parser.EntityDeclHandler is None:  # pragma: no cover
            raise RuntimeError("defusedxml did not install its DTD and entity guards")
        header_parser.DefaultHandlerExpand = None
        header_parser.StartElementHandler = self._on_header
        header_parser.XmlDeclHandler = _check_declaration
        header_parser.StartNamespaceDeclHandler = self._on_namespace
        header_parser.ordered_attributes = False
        # Stage 2: the tree builder, made once the header is read.
        self._pull: Optional[XMLPullParser[Element]] = None
        self._events: Optional[Deque[Any]] = None
        self._root: Optional[Element] = None
        self._last_out: Optional[Element] = None  # the last stanza taken out of the tree
        self._carry = b""  # a character reference between stanzas cut by the last read

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
            if self._scan and data and not self._one_item:
                data = self._take_pushes(data)
            self._feed_guarded(data)
        except ProtocolError as exc:
            self._error = exc
            raise
        except DefusedXmlException as exc:  # a ValueError: before the next clause
            self._error = ProtocolError("forbidden XML from server: %s" % type(exc).__name__)
            raise self._error from None
        except (ExpatError, ParseError) as exc:
            self._error = _malformed(exc)
            raise self._error from None
        except (LookupError, ValueError) as exc:  # UnicodeError is a ValueError
            # Whatever else expat or its codecs may raise on some input: never let it out,
            # and never with its message, which may quote the server's bytes.
            self._error = ProtocolError("unreadable XML from server (%s)" % type(exc).__name__)
            raise self._error from None

    def _feed_guarded(self, data: bytes) -> None:
        guard = self._guard
        data = guard.ready(data)
        if data:
            self._feed(data)
        guard.markup = False
        if guard.error is not None:
            raise guard.error

    def _take_pushes(self, data: bytes) -> bytes:
        """The fast path: take the pushes of the usual shape at the front of ``data`` (see
        :mod:`~yaxmpp.protocol.pushscan`); return the rest, for expat.

        Only between stanzas: after a read that ended inside one (nearly every read), expat
        first gets the bytes up to the next ``</iq>``, which usually finish it."""
        if not self._between():
            end = data.find(b"</iq>")
            if end < 0:
                return data
            end += 5
            self._feed_guarded(data[:end])
            data = data[end:]
            if not data or not self._between():
                return data
        text = data.decode("utf-8", "surrogateescape")
        taken = scan(text, self.items, self._fast_limit, self._default_ns == ns.CLIENT, self._plans)
        if not taken:
            return data
        if not data.isascii():  # count the bytes of what was taken
            taken = len(text[:taken].encode("utf-8", "surrogateescape"))
        return data[taken:]

    def _between(self) -> bool:
        """Whether the bytes fed so far end between stanzas: nothing held, nothing open."""
        return self._open is None and not self._guard.state and not self._carry and not self.ended

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
        self._one_item = True  # the fast path has no part here
        try:
            while start < end:
                gt = data.find(b">", start)
                stop = end if gt < 0 else gt + 1
                self.feed(data[start:stop])
                start = stop
                if len(self.items) > before:
                    return data[start:]
            return b""
        finally:
            self._one_item = False

    # -- stage 1: prolog and header through defusedxml --------------------------------------

    def _feed_header(self, data: bytes) -> None:
        if b"\x00" in data:
            # Never in UTF-8 XML, always in UTF-16 or UTF-32 markup: expat would detect those
            # whatever encoding it is told (RFC 6120, 11.6: streams are UTF-8).
            raise ProtocolError("the server's stream is not UTF-8 (a NUL byte in its prolog)")
        self._prolog += data
        if len(self._prolog) > self._max_stanza:
            raise ProtocolError("stream header larger than %d bytes" % self._max_stanza)
        assert self._defused is not None
        try:
            self._defused.parser.Parse(data, False)
        except _HeaderSeen:
            # The tree builder reads from the header's "<" on: the declaration was checked
            # (so no codec is ever looked up by name), and the prolog's comments and PIs
            # are of no use.
            prolog, self._prolog = self._prolog, b""
            self._defused = None
            self._start_tree(prolog[self._header_at :])

    def _on_namespace(self, prefix: Optional[str], uri: str) -> None:
        if prefix is None:
            self._default_ns = uri

    def _on_header(self, name: str, attrs: Dict[str, str]) -> None:
        tag = "{" + name if "}" in name else name
        if tag != ns.STREAM:
            raise ProtocolError("expected <stream:stream>, got <%s>" % tag)
        fixed = {("{" + k if "}" in k else k): v for k, v in attrs.items()}
        assert self._defused is not None
        self._header_at = self._defused.parser.CurrentByteIndex
        self.items.append(StreamHeader(fixed))
        self._scan = self._pushes
        raise _HeaderSeen()

    # -- stage 2: stanzas through the C tree builder ------------------------------------------

    def _start_tree(self, prolog: bytes) -> None:
        # The tree builder reports only the end of each element (and comments and PIs, which
        # make it hand over the text before them, so text between stanzas is seen there too;
        # they are dropped below).  A stanza is complete when its own end is reported: it is
        # then a child of the stream element, which the start event of the header gives.
        pull = self._pull = XMLPullParser(events=("start",))
        queue = getattr(pull, "_events_queue", None)
        setevents = getattr(getattr(pull, "_parser", None), "_setevents", None)
        header_end = _TagGuard._extent(prolog, 0)
        if isinstance(queue, deque) and setevents is not None and header_end > 0:
            # Draining ElementTree's event deque directly saves a generator step per read,
            # and asking for end events only saves a tuple and a Python step per element.
            pull.feed(prolog[:header_end])
            flush = getattr(pull, "flush", None)
            if flush is not None:  # expat >= 2.6 may hold a complete tag back otherwise
                flush()
            self._root = queue.popleft()[1] if queue else None
            queue.clear()
            setevents(queue, ("end", "comment", "pi"))
            self._events = queue
            self._fed = header_end
            prolog = prolog[header_end:]
        else:  # the public API: start events too, dropped in _feed_tree
            pull = self._pull = XMLPullParser(events=("start", "end", "comment", "pi"))
            self._public = True
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
            if self._root is None and events and events[0][0] == "start":
                self._root = events[0][1]
        failure = failure or flushed
        markup = self._guard.markup
        if markup or self._public:
            events = [event for event in events if event[0] == "end"]
        root = self._root
        carried = self._open  # the stanza that was open before this slice, if any
        complete: List[Item] = []  # stanzas finished in this slice
        if root is None:  # pragma: no cover - the header's start always comes first
            if events or failure is None:
                raise ProtocolError("the stream header was not read")
            raise _malformed(failure)
        # Whatever finished in this slice, the last element to end tells how far it got: the
        # stream (every stanza is done), the last child of the stream (so is every stanza
        # before it), or something inside the stanza still open.
        ended = False
        if events:
            last = events[-1][1]
            if last is root:
                ended = True
                complete = list(root[:])
            elif root[-1] is last:
                complete = list(root[:])
            else:
                complete = list(root[:-1])
        opened: Optional[Element] = root[-1] if not ended and len(root) > len(complete) else None
        try:
            if complete:
                self._check_complete(complete, carried, end - (self._began if complete[0] is carried else start))
            if opened is not None:
                if opened is not carried:
                    self._began = start
                    self._frontier = []
                if opened.tag == _STREAM_TAG:
                    raise ProtocolError("a second stream header inside the stream")
                self._frontier = self._check_open(opened, self._frontier)
        except ProtocolError as exc:
            # What completed before it is delivered, unless text between stanzas came first.
            text = self._trim(complete, opened is not None)
            self.items += complete
            raise text or exc
        self._open = opened
        if ended:
            self.ended = True
            complete.append(STREAM_END)
        if complete or opened is not carried or markup:
            # Text between stanzas before what completed or began here: refused before any
            # item after it is delivered.
            text = self._trim(complete, opened is not None)
            self.items += complete
            if text is not None:
                raise text
        if failure is not None:
            raise _malformed(failure)
        if opened is not None and end - self._began > self._max_stanza:
            raise ProtocolError("stanza larger than %d bytes" % self._max_stanza)
        if opened is None and not ended:
            # Text after the last tag, between stanzas: the tree builder keeps it to itself
            # until the next tag, so look at the bytes.
            gt = data.rfind(b">")
            trailing = data[gt + 1 :]
            if gt < 0 and self._carry:
                trailing = self._carry + trailing
            self._carry = b""
            if trailing and not trailing.isspace():
                # Character references to whitespace are whitespace to the tree builder too;
                # one cut short by this read is judged with the next.
                match = _SPACE_TEXT.match(trailing)
                if match is None:
                    raise ProtocolError("text between stanzas (%d bytes)" % len(trailing))
                self._carry = match.group(1) or b""

    # -- the limits on finished and open stanzas -------------------------------------------
    #
    # Without start events, nesting is measured on the tree: level by level (in C, a list of
    # all children at once) for stanzas that began and ended in one slice, and along the
    # rightmost path (where every open element is) for a stanza that spans slices, looking
    # only at what is new since the last slice, so a big stanza is not walked again each time.

    def _check_complete(self, complete: List[Item], carried: Optional[Element], first_size: int) -> None:
        """Refuse the first finished stanza that breaks a limit, cutting ``complete`` to the
        stanzas before it.  ``first_size`` is the bytes the first one spans, to within a slice
        (the others began in this slice, so are no larger)."""
        if first_size > self._max_stanza:
            del complete[:]
            raise ProtocolError("stanza larger than %d bytes" % self._max_stanza)
        limit = self.limits.max_depth
        tags = list(map(_tag_of, complete))
        header = tags.index(_STREAM_TAG) if _STREAM_TAG in tags else len(complete)
        deep = len(complete)
        offset = 0
        if complete[0] is carried:
            offset = 1
            try:
                self._check_open(carried, self._frontier)
            except ProtocolError:
                deep = 0
        fresh = complete[offset:header]
        if deep and fresh and _deeper(fresh, 1, limit):
            deep = offset + next(i for i, stanza in enumerate(fresh) if _deeper([stanza], 1, limit))
        if header < len(complete) and header <= deep:
            del complete[header:]
            raise ProtocolError("a second stream header inside the stream")
        if deep < len(complete):
            del complete[deep:]
            raise ProtocolError("stanza nested deeper than %d levels" % limit)

    def _check_open(self, stanza: Element, old: List["tuple[Element, int]"]) -> List["tuple[Element, int]"]:
        """Check the nesting of what is new in ``stanza`` since ``old`` (its rightmost path at
        the last check, with each element's child count then); return its rightmost path now."""
        limit = self.limits.max_depth
        path: List["tuple[Element, int]"] = []
        elem = stanza
        depth = 1
        while True:
            count = len(elem)
            level = len(path)
            path.append((elem, count))
            first = 0
            if level < len(old) and old[level][0] is elem:
                first = max(old[level][1] - 1, 0)  # the children before were checked whole
            if count - 1 > first and _deeper(elem[first : count - 1], depth + 1, limit):
                raise ProtocolError("stanza nested deeper than %d levels" % limit)
            if not count:
                return path
            elem = elem[count - 1]
            depth += 1
            if depth > limit:
                raise ProtocolError("stanza nested deeper than %d levels" % limit)

    @staticmethod
    def _read_public(pull: XMLPullParser[Element]) -> "tuple[List[Any], Optional[BaseException]]":
        events = []
        try:
            for event in pull.read_events():
                events.append(event)
        except ParseError as exc:
            return events, exc
        return events, None

    def _trim(self, complete: List[Item], open_stanza: bool) -> Optional[ProtocolError]:
        """Drop delivered stanzas from the tree (the one still open stays), checking that only
        whitespace stood between them: on text, ``complete`` is cut to the items before it
        and the error to raise is returned."""
        root = self._root
        if root is None:
            return None
        keep = 1 if open_stanza else 0
        done = len(root) - keep
        # The text between stanzas sits in their tails (and the root's text); with the last
        # stanza taken out before, all of it must be whitespace (XML's, ASCII).
        gaps = [child.tail for child in root[:done]]
        if self._last_out is not None:
            gaps.append(self._last_out.tail)
        gaps.append(root.text)
        between = "".join(filter(None, gaps))
        if between and not (between.isspace() and between.isascii()):
            return self._cut_at_text(complete)
        root.text = None
        if done:
            self._last_out = root[done - 1]
        del root[:done]
        return None

    def _cut_at_text(self, complete: List[Item]) -> ProtocolError:
        """Text stands between stanzas: keep in ``complete`` only the items before it, raise."""
        root = self._root
        assert root is not None
        first = "".join(filter(None, (root.text, self._last_out.tail if self._last_out is not None else None)))
        keep = 0
        if not first or (first.isspace() and first.isascii()):
            for child in root:
                keep += 1
                tail = child.tail
                if tail and not (tail.isspace() and tail.isascii()):
                    break
        size = len("".join(filter(None, [first] + [c.tail for c in root])).encode())
        del complete[keep:]
        return ProtocolError("text between stanzas (%d bytes)" % size)
