"""A small HTTPS client for the Yandex REST and OAuth endpoints.

One request per connection (``Connection: close``), the whole exchange (DNS, TCP, TLS, request,
answer) within one deadline that trickling bytes cannot extend, an answer of at most
:data:`MAX_ANSWER` bytes, TLS verified like the XMPP connection (certifi or ``cafile``, host
name, TLS >= 1.2), redirects never followed.  The secrets a request carries (token, client
secret, refresh token) are masked out of every error it raises.  Standard library only.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.parse
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Tuple

from .cancel import Cancel
from .deadline import Deadline, check_timeout
from .dial import dial
from .errors import APIError, ClientClosed, ConnectionLost, Error, NetworkError, ProtocolError, Timeout, UsageError
from .protocol.redact import Redactor, Secret
from .tls import create_default_context
from .transport import Transport

__all__ = ["Answer", "request", "request_json", "MAX_ANSWER", "USER_AGENT"]

MAX_ANSWER = 1 << 20
STEP = "HTTPS request"

from ._version import __version__  # noqa: E402

USER_AGENT = "yaxmpp/%s" % __version__


_STATUS = re.compile(r"[0-9]{3}\Z")
_LENGTH = re.compile(r"[0-9]{1,18}\Z")  # ASCII digits only (str.isdigit takes "\u00b2" too)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _forms(secrets: Iterable[str]) -> List[str]:
    """``secrets`` and their URL encodings (a form body echoed back keeps them encoded);
    the redactor adds base64 and hex, and ignores case."""
    forms: List[str] = []
    for secret in secrets:
        if isinstance(secret, Secret):
            secret = secret.reveal()
        if secret:
            forms += [secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret), urllib.parse.quote_plus(secret)]
    return forms


def _printable(text: str) -> str:
    """``text`` with control characters (a terminal escape a server put in its error)
    shown as escapes."""
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), text)


class Answer(NamedTuple):
    status: int
    headers: Dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes


def _split_url(url: str) -> Tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError("not an https:// URL: %r" % url)
    try:
        port = parts.port or 443
    except ValueError:
        raise UsageError("bad port in URL %r" % url) from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname, port, path


def _dechunk(body: bytes) -> bytes:
    out: List[bytes] = []
    rest = body
    while True:
        line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            raise ProtocolError("truncated chunked HTTP answer")
        size = _chunk_size(line)
        if size is None:
            raise ProtocolError("bad chunk size in HTTP answer")
        if size == 0:
            return b"".join(out)
        if len(rest) < size + 2:
            raise ProtocolError("truncated chunked HTTP answer")
        out.append(rest[:size])
        rest = rest[size + 2 :]


def _chunk_size(line: bytes) -> Optional[int]:
    """The size on a chunk's first line (extensions ignored); None when it is not hex."""
    text = line.split(b";", 1)[0].strip()
    if not text or any(c not in b"0123456789abcdefABCDEF" for c in text):
        return None
    return int(text, 16)


def _chunks_complete(body: bytes) -> bool:
    """Whether a chunked ``body`` holds its last chunk and the end of its trailers (a
    malformed one counts as complete: the parser then says what is wrong)."""
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return False
        size = _chunk_size(body[pos:eol])
        if size is None:
            return True
        if size == 0:
            return body.startswith(b"\r\n", eol + 2) or body.find(b"\r\n\r\n", eol) >= 0
        pos = eol + 2 + size + 2
        if pos > len(body):
            return False


