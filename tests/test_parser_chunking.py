"""The StreamParser gives the same items and the same error class whatever the read
boundaries: each input is fed whole and cut at every point (fuzz oracle "g", findings F4, F5,
F7, F8 in the fuzz notes)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple
from xml.etree.ElementTree import tostring

import pytest

from yaxmpp import Error, Limits
from yaxmpp.protocol.parser import STREAM_END, StreamHeader, StreamParser

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
PING = b"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"

Outcome = Tuple[List[str], Optional[str]]


def _names(items: Sequence[object]) -> List[str]:
    out = []
    for item in items:
        if isinstance(item, StreamHeader):
            out.append("header")
        elif item is STREAM_END:
            out.append("end")
        else:
            item.tail = None  # type: ignore[attr-defined]
            out.append(tostring(item).decode())  # type: ignore[arg-type]
    return out


def feed(data: bytes, cuts: Sequence[int], limits: Optional[Limits] = None) -> Outcome:
    """The items and the error class (None: no error) of ``data`` read in pieces cut at ``cuts``."""
    parser = StreamParser(limits)
    items: List[str] = []
    start = 0
    for stop in list(cuts) + [len(data)]:
        try:
            parser.feed(data[start:stop])
        except Error as exc:
            items += _names(parser.items)
            return items, type(exc).__name__
        items += _names(parser.items)
        parser.items = []
        start = stop
    return items, None


def assert_same_at_every_cut(data: bytes, limits: Optional[Limits] = None, step: int = 1) -> Outcome:
    whole = feed(data, [], limits)
    for cut in range(1, len(data), step):
        assert feed(data, [cut], limits) == whole, "cut at %d of %d" % (cut, len(data))
    return whole


# -- F4: text between stanzas -----------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [
        b"<iq id='a'/>junk<message/>",  # the stanza after the text is never delivered
        b"<iq id='a'/>junk<message><body>x</body></message><iq id='b'/>",
        b"<iq id='a'/>junk<iq id='b'>",  # an unfinished stanza after it: refused all the same
        b"<iq id='a'/>junk</stream:stream>",  # nor the stream's end
        b"junk<iq id='a'/>",  # before the first stanza
        b"<iq id='a'/> \n<iq id='b'/>\xc2\xa0<iq id='c'/>",  # no-break space is not XML whitespace
        b"<iq id='a'/>junk<a><b><c><d><e><f/></e></d></c></b></a>",  # text, then a stanza too deep
        b"<iq id='a'/><iq id='b'/>junk<iq id='c'/>&<",  # text, then malformed XML
        b"<iq id='a'/>junk<!-- c -->",  # text before a comment or PI, nothing after
        b"<iq id='a'/>junk<?p x?>",
        b"junk<!-- c --><iq id='b'/>",
    ],
)
def test_text_between_stanzas_is_refused_at_the_text_whatever_the_reads(tail):
    items, error = assert_same_at_every_cut(HEADER + tail, Limits(max_depth=4))
    assert error == "ProtocolError"
    assert "<message" not in "".join(items) and "end" not in items


@pytest.mark.parametrize(
    "tail, error",
    [
        (b"<iq id='a'/>&#32; &#x0a;&#13;<iq id='b'/>", None),  # references to whitespace are whitespace
        (b"<iq id='a'/>&#32;", None),
        (b"<iq id='a'/>&#33;<iq id='b'/>", "ProtocolError"),
        (b"<iq id='a'/>&#33;", "ProtocolError"),
        (b"<iq id='a'/>&amp;", "ProtocolError"),
        (b"<iq id='a'/> <!-- c --> <?p x?>\n<iq id='b'><!-- x --></iq>", None),  # no text at all
    ],
)
def test_character_references_between_stanzas_whatever_the_reads(tail, error):
    assert assert_same_at_every_cut(HEADER + tail)[1] == error


def test_the_stanzas_before_the_text_are_delivered():
    items, error = assert_same_at_every_cut(HEADER + b"<iq id='a'/><iq id='b'/>junk<iq id='c'/>")
    assert error == "ProtocolError"
    assert len(items) == 3 and 'id="a"' in items[1] and 'id="b"' in items[2]


def test_a_stanza_completed_before_a_too_deep_one_in_the_same_read_is_delivered():
    items, error = assert_same_at_every_cut(HEADER + PING + b"<a><b><c><d><e><f/></e></d></c></b></a>", Limits(max_depth=4))
    assert error == "ProtocolError"
    assert len(items) == 2  # the header and the ping


# -- F5: max_tag_bytes on every tag, comment, CDATA section, PI ---------------------------------

LIMIT = Limits(max_tag_bytes=1024)


@pytest.mark.parametrize(
    "markup",
    [
        b"<message a='" + b"v" * 1100 + b"'/>",
        b"<message a='" + b"v>" * 550 + b"'/>",  # '>' inside the quoted value
        b"<message><!--" + b"c<" * 550 + b"--></message>",
        b"<message><![CDATA[" + b"d<" * 550 + b"]]></message>",
        b"<message><?pi " + b"p<" * 550 + b"?></message>",
    ],
)
def test_markup_longer_than_max_tag_bytes_is_refused_whatever_the_reads(markup):
    items, error = assert_same_at_every_cut(HEADER + PING + markup + PING, LIMIT)
    assert error == "ProtocolError"
    assert len(items) == 2  # the header and the first ping


@pytest.mark.parametrize(
    "markup",
    [
        b"<message a='" + b"v" * 1000 + b"'/>",
        b"<message><!--" + b"c<" * 490 + b"--></message>",
        b"<message><body>" + b"t" * 5000 + b"</body></message>",  # long text is no tag
    ],
)
def test_markup_within_max_tag_bytes_passes_whatever_the_reads(markup):
    items, error = assert_same_at_every_cut(HEADER + PING + markup + PING, LIMIT, step=7)
    assert error is None
    assert len(items) == 4


def test_the_fuzz_reproducer_of_f5():
    big = HEADER + b"<message a='" + b"v" * 20000 + b"'/>"
    outcomes = [feed(big, list(range(n, len(big), n))) for n in (len(big), 10000, 4096)]
    assert outcomes == [(["header"], "ProtocolError")] * 3


# -- F7/F8: '<' in a quoted value, in a PI ---------------------------------------------------------


@pytest.mark.parametrize("tail", [b"<iq a='<", b"<iq a='x<y'/>", b"<?l <x?>" + PING, b"<iq/><?l <x"])
def test_lt_in_a_value_or_a_pi_whatever_the_reads(tail):
    assert_same_at_every_cut(HEADER + tail)
