"""Reading an answer's body within a byte cap, whatever the server sends.

A body may be endless, or announced smaller than it is, or compressed: a 1 MB gzip body can
inflate to gigabytes, and aiohttp inflates each network chunk whole before anyone can count it.
So the client asks aiohttp for the raw bytes (`auto_decompress=False`, `Accept-Encoding: gzip,
deflate`) and `read_capped` reads them chunk by chunk, inflating gzip and deflate here with
zlib's `max_length`, so that neither the bytes on the wire nor the bytes they inflate to ever
exceed the cap by more than one chunk. Any other encoding is refused (`UnsupportedEncoding`).
"""

from __future__ import annotations

import zlib
from typing import Final

import aiohttp

__all__ = ["ACCEPT_ENCODING", "UnsupportedEncoding", "read_capped"]

ACCEPT_ENCODING: Final = "gzip, deflate"
_CHUNK: Final = 64 * 1024
_IDENTITY: Final = frozenset({"", "identity"})


class UnsupportedEncoding(ValueError):
    """The answer's Content-Encoding is one the client did not ask for and cannot decode."""


class _Inflater:
    """gzip or deflate (zlib-wrapped, or raw as some servers send it), a bounded step at a time."""

    __slots__ = ("_decompressor", "_raw_fallback")

    def __init__(self, encoding: str) -> None:
        if encoding in ("gzip", "x-gzip"):
            self._decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._raw_fallback = False
        elif encoding == "deflate":
            self._decompressor = zlib.decompressobj(zlib.MAX_WBITS)
            self._raw_fallback = True
        else:
            raise UnsupportedEncoding(encoding)

    def inflate(self, data: bytes, room: int) -> bytes:
        """At most `room` bytes of what `data` (after any input left over) inflates to."""
        pending = self._decompressor.unconsumed_tail + data
        try:
            return self._decompressor.decompress(pending, room)
        except zlib.error:
            if not self._raw_fallback:
                raise
            self._raw_fallback = False
            self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._decompressor.decompress(pending, room)


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """The body, decoded, up to `cap` bytes, and whether there was more (then it is cut at `cap`
    and the rest is left unread). Raises `UnsupportedEncoding`, or `zlib.error` for a body that
    does not inflate."""
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    inflater = None if encoding in _IDENTITY else _Inflater(encoding)
    body = bytearray()
    received = 0
    while True:
        chunk = await response.content.read(_CHUNK)
        if not chunk:
            return bytes(body), False
        received += len(chunk)
        if inflater is not None:
            chunk = inflater.inflate(chunk, cap + 1 - len(body))
        body += chunk
        if len(body) > cap or received > cap:
            return bytes(body[:cap]), True
