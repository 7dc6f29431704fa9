"""The demo's summary maths: latency aggregates, the normal/peak split, degradation, cost, and
the summary.json contract another tool reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.demo.health import harness_summary
from controller.demo.loadgen import (
    Bucket,
    LatencyHistogram,
    Outcome,
    PartPicker,
    Recorder,
    due_requests,
)
from controller.demo.report import (
    CHARTS,
    ReplicaSample,
    build_summary,
    cache_figures,
    charts,
    degradation,
    elapsed_labeller,
    readme,
    replica_seconds,
    split_normal_peak,
    summary_text,
    write_report,
)
from controller.demo.scenarios import Timeline

from demo_contract import SUMMARY_CONTRACT, conforms

DECISION_KEYS = {"at", "engine", "target", "reason", "summary"}


def bucket(start: float, offered: float, latencies: list[float], **counts: int) -> Bucket:
    made = Bucket(start=start, offered_rps=offered, sent=len(latencies) + counts.get("lost", 0))
    for ms in latencies:
        made.latency.add(ms)
    made.ok = len(latencies)
    made.unanswered = counts.get("lost", 0)
    return made


def timeline(speed: float = 10.0, wall: float = 10.0) -> Timeline:
    return Timeline("shift-change", speed, wall, 0.0, 15.0, (10.0, 20.0, 40.0))


def decision(kind: str, before: object, after: object, at: float, state: str = "done") -> dict:
    return {
        "id": f"{kind}-{at}",
        "kind": kind,
        "target": "local/line-service",
        "from_value": before,
        "to_value": after,
        "reason": {"code": "why", "message": "because"},
        "decided_at": at,
        "actuation": {"state": state},
    }


def test_histogram_mean_is_exact_and_quantiles_within_a_bin() -> None:
    histogram = LatencyHistogram()
    for ms in range(1, 101):
        histogram.add(float(ms))
    assert histogram.count == 100
    assert histogram.mean == pytest.approx(50.5)
    assert histogram.quantile(0.5) == pytest.approx(50, rel=0.04)
    assert histogram.quantile(0.99) == pytest.approx(99, rel=0.04)
    assert LatencyHistogram().quantile(0.5) == 0.0


def test_recorder_counts_no_answer_as_unanswered_and_keeps_no_latency_for_it() -> None:
    recorder = Recorder()
    for at in (0.1, 0.2, 0.3):
        recorder.sent(at, 50.0)
    recorder.record(Outcome(0.1, 200, 5.0, "L1", "line-service-0"))
    recorder.record(Outcome(0.2, 503, 2.0))
    recorder.record(Outcome(0.3, None, 5000.0))
    (only,) = recorder.ordered()
    assert (only.sent, only.ok, only.errors, only.unanswered) == (3, 1, 1, 1)
    assert only.latency.count == 2
    assert only.cache == {"L1": 1}
    assert only.pods == {"line-service-0": 1}


@pytest.mark.parametrize(
    ("rate", "elapsed", "carry", "expected"),
    [(100, 0.005, 0.0, (0, 0.5)), (100, 0.005, 0.5, (1, 0.0)), (0, 1, 0.3, (0, 0.3))],
)
def test_due_requests_carry_the_fraction(
    rate: float, elapsed: float, carry: float, expected: tuple[int, float]
) -> None:
    count, left = due_requests(rate, elapsed, carry)
    assert (count, left) == (expected[0], pytest.approx(expected[1]))


def test_warm_hit_ratio_counts_only_requests_after_the_first_quarter() -> None:
    buckets = [Bucket(float(start)) for start in range(8)]
    buckets[0].cache.update({"MISS": 10})  # cold start
    buckets[1].cache.update({"MISS": 4, "L1": 6})
    buckets[2].cache.update({"MISS": 1, "L1": 6, "L2": 3})  # 2.0 s = 25 % of 8 s: warm
    buckets[7].cache.update({"L1": 10})
    figures = cache_figures(buckets, wall_seconds=8.0)
    assert figures == {
        "hits": 25,
        "misses": 15,
        "hit_ratio": round(25 / 40, 4),
        "l1_hits": 22,
        "l2_hits": 3,
        "warm_hit_ratio": round(19 / 20, 4),
        "warm_after_seconds": 2.0,
        "warm_lookups": 20,
    }


@pytest.mark.parametrize(
    ("span", "seconds", "label"),
    [(1800.0, 900.0, "15 min"), (4 * 3600.0, 5400.0, "1.5 h"), (7 * 86400.0, 86400.0, "1 d")],
)
def test_chart_axis_unit_suits_the_span(span: float, seconds: float, label: str) -> None:
    assert elapsed_labeller(span)(seconds) == label


def test_parts_are_zipf_so_a_few_are_hot() -> None:
    picker = PartPicker(parts=1000, seed=1)
    picks = [picker.pick() for _ in range(5000)]
    top = sum(1 for part in picks if part <= "P00010")
    assert top / len(picks) > 0.3  # ten hot parts of a thousand take about 40 %


def test_normal_is_at_or_below_the_median_and_peak_the_top_tenth() -> None:
    rates = [10, 10, 10, 10, 10, 20, 20, 30, 40, 50]
    buckets = [bucket(float(i), rate, [1.0]) for i, rate in enumerate(rates)]
    normal, peak = split_normal_peak(buckets)
    assert [b.offered_rps for b in normal] == [10] * 5  # the median is 15
    assert [b.offered_rps for b in peak] == [50]


def test_a_steady_run_is_all_normal_and_all_peak() -> None:
    buckets = [bucket(float(i), 60, [1.0]) for i in range(5)]
    normal, peak = split_normal_peak(buckets)
    assert len(normal) == len(peak) == 5


@pytest.mark.parametrize(
    ("normal_ms", "peak_ms", "peak_requests", "expected"),
    [(10.0, 15.0, 100, 0.5), (10.0, 10.0, 100, 0.0), (10.0, 30.0, 0, 0.0), (0.0, 30.0, 9, 0.0)],
)
def test_degradation_is_relative_and_zero_without_data(
    normal_ms: float, peak_ms: float, peak_requests: int, expected: float
) -> None:
    assert degradation(normal_ms, peak_ms, peak_requests) == expected


def test_replica_seconds_hold_each_count_until_the_next_sample() -> None:
    samples = [ReplicaSample(0, 2, 2, 2), ReplicaSample(4, 4, 3, 4), ReplicaSample(6, 4, 4, 4)]
    assert replica_seconds(samples, 10.0) == 2 * 4 + 4 * 2 + 4 * 4


def test_summary_matches_the_contract_and_its_figures() -> None:
    buckets = [
        bucket(0, 10, [10.0] * 9),
        bucket(1, 10, [10.0] * 9),
        bucket(2, 40, [30.0] * 9, lost=1),
    ]
    buckets[0].cache.update({"L1": 6, "MISS": 3})
    replicas = [ReplicaSample(0, 2, 2, 2), ReplicaSample(5, 4, 4, 4)]
    decisions = [
        decision("scale", 2, 4, 1005.0),
        decision("scale", 4, 4, 1006.0),
        decision("route", "active", "ejected", 1007.0),
    ]
    summary = build_summary(
        timeline=timeline(),
        wall_seconds=10.0,
        buckets=buckets,
        replicas=replicas,
        decisions=decisions,
        started_epoch=1000.0,
    )
    assert conforms(summary, SUMMARY_CONTRACT), json.dumps(summary, indent=1)
    assert summary["requests"] == {
        "total": 28,
        "ok": 27,
        "errors": 1,
        "unanswered": 1,
        "success_ratio": round(27 / 28, 5),
    }
    assert (summary["normal"]["requests"], summary["peak"]["requests"]) == (18, 10)
    assert summary["normal"]["mean_ms"] == pytest.approx(10.0)
    assert summary["peak"]["mean_ms"] == pytest.approx(30.0)
    assert summary["degradation_at_peak"] == pytest.approx(2.0)
    assert summary["scaling"]["actions"] == 1
    assert (summary["scaling"]["min_replicas"], summary["scaling"]["max_replicas"]) == (2, 4)
    # 2 x 5 s + 4 x 5 s wall = 30 replica-seconds, x 10 speed = 300 simulated
    assert summary["scaling"]["replica_seconds"] == 300.0
    assert summary["cost"]["replica_hours"] == round(300 / 3600, 4)
    assert summary["cost"]["static_peak_cost"] > summary["cost"]["cost"]
    assert summary["cache"] == {
        "hits": 6,
        "misses": 3,
        "hit_ratio": round(6 / 9, 4),
        "l1_hits": 6,
        "l2_hits": 0,
        "warm_hit_ratio": 0.0,  # the hits were all in the first quarter (2.5 s of 10 s)
        "warm_after_seconds": 2.5,
        "warm_lookups": 0,
    }
    assert summary["routing"]["ejections"] == 1
    assert [d["at"] for d in summary["decisions"]] == [5.0, 6.0, 7.0]
    assert all(set(d) == DECISION_KEYS for d in summary["decisions"])
    assert summary["decisions"][0]["engine"] == "scalability"


def test_an_empty_run_still_has_a_whole_summary() -> None:
    summary = build_summary(
        timeline=timeline(),
        wall_seconds=0.0,
        buckets=[],
        replicas=[],
        decisions=[],
        started_epoch=0.0,
        interrupted=True,
    )
    assert conforms(summary, SUMMARY_CONTRACT)
    assert summary["requests"]["success_ratio"] == 1.0
    assert summary["degradation_at_peak"] == 0.0
    assert "interrupted" in summary_text(summary, None)


def test_report_folder_has_readme_charts_and_summary(tmp_path: Path) -> None:
    buckets = [bucket(float(i), 10.0 + i, [5.0 + i] * 5) for i in range(10)]
    replicas = [ReplicaSample(0, 2, 2, 2), ReplicaSample(5, 3, 3, 3)]
    summary = build_summary(
        timeline=timeline(),
        wall_seconds=10.0,
        buckets=buckets,
        replicas=replicas,
        decisions=[decision("scale", 2, 3, 5.0)],
        started_epoch=0.0,
    )
    svgs = charts(timeline(), buckets, replicas)
    write_report(tmp_path / "report", summary, "the story", svgs)
    names = {path.name for path in (tmp_path / "report").iterdir()}
    assert names == {"README.md", "summary.json", *CHARTS}
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "the story" in readme
    assert "| 5.0 | scalability |" in readme
    for name in CHARTS:
        svg = (tmp_path / "report" / name).read_text()
        assert svg.startswith("<svg")
        assert " min</text>" in svg
        assert " d</text>" not in svg
    assert json.loads((tmp_path / "report" / "summary.json").read_text()) == summary


def test_summary_and_readme_say_how_healthy_the_harness_was() -> None:
    summary = build_summary(
        timeline=timeline(),
        wall_seconds=10.0,
        buckets=[bucket(0.0, 10.0, [5.0])],
        replicas=[],
        decisions=[],
        started_epoch=0.0,
    )
    assert "harness:" not in summary_text(summary, None)  # only a finished run has one
    summary["harness"] = harness_summary([], [], {}, {})
    expected = "controller loop lag p99 0 ms (max 0); load generator lag max 0 ms"
    assert expected in summary_text(summary, None)
    assert expected in readme(summary, "story", [])
