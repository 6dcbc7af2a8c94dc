"""The core against a hostile server or hostile accounts on it: who may answer a request,
unguessable ids, forgetting requests, payload checks, redirects before TLS, the mechanism's
say on ``<success/>``, and that nothing but a yaxmpp error leaves receive_data()."""

from __future__ import annotations

import base64
import logging
import re
from typing import List, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yaxmpp import AuthError, Error, LocalProtocolError, ProtocolError, StreamError, UsageError
from yaxmpp.protocol import core as core_module
from yaxmpp.protocol.core import ClientProtocol, Step, jid_key, new_id
from yaxmpp.protocol.events import (
    Authenticated,
    Bound,
    IqResponse,
    SessionStarted,
    StreamClosed,
    StreamOpened,
)
from yaxmpp.protocol.sasl import Mechanism, XYandexOAuth

from .test_core import (
    CLIENT_CLOSE,
    CLIENT_HEADER,
    FEATURES_AUTH,
    FEATURES_BIND,
    FEATURES_TLS,
    LOGIN,
    TOKEN,
    Driver,
    closed_error,
    established,
    server_header,
)
from .test_properties import HOSTILE_CHUNK

OWN_FULL = "test@ya.ru/YaDisk-client"


def answer(iq_id: str, sender: Optional[str], iq_type: str = "result") -> bytes:
    attr = b"" if sender is None else b" from='%s'" % sender.encode()
    return b"<iq type='%s' id='%s'%s/>" % (iq_type.encode(), iq_id.encode(), attr)


def real_core(**options: object) -> ClientProtocol:
    """A core with its real (random) ids, past authentication, its bind request sent."""
    proto = ClientProtocol(XYandexOAuth(LOGIN, TOKEN), tls=True, **options)  # type: ignore[arg-type]
    proto.initiate()
    proto.receive_data(server_header("1") + FEATURES_AUTH + b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    proto.receive_data(server_header("2") + FEATURES_BIND)
    return proto


def last_id(proto: ClientProtocol) -> bytes:
    return re.findall(rb' id="([^"]+)"', proto.data_to_send())[-1]


# -- who may answer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "to, good, bad",
    [
        # To the server, or to the user's own bare JID: the server answers, itself (no from, or
        # its domain) or for the account (its bare JID); RFC 6120 8.1.2.1 and 10.3.
        (None, [None, "ya.ru", "YA.RU", "test@ya.ru", "Test@Ya.Ru"], ["other@ya.ru", OWN_FULL, "other@ya.ru/x", "evil.example"]),
        ("ya.ru", [None, "ya.ru", "Ya.Ru", "test@ya.ru"], ["other@ya.ru", OWN_FULL, "ya.ru/x", "push.ya.ru"]),
        ("test@ya.ru", [None, "ya.ru", "TEST@ya.ru"], ["other@ya.ru", OWN_FULL, "test@ya.ru/other"]),
        # To anyone else: that JID only; local and domain parts in any case, the resource exactly.
        ("friend@ya.ru/Phone", ["friend@ya.ru/Phone", "FRIEND@YA.RU/Phone"], [None, "ya.ru", "test@ya.ru", "friend@ya.ru", "friend@ya.ru/phone", OWN_FULL]),
        ("friend@ya.ru", ["friend@ya.ru", "Friend@ya.ru"], [None, "ya.ru", "test@ya.ru", "friend@ya.ru/Phone", "other@ya.ru"]),
        ("disk.ya.ru", ["disk.ya.ru", "DISK.ya.ru"], [None, "ya.ru", "test@ya.ru", "other@ya.ru"]),
    ],
)
@pytest.mark.parametrize("iq_type", ["result", "error"])
def test_only_the_entity_asked_may_answer(to, good, bad, iq_type):
    driver = established()
    for sender in good:
        iq_id = driver.proto.send_iq("get", "<query xmlns='jabber:iq:last'/>", to=to)
        for intruder in bad:
            assert driver.feed(answer(iq_id, intruder, iq_type)) == [], (to, intruder)
        assert driver.proto.pending_requests == 1
        (response,) = driver.feed(answer(iq_id, sender, iq_type))
        assert isinstance(response, IqResponse) and response.iq_id == iq_id, (to, sender)
        assert (response.error is not None) == (iq_type == "error")
        assert driver.proto.pending_requests == 0
        assert driver.feed(answer(iq_id, sender, iq_type)) == []  # answered once only


