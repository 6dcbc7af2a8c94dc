"""Legal XML survives every read boundary: CDATA, comments, PIs and ``>`` in attribute values,
cut anywhere, through the StreamParser and through the sans-IO core; and held markup costs
time linear in its size."""

from __future__ import annotations

import random
import time
from typing import Callable, List, Sequence, Tuple
from xml.etree.ElementTree import Element, tostring

import pytest

from yaxmpp import Limits, ProtocolError
from yaxmpp.protocol import ns
from yaxmpp.protocol.events import PushesReceived, RequestAnswered
from yaxmpp.protocol.parser import StreamParser

from .test_core import established

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
PING = b"<iq from='ya.ru' type='get' id='ping_9'><ping xmlns='urn:xmpp:ping'/></iq>"
BODY = "{jabber:client}body"

#: The CDATA that broke: two "<", both quotes.
NASTY = "a<b<c 'x' \"y\""

#: name -> (stanza, a check of the parsed stanza).  Each is legal XML that a naive "the last
#: '<' starts a tag" guard misreads at some cut.
STANZAS = {
    "cdata-two-lt": (b"<message id='m'><body><![CDATA[a<b<c]]></body></message>", "a<b<c"),
    "cdata-lt-quotes": (b"<message id='m'><body><![CDATA[" + NASTY.encode() + b"]]></body></message>", NASTY),
    "cdata-brackets-at-end": (b"<message id='m'><body><![CDATA[x]<y>]]]]]><![CDATA[]]></body></message>", "x]<y>]]]"),
    "cdata-only-gt": (b"<message id='m'><body><![CDATA[>'>\">]]></body></message>", ">'>\">"),
    "comment": (b"<message id='m'><body>t<!-- <a href='x'> \"q\" 'p' <b -> - --></body></message>", "t"),
    "comment-between-children": (
        b"<message id='m'><!-- x<y --><body>t</body><!--'-->\n<!--\"--></message>",
        "t",
    ),
    "pi": (b"<message id='m'><body>t<?app a<b>c 'x' \"y\" what? yes>??></body></message>", "t"),
    "attr-gt": (b"<message id='m' a='x>y' b=\"p>'q'>\"><body>t</body></message>", "t"),
    "everything": (
        b"<message id='m' a='&gt;>'><?pi <'>?><!--<\"--><body>"
        b"<![CDATA[" + NASTY.encode() + b"]]>"
        b"</body><x y=\"]]>-->?>'\"/></message>",
        NASTY,
    ),
}


def check_stanza(name: str, elem: Element) -> None:
    _, body = STANZAS[name]
    assert elem.tag == "{jabber:client}message" and elem.get("id") == "m"
    assert elem.findtext(BODY) == body
    if name == "attr-gt":
        assert (elem.get("a"), elem.get("b")) == ("x>y", "p>'q'>")
    if name == "everything":
        assert elem.get("a") == ">>" and elem.find("{jabber:client}x").get("y") == "]]>-->?>'"


def fresh() -> StreamParser:
    parser = StreamParser()
    parser.feed(HEADER)
    parser.items.clear()
    return parser


def pieces_at(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]


def feed_checked(data: bytes, stanza_end: int, cuts: Sequence[int]) -> List[Element]:
    """Feed ``data`` (a stanza ending at ``stanza_end``, then PING) in pieces; after each piece
    exactly the items whose last byte was fed must be out: nothing is held back."""
    parser = fresh()
    out: List[Element] = []
    fed = 0
    for piece in pieces_at(data, cuts):
        parser.feed(piece)
        fed += len(piece)
        out += parser.items
        parser.items.clear()
        assert len(out) == (fed >= stanza_end) + (fed >= len(data)), "held back after %d of %d bytes" % (fed, len(data))
    return out


@pytest.mark.parametrize("name", sorted(STANZAS))
def test_every_two_way_split(name):
    stanza, _ = STANZAS[name]
    data = stanza + PING
    whole = tostring(feed_checked(data, len(stanza), [])[0])
    for cut in range(1, len(data)):
        message, ping = feed_checked(data, len(stanza), [cut])
        check_stanza(name, message)
        assert tostring(message) == whole, "split at %d" % cut
        assert ping.get("id") == "ping_9"


