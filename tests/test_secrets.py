"""The token, whole or in part, never shows: not in errors (str, repr, args, pickles), log
lines (tracebacks included), reprs, or the command's output, whatever a hostile server echoes;
and masking is per client, with nothing global left behind."""

from __future__ import annotations

import base64
import gc
import io
import logging
import pickle
import random
import threading
import weakref
from typing import Any, Callable, Iterable, Iterator, List, Optional

import pytest

import yaxmpp
from yaxmpp import AuthError, ConnectError, IqError, ProtocolError, StreamError, SubscribeError, Timeout
from yaxmpp.protocol import redact
from yaxmpp.protocol.core import ClientProtocol
from yaxmpp.protocol.events import IqResponse
from yaxmpp.protocol.redact import MASK, LogRedactor, Redactor, Secret, bound, current
from yaxmpp.protocol.sasl import Mechanism, Plain, XYandexOAuth

from . import test_core as core_script
from .conftest import LOGIN, TOKEN
from .secrets_check import assert_error_clean, assert_no_secret, half, pieces
from .test_core import FEATURES_AUTH, Driver, closed_error, established, server_header

CORE_TOKEN = core_script.TOKEN  # the token test_core's Driver authenticates with
HALF = half(CORE_TOKEN)
OTHER_HALF = half(CORE_TOKEN, first=False)
PAYLOAD = base64.b64encode(("%s\0%s" % (LOGIN, CORE_TOKEN)).encode()).decode()


def core_clean(error: BaseException) -> BaseException:
    return assert_error_clean(error, CORE_TOKEN, LOGIN)


