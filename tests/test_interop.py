"""Interop with real XMPP servers on loopback: Prosody 0.12 and ejabberd 23.01 (issue 6).

The servers come from Debian packages and are run by ``tests/peers/peers.sh``::

    bash tests/peers/peers.sh install    # apt-get, as root
    bash tests/peers/peers.sh setup      # test CA, configs, our Prosody test modules
    bash tests/peers/peers.sh start      # writes $PEERS/peers.env, which these tests read
    python -m pytest -m interop
    bash tests/peers/peers.sh stop

Without them (no ``$PEERS/peers.env``, or nothing on a server's port) the tests are skipped
with a one-line reason: the whole module when neither server runs, else those of the missing
one.  With ``YAXMPP_INTEROP=require`` (set by ``.ci/run``) a missing server fails instead.

Both servers play push.xmpp.yandex.ru for the host ``ya.ru``: the client dials ``localhost``
(the name in the test certificate, as it dials push.xmpp.yandex.ru), sends its stream to
``ya.ru`` and verifies TLS against the test CA made by ``peers.sh setup``.  Prosody speaks
X-YANDEX-OAUTH, zlib, server pings, Disk pushes and the Disk subscription through our test
modules (``tests/peers/prosody/plugins``); ejabberd runs stock modules only, so it cannot
answer the Disk subscription (``service-unavailable``) and its clients use ``subscribe=False``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from xml.etree.ElementTree import Element

import pytest

import yaxmpp

from .peers_state import PEERS_DIR, listening, read_state

pytestmark = pytest.mark.interop

REQUIRED = os.environ.get("YAXMPP_INTEROP", "") == "require"
SERVERS = ("prosody", "ejabberd")
TRANSPORTS = ("starttls", "direct-tls")
HOST = "localhost"
DOMAIN = "ya.ru"
USER, PASSWORD = "test", "testpass"
OTHER, OTHER_PASSWORD = "other", "otherpass"

VERSION_NS = "jabber:iq:version"
PING = '<ping xmlns="urn:xmpp:ping"/>'
INJECT_NS = "urn:test:inject"

# -- the servers ---------------------------------------------------------------------------


class Peer:
    """One running server, as ``peers.sh start`` described it in ``peers.env``."""

    software = {"prosody": "Prosody", "ejabberd": "ejabberd"}
    #: The SASL mechanisms tried on each server; the first is what the other tests use.
    mechanisms = {"prosody": ("X-YANDEX-OAUTH", "PLAIN"), "ejabberd": ("PLAIN", "X-OAUTH2")}
    #: How the server logs a session it opened, and a stream the client closed with
    #: ``</stream:stream>`` (as opposed to a dropped connection). {jid} is filled in.
    bound_log = {
        "prosody": r"bound {jid} \(secure: true, compressed: {compressed}\)",
        "ejabberd": r"\({transport}\|<[^>]*>\) Opened c2s session for {jid}$",
    }
    closed_log = {
        "prosody": r"session {jid} closed by the client$",
        "ejabberd": r"Closing c2s session for {jid}: Stream reset by peer$",
    }

    def __init__(self, name: str, state: Dict[str, str]) -> None:
        key = name.upper()
        self.name = name
        self.port = int(state[key + "_PORT"])
        self.tls_port = int(state[key + "_TLS_PORT"])
        self.log_path = state[key + "_LOG"]
        self.cafile = state["CA"]
        self.ping_interval = float(state["PING_INTERVAL"])
        self.oauth_token = state.get("EJABBERD_OAUTH_TOKEN", "")
        self.mechanism = self.mechanisms[name][0]
        self.answers_subscription = name == "prosody"

    def __repr__(self) -> str:
        return "<Peer %s %d/%d>" % (self.name, self.port, self.tls_port)

    def secret(self, mechanism: str, login: str = USER) -> str:
        if mechanism == "X-OAUTH2":
            assert login == USER, "peers.sh issues an OAuth token for %s only" % USER
            return self.oauth_token
        return PASSWORD if login == USER else OTHER_PASSWORD

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_lines(self, since: int) -> List[str]:
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace").splitlines()

    def wait_for_log(self, pattern: str, since: int, count: int = 1, timeout: float = 5.0) -> List[str]:
        """Lines logged by the server after offset ``since`` that match ``pattern``; waits
        until there are ``count`` of them, and fails showing the log otherwise."""
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            lines = self.log_lines(since)
            found = [line for line in lines if regex.search(line)]
            if len(found) >= count:
                return found
            if time.monotonic() > end:
                tail = "\n".join(lines[-15:])
                pytest.fail("%s logged %d line(s) matching %r, expected %d; its log since:\n%s"
                            % (self.name, len(found), pattern, count, tail))
            time.sleep(0.05)


def _find(name: str) -> Tuple[Optional[Peer], str]:
    """The running server ``name``, or None and why not."""
    state = read_state()
    if state is None:
        return None, "no %s/peers.env" % PEERS_DIR
    peer = Peer(name, state)
    if not (listening(peer.port) and listening(peer.tls_port)):
        return None, "nothing on 127.0.0.1:%d" % peer.port
    return peer, ""


def get_peer(name: str) -> Peer:
    """The running server ``name``, or a skip (a failure with YAXMPP_INTEROP=require)."""
    peer, why = _find(name)
    if peer is not None:
        return peer
    reason = "%s is not running (%s); start it: bash tests/peers/peers.sh start" % (name, why)
    if REQUIRED:
        pytest.fail(reason + " [YAXMPP_INTEROP=require]")
    pytest.skip(reason)


if not REQUIRED and all(_find(name)[0] is None for name in SERVERS):
    pytest.skip("interop servers not running (%s); see tests/peers/README.md" % _find(SERVERS[0])[1],
                allow_module_level=True)


@pytest.fixture(params=SERVERS)
def peer(request: Any) -> Peer:
    return get_peer(request.param)


@pytest.fixture
def prosody() -> Peer:
    return get_peer("prosody")


# -- our client ----------------------------------------------------------------------------


def unique_resource() -> str:
    return "interop-" + uuid.uuid4().hex[:10]


@pytest.fixture
def new_client() -> Iterator[Callable[..., yaxmpp.Client]]:
    """Make a yaxmpp client for a peer (not connected); every one is closed afterwards."""
    made: List[yaxmpp.Client] = []

    def make(peer: Peer, transport: str = "starttls", login: str = USER, secret: Optional[str] = None,
             **options: Any) -> yaxmpp.Client:
        assert transport in TRANSPORTS
        mechanism = options.setdefault("mechanism", peer.mechanism)
        options.setdefault("host", HOST)
        options.setdefault("domain", DOMAIN)
        options.setdefault("cafile", peer.cafile)
        options.setdefault("resource", unique_resource())
        options.setdefault("timeout", 10.0)
        options.setdefault("subscribe", peer.answers_subscription and login == USER)
        if transport == "starttls":
            options.update(port=peer.port, tls_port=None)
        else:
            options.update(port=None, tls_port=peer.tls_port)
        client = yaxmpp.Client(login, secret if secret is not None else peer.secret(mechanism, login), **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close(timeout=3.0)


@pytest.fixture
def connect(new_client: Callable[..., yaxmpp.Client]) -> Callable[..., yaxmpp.Client]:
    def connect(peer: Peer, transport: str = "starttls", **options: Any) -> yaxmpp.Client:
        return new_client(peer, transport, **options).connect()

    return connect


def messages(caplog: Any, logger: str = "yaxmpp") -> List[str]:
    return [record.getMessage() for record in list(caplog.records) if record.name == logger]


def answered(caplog: Any, kind: str) -> List[str]:
    """The ids of the requests of ``kind`` (ping, version) our client answered by itself."""
    prefix = "answered the server's %s request (id " % kind
    return [m[len(prefix):-1] for m in messages(caplog) if m.startswith(prefix)]


def version_of(reply: Element) -> Tuple[Optional[str], Optional[str]]:
    query = "{%s}query/{%s}" % (VERSION_NS, VERSION_NS)
    return reply.findtext(query + "name"), reply.findtext(query + "version")


# -- the second client: slixmpp ------------------------------------------------------------


def require_slixmpp() -> Any:
    slixmpp = pytest.importorskip("slixmpp", reason="slixmpp (in the test extra, Python 3.9+) is not installed")
    if "host" not in inspect.signature(slixmpp.ClientXMPP.connect).parameters:
        pytest.skip("slixmpp %s is too old: connect(host, port) is needed" % slixmpp.__version__)
    return slixmpp


class Slix:
    """A slixmpp client on a peer, driven from a coroutine in the test's own event loop."""

    def __init__(self, peer: Peer, login: str, password: str, answer_pings: bool = True) -> None:
        slixmpp = require_slixmpp()
        self.xmpp = xmpp = slixmpp.ClientXMPP("%s@%s/%s" % (login, DOMAIN, unique_resource()), password)
        xmpp.ca_certs = peer.cafile  # verified, with the hostname (ya.ru) checked
        xmpp.enable_plaintext = False
        xmpp.enable_direct_tls = False
        xmpp.enable_starttls = True
        self.pings: List[str] = []
        if answer_pings:
            for plugin in ("xep_0030", "xep_0092", "xep_0199"):
                xmpp.register_plugin(plugin)
        else:  # take the server's pings and leave them unanswered
            from slixmpp.xmlstream.handler import Callback
            from slixmpp.xmlstream.matcher import MatchXPath

            xmpp.register_handler(Callback("swallow pings", MatchXPath("{jabber:client}iq/{urn:xmpp:ping}ping"),
                                           lambda iq: self.pings.append(iq["id"])))
        self.port = peer.port
        loop = asyncio.get_running_loop()
        self.started: "asyncio.Future[None]" = loop.create_future()
        self.ended: "asyncio.Future[None]" = loop.create_future()
        xmpp.add_event_handler("session_start", lambda _: self._settle(self.started))
        xmpp.add_event_handler("failed_auth", lambda _: self._settle(self.started, "slixmpp: authentication failed"))
        xmpp.add_event_handler("disconnected", lambda _: self._settle(self.ended))

    @staticmethod
    def _settle(future: "asyncio.Future[None]", error: Optional[str] = None) -> None:
        if future.done():
            return
        if error:
            future.set_exception(AssertionError(error))
        else:
            future.set_result(None)

    async def start(self) -> "Slix":
        self.xmpp.connect("127.0.0.1", self.port)
        await asyncio.wait_for(self.started, 15)
        return self

    async def stop(self) -> None:
        if not self.ended.done():
            self.xmpp.disconnect()
            await asyncio.wait_for(asyncio.shield(self.ended), 5)


