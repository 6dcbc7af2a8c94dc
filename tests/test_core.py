"""ClientProtocol driven by scripted server bytes: the seed's connection steps, without sockets."""

from __future__ import annotations

import base64
import logging
import re
from typing import List, Tuple
from xml.etree.ElementTree import fromstring

import pytest

from yaxmpp import (
    AuthError,
    ConnectionLost,
    IqError,
    Limits,
    LocalProtocolError,
    ProtocolError,
    StreamError,
    TLSError,
)
from yaxmpp.protocol import ns
from yaxmpp.protocol.core import ClientProtocol, Step, VersionInfo
from yaxmpp.protocol.events import (
    Authenticated,
    Bound,
    IqResponse,
    RequestAnswered,
    SessionStarted,
    StanzaReceived,
    StreamClosed,
    StreamOpened,
    TLSRequested,
)
from yaxmpp.protocol.sasl import XYandexOAuth

from .core_harness import (  # noqa: F401 (re-exported for the other core-level test modules)
    BIND_RESULT,
    CLIENT_AUTH,
    CLIENT_BIND,
    CLIENT_CLOSE,
    CLIENT_HEADER,
    CLIENT_SESSION,
    CLIENT_STARTTLS,
    ESTABLISH_SCRIPT,
    FEATURES_AUTH,
    FEATURES_BIND,
    FEATURES_TLS,
    LOGIN,
    PING,
    PONG,
    PROCEED,
    REQUESTS_SCRIPT,
    SEED_PAYLOAD,
    SERVER_CLOSE,
    SESSION_RESULT,
    SUCCESS,
    TOKEN,
    VERSION_GET,
    WHOLE_SCRIPT,
    Driver,
    authenticated,
    closed_error,
    established,
    predictable_ids,
    server_header,
    summary,
)


# -- step 1: the stream header ----------------------------------------------------------------------


def test_stream_header_bytes_follow_the_seed():
    driver = Driver()
    assert driver.wire == CLIENT_HEADER
    assert driver.proto.step is Step.STREAM
    names = re.findall(rb' ([\w:]+)="', driver.wire.split(b"\n", 1)[1])
    assert names == [b"xmlns:stream", b"version", b"xmlns", b"to", b"xml:lang", b"xmlns:xml"]


def test_stream_header_with_other_domain_and_lang_is_escaped():
    proto = ClientProtocol(XYandexOAuth(LOGIN, TOKEN), domain='ya.ru"<&', lang="ru")
    proto.initiate()
    header = proto.data_to_send()
    assert b' to="ya.ru&quot;&lt;&amp;" xml:lang="ru" ' in header


def test_initiate_twice_and_receive_before_initiate_are_driver_errors():
    proto = ClientProtocol(XYandexOAuth(LOGIN, TOKEN))
    with pytest.raises(LocalProtocolError):
        proto.receive_data(server_header())
    proto.initiate()
    with pytest.raises(LocalProtocolError):
        proto.initiate()


def test_nothing_is_sent_before_the_server_header():
    driver = Driver()
    events, out = driver.exchange(server_header()[:40])
    assert events == [] and out == b""


# -- steps 2-3: STARTTLS ------------------------------------------------------------------------------


def test_starttls_is_sent_when_offered():
    driver = Driver()
    events, out = driver.exchange(server_header() + FEATURES_TLS)
    assert events == [StreamOpened("4235063168", "initial")]
    assert out == CLIENT_STARTTLS
    assert driver.proto.step is Step.STARTTLS
    assert driver.proto.features.compression == ("zlib",)
    assert driver.proto.features.mechanisms == ()


def test_proceed_hands_the_following_bytes_to_tls_unparsed():
    driver = Driver()
    driver.exchange(server_header() + FEATURES_TLS)
    # What follows <proceed/> belongs to TLS; were it parsed, this injected XML would open a stream.
    leftover = b"\x16\x03\x03\x00\x7a\x02" + server_header("injected") + FEATURES_BIND
    events, out = driver.exchange(PROCEED + leftover)
    assert events == [TLSRequested(leftover)]
    assert events[0].leftover == leftover
    assert out == b""
    assert driver.proto.step is Step.TLS
    assert driver.proto.stream_id == "4235063168"
    with pytest.raises(LocalProtocolError):
        driver.proto.receive_data(b"<more/>")
    with pytest.raises(LocalProtocolError):
        driver.proto.send_iq("get", "<x/>")


def test_proceed_alone_has_no_leftover():
    driver = Driver()
    driver.exchange(server_header() + FEATURES_TLS)
    events = driver.feed(PROCEED[:10])
    assert events == []
    assert driver.feed(PROCEED[10:]) == [TLSRequested(b"")]


