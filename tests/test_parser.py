"""StreamParser: the incremental, defused reader of one XMPP stream."""

from __future__ import annotations

import time
from typing import List, Optional, Tuple
from xml.etree.ElementTree import Element, tostring

import pyexpat
import pytest

from yaxmpp import Limits, ProtocolError
from yaxmpp.protocol import ns
from yaxmpp.protocol.parser import STREAM_END, StreamHeader, StreamParser

from .core_harness import FEATURES_TLS

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

#: The server's stream header of step 1, byte for byte (single quotes, with a declaration).
SEED_HEADER = (
    b"<?xml version='1.0'?>\n"
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    b"id='4235063168' from='ya.ru' version='1.0' xml:lang='en'>"
)
SEED_FEATURES = FEATURES_TLS  # the seed's features before TLS
SEED_PROCEED = b'<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>'
SEED_BIND_RESULT = (
    b'<iq xmlns="jabber:client" type="result" id="bind_1">\n'
    b'  <bind xmlns="urn:ietf:params:xml:ns:xmpp-bind">\n'
    b"    <jid>test@ya.ru/YaDisk-client</jid>\n"
    b"  </bind>\n"
    b"</iq>"
)
SEED_SESSION_RESULT = (
    b'<iq type="result" id="session_1">\n<session xmlns="urn:ietf:params:xml:ns:xmpp-session"/>\n</iq>'
)
SEED_VERSION_GET = (
    b'<iq from="ya.ru" type="get" to="test@ya.ru/YaDisk-client" id="ask_version">\n'
    b'<query xmlns="jabber:iq:version"/>\n'
    b"</iq>"
)
SEED_PING = (
    b'<iq from="ya.ru" type="get" to="test@ya.ru/YaDisk-client" id="ping_1">\n'
    b'  <ping xmlns="urn:xmpp:ping"/>\n'
    b"</iq>"
)

#: A whole server stream as (bytes, completes an item?) pieces.
SEED_PIECES: List[Tuple[bytes, bool]] = [
    (SEED_HEADER, True),
    (b"\n\n", False),
    (SEED_FEATURES, True),
    (SEED_PROCEED, True),
    (b" ", False),
    (SEED_BIND_RESULT, True),
    (b"\n", False),
    (SEED_SESSION_RESULT, True),
    (SEED_VERSION_GET, True),
    (b"  \n ", False),
    (SEED_PING, True),
    (b"</stream:stream>", True),
]
SEED_STREAM = b"".join(piece for piece, _ in SEED_PIECES)

HEADER = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"


def started(limits: Optional[Limits] = None) -> StreamParser:
    """A parser that has read a stream header (its item already drained)."""
    parser = StreamParser(limits)
    parser.feed(HEADER)
    assert len(parser.items) == 1
    parser.items.clear()
    return parser


def canonical(items: list) -> list:
    """Items in a comparable form."""
    out = []
    for item in items:
        if isinstance(item, StreamHeader):
            out.append(("header", sorted(item.attrs.items())))
        elif item is STREAM_END:
            out.append(("end",))
        else:
            assert isinstance(item, Element)
            out.append(("element", tostring(item)))
    return out


def parse_whole(data: bytes) -> list:
    parser = StreamParser()
    parser.feed(data)
    return parser.items


# -- the stream header ---------------------------------------------------------------------


def test_seed_header_single_quotes_with_declaration():
    parser = StreamParser()
    parser.feed(SEED_HEADER)
    assert len(parser.items) == 1
    header = parser.items[0]
    assert isinstance(header, StreamHeader)
    assert header.attrs == {"id": "4235063168", "from": "ya.ru", "version": "1.0", XML_LANG: "en"}
    assert header.id == "4235063168"


def test_header_double_quotes_without_declaration():
    parser = StreamParser()
    parser.feed(
        b'<stream:stream xmlns:stream="http://etherx.jabber.org/streams" xmlns="jabber:client" '
        b'from="ya.ru" id="77" version="1.0" xml:lang="ru">'
    )
    (header,) = parser.items
    assert isinstance(header, StreamHeader)
    assert header.attrs == {"from": "ya.ru", "id": "77", "version": "1.0", XML_LANG: "ru"}


