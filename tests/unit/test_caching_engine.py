"""CachingEngine: fleet hit ratios from the agents' reports, and L1 sizing from their curves."""

from __future__ import annotations

from typing import Any

import pytest

from controller.engines.caching import (
    CacheTotals,
    CachingEngine,
    CachingSettings,
    expected_hit_ratios,
    fleet_stats,
    merge_curves,
    miss_ratio_at,
    recommend_l1_size,
)
from controller.registry import AgentRecord
from shared.wire import AgentReport, CacheLevelStats, Capacity, Decision, MissRatioPoint, parse

MiB = 2**20
NOW = 1_000.0
STALE_AFTER = 15.0


def stats(
    namespace: str, level: str = "l1", hits: int = 0, misses: int = 0, **more: int
) -> CacheLevelStats:
    return CacheLevelStats.model_validate(
        {
            "level": level,
            "namespace": namespace,
            "hits": hits,
            "misses": misses,
            "evictions": more.get("evictions", 0),
            "entries": more.get("entries", 0),
            "bytes": more.get("bytes", 0),
            "errors": more.get("errors", 0),
        }
    )


def curve(*points: tuple[float, float]) -> list[MissRatioPoint]:
    """Points as (capacity in MiB, miss ratio)."""
    return [
        MissRatioPoint(capacity_bytes=round(mib * MiB), miss_ratio=ratio) for mib, ratio in points
    ]


def record(
    node: str,
    cache: list[CacheLevelStats] | None = None,
    *,
    age: float = 1.0,
    mrc: list[MissRatioPoint] | None = None,
    capacity_mib: int = 0,
) -> AgentRecord:
    report = AgentReport(
        node=node,
        zone="a",
        endpoint=f"http://{node}:9400",
        sent_at=NOW - age,
        sequence=1,
        health="ok",
        capacity=Capacity(cpu_cores=2.0, memory_bytes=2**30),
        cache=cache or [],
        cache_mrc=mrc or [],
        cache_capacity_bytes=capacity_mib * MiB,
    )
    return AgentRecord(
        report=report, last_seen=NOW - age, reports=1, routing_version=0, tuning_version=0
    )


# --- fleet statistics --------------------------------------------------------------------------

# (hits, misses, hit_ratio, nodes) expected for one (namespace, level)
Expected = tuple[int, int, float | None, int]


@pytest.mark.parametrize(
    ("records", "key", "expected"),
    [
        pytest.param(
            [
                record("n1", [stats("orders", hits=80, misses=20)]),
                record("n2", [stats("orders", hits=10, misses=90)]),
            ],
            ("orders", "l1"),
            (90, 110, 0.45, 2),
            id="summed-across-nodes-not-averaged",
        ),
        pytest.param(
            [record("n1", [stats("orders", "l1", 80, 20), stats("orders", "l2", 15, 5)])],
            ("orders", "l2"),
            (15, 5, 0.75, 1),
            id="levels-kept-apart",
        ),
        pytest.param(
            [
                record("n1", [stats("orders", hits=1, misses=1)]),
                record("gone", [stats("orders", hits=1_000, misses=0)], age=STALE_AFTER + 0.1),
            ],
            ("orders", "l1"),
            (1, 1, 0.5, 1),
            id="stale-node-excluded",
        ),
        pytest.param(
            [
                record("n1", [stats("orders", hits=3, misses=1)]),
                record("edge", [stats("orders", hits=3, misses=1)], age=STALE_AFTER),
            ],
            ("orders", "l1"),
            (6, 2, 0.75, 2),
            id="exactly-at-stale-after-is-fresh",
        ),
        pytest.param(
            [record("n1", [stats("idle")]), record("n2", [stats("idle")])],
            ("idle", "l1"),
            (0, 0, None, 2),
            id="no-traffic-is-none-not-zero",
        ),
        pytest.param(
            [record("n1", [stats("quality", hits=0, misses=7)])],
            ("quality", "l1"),
            (0, 7, 0.0, 1),
            id="all-misses-is-zero",
        ),
        pytest.param(
            # n2 restarted: its cumulative counters dropped from thousands to 4/1. The snapshot
            # sums what each agent reports now; nothing goes negative.
            [
                record("n1", [stats("orders", hits=6, misses=4)]),
                record("n2", [stats("orders", hits=4, misses=1)]),
            ],
            ("orders", "l1"),
            (10, 5, 10 / 15, 2),
            id="counter-reset-sums-latest-values",
        ),
        pytest.param(
            [record("n1", [stats("orders", hits=2, misses=2), stats("orders", hits=2)])],
            ("orders", "l1"),
            (4, 2, 4 / 6, 1),
            id="repeated-entry-summed-one-node",
        ),
    ],
)
def test_fleet_stats_per_namespace_and_level(
    records: list[AgentRecord], key: tuple[str, str], expected: Expected
) -> None:
    totals = fleet_stats(records, NOW, STALE_AFTER).by_namespace[key]
    assert (totals.hits, totals.misses, totals.hit_ratio, totals.nodes) == (
        expected[0],
        expected[1],
        pytest.approx(expected[2]) if expected[2] is not None else None,
        expected[3],
    )


