"""Helpers shared by the benchmark scripts: timing medians and the Disk push byte stream."""

from __future__ import annotations

import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

from yaxmpp.protocol.disk import push_xml
from yaxmpp.testing.server import query_xml

SESSION_HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='1' from='ya.ru' version='1.0' xml:lang='en'>"
)


def push_stream(count: int) -> bytes:
    """``count`` Disk push iqs (one op each), as the server would send them."""
    parts = []
    for i in range(count):
        query = query_xml([{"type": "new", "key": "/disk/folder/file-%d.txt" % i, "fid": str(1000 + i), "size": str(i)}])
        parts.append(push_xml("push_%d" % i, query, "ya.ru", "test@ya.ru/YaDisk-client"))
    return "".join(parts).encode()


def median_time(function: Callable[[], object], runs: int = 7) -> float:
    """Median wall time of ``runs`` calls (after one warm-up call), each from a collected heap."""
    function()
    times: List[float] = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(variants: "Dict[str, Callable[[], object]]", runs: int = 7) -> "Dict[str, float]":
    """Median wall time of each variant over ``runs`` rounds; every round runs every variant
    once, in turn, so a change in the machine's load touches them all alike."""
    for function in variants.values():
        function()  # warm-up
    times: Dict[str, List[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, function in variants.items():
            gc.collect()
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def chunks(data: bytes, size: int) -> List[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_standin(*args: str) -> "Tuple[subprocess.Popen[str], Dict[str, Any]]":
    """The stand-in server in its own process (``python -m yaxmpp.testing ARGS``), so that its
    work does not share this process's GIL; returns it and its client options."""
    process = subprocess.Popen(
        [sys.executable, "-m", "yaxmpp.testing", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        universal_newlines=True,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def stop_standin(process: "subprocess.Popen[str]", timeout: float = 30) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write("quit\n")
        process.stdin.close()
    except OSError:
        pass
    process.wait(timeout)


def standin_client(options: "Dict[str, Any]", **overrides: Any) -> Any:
    """A ``yaxmpp.Client`` pointed at a stand-in server from its JSON options (STARTTLS port
    only unless overridden); ``overrides`` are further Client arguments."""
    from yaxmpp import Client

    arguments: Dict[str, Any] = {
        "host": options["host"],
        "port": options["port"],
        "tls_port": None,
        "domain": options["domain"],
        "cafile": options.get("cafile"),
    }
    # Each client its own resource: the stand-in, as real servers do, ends the older of two
    # sessions on one full JID with a <conflict/> stream error.
    arguments["resource"] = "bench-%d-%d" % (os.getpid(), next(_RESOURCES))
    arguments.update(overrides)
    return Client(str(options["login"]), str(options["token"]), **arguments)


_RESOURCES = itertools.count(1)