def run(coroutine: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


# -- connecting ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connects_over_tls_to_ya_ru(peer: Peer, transport: str, connect: Callable[..., yaxmpp.Client], caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="yaxmpp")
    since = peer.log_size()
    resource = unique_resource()
    client = connect(peer, transport, resource=resource)
    expected_port = peer.port if transport == "starttls" else peer.tls_port

    assert client.connected
    assert client.jid == "%s@%s/%s" % (USER, DOMAIN, resource)
    assert client.port == expected_port
    assert client.tls_version in ("TLSv1.2", "TLSv1.3")
    assert not client.compressed
    how = "STARTTLS" if transport == "starttls" else "direct TLS"
    assert "connected to %s port %d (%s)" % (HOST, expected_port, how) in messages(caplog)
    # The server itself answers, for ya.ru: a real Prosody or ejabberd, not a stand-in.
    reply = client.request('<query xmlns="%s"/>' % VERSION_NS, to=DOMAIN, timeout=5)
    assert reply.get("type") == "result" and reply.get("from") == DOMAIN
    assert version_of(reply)[0] == Peer.software[peer.name]
    # ... and saw an encrypted, uncompressed session for that JID.
    pattern = Peer.bound_log[peer.name].format(jid=re.escape(client.jid), compressed="false", transport="tls")
    peer.wait_for_log(pattern, since)


def test_server_assigns_the_resource(peer: Peer, connect: Callable[..., yaxmpp.Client]) -> None:
    client = connect(peer, resource=None)  # an empty <bind/>
    prefix = "%s@%s/" % (USER, DOMAIN)
    assert client.jid is not None and client.jid.startswith(prefix) and len(client.jid) > len(prefix)
    assert client.request(PING, to=DOMAIN, timeout=5).get("type") == "result"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_certificate_is_verified(peer: Peer, transport: str, new_client: Callable[..., yaxmpp.Client]) -> None:
    untrusted = new_client(peer, transport, cafile=None)  # certifi's CAs do not know the test CA
    # (ejabberd sends the test CA along; OpenSSL versions word that one differently)
    unknown_ca = r"verification failed for localhost: (unable to get local issuer|self.signed certificate)"
    with pytest.raises(yaxmpp.TLSError, match=unknown_ca):
        untrusted.connect()
    wrong_name = new_client(peer, transport, host="127.0.0.1")  # the certificate names no address
    with pytest.raises(yaxmpp.TLSError, match=r"verification failed for 127\.0\.0\.1: .*mismatch"):
        wrong_name.connect()
    assert not untrusted.connected and not wrong_name.connected


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_zlib_compression(peer: Peer, transport: str, connect: Callable[..., yaxmpp.Client], caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="yaxmpp")
    since = peer.log_size()
    client = connect(peer, transport, compress=True)

    assert client.compressed
    assert "zlib compression on" in messages(caplog)
    assert not [m for m in messages(caplog) if "refused compression" in m]
    # The compressed stream carries stanzas both ways (a reply well over a deflate block).
    for _ in range(3):
        reply = client.request('<query xmlns="%s"/>' % VERSION_NS, to=DOMAIN, timeout=5)
        assert version_of(reply)[0] == Peer.software[peer.name]
    pattern = Peer.bound_log[peer.name].format(jid=re.escape(client.jid), compressed="true", transport="tls_zlib")
    peer.wait_for_log(pattern, since)


# -- authentication ------------------------------------------------------------------------

MECHANISM_CASES = [(name, mechanism) for name in SERVERS for mechanism in Peer.mechanisms[name]]


@pytest.mark.parametrize("peer,mechanism", MECHANISM_CASES, indirect=["peer"])
def test_mechanism(peer: Peer, mechanism: str, connect: Callable[..., yaxmpp.Client], caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="yaxmpp")
    client = connect(peer, mechanism=mechanism)
    assert client.connected
    assert "authenticated with %s" % mechanism in messages(caplog)


@pytest.mark.parametrize("peer,mechanism", MECHANISM_CASES, indirect=["peer"])
def test_wrong_secret_is_an_auth_error(peer: Peer, mechanism: str, new_client: Callable[..., yaxmpp.Client]) -> None:
    client = new_client(peer, mechanism=mechanism, secret="wrong-" + peer.secret(mechanism))
    with pytest.raises(yaxmpp.AuthError) as info:
        client.connect()
    assert info.value.condition == "not-authorized"
    assert not client.connected


def test_mechanism_the_server_does_not_offer(peer: Peer, new_client: Callable[..., yaxmpp.Client]) -> None:
    missing = "X-OAUTH2" if peer.name == "prosody" else "X-YANDEX-OAUTH"
    client = new_client(peer, mechanism=missing, secret="never-sent-secret")
    with pytest.raises(yaxmpp.AuthError) as info:
        client.connect()
    assert info.value.condition == "invalid-mechanism"
    assert "PLAIN" in (info.value.text or "")  # it names what the server offered


# -- the server's pings ----------------------------------------------------------------------


def test_server_pings_are_answered(peer: Peer, connect: Callable[..., yaxmpp.Client], caplog: Any) -> None:
    """Both servers close a session that leaves a ping unanswered (ejabberd mod_ping with
    timeout_action: kill; Prosody our mod_s2c_ping with s2c_ping_kill): the client stays
    through three pings, a ping interval apart or more."""
    caplog.set_level(logging.INFO, logger="yaxmpp")
    since = peer.log_size()
    client = connect(peer)
    opened = time.monotonic()
    interval = peer.ping_interval
    deadline = opened + 5 * interval + 5
    while len(answered(caplog, "ping")) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    pings = answered(caplog, "ping")
    assert len(pings) >= 3, "only %d server ping(s) in %.1fs" % (len(pings), time.monotonic() - opened)
    assert time.monotonic() - opened >= 3 * interval - 0.5
    assert client.connected
    assert client.request(PING, to=DOMAIN, timeout=5).get("type") == "result"
    if peer.name == "prosody":  # our module logs each answer it got
        peer.wait_for_log(r"ping s2c-ping-\d+ answered \(result\) by %s$" % re.escape(client.jid), since, count=3)


def test_a_client_that_ignores_pings_is_dropped(peer: Peer) -> None:
    """The control for the test above: the server really drops a client that does not answer."""

    async def scenario() -> Tuple[List[str], float]:
        silent = await Slix(peer, OTHER, OTHER_PASSWORD, answer_pings=False).start()
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(silent.ended), 4 * peer.ping_interval + 5)
        finally:
            await silent.stop()
        return silent.pings, time.monotonic() - started

    pings, elapsed = run(scenario())
    assert pings, "dropped after %.1fs without having been pinged" % elapsed