def test_header_double_quoted_declaration_and_mixed_quotes():
    parser = StreamParser()
    parser.feed(b'<?xml version="1.0" encoding="UTF-8"?>')
    parser.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'")
    assert parser.items == []
    parser.feed(b' id="x\'y" from=\'a"b\'>')
    (header,) = parser.items
    assert header.attrs == {"id": "x'y", "from": 'a"b'}


def test_header_without_id():
    parser = StreamParser()
    parser.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>")
    (header,) = parser.items
    assert header.id is None


def test_header_with_another_prefix_is_accepted():
    """The stream element is recognised by namespace, not by its prefix."""
    parser = StreamParser()
    parser.feed(b"<s:stream xmlns:s='http://etherx.jabber.org/streams' id='9'><s:features/></s:stream>")
    assert canonical(parser.items) == [
        ("header", [("id", "9")]),
        ("element", tostring(Element(ns.FEATURES))),
        ("end",),
    ]


# -- delivery timing and splits --------------------------------------------------------------


def test_every_seed_item_appears_exactly_at_its_last_byte():
    boundaries = []
    offset = 0
    for piece, completes in SEED_PIECES:
        offset += len(piece)
        if completes:
            boundaries.append(offset)
    parser = StreamParser()
    for index in range(len(SEED_STREAM)):
        parser.feed(SEED_STREAM[index : index + 1])
        fed = index + 1
        expected = sum(1 for end in boundaries if end <= fed)
        assert len(parser.items) == expected, "after %d bytes" % fed
    assert canonical(parser.items) == canonical(parse_whole(SEED_STREAM))
    assert parser.items[-1] is STREAM_END
    assert parser.ended


def test_seed_items_have_the_expected_shape():
    items = parse_whole(SEED_STREAM)
    assert [type(item).__name__ for item in items] == ["StreamHeader"] + ["Element"] * 6 + ["_StreamEnd"]
    features = items[1]
    assert features.tag == ns.FEATURES
    assert [child.tag for child in features] == [ns.STARTTLS, ns.COMPRESSION, ns.MECHANISMS]
    assert items[2].tag == ns.PROCEED
    bind = items[3]
    assert bind.tag == ns.IQ and bind.get("id") == "bind_1"
    assert bind.find("%s/%s" % (ns.BIND_TAG, ns.JID_TAG)).text == "test@ya.ru/YaDisk-client"
    assert items[4].get("id") == "session_1"
    assert items[5][0].tag == ns.VERSION_QUERY
    assert items[6][0].tag == ns.PING_TAG
    assert items[6].attrib == {"from": "ya.ru", "type": "get", "to": "test@ya.ru/YaDisk-client", "id": "ping_1"}


SMALL_STREAM = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='s1' xml:lang='en'> "
    b"<iq type='get' id='a&amp;b'><x xmlns='urn:x' k=\"v\">t&#x41;<![CDATA[<c>]]><y/>tail</x></iq>"
    b"<message xml:lang='ru'><body>\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xf0\x9f\x98\x80</body></message>"
    b"\n</stream:stream>"
)


def test_every_two_way_split_gives_the_same_items():
    expected = canonical(parse_whole(SMALL_STREAM))
    assert len(expected) == 4
    for cut in range(1, len(SMALL_STREAM)):
        parser = StreamParser()
        parser.feed(SMALL_STREAM[:cut])
        parser.feed(SMALL_STREAM[cut:])
        assert canonical(parser.items) == expected, "split at %d" % cut


def test_multibyte_characters_split_inside_a_character():
    parser = started()
    body = "Привет, мир 😀".encode("utf-8")
    data = b"<message><body>" + body + b"</body></message>"
    for index in range(len(data)):
        parser.feed(data[index : index + 1])
    (message,) = parser.items
    assert message[0].text == "Привет, мир 😀"


