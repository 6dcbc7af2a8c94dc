"""Helpers shared by the benchmark scripts: timing medians and the Disk push byte stream."""

from __future__ import annotations

import statistics
import time
from typing import Callable, List

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


def median_time(function: Callable[[], object], runs: int = 5) -> float:
    """Median wall time of ``runs`` calls (after one warm-up call)."""
    function()
    times: List[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def chunks(data: bytes, size: int) -> List[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