# -- a second client queries ours through the server -----------------------------------------


def test_peer_queries_reach_our_client(peer: Peer, connect: Callable[..., yaxmpp.Client], caplog: Any) -> None:
    require_slixmpp()
    from slixmpp.exceptions import IqError

    caplog.set_level(logging.INFO, logger="yaxmpp")
    client = connect(peer, client_name="yaxmpp-interop", client_version="0.0.1-interop", client_os="InteropOS")
    jid = client.jid

    async def scenario() -> Tuple[Any, Any, str]:
        other = await Slix(peer, OTHER, OTHER_PASSWORD).start()
        try:
            version = await other.xmpp.plugin["xep_0092"].get_version(jid, timeout=10)
            ping = await other.xmpp.plugin["xep_0199"].send_ping(jid, timeout=10)
            try:
                await other.xmpp.plugin["xep_0030"].get_info(jid=jid, timeout=10)
                disco = "answered"
            except IqError as exc:
                disco = exc.iq["error"]["condition"]
        finally:
            await other.stop()
        return version, ping, disco

    version, ping, disco = run(scenario())
    assert version["type"] == "result" and version["from"] == jid
    software = version["software_version"]
    assert (software["name"], software["version"], software["os"]) == ("yaxmpp-interop", "0.0.1-interop", "InteropOS")
    assert ping["type"] == "result" and ping["from"] == jid
    assert disco == "service-unavailable"  # what the client does not serve, it refuses
    # The replies were our client's own, to those very requests.
    assert version["id"] in answered(caplog, "version")
    assert ping["id"] in answered(caplog, "ping")