def test_large_stanza_completed_by_a_tiny_second_feed_is_delivered_at_once():
    """expat >= 2.6 defers reparsing a big unfinished token when only a few bytes follow; the
    parser must not (one 100 KB start tag is such a token; a long text node is not)."""
    parser = started(Limits(max_tag_bytes=1 << 20))
    stanza = b"<iq type='set' id='big' data='" + b"a" * 100000 + b"'/>"
    parser.feed(stanza[:-1])
    assert parser.items == []
    parser.feed(stanza[-1:])
    assert len(parser.items) == 1
    assert parser.items[0].get("id") == "big"
    assert len(parser.items[0].get("data")) == 100000


def test_large_text_stanza_completed_by_a_tiny_second_feed_is_delivered_at_once():
    parser = started()
    stanza = b"<iq type='set' id='big'><body>" + b"a" * 100000 + b"</body></iq>"
    parser.feed(stanza[:-1])
    assert parser.items == []
    parser.feed(stanza[-1:])
    assert len(parser.items) == 1
    assert len(parser.items[0][0].text) == 100000


def test_large_header_completed_by_a_tiny_second_feed_is_delivered_at_once():
    parser = StreamParser(Limits(max_tag_bytes=1 << 20))
    header = b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='" + b"7" * 50000 + b"'>"
    parser.feed(header[:-1])
    assert parser.items == []
    parser.feed(header[-1:])
    assert len(parser.items) == 1


def test_a_tag_longer_than_max_tag_bytes_is_refused_early():
    parser = started(Limits(max_tag_bytes=4096))
    parser.feed(b"<iq id='ok' data='" + b"a" * 3000 + b"'/>")  # under the limit
    with pytest.raises(ProtocolError, match="longer than 4096"):
        parser.feed(b"<iq data='" + b"a" * 5000)
    assert [e.get("id") for e in parser.items] == ["ok"]


def test_many_small_comments_are_not_one_long_tag():
    parser = started(Limits(max_tag_bytes=1024))
    parser.feed(b"<message>" + b"<!-- x -->" * 500 + b"<body>hi</body></message>")
    assert parser.items[0].findtext("{jabber:client}body") == "hi"


@pytest.mark.skipif(not hasattr(pyexpat.ParserCreate(), "SetReparseDeferralEnabled"), reason="expat < 2.6")
def test_big_token_completed_by_one_byte_on_new_expat():
    """The case reparse deferral would delay, on an expat that has it."""
    parser = started(Limits(max_tag_bytes=1 << 20))
    parser.feed(b"<message id='m'><body>" + b"b" * 50000)
    parser.feed(b"</body></message")
    assert parser.items == []
    parser.feed(b">")
    assert [e.get("id") for e in parser.items] == ["m"]


# -- element content ---------------------------------------------------------------------------


def test_text_and_tail_are_preserved():
    parser = started()
    parser.feed(b"<message><body>hi <b>bold</b> tail &amp; more<i/>\n end</body><x/></message>")
    (message,) = parser.items
    body = message[0]
    assert body.text == "hi "
    assert body[0].text == "bold"
    assert body[0].tail == " tail & more"
    assert body[1].text is None
    assert body[1].tail == "\n end"
    assert body.tail is None
    assert message.text is None
    assert message[1].text is None and message[1].tail is None


def test_text_fed_in_pieces_is_joined():
    parser = started()
    for piece in (b"<m><b>ab", b"c", b"&am", b"p;d", b"<!-- gone -->", b"e</b>f", b"g</m>"):
        parser.feed(piece)
    (m,) = parser.items
    assert m[0].text == "abc&de"
    assert m[0].tail == "fg"


def test_character_references_cdata_and_predefined_entities():
    parser = started()
    parser.feed(b"<m a='&lt;&#34;&apos;&#x26;'>&#65;&#x1F600;<![CDATA[<x>&amp;]]>&gt;</m>")
    (m,) = parser.items
    assert m.get("a") == "<\"'&"
    assert m.text == "A\U0001F600<x>&amp;>"


def test_whitespace_between_stanzas_is_ignored():
    parser = started()
    parser.feed(b"  \n<a/>\n\t <b/> ")
    assert [e.tag for e in parser.items] == ["{jabber:client}a", "{jabber:client}b"]
    assert not (parser.items[0].tail or "").strip()  # at most the whitespace that followed
    assert len(parser.items[0]) == 0 and parser.items[0].text is None


