"""A client's configuration, checked once and frozen: every layer below ``Client`` reads it here.

:class:`Options` is built by :class:`~yaxmpp.Client` from its keywords; each option is declared
and validated in this one place and handed down as is (the session, the connection and the
protocol core all read from it).  Invalid values raise :class:`~yaxmpp.UsageError` at once,
in the caller's thread, never later from deep inside.
"""

from __future__ import annotations

import ssl
import urllib.parse
from typing import Any, Callable, Optional, Tuple

from ._version import __version__
from .deadline import check_timeout
from .dial import check_host
from .diskapi import DEFAULT_API_URL
from .errors import UsageError
from .policy import Reconnect
from .protocol.core import ClientProtocol, VersionInfo
from .protocol.limits import Limits
from .protocol.redact import Redactor, Secret
from .protocol.sasl import Mechanism, make_mechanism
from .resync import Item
from .tls import create_default_context

__all__ = ["Options", "DEFAULT_HOST"]

DEFAULT_HOST = "push.xmpp.yandex.ru"


def _check_port(name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise UsageError("%s must be a TCP port number (1-65535) or None" % name)
    return value


def _check_text(name: str, value: Any, *, allow_none: bool = False) -> Optional[str]:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError("%s must be a non-empty string without control characters" % name)
    return value


def _check_callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise UsageError("%s must be callable or None" % name)
    return value


def _check_api_url(value: Any) -> str:
    text = _check_text("api_url", value) or ""
    try:
        parts = urllib.parse.urlsplit(text)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise UsageError("api_url must be an https:// URL") from None
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError("api_url must be an https:// URL without query, fragment or credentials")
    return text


class Options:
    """Everything a client needs, fixed when it is made.  Read-only."""

    __slots__ = (
        "login",
        "mechanism",
        "host",
        "port",
        "tls_port",
        "domain",
        "resource",
        "timeout",
        "close_timeout",
        "request_timeout",
        "ssl_context",
        "version",
        "limits",
        "subscribe",
        "on_notification",
        "on_connect",
        "on_disconnect",
        "max_pending",
        "compress",
        "reconnect",
        "keepalive",
        "keepalive_timeout",
        "max_redirects",
        "check_revision",
        "api_url",
        "api_timeout",
        "cafile",
        "_token",
    )

    login: str
    mechanism: Mechanism
    host: str
    port: Optional[int]
    tls_port: Optional[int]
    domain: str
    resource: Optional[str]
    timeout: float
    close_timeout: float
    request_timeout: float
    ssl_context: ssl.SSLContext
    version: VersionInfo
    limits: Limits
    subscribe: bool
    on_notification: Optional[Callable[[Item], None]]
    on_connect: Optional[Callable[[Any], None]]
    on_disconnect: Optional[Callable[[Any], None]]
    max_pending: int
    compress: bool
    reconnect: Optional[Reconnect]
    keepalive: Optional[float]
    keepalive_timeout: float
    max_redirects: int
    check_revision: bool
    api_url: str
    api_timeout: float
    cafile: Optional[str]
    _token: Optional[Secret]

    def __init__(
        self,
        login: str,
        token: Any,
        *,
        host: str = DEFAULT_HOST,
        port: Optional[int] = 5222,
        tls_port: Optional[int] = 443,
        domain: str = "ya.ru",
        resource: Optional[str] = "YaDisk-client",
        timeout: float = 30.0,
        close_timeout: float = 5.0,
        request_timeout: Optional[float] = None,
        cafile: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        client_name: str = "yaxmpp",
        client_version: str = __version__,
        client_os: Optional[str] = None,
        limits: Optional[Limits] = None,
        subscribe: bool = True,
        on_notification: Optional[Callable[[Item], None]] = None,
        max_pending: int = 10000,
        compress: bool = False,
        reconnect: Optional[Reconnect] = None,
        keepalive: Optional[float] = 60.0,
        keepalive_timeout: float = 20.0,
        on_connect: Optional[Callable[[Any], None]] = None,
        on_disconnect: Optional[Callable[[Any], None]] = None,
        max_redirects: int = 3,
        mechanism: "str | Mechanism | None" = None,
        check_revision: bool = False,
        api_url: str = DEFAULT_API_URL,
        api_timeout: float = 10.0,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "login", _check_text("login", login))
        set_(self, "host", check_host(_check_text("host", host) or ""))
        set_(self, "domain", _check_text("domain", domain))
        set_(self, "resource", _check_text("resource", resource, allow_none=True))
        set_(self, "port", _check_port("port", port))
        set_(self, "tls_port", _check_port("tls_port", tls_port))
        if port is None and tls_port is None:
            raise UsageError("port and tls_port cannot both be None")
        set_(self, "timeout", check_timeout("timeout", timeout, allow_none=False))
        set_(self, "close_timeout", check_timeout("close_timeout", close_timeout, allow_none=False))
        set_(self, "request_timeout", check_timeout("request_timeout", request_timeout if request_timeout is not None else timeout, allow_none=False))
        set_(self, "keepalive", check_timeout("keepalive", keepalive, allow_none=True))
        set_(self, "keepalive_timeout", check_timeout("keepalive_timeout", keepalive_timeout, allow_none=False))
        if reconnect is not None and not isinstance(reconnect, Reconnect):
            raise UsageError("reconnect must be a yaxmpp.Reconnect policy or None")
        set_(self, "reconnect", reconnect)
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise UsageError("max_pending must be a positive integer")
        set_(self, "max_pending", max_pending)
        if isinstance(max_redirects, bool) or not isinstance(max_redirects, int) or max_redirects < 0:
            raise UsageError("max_redirects must be a non-negative integer")
        set_(self, "max_redirects", max_redirects)
        if limits is not None and not isinstance(limits, Limits):
            raise UsageError("limits must be a yaxmpp.Limits or None")
        set_(self, "limits", limits or Limits())
        set_(self, "subscribe", bool(subscribe))
        set_(self, "compress", bool(compress))
        set_(self, "on_notification", _check_callable("on_notification", on_notification))
        set_(self, "on_connect", _check_callable("on_connect", on_connect))
        set_(self, "on_disconnect", _check_callable("on_disconnect", on_disconnect))
        set_(
            self,
            "version",
            VersionInfo(
                _check_text("client_name", client_name) or "",
                _check_text("client_version", client_version) or "",
                _check_text("client_os", client_os, allow_none=True),
            ),
        )
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise UsageError("ssl_context must be an ssl.SSLContext or None")
        set_(self, "ssl_context", ssl_context if ssl_context is not None else create_default_context(cafile))
        set_(self, "cafile", cafile)
        if not isinstance(check_revision, bool):
            raise UsageError("check_revision must be True or False")
        set_(self, "check_revision", check_revision)
        set_(self, "api_url", _check_api_url(api_url))
        set_(self, "api_timeout", check_timeout("api_timeout", api_timeout, allow_none=False))
        if isinstance(token, (str, Secret)):
            set_(self, "_token", Secret(token))
        elif check_revision:
            raise UsageError("check_revision needs the token as a string")
        else:
            set_(self, "_token", None)
        try:
            set_(self, "mechanism", make_mechanism(mechanism, login, token))
        except UsageError:
            raise
        except (ValueError, TypeError) as exc:
            raise UsageError(str(exc)) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Options are read-only")

    @property
    def callbacks(self) -> bool:
        """Whether any callback is set (they run on the dispatcher thread)."""
        return (
            self.on_notification is not None
            or self.on_connect is not None
            or self.on_disconnect is not None
            or (self.reconnect is not None and self.reconnect.on_retry is not None)
        )

    @property
    def token(self) -> Optional[Secret]:
        """The token as a :class:`~yaxmpp.protocol.redact.Secret` (for the REST revision
        check); None when a custom mechanism was given something else."""
        return self._token

    def targets(self) -> Tuple[str, Optional[int], Optional[int]]:
        """Where the first attempt dials: (host, STARTTLS port, direct-TLS port)."""
        return self.host, self.port, self.tls_port

    def make_core(self, tls: bool, redactor: Optional[Redactor] = None) -> ClientProtocol:
        """A fresh protocol core for one connection; ``tls``: the transport is TLS already;
        ``redactor``: the client's (one per client, shared by its connections)."""
        return ClientProtocol(
            self.mechanism,
            domain=self.domain,
            resource=self.resource,
            tls=tls,
            version=self.version,
            limits=self.limits,
            compress=self.compress,
            redactor=redactor,
        )

    def __repr__(self) -> str:
        return "<yaxmpp.Options login=%r host=%r port=%r tls_port=%r domain=%r>" % (
            self.login,
            self.host,
            self.port,
            self.tls_port,
            self.domain,
        )