def test_a_spoofed_answer_is_logged_at_debug_and_the_real_one_still_counts(caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp.xml")
    driver = established()
    iq_id = driver.proto.send_iq("set", "<s xmlns='yandex:push:disk'/>", to="test@ya.ru")
    assert driver.feed(answer(iq_id, "attacker@ya.ru")) == []
    assert any("not sent to is ignored" in r.getMessage() for r in caplog.records)
    assert [type(e) for e in driver.feed(answer(iq_id, "test@ya.ru"))] == [IqResponse]


def test_jid_key_compares_local_and_domain_parts_without_case_and_the_resource_exactly():
    assert jid_key("A@B.C/R") == ("a", "b.c", "R")
    assert jid_key("ya.ru.") == jid_key("YA.RU") == ("", "ya.ru", "")
    assert jid_key("a@b/c/d@e") == ("a", "b", "c/d@e")


def test_bind_and_session_answers_must_come_from_the_server():
    proto = real_core()
    bind_id = last_id(proto).decode()
    bind = "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>%s</jid></bind>" % OWN_FULL
    for intruder in ("other@ya.ru", "other@ya.ru/x", "test@ya.ru/other", "evil.example"):
        spoof = "<iq type='result' id='%s' from='%s'>%s</iq>" % (bind_id, intruder, bind)
        assert proto.receive_data(spoof.encode()) == []
        assert proto.step is Step.BIND and proto.jid is None
    events = proto.receive_data(("<iq type='result' id='%s' from='YA.RU'>%s</iq>" % (bind_id, bind)).encode())
    assert events == [Bound(OWN_FULL)]
    session_id = last_id(proto).decode()
    for intruder in ("other@ya.ru", OWN_FULL):
        assert proto.receive_data(answer(session_id, intruder)) == []
        assert proto.step is Step.SESSION
    assert proto.receive_data(answer(session_id, "test@ya.ru")) == [SessionStarted(OWN_FULL, "2")]


def test_ids_are_random_and_not_the_old_counter():
    proto = real_core()
    bind_id = last_id(proto)
    assert re.fullmatch(rb"bind_[0-9a-f]{16}", bind_id)
    assert last_id(real_core()) != bind_id
    proto.receive_data(
        b"<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>%s</jid></bind></iq>"
        % (bind_id, OWN_FULL.encode())
    )
    session_id = last_id(proto)
    assert re.fullmatch(rb"session_[0-9a-f]{16}", session_id)
    proto.receive_data(answer(session_id.decode(), None))
    assert proto.established
    ids = {proto.send_iq("get") for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert "yx1" not in ids and "yx2" not in ids
    # A guess at the old counter's ids is no answer.
    assert proto.receive_data(b"<iq type='result' id='yx1'/><iq type='result' id='yx2'/>") == []
    assert proto.pending_requests == 100
    assert new_id() != new_id()


# -- forgetting requests -------------------------------------------------------------------------


def test_ten_thousand_timed_out_requests_leave_nothing_behind():
    driver = established()
    for _ in range(10_000):
        driver.proto.forget(driver.proto.send_iq("get", '<ping xmlns="urn:xmpp:ping"/>', to="ya.ru"))
    assert driver.proto.pending_requests == 0
    assert driver.proto._pending == {}


def test_a_late_answer_to_a_forgotten_request_is_ignored():
    driver = established()
    iq_id = driver.proto.send_iq("get", "<query xmlns='jabber:iq:last'/>")
    driver.proto.forget(iq_id)
    driver.proto.forget(iq_id)  # twice, or an unknown id: no error
    driver.proto.forget("never-sent")
    assert driver.feed(answer(iq_id, None)) == []
    assert not driver.proto.closed


# -- payload checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "<ping xmlns='urn:xmpp:ping'>",
        "<a/><b/>",
        "text",
        "<a/>text",
        "text<a/>",
        "<a></b>",
        "<x:y/>",
        "<a b='1' b='2'/>",
        "<a>&undefined;</a>",
        "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
        "<?xml version='1.0'?><a/>",
        "</w><w>",
    ],
)
def test_a_malformed_payload_is_a_usage_error_and_nothing_is_sent(payload):
    driver = established()
    with pytest.raises(UsageError) as info:
        driver.proto.send_iq("set", payload)
    assert isinstance(info.value, ValueError)
    assert "payload" in str(info.value)
    assert driver.out() == b""
    assert driver.proto.pending_requests == 0
    assert driver.proto.established  # the connection goes on