def test_fleet_stats_sums_every_counter_and_lists_nodes() -> None:
    records = [
        record("n2", [stats("orders", "l1", 5, 5, evictions=1, entries=10, bytes=100, errors=0)]),
        record(
            "n1",
            [
                stats("orders", "l1", 7, 3, evictions=2, entries=20, bytes=300, errors=1),
                stats("telemetry", "l1", 1, 9, evictions=4, entries=5, bytes=50, errors=0),
                stats("orders", "l2", 2, 1, evictions=0, entries=99, bytes=9_000, errors=3),
            ],
        ),
        record("old", [stats("orders", "l1", 100, 0)], age=60.0),
        record("bare"),
    ]
    fleet = fleet_stats(records, NOW, STALE_AFTER)
    assert fleet.by_namespace[("orders", "l1")] == CacheTotals(
        hits=12, misses=8, evictions=3, entries=30, bytes=400, errors=1, nodes=2
    )
    # A level's total spans namespaces; each node counts once per level.
    assert fleet.by_level["l1"] == CacheTotals(
        hits=13, misses=17, evictions=7, entries=35, bytes=450, errors=1, nodes=2
    )
    assert fleet.by_level["l2"].nodes == 1
    assert fleet.by_level["l2"].hit_ratio == pytest.approx(2 / 3)
    assert list(fleet.by_node) == ["bare", "n1", "n2"]
    assert fleet.by_node["bare"] == {}
    assert fleet.by_node["n1"][("telemetry", "l1")].hit_ratio == pytest.approx(0.1)
    assert fleet.by_node["n2"][("orders", "l1")].nodes == 1
    assert fleet.fresh_nodes == ("bare", "n1", "n2")
    assert fleet.stale_nodes == ("old",)
    assert list(fleet.by_namespace) == [("orders", "l1"), ("orders", "l2"), ("telemetry", "l1")]


def test_fleet_stats_of_no_records_is_empty() -> None:
    fleet = fleet_stats([], NOW, STALE_AFTER)
    assert (fleet.by_namespace, fleet.by_level, fleet.by_node) == ({}, {}, {})


# --- L1 sizing ---------------------------------------------------------------------------------

# Diminishing returns past 8 MiB: the best miss ratio is 0.19, and 0.20 is reached at 8 MiB.
TYPICAL = curve((1, 0.6), (2, 0.4), (4, 0.25), (8, 0.2), (16, 0.195), (32, 0.19))
BOUNDS: dict[str, Any] = {"min_bytes": 1024, "max_bytes": 1024 * MiB}


