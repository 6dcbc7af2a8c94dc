"""``python -m yaxmpp.testing``: run the stand-in server in the foreground.

Prints one JSON line with the client options (host, ports, CA file, login, token), then reads
commands, one per line, on standard input:

``push N``      send N Disk pushes to every subscribed client (prints ``pushed N``)
``ping``        ping every client (prints ``pinged K``)
``sessions``    print how many clients are connected and subscribed
``quit``        stop (also at end of input)
"""

from __future__ import annotations

import argparse
import json
import sys

from .server import FakeServer


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m yaxmpp.testing", description=__doc__.splitlines()[0])
    parser.add_argument("--login", default="test")
    parser.add_argument("--token", default="t")
    parser.add_argument("--port", type=int, default=0, help="STARTTLS port (default: any free one)")
    parser.add_argument("--tls-port", type=int, default=0, help="direct-TLS port (default: any free one)")
    parser.add_argument("--plain", action="store_true", help="also offer SASL PLAIN (token as password)")
    parser.add_argument("--ping-interval", type=float, default=None)
    args = parser.parse_args()
    mechanisms = ("X-YANDEX-OAUTH", "PLAIN") if args.plain else ("X-YANDEX-OAUTH",)
    with FakeServer(
        login=args.login,
        token=args.token,
        starttls_port=args.port,
        tls_port=args.tls_port,
        mechanisms=mechanisms,
        ping_interval=args.ping_interval,
    ) as server:
        options = dict(server.client_options(), login=args.login, token=args.token)
        print(json.dumps(options), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            if words[0] == "push":
                count = int(words[1]) if len(words) > 1 else 1
                sessions = [s for s in server.sessions if s.subscribed.is_set() and not s.ended.is_set()]
                for session in sessions:
                    session.push_many(count)
                print("pushed %d" % (count * len(sessions)), flush=True)
            elif words[0] == "ping":
                sessions = [s for s in server.sessions if s.session_started.is_set() and not s.ended.is_set()]
                for session in sessions:
                    session.ping()
                print("pinged %d" % len(sessions), flush=True)
            elif words[0] == "sessions":
                live = [s for s in server.sessions if not s.ended.is_set()]
                print("sessions %d subscribed %d" % (len(live), sum(s.subscribed.is_set() for s in live)), flush=True)
            else:
                print("unknown command %r" % words[0], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
