"""Reading ``<stream:features>``: what the server offers at this stage of the stream."""

from __future__ import annotations

from typing import Optional, Tuple
from xml.etree.ElementTree import Element

from . import ns

__all__ = ["Features"]


class Features:
    """The offers in one ``<stream:features>`` element.

    ``mechanisms`` is ``None`` when no ``<mechanisms>`` element was sent and a (possibly empty)
    tuple of names otherwise: the seed's server sends an empty list before TLS.
    """

    __slots__ = ("starttls", "starttls_required", "mechanisms", "compression", "bind", "session", "session_optional")

    def __init__(self, element: Element) -> None:
        starttls = element.find(ns.STARTTLS)
        self.starttls = starttls is not None
        self.starttls_required = starttls is not None and starttls.find(ns.qname(ns.TLS, "required")) is not None
        mechanisms = element.find(ns.MECHANISMS)
        self.mechanisms: Optional[Tuple[str, ...]] = (
            None
            if mechanisms is None
            else tuple((m.text or "").strip() for m in mechanisms.iter(ns.MECHANISM) if (m.text or "").strip())
        )
        compression = element.find(ns.COMPRESSION)
        self.compression: Tuple[str, ...] = (
            ()
            if compression is None
            else tuple((m.text or "").strip() for m in compression.iter(ns.COMPRESSION_METHOD))
        )
        self.bind = element.find(ns.BIND_TAG) is not None
        session = element.find(ns.SESSION_TAG)
        self.session = session is not None
        self.session_optional = session is not None and session.find(ns.OPTIONAL) is not None

    def __repr__(self) -> str:
        return "Features(%s)" % ", ".join("%s=%r" % (k, getattr(self, k)) for k in self.__slots__)