@pytest.mark.parametrize("name", sorted(STANZAS))
def test_three_way_splits(name):
    stanza, _ = STANZAS[name]
    data = stanza + PING
    pairs = [(i, j) for i in range(1, len(data)) for j in range(i + 1, len(data))]
    for i, j in random.Random(name).sample(pairs, 400):
        message, ping = feed_checked(data, len(stanza), [i, j])
        check_stanza(name, message)
        assert ping.get("id") == "ping_9"


@pytest.mark.parametrize("name", sorted(STANZAS))
def test_byte_by_byte(name):
    stanza, _ = STANZAS[name]
    data = stanza + PING
    message, _ = feed_checked(data, len(stanza), range(1, len(data)))
    check_stanza(name, message)


def test_the_lt_cases_that_used_to_end_the_stream():
    """The report's example: cut inside the CDATA, right after a '<' or in its quotes."""
    stanza = STANZAS["cdata-lt-quotes"][0]
    for cut in (stanza.index(b"<b") + 1, stanza.index(b"'x") + 1, stanza.index(b'"y') + 1):
        parser = fresh()
        parser.feed(stanza[:cut])
        parser.feed(stanza[cut:] + PING)
        assert parser.items[0].findtext(BODY) == NASTY and len(parser.items) == 2


def test_markup_between_stanzas_split_everywhere():
    gap = b"<!-- a<b>'c' --><?pi <x> ?>\n"
    data = b"<iq type='result' id='a'/>" + gap + PING
    for cut in range(1, len(data)):
        parser = fresh()
        for piece in pieces_at(data, [cut]):
            parser.feed(piece)
        assert [e.get("id") for e in parser.items] == ["a", "ping_9"]


def test_feed_until_stanza_with_markup_every_split():
    """Negotiation feeds up to each '>', which here falls inside comments, CDATA and PIs."""
    features = b"<stream:features><!-- >'> --><x><![CDATA[>]]></x><?p >?></stream:features>"
    after = b"\x16\x03 not xml"
    data = HEADER + features + after
    for cut in range(1, len(data)):
        parser = StreamParser()
        rest = b""
        for piece in pieces_at(data, [cut]):
            if len(parser.items) == 2:
                rest += piece
            else:
                while piece and len(parser.items) < 2:
                    piece = parser.feed_until_stanza(piece)
                rest += piece
        assert rest == after, "split at %d" % cut
        assert parser.items[1][0].text == ">"


def test_broken_tags_are_still_refused_at_every_split():
    """'<' inside a tag or an attribute value is never well-formed, however it is cut."""
    for broken in (b"<message><body a='x<y'/></message>", b"<message><body <x/></body></message>"):
        for cut in range(1, len(broken)):
            parser = fresh()
            with pytest.raises(ProtocolError):
                for piece in pieces_at(broken + PING, [cut]):
                    parser.feed(piece)


# -- through the sans-IO core ------------------------------------------------------------------


def push_with(note: bytes) -> bytes:
    return (
        b"<iq type='set' id='push_1' from='ya.ru'><query xmlns='yandex:push:disk'><diff>"
        b"<op type='new' key='/disk/a&lt;b.txt'/></diff><note>" + note + b"</note></query></iq>"
    )


CORE_NOTES = {
    "cdata": (b"<![CDATA[" + NASTY.encode() + b"]]>", NASTY),
    "comment": (b"n<!-- <a> 'q' \"r\" -->", "n"),
    "pi": (b"n<?x a<b>'c'?>", "n"),
}


@pytest.mark.parametrize("name", sorted(CORE_NOTES))
def test_core_every_two_way_split(name):
    note, text = CORE_NOTES[name]
    push = push_with(note)
    data = push + PING
    for cut in range(1, len(data)):
        driver = established()
        events = []
        for piece in pieces_at(data, [cut]):
            events += driver.feed(piece)
        runs = [e for e in events if isinstance(e, PushesReceived)]
        assert len(runs) == 1 and runs[0].iq_ids == ["push_1"], "split at %d: %r" % (cut, events)
        query = runs[0].queries[0]
        assert query.findtext("{%s}note" % ns.DISK) == text
        assert query.find("{%s}diff/{%s}op" % (ns.DISK, ns.DISK)).get("key") == "/disk/a<b.txt"
        assert events[-1] == RequestAnswered("ping", "ping_9", "ya.ru"), "split at %d" % cut
        assert b"id=\"ping_9\"" in driver.out()


