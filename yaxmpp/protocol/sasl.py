"""SASL mechanisms: what the client puts in ``<auth>`` and answers to challenges.

A mechanism is any object with a ``name``, an ``initial_response()`` returning the raw bytes of
the initial response (or ``None`` for none), a ``challenge(data)`` returning the raw response to
a server challenge, optionally ``success(data)`` checking the data the server sends with its
success, and ``secrets()`` naming the strings that must never be logged.  The core
base64-encodes, sends and redacts; mechanisms never see a socket.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Optional

from ..errors import AuthError

from .redact import MASK, Secret

__all__ = ["Mechanism", "XYandexOAuth", "Plain", "XOAuth2", "MECHANISMS", "make_mechanism"]


class Mechanism:
    """Base class of SASL mechanisms.  Subclass it to plug in another mechanism."""

    name = ""

    def initial_response(self) -> Optional[bytes]:
        raise NotImplementedError

    def challenge(self, data: bytes) -> bytes:
        """Answer a ``<challenge/>``; by default a challenge is a protocol failure."""
        raise AuthError("unexpected-challenge", "the %s mechanism takes no challenge" % self.name)

    def success(self, data: bytes) -> None:
        """Check the additional data of ``<success/>`` (``b""`` when there is none), e.g. a
        SCRAM server signature, before the stream restarts.  Raise a yaxmpp error (such as
        :class:`~yaxmpp.errors.AuthError`) to refuse it: the stream then ends with that
        error; any other exception ends it with ``AuthError("mechanism-failure")``.  By
        default nothing is checked."""

    def secrets(self) -> Iterable[str]:
        """Strings that must never reach a log line or a message."""
        return ()

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self.name)


class XYandexOAuth(Mechanism):
    """``X-YANDEX-OAUTH``: base64(login + NUL + OAuth token) as the initial response (step 5)."""

    name = "X-YANDEX-OAUTH"

    def __init__(self, login: str, token: "str | Secret") -> None:
        if not login or "\0" in login:
            raise ValueError("login must be a non-empty string without NUL")
        self.login = login
        self._token = Secret(token)
        if not self._token.reveal() or "\0" in self._token.reveal():
            raise ValueError("token must be a non-empty string without NUL")

    def initial_response(self) -> bytes:
        return self.login.encode("utf-8") + b"\0" + self._token.reveal().encode("utf-8")

    def secrets(self) -> Iterable[str]:
        return (self._token.reveal(),)

    def __repr__(self) -> str:
        return "<XYandexOAuth login=%r token=%s>" % (self.login, MASK)


class Plain(Mechanism):
    """``PLAIN`` (RFC 4616): authzid NUL login NUL password.  Only ever sent over TLS."""

    name = "PLAIN"

    def __init__(self, login: str, password: "str | Secret", authzid: str = "") -> None:
        if not login or "\0" in login or "\0" in authzid:
            raise ValueError("login must be a non-empty string without NUL")
        self.login = login
        self.authzid = authzid
        self._password = Secret(password)
        if not self._password.reveal() or "\0" in self._password.reveal():
            raise ValueError("password must be a non-empty string without NUL")

    def initial_response(self) -> bytes:
        return ("%s\0%s\0%s" % (self.authzid, self.login, self._password.reveal())).encode("utf-8")

    def secrets(self) -> Iterable[str]:
        return (self._password.reveal(),)

    def __repr__(self) -> str:
        return "<%s login=%r password=%s>" % (type(self).__name__, self.login, MASK)


class XOAuth2(Plain):
    """``X-OAUTH2`` (Google Talk style, also in ejabberd): NUL login NUL token, like PLAIN
    with an OAuth token for the password."""

    name = "X-OAUTH2"

    def __init__(self, login: str, token: "str | Secret") -> None:
        super().__init__(login, token)


#: Built-in mechanisms by name; each is made from (login, token).
MECHANISMS: Dict[str, Callable[[str, "str | Secret"], Mechanism]] = {
    "X-YANDEX-OAUTH": XYandexOAuth,
    "PLAIN": Plain,
    "X-OAUTH2": XOAuth2,
}


def make_mechanism(spec: "str | Mechanism | None", login: str, token: "str | Secret") -> Mechanism:
    """The mechanism a client uses: a :class:`Mechanism` as given, a built-in by name, or
    ``X-YANDEX-OAUTH`` by default."""
    if isinstance(spec, Mechanism):
        return spec
    name = (spec or XYandexOAuth.name).upper()
    try:
        factory = MECHANISMS[name]
    except KeyError:
        raise ValueError("unknown SASL mechanism %r (built in: %s)" % (spec, ", ".join(MECHANISMS))) from None
    return factory(login, token)
