"""Opening the TCP connection: the STARTTLS port first, the direct-TLS port as the fallback."""

from __future__ import annotations

import socket
from typing import List, Optional, Tuple

from .deadline import Deadline
from .errors import ConnectError, Timeout

__all__ = ["dial"]


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pings and acks are tiny
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def _describe(exc: OSError) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__


def dial(host: str, port: Optional[int], tls_port: Optional[int], deadline: Deadline) -> Tuple[socket.socket, bool]:
    """Connect to ``host``; return the socket and whether TLS must start at the first byte.

    ``port`` (STARTTLS) is tried first.  If the TCP connect to it fails (refused,
    unreachable, timed out) and ``tls_port`` is set, ``tls_port`` is tried with direct TLS.
    When both are set, the first attempt gets at most half of the time left, so a silently
    dropped port 5222 still leaves time for port 443.
    """
    attempts: List[Tuple[int, bool]] = []
    if port is not None:
        attempts.append((port, False))
    if tls_port is not None:
        attempts.append((tls_port, True))
    if not attempts:
        raise ValueError("port and tls_port cannot both be None")
    failures: List[str] = []
    for index, (number, direct_tls) in enumerate(attempts):
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            break
        budget = remaining
        if remaining is not None and index == 0 and len(attempts) > 1:
            budget = remaining / 2
        try:
            sock = socket.create_connection((host, number), timeout=budget)
        except socket.gaierror as exc:
            raise ConnectError("cannot resolve %s: %s" % (host, exc.strerror or exc)) from None
        except OSError as exc:
            failures.append("%s:%d %s" % (host, number, _describe(exc)))
            continue
        _tune(sock)
        return sock, direct_tls
    if deadline.expired:
        raise Timeout("timed out after %gs connecting to %s (%s)" % (deadline.seconds, host, "; ".join(failures) or "no attempt"))
    raise ConnectError("cannot connect to %s" % "; ".join(failures))