# -- Disk pushes and the subscription --------------------------------------------------------


def test_disk_subscription(peer: Peer, connect: Callable[..., yaxmpp.Client], new_client: Callable[..., yaxmpp.Client]) -> None:
    since = peer.log_size()
    client = connect(peer, subscribe=False)
    if peer.answers_subscription:  # our mod_test_inject answers it
        client.subscribe(timeout=5)
        peer.wait_for_log(r"%s subscribed to yandex:push:disk$" % re.escape(client.jid), since)
        assert connect(peer, subscribe=True).connected  # and connect() subscribes by itself
    else:  # ejabberd has no module for yandex:push:disk
        with pytest.raises(yaxmpp.SubscribeError) as info:
            client.subscribe(timeout=5)
        assert info.value.condition == "service-unavailable"
        assert client.connected  # a refused subscription leaves the session open
        with pytest.raises(yaxmpp.SubscribeError):
            new_client(peer, subscribe=True).connect()


def inject(driver: yaxmpp.Client, stanza: str) -> Element:
    """Have Prosody (mod_test_inject) send ``stanza`` from ya.ru; return the target's reply."""
    outer = driver.request('<inject xmlns="%s">%s</inject>' % (INJECT_NS, stanza), type="set", to=DOMAIN, timeout=10)
    reply = outer.find("{%s}inject/{jabber:client}iq" % INJECT_NS)
    assert reply is not None, "mod_test_inject returned no reply"
    return reply