def test_namespaces_become_clark_names():
    parser = started()
    parser.feed(
        b"<iq type='set' xml:lang='ru' id='1'>"
        b"<query xmlns='yandex:push:disk'><op x:k='v' xmlns:x='urn:x' plain='p'/></query>"
        b"<p:other xmlns:p='urn:p'><p:inner/><free xmlns=''/></p:other>"
        b"</iq>"
    )
    (iq,) = parser.items
    assert iq.tag == "{jabber:client}iq"
    assert iq.attrib == {"type": "set", XML_LANG: "ru", "id": "1"}
    query, other = list(iq)
    assert query.tag == "{yandex:push:disk}query"
    assert query[0].tag == "{yandex:push:disk}op"
    assert query[0].attrib == {"{urn:x}k": "v", "plain": "p"}
    assert other.tag == "{urn:p}other"
    assert [c.tag for c in other] == ["{urn:p}inner", "free"]


def test_stream_namespace_elements():
    parser = started()
    parser.feed(b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
    error, end = parser.items
    assert error.tag == ns.STREAM_ERROR
    assert error[0].tag == "{urn:ietf:params:xml:ns:xmpp-streams}conflict"
    assert end is STREAM_END


def test_nested_stream_tag_inside_a_stanza_is_an_ordinary_child():
    parser = started()
    parser.feed(b"<iq><stream:stream/></iq>")
    (iq,) = parser.items
    assert iq[0].tag == ns.STREAM


def test_many_distinct_names_keep_working_past_the_name_cache():
    parser = started()
    for index in range(5000):
        parser.feed(b"<e%d xmlns='urn:n%d' a%d='v'/>" % (index, index, index))
    assert len(parser.items) == 5000
    last = parser.items[-1]
    assert last.tag == "{urn:n4999}e4999"
    assert last.attrib == {"a4999": "v"}


# -- keepalives ------------------------------------------------------------------------------


def test_whitespace_keepalives_forever_in_small_feeds():
    parser = started(Limits(max_stanza_bytes=1024))
    for _ in range(5000):
        parser.feed(b" " * 1000)
    for _ in range(3000):
        parser.feed(b"\n")
    parser.feed(b"<iq id='after'/>")
    assert [e.get("id") for e in parser.items] == ["after"]


def test_five_megabytes_of_keepalives_with_default_limits():
    parser = started()
    for _ in range(80):
        parser.feed(b" " * 65536)
    parser.feed(b" " * (5 * 1024 * 1024))
    parser.feed(b"<iq id='after'/>")
    assert [e.get("id") for e in parser.items] == ["after"]


def test_keepalives_between_stanzas_do_not_accumulate_into_the_stanza_limit():
    parser = started(Limits(max_stanza_bytes=1024))
    stanza = b"<iq>" + b"x" * 700 + b"</iq>"
    for _ in range(50):
        parser.feed(b" " * 900)
        parser.feed(stanza)
    assert len(parser.items) == 50


def test_one_big_feed_of_keepalives_with_a_small_limit():
    parser = started(Limits(max_stanza_bytes=4096))
    parser.feed(b" " * 10000)
    parser.feed(b"<iq id='after'/>")
    assert [e.get("id") for e in parser.items] == ["after"]


# -- feed_until_stanza -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, rest, tag",
    [
        (b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>XYZ", b"XYZ", ns.PROCEED),
        (b"<proceed/>XYZ", b"XYZ", "{jabber:client}proceed"),
        (b"<success></success>rest", b"rest", "{jabber:client}success"),
        (b"<a x='>'/>rest", b"rest", "{jabber:client}a"),
        (b"<a x=\"a>b>c\">t > u</a>\x16\x03\x01\x00", b"\x16\x03\x01\x00", "{jabber:client}a"),
        (b"  \n<a/>", b"", "{jabber:client}a"),
        (b"<a/><b/><c/>", b"<b/><c/>", "{jabber:client}a"),
        (b"<a><!-- > --><![CDATA[>]]></a>\xff\xfe", b"\xff\xfe", "{jabber:client}a"),
    ],
)
def test_feed_until_stanza_returns_exactly_the_bytes_after_the_element(data, rest, tag):
    parser = started()
    assert parser.feed_until_stanza(data) == rest
    assert [e.tag for e in parser.items] == [tag]


def test_feed_until_stanza_with_the_element_split_across_calls():
    parser = started()
    assert parser.feed_until_stanza(b"<proc") == b""
    assert parser.items == []
    assert parser.feed_until_stanza(b"eed x='>") == b""
    assert parser.items == []
    assert parser.feed_until_stanza(b"'/>XYZ<more/>") == b"XYZ<more/>"
    assert [e.tag for e in parser.items] == ["{jabber:client}proceed"]


def test_feed_until_stanza_stops_after_the_stream_header():
    parser = StreamParser()
    rest = parser.feed_until_stanza(SEED_HEADER + b"<stream:features/>")
    assert rest == b"<stream:features/>"
    assert len(parser.items) == 1 and isinstance(parser.items[0], StreamHeader)


def test_feed_until_stanza_stops_after_the_stream_end():
    parser = started()
    assert parser.feed_until_stanza(b"</stream:stream>garbage") == b"garbage"
    assert parser.items == [STREAM_END]


def test_feed_until_stanza_every_split_point():
    data = b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl' a='>'>x&gt;y</success>" + SEED_HEADER
    for cut in range(1, len(data)):
        parser = started()
        first = parser.feed_until_stanza(data[:cut])
        if parser.items:
            rest = first + data[cut:]  # the caller keeps the unread part of the stream
        else:
            assert first == b""
            rest = parser.feed_until_stanza(data[cut:])
        assert rest == SEED_HEADER, "split at %d" % cut
        assert len(parser.items) == 1 and parser.items[0].text == "x>y"


def test_feed_until_stanza_raises_on_malformed_input():
    parser = started()
    with pytest.raises(ProtocolError):
        parser.feed_until_stanza(b"<a></b>rest")


# -- hostile input --------------------------------------------------------------------------

def _billion_laughs() -> bytes:
    entities = [b"<!ENTITY lol0 'lol'>"]
    for level in range(1, 10):
        entities.append(b"<!ENTITY lol%d '%s'>" % (level, (b"&lol%d;" % (level - 1)) * 10))
    return (
        b"<?xml version='1.0'?>\n<!DOCTYPE lolz [\n"
        + b"\n".join(entities)
        + b"\n]>\n<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq>&lol9;</iq>"
    )


BILLION_LAUGHS = _billion_laughs()

HOSTILE_STREAMS = {
    "doctype": b"<?xml version='1.0'?><!DOCTYPE stream><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
    "internal entity": (
        b"<!DOCTYPE s [<!ENTITY e 'boom'>]>"
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq>&e;</iq>"
    ),
    "billion laughs": BILLION_LAUGHS,
    "external entity": (
        b"<!DOCTYPE s [<!ENTITY ext SYSTEM 'file:///etc/passwd'>]>"
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq>&ext;</iq>"
    ),
    "external dtd": (
        b"<!DOCTYPE s SYSTEM 'http://127.0.0.1:9/evil.dtd'>"
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
    ),
    "parameter entity": (
        b"<!DOCTYPE s [<!ENTITY % p SYSTEM 'http://127.0.0.1:9/p'> %p;]>"
        b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
    ),
    "doctype after header": HEADER + b"<!DOCTYPE x>",
    "undefined entity": HEADER + b"<iq>&undefined;</iq>",
    "undefined entity in attribute": HEADER + b"<iq a='&nope;'/>",
    "invalid utf-8": HEADER + b"<iq>\xff\xfe</iq>",
    "overlong utf-8": HEADER + b"<iq>\xc0\xaf</iq>",
    "utf-8 surrogate": HEADER + b"<iq>\xed\xa0\x80</iq>",
    "nul byte": HEADER + b"<iq>\x00</iq>",
    "control character": HEADER + b"<iq>\x01</iq>",
    "http garbage": b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
    "tls record": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
    "binary after header": HEADER + b"\x16\x03\x01\x02\x00",
    "second stream header": HEADER + b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
    "second header, other prefix": HEADER + b"<s:stream xmlns:s='http://etherx.jabber.org/streams'/>",
    "wrong root": b"<html><body/></html>",
    "wrong root namespace": b"<stream:stream xmlns:stream='urn:not-streams'>",
    "unbound prefix": HEADER + b"<x:iq/>",
    "mismatched tags": HEADER + b"<iq></message>",
    "duplicate attribute": HEADER + b"<iq a='1' a='2'/>",
    "data after stream end": HEADER + b"</stream:stream><iq/>",
    "text after stream end": HEADER + b"</stream:stream>junk",
    "second root after end": HEADER + b"</stream:stream>" + HEADER,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_STREAMS))