def test_pipelined_features_and_proceed_in_one_read():
    driver = Driver()
    events, out = driver.exchange(server_header() + FEATURES_TLS + PROCEED + b"\x16\x03")
    assert events == [StreamOpened("4235063168", "initial"), TLSRequested(b"\x16\x03")]
    assert out == CLIENT_STARTTLS


def test_tls_established_sends_a_fresh_header_and_a_fresh_parser_reads_the_new_stream():
    driver = Driver()
    driver.exchange(server_header() + FEATURES_TLS + PROCEED)
    driver.proto.tls_established()
    assert driver.out() == CLIENT_HEADER
    assert driver.proto.tls
    events, out = driver.exchange(server_header("2") + FEATURES_AUTH)
    assert events == [StreamOpened("2", "over TLS")]
    assert out == CLIENT_AUTH


def test_tls_established_outside_the_tls_step_is_a_driver_error():
    driver = Driver()
    with pytest.raises(LocalProtocolError):
        driver.proto.tls_established()


def test_no_starttls_offered_closes_with_tls_error_and_never_sends_the_token():
    driver = Driver()
    events, out = driver.exchange(server_header() + FEATURES_AUTH)
    assert isinstance(closed_error(events), TLSError)
    assert out == CLIENT_CLOSE
    assert TOKEN.encode() not in driver.wire and SEED_PAYLOAD not in driver.wire
    assert driver.proto.closed