def push(jid: str, iq_id: str, ops: str, attrs: str = "") -> str:
    return '<iq type="set" to="%s" id="%s"><query xmlns="yandex:push:disk"%s><diff>%s</diff></query></iq>' % (
        jid, iq_id, attrs, ops)


def test_pushes_arrive_as_notifications_and_are_acknowledged(prosody: Peer, connect: Callable[..., yaxmpp.Client]) -> None:
    client = connect(prosody)  # subscribed by connect()
    driver = connect(prosody, login=OTHER)
    ops = [
        '<op type="new" key="/disk/a.txt" fid="101" size="12"/>',
        '<op type="deleted" key="disk:/b.txt" fid="102"/>',
        '<op type="changed" key="/disk/dir/c.bin" fid="103" size="4096"/>',
    ]
    for number, op in enumerate(ops):
        reply = inject(driver, push(client.jid, "push-%d" % number, op, ' uid="42" n="%d"' % number))
        # The server saw our acknowledgement: an empty result, from our full JID.
        assert (reply.get("type"), reply.get("id"), reply.get("from")) == ("result", "push-%d" % number, client.jid)
        assert len(reply) == 0
    notifications = [client.get_notification(timeout=5) for _ in ops]
    assert [n.iq_id for n in notifications] == ["push-0", "push-1", "push-2"]
    assert {n.sender for n in notifications} == {DOMAIN}
    assert [dict(n.attrs) for n in notifications] == [{"uid": "42", "n": str(i)} for i in range(3)]
    changes = [(c.type, c.path, c.fid, c.size) for n in notifications for c in n.changes]
    assert changes == [
        ("new", "/disk/a.txt", "101", 12),
        ("deleted", "disk:/b.txt", "102", None),
        ("changed", "/disk/dir/c.bin", "103", 4096),
    ]
    with pytest.raises(yaxmpp.Timeout):
        client.get_notification(timeout=0.2)


