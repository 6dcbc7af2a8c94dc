"""The parser's fast path for Disk pushes (yaxmpp/protocol/pushscan.py) against expat.

Differential: the same bytes go to a parser with the fast path and one without, and both must
give the same stanzas (tags, attributes in order, text, nesting) and the same error, whatever
the reads; the fast one split at every byte.  The fast path must also really take the usual
pushes (else these tests would compare expat with itself)."""

from __future__ import annotations

import re
from typing import Any, List, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yaxmpp import Limits, ProtocolError
from yaxmpp.protocol import STREAM_END, StreamHeader, StreamParser
from yaxmpp.protocol.pushscan import MAX_PLANS, PushRun

_POSITION = re.compile(r": line \d+, column \d+$")
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='1' from='ya.ru' version='1.0'>"
)


def push(iq_id: str = "p1", key: str = "/disk/file.txt", op: str = ' type="new" key="%s" fid="1" size="1"', head: str = "") -> bytes:
    """A push of the usual shape (what the stand-in and, as far as known, Yandex send)."""
    return (
        '<iq type="set" id="%s" from="ya.ru" to="test@ya.ru/r"%s><query xmlns="yandex:push:disk"><diff><op%s/></diff></query></iq>'
        % (iq_id, head, op % key if "%s" in op else op)
    ).encode("utf-8")


def shape(elem: Any, top: bool = True) -> Tuple[Any, ...]:
    """What expat says of an element: tag, attributes in order, text, tail, children."""
    return (
        elem.tag,
        list(elem.attrib.items()),
        elem.text,
        None if top else elem.tail,  # (a stanza's tail is the text after it: checked by the parser)
        [shape(child, False) for child in elem],
    )


def parse(data: bytes, fast: bool, cuts: Sequence[int] = (), limits: Optional[Limits] = None) -> Tuple[List[Any], Optional[str], int]:
    """Feed HEADER, then ``data`` cut at ``cuts``; the items (elements by their shape), the
    error's message if any, and how many pushes the fast path took."""
    parser = StreamParser(limits, pushes=fast)
    parser.feed(HEADER)
    out: List[Any] = []
    taken = 0
    error = None
    bounds = [0] + sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]
    try:
        for start, stop in zip(bounds, bounds[1:]):
            parser.feed(data[start:stop])
            items, parser.items = parser.items, []
            for item in items:
                if type(item) is PushRun:
                    taken += len(item)
                    out.extend(shape(e) for e in item.elements())
                elif isinstance(item, StreamHeader):
                    out.append(("header", item.attrs))
                elif item is STREAM_END:
                    out.append("end")
                else:
                    out.append(shape(item))
    except ProtocolError as exc:
        error = str(exc)
        for item in parser.items:
            if type(item) is PushRun:
                taken += len(item)
                out.extend(shape(e) for e in item.elements())
            elif item is STREAM_END:
                out.append("end")
            elif not isinstance(item, StreamHeader):
                out.append(shape(item))
    return out[1:] if out and out[0][0] == "header" else out, error, taken


def _kind(error: Optional[str]) -> Optional[str]:
    if error is None:
        return None
    for prefix in ("malformed XML", "text between stanzas", "stanza larger", "a tag or other markup longer"):
        if error.startswith(prefix):
            return prefix
    return _POSITION.sub("", error)


def same(data: bytes, cuts: Sequence[int] = (), limits: Optional[Limits] = None) -> int:
    """Assert the fast parser agrees with expat, both reading ``data`` cut at ``cuts``;
    return how many pushes the fast path took."""
    fast_items, fast_error, taken = parse(data, True, cuts, limits)
    slow_items, slow_error, _ = parse(data, False, cuts, limits)
    assert fast_items == slow_items
    assert (fast_error is None) == (slow_error is None), (fast_error, slow_error)
    # The words of an error may differ, as they do for expat alone across reads (a size is
    # measured to within a read; which of two checks sees a stray "<" first; expat's line and
    # column count only the bytes it read): the kind of error may not.
    assert _kind(fast_error) == _kind(slow_error), (fast_error, slow_error)
    return taken


# -- the usual pushes are taken, and give what expat gives ------------------------------------


def test_the_usual_pushes_are_taken_by_the_fast_path():
    data = b"".join(push("p%d" % i) for i in range(50))
    assert same(data) == 50