@pytest.mark.parametrize(
    ("curves", "current_mib", "options", "code", "to_bytes", "hit_now", "hit_then"),
    [
        pytest.param([TYPICAL], 32, {}, "knee_of_curve", 8 * MiB, 0.81, 0.80, id="knee"),
        pytest.param(
            [TYPICAL], 2, {}, "knee_of_curve", 8 * MiB, 0.60, 0.80, id="knee-grows-a-small-cache"
        ),
        pytest.param(
            [TYPICAL],
            32,
            {"knee_tolerance": 0.03},  # 0.22 lies 60 % of the way from 4 MiB to 8 MiB
            "knee_of_curve",
            round(6.4 * MiB) + 1,
            0.81,
            0.78,
            id="knee-interpolated-between-points",
        ),
        pytest.param(
            [TYPICAL],
            32,
            {"target_hit_ratio": 0.7},  # miss 0.3: two thirds of the way from 2 MiB to 4 MiB
            "meets_target",
            3_495_254,
            0.81,
            0.70,
            id="meets-target",
        ),
        pytest.param(
            [TYPICAL],
            32,
            {"target_hit_ratio": 0.8},
            "meets_target",
            8 * MiB,
            0.81,
            0.80,
            id="target-met-exactly-on-a-point",
        ),
        pytest.param(
            [TYPICAL],
            32,
            {"target_hit_ratio": 0.9},
            "target_unreachable",
            8 * MiB,
            0.81,
            0.80,
            id="target-unreachable-takes-the-knee",
        ),
        pytest.param(
            [TYPICAL],
            32,
            {"max_bytes": 4 * MiB},
            "clamped_to_max",
            4 * MiB,
            0.81,
            0.75,
            id="clamped-to-max",
        ),
        pytest.param(
            [TYPICAL],
            32,
            {"min_bytes": 16 * MiB},
            "clamped_to_min",
            16 * MiB,
            0.81,
            0.805,
            id="clamped-to-min",
        ),
        pytest.param([], 32, {}, "no_curve", 32 * MiB, None, None, id="no-curves-keeps-current"),
        pytest.param([[], []], 32, {}, "no_curve", 32 * MiB, None, None, id="only-empty-curves"),
        pytest.param(
            [], 2048, {}, "clamped_to_max", 1024 * MiB, None, None, id="no-curve-still-bounded"
        ),
        pytest.param(
            [curve((1, 1.0), (64, 0.995))],
            64,
            {},
            "flat_curve",
            64 * MiB,
            0.005,
            0.005,
            id="flat-curve-keeps-current",
        ),
        pytest.param(
            # A (0.2 from 4 MiB on) and B (1.0 at 0 falling linearly to 0.4 at 8 MiB) average to
            # 0.45 at 4 MiB and 0.3 at 8 MiB; 0.31 is reached 14/15 of the way between them.
            [curve((4, 0.2)), curve((8, 0.4))],
            8,
            {},
            "knee_of_curve",
            8_108_988,
            0.70,
            0.69,
            id="two-nodes-averaged-with-interpolation",
        ),
        pytest.param(
            # Noise: a point above an earlier one is lowered to it (LRU inclusion property).
            [curve((1, 0.5), (2, 0.3), (4, 0.35), (8, 0.29))],
            8,
            {},
            "knee_of_curve",
            2 * MiB,
            0.71,
            0.70,
            id="noisy-curve-made-non-increasing",
        ),
    ],
)
def test_recommend_l1_size(
    curves: list[list[MissRatioPoint]],
    current_mib: int,
    options: dict[str, Any],
    code: str,
    to_bytes: int,
    hit_now: float | None,
    hit_then: float | None,
) -> None:
    decision = recommend_l1_size(curves, current_mib * MiB, now=NOW, **{**BOUNDS, **options})
    assert decision.reason.code == code
    assert decision.to_value == pytest.approx(to_bytes, abs=1)
    now_ratio, then_ratio = expected_hit_ratios(decision)
    assert now_ratio == (None if hit_now is None else pytest.approx(hit_now, abs=1e-6))
    assert then_ratio == (None if hit_then is None else pytest.approx(hit_then, abs=1e-6))


def test_decision_is_a_loggable_wire_decision_with_the_numbers() -> None:
    decision = recommend_l1_size([TYPICAL, TYPICAL], 32 * MiB, now=NOW, fleet="line-a", **BOUNDS)
    assert parse(Decision, decision.model_dump_json()) == decision
    assert (decision.kind, decision.target, decision.id) == (
        "cache",
        "l1/line-a",
        "cache-l1-line-a-1000000",
    )
    assert (decision.from_value, decision.to_value) == (32 * MiB, 8 * MiB)
    assert decision.decided_at == NOW
    assert decision.actuation.state == "pending"
    assert decision.reason.message == (
        "the knee of the curve, the smallest size within 1.0 points of the best miss ratio "
        "19.0 %, is 8.0 MiB; expected hit ratio 81.0 % at the current 32.0 MiB, 80.0 % at "
        "8.0 MiB (2 nodes)"
    )
    assert decision.reason.inputs["nodes"] == 2
    assert decision.reason.inputs["curve_min_miss_ratio"] == pytest.approx(0.19)