@pytest.mark.parametrize("payload", ["", "<a/>", " <a xmlns='urn:x'><b>t&amp;t</b></a>\n", "<a><![CDATA[<]]></a>"])
def test_one_element_or_nothing_is_accepted(payload):
    driver = established()
    iq_id = driver.proto.send_iq("set", payload)
    assert iq_id.encode() in driver.out()


def test_a_payload_is_checked_once_then_remembered(monkeypatch):
    calls: List[str] = []
    real = core_module._defused_fromstring

    def counting(text: str, **kwargs: object) -> object:
        calls.append(text)
        return real(text, **kwargs)

    monkeypatch.setattr(core_module, "_defused_fromstring", counting)
    monkeypatch.setattr(core_module, "_checked_payloads", {})
    driver = established()
    for _ in range(1000):
        driver.proto.forget(driver.proto.send_iq("get", "<ping xmlns='urn:xmpp:ping'/>", "ya.ru"))
    assert len(calls) == 1
    for _ in range(3):
        with pytest.raises(UsageError):
            driver.proto.send_iq("get", "<bad>")
    assert len(calls) == 4  # a refused payload is not remembered


def test_the_payload_check_never_shows_the_token():
    driver = established()
    with pytest.raises(UsageError) as info:
        driver.proto.send_iq("set", "<a>%s" % TOKEN)
    assert TOKEN not in str(info.value)


def test_another_iq_type_is_a_usage_error():
    driver = established()
    with pytest.raises(UsageError):
        driver.proto.send_iq("result")


# -- redirects -----------------------------------------------------------------------------------

SEE_OTHER_HOST = (
    b"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'> evil.example:5222 </see-other-host>"
    b"%s</stream:error>"
)


