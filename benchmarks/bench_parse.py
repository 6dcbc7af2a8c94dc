"""Parse throughput: 100,000 Disk push iqs fed to the sans-IO core in 16 KiB chunks, down to
Notification objects, against two baselines on the same bytes: bare pyexpat with no handlers
(the ceiling) and an ElementTree XMLPullParser start/end loop with root.clear() (how slixmpp
parses).  The stream parser is measured with expat alone (``StreamParser()``) and with the
push fast path the client uses (``StreamParser(pushes=True)``, see ``yaxmpp/protocol/pushscan.py``).
Prints medians of 7 interleaved runs and the ratios; with ``--callgrind``, the instructions
each variant executes instead (slow, but the same on every run).

    python benchmarks/bench_parse.py [count]
    python benchmarks/bench_parse.py --callgrind [count]
"""

from __future__ import annotations

import os
import re
import sys
import time
from itertools import repeat
import xml.etree.ElementTree as ET
from xml.parsers import expat

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from _common import SESSION_HEADER, chunks, interleaved_medians, push_stream  # noqa: E402

from yaxmpp.protocol import ClientProtocol, PushesReceived, XYandexOAuth  # noqa: E402
from yaxmpp.protocol.disk import Notification  # noqa: E402
from yaxmpp.protocol.parser import StreamParser  # noqa: E402

CHUNK = 16 * 1024


def established_core() -> ClientProtocol:
    """A core past negotiation (driven through the real steps), ready for pushes."""
    core = ClientProtocol(XYandexOAuth("test", "0123456789abcdef"), tls=True)
    core.initiate()
    core.receive_data(
        SESSION_HEADER + b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></stream:features>"
        b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
    )
    core.data_to_send()
    core.receive_data(SESSION_HEADER + b"<stream:features/>")
    bind_id = re.search(rb' id="([^"]+)"', core.data_to_send()).group(1)  # ids are random
    core.receive_data(
        b"<iq type='result' id='%s'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>test@ya.ru/r</jid></bind></iq>"
        % bind_id
    )
    session_id = re.search(rb' id="([^"]+)"', core.data_to_send()).group(1)
    core.receive_data(b"<iq type='result' id='%s'/>" % session_id)
    assert core.established
    core.data_to_send()
    return core


def run_core(pieces, ack: bool = True, read_changes: bool = False) -> int:
    """What the client does with each read: core events -> Notification objects (as the
    driver makes them), and the acknowledgements written back."""
    core = established_core()
    count = 0
    for piece in pieces:
        now = time.time()
        notifications = []
        for event in core.receive_data(piece):
            if type(event) is PushesReceived:
                made = list(map(Notification, event.queries, repeat(now), event.iq_ids, event.senders))
                notifications += made
                if ack:
                    core.acknowledge_all(event, len(made))
        if read_changes:
            count += sum(len(notification.changes) for notification in notifications)
        else:
            count += len(notifications)
        core.data_to_send()
    return count


def run_parser_only(pieces, pushes: bool = False) -> int:
    parser = StreamParser(pushes=pushes)
    parser.feed(SESSION_HEADER)
    count = 0
    for piece in pieces:
        parser.feed(piece)
        count += len(parser.items)
        parser.items = []
    return count


def run_expat(pieces) -> int:
    parser = expat.ParserCreate(None, "}")
    parser.Parse(SESSION_HEADER, False)
    for piece in pieces:
        parser.Parse(piece, False)
    return 0


def run_pullparser(pieces) -> int:
    parser = ET.XMLPullParser(("start", "end"))
    parser.feed(SESSION_HEADER)
    depth = 0
    root = None
    count = 0
    for piece in pieces:
        parser.feed(piece)
        for event, elem in parser.read_events():
            if event == "start":
                if root is None:
                    root = elem
                depth += 1
            else:
                depth -= 1
                if depth == 1:
                    count += 1
                    root.clear()
    return count


VARIANTS = {
    "pyexpat, no handlers (ceiling)": lambda pieces: run_expat(pieces),
    "XMLPullParser loop (baseline)": lambda pieces: run_pullparser(pieces),
    "yaxmpp StreamParser, expat only": lambda pieces: run_parser_only(pieces),
    "yaxmpp StreamParser, push fast path": lambda pieces: run_parser_only(pieces, pushes=True),
    "yaxmpp core -> Notification": lambda pieces: run_core(pieces, ack=False),
    "yaxmpp core -> Notification + ack": lambda pieces: run_core(pieces),
    "  ... and reading .changes": lambda pieces: run_core(pieces, read_changes=True),
}


def instructions(variant: str, count: int) -> int:
    """Instructions executed by one variant (over a run that only builds the data), counted
    by callgrind: the same number on every run, whatever else the machine is doing."""
    import re
    import subprocess
    import tempfile

    def run(name: str) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "callgrind.out")
            subprocess.run(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, sys.executable,
                 os.path.abspath(__file__), "--one", name, str(count)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            with open(out) as f:
                return int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))

    return run(variant) - run("none")


def main_callgrind(count: int) -> None:
    counts = {name: instructions(name, count) for name in VARIANTS}
    baseline = counts["XMLPullParser loop (baseline)"]
    print("%d pushes, %d-byte chunks, instructions counted by callgrind, Python %s" % (count, CHUNK, sys.version.split()[0]))
    for name, value in counts.items():
        print("  %-36s %14d instr  %8.0f per push  %5.2fx baseline" % (name, value, value / count, baseline / value))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":  # one variant, for callgrind
        pieces = chunks(push_stream(int(sys.argv[3])), CHUNK)
        if sys.argv[2] != "none":
            VARIANTS[sys.argv[2]](pieces)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--callgrind":
        main_callgrind(int(sys.argv[2]) if len(sys.argv) > 2 else 20_000)
        return
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = push_stream(count)
    pieces = chunks(data, CHUNK)
    assert run_core(pieces, read_changes=True) == count and run_pullparser(pieces) == count
    results = interleaved_medians({name: (lambda run=run: run(pieces)) for name, run in VARIANTS.items()})
    baseline = results["XMLPullParser loop (baseline)"]
    print("%d pushes, %.1f MB, %d-byte chunks, median of 7 interleaved runs, Python %s" % (
        count, len(data) / 1e6, CHUNK, sys.version.split()[0]))
    for name, seconds in results.items():
        print("  %-36s %7.3f s  %9.0f pushes/s  %5.2fx baseline" % (name, seconds, count / seconds, baseline / seconds))


if __name__ == "__main__":
    main()