def test_core_push_is_out_as_soon_as_its_last_byte_is_in():
    note, _ = CORE_NOTES["cdata"]
    push = push_with(note)
    for cut in range(1, len(push)):
        driver = established()
        first = driver.feed(push[:cut])
        assert not any(isinstance(e, PushesReceived) for e in first)
        second = driver.feed(push[cut:])
        assert [type(e) for e in second] == [PushesReceived]


# -- linear time for held markup -------------------------------------------------------------

#: name -> (before, a repeated unit, after): markup that stays unfinished until its end.
TRICKLED = {
    "cdata": (b"<message><body><![CDATA[", b"a<b 'x' ]", b"]]></body></message>"),
    "comment": (b"<message><!--", b"a<b>'x'- ", b"--></message>"),
    "pi": (b"<message><?pi ", b"a<b>'x' ?", b"?></message>"),
    "attribute": (b"<message a='", b"abc>def\"", b"'/>"),
    "tag-name": (b"<message><x", b"abcdefgh", b"/></message>"),
}
BIG = Limits(max_stanza_bytes=8 << 20, max_tag_bytes=8 << 20)


def trickle(name: str, size: int, read: int = 16) -> Tuple[StreamParser, List[bytes]]:
    before, unit, after = TRICKLED[name]
    data = before + unit * (size // len(unit)) + after
    parser = StreamParser(BIG)
    parser.feed(HEADER)
    return parser, [data[i : i + read] for i in range(0, len(data), read)]


def guard_work(name: str, size: int) -> int:
    """Bytes the tag guard searched or copied for one trickled piece of markup: a count, the
    same on every run."""
    parser, pieces = trickle(name, size)
    for piece in pieces:
        parser.feed(piece)
    assert len(parser.items) == 2
    return parser._guard.work


@pytest.mark.parametrize("name", sorted(TRICKLED))
def test_held_markup_work_is_linear(name):
    small, big = 32 << 10, 512 << 10
    per_byte_small = guard_work(name, small) / small
    per_byte_big = guard_work(name, big) / big
    assert per_byte_big < 1.25 * per_byte_small, (per_byte_small, per_byte_big)
    assert per_byte_big < 4  # each byte is appended, searched and copied out about once


def cpu_per_byte(name: str, size: int) -> float:
    best = float("inf")
    for _ in range(3):
        parser, pieces = trickle(name, size)
        feed: Callable[[bytes], None] = parser.feed
        start = time.process_time()
        for piece in pieces:
            feed(piece)
        best = min(best, time.process_time() - start)
        assert len(parser.items) == 2
    return best / size


@pytest.mark.parametrize("name", sorted(TRICKLED))
def test_held_markup_cpu_time_is_linear(name):
    """The same, end to end through expat, by CPU time: a generous factor (it was 14x)."""
    ratio = cpu_per_byte(name, 512 << 10) / cpu_per_byte(name, 32 << 10)
    assert ratio < 4, ratio


# -- max_tag_bytes still bounds held markup ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TRICKLED))
@pytest.mark.parametrize("read", [16, 1000, 5000])
def test_unfinished_markup_longer_than_max_tag_bytes_is_refused(name, read):
    before, unit, _ = TRICKLED[name]
    parser = StreamParser(Limits(max_tag_bytes=4096))
    parser.feed(HEADER + b"<iq id='ok'/>")
    data = before + unit * 1000
    fed = 0
    with pytest.raises(ProtocolError, match="longer than 4096"):
        while fed < len(data):
            parser.feed(data[fed : fed + read])
            fed += read
    assert fed <= 4096 + len(before) + 2 * read
    assert [getattr(e, "tag", None) for e in parser.items][-1] == "{jabber:client}iq"


@pytest.mark.parametrize("name", sorted(TRICKLED))
def test_markup_just_under_max_tag_bytes_is_accepted_in_small_reads(name):
    before, unit, after = TRICKLED[name]
    stanza = before + unit * ((4000 - len(before)) // len(unit)) + after
    parser = StreamParser(Limits(max_tag_bytes=4096))
    parser.feed(HEADER)
    for i in range(0, len(stanza), 7):
        parser.feed(stanza[i : i + 7])
    assert len(parser.items) == 2