@pytest.mark.parametrize("text", [b"", b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>moved</text>"])
@pytest.mark.parametrize("where", ["header", "features"])
def test_a_redirect_before_tls_is_never_followed(where, text):
    driver = Driver(tls=False)
    if where == "features":
        driver.feed(server_header() + FEATURES_TLS)
        data = SEE_OTHER_HOST % text
    else:
        data = server_header() + SEE_OTHER_HOST % text
    error = closed_error(driver.feed(data))
    assert isinstance(error, StreamError) and error.condition == "see-other-host"
    assert error.other_host is None
    assert "evil.example" not in str(error)
    assert "redirect before TLS is not followed" in (error.text or "")
    if text:
        assert error.text.startswith("moved")


def test_a_redirect_after_starttls_is_followed():
    driver = Driver(tls=False)
    driver.feed(server_header() + FEATURES_TLS + b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    driver.proto.tls_established()
    error = closed_error(driver.feed(server_header("2") + SEE_OTHER_HOST % b""))
    assert isinstance(error, StreamError) and error.other_host == "evil.example:5222"
    assert error.text is None


# -- the mechanism's say on <success/> -----------------------------------------------------------


class Scram(Mechanism):
    """Checks the server's signature in the success data, as SCRAM does."""

    name = "X-SCRAM-LIKE"

    def __init__(self, expected: bytes = b"v=signature", failure: Optional[BaseException] = None) -> None:
        self.expected = expected
        self.failure = failure
        self.seen: List[bytes] = []

    def initial_response(self) -> Optional[bytes]:
        return b"n,,n=user,r=nonce"

    def success(self, data: bytes) -> None:
        self.seen.append(data)
        if self.failure is not None:
            raise self.failure
        if data != self.expected:
            raise AuthError("server-signature", "the server's signature does not match")


def at_auth(mechanism: Mechanism) -> ClientProtocol:
    proto = ClientProtocol(mechanism, tls=True)
    proto.initiate()
    proto.receive_data(server_header() + b"<stream:features/>")
    proto.data_to_send()
    assert proto.step is Step.AUTH
    return proto


def success(data: bytes) -> bytes:
    return b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</success>" % data


def test_the_mechanism_sees_the_success_data_before_the_restart():
    mechanism = Scram()
    proto = at_auth(mechanism)
    events = proto.receive_data(success(base64.b64encode(b"v=signature")) + server_header("2"))
    assert mechanism.seen == [b"v=signature"]
    assert events == [Authenticated("X-SCRAM-LIKE"), StreamOpened("2", "after authentication")]
    assert proto.data_to_send() == CLIENT_HEADER


@pytest.mark.parametrize("data", [b"", b"=", b"  "])
def test_no_success_data_is_empty_bytes(data):
    mechanism = Scram(expected=b"")
    proto = at_auth(mechanism)
    assert proto.receive_data(success(data)) == [Authenticated("X-SCRAM-LIKE")]
    assert mechanism.seen == [b""]


def test_a_refused_server_signature_ends_the_stream_before_the_restart():
    mechanism = Scram()
    proto = at_auth(mechanism)
    events = proto.receive_data(success(base64.b64encode(b"v=forged")) + server_header("2"))
    error = closed_error(events)
    assert isinstance(error, AuthError) and error.condition == "server-signature"
    assert not any(isinstance(e, Authenticated) for e in events)
    assert not proto.authenticated
    assert proto.data_to_send() == CLIENT_CLOSE  # no new stream header


@pytest.mark.parametrize("data", [b"not base64!", b"YWJj=x", b"\xd0\xb9"])
def test_success_data_that_is_not_base64_is_a_protocol_error(data):
    mechanism = Scram()
    proto = at_auth(mechanism)
    error = closed_error(proto.receive_data(success(data)))
    assert isinstance(error, ProtocolError)
    assert mechanism.seen == [] and not proto.authenticated


@pytest.mark.parametrize("method", ["success", "challenge", "initial_response"])
def test_a_mechanism_raising_something_else_ends_in_an_auth_error_that_hides_its_text(method):
    class Broken(Mechanism):
        name = "X-BROKEN"
        calls = 0

        def initial_response(self) -> Optional[bytes]:
            Broken.calls += 1
            if method == "initial_response" and Broken.calls > 1:  # (the first call is the constructor's)
                raise KeyError("secret " + TOKEN)
            return b"x"

        def challenge(self, data: bytes) -> bytes:
            raise ValueError("secret " + TOKEN)

        def success(self, data: bytes) -> None:
            raise RuntimeError("secret " + TOKEN)

    proto = ClientProtocol(Broken(), tls=True)
    proto.initiate()
    events = proto.receive_data(server_header() + b"<stream:features/>")
    if method != "initial_response":
        tag = "success" if method == "success" else "challenge"
        events += proto.receive_data(b"<%s xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AAAA</%s>" % (tag.encode(), tag.encode()))
    error = closed_error(events)
    assert isinstance(error, AuthError) and error.condition == "mechanism-failure"
    assert method in str(error)
    assert "secret" not in str(error) and TOKEN not in str(error)
    assert error.__cause__ is None


def test_a_challenge_answer_that_is_not_bytes_is_an_auth_error():
    class Wrong(Mechanism):
        name = "X-WRONG"

        def initial_response(self) -> Optional[bytes]:
            return None

        def challenge(self, data: bytes) -> bytes:
            return "a str"  # type: ignore[return-value]

    proto = ClientProtocol(Wrong(), tls=True)
    proto.initiate()
    proto.receive_data(server_header() + b"<stream:features/>")
    error = closed_error(proto.receive_data(b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AAAA</challenge>"))
    assert isinstance(error, AuthError) and error.condition == "mechanism-failure"


# -- nothing but yaxmpp errors out of receive_data() ------------------------------------------------


def test_any_other_failure_becomes_a_protocol_error_that_names_only_its_type():
    class NoName(Mechanism):
        @property  # type: ignore[misc]
        def name(self) -> str:  # type: ignore[override]
            raise RuntimeError("secret " + TOKEN)

        def initial_response(self) -> Optional[bytes]:
            return None

    proto = ClientProtocol(NoName(), tls=True)
    proto.initiate()
    events = proto.receive_data(server_header() + b"<stream:features/><iq type='get' id='p'/>")
    error = closed_error(events)
    assert isinstance(error, ProtocolError)
    assert str(error) == "failed on received data (RuntimeError)"
    assert proto.closed
    assert proto.receive_data(b"<iq/>") == []


def test_nothing_follows_stream_closed_in_one_read():
    driver = established()
    events = driver.feed(
        b"<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>"
        b"<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq><message/>"
    )
    assert isinstance(events[-1], StreamClosed)
    assert sum(isinstance(e, StreamClosed) for e in events) == 1
    assert b"p2" not in driver.out()


# -- close() while the driver has the transport ---------------------------------------------------


def at_tls() -> ClientProtocol:
    proto = ClientProtocol(XYandexOAuth(LOGIN, TOKEN))
    proto.initiate()
    proto.receive_data(server_header() + FEATURES_TLS + b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert proto.step is Step.TLS
    proto.data_to_send()
    return proto


def at_compression() -> ClientProtocol:
    proto = ClientProtocol(XYandexOAuth(LOGIN, TOKEN), tls=True, compress=True)
    proto.initiate()
    proto.receive_data(server_header() + FEATURES_AUTH + b"<compressed xmlns='http://jabber.org/protocol/compress'/>")
    assert proto.step is Step.COMPRESSION
    proto.data_to_send()
    return proto


def not_initiated() -> ClientProtocol:
    return ClientProtocol(XYandexOAuth(LOGIN, TOKEN))


@pytest.mark.parametrize("make", [at_tls, at_compression, not_initiated])
@pytest.mark.parametrize("end", ["connection_lost", "eof"])
def test_close_while_nothing_can_be_written_still_ends_in_one_stream_closed(make, end):
    proto = make()
    proto.close()
    assert proto.closed and proto.data_to_send() == b""  # not even our close tag
    events = proto.connection_lost() if end == "connection_lost" else proto.receive_data(b"")
    assert events == [StreamClosed(None)]
    assert proto.connection_lost() == [] and proto.receive_data(b"") == []


@pytest.mark.parametrize("encoding", [b"UTG-8", b"shift_jis", b"rot13"])
def test_a_declared_encoding_python_cannot_use_is_no_exception(encoding):
    # (fuzz finding F6: the parser let LookupError/ValueError out; the core must not.)
    proto = ClientProtocol(XYandexOAuth(LOGIN, TOKEN), tls=True)
    proto.initiate()
    events = proto.receive_data(b"<?xml version='1.0' encoding='" + encoding + b"'?>" + server_header()[22:] + b"<stream:features/>")
    assert isinstance(closed_error(events), Error)


def test_initiate_after_close_is_a_driver_error():
    proto = not_initiated()
    proto.close()
    with pytest.raises(LocalProtocolError):
        proto.initiate()
    assert proto.data_to_send() == b""


# -- any bytes, at any step ------------------------------------------------------------------------

def _start(name: str) -> Driver:
    driver = Driver(tls=name != "starttls", compress=name == "zlib")
    if name == "established":
        driver.feed(
            server_header("1") + FEATURES_AUTH + b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
            + server_header("2") + FEATURES_BIND
        )
    return driver


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.sampled_from(["starttls", "direct", "zlib", "established"]),
    header=st.booleans(),
    chunks=st.lists(st.lists(HOSTILE_CHUNK, max_size=6).map(b"".join), max_size=10),
    close_at=st.integers(0, 10),
)
def test_any_bytes_at_any_step_give_yaxmpp_errors_only_and_nothing_after_stream_closed(start, header, chunks, close_at):
    driver = _start(start)
    if header:
        driver.feed(server_header())
    for index, chunk in enumerate(chunks):
        if index == close_at:
            driver.proto.close()
        if driver.proto.step in (Step.TLS, Step.COMPRESSION):
            driver.events += driver.proto.connection_lost()
            break
        driver.feed(chunk)  # must not raise
        driver.out()
    driver.feed(b"")
    driver.events += driver.proto.connection_lost()
    closed = [i for i, e in enumerate(driver.events) if isinstance(e, StreamClosed)]
    assert closed == [len(driver.events) - 1]
    error = driver.events[-1].error
    assert error is None or (isinstance(error, Error) and not isinstance(error, LocalProtocolError))
    assert driver.proto.closed


def test_a_duck_typed_mechanism_without_success_still_authenticates():
    class Duck:
        name = "X-DUCK"

        def initial_response(self) -> Optional[bytes]:
            return b"quack"

        def secrets(self) -> List[str]:
            return []

    proto = at_auth(Duck())  # type: ignore[arg-type]
    assert proto.receive_data(success(b"=")) == [Authenticated("X-DUCK")]


@pytest.mark.parametrize("tls", [False, True])
def test_after_close_during_negotiation_nothing_from_the_stream_reaches_the_driver(tls):
    # (fuzz finding F10: stanzas of a stream never authenticated came out as StanzaReceived.)
    proto = ClientProtocol(XYandexOAuth(LOGIN, TOKEN), tls=tls)
    proto.initiate()
    proto.close()
    events = proto.receive_data(
        server_header() + FEATURES_TLS + b"<message from='mallory@evil'><body>click</body></message>"
        b"<iq type='set' id='p'><query xmlns='yandex:push:disk'/></iq>"
    )
    assert [type(e) for e in events] == []
    assert proto.receive_data(b"</stream:stream>") == [StreamClosed(None)]


def test_after_close_once_authenticated_stanzas_still_reach_the_driver():
    driver = established()
    driver.proto.close()
    events = driver.feed(b"<message from='ya.ru'><body>late</body></message>")
    assert len(events) == 1 and events[0].element.tag == "{jabber:client}message"
