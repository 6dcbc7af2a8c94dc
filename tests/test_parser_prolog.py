"""The server's prolog and the parser's error messages: only UTF-8 streams, nothing but
yaxmpp errors out of feed(), and no server text cut short in a message."""

from __future__ import annotations

import re
from typing import List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import yaxmpp
from yaxmpp import Error, ProtocolError
from yaxmpp.protocol.events import StreamClosed
from yaxmpp.protocol.parser import StreamHeader, StreamParser

from .test_core import Driver
from .test_hostile import bare_header, check_connect_fails, negotiating_server

STREAM = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
#: A long secret-looking value (the core masks whole secrets; parts must never show).
SECRET = "c4181a7c2cf4521964a72ff57a34a07d" * 2


def declared(encoding: str, quote: str = "'") -> bytes:
    return ("<?xml version='1.0' encoding=%s%s%s?>\n" % (quote, encoding, quote)).encode() + STREAM


def no_part_of(secret: str, text: str, window: int = 6) -> bool:
    return not any(secret[i : i + window] in text for i in range(len(secret) - window + 1))


# -- the declared encoding ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "prolog",
    [
        STREAM,
        b"<?xml version='1.0'?>" + STREAM,
        declared("UTF-8"),
        declared("utf-8"),
        declared("Utf-8", '"'),
        b"\xef\xbb\xbf" + declared("uTF-8"),
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + STREAM,
    ],
)
def test_utf8_streams_are_read(prolog):
    parser = StreamParser()
    data = prolog + "<message><body>é😀</body></message>".encode()
    for byte in range(len(data)):
        parser.feed(data[byte : byte + 1])
    header, message = parser.items
    assert isinstance(header, StreamHeader) and header.id == "1"
    assert message.findtext("{jabber:client}body") == "é😀"


REFUSED = [
    "latin-1", "ISO-8859-1", "US-ASCII", "cp1252", "koi8-r", "windows-1251",
    "UTF-16", "utf-16le", "UTF-16BE", "UTF-32", "utf-7", "shift_jis", "EUC-JP", "big5",
    "utf8", "utf_8", "UTF-8-SIG", "nonexistent", "rot13", "base64", "hex", "zlib", "idna",
    "punycode", "mbcs", "x" * 300, SECRET,
]  # fmt: skip


@pytest.mark.parametrize("encoding", REFUSED, ids=lambda name: name[:16])
def test_other_declared_encodings_are_a_protocol_error(encoding):
    for pieces in ([declared(encoding) + b"<a/>"], [bytes([b]) for b in declared(encoding)]):
        parser = StreamParser()
        with pytest.raises(ProtocolError) as info:
            for piece in pieces:
                parser.feed(piece)
        message = str(info.value)
        assert "UTF-8" in message
        assert encoding not in message and no_part_of(SECRET, message)
        assert parser.items == []
        with pytest.raises(ProtocolError):  # and the parser stays dead
            parser.feed(b"<a/>")


@pytest.mark.parametrize("encoding", ["utf-16", "UTF-32", "nonexistent", "rot13", "latin-1"])
def test_the_core_closes_the_stream_on_a_bad_encoding(encoding):
    driver = Driver(tls=True)
    events = driver.feed(declared(encoding))
    assert isinstance(events[-1], StreamClosed)
    assert isinstance(events[-1].error, ProtocolError)


@pytest.mark.parametrize("encoding", ["nonexistent", "UTF-32", "iso-8859-1"])
@pytest.mark.parametrize("at", ["stream", "tls_stream"])
def test_connect_raises_protocol_error_on_a_bad_encoding(caplog, encoding, at):
    document = ("<?xml version='1.0' encoding='%s'?>" % encoding).encode() + bare_header("s9")
    exc = check_connect_fails(caplog, negotiating_server(at, document), yaxmpp.ProtocolError)
    assert encoding not in str(exc)


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
@pytest.mark.parametrize("prolog", [STREAM, declared("UTF-16"), declared("UTF-8")], ids=["bare", "utf-16", "utf-8"])
def test_a_stream_in_utf16_or_utf32_is_refused(codec, prolog):
    """Expat detects UTF-16 by its bytes whatever it is told: the NULs give it away first."""
    data = prolog.decode().encode(codec)
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))]):
        parser = StreamParser()
        with pytest.raises(ProtocolError):
            for piece in pieces:
                parser.feed(piece)
        assert parser.items == []


# -- nothing but yaxmpp errors, for any prolog -------------------------------------------------

ENCODING_NAMES = st.one_of(
    st.sampled_from(["UTF-8", "utf-8", "utf-16", "UTF-32", "utf-7", "latin-1", "rot13", "idna", "punycode", "mbcs"]),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=1, max_size=16),
)
FRAGMENTS = st.one_of(
    st.sampled_from(
        [
            b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\x00", b"\x80",
            b"<?xml", b" version='1.0'", b' version="1.1"', b" version='2.0'", b" standalone='yes'",
            b" standalone='maybe'", b"?>", b" ", b"\n", b"'", b'"', b"<", b">", b"<!DOCTYPE x>",
            b"<!DOCTYPE x [<!ENTITY e 'v'>]>", b"<!-- c -->", b"<?pi x?>", b"<![CDATA[x]]>", b"&e;",
            b"&#0;", b"&#xD800;", STREAM, b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
            b"<a>", b"</a>", b"<iq/>", STREAM.decode().encode("utf-16"), STREAM.decode().encode("utf-32"),
        ]
    ),  # fmt: skip
    ENCODING_NAMES.map(lambda name: b" encoding='%s'" % name.encode()),
    ENCODING_NAMES.map(lambda name: b"<?xml version='1.0' encoding='%s'?>" % name.encode()),
    st.binary(max_size=6),
)


