"""Limits on what the server may send: the guard rails of the stream parser."""

from __future__ import annotations

__all__ = ["Limits"]


class Limits:
    """Caps applied to every incoming stream.

    ``max_stanza_bytes`` (default 1 MiB) bounds the bytes of one stanza as it arrives, and so
    also a never-ending text node, tag or comment: the stream fails with
    :class:`~yaxmpp.ProtocolError` as soon as a stanza grows past it.  Disk pushes and server
    requests are a few hundred bytes.

    ``max_depth`` (default 32) bounds the nesting of elements inside one stanza (the stanza
    itself is depth 1).  XMPP stanzas seldom go deeper than 5.

    ``max_tag_bytes`` (default 16 KiB) bounds one tag, comment or other piece of markup.
    Besides memory it bounds CPU: expat re-reads an unfinished tag each time more bytes
    arrive, so a tag trickled in small pieces costs time quadratic in its length.  A Disk
    push's tags are a few hundred bytes.
    """

    __slots__ = ("max_stanza_bytes", "max_depth", "max_tag_bytes")

    def __init__(self, max_stanza_bytes: int = 1 << 20, max_depth: int = 32, max_tag_bytes: int = 16 << 10) -> None:
        if max_stanza_bytes < 1024:
            raise ValueError("max_stanza_bytes must be at least 1024")
        if max_depth < 4:
            raise ValueError("max_depth must be at least 4")
        if max_tag_bytes < 1024:
            raise ValueError("max_tag_bytes must be at least 1024")
        self.max_stanza_bytes = max_stanza_bytes
        self.max_depth = max_depth
        self.max_tag_bytes = max_tag_bytes

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):
            raise AttributeError("Limits is immutable")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return "Limits(max_stanza_bytes=%d, max_depth=%d, max_tag_bytes=%d)" % (
            self.max_stanza_bytes,
            self.max_depth,
            self.max_tag_bytes,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Limits):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> "tuple[int, int, int]":
        return (self.max_stanza_bytes, self.max_depth, self.max_tag_bytes)