def test_every_read_boundary_gives_the_same_stanzas():
    data = push("a") + push("b", "/disk/Привет мир.txt") + b"<message to='x'/>" + push("c") + b" \n" + push("d")
    for cut in range(len(data) + 1):
        same(data, [cut])
    assert same(data) == 2  # (the message sits between: what follows it is expat's until the next read)


def test_every_pair_of_read_boundaries_over_two_pushes():
    data = push("a") + push("b")
    for first in range(0, len(data), 7):
        for second in range(first, len(data) + 1, 3):
            same(data, [first, second])


def test_a_run_of_several_markups_and_several_ops():
    ops = ' type="new" key="/disk/a" fid="1" size="1"/><op type="deleted" key="/disk/b" fid="2"'
    data = push("a") + push("b", op=' type="deleted" key="%s" fid="7"') + push("c", op=ops) + push("d") + push("e", head=' xml_x="1"')
    assert same(data) == 5


@pytest.mark.parametrize(
    "stanza",
    [
        # Expat's: whitespace, quotes and references it reads as we do, or refuses.
        push("a").replace(b'type="set"', b"type='set'"),
        push("a").replace(b'<iq type="set"', b'<iq  type = "set" '),
        push("a").replace(b"<op ", b"<op\t"),
        push("a").replace(b'id="a"', b'id="a\tb"'),  # normalised to a space by expat
        push("a").replace(b'id="a"', b'id="a\nb"'),
        push("a").replace(b'id="a"', b'id="a&amp;b"'),
        push("a").replace(b'id="a"', b'id="a&#x41;"'),
        push("a").replace(b'id="a"', b'id="a&bogus;"'),
        push("a").replace(b'id="a"', b'id="a<b"'),
        push("a").replace(b'id="a"', b'id="a>b"'),
        push("a").replace(b'id="a"', b'id="it\'s"'),
        push("a").replace(b'id="a"', b'id="\x01"'),
        push("a").replace(b'id="a"', b'id="\x7f"'),
        push("a").replace(b'id="a"', 'id="\u00a0\u0085"'.encode()),
        push("a").replace(b'id="a"', 'id="\ufffe"'.encode()),
        push("a").replace(b'id="a"', b'id="\xff\xfe"'),
        push("a").replace(b'id="a"', b'id="\xed\xa0\x80"'),  # an encoded surrogate
        push("a").replace(b'id="a"', b'id="a" id="b"'),
        push("a").replace(b'id="a"', b'id="a"id="b"'),
        push("a").replace(b' id="a"', b' xml:lang="en" id="a"'),
        push("a").replace(b' id="a"', b' xmlns="jabber:client" id="a"'),
        push("a").replace(b' id="a"', b' xmlns="jabber:server" id="a"'),
        push("a").replace(b' id="a"', b' xmlns:x="urn:x" id="a"'),
        push("a").replace(b'type="set"', b'type="get"'),
        push("a").replace(b'type="set"', b'type="SET"'),
        push("a").replace(b'xmlns="yandex:push:disk"', b'xmlns="yandex:push:disk2"'),
        push("a").replace(b'xmlns="yandex:push:disk"', b'xmlns="yandex:push:disk" xmlns="x"'),
        push("a").replace(b"<diff>", b'<diff xmlns="urn:other">'),
        push("a").replace(b"<diff>", b'<diff n="1">'),
        push("a").replace(b"<op ", b'<op xmlns="urn:other" '),
        push("a").replace(b"<diff><op", b"<diff> <op"),
        push("a").replace(b"/></diff>", b"></op></diff>"),
        push("a").replace(b"/></diff>", b"/>text</diff>"),
        push("a").replace(b"</diff></query>", b"</diff><!-- c --></query>"),
        push("a").replace(b"</query></iq>", b"</query ></iq >"),
        push("a").replace(b"</query></iq>", b"</query></iq\n>"),
        push("a").replace(b"</diff></query>", b"</query></diff>"),
        push("a").replace(b"<diff><op", b"<diff><diff><op").replace(b"</diff>", b"</diff></diff>"),
        push("a").replace(b"<diff>", b"").replace(b"</diff>", b""),
        push("a").replace(b"<op", b"<![CDATA[<op/>]]><op"),
        push("a").replace(b"<iq", b"<iq:iq"),
        push("a").replace(b"<iq ", b"<ix ").replace(b"</iq>", b"</ix>"),
        b"<iq type='result' id='r'/>" + push("a"),
        push("a")[:-1] + b"</stream:stream>",
        b"  text  " + push("a"),
        b"&#32;" + push("a"),
        push("a") + b"</stream:stream>" + push("b"),
    ],
)
def test_what_is_not_the_usual_shape_is_read_by_expat_alike(stanza):
    data = push("before") + stanza + push("after")
    same(data)
    same(data, range(0, len(data), 5))
    same(data, [len(push("before")), len(push("before")) + 3])


