"""Trace readers on tiny synthetic files, format detection, the ``bench cache`` command, and —
when ``../shared/data/cache-traces`` is present — the published trace facts and LRU hit ratios
(which show the readers and our LRU are right) and W-TinyLFU's lead on looping traces."""

from __future__ import annotations

import gzip
import io
import json
import lzma
import random
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cache.bench import bench_cache, replay
from agent.cache.policy import LRU, WTinyLFU
from agent.cache.traces import (
    detect_format,
    iter_arc,
    iter_cache2k,
    iter_lirs,
    iter_scarab,
    read_trace,
    traces_dir,
)

Reader = Callable[[Any], Iterator[int]]
REPO = Path(__file__).resolve().parents[2]
TRACES = traces_dir()
needs_traces = pytest.mark.skipif(
    TRACES is None, reason="../shared/data/cache-traces is not beside the repository"
)


def write(path: Path, data: bytes) -> Path:
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    elif path.name.endswith(".xz"):
        data = lzma.compress(data)
    path.write_bytes(data)
    return path


class Trickle(io.RawIOBase):
    """A stream that returns at most 3 bytes per read, so keys straddle reads."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self.data.read(min(size, 3) if size >= 0 else 3)


# ---- readers on synthetic files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        pytest.param(b"1\n2\n3\n", [1, 2, 3], id="one-key-per-line"),
        pytest.param(b"1\n*\n2\n*\n", [1, 2], id="star-checkpoints-skipped"),
        pytest.param(b"\n1\n\n\n2\n\n", [1, 2], id="empty-lines-skipped"),
        pytest.param(b"1\r\n2\r\n*\r\n\r\n3\r\n", [1, 2, 3], id="crlf-line-endings"),
        pytest.param(b"  7 \n\t8\n-9", [7, 8, -9], id="whitespace-stripped-no-final-newline"),
    ],
)
def test_lirs_reader(text: bytes, keys: list[int]) -> None:
    assert list(iter_lirs(io.BytesIO(text))) == keys


def test_lirs_reader_names_the_bad_line() -> None:
    with pytest.raises(ValueError, match="line 3"):
        list(iter_lirs(io.BytesIO(b"1\n2\n3 4\n")))


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        pytest.param(b"10 1 0 1\n20 1 0 2\n", [10, 20], id="single-block-lines"),
        pytest.param(b"10 3 0 1\n20 1 0 2\n5 2 0 3\n", [10, 11, 12, 20, 5, 6], id="multi-block"),
        pytest.param(b"10 2 0 1\r\n\r\n7 1 0 2\r\n", [10, 11, 7], id="crlf-and-empty-lines"),
    ],
)
def test_arc_reader_expands_block_ranges(text: bytes, keys: list[int]) -> None:
    assert list(iter_arc(io.BytesIO(text))) == keys


def test_arc_reader_names_the_bad_line() -> None:
    with pytest.raises(ValueError, match="line 2"):
        list(iter_arc(io.BytesIO(b"1 1 0 1\n5\n")))


SCARAB_KEYS = [1, -2, 2**40 + 3, -(2**63), 2**63 - 1]
CACHE2K_KEYS = [7, -1, 2**31 - 1, -(2**31), 0x0800_0201]


@pytest.mark.parametrize(
    ("reader", "data", "keys"),
    [
        pytest.param(iter_scarab, struct.pack(">5q", *SCARAB_KEYS), SCARAB_KEYS, id="scarab-int64"),
        pytest.param(
            iter_cache2k, struct.pack(">5i", *CACHE2K_KEYS), CACHE2K_KEYS, id="cache2k-int32"
        ),
    ],
)
def test_binary_readers_are_big_endian_and_signed(
    reader: Reader, data: bytes, keys: list[int]
) -> None:
    assert list(reader(io.BytesIO(data))) == keys
    assert list(reader(Trickle(data))) == keys  # keys split across reads


@pytest.mark.parametrize("reader", [iter_scarab, iter_cache2k])
def test_binary_reader_rejects_a_truncated_trace(reader: Reader) -> None:
    with pytest.raises(ValueError, match="truncated"):
        list(reader(io.BytesIO(b"\x00" * 10)))


@pytest.mark.parametrize(
    ("name", "data", "keys"),
    [
        pytest.param("lirs/tiny.trace.gz", b"1\n*\n2\n", [1, 2], id="lirs-gzip"),
        pytest.param("x/tiny.trace", b"3\n4\n", [3, 4], id="lirs-plain-by-suffix"),
        pytest.param("x/OLTP.lis.gz", b"5 2 0 1\n", [5, 6], id="arc-gzip-by-suffix"),
        pytest.param("x/scarab-x.trace.xz", struct.pack(">2q", 8, 9), [8, 9], id="scarab-xz"),
        pytest.param("cache2k/web99.trace.xz", struct.pack(">2i", 1, 2), [1, 2], id="cache2k-xz"),
    ],
)
def test_read_trace_detects_format_and_compression(
    tmp_path: Path, name: str, data: bytes, keys: list[int]
) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    assert list(read_trace(write(path, data))) == keys


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        pytest.param("data/cache-traces/lirs/gli.trace.gz", "lirs", id="lirs-folder"),
        pytest.param("data/cache-traces/arc/P3.lis.gz", "arc", id="arc-folder"),
        pytest.param("scarab/scarab-recs.trace.xz", "scarab", id="scarab-folder"),
        pytest.param("cache2k/orm-busy.trace.xz", "cache2k", id="cache2k-folder"),
        pytest.param("elsewhere/P12.lis", "arc", id="arc-by-suffix"),
        pytest.param("elsewhere/scarab-recs.trace.xz", "scarab", id="scarab-by-name"),
        pytest.param("elsewhere/web07.trace.xz", "cache2k", id="cache2k-by-name"),
        pytest.param("elsewhere/sprite.trace.gz", "lirs", id="lirs-by-suffix"),
    ],
)
def test_detect_format(path: str, fmt: str) -> None:
    assert detect_format(path) == fmt


def test_detect_format_asks_for_the_format_when_unsure() -> None:
    with pytest.raises(ValueError, match="cannot tell"):
        detect_format("elsewhere/keys.bin")


# ---- the bench command ------------------------------------------------------------------------

TINY = b"1\n2\n1\n3\n1\n*\n2\n"  # capacity 2 under LRU: miss miss hit miss hit miss


@pytest.mark.parametrize("policy", ["lru", "wtinylfu"])
def test_bench_cache_command_prints_the_hit_ratio_as_json(tmp_path: Path, policy: str) -> None:
    trace = write(tmp_path / "tiny.trace", TINY)
    command = [sys.executable, "-m", "agent.cache.bench", "cache", "--trace", str(trace)]
    done = subprocess.run(
        [*command, "--capacity", "2", "--policy", policy, "--format", "lirs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == {
        "trace": str(trace),
        "format": "lirs",
        "policy": policy,
        "capacity": 2,
        "requests": 6,
        "hits": 2,
        "hit_ratio": pytest.approx(2 / 6),
    }


def test_bench_cache_command_reports_a_missing_trace(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "agent.cache.bench", "cache", "--trace", str(tmp_path / "no")]
    done = subprocess.run(
        [*command, "--capacity", "2", "--format", "lirs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "No such file" in done.stderr


# ---- the shared traces ------------------------------------------------------------------------


@needs_traces
@pytest.mark.parametrize(
    ("name", "requests", "distinct"),
    [
        pytest.param("lirs/gli.trace.gz", 6_015, 2_529, id="glimpse"),
        pytest.param("lirs/cpp.trace.gz", 9_047, 1_223, id="cpp"),
        pytest.param("cache2k/web07.trace.xz", 76_118, 20_484, id="web07"),
    ],
)
def test_trace_lengths_match_the_published_ones(name: str, requests: int, distinct: int) -> None:
    assert TRACES is not None
    keys = list(read_trace(TRACES / name))
    assert (len(keys), len(set(keys))) == (requests, distinct)


GLIMPSE_LRU = {250: 0.91, 500: 0.95, 750: 1.15, 1000: 11.21, 1250: 21.25}
GLIMPSE_LRU |= {1500: 36.56, 1750: 45.04, 2000: 57.41}


@needs_traces
@pytest.mark.parametrize(
    ("name", "capacity", "published"),
    [
        *(
            pytest.param("lirs/gli.trace.gz", size, ratio, id=f"glimpse-{size}")
            for size, ratio in GLIMPSE_LRU.items()
        ),
        pytest.param("arc/OLTP.lis.gz", 1000, 32.83, id="oltp-1000"),
    ],
)
def test_lru_reproduces_the_published_hit_ratio(name: str, capacity: int, published: float) -> None:
    assert TRACES is not None
    result = bench_cache(str(TRACES / name), capacity, "lru")
    assert round(100 * result["hit_ratio"], 2) == published


@needs_traces
@pytest.mark.parametrize(
    ("name", "capacity", "lru", "lead"),
    [
        pytest.param("lirs/gli.trace.gz", 1000, 11.21, 25, id="glimpse-1000"),
        pytest.param("lirs/gli.trace.gz", 500, 0.95, 20, id="glimpse-500"),
        pytest.param("lirs/loop.trace.gz", 512, 0.0, 40, id="loop-512"),
    ],
)
def test_wtinylfu_is_far_above_lru_on_looping_traces(
    name: str, capacity: int, lru: float, lead: float
) -> None:
    assert TRACES is not None
    keys = list(read_trace(TRACES / name))
    requests, hits = replay(keys, WTinyLFU(capacity, rng=random.Random(1)))
    assert 100 * hits / requests > lru + lead
    requests, hits = replay(keys, LRU(capacity))
    assert round(100 * hits / requests, 2) == lru