def test_starttls_refused():
    driver = Driver()
    driver.exchange(server_header() + FEATURES_TLS)
    events, out = driver.exchange(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>")
    assert isinstance(closed_error(events), TLSError)
    assert out == CLIENT_CLOSE


def test_something_else_instead_of_proceed_is_a_protocol_error():
    driver = Driver()
    driver.exchange(server_header() + FEATURES_TLS)
    events = driver.feed(SUCCESS)
    assert isinstance(closed_error(events), ProtocolError)
    driver.out()
    assert TOKEN.encode() not in driver.wire and SEED_PAYLOAD not in driver.wire


# -- step 5: authentication ---------------------------------------------------------------------------


def test_auth_payload_is_base64_of_login_nul_token():
    assert base64.b64encode(b"test\0" + TOKEN.encode()) == SEED_PAYLOAD
    driver = Driver(tls=True)
    events, out = driver.exchange(server_header() + FEATURES_AUTH)
    assert events == [StreamOpened("4235063168", "over TLS")]
    assert out == CLIENT_AUTH
    assert driver.proto.step is Step.AUTH


def test_auth_payload_for_a_token_with_a_leading_zero():
    driver = Driver(tls=True, token="0" + TOKEN)
    _, out = driver.exchange(server_header() + FEATURES_AUTH)
    payload = re.search(rb">([^<]*)</auth>", out).group(1)
    assert base64.b64decode(payload) == b"test\x000c4181a7c2cf4521964a72ff57a34a07"
    assert payload == b"dGVzdAAwYzQxODFhN2MyY2Y0NTIxOTY0YTcyZmY1N2EzNGEwNw=="


@pytest.mark.parametrize(
    "mechanisms",
    [
        b'<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>',
        b'<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"></mechanisms>',
        b'<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>  </mechanism></mechanisms>',
        b"",
        b'<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl">'
        b"<mechanism>PLAIN</mechanism><mechanism> X-YANDEX-OAUTH </mechanism></mechanisms>",
    ],
)
def test_empty_missing_or_matching_mechanisms_get_x_yandex_oauth(mechanisms):
    driver = Driver(tls=True)
    events, out = driver.exchange(server_header() + b"<stream:features>" + mechanisms + b"</stream:features>")
    assert out == CLIENT_AUTH
    assert not any(isinstance(e, StreamClosed) for e in events)


def test_only_other_mechanisms_offered_fails_without_sending_the_token():
    driver = Driver(tls=True)
    events, out = driver.exchange(
        server_header() + b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        b"<mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>"
    )
    error = closed_error(events)
    assert isinstance(error, AuthError)
    assert error.condition == "invalid-mechanism"
    assert "PLAIN" in str(error)
    assert out == CLIENT_CLOSE
    assert TOKEN.encode() not in driver.wire and SEED_PAYLOAD not in driver.wire


def test_auth_failure_not_authorized():
    driver = Driver(tls=True)
    driver.exchange(server_header() + FEATURES_AUTH)
    events, out = driver.exchange(
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>"
        b"<text xml:lang='en'>Wrong token</text></failure>"
    )
    error = closed_error(events)
    assert isinstance(error, AuthError)
    assert error.condition == "not-authorized"
    assert error.text == "Wrong token"
    assert out == CLIENT_CLOSE
    assert driver.proto.closed
    assert driver.feed(SERVER_CLOSE) == []
    assert driver.out() == b""


def test_auth_failure_without_condition():
    driver = Driver(tls=True)
    driver.exchange(server_header() + FEATURES_AUTH)
    error = closed_error(driver.feed(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"))
    assert isinstance(error, AuthError) and error.condition == "undefined-condition"


def test_auth_failure_text_echoing_the_token_is_scrubbed():
    driver = Driver(tls=True)
    driver.exchange(server_header() + FEATURES_AUTH)
    events = driver.feed(
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>bad token "
        + TOKEN.encode()
        + b" from "
        + SEED_PAYLOAD
        + b"</text></failure>"
    )
    error = closed_error(events)
    assert error.text is not None and error.text.startswith("bad token ")
    assert TOKEN not in error.text and TOKEN not in str(error) and SEED_PAYLOAD.decode() not in str(error)


def test_unexpected_challenge_fails_authentication():
    driver = Driver(tls=True)
    driver.exchange(server_header() + FEATURES_AUTH)
    error = closed_error(driver.feed(b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AAAA</challenge>"))
    assert isinstance(error, AuthError)
    assert error.condition == "unexpected-challenge"


def test_success_restarts_the_stream_and_pipelined_bytes_reach_the_new_stream():
    driver = Driver(tls=True)
    driver.exchange(server_header("1") + FEATURES_AUTH)
    events, out = driver.exchange(SUCCESS + server_header("2") + FEATURES_BIND)
    assert events == [Authenticated("X-YANDEX-OAUTH"), StreamOpened("2", "after authentication")]
    assert out == CLIENT_HEADER + CLIENT_BIND
    assert driver.proto.authenticated
    assert driver.proto.stream_id == "2"


def test_success_then_the_new_header_in_a_separate_read():
    driver = Driver(tls=True)
    driver.exchange(server_header("1") + FEATURES_AUTH)
    events, out = driver.exchange(SUCCESS)
    assert events == [Authenticated("X-YANDEX-OAUTH")]
    assert out == CLIENT_HEADER
    assert driver.proto.step is Step.STREAM
    events, out = driver.exchange(server_header("2") + FEATURES_BIND)
    assert events == [StreamOpened("2", "after authentication")]
    assert out == CLIENT_BIND


@pytest.mark.parametrize("together", [True, False], ids=["same read", "separate reads"])
def test_newline_after_success_before_the_new_declaration(together):
    driver = Driver(tls=True)
    driver.exchange(server_header("1") + FEATURES_AUTH)
    if together:
        events = driver.feed(SUCCESS + b"\n" + server_header("2") + FEATURES_BIND)
    else:
        events = driver.feed(SUCCESS + b"\n") + driver.feed(server_header("2") + FEATURES_BIND)
    assert events == [Authenticated("X-YANDEX-OAUTH"), StreamOpened("2", "after authentication")]


def test_bytes_after_success_that_are_not_a_stream_fail():
    driver = Driver(tls=True)
    driver.exchange(server_header("1") + FEATURES_AUTH)
    events = driver.feed(SUCCESS + b"<stream:features/>")
    assert [type(e) for e in events] == [Authenticated, StreamClosed]
    assert isinstance(events[-1].error, ProtocolError)


# -- steps 7-8: bind and session -------------------------------------------------------------------


def test_bind_with_the_seed_resource():
    driver = authenticated()
    assert driver.exchange(FEATURES_BIND)[1] == CLIENT_BIND


def test_bind_without_resource_sends_an_empty_bind():
    driver = authenticated(resource=None)
    assert driver.exchange(FEATURES_BIND)[1] == (
        b'<iq type="set" id="bind_1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></iq>'
    )


def test_bind_resource_is_escaped():
    driver = authenticated(resource="a<b&c")
    out = driver.exchange(FEATURES_BIND)[1]
    resource = fromstring(out).find("%s/{%s}resource" % (ns.BIND_TAG, ns.BIND))
    assert resource.text == "a<b&c"


def test_bind_result_then_session_then_session_started():
    driver = authenticated()
    driver.exchange(FEATURES_BIND)
    events, out = driver.exchange(BIND_RESULT)
    assert events == [Bound("test@ya.ru/YaDisk-client")]
    assert out == CLIENT_SESSION
    assert driver.proto.step is Step.SESSION
    events, out = driver.exchange(SESSION_RESULT)
    assert events == [SessionStarted("test@ya.ru/YaDisk-client", "2")]
    assert out == b""
    assert driver.proto.established
    assert driver.proto.jid == "test@ya.ru/YaDisk-client"


def test_bind_error_closes_with_iq_error():
    driver = authenticated()
    driver.exchange(FEATURES_BIND)
    events, out = driver.exchange(
        b"<iq type='error' id='bind_1'><error type='cancel'>"
        b"<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    error = closed_error(events)
    assert isinstance(error, IqError) and error.condition == "conflict"
    assert out == CLIENT_CLOSE


def test_bind_result_without_jid_is_a_protocol_error():
    driver = authenticated()
    driver.exchange(FEATURES_BIND)
    events = driver.feed(b"<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    assert isinstance(closed_error(events), ProtocolError)


def test_session_refused_but_not_offered_goes_on():
    driver = authenticated()
    driver.exchange(b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")
    driver.exchange(BIND_RESULT)
    events = driver.feed(
        b"<iq type='error' id='session_1'><error type='cancel'>"
        b"<feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    assert events == [SessionStarted("test@ya.ru/YaDisk-client", "2")]


def test_session_refused_when_offered_is_an_error():
    driver = authenticated()
    driver.exchange(FEATURES_BIND)
    driver.exchange(BIND_RESULT)
    events = driver.feed(
        b"<iq type='error' id='session_1'><error type='cancel'>"
        b"<not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    )
    error = closed_error(events)
    assert isinstance(error, IqError) and error.condition == "not-allowed"


def test_ping_before_bind_finishes_is_answered():
    driver = authenticated()
    driver.exchange(FEATURES_BIND)
    events, out = driver.exchange(PING)
    assert events == [RequestAnswered("ping", "ping_1", "ya.ru")]
    assert out == PONG
    events, out = driver.exchange(BIND_RESULT)
    assert events == [Bound("test@ya.ru/YaDisk-client")]
    assert out == CLIENT_SESSION


def test_ping_in_the_same_read_as_the_session_result_is_answered():
    driver = authenticated()
    driver.exchange(FEATURES_BIND + BIND_RESULT)
    events, out = driver.exchange(SESSION_RESULT + PING)
    assert events == [SessionStarted("test@ya.ru/YaDisk-client", "2"), RequestAnswered("ping", "ping_1", "ya.ru")]
    assert out == PONG


def test_the_whole_seed_sequence_with_starttls():
    driver = Driver(version=VersionInfo("YaDiskClient", "1.1", "Mac OS X"))
    driver.exchange(server_header("10") + FEATURES_TLS + PROCEED)
    driver.proto.tls_established()
    driver.exchange(server_header("11") + FEATURES_AUTH + SUCCESS + server_header("12") + FEATURES_BIND)
    driver.exchange(BIND_RESULT + SESSION_RESULT + VERSION_GET + PING)
    assert driver.wire == (
        CLIENT_HEADER
        + CLIENT_STARTTLS
        + CLIENT_HEADER
        + CLIENT_AUTH
        + CLIENT_HEADER
        + CLIENT_BIND
        + CLIENT_SESSION
        + b'<iq type="result" to="ya.ru" id="ask_version"><query xmlns="jabber:iq:version">'
        b"<name>YaDiskClient</name><version>1.1</version><os>Mac OS X</os></query></iq>"
        + PONG
    )
    assert [type(e) for e in driver.events] == [
        StreamOpened,
        TLSRequested,
        StreamOpened,
        Authenticated,
        StreamOpened,
        Bound,
        SessionStarted,
        RequestAnswered,
        RequestAnswered,
    ]
    assert [e.step for e in driver.events if isinstance(e, StreamOpened)] == [
        "initial",
        "over TLS",
        "after authentication",
    ]
    assert driver.events[6] == SessionStarted("test@ya.ru/YaDisk-client", "12")


# -- server requests ----------------------------------------------------------------------------


def test_ping_is_answered_exactly():
    driver = established()
    events, out = driver.exchange(PING)
    assert out == PONG
    assert events == [RequestAnswered("ping", "ping_1", "ya.ru")]


def test_ping_without_from_is_answered_without_to():
    driver = established()
    events, out = driver.exchange(b"<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
    assert out == b'<iq type="result" id="p2"/>'
    assert events == [RequestAnswered("ping", "p2", None)]


def test_reply_attributes_are_escaped():
    driver = established()
    _, out = driver.exchange(b"<iq type='get' from='a&amp;b\"c' id='x&lt;\"y'><ping xmlns='urn:xmpp:ping'/></iq>")
    reply = fromstring(out)
    assert reply.attrib == {"type": "result", "to": 'a&b"c', "id": 'x<"y'}


def test_version_is_answered_with_the_request_id():
    driver = established(version=VersionInfo("YaDiskClient", "1.1", "Mac OS X"))
    events, out = driver.exchange(VERSION_GET)
    assert out == (
        b'<iq type="result" to="ya.ru" id="ask_version"><query xmlns="jabber:iq:version">'
        b"<name>YaDiskClient</name><version>1.1</version><os>Mac OS X</os></query></iq>"
    )
    assert events == [RequestAnswered("version", "ask_version", "ya.ru")]


def test_version_without_os_and_with_odd_characters():
    driver = established(version=VersionInfo("Yа<&>", "2.0"))
    _, out = driver.exchange(
        b"<iq type='get' from='ya.ru' id='v7'><query xmlns='jabber:iq:version'/></iq>"
    )
    reply = fromstring(out)
    assert reply.get("id") == "v7"
    query = reply.find("{jabber:iq:version}query")
    assert [c.tag.split("}")[1] for c in query] == ["name", "version"]
    assert query.find("{jabber:iq:version}name").text == "Yа<&>"


@pytest.mark.parametrize(
    "request_xml",
    [
        b"<iq from='ya.ru' type='get' id='q1'><query xmlns='jabber:iq:last'/></iq>",
        b"<iq from='ya.ru' type='set' id='q1'><query xmlns='jabber:iq:roster'/></iq>",
        b"<iq from='ya.ru' type='set' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>",
        b"<iq from='ya.ru' type='get' id='q1'/>",
    ],
)
def test_other_requests_get_service_unavailable(request_xml):
    driver = established()
    events, out = driver.exchange(request_xml)
    assert events == [RequestAnswered("unsupported", "q1", "ya.ru")]
    reply = fromstring(out)
    assert reply.tag == "iq"
    assert reply.attrib == {"type": "error", "to": "ya.ru", "id": "q1"}
    (error,) = list(reply)
    assert error.tag == "error" and error.get("type") == "cancel"
    assert [c.tag for c in error] == ["{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable"]


@pytest.mark.parametrize(
    "stanza",
    [
        b"<iq type='result' id='nobody-asked'/>",
        b"<iq type='error' id='nobody-asked'><error type='cancel'/></iq>",
        b"<iq type='result'/>",
        b"<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
        b"<iq type='weird' id='w'><ping xmlns='urn:xmpp:ping'/></iq>",
        b"<iq id='no-type'><ping xmlns='urn:xmpp:ping'/></iq>",
    ],
)
def test_unanswerable_iqs_are_ignored(stanza):
    driver = established()
    events, out = driver.exchange(stanza)
    assert events == []
    assert out == b""
    assert driver.proto.established


def test_other_stanzas_are_handed_to_the_driver():
    driver = established()
    events, out = driver.exchange(b"<message from='ya.ru'><body>hi</body></message><presence/>")
    assert [e.element.tag for e in events] == [ns.MESSAGE, ns.PRESENCE]
    assert events[0].element.find("{jabber:client}body").text == "hi"
    assert out == b""


# -- iq requests of the client ------------------------------------------------------------------------


def test_send_iq_and_its_result():
    driver = established()
    iq_id = driver.proto.send_iq("set", "<s xmlns='yandex:push:disk'/>", to="test@ya.ru")
    expected = b'<iq type="set" to="test@ya.ru" id="%s">' % iq_id.encode() + b"<s xmlns='yandex:push:disk'/></iq>"
    assert driver.out() == expected
    events = driver.feed(b"<iq type='result' from='test@ya.ru' id='%s'/>" % iq_id.encode())
    assert len(events) == 1
    response = events[0]
    assert isinstance(response, IqResponse)
    assert response.iq_id == iq_id and response.error is None
    assert response.element.get("from") == "test@ya.ru"
    # A second answer with the same id answers nothing.
    assert driver.feed(b"<iq type='result' id='%s'/>" % iq_id.encode()) == []


def test_send_iq_without_payload_or_to():
    driver = established()
    iq_id = driver.proto.send_iq("get")
    assert driver.out() == b'<iq type="get" id="%s"/>' % iq_id.encode()


def test_send_iq_error_answer():
    driver = established()
    first = driver.proto.send_iq("get", "<query xmlns='jabber:iq:last'/>")
    second = driver.proto.send_iq("set", "<s xmlns='yandex:push:disk'/>")
    assert first != second
    events = driver.feed(
        b"<iq type='error' id='%s'><error type='cancel'>"
        b"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
        b"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such thing</text>"
        b"</error></iq>" % second.encode()
    )
    (response,) = events
    assert isinstance(response, IqResponse) and response.iq_id == second
    assert isinstance(response.error, IqError)
    assert response.error.condition == "item-not-found"
    assert response.error.type == "cancel"
    assert response.error.text == "no such thing"
    (response,) = driver.feed(b"<iq type='error' id='%s'/>" % first.encode())
    assert response.iq_id == first and response.error.condition == "undefined-condition"


def test_send_iq_rejects_other_types():
    driver = established()
    with pytest.raises(ValueError):
        driver.proto.send_iq("result")


def test_send_stanza_queues_it_verbatim():
    driver = established()
    driver.proto.send_stanza("<presence/>")
    assert driver.out() == b"<presence/>"


# -- the end of the stream -------------------------------------------------------------------------


def test_stream_error_see_other_host():
    driver = established()
    events, out = driver.exchange(
        b"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
        b" xmpp2.example.net:5222 </see-other-host></stream:error></stream:stream>"
    )
    error = closed_error(events)
    assert isinstance(error, StreamError)
    assert error.condition == "see-other-host"
    assert error.other_host == "xmpp2.example.net:5222"
    assert error.text is None
    assert out == CLIENT_CLOSE
    assert driver.proto.closed


def test_stream_error_with_text():
    driver = established()
    error = closed_error(
        driver.feed(
            b"<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
            b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>Replaced by new connection</text>"
            b"</stream:error>"
        )
    )
    assert isinstance(error, StreamError)
    assert (error.condition, error.text, error.other_host) == ("conflict", "Replaced by new connection", None)


def test_stream_error_during_negotiation():
    driver = Driver(tls=True)
    events = driver.feed(
        server_header() + b"<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
    )
    assert [type(e) for e in events] == [StreamOpened, StreamClosed]
    assert events[-1].error.condition == "host-unknown"


def test_server_close_queues_ours_and_reports_connection_lost():
    driver = established()
    events, out = driver.exchange(SERVER_CLOSE)
    assert isinstance(closed_error(events), ConnectionLost)
    assert out == CLIENT_CLOSE
    assert driver.proto.closed
    assert driver.exchange(b"<iq/>") == ([], b"")


def test_close_then_server_close_is_clean():
    driver = established()
    driver.proto.close()
    driver.proto.close()
    assert driver.out() == CLIENT_CLOSE
    assert driver.proto.step is Step.CLOSING
    with pytest.raises(LocalProtocolError):
        driver.proto.send_iq("get")
    with pytest.raises(LocalProtocolError):
        driver.proto.send_stanza("<presence/>")
    # A ping after our close cannot be answered: nothing may follow </stream:stream>.
    events, out = driver.exchange(PING + b"<message><body>late</body></message>")
    assert out == b""
    assert [type(e) for e in events] == [StanzaReceived]
    events, out = driver.exchange(SERVER_CLOSE)
    assert events == [StreamClosed(None)]
    assert out == b""
    assert driver.proto.closed


def test_close_before_the_server_header_then_server_close_is_clean():
    driver = Driver(tls=True)
    driver.proto.close()
    assert driver.out() == CLIENT_CLOSE
    events = driver.feed(server_header() + FEATURES_AUTH + SERVER_CLOSE)
    assert closed_error(events) is None


def test_end_of_file_is_connection_lost():
    driver = established()
    events = driver.feed(b"")
    assert isinstance(closed_error(events), ConnectionLost)
    assert driver.proto.closed
    assert driver.feed(b"") == []


def test_end_of_file_during_negotiation_names_the_step():
    driver = Driver(tls=True)
    driver.feed(server_header())
    error = closed_error(driver.feed(b""))
    assert isinstance(error, ConnectionLost)
    assert Step.FEATURES.value in str(error)


def test_connection_lost_reports_once():
    driver = established()
    failure = ConnectionLost("reset")
    assert driver.proto.connection_lost(failure) == [StreamClosed(failure)]
    assert driver.proto.connection_lost() == []
    assert driver.feed(PING) == []


def test_events_before_a_protocol_error_come_first():
    driver = established()
    events, out = driver.exchange(PING + b"<message/><iq>&undefined;</iq>" + PING)
    assert [type(e) for e in events] == [RequestAnswered, StanzaReceived, StreamClosed]
    assert isinstance(events[-1].error, ProtocolError)
    assert out == PONG + CLIENT_CLOSE


def test_events_before_a_protocol_error_during_negotiation_come_first():
    driver = Driver(tls=True)
    events, out = driver.exchange(server_header() + FEATURES_AUTH + b"<<<")
    assert [type(e) for e in events] == [StreamOpened, StreamClosed]
    assert isinstance(events[-1].error, ProtocolError)
    assert out == CLIENT_AUTH + CLIENT_CLOSE


def test_the_core_applies_its_limits_to_the_stream():
    driver = established(limits=Limits(max_stanza_bytes=2048, max_depth=4))
    events, out = driver.exchange(PING + b"<message><body>")
    for _ in range(4):
        events += driver.feed(b"x" * 1000)
    assert [type(e) for e in events] == [RequestAnswered, StreamClosed]
    assert isinstance(events[-1].error, ProtocolError)
    assert out + driver.out() == PONG + CLIENT_CLOSE
    driver = established(limits=Limits(max_stanza_bytes=2048, max_depth=4))
    error = closed_error(driver.feed(b"<a><b><c><d><e/></d></c></b></a>"))
    assert isinstance(error, ProtocolError)


def test_limits_hold_again_after_each_stream_restart():
    driver = Driver(tls=True, limits=Limits(max_stanza_bytes=2048))
    driver.exchange(server_header("1") + FEATURES_AUTH + SUCCESS + server_header("2"))
    error = closed_error(driver.feed(b"<stream:features>" + b" " * 10 + b"<x a='" + b"y" * 5000))
    assert isinstance(error, ProtocolError)


def test_unexpected_stanza_during_negotiation_is_a_protocol_error():
    driver = Driver(tls=True)
    events = driver.feed(server_header() + b"<message><body>too early</body></message>")
    assert isinstance(closed_error(events), ProtocolError)


# -- splits ---------------------------------------------------------------------------------------


def run_script(chunks: List[bytes]) -> Tuple[List[tuple], bytes]:
    driver = Driver(tls=True)
    for chunk in chunks:
        driver.feed(chunk)
    driver.out()
    return summary(driver.events), driver.wire


def test_whole_script_events():
    events, wire = run_script([WHOLE_SCRIPT])
    assert [name for name, _ in events] == [
        "StreamOpened",
        "Authenticated",
        "StreamOpened",
        "Bound",
        "SessionStarted",
        "RequestAnswered",
        "RequestAnswered",
        "RequestAnswered",
        "StanzaReceived",
        "StreamClosed",
    ]
    assert events[-1] == ("StreamClosed", "ConnectionLost")
    assert wire.startswith(CLIENT_HEADER + CLIENT_AUTH + CLIENT_HEADER + CLIENT_BIND + CLIENT_SESSION)
    unsupported = (
        b'<iq type="error" to="ya.ru" id="q1"><error type="cancel">'
        b'<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>'
    )
    assert wire.endswith(PONG + unsupported + CLIENT_CLOSE)


def test_every_two_way_split_of_the_script_gives_the_same_events_and_bytes():
    expected = run_script([WHOLE_SCRIPT])
    for cut in range(1, len(WHOLE_SCRIPT)):
        assert run_script([WHOLE_SCRIPT[:cut], WHOLE_SCRIPT[cut:]]) == expected, "split at %d" % cut


def test_byte_by_byte_gives_the_same_events_and_bytes():
    expected = run_script([WHOLE_SCRIPT])
    assert run_script([WHOLE_SCRIPT[i : i + 1] for i in range(len(WHOLE_SCRIPT))]) == expected


# -- hostile bytes ----------------------------------------------------------------------------------

#: Malformed or forbidden bytes: wherever they come, the stream must end.
HOSTILE = [
    b"<!DOCTYPE x [<!ENTITY a 'b'>]>",
    b"<iq>&lol;</iq>",
    b"<iq>\xff\xfe\xfd</iq>",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1",
    b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
    b"<a>" * 5000,
    b"<iq a='" + b"x" * (1 << 21),
    b"<message><body>" + b"y" * (1 << 21),
    b"<iq></message>",
    b"<x:y/>",
    b"<iq a='1' a='2'/>",
    b"\x00",
    b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><<",
]

#: Well-formed stanzas out of place: handled or refused, but never an exception.
OUT_OF_PLACE = [
    b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
    b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><aborted/></failure>",
    b"<iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    b"<iq type='result' id='session_1'/>",
    b"<iq type='error' id='bind_1'/>",
    b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>not base64!</challenge>",
    b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\xd0\xb9\xd0\xb9</challenge>",
    b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    b"<stream:error/>",
]


def stage_drivers() -> List[Tuple[str, Driver]]:
    """Drivers stopped at several steps of the negotiation (all with tls=True)."""
    at_features = Driver(tls=True)
    at_features.feed(server_header())
    at_auth = Driver(tls=True)
    at_auth.feed(server_header() + FEATURES_AUTH)
    at_bind = authenticated()
    at_bind.feed(FEATURES_BIND)
    at_session = authenticated()
    at_session.feed(FEATURES_BIND + BIND_RESULT)
    closing = established()
    closing.proto.close()
    return [
        ("features", at_features),
        ("auth", at_auth),
        ("bind", at_bind),
        ("session", at_session),
        ("established", established()),
        ("closing", closing),
    ]


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda data: repr(data[:24]))
def test_hostile_bytes_end_in_stream_closed_never_in_an_exception(hostile):
    for stage, driver in stage_drivers():
        events = driver.feed(hostile)
        error = closed_error(events)
        assert isinstance(error, ProtocolError), (stage, error)
        assert driver.proto.closed
        assert driver.out().endswith(CLIENT_CLOSE)
        assert driver.feed(b"<iq/>") == []


#: For each OUT_OF_PLACE stanza, the stages where it ends the stream and with which error class
#: (exactly that class); at every other stage it is handled or ignored and the stream goes on.
OUT_OF_PLACE_CLOSES = [
    {"auth": ProtocolError},
    {"features": ProtocolError, "auth": ProtocolError},
    {"features": ProtocolError},
    {"features": ProtocolError, "auth": AuthError},
    {"bind": ProtocolError},
    {},
    {"bind": IqError},
    {"features": ProtocolError, "auth": ProtocolError},
    {"features": ProtocolError, "auth": ProtocolError},
    {"features": ProtocolError, "auth": AuthError},
    {stage: StreamError for stage in ("features", "auth", "bind", "session", "established", "closing")},
]
assert len(OUT_OF_PLACE_CLOSES) == len(OUT_OF_PLACE)


@pytest.mark.parametrize(
    "stanza,closes", [pytest.param(s, c, id=repr(s[:24])) for s, c in zip(OUT_OF_PLACE, OUT_OF_PLACE_CLOSES)]
)
def test_out_of_place_stanzas_never_raise(stanza, closes):
    for stage, driver in stage_drivers():
        events = driver.feed(stanza)
        closed = [e for e in events if isinstance(e, StreamClosed)]
        assert driver.proto.closed == bool(closed), stage
        if stage in closes:
            assert closed and events[-1] is closed[0] and len(closed) == 1, (stage, events)
            assert type(closed[0].error) is closes[stage], (stage, closed[0].error)
        else:
            assert not closed, (stage, closed)


@pytest.mark.parametrize(
    "first",
    [
        b"\x00\x00\x00\x00<",
        b"HTTP/1.1 400 Bad Request\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1",
        b"<html><body>Bad Request</body></html>",
        b"<!DOCTYPE stream:stream>",
        b"<stream:features/>",
        b"<stream:stream xmlns:stream='urn:wrong'>",
    ],
    ids=lambda data: repr(data[:24]),
)
def test_hostile_first_bytes_end_in_stream_closed(first):
    driver = Driver(tls=True)
    error = closed_error(driver.feed(first))
    assert isinstance(error, ProtocolError)
    assert driver.out() == CLIENT_CLOSE


def test_garbage_after_the_server_close_is_not_an_exception():
    driver = established()
    events = driver.feed(SERVER_CLOSE + b"\x00\xff garbage <<")
    assert isinstance(closed_error(events), ConnectionLost)


@pytest.mark.parametrize("hostile", [h for h in HOSTILE if len(h) < 100000], ids=lambda data: repr(data[:24]))
def test_hostile_bytes_byte_by_byte_never_raise(hostile):
    driver = established()
    for index in range(len(hostile)):
        driver.feed(hostile[index : index + 1])
    driver.feed(b"")
    # Exactly one StreamClosed, the last event of the whole life, and for a hostile byte.
    assert isinstance(closed_error(driver.events), ProtocolError)


# -- the token stays out of logs ------------------------------------------------------------------------


def test_token_never_reaches_the_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    driver = Driver(version=VersionInfo("YaDiskClient", "1.1"))
    driver.exchange(server_header("10") + FEATURES_TLS + PROCEED)
    driver.proto.tls_established()
    driver.exchange(server_header("11") + FEATURES_AUTH + SUCCESS + server_header("12") + FEATURES_BIND)
    driver.exchange(BIND_RESULT + SESSION_RESULT + VERSION_GET + PING)
    # A server that echoes the token back.
    driver.exchange(
        b"<message><body>" + TOKEN.encode() + b" " + SEED_PAYLOAD + b"</body></message>"
        b"<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>token " + TOKEN.encode() + b"</text></stream:error>"
    )
    assert SEED_PAYLOAD in driver.wire  # the token did go out on the wire
    messages = [record.getMessage() for record in caplog.records]
    assert any("X-YANDEX-OAUTH" in m and "***" in m for m in messages)
    assert any(m.startswith("RECV") and "<message" in m for m in messages)
    for message in messages:
        assert TOKEN not in message
        assert SEED_PAYLOAD.decode() not in message
    error = closed_error(driver.events)
    assert isinstance(error, StreamError) and TOKEN not in str(error)


def test_token_never_reaches_the_logs_on_auth_failure(caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    driver = Driver(tls=True)
    driver.exchange(server_header() + FEATURES_AUTH)
    driver.exchange(
        b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/>"
        b"<text>" + TOKEN.encode() + b"</text></failure>"
    )
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert SEED_PAYLOAD.decode() not in record.getMessage()