def test_a_push_longer_than_a_limit_is_left_to_expat():
    limits = Limits(max_stanza_bytes=1024, max_tag_bytes=1024)
    short = push("s")
    long = push("l", "/disk/" + "x" * 1000)
    assert same(short + long + short, limits=limits) == 1  # what precedes it is delivered
    _, error, _ = parse(short + long, True, (), limits)
    assert error is not None and "longer than 1024" in error or "larger than 1024" in error


def test_other_namespaces_than_jabber_client_are_left_to_expat():
    header = HEADER.replace(b"xmlns='jabber:client'", b"xmlns='jabber:server'")
    parser = StreamParser(pushes=True)
    parser.feed(header)
    parser.feed(push("a") * 3)
    items = parser.items[1:]
    assert items and not any(type(item) is PushRun for item in items)
    assert all(item.tag == "{jabber:server}iq" for item in items)


def test_markups_past_the_limit_are_read_by_the_full_pattern():
    data = b"".join(push("p", head=' a%d="1"' % i) for i in range(MAX_PLANS + 10))
    assert same(data) == MAX_PLANS + 10


def test_a_bad_value_inside_a_run_ends_it_there():
    good = [push("p%d" % i) for i in range(10)]
    data = b"".join(good[:6]) + push("x").replace(b'id="x"', b'id="&amp;"') + b"".join(good[6:])
    assert same(data) == 6  # (the rest of the read is expat's)
    data = b"".join(good[:6]) + push("x").replace(b'id="x"', b'id="a<b"') + b"".join(good[6:])
    fast_items, error, taken = parse(data, True)
    assert taken == 6 and len(fast_items) == 6 and error is not None


def test_feed_until_stanza_takes_no_run():
    parser = StreamParser(pushes=True)
    parser.feed(HEADER)
    parser.items.clear()
    rest = parser.feed_until_stanza(push("a") + push("b"))
    assert len(parser.items) == 1 and type(parser.items[0]) is not PushRun
    assert rest == push("b")


# -- a fuzzer: mutated pushes, differential ---------------------------------------------------

_PIECES = [b'"', b"'", b"<", b">", b"&", b"&amp;", b" ", b"\t", b"\n", b"=", b"/", b"</iq>", b"<iq", b"xmlns", b":",
           b"\x00", b"\x01", b"\xff", "\u00e9".encode(), "\ufffe".encode(), b"set", b"</op>", b"<op/>", b"<!--", b"]]>"]


@st.composite
def mutated(draw: Any) -> bytes:
    stanzas = [push("p%d" % i, draw(st.sampled_from(["/disk/a", "/disk/Файл", "/disk/x y"]))) for i in range(draw(st.integers(1, 4)))]
    data = bytearray(b"".join(stanzas))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(_PIECES))
        if action == "insert":
            data[at:at] = piece
        elif action == "delete":
            data[at : at + draw(st.integers(1, 8))] = b""
        else:
            data[at : at + len(piece)] = piece
    return bytes(data)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.lists(st.integers(0, 800), max_size=4))
def test_fuzz_mutated_pushes_agree_with_expat(data, cuts):
    same(data, cuts)


_VALUE_CHARS = st.sampled_from(list("ab/ .-_é€Я") + ["<", ">", "&", "&amp;", "'", "\t", "\n", "\r", "\x01", "\x7f", "\x85", "\ufffe", "\U0001f600"])


@st.composite
def same_markup(draw: Any) -> bytes:
    """Pushes of one markup whose values vary: all but the first are read by the plan."""
    out = []
    for i in range(draw(st.integers(2, 6))):
        key = "".join(draw(st.lists(_VALUE_CHARS, max_size=6)))
        raw = push("p%d" % i, "/disk/" + key)
        if draw(st.booleans()) and draw(st.booleans()):
            raw = raw.replace(b'fid="1"', b'fid="\xc3"')  # a byte that is not UTF-8 alone
        out.append(raw)
    return b"".join(out)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(same_markup(), st.lists(st.integers(0, 1200), max_size=3))
def test_fuzz_values_read_by_a_plan_agree_with_expat(data, cuts):
    same(data, cuts)
