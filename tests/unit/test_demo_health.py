"""The demo's view of its own harness: loop lag, where the loop was stuck, engine passes, and
the ``harness`` section of summary.json."""

from __future__ import annotations

import traceback

import pytest

from controller.demo.health import IDLE, LoopSecond, engine_passes, harness_summary, where
from controller.demo.loadgen import Bucket

METRICS = """\
# HELP linescale_reconcile_duration_seconds Time one reconcile pass of an engine took.
# TYPE linescale_reconcile_duration_seconds histogram
linescale_reconcile_duration_seconds_bucket{engine="scalability",le="0.05"} 8.0
linescale_reconcile_duration_seconds_bucket{engine="scalability",le="0.1"} 9.0
linescale_reconcile_duration_seconds_bucket{engine="scalability",le="0.25"} 9.0
linescale_reconcile_duration_seconds_bucket{engine="scalability",le="0.5"} 10.0
linescale_reconcile_duration_seconds_bucket{engine="scalability",le="1.0"} 10.0
linescale_reconcile_duration_seconds_bucket{engine="scalability",le="+Inf"} 10.0
linescale_reconcile_duration_seconds_count{engine="scalability"} 10.0
linescale_reconcile_duration_seconds_sum{engine="scalability"} 0.9
linescale_reconcile_duration_seconds_count{engine="push"} 0.0
linescale_reconcile_duration_seconds_sum{engine="push"} 0.0
"""


def frame(filename: str, name: str, line: int = 1) -> traceback.FrameSummary:
    return traceback.FrameSummary(filename, line, name, lookup_line=False)


def test_engine_passes_counts_passes_mean_and_slow_ones() -> None:
    passes = engine_passes(METRICS)
    assert passes["scalability"] == {
        "passes": 10,
        "mean_ms": 90.0,
        "over_0.1s": 1,
        "over_0.25s": 1,
        "over_0.5s": 0,
        "over_1.0s": 0,
    }
    assert passes["push"] == {"passes": 0, "mean_ms": 0.0}
    assert engine_passes("") == {}


@pytest.mark.parametrize(
    ("stack", "expected"),
    [
        (
            [
                frame("/usr/lib/python3.11/asyncio/events.py", "_run"),
                frame("/work/main/controller/engines/x.py", "step", 7),
                frame("/work/main/shared/codec.py", "decode", 9),
                frame("/usr/lib/python3.11/json/decoder.py", "raw_decode"),
            ],
            "controller/engines/x.py:step:7 > shared/codec.py:decode:9 > [decoder.py:raw_decode]",
        ),
        (
            [frame("/r/controller/a.py", "f", 1), frame("/r/controller/b.py", "g", 2)],
            "controller/a.py:f:1 > controller/b.py:g:2",
        ),
        (
            [frame("/r/controller/cli.py", "main"), frame("/usr/lib/selectors.py", "select")],
            IDLE,
        ),
        ([], "(no frame)"),
    ],
)
def test_where_names_the_innermost_project_frames_and_idle_select(
    stack: list[traceback.FrameSummary], expected: str
) -> None:
    assert where(stack) == expected


def test_harness_summary_reports_lag_cpu_blocks_and_passes() -> None:
    seconds = [
        LoopSecond(float(i), lag, cpu)
        for i, (lag, cpu) in enumerate([(2.0, 40.0), (3.0, 50.0), (250.0, 99.0), (4.0, 60.0)])
    ]
    buckets = [Bucket(0.0, generator_lag_ms=3.0), Bucket(1.0, generator_lag_ms=80.0)]
    summary = harness_summary(seconds, buckets, {"a > b": 3, IDLE: 1}, {"x": {"passes": 1}})
    assert summary["controller_loop_lag_ms"] == {
        "p50": 3.0,
        "p99": 250.0,
        "max": 250.0,
        "seconds_over_100ms": 1,
    }
    assert summary["generator_loop_lag_ms"] == {"p99": 80.0, "max": 80.0, "buckets_over_50ms": 1}
    assert summary["cpu_percent"] == {"mean": 62.2, "max": 99.0, "seconds_at_or_over_95": 1}
    assert summary["loop_blocked_in"][0] == {"where": "a > b", "samples": 3, "approx_ms": 150}
    assert summary["engine_passes"] == {"x": {"passes": 1}}
    assert summary["generator_in_own_process"] is True


def test_harness_summary_of_nothing_is_zeros() -> None:
    summary = harness_summary([], [], {}, {})
    assert summary["controller_loop_lag_ms"]["max"] == 0.0
    assert summary["cpu_percent"]["mean"] == 0.0
    assert summary["loop_blocked_in"] == []
