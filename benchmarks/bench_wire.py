"""Bytes on the wire for a whole session with 1,000 pushes, with and without zlib.

Counts what went through the client's socket (TLS records included) from the TCP connect to
the close: the negotiation, 1,000 Disk pushes and their acknowledgements.  The pushes are
sent one per write (as a server sends changes as they happen), and, for comparison, in
batches of 256.  The stand-in server offers zlib as the real one does.

    python benchmarks/bench_wire.py
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import yaxmpp  # noqa: E402
from yaxmpp.testing import FakeServer  # noqa: E402

PUSHES = 1000


def session_bytes(compress: bool, batched: bool) -> "tuple[int, int]":
    with FakeServer(login="test", token="token-for-the-wire-benchmark") as server:
        client = yaxmpp.Client("test", "token-for-the-wire-benchmark", compress=compress, **server.client_options())
        client.connect()
        session = server.wait_for_session()
        if batched:
            ids = session.push_many(PUSHES)
        else:
            ids = [
                session.push([{"type": "new", "key": "/disk/Documents/report-%d.txt" % i, "fid": str(10_000 + i), "size": str(1000 + i)}])
                for i in range(PUSHES)
            ]
        for _ in range(PUSHES):
            client.get_notification(timeout=10)
        session.wait_reply(ids[-1])
        transport = client._session.connection.transport
        client.close()
        return transport.bytes_received, transport.bytes_sent


def main() -> None:
    print("one session, %d pushes; bytes through the client's socket (TLS included)" % PUSHES)
    print("  %-28s %12s %12s %12s" % ("", "received", "sent", "total"))
    for batched in (False, True):
        rows = {}
        for compress in (False, True):
            rows[compress] = session_bytes(compress, batched)
            received, sent = rows[compress]
            label = "%s, %s" % ("zlib" if compress else "plain", "batched x256" if batched else "one per write")
            print("  %-28s %12d %12d %12d" % (label, received, sent, received + sent))
        plain, packed = sum(rows[False]), sum(rows[True])
        print("  %-28s %12s %12s %11.1fx" % ("ratio plain / zlib", "", "", plain / packed))


if __name__ == "__main__":
    main()
