"""Opening the TCP connection: bounded, cancellable name resolution, then the STARTTLS port
first and the direct-TLS port as the fallback; and the checks on host names (a configured
host, a ``see-other-host`` redirect target) before any of that."""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import threading
from encodings import idna
from typing import Any, Dict, List, Optional, Tuple

from .cancel import MAX_WAIT, Cancel, wait_socket
from .deadline import Deadline
from .errors import ClientClosed, ConnectError, ProtocolError, Timeout, UsageError

__all__ = ["dial", "resolve", "parse_redirect", "check_host", "parse_host_port"]

AddrInfo = Tuple[Any, ...]

CLOSED_DURING_CONNECT = "the client was closed during connect()"
STEP_RESOLVE = "resolving the server's name"
STEP_CONNECT = "connecting"

MAX_NAME = 253  # octets in a DNS name, without the final dot
MAX_LABEL = 63
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")
_DOTS = ("\u3002", "\uff0e", "\uff61")  # the full stops IDNA reads as dots
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, 10035}  # 10035: WSAEWOULDBLOCK


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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, UnicodeError):
        return "not a valid host name"
    return type(exc).__name__  # an unexpected failure: its text could be anything


# -- host names -----------------------------------------------------------------------------


class _Bad(Exception):
    """Why a host or target is unusable (words only: the value itself is never repeated)."""