def test_hostile_input_raises_protocol_error(name):
    parser = StreamParser()
    with pytest.raises(ProtocolError) as info:
        parser.feed(HOSTILE_STREAMS[name])
    assert type(info.value) is ProtocolError


@pytest.mark.parametrize("name", sorted(HOSTILE_STREAMS))
def test_hostile_input_byte_by_byte_raises_protocol_error(name):
    parser = StreamParser()
    data = HOSTILE_STREAMS[name]
    with pytest.raises(ProtocolError):
        for index in range(len(data)):
            parser.feed(data[index : index + 1])


def test_doctype_never_yields_a_header():
    parser = StreamParser()
    with pytest.raises(ProtocolError):
        parser.feed(BILLION_LAUGHS)
    assert parser.items == []


def test_errors_are_sticky():
    parser = started()
    with pytest.raises(ProtocolError) as first:
        parser.feed(b"<iq>&bad;</iq>")
    with pytest.raises(ProtocolError) as again:
        parser.feed(b"<iq/>")
    assert again.value is first.value
    with pytest.raises(ProtocolError):
        parser.feed(b"")
    with pytest.raises(ProtocolError):
        parser.feed_until_stanza(b"<iq/>rest")
    assert parser.items == []


def test_items_completed_before_an_error_are_kept():
    parser = StreamParser()
    with pytest.raises(ProtocolError):
        parser.feed(HEADER + b"<a/><b>x</b><c>&bad;</c><d/>")
    assert [type(item) for item in parser.items] == [StreamHeader, Element, Element]
    assert [item.tag for item in parser.items[1:]] == ["{jabber:client}a", "{jabber:client}b"]


