"""Scale: 1,000 clients connected at once in one process, against the stand-in server
(``python -m yaxmpp.testing``) in a separate process.

Clients are made and connected from a pool of 50 worker threads (started, and one client
connected and closed as a warm-up, before the baseline is taken).  Reported: the process's
baseline RSS before connecting, RSS per connection ((VmRSS with N connected - VmRSS before)
/ N, from /proc/self/status, after gc.collect()), OS threads per connection, the time to
connect all N and to close all N (in parallel), and whether any ``yaxmpp-`` thread is left
after the closes.  Without compression and with ``compress=True``.  The baseline, measured
the same way in the same run, is the floor of the thread-per-connection design: N TLS
sockets (one shared SSLContext) to the server's direct-TLS port, each with one thread blocked
in recv(4096), no XMPP.  Each run is a fresh client process and a fresh server process;
figures are medians of ``runs`` runs (default 5).  Target: <= 150 KiB per connection without
compression.

A second table is the cost of Client objects alone (not connected; N with the test CA file,
N/20 with the default CA bundle, certifi): every Client builds its own ssl.SSLContext.
After the closes, RSS is read again as is and after glibc's malloc_trim(0), and the Client,
Connection and Transport objects still alive are counted (a leak check).

The open-file limit is raised for this process with setrlimit(RLIMIT_NOFILE); the server
process inherits it.

    python benchmarks/bench_scale.py [clients] [runs] [workers]
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Tuple

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

import yaxmpp  # noqa: E402
from _common import standin_client, start_standin, stop_standin  # noqa: E402
import yaxmpp.testing  # noqa: E402
from yaxmpp.connection import Connection  # noqa: E402
from yaxmpp.transport import Transport  # noqa: E402


BASELINE = "baseline: TLS socket+thread"


def status(field: str) -> int:
    """A field of /proc/self/status (VmRSS in KiB, Threads)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_kib() -> int:
    gc.collect()
    return status("VmRSS")


def yaxmpp_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("yaxmpp-"))


