"""zlib stream compression (XEP-0138) for the transport, with guards against bombs.

One zlib stream per direction per connection.  Outgoing data is flushed with
``Z_SYNC_FLUSH`` after every write, so the server can parse each stanza at once.  Incoming
data is inflated in pieces of at most :data:`PIECE` bytes (``decompress(data, max_length)``),
so what is buffered stays small, and the output may not outgrow the input by more than
``max_ratio`` (a zlib bomb expands about 1000 times; XMPP traffic 5 to 60 times): past that,
or on corrupt data, :class:`~yaxmpp.ProtocolError`.

Both sides read and write the zlib format's two-byte header themselves and run zlib on the raw
deflate data behind it: the format's Adler-32 checksum comes only after the stream's last
block, which an XMPP stream never sends (its end is the connection's), so zlib would compute
it over every byte for nothing (about a quarter of the cost of inflating a push).  The bytes
on the wire are those of zlib's own format, byte for byte.
"""

from __future__ import annotations

import zlib

from .errors import ProtocolError

__all__ = ["Deflater", "Inflater", "PIECE"]

PIECE = 65536  # the most inflated bytes produced in one step
BUDGET_CAP = 16 << 20  # the expansion allowance never banks more than this


class Deflater:
    """Compresses outgoing writes; each result is complete and parseable by the peer.

    What a client sends is small (acknowledgements, pings), so a 1 KiB window and a small
    hash table do as well as zlib's defaults at a tenth of the memory (about 12 KiB, not 100+).
    """

    def __init__(self, level: int = 6, window_bits: int = 10, mem_level: int = 4) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, -window_bits, mem_level)
        # The header zlib itself would write for these settings, before the first bytes.
        self._header = zlib.compressobj(level, zlib.DEFLATED, window_bits, mem_level).flush(zlib.Z_SYNC_FLUSH)[:2]

    def compress(self, data: bytes) -> bytes:
        out = self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)
        if self._header:
            out, self._header = self._header + out, b""
        return out


class Inflater:
    """Inflates the incoming zlib stream piece by piece, within an expansion budget."""

    def __init__(self, max_ratio: int = 200) -> None:
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate: the header is read here
        self._headed = False  # the zlib header has been read
        self._tail = b""  # compressed input not inflated yet
        self._budget = 0
        self.max_ratio = max_ratio
        self.bytes_in = 0
        self.bytes_out = 0

    @property
    def pending(self) -> bool:
        """Compressed input is waiting to be inflated."""
        return bool(self._tail)

    def feed(self, data: bytes) -> None:
        self._tail = self._tail + data if self._tail else data
        self.bytes_in += len(data)
        self._budget = min(self._budget + len(data) * self.max_ratio, BUDGET_CAP)

    def next_piece(self) -> bytes:
        """The next at most :data:`PIECE` inflated bytes (``b""`` when more input is needed)."""
        if not self._tail:
            return b""
        if not self._headed:
            if len(self._tail) < 2:
                return b""
            _check_header(self._tail[0], self._tail[1])
            self._tail = self._tail[2:]
            self._headed = True
            if not self._tail:
                return b""
        try:
            out = self._z.decompress(self._tail, PIECE)
        except zlib.error as exc:
            self._tail = b""
            raise ProtocolError("corrupt zlib data from server: %s" % exc) from None
        self._tail = self._z.unconsumed_tail
        if self._z.eof:
            raise ProtocolError("the server ended its zlib stream")
        self._budget -= len(out)
        self.bytes_out += len(out)
        if self._budget < 0:
            raise ProtocolError("zlib data expands more than %d times: refusing a compression bomb" % self.max_ratio)
        return out


def _check_header(cmf: int, flg: int) -> None:
    """The zlib format's header (RFC 1950, 2.2): deflate with at most a 32 KiB window, a valid
    check, and no preset dictionary (XEP-0138 has none)."""
    if cmf & 0x0F != 8 or cmf >> 4 > 7 or (cmf << 8 | flg) % 31 or flg & 0x20:
        raise ProtocolError("corrupt zlib data from server: not a zlib stream header")
