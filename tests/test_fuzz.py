"""A bounded, seeded fuzz run of the sans-IO core in the normal suite (a few seconds).

Each input is a whole server side of a session (STARTTLS or direct TLS, zlib before or after
authentication or refused, SASL challenges, pushes, pings, version queries, answers to our own
iqs, stream errors, closes), mutated and fed in random reads, with driver calls in between; see
``tests/fuzz_corpus.py`` for the inputs and the oracles, and ``tools/fuzz_core.py`` for the long
run.  A failure message carries the failing case as a Python literal: paste it into
``fuzz_corpus.run_case(...)`` to replay it.
"""

from __future__ import annotations

from collections import Counter
from typing import Dict, List, Tuple

import pytest

from . import fuzz_corpus as fc

SEED = 20261201
INPUTS = 3000


@pytest.fixture(scope="module")
def fuzz_run() -> Tuple[Dict[str, List[Tuple[fc.Case, fc.Failure]]], Counter]:
    """Every input once; the failures by oracle letter, and the paths reached."""
    fc.REACHED.clear()
    found: Dict[str, List[Tuple[fc.Case, fc.Failure]]] = {}
    seen = set()
    for index in range(INPUTS):
        case = fc.make_case(SEED, index)
        for failure in fc.run_case(case):
            if failure.signature not in seen:
                seen.add(failure.signature)
                found.setdefault(failure.oracle[0], []).append((case, failure))
    return found, Counter(fc.REACHED)


def _report(failures: List[Tuple[fc.Case, fc.Failure]]) -> str:
    lines = ["%d distinct failure(s):" % len(failures)]
    for case, failure in failures[:6]:
        lines.append("- %s\n  %s\n  replay: run_case(%s)" % (failure.signature, failure.detail[:600], case.literal()[:1500]))
    return "\n".join(lines)


def test_the_fuzzer_reaches_every_path(fuzz_run):
    _, reached = fuzz_run
    wanted = {
        "TLSRequested": 50,
        "CompressionRequested": 20,
        "compressed": 20,
        "Authenticated": 100,
        "challenge-answered": 20,
        "Bound": 50,
        "SessionStarted": 50,
        "PushesReceived": 50,
        "RequestAnswered": 50,
        "StanzaReceived": 50,
        "send_iq": 20,
        "IqResponse": 1,
        "closed:NoneType": 1,  # we closed, the server answered
        "closed:StreamError": 10,
        "closed:AuthError": 10,
        "closed:IqError": 5,
        "closed:TLSError": 5,
        "closed:ConnectionLost": 50,
        "closed:ProtocolError": 100,
    }
    short = {k: (reached[k], n) for k, n in wanted.items() if reached[k] < n}
    assert not short, "paths reached too seldom (reached, wanted): %r" % short


def test_no_exception_escapes_the_core(fuzz_run):
    """(a) receive_data(), connection_lost() and driver calls made in their step never raise."""
    found, _ = fuzz_run
    failures = found.get("a", [])
    assert not failures, _report(failures)


def test_one_stream_closed_and_nothing_after_it(fuzz_run):
    """(b) exactly one StreamClosed once the stream ended, and no event after it."""
    found, _ = fuzz_run
    failures = found.get("b", [])
    assert not failures, _report(failures)


def test_no_piece_of_a_secret_in_errors_or_debug_logs(fuzz_run):
    """(c) no 8 characters of the token, of base64(login NUL token) or of a custom mechanism's
    secret in an error's message/args/repr/fields or a formatted DEBUG line."""
    found, _ = fuzz_run
    failures = found.get("c", [])
    assert not failures, _report(failures)


def test_nothing_written_after_our_close_nor_secrets_before_tls(fuzz_run):
    """(e) the wire: nothing after our </stream:stream>, no secret while the stream is plain."""
    found, _ = fuzz_run
    failures = found.get("e", [])
    assert not failures, _report(failures)


def test_nothing_is_trusted_before_tls_and_authentication(fuzz_run):
    """(h) no authentication without TLS; no push, stanza or iq answer before authentication; no
    push from another user."""
    found, _ = fuzz_run
    failures = found.get("h", [])
    assert not failures, _report(failures)


def test_read_boundaries_do_not_change_the_events(fuzz_run):
    """(g) the same bytes fed whole and in random pieces give the same events."""
    found, _ = fuzz_run
    failures = found.get("g", [])
    assert not failures, _report(failures)


# -- the oracles themselves catch what they should ----------------------------------------------


def test_find_leak_sees_any_eight_characters_of_a_secret():
    assert fc.find_leak("id='%s'" % fc.TOKEN[5:13]) == ("token", "piece")
    assert fc.find_leak("x" + fc.PAYLOAD + "y") == ("payload", "full")
    assert fc.find_leak(fc.TOKEN[:7] + "-" + fc.TOKEN[7:14]) is None
    assert fc.find_leak(fc.CUSTOM_SECRET[2:10], fc.CUSTOM_PIECES) == ("custom", "piece")


def test_the_harness_reports_an_exception_a_leak_and_a_missing_close(monkeypatch):
    from yaxmpp.protocol.core import ClientProtocol

    case = fc.Case(
        {"tls": True, "compress": False, "mech": "yandex", "initial": None, "debug": True, "limits": None, "stanzas": 0, "diff": False},
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"
        b"<stream:features/><presence/>",
        1,
    )
    original = ClientProtocol.receive_data

    def broken(self, data):  # type: ignore[no-untyped-def]
        if b"<presence" in data:
            raise KeyError("boom " + fc.TOKEN[3:11])
        return original(self, data)

    monkeypatch.setattr(ClientProtocol, "receive_data", broken)
    monkeypatch.setattr(ClientProtocol, "connection_lost", lambda self, error=None: [])
    # Whole reads only, so that <presence/> arrives in the read that raises.
    monkeypatch.setattr(fc.Run, "chunks", lambda self, size: (lambda: size or 1))
    oracles = {f.oracle for f in fc.Run(case).play()}
    assert {"a", "b", "c"} <= oracles
