"""Wait until an XMPP server answers a stream header with <stream:features> on 127.0.0.1.

usage: python3 wait_xmpp.py PORT DOMAIN TIMEOUT [PIDFILE_OR_PID]

A TCP accept alone is not enough (another server may hold the port, or the listener may be up
before the host is).  Gives up early when the given process has died.  Exit status 0 = ready.
"""

import os
import socket
import sys
import time

HEADER = (
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client'"
    " xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>"
)


def answers(port: int, domain: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 2) as sock:
            sock.settimeout(2)
            sock.sendall((HEADER % domain).encode())
            data = b""
            while b"features" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
            return True
    except OSError:
        return False


def alive(process: str) -> bool:
    if not process:
        return True
    if not process.isdigit():  # a pidfile that may not exist yet
        try:
            with open(process) as f:
                process = f.read().strip()
        except OSError:
            return True
        if not process.isdigit():
            return True
    try:
        os.kill(int(process), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def main() -> int:
    port, domain, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    process = sys.argv[4] if len(sys.argv) > 4 else ""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if answers(port, domain):
            print("port %d ready after %.2fs" % (port, time.monotonic() - start))
            return 0
        if not alive(process):
            print("port %d: the server process exited" % port, file=sys.stderr)
            return 1
        time.sleep(0.1)
    print("port %d not ready after %.0fs" % (port, limit), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
