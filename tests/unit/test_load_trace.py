"""The trace reader: both timestamp forms, gaps as None, gzip, and errors that name the line."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from controller.engines.scaling.load_trace import TraceError, parse_trace, read_trace


@pytest.mark.parametrize(
    ("text", "times", "values"),
    [
        pytest.param(
            "timestamp,value\n0,1.5\n300,2\n600,0\n",
            (0.0, 300.0, 600.0),
            (1.5, 2.0, 0.0),
            id="integer-seconds-and-a-real-zero",
        ),
        pytest.param(
            # 2016-01-01T00:00Z is 1451606400 s after the epoch.
            "timestamp,value\n2016-01-01T00:00:00Z,4\n2016-01-01T01:00:00Z,5\n",
            (1451606400.0, 1451610000.0),
            (4.0, 5.0),
            id="iso-8601-utc",
        ),
        pytest.param(
            "timestamp,value\n0,1\n60,\n120,3\n",
            (0.0, 60.0, 120.0),
            (1.0, None, 3.0),
            id="empty-value-is-missing-not-zero",
        ),
        pytest.param(
            "timestamp,value\r\n0,1\r\n\r\n60,2\r\n",
            (0.0, 60.0),
            (1.0, 2.0),
            id="crlf-and-blank-lines",
        ),
    ],
)
def test_parse_trace_reads_times_and_values(
    text: str, times: tuple[float, ...], values: tuple[float | None, ...]
) -> None:
    trace = parse_trace(text.splitlines(keepends=True))
    assert trace.times == times
    assert trace.values == values


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "empty file", id="empty-file"),
        pytest.param("time,value\n0,1\n", "<trace>:1: expected the header", id="wrong-header"),
        pytest.param("timestamp,value\n", "no rows", id="header-only"),
        pytest.param(
            "timestamp,value\n0,1\n60,2,3\n", "<trace>:3: expected 2 columns", id="extra-column"
        ),
        pytest.param(
            "timestamp,value\nyesterday,1\n", "<trace>:2: timestamp 'yesterday'", id="bad-time"
        ),
        pytest.param(
            "timestamp,value\n0,lots\n", "<trace>:2: value 'lots' is not a number", id="bad-value"
        ),
        pytest.param(
            "timestamp,value\n0,-1\n", "<trace>:2: value '-1' must be", id="negative-value"
        ),
        pytest.param("timestamp,value\n0,nan\n", "<trace>:2: value 'nan' must be", id="nan-value"),
        pytest.param(
            "timestamp,value\n60,1\n0,1\n", "<trace>:3: timestamp '0' is not after", id="unsorted"
        ),
    ],
)
def test_parse_trace_refuses_malformed_input_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=message.replace("(", r"\(")):
        parse_trace(text.splitlines(keepends=True))


def test_read_trace_decompresses_gzip(tmp_path: Path) -> None:
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("timestamp,value\n0,7\n60,\n")
    trace = read_trace(path)
    assert trace.values == (7.0, None)
    assert trace.missing == 1
    assert trace.step_seconds == 60.0


def test_read_trace_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"absent\.csv: cannot read"):
        read_trace(tmp_path / "absent.csv")


def test_read_trace_names_a_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(TraceError, match=r"broken\.csv\.gz: cannot read"):
        read_trace(path)


def test_step_is_the_median_spacing_so_one_gap_row_does_not_change_it() -> None:
    trace = parse_trace(["timestamp,value\n", "0,1\n", "60,1\n", "120,1\n", "600,1\n"])
    assert trace.step_seconds == 60.0