@pytest.fixture
def formatted() -> Iterator[io.StringIO]:
    """What a real handler with a real Formatter writes for the yaxmpp loggers."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("yaxmpp", "yaxmpp.xml")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(loggers, levels):
        logger.removeHandler(handler)
        logger.setLevel(level)


# -- the Redactor -------------------------------------------------------------------------


def test_whole_token_and_any_piece_of_eight_are_masked():
    r = Redactor([TOKEN])
    assert r.scrub("a %s b" % TOKEN) == "a %s b" % MASK
    assert r.scrub("x" + half(TOKEN) + "y") == "x%sy" % MASK
    assert r.scrub("<" + TOKEN[5:13] + ">") == "<%s>" % MASK
    # Two pieces apart are two masks; overlapping or adjacent pieces make one.
    assert r.scrub(TOKEN[:8] + " " + TOKEN[20:30]) == "%s %s" % (MASK, MASK)
    assert r.scrub(TOKEN[:10] + TOKEN[4:20]) == MASK
    # Seven characters are not a piece.
    assert r.scrub("<" + TOKEN[5:12] + ">") == "<" + TOKEN[5:12] + ">"
    assert r.scrub("nothing here") == "nothing here"


def test_short_secrets_are_masked_whole_or_not_at_all():
    r = Redactor(["abc", "sixsix", "sevenss"])
    assert r.scrub("abc sixsix sevenss") == "abc %s %s" % (MASK, MASK)
    assert r.scrub("sixsi evenss") == "sixsi evenss"  # pieces of a short secret are not masked


def test_pieces_match_a_brute_force_reference():
    rng = random.Random(7)

    def reference(text: str, secret: str) -> str:
        grams = {secret[i : i + 8] for i in range(len(secret) - 7)}
        hidden = [False] * len(text)
        for i in range(len(text) - 7):
            if text[i : i + 8] in grams:
                hidden[i : i + 8] = [True] * 8
        out, i = [], 0
        while i < len(text):
            if hidden[i]:
                while i < len(text) and hidden[i]:
                    i += 1
                out.append(MASK)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    # Texts in Latin-1 and not (two ways to chunk them), secrets in Latin-1 and not.
    for trial in range(1500):
        alphabet = "0123456789abcdef" + ("" if trial % 3 else "\u044b\xe9\U0001f600")
        secret = "".join(rng.choice(alphabet) for _ in range(rng.randint(8, 40)))
        parts = []
        for _ in range(rng.randint(0, 6)):
            if rng.random() < 0.5:
                a = rng.randint(0, len(secret) - 1)
                parts.append(secret[a : rng.randint(a, len(secret))])
            else:
                noise = "0123456789abcdef <>='" + ("\u20ac\xe9" if trial % 2 else "")
                parts.append("".join(rng.choice(noise) for _ in range(rng.randint(0, 12))))
        text = "".join(parts)
        assert Redactor([secret]).scrub(text) == reference(text, secret)
    # Pieces across the 4 KiB blocks a long text is looked at in.
    r = Redactor([TOKEN])
    for offset in range(4080, 4100):
        assert r.scrub("x" * offset + TOKEN[3:20] + "y") == "x" * offset + MASK + "y"
        assert r.scrub("\u20ac" * offset + TOKEN[3:20] + "y") == "\u20ac" * offset + MASK + "y"


def test_the_mechanism_redactor_masks_the_payload_and_the_base64_token_in_part():
    r = Redactor.for_mechanism(XYandexOAuth(LOGIN, TOKEN))
    payload = base64.b64encode(("%s\0%s" % (LOGIN, TOKEN)).encode()).decode()
    for echoed in (TOKEN, half(TOKEN, first=False), payload, payload[6:20], base64.b64encode(TOKEN.encode()).decode()):
        assert_no_secret(r.scrub("<%s/>" % echoed), TOKEN, LOGIN)
    for shift in (b"", b"a", b"ab"):  # base64 of the token at each alignment, inside other data
        assert_no_secret(r.scrub(base64.b64encode(shift + TOKEN.encode() + b"tail").decode()), TOKEN)


def test_echoes_in_another_case_or_encoding_are_masked():
    r = Redactor.for_mechanism(XYandexOAuth(LOGIN, TOKEN))
    raw = TOKEN.encode()
    echoes = [
        TOKEN.upper(),
        TOKEN.swapcase(),
        half(TOKEN).upper(),
        raw.hex(),
        raw.hex().upper(),
        raw[5:20].hex(),
        base64.urlsafe_b64encode(raw).decode(),
        base64.urlsafe_b64encode(b"?>" + raw).decode(),  # '-' and '_' where base64 has '+' '/'
    ]
    for echoed in echoes:
        masked = r.scrub("id='%s'" % echoed)
        assert masked.startswith("id='") and MASK in masked, echoed
        low = masked.lower()
        for piece in pieces(TOKEN.lower()):
            assert piece not in low
        assert raw.hex()[4:20] not in low
    # A letter whose lower case is two characters must not shift what is masked.
    assert r.scrub("İİ %s end" % TOKEN.upper()) == "İİ %s end" % MASK
    # The HTTPS client's redactor has the same encodings.
    assert MASK in Redactor.with_encodings([TOKEN]).scrub(raw.hex().upper())


def test_a_custom_mechanism_secrets_are_honoured():
    class Ticket(Mechanism):
        name = "X-TICKET"

        def initial_response(self) -> Optional[bytes]:
            return b"ticket:" + b"Zm9vYmFyYmF6cXV1eA"

        def secrets(self) -> Iterable[str]:
            return ("a-custom-secret-value", Secret("another-one-in-a-secret"))

    proto = ClientProtocol(Ticket(), tls=True)
    text = proto.redactor.scrub("a-custom-secret-value / custom-secret / another-one / " + base64.b64encode(b"ticket:Zm9vYmFyYmF6cXV1eA").decode())
    assert "custom-s" not in text and "another-" not in text and "dGlja2V0" not in text
    assert text.count(MASK) == 4


def test_a_redactor_shows_and_pickles_no_secret():
    r = Redactor.for_mechanism(Plain(LOGIN, TOKEN))
    assert_no_secret(repr(r) + str(r), TOKEN, LOGIN)
    with pytest.raises(TypeError):
        pickle.dumps(r)
    assert not Redactor() and Redactor([TOKEN])


def test_scrub_error_masks_args_attributes_pickles_and_chained_errors():
    r = Redactor([TOKEN])
    errors: List[BaseException] = [
        IqError("iq yx1", "x" + half(TOKEN), "t" + TOKEN[3:14], "text " + TOKEN),
        SubscribeError("c" + half(TOKEN, first=False), "cancel", TOKEN[1:9]),
        AuthError(TOKEN[:12], "bad " + TOKEN),
        StreamError("see-other-host", "go " + TOKEN[2:30], "h" + TOKEN[:10] + ".example"),
        ProtocolError("unexpected <x%s> while authenticating" % half(TOKEN)),
        ConnectError("cannot reach %s" % TOKEN[4:16], "h" + TOKEN[:9], 5222),
        Timeout("no answer while %s" % TOKEN[:11], "waiting " + TOKEN[11:22]),
    ]
    for error in errors:
        assert r.scrub_error(error) is error
        copy = assert_error_clean(error, TOKEN)
        assert vars(copy) == vars(error)
    outer = ProtocolError("outer")
    try:
        try:
            raise ValueError("inner " + TOKEN)
        except ValueError as inner:
            raise outer from inner
    except ProtocolError:
        pass
    r.scrub_error(outer)
    assert_no_secret(repr(outer.__cause__), TOKEN)


# -- the core's errors, from a hostile server -------------------------------------------


def iq_error_answer(iq_id: str, condition: str, type_: str = "cancel", text: str = "") -> bytes:
    body = "<%s xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>" % condition
    if text:
        body += "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>%s</text>" % text
    return ("<iq type='error' id='%s'><error type='%s'>%s</error></iq>" % (iq_id, type_, body)).encode()


@pytest.mark.parametrize(
    "condition, type_, text",
    [
        ("x" + HALF, "cancel", ""),
        ("x" + OTHER_HALF, "t" + HALF, "echo " + CORE_TOKEN),
        ("not-allowed", "cancel", "half " + OTHER_HALF + " and payload " + PAYLOAD[5:25]),
    ],
)
def test_iq_and_subscribe_errors_built_from_a_hostile_answer_are_masked(condition, type_, text):
    driver = established()
    iq_id = driver.proto.send_iq("set", "<s xmlns='yandex:push:disk'/>", to="test@ya.ru")
    driver.out()
    (response,) = driver.feed(iq_error_answer(iq_id, condition, type_, text))
    assert isinstance(response, IqResponse) and isinstance(response.error, IqError)
    error = response.error
    core_clean(error)
    assert MASK in str(error) + error.type if condition != "not-allowed" else MASK in str(error)
    # The client turns the refused subscription into a SubscribeError from these fields.
    core_clean(SubscribeError(error.condition, error.type, error.text))


@pytest.mark.parametrize("echo", [HALF, OTHER_HALF, CORE_TOKEN, PAYLOAD[3:30]])
def test_auth_error_condition_and_text_are_masked(echo):
    driver = Driver(tls=True)
    driver.exchange(server_header() + FEATURES_AUTH)
    error = closed_error(
        driver.feed(
            b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><x"
            + echo.replace("+", "").replace("/", "").encode()
            + b"/><text>bad "
            + echo.encode()
            + b"</text></failure>"
        )
    )
    assert isinstance(error, AuthError)
    core_clean(error)
    assert error.condition.startswith("x") and MASK in error.condition


def test_stream_error_condition_text_and_other_host_are_masked():
    driver = established()
    error = closed_error(
        driver.feed(
            b"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>h"
            + HALF.encode()
            + b".example</see-other-host><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>"
            + OTHER_HALF.encode()
            + b"</text></stream:error>"
        )
    )
    assert isinstance(error, StreamError) and error.other_host == "h%s.example" % MASK
    core_clean(error)
    driver = established()
    error = closed_error(
        driver.feed(b"<stream:error><y%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>" % OTHER_HALF.encode())
    )
    assert isinstance(error, StreamError) and error.condition == "y" + MASK
    core_clean(error)


def test_protocol_error_naming_a_hostile_element_is_masked():
    driver = Driver(tls=False)
    driver.exchange(server_header() + core_script.FEATURES_TLS)
    error = closed_error(driver.feed(b"<z%s/>" % HALF.encode()))
    assert isinstance(error, ProtocolError)
    core_clean(error)


def test_an_error_from_the_driver_is_masked_too():
    driver = established()
    (closed,) = driver.proto.connection_lost(ProtocolError("internal error: %r" % (HALF,)))
    core_clean(closed.error)


def test_debug_xml_lines_mask_partial_echoes(formatted, caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    driver = established()
    driver.exchange(
        b"<message from='%s@ya.ru'><body>%s and %s</body><x%s/></message>"
        % (HALF.encode(), OTHER_HALF.encode(), PAYLOAD[4:20].encode(), CORE_TOKEN[3:15].encode())
    )
    driver.exchange(b"<iq type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>" % OTHER_HALF.encode())
    lines = [r.getMessage() for r in caplog.records if r.name == "yaxmpp.xml"]
    assert any(m.startswith("RECV <message") for m in lines) and any(m.startswith("SEND <iq") for m in lines)
    assert_no_secret(lines, CORE_TOKEN, LOGIN)
    assert_no_secret(formatted.getvalue(), CORE_TOKEN, LOGIN)


def test_compression_refusal_warning_masks_its_condition(caplog):
    caplog.set_level(logging.WARNING, logger="yaxmpp")
    driver = Driver(tls=True, compress=True)
    driver.exchange(server_header() + FEATURES_AUTH)
    assert b"<compress" in driver.wire
    driver.feed(b"<failure xmlns='http://jabber.org/protocol/compress'><c%s/></failure>" % HALF.encode())
    messages = [r.getMessage() for r in caplog.records]
    assert any("refused compression" in m for m in messages)
    assert_no_secret(messages, CORE_TOKEN)


# -- log records ----------------------------------------------------------------------------


def test_a_traceback_carrying_the_token_is_masked(formatted):
    log = logging.getLogger("yaxmpp")
    r = Redactor([TOKEN])
    with bound(r):
        try:
            try:
                raise KeyError("first " + half(TOKEN))
            except KeyError as exc:
                raise ValueError("bad token %s" % TOKEN) from exc
        except ValueError:
            log.exception("the reader failed with %s", TOKEN[:12])
    text = formatted.getvalue()
    assert "Traceback" in text and "ValueError: bad token %s" % MASK in text and "KeyError" in text
    assert_no_secret(text, TOKEN)


def test_a_record_names_its_redactor_with_extra(formatted):
    log = logging.getLogger("yaxmpp")
    r = Redactor([TOKEN])
    assert current() is None
    try:
        raise RuntimeError(TOKEN)
    except RuntimeError:
        log.warning("echo %s", half(TOKEN), exc_info=True, stack_info=True, extra={redact.RECORD_ATTRIBUTE: r})
    text = formatted.getvalue()
    assert "RuntimeError: ***" in text and "Stack (most recent call last)" in text
    assert_no_secret(text, TOKEN)
    # The record does not keep the redactor (and its secrets) alive.
    record = logging.LogRecord("yaxmpp", logging.INFO, __file__, 1, "x %s", (TOKEN,), None)
    record.__dict__[redact.RECORD_ATTRIBUTE] = r
    assert LogRedactor().filter(record) and record.getMessage() == "x ***"
    assert not hasattr(record, redact.RECORD_ATTRIBUTE)


def test_bindings_nest_and_belong_to_their_thread(formatted):
    log = logging.getLogger("yaxmpp")
    outer, inner = Redactor(["OUTER-SECRET-VALUE"]), Redactor(["inner_hidden_thing"])
    seen: List[str] = []
    with bound(outer):
        with bound(inner):
            assert current() is inner
            log.warning("%s %s", "OUTER-SECRET-VALUE", "inner_hidden_thing")
            other = threading.Thread(target=lambda: seen.append(str(current())))
            other.start()
            other.join()
        assert current() is outer
        with bound(outer):  # binding again is harmless
            pass
        assert current() is outer
    assert current() is None and seen == ["None"]
    log.warning("after: %s", "inner_hidden_thing")
    lines = formatted.getvalue().splitlines()
    assert lines[0] == "yaxmpp WARNING *** ***"
    assert lines[1] == "yaxmpp WARNING after: inner_hidden_thing"  # nothing bound any more


def test_a_record_with_a_broken_format_shows_no_secret(formatted, capsys):
    with bound(Redactor([TOKEN])):
        logging.getLogger("yaxmpp").warning("%d", TOKEN)
    assert_no_secret(formatted.getvalue() + "".join(capsys.readouterr()), TOKEN)


def test_the_filter_is_on_every_yaxmpp_logger_once():
    import yaxmpp.cli  # noqa: F401  (every module that may name a logger)
    import yaxmpp.demo  # noqa: F401
    import yaxmpp.testing  # noqa: F401

    names = [
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if (name == "yaxmpp" or name.startswith("yaxmpp.")) and isinstance(logger, logging.Logger)
    ]
    assert {"yaxmpp", "yaxmpp.xml", "yaxmpp.testing"} <= set(names)
    for name in names:  # a logger's filters do not apply to its children's records
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, LogRedactor)]
        assert len(filters) == 1, "logger %s: add it to redact.install() in yaxmpp/__init__.py" % name
    redact.install("yaxmpp")
    assert len([f for f in logging.getLogger("yaxmpp").filters if isinstance(f, LogRedactor)]) == 1


# -- per client: nothing global, no cost per client -------------------------------------------


def module_containers() -> dict:
    """The size of every container held by the redaction and SASL modules."""
    from yaxmpp.protocol import sasl

    sizes = {}
    for module in (redact, sasl):
        for name, value in vars(module).items():
            if isinstance(value, (set, frozenset, dict, list, tuple)) and not name.startswith("__"):
                sizes["%s.%s" % (module.__name__, name)] = len(value)
    return sizes


def test_a_thousand_dropped_clients_leave_nothing_behind():
    before = module_containers()
    refs = []
    for i in range(1000):
        token = "%032x" % random.getrandbits(128)
        proto = ClientProtocol(XYandexOAuth(LOGIN, token), tls=True)
        refs.append(weakref.ref(proto.redactor))
        with bound(proto.redactor):
            logging.getLogger("yaxmpp").debug("client %d", i)
        del proto
    gc.collect()
    assert [r for r in refs if r() is not None] == []
    assert module_containers() == before
    assert current() is None


def test_a_log_record_costs_the_same_however_many_clients_exist(monkeypatch):
    clients = [ClientProtocol(XYandexOAuth(LOGIN, "%032x" % i), tls=True) for i in range(1000)]
    calls = []
    scrub = Redactor.scrub

    def counting(self: Redactor, text: str) -> str:
        calls.append(self)
        return scrub(self, text)

    monkeypatch.setattr(Redactor, "scrub", counting)
    record = logging.LogRecord("yaxmpp", logging.INFO, __file__, 1, "hello %s", ("x" * 200,), None)
    LogRedactor().filter(record)
    assert calls == []  # no client bound: nothing to do
    with bound(clients[500].redactor):
        LogRedactor().filter(record)
    assert calls == [clients[500].redactor]


def test_mechanisms_register_nothing():
    before = module_containers()
    XYandexOAuth(LOGIN, "f" * 40)
    Plain(LOGIN, "g" * 40)
    assert module_containers() == before
    assert not hasattr(redact, "register") and not hasattr(redact, "_known")


# -- through the client and the command ------------------------------------------------------


def assert_client_error_clean(error: BaseException) -> None:
    assert_error_clean(error, TOKEN, LOGIN)


def test_subscription_refused_with_a_hostile_condition(make_server, make_client, caplog, formatted):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    server = make_server(subscribe_error="x" + half(TOKEN))
    with pytest.raises(yaxmpp.SubscribeError) as info:
        make_client(server).connect()
    assert info.value.condition == "x" + MASK
    assert_client_error_clean(info.value)
    assert_no_secret([r.getMessage() for r in caplog.records] + [formatted.getvalue()], TOKEN, LOGIN)


def test_auth_refused_with_a_hostile_condition(make_server, make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    server = make_server(token="a-different-token-42", auth_failure="x" + half(TOKEN, first=False))
    with pytest.raises(yaxmpp.AuthError) as info:
        make_client(server).connect()
    assert info.value.condition == "x" + MASK
    assert_client_error_clean(info.value)
    assert_no_secret(caplog.text, TOKEN, LOGIN)


def test_stream_error_with_a_hostile_condition_ends_the_session_masked(server, make_client, caplog, formatted):
    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    client = make_client(server).connect()
    session = server.wait_for_session()
    assert session.subscribed.wait(5)
    session.send(
        "<stream:error><x%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
        "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>%s</text></stream:error></stream:stream>"
        % (half(TOKEN), half(TOKEN, first=False))
    )
    with pytest.raises(yaxmpp.StreamError) as info:
        client.get_notification(timeout=5)
    assert_client_error_clean(info.value)
    client.close(timeout=2)
    assert_no_secret([r.getMessage() for r in caplog.records] + [formatted.getvalue(), repr(client)], TOKEN, LOGIN)


def test_the_command_shows_no_piece_of_the_token(make_server):
    from .test_cli import cli_env, run_cli, watch_args

    server = make_server(subscribe_error="x" + half(TOKEN))
    code, out, err = run_cli(watch_args(server.client_options(), "-vv"), cli_env(TOKEN))
    assert code != 0 and "subscription" in err, err
    assert "SEND <auth " in err
    assert_no_secret(out + err, TOKEN, LOGIN)


def test_half_the_token_echoed_as_the_stream_id_is_not_logged(caplog, formatted):
    from .scripted import ScriptedServer
    from .test_hostile import negotiating_server, scripted_client

    caplog.set_level(logging.DEBUG, logger="yaxmpp")
    script = negotiating_server(stream_ids={"tls_stream": "a" + half(TOKEN), "auth_stream": "b" + half(TOKEN, first=False)})
    with ScriptedServer(script) as scripted:
        client = scripted_client(scripted.port)
        try:
            client.connect()
            text = repr(client)
        finally:
            script.halt.set()  # type: ignore[attr-defined]
            client.close(timeout=2)
    assert any("stream opened" in r.getMessage() for r in caplog.records)
    assert_no_secret([r.getMessage() for r in caplog.records] + [formatted.getvalue(), text], TOKEN, LOGIN)
