"""Parse throughput: 100,000 Disk push iqs fed to the sans-IO core in 16 KiB chunks, down to
Notification objects, against two baselines on the same bytes: bare pyexpat with no handlers
(the ceiling) and an ElementTree XMLPullParser start/end loop with root.clear() (how slixmpp
parses).  Prints medians of 5 runs and the ratios.

    python benchmarks/bench_parse.py [count]
"""

from __future__ import annotations

import os
import sys
import time
import xml.etree.ElementTree as ET
from xml.parsers import expat

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from _common import SESSION_HEADER, chunks, median_time, push_stream  # noqa: E402

from yaxmpp.protocol import ClientProtocol, PushReceived, XYandexOAuth  # noqa: E402
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
    core.receive_data(
        SESSION_HEADER + b"<stream:features/><iq type='result' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
        b"<jid>test@ya.ru/r</jid></bind></iq><iq type='result' id='session_1'/>"
    )
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
        for event in core.receive_data(piece):
            if type(event) is PushReceived:
                notification = Notification(event.query, now, event.iq_id, event.sender)
                if ack:
                    core.acknowledge(event.iq_id, event.sender)
                count += len(notification.changes) if read_changes else 1
        core.data_to_send()
    return count


def run_parser_only(pieces) -> int:
    parser = StreamParser()
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


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = push_stream(count)
    pieces = chunks(data, CHUNK)
    assert run_core(pieces, read_changes=True) == count and run_pullparser(pieces) == count
    results = {
        "pyexpat, no handlers (ceiling)": median_time(lambda: run_expat(pieces)),
        "XMLPullParser loop (baseline)": median_time(lambda: run_pullparser(pieces)),
        "yaxmpp StreamParser only": median_time(lambda: run_parser_only(pieces)),
        "yaxmpp core -> Notification": median_time(lambda: run_core(pieces, ack=False)),
        "yaxmpp core -> Notification + ack": median_time(lambda: run_core(pieces)),
        "  ... and reading .changes": median_time(lambda: run_core(pieces, read_changes=True)),
    }
    baseline = results["XMLPullParser loop (baseline)"]
    print("%d pushes, %.1f MB, %d-byte chunks, median of 5 runs, Python %s" % (
        count, len(data) / 1e6, CHUNK, sys.version.split()[0]))
    for name, seconds in results.items():
        print("  %-36s %7.3f s  %9.0f pushes/s  %5.2fx baseline" % (name, seconds, count / seconds, baseline / seconds))


if __name__ == "__main__":
    main()
