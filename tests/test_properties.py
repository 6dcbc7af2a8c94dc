"""Property tests of the protocol core and the stream parser (hypothesis)."""

from __future__ import annotations

from typing import List, Tuple
from xml.etree.ElementTree import Element, fromstring, tostring
from xml.sax.saxutils import escape, quoteattr

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yaxmpp import AuthError, ConnectionLost, IqError, ProtocolError, StreamError
from yaxmpp.protocol.events import IqResponse, RequestAnswered, StreamClosed
from yaxmpp.protocol.parser import STREAM_END, StreamHeader, StreamParser

from .core_harness import (
    BIND_RESULT,
    ESTABLISH_SCRIPT,
    FEATURES_AUTH,
    FEATURES_BIND,
    PING,
    SERVER_CLOSE,
    SESSION_RESULT,
    SUCCESS,
    VERSION_GET,
    Driver,
    established,
    server_header,
    summary,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Characters for ids and texts, with the ones that need escaping well represented.
ODD_TEXT = st.text(
    alphabet=st.sampled_from(list("abcXYZ019_-. <>&\"'\t\n") + ["é", "Я", "😀"]), min_size=1, max_size=12
)


def cuts(data: bytes) -> st.SearchStrategy:
    """Non-empty pieces of ``data`` split at a random set of positions (b"" would mean end of file)."""

    def split(points: List[int]) -> List[bytes]:
        bounds = [0] + sorted(points) + [len(data)]
        return [data[a:b] for a, b in zip(bounds, bounds[1:]) if a < b]

    return st.lists(st.integers(0, len(data)), max_size=12).map(split)


# -- (a) splitting a valid stream changes nothing ------------------------------------------------------


@st.composite
def server_stanza(draw: st.DrawFn) -> bytes:
    """One stanza the server may send once the session is open (or whitespace between stanzas)."""
    kind = draw(st.sampled_from(["ping", "version", "other", "message", "result", "error", "keepalive", "stray"]))
    iq_id = quoteattr(draw(ODD_TEXT)).encode("utf-8")
    sender = draw(st.sampled_from([b"", b" from='ya.ru'", b" from=" + quoteattr(draw(ODD_TEXT)).encode("utf-8")]))
    if kind == "ping":
        return b"<iq type='get' id=%s%s><ping xmlns='urn:xmpp:ping'/></iq>" % (iq_id, sender)
    if kind == "version":
        return b"<iq type='get' id=%s%s>\n<query xmlns='jabber:iq:version'/>\n</iq>" % (iq_id, sender)
    if kind == "other":
        return b"<iq type='set' id=%s%s><query xmlns='jabber:iq:roster'/></iq>" % (iq_id, sender)
    if kind == "message":
        body = escape(draw(ODD_TEXT)).encode("utf-8")
        return b"<message%s><body>%s</body></message>" % (sender, body)
    if kind == "result":
        return b"<iq type='result' id='yx%d'/>" % draw(st.integers(1, 3))
    if kind == "error":
        return (
            b"<iq type='error' id='yx%d'><error type='cancel'>"
            b"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>" % draw(st.integers(1, 3))
        )
    if kind == "stray":
        return b"<iq type='result' id=%s/>" % iq_id
    return draw(st.sampled_from([b" ", b"\n", b"\r\n\t ", b" " * 300]))


SESSION_BODY = st.lists(server_stanza(), max_size=15).map(b"".join)


@st.composite
def session_rest(draw: st.DrawFn) -> bytes:
    """What the server sends once the session is open, ending with its close or not."""
    end = draw(st.sampled_from([b"", SERVER_CLOSE]))
    return draw(SESSION_BODY) + end


def run(opening: List[bytes], rest: List[bytes]) -> Tuple[list, list, bytes]:
    driver = Driver(tls=True)
    for chunk in opening:
        driver.feed(chunk)
    assert driver.proto.established
    for iq_type in ("get", "set"):  # requests of ours, answered (or not) in the rest
        driver.proto.send_iq(iq_type, "<query xmlns='jabber:iq:last'/>")
    for chunk in rest:
        driver.feed(chunk)
    driver.out()
    ids = [e.iq_id for e in driver.events if isinstance(e, (RequestAnswered, IqResponse))]
    return summary(driver.events), ids, driver.wire


@PROPERTY
@given(st.data())
def test_any_split_of_a_session_gives_the_same_events_and_bytes(data):
    rest = data.draw(session_rest())
    opening = data.draw(cuts(ESTABLISH_SCRIPT))
    pieces = data.draw(cuts(rest))
    assert b"".join(opening) == ESTABLISH_SCRIPT and b"".join(pieces) == rest
    expected = run([ESTABLISH_SCRIPT], [rest] if rest else [])
    negotiation = [name for name, _ in expected[0][:5]]
    assert negotiation == ["StreamOpened", "Authenticated", "StreamOpened", "Bound", "SessionStarted"]
    assert run(opening, pieces) == expected


@PROPERTY
@given(body=SESSION_BODY)
def test_every_request_is_answered_once_with_its_own_id(body):
    driver = established()
    driver.feed(body)
    answered = [e for e in driver.events if isinstance(e, RequestAnswered)]
    replies = fromstring(b"<all>" + driver.out().replace(b"</stream:stream>", b"") + b"</all>")
    assert [r.get("id") for r in replies] == [e.iq_id for e in answered]
    assert [r.get("to") for r in replies] == [e.sender for e in answered]
    assert all(r.get("type") in ("result", "error") for r in replies)


# -- (b) arbitrary bytes after the header never raise ---------------------------------------------------

FRAGMENTS = [
    b"<",
    b">",
    b"/>",
    b"</",
    b"'",
    b'"',
    b"=",
    b" ",
    b"iq",
    b" xmlns='urn:x'",
    b"<iq type='get' id='p'>",
    b"<ping xmlns='urn:xmpp:ping'/>",
    b"</iq>",
    b"<iq type='result' id='bind_1'>",
    b"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>a@b/c</jid></bind>",
    b"&amp;",
    b"&lol;",
    b"&#0;",
    b"<!--",
    b"-->",
    b"<![CDATA[",
    b"]]>",
    b"<!DOCTYPE x>",
    b"<?pi x?>",
    b"\xff",
    b"\xd0",
    b"\x00",
    b"<stream:error>",
    b"</stream:error>",
    b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
    b"</challenge>",
    SUCCESS,
    FEATURES_AUTH,
    FEATURES_BIND,
    BIND_RESULT,
    SESSION_RESULT,
    PING,
    VERSION_GET,
    SERVER_CLOSE,
    server_header("x"),
]

#: The errors a server's bytes can end a (TLS from the start) stream with: bad XML or a step out
#: of order, the end of the stream, the server's stream error, a refused authentication or bind.
SERVER_CAUSED = (ProtocolError, ConnectionLost, StreamError, AuthError, IqError)

HOSTILE_CHUNK = st.one_of(st.binary(max_size=64), st.sampled_from(FRAGMENTS))


@PROPERTY
@given(chunks=st.lists(st.lists(HOSTILE_CHUNK, max_size=6).map(b"".join), max_size=12))
def test_arbitrary_bytes_after_the_header_never_raise(chunks):
    driver = Driver(tls=True)
    driver.feed(server_header())
    for chunk in chunks:
        driver.feed(chunk)  # must not raise
        driver.out()
    driver.feed(b"")
    driver.out()
    closed = [i for i, e in enumerate(driver.events) if isinstance(e, StreamClosed)]
    assert closed == [len(driver.events) - 1]
    error = driver.events[-1].error
    # What a server's bytes can end a stream with (never a driver-side error, never untyped).
    assert type(error) in SERVER_CAUSED, repr(error)
    assert driver.proto.closed
    assert driver.wire.endswith(b"</stream:stream>")
    assert driver.wire.count(b"</stream:stream>") == 1


# -- (c) the parser raises ProtocolError and nothing else ------------------------------------------------


@PROPERTY
@given(
    with_header=st.booleans(),
    chunks=st.lists(st.lists(HOSTILE_CHUNK, max_size=6).map(b"".join), max_size=12),
)
def test_parser_raises_only_protocol_error(with_header, chunks):
    parser = StreamParser()
    if with_header:
        parser.feed(server_header())
    failed = None
    for chunk in chunks:
        try:
            parser.feed(chunk)
        except ProtocolError as exc:
            failed = exc
            break
    if failed is not None:
        try:
            parser.feed(b"<iq/>")
        except ProtocolError as again:
            assert again is failed
        else:
            raise AssertionError("a failed parser accepted more data")
    for item in parser.items:
        assert isinstance(item, (StreamHeader, type(STREAM_END), Element)), item


@PROPERTY
@given(st.data())
def test_parser_items_do_not_depend_on_how_the_bytes_are_split(data):
    stanzas = data.draw(st.lists(server_stanza(), max_size=10))
    stream = server_header() + b"".join(stanzas) + data.draw(st.sampled_from([b"", SERVER_CLOSE]))
    whole = StreamParser()
    whole.feed(stream)
    pieces = StreamParser()
    for chunk in data.draw(cuts(stream)):
        pieces.feed(chunk)

    def shape(items: list) -> list:
        return [
            item.attrs if isinstance(item, StreamHeader) else ("END" if item is STREAM_END else tostring(item))
            for item in items
        ]

    assert shape(pieces.items) == shape(whole.items)
    assert len(whole.items) == 1 + sum(1 for s in stanzas if s.strip()) + (1 if whole.ended else 0)