def test_unchanged_size_needs_no_actuation() -> None:
    decision = recommend_l1_size([TYPICAL], 8 * MiB, now=NOW, decision_id="d-1", **BOUNDS)
    assert (decision.id, decision.actuation.state) == ("d-1", "skipped")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        pytest.param({"min_bytes": 10, "max_bytes": 5}, "min_bytes", id="min-above-max"),
        pytest.param({"knee_tolerance": -0.1}, "knee_tolerance", id="negative-tolerance"),
        pytest.param({"target_hit_ratio": 0.0}, "target_hit_ratio", id="zero-target"),
        pytest.param({"target_hit_ratio": 1.5}, "target_hit_ratio", id="target-above-one"),
    ],
)
def test_recommend_refuses_bad_policy(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        recommend_l1_size([TYPICAL], MiB, now=NOW, **{**BOUNDS, **options})


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        pytest.param(0, 1.0, id="anchored-at-zero"),
        pytest.param(MiB // 2, 0.8, id="between-zero-and-first-point"),
        pytest.param(3 * MiB, 0.325, id="between-points"),
        pytest.param(8 * MiB, 0.2, id="on-a-point"),
        pytest.param(1024 * MiB, 0.19, id="flat-past-the-last-point"),
    ],
)
def test_merged_curve_interpolates(capacity: int, expected: float) -> None:
    assert miss_ratio_at(merge_curves([TYPICAL]), capacity) == pytest.approx(expected)


# --- the facade --------------------------------------------------------------------------------


def test_engine_sizes_from_fresh_nodes_only_and_defaults_current_to_their_median() -> None:
    engine = CachingEngine(CachingSettings(stale_after_seconds=STALE_AFTER, min_l1_bytes=MiB))
    records = [
        record("n1", mrc=TYPICAL, capacity_mib=32),
        record("n2", mrc=TYPICAL, capacity_mib=64),
        record("n3", mrc=TYPICAL, capacity_mib=16),
        record("old", mrc=curve((1, 0.0)), capacity_mib=512, age=60.0),
    ]
    decision = engine.recommend_l1_size(records, NOW)
    assert (decision.from_value, decision.to_value) == (32 * MiB, 8 * MiB)
    assert decision.reason.inputs["nodes"] == 3
    assert engine.fleet_stats(records, NOW).stale_nodes == ("old",)


def test_engine_with_a_target_and_an_explicit_current_size() -> None:
    engine = CachingEngine(CachingSettings(min_l1_bytes=MiB, target_hit_ratio=0.8, fleet="b"))
    decision = engine.recommend_l1_size(
        [record("n1", mrc=TYPICAL)], NOW, current_capacity_bytes=MiB
    )
    assert (decision.reason.code, decision.to_value, decision.target) == (
        "meets_target",
        8 * MiB,
        "l1/b",
    )


def test_engine_without_any_capacity_report_starts_from_the_minimum() -> None:
    engine = CachingEngine(CachingSettings(min_l1_bytes=4 * MiB))
    decision = engine.recommend_l1_size([record("n1")], NOW)
    assert (decision.reason.code, decision.to_value) == ("clamped_to_min", 4 * MiB)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"min_l1_bytes": 512}, id="below-the-tuning-minimum"),
        pytest.param({"max_l1_bytes": 65 * 2**30}, id="above-the-tuning-maximum"),
        pytest.param({"min_l1_bytes": 8 * MiB, "max_l1_bytes": 4 * MiB}, id="min-above-max"),
        pytest.param({"stale_after_seconds": 0.0}, id="no-staleness-window"),
        pytest.param({"knee_tolerance": 1.0}, id="tolerance-of-everything"),
        pytest.param({"target_hit_ratio": 0.0}, id="zero-target"),
    ],
)
def test_settings_refuse_values_that_cannot_be_pushed(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        CachingSettings(**options)
