"""Connect round trips: how many network round trips ``Client.connect()`` costs.

A loopback TCP proxy in this script holds every chunk for a fixed delay in each direction
(25 ms and 50 ms one way by default, so RTT = 50 / 100 ms), in order and without busy-waiting,
between the client and the stand-in server (``python -m yaxmpp.testing``, a separate process).
``connect()`` is timed for the STARTTLS path (port=proxy, tls_port=None) and the direct-TLS
path (port=None, tls_port=proxy), with subscribe on and off; the same proxy with 0 added delay
(and no proxy at all) is the baseline measured in the same run.  Each figure is the median of
``runs`` connects (default 7, after one warm-up).

The measured round trips are ``(t(delay) - t(0 delay)) / RTT``, and, free of any fixed cost,
the slope between the two delays; the proxy also counts the client->server->client turns it
carried before connect() returned.  Both are compared with the round trips the protocol needs,
step by step (printed).  The client's TCP handshake with the proxy is not delayed (the kernel
answers it), so it is not counted; over a real network it adds one more RTT.

    python benchmarks/bench_connect.py [one_way_ms[,one_way_ms...]] [runs]
"""

from __future__ import annotations

import os
import queue
import socket
import statistics
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

import yaxmpp  # noqa: E402
from _common import start_standin, stop_standin  # noqa: E402

# -- the delaying proxy -------------------------------------------------------------------------


