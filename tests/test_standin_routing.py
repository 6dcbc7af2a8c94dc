"""The stand-in server routes between sessions, and a second account can be scripted (issue 14).

Real servers route an iq for a full JID to that session, stamped with its sender's JID,
and end the older of two sessions on one full JID with ``<conflict/>``; these tests drive
that through ``FakeServer.scripted_session`` and real yaxmpp clients.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List

import pytest

import yaxmpp
from yaxmpp.testing import FakeServer, ServerOptions

from .conftest import TOKEN

PAYLOAD_NS = "urn:yaxmpp:test:routing"


def test_a_request_to_a_scripted_account_is_routed_and_answered(make_server: Callable[..., FakeServer], make_client: Any) -> None:
    server = make_server()
    other = server.scripted_session("other", "desk")
    client = make_client(server).connect()
    answers: List[Any] = []
    asking = threading.Thread(
        target=lambda: answers.append(client.request('<q xmlns="%s"/>' % PAYLOAD_NS, to=other.jid, timeout=5))
    )
    asking.start()
    try:
        request = other.wait_for(lambda s: s.find("{%s}q" % PAYLOAD_NS) is not None)
        assert request.get("from") == client.jid  # stamped by the server
        other.answer(request, '<q xmlns="%s" real="yes"/>' % PAYLOAD_NS)
    finally:
        asking.join(5)
    assert len(answers) == 1
    assert answers[0].get("from") == other.jid
    assert answers[0].find("{%s}q" % PAYLOAD_NS).get("real") == "yes"


def test_an_answer_forged_by_another_account_is_not_taken(make_server: Callable[..., FakeServer], make_client: Any) -> None:
    """The forger learns the id (it is the target's twin here); the client waits for the
    real answer, from the entity it asked."""
    server = make_server()
    target = server.scripted_session("other", "target")
    forger = server.scripted_session("other", "forger")
    client = make_client(server).connect()
    answers: List[Any] = []
    asking = threading.Thread(
        target=lambda: answers.append(client.request('<q xmlns="%s"/>' % PAYLOAD_NS, to=target.jid, timeout=5))
    )
    asking.start()
    try:
        request = target.wait_for()
        forger.send('<iq type="result" id="%s" to="%s"><q xmlns="%s" forged="yes"/></iq>'
                    % (request.get("id"), client.jid, PAYLOAD_NS))
        # The forger's ping travels behind its forgery: once answered, the client saw both.
        ping = forger.iq("get", client.jid, '<ping xmlns="urn:xmpp:ping"/>')
        assert forger.wait_for(lambda s: s.get("id") == ping).get("type") == "result"
        assert answers == []
        target.answer(request, '<q xmlns="%s" real="yes"/>' % PAYLOAD_NS)
    finally:
        asking.join(5)
    assert [a.get("from") for a in answers] == [target.jid]
    assert answers[0].find("{%s}q" % PAYLOAD_NS).get("real") == "yes"


def test_a_push_from_a_foreign_sender_is_refused(make_server: Callable[..., FakeServer], make_client: Any) -> None:
    server = make_server()
    client = make_client(server).connect()
    other = server.scripted_session("other")
    push_id = other.push(client.jid, [{"type": "deleted", "key": "/disk/important.doc"}])
    answer = other.wait_for(lambda s: s.get("id") == push_id)
    assert (answer.get("type"), answer.get("from")) == ("error", client.jid)
    with pytest.raises(yaxmpp.Timeout):
        client.get_notification(timeout=0.3)
    # while the same push from the service is a notification
    session = server.wait_for_session()
    session.push([{"type": "deleted", "key": "/disk/important.doc"}])
    assert client.get_notification(timeout=5).changes[0].path == "/disk/important.doc"


def test_a_scripted_request_to_nobody_gets_service_unavailable(make_server: Callable[..., FakeServer]) -> None:
    other = make_server().scripted_session("other")
    iq_id = other.iq("get", "test@ya.ru/nobody", '<ping xmlns="urn:xmpp:ping"/>')
    answer = other.wait_for(lambda s: s.get("id") == iq_id)
    assert (answer.get("type"), answer.get("from")) == ("error", "test@ya.ru/nobody")
    assert answer.find("{jabber:client}error/{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable") is not None


def test_two_clients_reach_each_other(make_server: Callable[..., FakeServer], make_client: Any) -> None:
    server = make_server(accounts={"other": "other-token-0123456789"})
    first = make_client(server).connect()
    second = make_client(server, login="other", token="other-token-0123456789").connect()
    reply = second.request('<ping xmlns="urn:xmpp:ping"/>', to=first.jid, timeout=5)
    assert (reply.get("type"), reply.get("from")) == ("result", first.jid)


def test_the_same_resource_ends_the_older_session_with_conflict(make_server: Callable[..., FakeServer], make_client: Any) -> None:
    server = make_server()
    first = make_client(server).connect()  # no reconnect policy: the default
    jid = first.jid
    older = server.wait_for_session()
    second = make_client(server).connect()
    assert second.jid == jid
    assert older.superseded.is_set()
    assert older.wait_ended(5)
    with pytest.raises(yaxmpp.StreamError) as info:  # the first client has ended, by that error
        first.wait(5)
    assert info.value.condition == "conflict"
    assert not first.connected and second.connected


def test_resource_conflict_keep_leaves_both(make_server: Callable[..., FakeServer], make_client: Any) -> None:
    server = make_server(resource_conflict="keep")
    first = make_client(server).connect()
    second = make_client(server).connect()
    assert first.jid == second.jid
    assert not server.sessions[0].superseded.is_set()
    assert first.connected and second.connected


def test_options_object_and_keywords(make_server: Callable[..., FakeServer]) -> None:
    base = ServerOptions(write_mode="bytewise", ask_version=False)
    server = FakeServer(login="test", token=TOKEN, options=base, ask_version=True)
    assert (server.options.write_mode, server.options.ask_version) == ("bytewise", True)
    assert server.write_mode == "bytewise" and server.domain == "ya.ru"
    server.ask_version = False  # as before the options object: an attribute per switch
    assert server.options.ask_version is False and server.ping_interval is None
    with pytest.raises(AttributeError):
        server.no_such_switch
    with pytest.raises(TypeError, match="no_such_switch"):
        FakeServer(no_such_switch=True)
    with pytest.raises(ValueError):
        ServerOptions(write_mode="sideways")
