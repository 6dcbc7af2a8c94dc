"""Idle cost: what one connected, silent client costs in CPU time and thread wake-ups.

One client connects to the stand-in server (``python -m yaxmpp.testing``, a separate process
that never pings: no ``--ping-interval``), then nothing is sent either way for 60 s.  Over
that window the client process's CPU seconds (``resource.getrusage``) and, per thread, the
voluntary + involuntary context switches (``/proc/self/task/<native_id>/status``) and CPU
time (``/proc/self/task/<native_id>/schedstat``) are measured for the ``yaxmpp-`` threads.
The baseline, in the same process and window, is an idle thread blocked on
``threading.Event().wait()``.  Configurations: the default ``keepalive=60``, ``keepalive=None``
and ``keepalive=20`` (all with the default ``timeout=30``), and ``keepalive=None`` with
``timeout=10``.  Every configuration runs in ``runs`` separate processes (default 5),
all at once, so the whole benchmark takes about one window; figures are medians.  The window
starts 0.5 s after ``connect()`` returned.  Target: no polling, wake-ups only for keepalive
(one ping costs the reader two wake-ups: its read times out, then the answer arrives).

    python benchmarks/bench_idle.py [seconds] [runs]      (or YAXMPP_BENCH_IDLE_SECONDS=5 ...)

Use a shorter window only for a quick check; the reported figures are for 60 s.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)

import yaxmpp  # noqa: E402
from _common import standin_client, start_standin, stop_standin  # noqa: E402

SETTLE = 0.5
# (label, keepalive, timeout): the last one shows what an idle reader without keepalive waits on.
CONFIGS = [
    ("keepalive=60 (default)", "60", "30"),
    ("keepalive=None", "none", "30"),
    ("keepalive=20", "20", "30"),
    ("keepalive=None timeout=10", "none", "10"),
]


# -- per-thread counters --------------------------------------------------------------------------


def thread_counters(native_id: int) -> Tuple[int, int, int]:
    """(voluntary, involuntary context switches, CPU ns) of one thread of this process."""
    voluntary = involuntary = 0
    with open("/proc/self/task/%d/status" % native_id) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                voluntary = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                involuntary = int(line.split()[1])
    with open("/proc/self/task/%d/schedstat" % native_id) as f:
        cpu_ns = int(f.read().split()[0])
    return voluntary, involuntary, cpu_ns


def snapshot(threads: Dict[str, threading.Thread], first: bool) -> Dict[str, object]:
    """Process and thread counters; the /proc reads are kept out of the measured window
    (read before the process counters at the start, after them at the end)."""
    result: Dict[str, object] = {}
    if first:
        result["threads"] = {name: thread_counters(t.native_id) for name, t in threads.items()}  # type: ignore[arg-type]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu"] = usage.ru_utime + usage.ru_stime
    result["process_time"] = time.process_time()
    result["csw"] = usage.ru_nvcsw + usage.ru_nivcsw
    if not first:
        result["threads"] = {name: thread_counters(t.native_id) for name, t in threads.items()}  # type: ignore[arg-type]
    return result


# -- one measured process -----------------------------------------------------------------------


def child(config: str, seconds: float, options: Dict[str, object]) -> None:
    keep, timeout = config.split("/")
    keepalive: Optional[float] = None if keep == "none" else float(keep)
    client = standin_client(options, keepalive=keepalive, timeout=float(timeout))
    client.connect()
    never = threading.Event()
    baseline = threading.Thread(target=never.wait, name="baseline-event-wait", daemon=True)
    baseline.start()
    time.sleep(SETTLE)
    watched = {t.name: t for t in threading.enumerate() if t.name.startswith("yaxmpp-")}
    readers = sorted(watched)
    watched["baseline"] = baseline
    watched["main"] = threading.main_thread()
    transport = client._session.connection.transport  # type: ignore[union-attr]
    sent, received = transport.bytes_sent, transport.bytes_received
    before = snapshot(watched, True)
    time.sleep(seconds)
    after = snapshot(watched, False)
    sent, received = transport.bytes_sent - sent, transport.bytes_received - received
    other = sorted(t.name for t in threading.enumerate() if t.name not in watched and t is not threading.main_thread())
    connected = client.connected
    client.close()
    never.set()
    result = {
        "cpu": after["cpu"] - before["cpu"],  # type: ignore[operator]
        "process_time": after["process_time"] - before["process_time"],  # type: ignore[operator]
        "csw": after["csw"] - before["csw"],  # type: ignore[operator]
        "threads": {
            name: [a - b for a, b in zip(after["threads"][name], before["threads"][name])]  # type: ignore[index]
            for name in watched
        },
        "yaxmpp_threads": readers,
        "other_threads": other,
        "bytes_sent": sent,
        "bytes_received": received,
        "connected": connected,
    }
    print(json.dumps(result), flush=True)


# -- the driver ---------------------------------------------------------------------------------




def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4]))
        return
    seconds = float(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("YAXMPP_BENCH_IDLE_SECONDS", "60"))
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    server, options = start_standin()
    results: Dict[str, List[Dict[str, object]]] = {}
    try:
        children = []
        for _, keep, timeout in CONFIGS:
            config = "%s/%s" % (keep, timeout)
            for _ in range(runs):
                children.append((config, subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--child", config, str(seconds), json.dumps(options)],
                    stdout=subprocess.PIPE,
                    universal_newlines=True,
                )))
        for config, process in children:
            out, _ = process.communicate(timeout=seconds + 120)
            if process.returncode != 0:
                raise SystemExit("a measuring process failed (%s)" % config)
            results.setdefault(config, []).append(json.loads(out.strip().splitlines()[-1]))
    finally:
        stop_standin(server, 10)

    def med(values: List[float]) -> float:
        return statistics.median(values)

    print("Idle cost: yaxmpp %s, Python %s, one connected client, %g s without traffic, median of %d processes" % (
        yaxmpp.__version__, sys.version.split()[0], seconds, runs))
    print("(server: separate process, no pings; window starts %.1f s after connect(); wake-ups = voluntary +"
          " involuntary context switches)" % SETTLE)
    print()
    print("  %-26s %9s %9s %8s %8s %8s %9s %9s %9s %10s %10s" % (
        "configuration", "proc CPU", "proc csw", "yaxmpp", "yaxmpp", "wakeups", "yaxmpp", "baseline", "main",
        "bytes out", "bytes in"))
    print("  %-26s %9s %9s %8s %8s %8s %9s %9s %9s %10s %10s" % (
        "", "ms", "", "threads", "wakeups", "/minute", "CPU ms", "wakeups", "wakeups", "", ""))
    for label, keep, timeout in CONFIGS:
        rows = results["%s/%s" % (keep, timeout)]
        assert all(r["connected"] for r in rows), "a client lost its connection during the window"
        names = rows[0]["yaxmpp_threads"]
        reader_wakeups = med([sum(sum(r["threads"][n][:2]) for n in r["yaxmpp_threads"]) for r in rows])  # type: ignore
        reader_cpu = med([sum(r["threads"][n][2] for n in r["yaxmpp_threads"]) / 1e6 for r in rows])  # type: ignore
        print("  %-26s %9.2f %9.0f %8d %8.0f %8.1f %9.3f %9.0f %9.0f %10.0f %10.0f" % (
            label,
            med([r["cpu"] * 1000 for r in rows]),  # type: ignore[operator]
            med([r["csw"] for r in rows]),  # type: ignore[misc]
            len(names),  # type: ignore[arg-type]
            reader_wakeups,
            reader_wakeups * 60.0 / seconds,
            reader_cpu,
            med([sum(r["threads"]["baseline"][:2]) for r in rows]),  # type: ignore
            med([sum(r["threads"]["main"][:2]) for r in rows]),  # type: ignore
            med([r["bytes_sent"] for r in rows]),  # type: ignore[misc]
            med([r["bytes_received"] for r in rows]),  # type: ignore[misc]
        ))
    print()
    print("  Per process, per configuration (yaxmpp thread wake-ups over the window):")
    for label, keep, timeout in CONFIGS:
        rows = results["%s/%s" % (keep, timeout)]
        counts = [sum(sum(r["threads"][n][:2]) for n in r["yaxmpp_threads"]) for r in rows]  # type: ignore
        cpu = ", ".join("%.2f" % (r["cpu"] * 1000) for r in rows)  # type: ignore[operator]
        print("    %-26s wake-ups %-22s process CPU ms %s" % (label, counts, cpu))
    print()
    print("  proc CPU: the whole client process (all threads, incl. the main thread's sleep) over the window;")
    print("  wakeups/minute: the yaxmpp- threads' context switches, scaled to 60 s; baseline: an idle thread")
    print("  blocked on threading.Event().wait(); bytes out/in: on the wire (TLS) during the window.")


if __name__ == "__main__":
    main()
