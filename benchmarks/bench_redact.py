"""Cost of masking secrets: Redactor.scrub on texts of several sizes (nothing to mask, and a
half token echoed in the middle), the log filter on one record with 1 and with 1,000 clients
in the process, and building one client's redactor.

    python benchmarks/bench_redact.py
"""

from __future__ import annotations

import logging
import os
import sys
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from _common import push_stream  # noqa: E402

from yaxmpp.protocol.core import ClientProtocol  # noqa: E402
from yaxmpp.protocol.redact import LogRedactor, Redactor, bound  # noqa: E402
from yaxmpp.protocol.sasl import XYandexOAuth  # noqa: E402

TOKEN = "0c4181a7c2cf4521964a72ff57a34a07"


def per_call(function: "object", number: int) -> float:
    """Best of 5 rounds, in microseconds per call."""
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    redactor = Redactor.for_mechanism(XYandexOAuth("test", TOKEN))
    line = "RECV " + push_stream(1).decode()
    print("scrub (one client: token, its base64, base64url and hex forms, SASL payload)")
    for size in (len(line), 4096, 65536):
        text = (line * (size // len(line) + 1))[:size]
        echoed = text[: size // 2] + TOKEN[:16] + text[size // 2 :]
        clean = per_call(lambda: redactor.scrub(text), max(1, 200000 // size))
        dirty = per_call(lambda: redactor.scrub(echoed), max(1, 200000 // size))
        print("  %6d chars: nothing to mask %8.2f us (%.1f ns/char); a half token echoed %8.2f us" % (size, clean, clean * 1000 / size, dirty))

    record = logging.LogRecord("yaxmpp", logging.INFO, __file__, 1, "answered the server's %s request (id %s)", ("ping", "ping_123"), None)
    log_filter = LogRedactor()
    one = ClientProtocol(XYandexOAuth("test", TOKEN), tls=True)
    unbound = per_call(lambda: log_filter.filter(record), 100000)
    with bound(one.redactor):
        single = per_call(lambda: log_filter.filter(record), 100000)
    many = [ClientProtocol(XYandexOAuth("test", "%032x" % i), tls=True) for i in range(1000)]
    with bound(many[-1].redactor):
        thousand = per_call(lambda: log_filter.filter(record), 100000)
    print("log filter, one INFO record: no client bound %.2f us; 1 client %.2f us; 1,000 clients %.2f us" % (unbound, single, thousand))
    build = per_call(lambda: Redactor.for_mechanism(XYandexOAuth("test", TOKEN)), 2000)
    print("Redactor.for_mechanism: %.1f us" % build)
    del many


if __name__ == "__main__":
    main()