def raise_nofile(clients: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * clients + 1024
    if soft != resource.RLIM_INFINITY and soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def make_client(options: Dict[str, object], **extra: object) -> yaxmpp.Client:
    return standin_client(options, **extra)  # type: ignore[no-any-return]


# -- one measured process -----------------------------------------------------------------------


def child_connect(clients: int, compress: bool, workers: int, options: Dict[str, object]) -> Dict[str, object]:
    cafile = str(options["cafile"])

    def connect(_: int) -> yaxmpp.Client:
        return make_client(options, cafile=cafile, compress=compress).connect()

    pool = ThreadPoolExecutor(workers)
    barrier = threading.Barrier(workers + 1)
    for _ in range(workers):  # start every worker thread now, so their stacks are in the baseline
        pool.submit(barrier.wait)
    barrier.wait()
    connect(0).close()  # warm-up: lazy imports, OpenSSL and logging set-up
    rss_before = rss_kib()
    threads_before = status("Threads")
    start = time.perf_counter()
    connected = list(pool.map(connect, range(clients)))
    connect_seconds = time.perf_counter() - start
    time.sleep(0.2)  # let the last writes settle
    rss_connected = rss_kib()
    threads_connected = status("Threads")
    yaxmpp_connected = yaxmpp_threads()
    all_connected = all(c.connected for c in connected)
    compressed = sum(1 for c in connected if c.compressed)
    start = time.perf_counter()
    list(pool.map(lambda c: c.close(), connected))
    close_seconds = time.perf_counter() - start
    left = yaxmpp_threads()
    del connected
    rss_closed = rss_kib()
    pool.shutdown()
    rss_trimmed = rss_closed
    try:  # glibc keeps freed memory (and up to 40 MiB of thread stacks) unless trimmed
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        rss_trimmed = rss_kib()
    except (OSError, AttributeError):
        pass
    alive = sum(1 for o in gc.get_objects() if isinstance(o, (yaxmpp.Client, Connection, Transport)))
    return {
        "rss_before": rss_before,
        "rss_connected": rss_connected,
        "rss_closed": rss_closed,
        "rss_trimmed": rss_trimmed,
        "alive": alive,
        "threads_before": threads_before,
        "threads_connected": threads_connected,
        "yaxmpp_connected": yaxmpp_connected,
        "connect_seconds": connect_seconds,
        "close_seconds": close_seconds,
        "all_connected": all_connected,
        "compressed": compressed,
        "left": left,
    }


def child_baseline(clients: int, workers: int, options: Dict[str, object]) -> Dict[str, object]:
    """The floor of the thread-per-connection design: per connection one TLS socket (one
    shared SSLContext) to the server's direct-TLS port and one thread blocked in recv(4096)."""
    context = ssl.create_default_context(cafile=str(options["cafile"]))
    address = (str(options["host"]), int(options["tls_port"]))  # type: ignore[arg-type]

    def connect(_: int) -> Tuple[ssl.SSLSocket, threading.Thread]:
        sock = context.wrap_socket(socket.create_connection(address), server_hostname=address[0])

        def wait() -> None:
            try:
                sock.recv(4096)
            except OSError:
                pass

        thread = threading.Thread(target=wait, name="baseline-reader", daemon=True)
        thread.start()
        return sock, thread

    def close(pair: Tuple[ssl.SSLSocket, threading.Thread]) -> None:
        sock, thread = pair
        sock.shutdown(socket.SHUT_RDWR)
        thread.join()
        sock.close()

    pool = ThreadPoolExecutor(workers)
    barrier = threading.Barrier(workers + 1)
    for _ in range(workers):
        pool.submit(barrier.wait)
    barrier.wait()
    close(connect(0))
    rss_before = rss_kib()
    threads_before = status("Threads")
    start = time.perf_counter()
    connected = list(pool.map(connect, range(clients)))
    connect_seconds = time.perf_counter() - start
    time.sleep(0.2)
    rss_connected = rss_kib()
    threads_connected = status("Threads")
    start = time.perf_counter()
    list(pool.map(close, connected))
    close_seconds = time.perf_counter() - start
    pool.shutdown()
    return {
        "rss_before": rss_before,
        "rss_connected": rss_connected,
        "threads_before": threads_before,
        "threads_connected": threads_connected,
        "connect_seconds": connect_seconds,
        "close_seconds": close_seconds,
    }


def child_objects(clients: int, cafile: str, options: Dict[str, object]) -> Dict[str, object]:
    make_client(options, cafile=cafile or None)  # warm-up
    rss_before = rss_kib()
    cpu = time.process_time()
    objects = [make_client(options, cafile=cafile or None) for _ in range(clients)]
    cpu = time.process_time() - cpu
    rss_after = rss_kib()
    assert len(objects) == clients
    return {"rss_before": rss_before, "rss_after": rss_after, "cpu": cpu}


# -- the driver ---------------------------------------------------------------------------------






def run_child(args: List[str], options: Dict[str, object]) -> Dict[str, object]:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child"] + args + [json.dumps(options)],
        stdout=subprocess.PIPE,
        universal_newlines=True,
        check=True,
        timeout=300,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        raise_nofile(int(sys.argv[3]))
        options = json.loads(sys.argv[-1])
        if sys.argv[2] == "connect":
            result = child_connect(int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5]), options)
        elif sys.argv[2] == "baseline":
            result = child_baseline(int(sys.argv[3]), int(sys.argv[4]), options)
        else:
            result = child_objects(int(sys.argv[3]), sys.argv[4], options)
        print(json.dumps(result), flush=True)
        return
    clients = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    nofile = raise_nofile(clients)
    object_counts = {"test CA file (1 cert)": clients, "certifi bundle (default)": max(1, clients // 20)}
    results: Dict[str, List[Dict[str, object]]] = {}
    objects: Dict[str, List[Dict[str, object]]] = {}
    for _ in range(runs):
        for label, args in (
            (BASELINE, ["baseline", str(clients), str(workers)]),
            ("compress=False", ["connect", str(clients), "0", str(workers)]),
            ("compress=True", ["connect", str(clients), "1", str(workers)]),
        ):
            server, options = start_standin()
            try:
                results.setdefault(label, []).append(run_child(args, options))
            finally:
                stop_standin(server)
    import certifi

    options = {"login": "test", "token": "t", "host": "127.0.0.1", "port": 5222, "domain": "ya.ru"}
    with ThreadPoolExecutor(2 * runs) as pool:  # separate processes measuring RSS only: run them at once
        for label, cafile in (("test CA file (1 cert)", yaxmpp.testing.CA_FILE), ("certifi bundle (default)", "")):
            args = ["objects", str(object_counts[label]), cafile]
            objects[label] = list(pool.map(lambda _: run_child(args, options), range(runs)))

    def med(values: List[float]) -> float:
        return statistics.median(values)

    print("Scale: yaxmpp %s, Python %s, %d clients in one process, %d connect workers, RLIMIT_NOFILE %d,"
          " median of %d runs" % (yaxmpp.__version__, sys.version.split()[0], clients, workers, nofile, runs))
    print("(STARTTLS, TLS 1.3, subscribe on, keepalive 60 s; server: separate process)")
    print()
    print("  %-26s %10s %11s %11s %7s %9s %8s %10s %8s %8s %8s %6s" % (
        "", "RSS before", "RSS with N", "RSS / conn", "x base", "threads", "yaxmpp", "connect", "conn/s", "close",
        "left", "all"))
    print("  %-26s %10s %11s %11s %7s %9s %8s %10s %8s %8s %8s %6s" % (
        "", "MiB", "MiB", "KiB", "", "/conn", "threads", "all, s", "", "all, s", "threads", "ok"))
    base = med([(r["rss_connected"] - r["rss_before"]) / clients for r in results[BASELINE]])  # type: ignore[operator]
    for label, rows in results.items():
        per_conn = med([(r["rss_connected"] - r["rss_before"]) / clients for r in rows])  # type: ignore[operator]
        is_base = label == BASELINE
        compress = label == "compress=True"
        print("  %-26s %10.1f %11.1f %11.1f %7.2f %9.2f %8s %10.2f %8.0f %8.2f %8s %6s" % (
            label,
            med([r["rss_before"] / 1024 for r in rows]),  # type: ignore[operator]
            med([r["rss_connected"] / 1024 for r in rows]),  # type: ignore[operator]
            per_conn,
            per_conn / base,
            med([(r["threads_connected"] - r["threads_before"]) / clients for r in rows]),  # type: ignore[operator]
            "-" if is_base else "%d" % med([r["yaxmpp_connected"] for r in rows]),  # type: ignore[misc]
            med([r["connect_seconds"] for r in rows]),  # type: ignore[misc]
            clients / med([r["connect_seconds"] for r in rows]),  # type: ignore[misc]
            med([r["close_seconds"] for r in rows]),  # type: ignore[misc]
            "-" if is_base else "%d" % max(r["left"] for r in rows),  # type: ignore[type-var]
            "-" if is_base else (
                "yes" if all(r["all_connected"] and r["compressed"] == (clients if compress else 0) for r in rows) else "NO"),
        ))
    for label, rows in results.items():
        per_run = ", ".join("%.1f" % ((r["rss_connected"] - r["rss_before"]) / clients) for r in rows)  # type: ignore
        line = "    %-26s RSS/conn KiB per run: %s" % (label, per_run)
        if label != BASELINE:
            after = ", ".join("%.0f/%.0f" % ((r["rss_closed"] - r["rss_before"]) / 1024,  # type: ignore
                                           (r["rss_trimmed"] - r["rss_before"]) / 1024) for r in rows)  # type: ignore
            line += "\n    %26s after closing all: RSS - before, MiB (as is/after malloc_trim): %s;" % ("", after)
            line += " Client/Connection/Transport objects left: %d" % max(r["alive"] for r in rows)  # type: ignore
        print(line)
    print()
    print("  Target: <= 150 KiB per connection without compression.  x base: RSS/conn over the baseline (one")
    print("  TLS socket + one thread blocked in recv per connection, no XMPP).  'left': yaxmpp- threads alive")
    print("  after all close() calls returned (max over runs); 'all ok': every client connected (and compressed).")
    print()
    print("  Client objects only (constructed, not connected), per client:")
    print("    %-26s %6s %12s %6s  %s" % ("CA file", "count", "RSS", "x", "construction"))
    base = None
    for label, rows in objects.items():
        count = object_counts[label]
        per = med([(r["rss_after"] - r["rss_before"]) / count for r in rows])  # type: ignore[operator]
        cpu = med([r["cpu"] * 1000 / count for r in rows])  # type: ignore[operator]
        base = per if base is None else base
        ratio = "%5.1fx" % (per / base) if base else "     -"
        print("    %-26s %6d %8.1f KiB %s  %7.2f ms CPU per Client()" % (label, count, per, ratio, cpu))
    print("    (certifi %s; clients with the same CA file share one ssl.SSLContext)" % certifi.__version__)


if __name__ == "__main__":
    main()
