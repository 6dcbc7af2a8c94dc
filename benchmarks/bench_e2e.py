"""End to end: Disk pushes over loopback TLS, from the stand-in server to the user's loop.

The stand-in server runs in a separate process (``python -m yaxmpp.testing --plain``, with a
0.2 ms GIL switch interval), so its work does not share the GIL with the client under test.  For each run a fresh server
process is started and one client connects (STARTTLS, then SASL), subscribes, takes a
warm-up batch of pushes, and then the timed batch: the clock starts when the ``push N``
command is written to the server and stops when the N-th push has been consumed by the
user (yaxmpp: the ``for n in client.notifications()`` loop; slixmpp: the push handler,
after it has sent the acknowledgement).  Both clients acknowledge every push with an
empty iq result.  Clients run one at a time, never together.

Measured, in the same run: yaxmpp (X-YANDEX-OAUTH, ``max_pending`` raised to hold the whole
batch so that nothing is refused if the user loop lags), yaxmpp with ``compress=True`` (zlib,
which the server offers) and, as the baseline, a slixmpp ClientXMPP (SASL PLAIN with the
token as password, STARTTLS, a Callback handler on ``iq/{yandex:push:disk}query`` that sends
``iq.reply(clear=True)``).  Neither user loop looks inside the pushes (yaxmpp parses
``Notification.changes`` lazily; slixmpp has built its stanza objects already).  The runs are
interleaved (each round runs every client once, in turn).  Reports the median pushes/s over
the runs, the range, the ratio to slixmpp, and zlib against plain round by round; "server done" is the
median time at which the server process had written the whole batch (its writes block while
the client's TCP window is full, so it also shows how far the client lagged behind).

slixmpp gets 50,000 pushes per run by default (100,000 take it about 15 s a run here; its
rate does not depend on the count, as it keeps nothing per push), to stay under 3 minutes.

With ``--callgrind``, instructions instead of seconds (the same on every run, whatever else the
shared machine does): each client runs in its own process under valgrind's callgrind (the
server process is not traced), once with N1 and once with N2 pushes, and the figure is
(Ir(N2) - Ir(N1)) / (N2 - N1) instructions per push, so that start-up, negotiation and close
cancel out.  Besides the clients above, two ceilings on the same TLS stream: a minimal
Python loop that reads the TLS socket and only counts the pushes (``data.count(b"</iq>")``),
and the same loop feeding every read to a bare pyexpat parser with no handlers.  Neither
acknowledges anything.  Threads are counted too (yaxmpp's reader and the user's loop).

    python benchmarks/bench_e2e.py [--count 100000] [--runs 5] [--slixmpp-count 50000] [--only CLIENT]
    python benchmarks/bench_e2e.py --callgrind [--counts 4000,20000] [--slixmpp-counts 1000,3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import ssl
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Tuple

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

from _common import standin_client  # noqa: E402

TOKEN = "0123456789abcdef0123456789abcdef"
# The stand-in server, with a 0.2 ms GIL switch interval: its console thread writes the pushes
# while its connection thread parses the acknowledgements, and with the default 5 ms each
# write could wait that long for the other thread (as bench_latency.py does too).
SERVE = "import runpy, sys; sys.setswitchinterval(0.0002); runpy.run_module('yaxmpp.testing', run_name='__main__')"
WARMUP = 2000


class ServerProcess:
    """``python -m yaxmpp.testing --plain`` in a child process, driven through its stdin;
    its stdout lines are read by a thread and timestamped on arrival."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--plain", "--token", TOKEN],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            universal_newlines=True,
            bufsize=1,
        )
        self.lines: "queue.Queue[Tuple[float, str]]" = queue.Queue()
        first = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not first:
            raise RuntimeError("the stand-in server did not start")
        self.options = json.loads(first)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put((time.perf_counter(), line.strip()))

    def command(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def expect(self, prefix: str, timeout: float = 60.0) -> Tuple[float, str]:
        """The next output line, which must start with ``prefix``, and when it came."""
        stamp, line = self.lines.get(timeout=timeout)
        if not line.startswith(prefix):
            raise RuntimeError("expected %r from the server, got %r" % (prefix, line))
        return stamp, line

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        """The server marks a session subscribed just after answering the subscription, so
        poll until it has (pushes only go to subscribed sessions)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.command("sessions")
            _, line = self.expect("sessions")
            if line.split()[-1] != "0":
                return
            time.sleep(0.01)
        raise RuntimeError("no subscribed session on the server")

    def push(self, count: int) -> float:
        """Send ``push count``; return the perf_counter time at which it was sent."""
        start = time.perf_counter()
        self.command("push %d" % count)
        return start

    def pushed(self, count: int) -> float:
        stamp, line = self.expect("pushed")
        if line != "pushed %d" % count:
            raise RuntimeError("server says %r, expected %d pushes" % (line, count))
        return stamp

    def stop(self) -> None:
        try:
            self.command("quit")
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# -- yaxmpp --------------------------------------------------------------------------------


def run_yaxmpp(count: int, compress: bool, warmup: int = WARMUP) -> Tuple[float, float, float]:
    """One run against a fresh server: (seconds to consume ``count`` pushes, seconds until
    the server had written them all, CPU seconds the client process spent meanwhile, all
    its threads)."""
    server = ServerProcess()
    try:
        opts = server.options
        client = standin_client(
            opts,
            tls_port=opts["tls_port"],
            compress=compress,
            max_pending=count + warmup,  # the user loop may lag; nothing may be refused
            timeout=10.0,
        )
        client.connect()
        try:
            assert client.compressed == compress
            server.wait_subscribed()
            for total in (warmup, count) if warmup else (count,):
                cpu = time.process_time()
                start = server.push(total)
                seen = 0
                for _notification in client.notifications(timeout=30.0):
                    seen += 1
                    if seen == total:
                        break
                end = time.perf_counter()
                cpu = time.process_time() - cpu
                if seen != total:
                    raise RuntimeError("yaxmpp got %d of %d pushes" % (seen, total))
                server_done = server.pushed(total) - start
            if client.refused_notifications:
                raise RuntimeError("yaxmpp refused %d pushes" % client.refused_notifications)
        finally:
            client.close()
        return end - start, server_done, cpu
    finally:
        server.stop()


# -- slixmpp ---------------------------------------------------------------------------------


def run_slixmpp(count: int, warmup: int = WARMUP) -> Tuple[float, float, float]:
    """The same run with a slixmpp ClientXMPP."""
    import logging

    import slixmpp
    from slixmpp.xmlstream.handler import Callback
    from slixmpp.xmlstream.matcher import MatchXPath

    logging.getLogger("slixmpp").setLevel(logging.CRITICAL)
    server = ServerProcess()
    opts = server.options
    result: Dict[str, float] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # The server certificate names 127.0.0.1, while slixmpp checks the JID's domain
        # (ya.ru): verify the chain against the test CA, skip the name check.
        context = ssl.create_default_context(cafile=opts["cafile"])
        context.check_hostname = False
        xmpp = slixmpp.ClientXMPP("%s@%s" % (opts["login"], opts["domain"]), opts["token"], sasl_mech="PLAIN",
                                  ssl_context=context)
        xmpp.enable_direct_tls = False  # STARTTLS on the given port only
        xmpp.enable_plaintext = False
        state = {"seen": 0, "want": 0}
        done: "asyncio.Future[float]" = loop.create_future()
        started: "asyncio.Future[None]" = loop.create_future()

        def on_push(iq: "slixmpp.Iq") -> None:
            iq.reply(clear=True).send()
            state["seen"] += 1
            if state["seen"] == state["want"] and not done.done():
                done.set_result(time.perf_counter())

        xmpp.register_handler(Callback("disk push", MatchXPath("{jabber:client}iq/{yandex:push:disk}query"), on_push))
        xmpp.add_event_handler("session_start", lambda _event: started.done() or started.set_result(None))
        xmpp.add_event_handler("failed_auth", lambda _event: started.done() or started.set_exception(
            RuntimeError("slixmpp: authentication failed")))
        xmpp.connect(opts["host"], opts["port"])
        await asyncio.wait_for(started, 10.0)
        iq = xmpp.make_iq_set(ito="%s@%s" % (opts["login"], opts["domain"]))
        iq.append(slixmpp.ET.Element("{yandex:push:disk}s"))
        await iq.send(timeout=10)
        await loop.run_in_executor(None, server.wait_subscribed)
        for total in (warmup, count) if warmup else (count,):
            state["seen"], state["want"] = 0, total
            done = loop.create_future()
            cpu = time.process_time()
            start = server.push(total)
            end = await asyncio.wait_for(done, 300.0)
            cpu = time.process_time() - cpu
            server_done = await loop.run_in_executor(None, server.pushed, total)
        result["elapsed"], result["server"], result["cpu"] = end - start, server_done - start, cpu
        xmpp.disconnect(wait=2.0)
        await xmpp.disconnected

    try:
        asyncio.run(main())
    finally:
        server.stop()
    return result["elapsed"], result["server"], result["cpu"]


# -- the ceilings: a minimal TLS loop, with and without a bare pyexpat parser ------------------


def _raw_session(server: ServerProcess) -> "ssl.SSLSocket":
    """A direct-TLS socket through SASL PLAIN, bind, session and the subscription, with the
    least Python that gets there (no XML parsing: the server's answers are waited for by
    their ids).  The stand-in server's pushes come next."""
    import base64
    import re
    import socket

    opts = server.options
    context = ssl.create_default_context(cafile=opts["cafile"])
    sock = context.wrap_socket(socket.create_connection((opts["host"], opts["tls_port"])), server_hostname=opts["host"])
    header = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/"
              "streams' to='%s' version='1.0'>" % opts["domain"]).encode()
    got = bytearray()

    def until(pattern: bytes) -> None:
        found = re.compile(pattern)
        while not found.search(got):
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed the connection while negotiating")
            got.extend(data)
        del got[:]

    plain = base64.b64encode(("\0%s\0%s" % (opts["login"], opts["token"])).encode()).decode()
    sock.sendall(header)
    until(rb"</stream:features>")
    sock.sendall(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % plain.encode())
    until(rb"<success")
    sock.sendall(header)
    until(rb"</stream:features>")
    sock.sendall(b"<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
    until(rb"id=['\"]b1['\"]")
    sock.sendall(b"<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
    until(rb"id=['\"]s1['\"]")
    sock.sendall(b"<iq type='set' id='d1' to='%s@%s'><s xmlns='yandex:push:disk'/></iq>"
                 % (opts["login"].encode(), opts["domain"].encode()))
    server.wait_subscribed()
    return sock


def run_ceiling(count: int, parse: bool) -> Tuple[float, float]:
    """The minimal loop: read the TLS socket until ``count`` pushes have come (counted by their
    ``</iq>``), feeding each read to a bare pyexpat parser if ``parse``; nothing is answered."""
    from xml.parsers import expat

    server = ServerProcess()
    try:
        sock = _raw_session(server)
        parser = expat.ParserCreate(None, "}")
        parser.Parse(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>", False)
        feed = parser.Parse if parse else None
        start = server.push(count)
        seen = 0
        carry = b""
        recv = sock.recv
        while seen < count:
            data = recv(65536)
            if not data:
                raise RuntimeError("the server closed the connection")
            if feed is not None:
                feed(data, False)
            seen += (carry + data[:4]).count(b"</iq>") + data.count(b"</iq>")  # a tag cut by the read
            carry = data[-4:]
        end = time.perf_counter()
        server_done = server.pushed(count) - start
        sock.close()
        return end - start, server_done
    finally:
        server.stop()


# -- instruction counts (callgrind) ------------------------------------------------------------

CALLGRIND_VARIANTS: Dict[str, Callable[[int], object]] = {
    "minimal TLS loop (ceiling)": lambda n: run_ceiling(n, False),
    "bare pyexpat loop (ceiling)": lambda n: run_ceiling(n, True),
    "yaxmpp": lambda n: run_yaxmpp(n, False, warmup=0),
    "yaxmpp compress=True": lambda n: run_yaxmpp(n, True, warmup=0),
    "slixmpp (peer)": lambda n: run_slixmpp(n, warmup=0),
}


def client_instructions(variant: str, count: int) -> int:
    """Instructions the client process executed (every thread) in one run of ``count`` pushes."""
    import re
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, sys.executable,
             os.path.abspath(__file__), "--one", variant, str(count)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with open(out) as f:
            match = re.search(r"^summary: (\d+)", f.read(), re.M)
        assert match is not None
        return int(match.group(1))


def main_callgrind(counts: Tuple[int, int], slixmpp_counts: Tuple[int, int], variants: List[str]) -> None:
    rows = []
    for name in variants:
        low, high = slixmpp_counts if name.startswith("slixmpp") else counts
        first, second = client_instructions(name, low), client_instructions(name, high)
        per_push = (second - first) / (high - low)
        rows.append((name, low, high, first, second, per_push))
        print("    %-28s %14d instr at %d, %14d at %d: %8.0f per push" % (name, first, low, second, high, per_push),
              file=sys.stderr, flush=True)
    print("End to end, client process instructions per push: (Ir(N2) - Ir(N1)) / (N2 - N1), counted by callgrind\n"
          "(every thread; the server process is not traced), Python %s" % sys.version.split()[0])
    per = {row[0]: row[5] for row in rows}
    print("  %-28s %7s %7s %14s %14s %11s %9s" % ("client", "N1", "N2", "Ir(N1)", "Ir(N2)", "per push", "vs yaxmpp"))
    for name, low, high, first, second, per_push in rows:
        ratio = "%8.2fx" % (per_push / per["yaxmpp"]) if "yaxmpp" in per else ""
        print("  %-28s %7d %7d %14d %14d %11.0f %9s" % (name, low, high, first, second, per_push, ratio))
    if "yaxmpp" in per:
        print("  target (yaxmpp <= 45,000 instructions per push): %s" % ("met" if per["yaxmpp"] <= 45_000 else "NOT met"))


# -- table -----------------------------------------------------------------------------------


def measure_interleaved(clients: "List[Tuple[str, Callable[[], Tuple[float, float, float]], int]]", runs: int) -> List[Dict[str, object]]:
    """Every round runs every client once, in turn, so that a change in the shared machine's
    load touches them all alike; per client: the median, the range, the per-round times, and
    the client's CPU time per round."""
    times: Dict[str, List[float]] = {name: [] for name, _, _ in clients}
    servers: Dict[str, List[float]] = {name: [] for name, _, _ in clients}
    cpus: Dict[str, List[float]] = {name: [] for name, _, _ in clients}
    for _ in range(runs):
        for name, function, count in clients:
            elapsed, server_done, cpu = function()
            times[name].append(elapsed)
            servers[name].append(server_done)
            cpus[name].append(cpu)
            print("    %-28s %7.3f s  %9.0f pushes/s  client CPU %.3f s" % (name, elapsed, count / elapsed, cpu),
                  file=sys.stderr, flush=True)
    rows = []
    for name, _, count in clients:
        median = statistics.median(times[name])
        rows.append({
            "name": name,
            "count": count,
            "seconds": median,
            "rate": count / median,
            "spread": (count / max(times[name]), count / min(times[name])),
            "server": statistics.median(servers[name]),
            "rates": [count / t for t in times[name]],
            "cpu": statistics.median(cpus[name]),
            "cpus": cpus[name],
        })
    return rows


def _pair(text: str) -> Tuple[int, int]:
    low, high = (int(part) for part in text.split(","))
    if not 0 < low < high:
        raise argparse.ArgumentTypeError("two push counts N1,N2 with 0 < N1 < N2")
    return low, high


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":  # one client run, under callgrind
        CALLGRIND_VARIANTS[sys.argv[2]](int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="pushes per yaxmpp run")
    parser.add_argument("--slixmpp-count", type=int, default=50_000, help="pushes per slixmpp run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true", help="count instructions per push instead")
    parser.add_argument("--counts", type=_pair, default=(4000, 20000), help="N1,N2 for --callgrind")
    parser.add_argument("--slixmpp-counts", type=_pair, default=(1000, 3000), help="N1,N2 for slixmpp")
    parser.add_argument("--only", action="append", choices=sorted(CALLGRIND_VARIANTS),
                        help="just this client (repeatable; the ceilings are for --callgrind)")
    args = parser.parse_args()
    if args.callgrind:
        main_callgrind(args.counts, args.slixmpp_counts, args.only or list(CALLGRIND_VARIANTS))
        return
    import slixmpp

    load = os.getloadavg()[0]
    clients = [
        ("yaxmpp", lambda: run_yaxmpp(args.count, False), args.count),
        ("yaxmpp compress=True", lambda: run_yaxmpp(args.count, True), args.count),
        ("slixmpp (peer)", lambda: run_slixmpp(args.slixmpp_count), args.slixmpp_count),
    ]
    rows = measure_interleaved([c for c in clients if not args.only or c[0] in args.only], args.runs)
    by_name = {row["name"]: row for row in rows}
    baseline = by_name["slixmpp (peer)"]["rate"] if "slixmpp (peer)" in by_name else None
    print(
        "Disk pushes over loopback STARTTLS, server in its own process, %d interleaved rounds (fresh server each run),\n"
        "Python %s, slixmpp %s, %d CPUs, load average %.2f -> %.2f"
        % (args.runs, sys.version.split()[0], slixmpp.__version__, os.cpu_count() or 0, load, os.getloadavg()[0])
    )
    print("  %-22s %8s %8s %10s %19s %12s %11s %9s" % ("client", "pushes", "median", "pushes/s", "range (pushes/s)",
                                                       "server done", "client CPU", "vs slix"))
    for row in rows:
        low, high = row["spread"]  # type: ignore[misc]
        print(
            "  %-22s %8d %7.3fs %10.0f %9.0f-%-9.0f %11.3fs %10.3fs %9s"
            % (row["name"], row["count"], row["seconds"], row["rate"], low, high, row["server"], row["cpu"],
               "%.2fx" % (row["rate"] / baseline) if baseline else "")  # type: ignore[operator]
        )
    if "yaxmpp" in by_name and "yaxmpp compress=True" in by_name:
        # zlib against plain, round by round (each pair ran back to back): by the clock, which
        # the stand-in server bounds once it is the slower side ("server done" near the
        # client's time), and by the client's own CPU time (pushes per CPU second).
        plain, zlib_ = by_name["yaxmpp"], by_name["yaxmpp compress=True"]
        ratios = [z / p for p, z in zip(plain["rates"], zlib_["rates"])]  # type: ignore[call-overload]
        by_cpu = [p / z for p, z in zip(plain["cpus"], zlib_["cpus"])]  # type: ignore[call-overload]
        print("  zlib / plain, per round, by the clock: %s (median %.2f)" % (", ".join("%.2f" % r for r in ratios), statistics.median(ratios)))
        print("  zlib / plain, per round, by client CPU: %s (median %.2f)" % (", ".join("%.2f" % r for r in by_cpu), statistics.median(by_cpu)))
        print("  target (zlib >= 0.85x plain): %s by the clock, %s by client CPU" % (
            "met" if statistics.median(ratios) >= 0.85 else "NOT met", "met" if statistics.median(by_cpu) >= 0.85 else "NOT met"))


if __name__ == "__main__":
    main()
