"""SASL mechanisms: the built-ins, a user-made one, and that nothing secret goes before TLS."""

from __future__ import annotations

import base64

import pytest

import yaxmpp
from yaxmpp.protocol import SessionStarted
from yaxmpp.protocol.sasl import make_mechanism

from .conftest import LOGIN, TOKEN
from .core_harness import (
    BIND_RESULT,
    CLIENT_BIND,
    CLIENT_SESSION,
    FEATURES_BIND,
    SESSION_RESULT,
    SUCCESS,
    Driver,
    server_header,
)


def test_builtin_payloads():
    assert yaxmpp.XYandexOAuth("test", TOKEN).initial_response() == b"test\0" + TOKEN.encode()
    assert yaxmpp.Plain("test", TOKEN).initial_response() == b"\0test\0" + TOKEN.encode()
    assert yaxmpp.Plain("test", TOKEN, authzid="a@b").initial_response() == b"a@b\0test\0" + TOKEN.encode()
    assert yaxmpp.XOAuth2("test", TOKEN).initial_response() == b"\0test\0" + TOKEN.encode()
    assert TOKEN not in repr(yaxmpp.Plain("test", TOKEN)) + repr(yaxmpp.XOAuth2("test", TOKEN))


def test_mechanisms_by_name():
    assert make_mechanism(None, "u", TOKEN).name == "X-YANDEX-OAUTH"
    assert make_mechanism("plain", "u", TOKEN).name == "PLAIN"
    assert make_mechanism("X-OAUTH2", "u", TOKEN).name == "X-OAUTH2"
    with pytest.raises(ValueError):
        make_mechanism("SCRAM-SHA-1", "u", TOKEN)


@pytest.mark.parametrize("name", ["PLAIN", "X-YANDEX-OAUTH"])
def test_connect_with_each_mechanism(make_server, make_client, name):
    server = make_server(mechanisms=(name,))
    client = make_client(server, mechanism=name).connect()
    assert client.connected
    auth = [s for s in server.wait_for_session().stanzas if s.tag.endswith("}auth")][0]
    assert auth.get("mechanism") == name


def test_a_mechanism_the_server_does_not_offer_is_not_tried(make_server, make_client):
    server = make_server(mechanisms=("PLAIN",))
    with pytest.raises(yaxmpp.AuthError) as info:
        make_client(server).connect()  # X-YANDEX-OAUTH by default
    assert info.value.condition == "invalid-mechanism"
    sent = bytes(server.wait_for_session().received)
    assert b"<auth" not in sent and TOKEN.encode() not in sent


class Echo(yaxmpp.Mechanism):
    """A user-made mechanism with one challenge round."""

    name = "X-ECHO"

    def __init__(self) -> None:
        self.challenges = []

    def initial_response(self):
        return None

    def challenge(self, data: bytes) -> bytes:
        self.challenges.append(data)
        return data[::-1]


def test_a_user_made_mechanism_with_a_challenge():
    mechanism = Echo()
    driver = Driver(tls=True, mechanism=mechanism)
    _, sent = driver.exchange(
        server_header("1") + b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
        b"<mechanism>X-ECHO</mechanism></mechanisms></stream:features>"
    )
    assert sent.endswith(b'mechanism="X-ECHO"/>')  # no initial response
    _, sent = driver.exchange(
        b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</challenge>" % base64.b64encode(b"abc")
    )
    assert mechanism.challenges == [b"abc"]
    assert base64.b64encode(b"cba") in sent
    _, sent = driver.exchange(SUCCESS + server_header("2") + FEATURES_BIND)
    assert sent.endswith(CLIENT_BIND)
    events, sent = driver.exchange(BIND_RESULT + SESSION_RESULT)
    assert sent == CLIENT_SESSION
    assert isinstance(events[-1], SessionStarted) and driver.proto.established


def test_no_mechanism_sends_anything_before_tls(make_server, make_client):
    server = make_server(offer_starttls=False, mechanisms=("PLAIN",))
    for name in ("PLAIN", "X-OAUTH2", "X-YANDEX-OAUTH"):
        with pytest.raises(yaxmpp.TLSError):
            make_client(server, mechanism=name, tls_port=None).connect()
    assert len(server.sessions) == 3  # one refused connection per mechanism, each checked below
    secrets = [LOGIN.encode(), TOKEN.encode()]
    for payload in (b"%s\0%s" % (LOGIN.encode(), TOKEN.encode()), b"\0%s\0%s" % (LOGIN.encode(), TOKEN.encode())):
        secrets.append(base64.b64encode(payload))
    for session in server.sessions:
        assert session.wait_ended()
        received = bytes(session.received)
        assert received.startswith(b"<?xml")  # the client did speak: the checks below are not vacuous
        assert b"<auth" not in received
        for secret in secrets:
            assert secret not in received, secret