def test_push_beyond_max_pending_is_refused(prosody: Peer, connect: Callable[..., yaxmpp.Client]) -> None:
    client = connect(prosody, max_pending=1)
    driver = connect(prosody, login=OTHER)
    first = inject(driver, push(client.jid, "keep", '<op type="new" key="/disk/1"/>'))
    second = inject(driver, push(client.jid, "refuse", '<op type="new" key="/disk/2"/>'))
    assert first.get("type") == "result"
    assert second.get("type") == "error"
    error = second.find("{jabber:client}error")
    assert error is not None and error.get("type") == "wait"
    assert error.find("{urn:ietf:params:xml:ns:xmpp-stanzas}resource-constraint") is not None
    assert client.refused_notifications == 1
    assert client.get_notification(timeout=5).iq_id == "keep"


def test_server_originated_requests(prosody: Peer, connect: Callable[..., yaxmpp.Client]) -> None:
    """What push.xmpp.yandex.ru asks a client (``ask_version``, pings) and what it must refuse."""
    client = connect(prosody, client_name="yaxmpp-interop", client_version="0.0.2-interop")
    driver = connect(prosody, login=OTHER)
    version = inject(driver, '<iq type="get" to="%s" id="ask_version"><query xmlns="%s"/></iq>' % (client.jid, VERSION_NS))
    assert (version.get("type"), version.get("id"), version.get("from")) == ("result", "ask_version", client.jid)
    assert version_of(version) == ("yaxmpp-interop", "0.0.2-interop")
    ping = inject(driver, '<iq type="get" to="%s" id="ping-42">%s</iq>' % (client.jid, PING))
    assert (ping.get("type"), ping.get("id")) == ("result", "ping-42")
    other = inject(driver, '<iq type="get" to="%s" id="x-1"><query xmlns="jabber:iq:last"/></iq>' % client.jid)
    assert other.get("type") == "error"
    assert other.find("{jabber:client}error/{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable") is not None
    assert client.connected


