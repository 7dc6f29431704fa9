"""The L2 value codec: header byte, lz4 above a threshold, and strict refusal of foreign data."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random

import lz4.block  # type: ignore[import-untyped]
import pytest

from shared.cache_codec import (
    HEADER_LZ4,
    HEADER_RAW,
    MAX_DECODED_SIZE,
    CorruptValue,
    decode,
    encode,
)

THRESHOLD = 1024


def compressible(size: int) -> bytes:
    """JSON-like bytes, the kind of value lz4 shrinks."""
    record = b'{"user":12345,"name":"alice","roles":["admin","dev"],"active":true},'
    return (record * (size // len(record) + 1))[:size]


@pytest.mark.parametrize(
    ("value", "expected_header"),
    [
        pytest.param(b"", HEADER_RAW, id="empty"),
        pytest.param(compressible(1), HEADER_RAW, id="one-byte"),
        pytest.param(compressible(THRESHOLD - 1), HEADER_RAW, id="below-threshold"),
        pytest.param(compressible(THRESHOLD), HEADER_RAW, id="at-threshold-stays-raw"),
        pytest.param(compressible(THRESHOLD + 1), HEADER_LZ4, id="above-threshold-compressed"),
        pytest.param(compressible(64 * 1024), HEADER_LZ4, id="64KiB-compressed"),
        pytest.param(compressible(1024 * 1024), HEADER_LZ4, id="1MiB-compressed"),
        pytest.param(os.urandom(THRESHOLD + 1), HEADER_RAW, id="incompressible-stays-raw"),
        pytest.param(os.urandom(64 * 1024), HEADER_RAW, id="incompressible-64KiB-stays-raw"),
        pytest.param(bytes([HEADER_LZ4]) * 10, HEADER_RAW, id="value-that-looks-like-a-header"),
    ],
)
def test_encode_then_decode_round_trips_with_the_expected_header(
    value: bytes, expected_header: int
) -> None:
    blob = encode(value, compress_above=THRESHOLD)

    assert blob[0] == expected_header
    assert decode(blob) == value
    if expected_header == HEADER_LZ4:
        assert len(blob) < len(value)
    else:
        assert blob == bytes([HEADER_RAW]) + value


@pytest.mark.parametrize("compress_above", [-1, 0, 1, 100, 10_000])
def test_any_threshold_round_trips_and_never_grows_a_value_by_more_than_one_byte(
    compress_above: int,
) -> None:
    for size in (0, 1, 2, 50, 101, 5000):
        for value in (compressible(size), os.urandom(size)):
            blob = encode(value, compress_above=compress_above)
            assert decode(blob) == value
            assert len(blob) <= len(value) + 1


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x02payload", id="unknown-header-0x02"),
        pytest.param(b"\xff", id="unknown-header-only"),
        pytest.param(json.dumps({"user": 1}).encode(), id="foreign-json"),
        pytest.param(pickle.dumps({"user": 1}), id="foreign-pickle"),
        pytest.param(b"hello world", id="foreign-text"),
        pytest.param(b"\x01", id="lz4-without-size"),
        pytest.param(b"\x01\x10\x00", id="lz4-short-size"),
        pytest.param(b"\x01\x10\x00\x00\x00garbage!", id="lz4-garbage-payload"),
        pytest.param(b"\x01\xff\xff\xff\xff\x00", id="lz4-size-4GiB"),
        pytest.param(b"\x01\xff\xff\xff\x7f" + b"\x00" * 64, id="lz4-size-2GiB"),
        pytest.param(
            b"\x01" + (MAX_DECODED_SIZE + 1).to_bytes(4, "little") + b"\x00" * (4 << 20),
            id="lz4-size-above-max",
        ),
        pytest.param(
            encode(compressible(5000), compress_above=THRESHOLD)[:-10], id="lz4-truncated"
        ),
        pytest.param(
            b"\x01"
            + (5001).to_bytes(4, "little")
            + encode(compressible(5000), compress_above=THRESHOLD)[5:],
            id="lz4-size-prefix-off-by-one",
        ),
    ],
)
def test_decode_refuses_corrupt_and_foreign_blobs_with_corrupt_value(blob: bytes) -> None:
    with pytest.raises(CorruptValue):
        decode(blob)


def test_corrupt_value_is_a_value_error_so_callers_can_catch_either() -> None:
    assert issubclass(CorruptValue, ValueError)


def test_decode_raises_only_corrupt_value_on_random_lz4_blobs() -> None:
    rng = random.Random(4)
    valid = encode(compressible(4000), compress_above=THRESHOLD)
    for _ in range(3000):
        if rng.random() < 0.5:
            blob = bytes([HEADER_LZ4]) + rng.randbytes(rng.randrange(0, 64))
        else:  # Flip a few bytes of a real blob: the hardest case for a decoder.
            mutated = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(1, len(mutated))] = rng.randrange(256)
            blob = bytes(mutated)
        with contextlib.suppress(CorruptValue):  # Any other exception fails the test.
            decode(blob)


def test_compressed_blob_is_plain_lz4_block_with_stored_size() -> None:
    """Other tools (or a future Go agent) can read values with any lz4 block decoder."""
    value = compressible(10_000)
    blob = encode(value, compress_above=THRESHOLD)

    assert blob[0] == HEADER_LZ4
    assert int.from_bytes(blob[1:5], "little") == len(value)
    assert lz4.block.decompress(blob[1:]) == value