def _complete(raw: bytes) -> bool:
    """Whether ``raw`` is a whole answer with a known length (else: read to the end)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    fields: Dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            fields[name.strip().lower()] = value.strip().lower()
    if b"chunked" in fields.get(b"transfer-encoding", b""):
        return _chunks_complete(body)
    length = fields.get(b"content-length")
    return length is not None and length.isdigit() and len(body) >= int(length)


def _parse(raw: bytes) -> Answer:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ProtocolError("not an HTTP answer (no complete header)")
    lines = head.decode("iso-8859-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not _STATUS.match(status_line[1]):
        raise ProtocolError("not an HTTP answer")
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif "content-length" in headers:
        if not _LENGTH.match(headers["content-length"]):
            raise ProtocolError("bad Content-Length in HTTP answer")
        length = int(headers["content-length"])
        if len(body) < length:
            raise ProtocolError("truncated HTTP answer")
        body = body[:length]
    return Answer(int(status_line[1]), headers, body)


def request(
    method: str,
    url: str,
    *,
    headers: Optional[Mapping[str, str]] = None,
    form: Optional[Mapping[str, str]] = None,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    secrets: Iterable[str] = (),
    cancel: Optional[Cancel] = None,
) -> Answer:
    """One HTTPS request; the answer whatever its status.

    ``form`` is sent as ``application/x-www-form-urlencoded``.  Raises
    :class:`~yaxmpp.NetworkError` subclasses for the network (:class:`~yaxmpp.Timeout` when
    ``timeout`` passes), :class:`~yaxmpp.ProtocolError` for an answer that is not HTTP or is
    larger than :data:`MAX_ANSWER`, :class:`~yaxmpp.UsageError` for a bad URL, CA file or
    ``timeout`` (a positive number of seconds: every request is bounded).
    """
    seconds = check_timeout("timeout", timeout, allow_none=False)  # UsageError unless positive
    assert seconds is not None
    redactor = Redactor.with_encodings(_forms(secrets))
    try:
        return _request(method, url, headers or {}, form, seconds, cafile, cancel)
    except Error as exc:
        raise redactor.scrub_error(exc) from None


def _request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    form: Optional[Mapping[str, str]],
    timeout: float,
    cafile: Optional[str],
    cancel: Optional[Cancel],
) -> Answer:
    host, port, path = _split_url(url)
    context = create_default_context(cafile)
    deadline = Deadline(timeout)
    body = b""
    name = "[%s]" % host if ":" in host else host  # an IPv6 literal
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % (name if port == 443 else "%s:%d" % (name, port))]
    lines += ["User-Agent: %s" % USER_AGENT, "Accept: application/json", "Connection: close"]
    if form is not None:
        body = urllib.parse.urlencode(form).encode("ascii")
        lines.append("Content-Type: application/x-www-form-urlencoded")
    if form is not None or method not in ("GET", "HEAD"):
        lines.append("Content-Length: %d" % len(body))
    for name, value in headers.items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise UsageError("a header name or value holds a line break")
        lines.append("%s: %s" % (name, value))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body
    sock, _ = dial(host, port, None, deadline, cancel)
    transport = Transport(sock)
    forget = cancel.on_cancel(transport.shutdown) if cancel is not None else None  # stops TLS and reads too
    try:
        try:
            transport.start_tls(context, host, deadline=deadline)
            transport.send(data, deadline=deadline)
            received: List[bytes] = []
            size = 0
            while True:
                piece = transport.recv(deadline)
                if not piece:
                    break
                size += len(piece)
                if size > MAX_ANSWER:
                    raise ProtocolError("the HTTP answer from %s is larger than %d bytes" % (host, MAX_ANSWER))
                received.append(piece)
                if _complete(b"".join(received)):
                    break  # a server that keeps the connection open anyway cannot hold us
        except socket.timeout:
            raise Timeout("timed out after %gs waiting for https://%s" % (timeout, host), step=STEP) from None
        except (OSError, ValueError, Error) as exc:
            if cancel is not None and cancel.cancelled:
                raise ClientClosed("the HTTPS request to %s was cancelled" % host) from None
            if isinstance(exc, Error):
                raise
            raise NetworkError("HTTPS request to %s failed: %s" % (host, exc)) from None
    finally:
        if forget is not None:
            forget()
        transport.close(polite=False)
    if cancel is not None and cancel.cancelled:
        raise ClientClosed("the HTTPS request to %s was cancelled" % host)
    if not received:
        raise ConnectionLost("%s closed the connection without an answer" % host)
    return _parse(b"".join(received))


def request_json(
    method: str,
    url: str,
    *,
    headers: Optional[Mapping[str, str]] = None,
    form: Optional[Mapping[str, str]] = None,
    timeout: float = 10.0,
    cafile: Optional[str] = None,
    secrets: Iterable[str] = (),
    cancel: Optional[Cancel] = None,
) -> Dict[str, Any]:
    """:func:`request`, then the JSON object of a 2xx answer.

    An answer that is not 2xx, or not a JSON object, is an :class:`~yaxmpp.APIError` carrying
    the status and the API's ``error``/``error_description`` (or ``message``/``description``).
    """
    secrets = [s for s in secrets if s]
    answer = request(method, url, headers=headers, form=form, timeout=timeout, cafile=cafile, secrets=secrets, cancel=cancel)
    redactor = Redactor.with_encodings(_forms(secrets))
    try:
        document = json.loads(answer.body.decode("utf-8")) if answer.body else None
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        document = None
    if 200 <= answer.status < 300 and isinstance(document, dict):
        return document
    error = description = None
    if isinstance(document, dict):
        raw_error = document.get("error")
        raw_description = document.get("error_description", document.get("description", document.get("message")))
        error = _printable(redactor.scrub(str(raw_error)))[:200] if raw_error is not None else None
        description = _printable(redactor.scrub(str(raw_description)))[:500] if raw_description is not None else None
    host = urllib.parse.urlsplit(url).hostname
    if 200 <= answer.status < 300:
        message = "%s answered %d with something that is not a JSON object" % (host, answer.status)
    else:
        message = "%s answered HTTP %d" % (host, answer.status)
        if error:
            message += ": %s" % error
        if description:
            message += " (%s)" % description
    raise APIError(message, status=answer.status, error=error, description=description)
