"""Opening the TCP connection: bounded name resolution, then the STARTTLS port first and the
direct-TLS port as the fallback."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any, Dict, List, Optional, Tuple

from .deadline import Deadline
from .errors import ConnectError, Timeout

__all__ = ["dial", "resolve", "parse_host_port"]

AddrInfo = Tuple[Any, ...]


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # pings and acks are tiny
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Where the platform allows, let the kernel notice a dead peer within a few minutes too.
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        option = getattr(socket, name, None)
        if option is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:  # pragma: no cover
                pass


def _describe(exc: OSError) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__


def parse_host_port(value: str) -> Tuple[str, Optional[int]]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port or None)."""
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host, port = value, ""
    if not host:
        raise ValueError("no host in %r" % value)
    if port:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("bad port in %r" % value)
        return host, int(port)
    return host, None


def resolve(host: str, port: int, deadline: Deadline) -> List[AddrInfo]:
    """``getaddrinfo`` within the deadline.

    The system resolver cannot be interrupted, so a name is looked up on a helper thread
    (``yaxmpp-resolve``) that is waited for at most until the deadline; if the resolver hangs
    past it, that daemon thread finishes on its own later.  IP literals need no lookup.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    result: Dict[str, Any] = {}

    def lookup() -> None:
        try:
            result["addresses"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    worker = threading.Thread(target=lookup, name="yaxmpp-resolve", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        raise Timeout("timed out after %gs resolving %s" % (deadline.seconds, host))
    if "error" in result:
        exc = result["error"]
        raise ConnectError("cannot resolve %s: %s" % (host, getattr(exc, "strerror", None) or exc))
    return result["addresses"]


def _connect(addresses: List[AddrInfo], budget: Optional[float]) -> socket.socket:
    deadline = Deadline(budget)
    last: Optional[OSError] = None
    for family, kind, proto, _, address in addresses:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last if last is not None else socket.timeout("timed out")


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
        addresses = resolve(host, number, deadline)
        remaining = deadline.remaining()
        budget = remaining
        if remaining is not None and index == 0 and len(attempts) > 1:
            budget = remaining / 2
        try:
            sock = _connect(addresses, budget)
        except OSError as exc:
            failures.append("%s:%d %s" % (host, number, _describe(exc)))
            continue
        _tune(sock)
        return sock, direct_tls
    if deadline.expired:
        raise Timeout("timed out after %gs connecting to %s (%s)" % (deadline.seconds, host, "; ".join(failures) or "no attempt"))
    raise ConnectError("cannot connect to %s" % "; ".join(failures))