@st.composite
def prologs(draw: st.DrawFn) -> List[bytes]:
    data = b"".join(draw(st.lists(FRAGMENTS, min_size=1, max_size=10)))
    points = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prologs())
def test_any_prolog_gives_items_or_a_yaxmpp_error(pieces):
    parser = StreamParser()
    try:
        for piece in pieces:
            parser.feed(piece)
    except Error:
        pass
    headers = [item for item in parser.items if isinstance(item, StreamHeader)]
    assert len(headers) <= 1
    if headers:  # then the stream was UTF-8, as declared if declared
        data = b"".join(pieces)
        assert b"\x00" not in data[: data.find(b">")]  # UTF-16 and UTF-32 markup has NULs
        declaration = re.match(rb"(?:\xef\xbb\xbf)?<\?xml[^>]*encoding=(['\"])([^'\"]*)\1", data)
        assert declaration is None or declaration.group(2).lower() == b"utf-8"


def test_every_byte_value_at_every_position_of_a_prolog():
    """Exhaustive over one-byte changes of a real prolog: items or a yaxmpp error, nothing else."""
    prolog = b"<?xml version='1.0' encoding='UTF-8'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
    for position in range(len(prolog)):
        for value in range(256):
            parser = StreamParser()
            try:
                parser.feed(prolog[:position] + bytes([value]) + prolog[position + 1 :])
            except Error:
                pass


# -- no server text cut short in messages --------------------------------------------------------


def started() -> StreamParser:
    parser = StreamParser()
    parser.feed(STREAM)
    parser.items.clear()
    return parser


@pytest.mark.parametrize(
    "data",
    [
        b"<iq id='a'/>" + SECRET.encode(),  # text after the last tag of a read
        b"<iq id='a'/>" + SECRET.encode() + b"<iq id='b'/>",  # text between two stanzas
        b"<iq id='a'/> \n" + SECRET.encode() + b"\n<iq id='b'/>",
    ],
)
def test_text_between_stanzas_gives_its_size_not_its_text(data):
    parser = started()
    with pytest.raises(ProtocolError) as info:
        parser.feed(data)
    message = str(info.value)
    assert re.fullmatch(r"text between stanzas \(\d+ bytes\)", message), message
    assert no_part_of(SECRET, message)


@pytest.mark.parametrize(
    "data",
    [
        b"<iq>&" + SECRET.encode() + b";</iq>",  # an undefined entity, by name
        b"<iq a='" + SECRET.encode() + b"' a='x'/>",  # a duplicate attribute
        b"<iq></" + SECRET.encode() + b">",  # a mismatched end tag
        b"<iq>\x00" + SECRET.encode() + b"</iq>",
        b"<iq " + SECRET.encode() + b"/>",
    ],
)
def test_malformed_xml_messages_carry_no_server_text(data):
    parser = started()
    with pytest.raises(ProtocolError) as info:
        parser.feed(data)
    assert str(info.value).startswith("malformed XML from server")
    assert no_part_of(SECRET, str(info.value))


# -- declarations ------------------------------------------------------------------------------

BIG_DTD = b'<!DOCTYPE stream:stream [<!ENTITY a "' + b"A" * 50000 + b'">]>' + STREAM + b"<x>&a;</x>"


@pytest.mark.parametrize("cut", [3, 9, 20, 30, 1000, 30000, 50030, 50040])
def test_a_long_dtd_cut_anywhere_is_forbidden_not_too_long(cut):
    """Whatever the reads, a DTD is refused as such, as soon as its "<!D" is in (it used to be
    held as a long tag and refused as too long, or as a '<' inside a tag, by where it was cut)."""
    parser = StreamParser()
    with pytest.raises(ProtocolError, match="forbidden") as info:
        parser.feed(b"<?xml version='1.0'?>" + BIG_DTD[:cut])
        parser.feed(BIG_DTD[cut:])
    assert "longer than" not in str(info.value)
    assert parser.items == []


def test_a_dtd_trickled_fails_at_its_first_bytes():
    parser = StreamParser()
    parser.feed(b"<?xml version='1.0'?>")
    with pytest.raises(ProtocolError, match="forbidden"):
        for start in range(0, len(BIG_DTD), 16):
            parser.feed(BIG_DTD[start : start + 16])
    assert start == 0


def test_a_declaration_inside_the_stream_is_refused_after_the_stanzas_before_it():
    parser = started()
    with pytest.raises(ProtocolError):
        parser.feed(b"<iq id='a'/><!DOCTYPE x><iq id='b'/>")
    assert [item.get("id") for item in parser.items] == ["a"]