def _check_name(host: str) -> str:
    """A host name or IP literal -> the form to connect to (IDNA A-labels, IPv6 unbracketed)."""
    if not host:
        raise _Bad("the host is empty")
    if any(ch.isspace() or not ch.isprintable() for ch in host):
        raise _Bad("the host contains spaces or control characters")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise _Bad("only an IPv6 address may be in brackets")
    if ":" in host:
        if "%" in host:
            raise _Bad("an IPv6 address with a zone is not accepted")
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise _Bad("not a valid IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    for dot in _DOTS:
        host = host.replace(dot, ".")
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    encoded: List[str] = []
    for label in labels:
        if not label:
            raise _Bad("the host has an empty DNS label")
        if label.isascii():
            ascii_label = label
        else:
            try:
                ascii_label = idna.ToASCII(label).decode("ascii")
            except UnicodeError:
                raise _Bad("the host has a non-ASCII label that IDNA cannot encode") from None
        if len(ascii_label) > MAX_LABEL:
            raise _Bad("the host has a DNS label longer than %d characters" % MAX_LABEL)
        if not _LABEL.match(ascii_label):
            raise _Bad("the host has characters not allowed in a host name")
        encoded.append(ascii_label)
    name = ".".join(encoded)
    if len(name) > MAX_NAME:
        raise _Bad("the host name is longer than %d characters" % MAX_NAME)
    return name


def _check_port(text: str) -> int:
    if not _PORT.match(text) or not 0 < int(text) < 65536:
        raise _Bad("the port is not a number from 1 to 65535")
    return int(text)


def _split_target(value: str) -> Tuple[str, Optional[int]]:
    if len(value) > MAX_NAME + 16:
        raise _Bad("the target is too long")
    if value.startswith("["):
        inner, bracket, rest = value[1:].partition("]")
        if not bracket:
            raise _Bad("an IPv6 address has no closing bracket")
        if not rest:
            return _check_name("[%s]" % inner), None
        if not rest.startswith(":"):
            raise _Bad("something other than a port follows the IPv6 address")
        return _check_name("[%s]" % inner), _check_port(rest[1:])
    colons = value.count(":")
    if colons == 0:
        return _check_name(value), None
    if colons > 1:
        raise _Bad("an IPv6 address must be in brackets (a port after it would be ambiguous)")
    host, _, port = value.partition(":")
    if not host:
        raise _Bad("the host is empty")
    return _check_name(host), _check_port(port)


def parse_redirect(value: str) -> Tuple[str, Optional[int]]:
    """A ``see-other-host`` target (``host``, ``host:port``, ``[v6]`` or ``[v6]:port``) ->
    (host to connect to, port or None).

    :class:`~yaxmpp.ProtocolError` for anything unusable: no host, a bad or zero port, an
    empty or over-long DNS label, a name over 253 characters, an IPv6 address outside
    brackets, garbage after the address, spaces or control characters, a non-ASCII name IDNA
    cannot encode.  The message says what is wrong without repeating the value (it comes
    from the server).  Non-ASCII names come back as IDNA A-labels (``xn--...``).
    """
    if not isinstance(value, str):
        raise ProtocolError("the server redirected to an unusable host: not text")
    try:
        return _split_target(value.strip(" \t\r\n"))
    except _Bad as exc:
        raise ProtocolError("the server redirected to an unusable host: %s" % exc) from None


def check_host(host: str) -> str:
    """A configured host (a name, an IPv4 address, or an IPv6 address with or without
    brackets; no port) -> the form to connect to; :class:`~yaxmpp.UsageError` saying what is
    wrong otherwise (the same rules as :func:`parse_redirect`)."""
    if not isinstance(host, str):
        raise UsageError("host must be a string, not %s" % type(host).__name__)
    try:
        if (host.count(":") == 1 and not host.startswith("[")) or (host.startswith("[") and "]:" in host):
            raise _Bad("the host must not name a port (use port= and tls_port=)")
        if len(host) > MAX_NAME + 16:
            raise _Bad("the host name is longer than %d characters" % MAX_NAME)
        return _check_name(host)
    except _Bad as exc:
        raise UsageError("host is unusable: %s" % exc) from None


def parse_host_port(value: str) -> Tuple[str, Optional[int]]:
    """Older interface, kept for callers not yet moved to :func:`parse_redirect`:
    the same result, but :class:`~yaxmpp.UsageError` (a ValueError) on a bad value, and a
    bare IPv6 address is taken whole, as a host without a port."""
    value = value.strip()
    try:
        if value.count(":") > 1 and not value.startswith("["):
            return _check_name(value), None
        return _split_target(value)
    except _Bad as exc:
        raise UsageError("unusable host: %s" % exc) from None


# -- name resolution ------------------------------------------------------------------------


def _wait_event(event: threading.Event, deadline: Deadline) -> bool:
    while True:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            return event.is_set()
        if event.wait(MAX_WAIT if remaining is None else min(remaining, MAX_WAIT)):
            return True


def resolve(host: str, port: int, deadline: Deadline, cancel: Optional[Cancel] = None) -> List[AddrInfo]:
    """``getaddrinfo`` within the deadline, stopped early by ``cancel``.

    The system resolver cannot be interrupted, so a name is looked up on a helper thread
    (``yaxmpp-resolve``) that is waited for until it answers, the deadline passes or
    ``cancel`` is set, whichever comes first; a resolver still hanging then is left to finish
    on its own (a daemon thread).  IP literals need no lookup.

    Raises :class:`~yaxmpp.ConnectError` for any failure of the lookup (whatever the
    resolver raised), :class:`~yaxmpp.Timeout` at the deadline and
    :class:`~yaxmpp.ClientClosed` when cancelled.
    """
    if cancel is not None and cancel.cancelled:
        raise ClientClosed(CLOSED_DURING_CONNECT)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        try:
            return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
        except Exception as exc:
            raise ConnectError("cannot use the address %s: %s" % (host, _describe(exc)), host=host) from None
    result: Dict[str, Any] = {}
    done = threading.Event()

    def lookup() -> None:
        try:
            result["addresses"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:  # all of it goes to the caller, never to the thread hook
            result["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=lookup, name="yaxmpp-resolve", daemon=True)
    remove = cancel.on_cancel(done.set) if cancel is not None else None
    try:
        worker.start()
        _wait_event(done, deadline)
    finally:
        if remove is not None:
            remove()
    if cancel is not None and cancel.cancelled:
        raise ClientClosed(CLOSED_DURING_CONNECT)
    if "error" in result:
        raise ConnectError("cannot resolve %s: %s" % (host, _describe(result["error"])), host=host)
    if "addresses" not in result:
        raise Timeout("timed out after %gs resolving %s" % (deadline.seconds or 0.0, host), step=STEP_RESOLVE)
    addresses: List[AddrInfo] = result["addresses"]
    if not addresses:
        raise ConnectError("cannot resolve %s: no address" % host, host=host)
    return addresses


# -- TCP ------------------------------------------------------------------------------------


def _connect_one(info: AddrInfo, deadline: Deadline, cancel: Optional[Cancel]) -> socket.socket:
    """A non-blocking connect to one address, waited for on the socket and the cancel."""
    family, kind, proto, _, address = info
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code in _IN_PROGRESS:
            while True:
                if cancel is not None and cancel.cancelled:
                    raise ClientClosed(CLOSED_DURING_CONNECT)
                remaining = deadline.remaining()
                if remaining is not None and remaining <= 0:
                    raise socket.timeout("timed out")
                if wait_socket(sock, True, remaining, cancel):
                    break
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code))
        sock.setblocking(True)
    except BaseException:
        sock.close()
        raise
    return sock


def _connect(addresses: List[AddrInfo], budget: Optional[float], cancel: Optional[Cancel]) -> socket.socket:
    deadline = Deadline(budget)
    last: Optional[OSError] = None
    for info in addresses:
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            break
        try:
            return _connect_one(info, deadline, cancel)
        except OSError as exc:
            last = exc
    raise last if last is not None else socket.timeout("timed out")


def dial(
    host: str,
    port: Optional[int],
    tls_port: Optional[int],
    deadline: Deadline,
    cancel: Optional[Cancel] = None,
) -> Tuple[socket.socket, bool]:
    """Connect to ``host``; return the socket and whether TLS must start at the first byte.

    ``port`` (STARTTLS) is tried first.  If the TCP connect to it fails (refused,
    unreachable, timed out) and ``tls_port`` is set, ``tls_port`` is tried with direct TLS.
    When both are set, the first attempt gets at most half of the time left, so a silently
    dropped port 5222 still leaves time for port 443.

    ``cancel`` (set from another thread) stops the name resolution and the TCP connect at
    once: :class:`~yaxmpp.ClientClosed`; its descriptor is closed before this returns.  The
    socket returned is in blocking mode (no timeout).
    """
    try:
        return _dial(host, port, tls_port, deadline, cancel)
    finally:
        if cancel is not None:
            cancel.close()


def _dial(
    host: str,
    port: Optional[int],
    tls_port: Optional[int],
    deadline: Deadline,
    cancel: Optional[Cancel],
) -> Tuple[socket.socket, bool]:
    attempts: List[Tuple[int, bool]] = []
    if port is not None:
        attempts.append((port, False))
    if tls_port is not None:
        attempts.append((tls_port, True))
    if not attempts:
        raise UsageError("port and tls_port cannot both be None")
    failures: List[str] = []
    tried: Optional[int] = None
    for index, (number, direct_tls) in enumerate(attempts):
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            break
        addresses = resolve(host, number, deadline, cancel)
        remaining = deadline.remaining()
        budget = remaining
        if remaining is not None and index == 0 and len(attempts) > 1:
            budget = remaining / 2
        tried = number
        try:
            sock = _connect(addresses, budget, cancel)
        except OSError as exc:
            failures.append("%s:%d %s" % (host, number, _describe(exc)))
            continue
        _tune(sock)
        return sock, direct_tls
    if deadline.expired:
        raise Timeout(
            "timed out after %gs connecting to %s (%s)" % (deadline.seconds or 0.0, host, "; ".join(failures) or "no attempt"),
            step=STEP_CONNECT,
        )
    raise ConnectError("cannot connect to %s" % "; ".join(failures), host=host, port=tried)
