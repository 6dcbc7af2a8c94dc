"""What the stand-in server is and how it misbehaves: one frozen :class:`ServerOptions`.

Every field defaults to what push.xmpp.yandex.ru does (where the seed documents it) and to
what RFC 6120 servers such as Prosody and ejabberd do elsewhere; the other values are the
misbehaviours tests need.  ``FakeServer(**switches)`` maps its keyword arguments onto these
fields (``FakeServer(options=ServerOptions(...))`` takes a whole object).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Optional, Tuple

__all__ = ["ServerOptions", "WRITE_MODES", "RESOURCE_CONFLICTS", "CA_FILE", "CERT_FILE", "KEY_FILE"]

_CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "certs")
#: The test CA that signed the stand-in server's certificate.
CA_FILE = os.path.join(_CERTS, "ca.pem")
CERT_FILE = os.path.join(_CERTS, "server.pem")
KEY_FILE = os.path.join(_CERTS, "server-key.pem")

#: ``normal``: one write per answer; ``bytewise``: every byte on the wire in its own write;
#: ``coalesced``: all the server has to say until the client speaks again in one write.
WRITE_MODES = ("normal", "bytewise", "coalesced")
#: ``replace``: a bind to a resource already bound ends the older session with a
#: ``<conflict/>`` stream error (Prosody, ejabberd); ``keep``: both sessions stay.
RESOURCE_CONFLICTS = ("replace", "keep")


@dataclass(frozen=True)
class ServerOptions:
    """The stand-in server's address, certificate and behaviour switches.

    Network: ``domain`` (the XMPP domain, ``ya.ru``), ``host``, ``starttls_port`` (0: any
    free port), ``tls_port`` (direct TLS from the first byte; None: no such listener),
    ``certfile``/``keyfile``/``cafile``.

    Yandex specifics (kept from the seed): ``offer_starttls`` (False: never offer
    ``<starttls/>``), ``ask_version`` (the unsolicited XEP-0092 query after the session),
    ``compression`` (zlib offered, before TLS too; False: never), ``mechanisms`` offered
    after TLS (``X-YANDEX-OAUTH`` and/or ``PLAIN`` with the token as the password).

    Misbehaviours: ``write_mode`` (see :data:`WRITE_MODES`), ``ping_before_bind`` (a ping
    between the post-auth features and the bind result), ``ping_interval`` (seconds of
    client silence before a ping; None: none), ``answer_close`` (False: never answer the
    client's ``</stream:stream>``), ``auth_failure`` (the SASL condition for a wrong token),
    ``subscribe_error`` (a stanza error condition refusing the Disk subscription),
    ``compression_after_auth`` (zlib offered only after authentication, as ejabberd does),
    ``compression_failure`` (refuse ``<compress/>`` with that condition),
    ``after_compressed`` (plain bytes right after ``<compressed/>``: a broken server),
    ``resource_conflict`` (see :data:`RESOURCE_CONFLICTS`).
    """

    domain: str = "ya.ru"
    host: str = "127.0.0.1"
    starttls_port: int = 0
    tls_port: Optional[int] = 0
    certfile: str = CERT_FILE
    keyfile: str = KEY_FILE
    cafile: str = CA_FILE
    offer_starttls: bool = True
    ask_version: bool = True
    compression: bool = True
    mechanisms: Tuple[str, ...] = ("X-YANDEX-OAUTH",)
    write_mode: str = "normal"
    ping_before_bind: bool = False
    ping_interval: Optional[float] = None
    answer_close: bool = True
    auth_failure: str = "not-authorized"
    subscribe_error: Optional[str] = None
    compression_after_auth: bool = False
    compression_failure: Optional[str] = None
    after_compressed: bytes = b""
    resource_conflict: str = "replace"

    def __post_init__(self) -> None:
        if self.write_mode not in WRITE_MODES:
            raise ValueError("write_mode must be one of %s" % (WRITE_MODES,))
        if self.resource_conflict not in RESOURCE_CONFLICTS:
            raise ValueError("resource_conflict must be one of %s" % (RESOURCE_CONFLICTS,))
        if self.ping_interval is not None and not self.ping_interval > 0:
            raise ValueError("ping_interval must be a positive number of seconds or None")
        object.__setattr__(self, "mechanisms", tuple(self.mechanisms))

    @classmethod
    def names(cls) -> Tuple[str, ...]:
        """The field names (the keyword arguments ``FakeServer`` maps onto this object)."""
        return tuple(f.name for f in fields(cls))