class DelayProxy:
    """Forwards 127.0.0.1:<port> to ``target``; every chunk read in either direction is written
    ``delay`` seconds after it was read, in order.  Per direction one thread reads and one
    writes; the writer sleeps until each chunk is due (no polling).  ``trace`` records
    (time read, direction, bytes) for every chunk; direction is "c>s" or "s>c"."""

    def __init__(self, target: Tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.trace: List[Tuple[float, str, int]] = []
        self._trace_lock = threading.Lock()
        self._sockets: List[socket.socket] = []
        self._closed = False
        self._threads: List[threading.Thread] = []
        self._start(self._accept_loop, "proxy-accept")

    def _start(self, target, name, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._sockets.append(s)
            for src, dst, direction in ((client, server, "c>s"), (server, client, "s>c")):
                chunks: "queue.Queue[Tuple[float, Optional[bytes]]]" = queue.Queue()
                self._start(self._read, "proxy-read", src, chunks, direction)
                self._start(self._write, "proxy-write", dst, chunks)

    def _read(self, src: socket.socket, chunks: "queue.Queue[Tuple[float, Optional[bytes]]]", direction: str) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            now = time.monotonic()
            if data:
                with self._trace_lock:
                    self.trace.append((now, direction, len(data)))
            chunks.put((now + self.delay, data or None))
            if not data:
                return

    def _write(self, dst: socket.socket, chunks: "queue.Queue[Tuple[float, Optional[bytes]]]") -> None:
        while True:
            due, data = chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if data is None:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return

    def trace_since(self, start: float, end: float) -> List[Tuple[float, str, int]]:
        with self._trace_lock:
            return [t for t in self.trace if start <= t[0] <= end]

    def close(self) -> None:
        self.listener.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass


def turns(trace: List[Tuple[float, str, int]]) -> int:
    """Client->server flights answered by a server->client flight: the round trips seen."""
    count = 0
    previous = None
    for _, direction, _ in trace:
        if direction == "s>c" and previous == "c>s":
            count += 1
        previous = direction
    return count


def flights(trace: List[Tuple[float, str, int]], start: float, rtt: float, steps: List[str]) -> List[str]:
    """The trace folded into flights (runs of one direction), each client flight labelled with
    the protocol step it starts when the number of turns matches the steps."""
    out: List[Tuple[str, int, int, float]] = []
    for when, direction, size in trace:
        if out and out[-1][0] == direction:
            d, n, b, t = out[-1]
            out[-1] = (d, n + 1, b + size, t)
        else:
            out.append((direction, 1, size, when))
    label = turns(trace) == len(steps)
    lines = []
    index = 0
    for d, n, b, t in out:
        line = "%s %d chunk(s) %5d B at %5.2f RTT" % (d, n, b, (t - start) / rtt)
        if d == "c>s" and label and index < len(steps):
            line += "   " + steps[index]
            index += 1
        lines.append(line)
    if not label:
        lines.append("(%d turns, %d protocol steps: not labelled)" % (turns(trace), len(steps)))
    return lines


# -- the stand-in server ------------------------------------------------------------------------






# -- the protocol's round trips -------------------------------------------------------------------

STEPS = [
    # (step, STARTTLS path, direct-TLS path)
    ("TCP connect (kernel; not delayed by the proxy)", 0, 0),
    ("TLS handshake on connect (TLS 1.3: 1 RTT)", 0, 1),
    ("stream header -> header + features", 1, 1),
    ("<starttls/> -> <proceed/>", 1, 0),
    ("TLS handshake after <proceed/> (TLS 1.3: 1 RTT)", 1, 0),
    ("stream restart over TLS -> header + features", 1, 0),
    ("<auth/> -> <success/>", 1, 1),
    ("stream restart after auth -> header + features", 1, 1),
    ("bind iq -> result", 1, 1),
    ("session iq -> result", 1, 1),
    ("Disk subscription iq -> result (subscribe=True)", 1, 1),
]


def step_names(starttls: bool, subscribe: bool) -> List[str]:
    column = 1 if starttls else 2
    names = [step[0] for step in STEPS if step[column]]
    return names if subscribe else names[:-1]


def expected(starttls: bool, subscribe: bool) -> int:
    column = 1 if starttls else 2
    total = sum(step[column] for step in STEPS)
    return total if subscribe else total - 1


# -- measuring --------------------------------------------------------------------------------


def connect_once(options: Dict[str, object], port: int, starttls: bool, subscribe: bool) -> Tuple[float, float, float, str]:
    """(seconds, monotonic start, monotonic end, TLS version) of one connect()."""
    client = yaxmpp.Client(
        str(options["login"]),
        str(options["token"]),
        host=str(options["host"]),
        port=port if starttls else None,
        tls_port=None if starttls else port,
        domain=str(options["domain"]),
        cafile=str(options["cafile"]),
        subscribe=subscribe,
        timeout=30,
    )
    start = time.monotonic()
    client.connect()
    end = time.monotonic()
    version = client.tls_version or "?"
    client.close()
    return end - start, start, end, version


def main() -> None:
    delays_ms = [float(x) for x in (sys.argv[1] if len(sys.argv) > 1 else "25,50").split(",")]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    server, options = start_standin()
    paths = [("STARTTLS", True, True), ("STARTTLS", True, False), ("direct TLS", False, True), ("direct TLS", False, False)]
    # results[(path, subscribe)][delay or None] = (median seconds, median turns, one trace)
    results: Dict[Tuple[str, bool], Dict[Optional[float], Tuple[float, float, List[str]]]] = {}
    versions = set()
    try:
        direct_ports = {True: int(options["port"]), False: int(options["tls_port"])}  # type: ignore[arg-type]
        for name, starttls, subscribe in paths:
            row = results[(name, subscribe)] = {}
            for delay_ms in [None, 0.0] + delays_ms:
                proxy = None
                port = direct_ports[starttls]
                if delay_ms is not None:
                    proxy = DelayProxy((str(options["host"]), port), delay_ms / 1000.0)
                    port = proxy.port
                rtt = 2 * (delay_ms or 0) / 1000.0
                times: List[float] = []
                seen: List[int] = []
                sample: List[str] = []
                connect_once(options, port, starttls, subscribe)  # warm-up
                for _ in range(runs):
                    seconds, start, end, version = connect_once(options, port, starttls, subscribe)
                    versions.add(version)
                    times.append(seconds)
                    if proxy is not None:
                        trace = proxy.trace_since(start, end)
                        seen.append(turns(trace))
                        if not sample and rtt:
                            sample = flights(trace, start, rtt, step_names(starttls, subscribe))
                    time.sleep(0.05)  # let the close finish before the next connect
                if proxy is not None:
                    proxy.close()
                row[delay_ms] = (statistics.median(times), statistics.median(seen) if seen else float("nan"), sample)
    finally:
        stop_standin(server)

    print("Connect round trips: yaxmpp %s, Python %s, TLS %s, median of %d connects (after 1 warm-up)" % (
        yaxmpp.__version__, sys.version.split()[0], "/".join(sorted(versions)), runs))
    print()
    print("Round trips the protocol needs:")
    print("  %-52s %9s %11s" % ("step", "STARTTLS", "direct TLS"))
    for step, a, b in STEPS:
        print("  %-52s %9d %11d" % (step, a, b))
    print("  %-52s %9d %11d" % ("total, subscribe=True", expected(True, True), expected(False, True)))
    print("  %-52s %9d %11d" % ("total, subscribe=False", expected(True, False), expected(False, False)))
    print()
    header = "  %-22s %8s %10s" % ("path", "expected", "no proxy")
    header += " %10s" % "proxy+0ms"
    for d in delays_ms:
        header += " %12s %9s %9s %6s" % ("RTT %gms" % (2 * d), "t/RTT", "(t-t0)/RTT", "turns")
    header += " %12s" % "slope RTTs"
    print(header)
    for name, starttls, subscribe in paths:
        row = results[(name, subscribe)]
        base = row[0.0][0]
        line = "  %-22s %8d %8.1fms %8.1fms" % (
            "%s, subscribe=%s" % (name, "on" if subscribe else "off"), expected(starttls, subscribe),
            row[None][0] * 1000, base * 1000)
        for d in delays_ms:
            t, seen, _ = row[d]
            rtt = 2 * d / 1000.0
            line += " %10.1fms %9.2f %10.2f %6.0f" % (t * 1000, t / rtt, (t - base) / rtt, seen)
        if len(delays_ms) >= 2:
            lo, hi = delays_ms[0], delays_ms[-1]
            slope = (row[hi][0] - row[lo][0]) / (2 * (hi - lo) / 1000.0)
            line += " %12.2f" % slope
        print(line)
    print()
    print("  t/RTT: connect() time in RTTs; (t-t0)/RTT: minus the 0-delay proxy baseline; turns: client->server")
    print("  flights answered by the server that the proxy carried before connect() returned; slope: extra time per")
    print("  extra RTT between the delays (fixed costs cancel).  Target: every measured figure == expected.")
    d = delays_ms[0]
    for name, starttls, subscribe in paths:
        if not subscribe:
            continue
        print()
        print("Flights on the wire, %s, subscribe=on, RTT %g ms (times from connect() start):" % (name, 2 * d))
        for line in results[(name, subscribe)][d][2]:
            print("    " + line)


if __name__ == "__main__":
    main()