def test_items_before_a_limit_error_are_kept():
    parser = started(Limits(max_stanza_bytes=1024))
    with pytest.raises(ProtocolError):
        parser.feed(b"<a/><b/><c>" + b"x" * 200000)
    assert [e.tag for e in parser.items] == ["{jabber:client}a", "{jabber:client}b"]


# -- limits -----------------------------------------------------------------------------------


def test_huge_attribute_value_in_one_feed():
    parser = started(Limits(max_stanza_bytes=4096))
    # The tag limit is at most the stanza limit, and the tag comes first.
    with pytest.raises(ProtocolError, match="(larger|longer) than 4096"):
        parser.feed(b"<iq a='" + b"x" * 200000 + b"'/>")
    assert parser.items == []


def test_huge_attribute_value_even_when_it_would_complete():
    parser = started(Limits(max_stanza_bytes=100000))
    with pytest.raises(ProtocolError):
        parser.feed(b"<iq a='" + b"x" * 300000 + b"'/>")


def test_complete_stanza_over_a_small_limit_in_one_feed():
    parser = started(Limits(max_stanza_bytes=2048))
    with pytest.raises(ProtocolError):
        parser.feed(b"<message><body>" + b"x" * 40000 + b"</body></message>")


def feed_in_pieces(parser: StreamParser, data: bytes, size: int) -> None:
    for start in range(0, len(data), size):
        parser.feed(data[start : start + size])


def test_stanzas_under_the_limit_are_accepted_while_they_grow():
    parser = started(Limits(max_stanza_bytes=4096))
    for _ in range(20):
        feed_in_pieces(parser, b"<iq a='" + b"x" * 3500 + b"'/>", 100)
        feed_in_pieces(parser, b"<iq>" + b"y" * 3500 + b"</iq>", 100)
    assert len(parser.items) == 40


