"""Readers for the public cache traces in ``shared/data/cache-traces`` (keys only).

Each format follows the matching trace reader in Caffeine's simulator, which produced the
published numbers we compare against; ``shared/data/cache-traces/README.md`` has the rules and
the request and distinct-key counts that show a reader is right:

* ``lirs``: text, one decimal key per line; lines are stripped (``loop`` has CRLF), and empty
  lines and ``*`` lines (the LIRS simulator's checkpoint markers) are skipped.
* ``arc``: text ``start_block block_count ignored request_no``; a line stands for
  ``block_count`` requests, keys ``start_block .. start_block + block_count - 1``.
* ``scarab``: binary big-endian signed 64-bit keys (Java ``readLong``), no header.
* ``cache2k``: binary big-endian signed 32-bit keys (Java ``readInt``), no header.

Files may be gzip (``.gz``) or xz (``.xz``) compressed; both are read with the standard
library. Every reader is a generator, so a trace is never held in memory whole.
"""

from __future__ import annotations

import gzip
import lzma
import os
import sys
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Final, Literal, cast, get_args

TraceFormat = Literal["lirs", "arc", "scarab", "cache2k"]
FORMATS: Final[tuple[TraceFormat, ...]] = get_args(TraceFormat)

_CHUNK: Final = 1 << 20  # bytes per read of a binary trace (a multiple of 8)
# Base names of the cache2k traces, for files that are not in a ``cache2k`` folder.
_CACHE2K_NAMES: Final = ("web07", "web12", "orm-busy", "orm-night")


def traces_dir() -> Path | None:
    """``../shared/data/cache-traces`` beside the repository root, or ``None`` if absent."""
    root = Path(__file__).resolve().parents[2]
    path = root.parent / "shared" / "data" / "cache-traces"
    return path if path.is_dir() else None


def open_binary(path: str | os.PathLike[str]) -> BinaryIO:
    """Open ``path`` for reading bytes, decompressing ``.gz`` and ``.xz`` transparently."""
    name = os.fspath(path)
    if name.endswith(".gz"):
        return cast(BinaryIO, gzip.open(name, "rb"))
    if name.endswith(".xz"):
        return cast(BinaryIO, lzma.open(name, "rb"))
    if name.endswith(".zst"):
        raise ValueError(f"{name}: zstd is not in the standard library; recompress as .gz or .xz")
    return open(name, "rb")


def detect_format(path: str | os.PathLike[str]) -> TraceFormat:
    """Guess the format from the path: the nearest folder named after a format, else the
    file name (``*.lis*`` is ARC, ``scarab*`` scarab, the cache2k trace names cache2k,
    ``*.trace``/``*.trace.gz`` LIRS). Raises ``ValueError`` when nothing matches."""
    p = Path(path)
    for parent in p.parents:
        if parent.name in FORMATS:
            return parent.name
    name = p.name.lower()
    base = name.split(".", 1)[0]
    if ".lis" in name:
        return "arc"
    if base.startswith("scarab"):
        return "scarab"
    if base in _CACHE2K_NAMES:
        return "cache2k"
    if name.endswith((".trace", ".trace.gz")):
        return "lirs"
    raise ValueError(f"cannot tell the trace format of {p}; give it as one of {FORMATS}")


def iter_lirs(stream: BinaryIO) -> Iterator[int]:
    """Keys of a LIRS trace: one integer per line; empty and ``*`` lines skipped."""
    for number, line in enumerate(stream, 1):
        text = line.strip()
        if not text or text == b"*":
            continue
        try:
            yield int(text)
        except ValueError:
            raise ValueError(f"line {number}: not a key: {text[:40]!r}") from None


def iter_arc(stream: BinaryIO) -> Iterator[int]:
    """Keys of an ARC trace: each line ``start count ...`` expands to ``count`` keys."""
    for number, line in enumerate(stream, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            start, count = int(fields[0]), int(fields[1])
        except (ValueError, IndexError):
            raise ValueError(f"line {number}: not 'start count ...': {line[:60]!r}") from None
        if count == 1:
            yield start
        else:
            yield from range(start, start + count)


def _iter_big_endian(stream: BinaryIO, typecode: str, size: int) -> Iterator[int]:
    if array(typecode).itemsize != size:  # pragma: no cover (every mainstream platform)
        raise RuntimeError(f"array({typecode!r}) is not {size} bytes here")
    swap = sys.byteorder == "little"
    rest = b""
    while chunk := stream.read(_CHUNK):
        if rest:
            chunk = rest + chunk
        usable = len(chunk) - len(chunk) % size
        rest = chunk[usable:]
        keys = array(typecode)
        keys.frombytes(chunk[:usable])
        if swap:
            keys.byteswap()
        yield from keys
    if rest:
        raise ValueError(f"truncated trace: {len(rest)} trailing bytes (keys are {size} bytes)")


def iter_scarab(stream: BinaryIO) -> Iterator[int]:
    """Keys of a scarab trace: big-endian signed 64-bit integers."""
    return _iter_big_endian(stream, "q", 8)


def iter_cache2k(stream: BinaryIO) -> Iterator[int]:
    """Keys of a cache2k trace: big-endian signed 32-bit integers."""
    return _iter_big_endian(stream, "i", 4)


PARSERS: Final[dict[TraceFormat, Callable[[BinaryIO], Iterator[int]]]] = {
    "lirs": iter_lirs,
    "arc": iter_arc,
    "scarab": iter_scarab,
    "cache2k": iter_cache2k,
}


def read_trace(path: str | os.PathLike[str], fmt: TraceFormat | None = None) -> Iterator[int]:
    """The keys of the trace at ``path`` in request order; the format is detected from the
    path unless given. The file is opened on first use and closed when the generator ends."""
    parser = PARSERS[fmt if fmt is not None else detect_format(path)]
    return _read(path, parser)


def _read(
    path: str | os.PathLike[str], parser: Callable[[BinaryIO], Iterator[int]]
) -> Iterator[int]:
    with open_binary(path) as stream:
        yield from parser(stream)
