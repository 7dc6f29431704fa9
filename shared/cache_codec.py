"""The byte format of cached values in Redis: one codec header byte, then the payload.

Why a header byte: lz4 only pays above about 1 KB (research note, caching.md section 0), so
small values stay raw, and a reader must tell the two apart without guessing. Unknown headers
are refused rather than passed through, so a value written by a newer agent (or by something
else entirely) is a miss, never garbage handed to a caller.

Layout:

- ``0x00`` + value: raw.
- ``0x01`` + ``lz4.block.compress(value, store_size=True)``: the 4-byte little-endian
  uncompressed size, then the lz4 block.
"""

from __future__ import annotations

from typing import Final

import lz4.block  # type: ignore[import-untyped]

__all__ = [
    "HEADER_LZ4",
    "HEADER_RAW",
    "MAX_DECODED_SIZE",
    "CorruptValue",
    "decode",
    "encode",
]

HEADER_RAW: Final = 0x00
HEADER_LZ4: Final = 0x01

MAX_DECODED_SIZE: Final = 512 * 1024 * 1024
"""Redis's own bulk-string limit; a stored size above it can only come from corrupt data."""

# An lz4 block expands at most ~255x (each extra length byte adds 255 bytes of match), so a
# stored size beyond this is corrupt: refuse it before lz4 allocates the output buffer.
_LZ4_MAX_RATIO: Final = 255
_LZ4_SIZE_BYTES: Final = 4
_RAW_PREFIX: Final = bytes([HEADER_RAW])
_LZ4_PREFIX: Final = bytes([HEADER_LZ4])


class CorruptValue(ValueError):  # noqa: N818 - the name the cache API promises.
    """The blob is empty, has an unknown header, or its lz4 payload does not decompress."""


def encode(value: bytes, *, compress_above: int) -> bytes:
    """Header + payload; lz4 only when ``len(value) > compress_above`` and it actually shrinks."""
    if len(value) > compress_above:
        packed: bytes = lz4.block.compress(value, store_size=True)
        if len(packed) < len(value):
            return _LZ4_PREFIX + packed
    return _RAW_PREFIX + value


def decode(blob: bytes) -> bytes:
    """The original value; raises :class:`CorruptValue` (and nothing else) for a bad blob."""
    if not blob:
        raise CorruptValue("empty blob (no codec header)")
    header = blob[0]
    if header == HEADER_RAW:
        return blob[1:]
    if header != HEADER_LZ4:
        raise CorruptValue(f"unknown codec header 0x{header:02x}")
    payload = memoryview(blob)[1:]
    if len(payload) < _LZ4_SIZE_BYTES:
        raise CorruptValue("lz4 blob shorter than its size prefix")
    size = int.from_bytes(payload[:_LZ4_SIZE_BYTES], "little")
    if size > MAX_DECODED_SIZE or size > _LZ4_MAX_RATIO * len(payload):
        raise CorruptValue(f"lz4 size prefix {size} is impossible for {len(payload)} bytes")
    try:
        value: bytes = lz4.block.decompress(payload)
    except (lz4.block.LZ4BlockError, ValueError) as exc:
        raise CorruptValue(f"lz4 payload does not decompress: {exc}") from exc
    return value