def test_push_from_another_account_is_not_a_notification(peer: Peer, connect: Callable[..., yaxmpp.Client]) -> None:
    """Disk pushes come from the service: no 'from', the domain or the user's own bare JID
    (as RFC 6121 2.1.6 requires of roster pushes).  A push iq from another user's JID, which
    any account on the server can route to ``login@ya.ru/YaDisk-client``, must be refused
    with an error and must not reach the application."""
    client = connect(peer)
    other = connect(peer, login=OTHER)
    fake = '<query xmlns="yandex:push:disk"><diff><op type="deleted" key="/disk/important.doc"/></diff></query>'
    with pytest.raises(yaxmpp.IqError):
        other.request(fake, type="set", to=client.jid, timeout=5)
    with pytest.raises(yaxmpp.Timeout):
        client.get_notification(timeout=0.5)


# -- closing ---------------------------------------------------------------------------------


def test_close_is_a_normal_stream_close(peer: Peer, connect: Callable[..., yaxmpp.Client], caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="yaxmpp")
    caplog.set_level(logging.DEBUG, logger="yaxmpp.xml")  # last: it also sets the capture level
    client = connect(peer)
    jid = client.jid
    since = peer.log_size()
    started = time.monotonic()
    client.close(timeout=5)
    took = time.monotonic() - started

    assert not client.connected
    assert took < 2, "close() took %.1fs" % took
    xml = messages(caplog, "yaxmpp.xml")
    assert "SEND </stream:stream>" in xml and "RECV </stream:stream>" in xml  # the server answered ours
    assert not [m for m in messages(caplog) if "did not answer the close" in m or "connection ended" in m]
    # The server saw the client's </stream:stream>, not a dropped connection ...
    peer.wait_for_log(Peer.closed_log[peer.name].format(jid=re.escape(jid)), since)
    # ... and the session is gone: an iq to the old full JID is refused by the server.
    other = connect(peer, login=OTHER)
    with pytest.raises(yaxmpp.IqError) as info:
        other.request(PING, to=jid, timeout=5)
    assert info.value.condition in ("service-unavailable", "item-not-found", "recipient-unavailable")


# -- who may answer ------------------------------------------------------------------------


def test_an_answer_forged_by_another_account_is_not_taken(peer: Peer, connect: Callable[..., yaxmpp.Client]) -> None:
    """Another account on the same server sends a result with our request's id (here it
    learns the id by being the target's twin; a guesser would have to guess a random id):
    the client waits for the real answer from the entity it asked."""
    slixmpp = require_slixmpp()
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    client = connect(peer)
    payload_ns = "urn:yaxmpp:test:hold"

    async def scenario() -> Any:
        loop = asyncio.get_running_loop()
        target = await Slix(peer, OTHER, OTHER_PASSWORD).start()  # holds our request
        forger = await Slix(peer, OTHER, OTHER_PASSWORD).start()  # another resource: the forger
        held: "asyncio.Future[Any]" = loop.create_future()
        target.xmpp.register_handler(
            Callback("hold", MatchXPath("{jabber:client}iq/{%s}q" % payload_ns), lambda iq: loop.call_soon_threadsafe(held.set_result, iq))
        )
        try:
            asked = loop.run_in_executor(
                None, lambda: client.request('<q xmlns="%s"/>' % payload_ns, type="get", to=str(target.xmpp.boundjid), timeout=30)
            )
            iq = await asyncio.wait_for(held, 15)
            forger.xmpp.send_raw(
                "<iq type='result' id='%s' to='%s'><q xmlns='%s' forged='yes'/></iq>" % (iq["id"], client.jid, payload_ns)
            )
            # The forger's ping travels behind its forged answer: once our client answered it,
            # it has seen (and ignored) the forgery.
            await forger.xmpp.plugin["xep_0199"].ping(jid=client.jid, timeout=10)
            assert not asked.done()
            real = iq.reply()
            real.append(slixmpp.xmlstream.ET.fromstring("<q xmlns='%s' real='yes'/>" % payload_ns))
            real.send()
            return str(target.xmpp.boundjid), await asyncio.wait_for(asked, 15)
        finally:
            await forger.stop()
            await target.stop()

    target_jid, answer = run(scenario())
    assert answer.get("from") == target_jid
    child = answer.find("{%s}q" % payload_ns)
    assert child is not None and child.get("real") == "yes" and child.get("forged") is None