def test_stanza_over_the_limit_fails_while_it_grows():
    parser = started(Limits(max_stanza_bytes=4096))
    with pytest.raises(ProtocolError):
        feed_in_pieces(parser, b"<iq>" + b"y" * 4500 + b"</iq>", 100)


def test_never_ending_text_node_fed_in_chunks():
    parser = started(Limits(max_stanza_bytes=65536))
    parser.feed(b"<message><body>")
    fed = 0
    with pytest.raises(ProtocolError):
        while fed < 10 * 1024 * 1024:
            parser.feed(b"z" * 1000)
            fed += 1000
    assert fed <= 65536 + 1000


def test_never_ending_tag_name_fed_in_chunks():
    parser = started(Limits(max_stanza_bytes=8192))
    parser.feed(b"<iq><ab")
    fed = 0
    with pytest.raises(ProtocolError):
        while fed < 10 * 1024 * 1024:
            parser.feed(b"c" * 512)
            fed += 512
    assert fed <= 8192 + 512


def test_never_ending_comment_fed_in_chunks():
    parser = started(Limits(max_stanza_bytes=8192))
    parser.feed(b"<!--")
    fed = 0
    with pytest.raises(ProtocolError):
        while fed < 10 * 1024 * 1024:
            parser.feed(b"-x" * 256)
            fed += 512
    assert fed <= 8192 + 512


def test_never_ending_stream_header():
    parser = StreamParser(Limits(max_stanza_bytes=8192))
    parser.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='")
    with pytest.raises(ProtocolError):
        for _ in range(1000):
            parser.feed(b"1" * 512)


def test_the_default_limit_is_one_mebibyte():
    parser = started()
    parser.feed(b"<iq>" + b"x" * 1000000 + b"</iq>")
    assert len(parser.items) == 1
    with pytest.raises(ProtocolError):
        parser.feed(b"<iq>" + b"x" * 1100000 + b"</iq>")


def test_never_ending_attribute_in_small_pieces_fails_in_linear_time():
    parser = started()
    parser.feed(b"<iq a='")
    start = time.perf_counter()
    with pytest.raises(ProtocolError):
        while time.perf_counter() - start < 2.0:
            parser.feed(b"x" * 64)


def test_nesting_at_the_depth_limit_is_accepted():
    parser = started(Limits(max_depth=6))
    parser.feed(b"<a>" * 6 + b"</a>" * 6)
    assert len(parser.items) == 1


def test_nesting_past_the_depth_limit_is_rejected():
    parser = started(Limits(max_depth=6))
    with pytest.raises(ProtocolError, match="deeper than 6"):
        parser.feed(b"<a>" * 7 + b"</a>" * 7)


def test_ten_thousand_levels_deep():
    parser = started(Limits(max_depth=32))
    with pytest.raises(ProtocolError):
        parser.feed(b"<a>" * 10000 + b"</a>" * 10000)
    assert parser.items == []


def test_ten_thousand_levels_deep_fed_in_pieces():
    parser = started()
    with pytest.raises(ProtocolError):
        for _ in range(10000):
            parser.feed(b"<a>")


def test_limits_validate_their_arguments():
    with pytest.raises(ValueError):
        Limits(max_stanza_bytes=1023)
    with pytest.raises(ValueError):
        Limits(max_depth=3)
    limits = Limits(max_stanza_bytes=2048, max_depth=8)
    with pytest.raises(AttributeError):
        limits.max_depth = 100
    assert limits == Limits(2048, 8) and limits != Limits()


# -- the end of the stream -----------------------------------------------------------------------


def test_stream_end_sets_ended():
    parser = started()
    assert not parser.ended
    parser.feed(b"<a/></stream:stream>")
    assert parser.ended
    assert parser.items[-1] is STREAM_END


def test_whitespace_after_stream_end_is_harmless():
    parser = started()
    parser.feed(b"</stream:stream>\n ")
    assert parser.items == [STREAM_END]
