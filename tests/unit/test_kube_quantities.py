"""Kubernetes quantity parsing and formatting (``shared.quantities``)."""

from __future__ import annotations

import pytest

from shared.quantities import (
    format_cpu,
    format_memory,
    parse_cpu_millicores,
    parse_memory_bytes,
)


@pytest.mark.parametrize(
    ("quantity", "millicores"),
    [
        pytest.param("250m", 250, id="millicores"),
        pytest.param("1", 1000, id="one-core"),
        pytest.param("1.5", 1500, id="fraction"),
        pytest.param("0.25", 250, id="leading-zero"),
        pytest.param(".5", 500, id="no-leading-digit"),
        pytest.param("2.", 2000, id="trailing-dot"),
        pytest.param("1e3", 1_000_000, id="exponent"),
        pytest.param("1E-3", 1, id="negative-exponent"),
        pytest.param("100u", 1, id="micro-rounds-up"),
        pytest.param("0.1m", 1, id="sub-milli-rounds-up"),
        pytest.param("1k", 1_000_000, id="kilo"),
        pytest.param("+2", 2000, id="explicit-plus"),
        pytest.param("0", 0, id="zero"),
        pytest.param(2, 2000, id="int"),
        pytest.param(0.5, 500, id="float"),
        pytest.param(" 250m ", 250, id="surrounding-space"),
    ],
)
def test_parse_cpu_millicores(quantity: str | int | float, millicores: int) -> None:
    assert parse_cpu_millicores(quantity) == millicores


@pytest.mark.parametrize(
    ("quantity", "bytes_"),
    [
        pytest.param("512Mi", 512 * 2**20, id="mebibytes"),
        pytest.param("1Gi", 2**30, id="gibibytes"),
        pytest.param("1.5Gi", 3 * 2**29, id="fractional-gibibytes"),
        pytest.param("1G", 10**9, id="gigabytes"),
        pytest.param("128974848", 128974848, id="plain-bytes"),
        pytest.param("129e6", 129_000_000, id="exponent"),
        pytest.param("1e3", 1000, id="small-exponent"),
        pytest.param("123Ki", 123 * 1024, id="kibibytes"),
        pytest.param("1M", 10**6, id="megabytes"),
        pytest.param("1E", 10**18, id="exa-not-exponent"),
        pytest.param("1Ei", 2**60, id="exbibyte"),
        pytest.param("1500m", 2, id="milli-bytes-round-up"),
        pytest.param("0.5Ki", 512, id="half-kibibyte"),
    ],
)
def test_parse_memory_bytes(quantity: str, bytes_: int) -> None:
    assert parse_memory_bytes(quantity) == bytes_


@pytest.mark.parametrize(
    "quantity",
    [
        pytest.param("", id="empty"),
        pytest.param("m", id="suffix-only"),
        pytest.param("1KB", id="unknown-suffix"),
        pytest.param("1ki", id="lowercase-binary"),
        pytest.param("1K", id="uppercase-kilo"),
        pytest.param("1e", id="bare-e"),
        pytest.param("abc", id="letters"),
        pytest.param("1.2.3", id="two-dots"),
        pytest.param("--1", id="two-signs"),
        pytest.param(True, id="bool"),
    ],
)
def test_invalid_quantities_are_refused(quantity: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_memory_bytes(quantity)


@pytest.mark.parametrize(
    ("millicores", "text"),
    [
        pytest.param(250, "250m", id="millicores"),
        pytest.param(2000, "2", id="whole-cores"),
        pytest.param(1500, "1500m", id="fraction"),
        pytest.param(0, "0", id="zero"),
    ],
)
def test_format_cpu(millicores: int, text: str) -> None:
    assert format_cpu(millicores) == text
    assert parse_cpu_millicores(text) == millicores


@pytest.mark.parametrize(
    ("bytes_", "text"),
    [
        pytest.param(512 * 2**20, "512Mi", id="mebibytes"),
        pytest.param(3 * 2**30, "3Gi", id="gibibytes"),
        pytest.param(1536 * 2**20, "1536Mi", id="not-whole-gibibytes"),
        pytest.param(10**9, "1000000000", id="decimal-stays-bytes"),
        pytest.param(0, "0", id="zero"),
    ],
)
def test_format_memory(bytes_: int, text: str) -> None:
    assert format_memory(bytes_) == text
    assert parse_memory_bytes(text) == bytes_
