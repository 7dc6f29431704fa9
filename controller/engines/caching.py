"""CachingEngine: fleet cache analytics and L1 sizing, pure over the agents' last reports.

Two questions an operator asks of the node caches: how well are they doing (hit ratios per
namespace and level, summed across the fresh nodes), and how big should the L1 be (read off
the nodes' miss-ratio curves: the smallest size past which more memory buys almost nothing).
No clock, network or randomness inside: ``now`` and the records are passed in.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from controller.registry import AgentRecord, is_stale
from shared.wire import Actuation, CacheLevelStats, Decision, DecisionReason, MissRatioPoint

__all__ = [
    "CacheKey",
    "CacheTotals",
    "CachingEngine",
    "CachingSettings",
    "FleetCacheStats",
    "expected_hit_ratios",
    "fleet_stats",
    "merge_curves",
    "miss_ratio_at",
    "recommend_l1_size",
]

CacheKey = tuple[str, str]  # (namespace, level)
Curve = list[tuple[int, float]]  # (capacity in bytes, miss ratio), capacities ascending

# CacheTuning.capacity_bytes bounds: a recommendation outside them could not be pushed.
TUNING_MIN_BYTES = 1024
TUNING_MAX_BYTES = 64 * 2**30
_EPSILON = 1e-9  # ratios compared after float arithmetic


# --- fleet statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheTotals:
    """Counters summed over nodes (and namespaces, for a level total); ``nodes`` that reported."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0
    errors: int = 0
    nodes: int = 0

    @property
    def requests(self) -> int:
        return self.hits + self.misses

    @property
    def hit_ratio(self) -> float | None:
        """None rather than 0 when nothing was asked: no traffic is not a cold cache."""
        requests = self.requests
        return self.hits / requests if requests else None

    def __add__(self, other: CacheTotals) -> CacheTotals:
        return CacheTotals(
            hits=self.hits + other.hits,
            misses=self.misses + other.misses,
            evictions=self.evictions + other.evictions,
            entries=self.entries + other.entries,
            bytes=self.bytes + other.bytes,
            errors=self.errors + other.errors,
            nodes=self.nodes + other.nodes,
        )


def _node_totals(stats: CacheLevelStats) -> CacheTotals:
    return CacheTotals(
        hits=stats.hits,
        misses=stats.misses,
        evictions=stats.evictions,
        entries=stats.entries,
        bytes=stats.bytes,
        errors=stats.errors,
        nodes=1,
    )


@dataclass(frozen=True)
class FleetCacheStats:
    """A snapshot of the fresh nodes' cumulative cache counters.

    ``by_namespace`` is keyed by (namespace, level); ``by_level`` sums each level over all
    namespaces; ``by_node`` holds each fresh node's own (namespace, level) totals (a fresh node
    without a cache appears with an empty mapping). Stale nodes are listed, never counted.
    """

    by_namespace: Mapping[CacheKey, CacheTotals]
    by_level: Mapping[str, CacheTotals]
    by_node: Mapping[str, Mapping[CacheKey, CacheTotals]]
    fresh_nodes: tuple[str, ...]
    stale_nodes: tuple[str, ...]


def _node_stats(stats: Iterable[CacheLevelStats]) -> dict[CacheKey, CacheTotals]:
    """One node's totals; a (namespace, level) an agent repeats is summed, still one node."""
    totals: dict[CacheKey, CacheTotals] = {}
    for entry in stats:
        key = (entry.namespace, entry.level)
        one = _node_totals(entry)
        totals[key] = replace(totals[key] + one, nodes=1) if key in totals else one
    return dict(sorted(totals.items()))


def fleet_stats(records: Sequence[AgentRecord], now: float, stale_after: float) -> FleetCacheStats:
    """Sum the latest cumulative counters of the fresh nodes per (namespace, level).

    Counter resets: each agent's counters are cumulative since it started, so an agent restart
    makes its numbers drop. Summing the latest values is still right for a snapshot (ratios
    are "since each agent started", and nothing goes negative); rates over time belong to
    Prometheus, whose ``rate()`` handles resets. Do not difference two snapshots.
    """
    by_node: dict[str, dict[CacheKey, CacheTotals]] = {}
    stale: list[str] = []
    for record in records:
        node = record.report.node
        if is_stale(record.last_seen, now, stale_after):
            stale.append(node)
            continue
        by_node[node] = _node_stats(record.report.cache)

    by_namespace: dict[CacheKey, CacheTotals] = {}
    by_level: dict[str, CacheTotals] = {}
    for node_totals in by_node.values():
        node_levels: dict[str, CacheTotals] = {}
        for (namespace, level), totals in node_totals.items():
            key = (namespace, level)
            by_namespace[key] = by_namespace.get(key, CacheTotals()) + totals
            node_levels[level] = node_levels.get(level, CacheTotals()) + totals
        for level, totals in node_levels.items():
            # A node counts once per level however many namespaces it serves.
            by_level[level] = by_level.get(level, CacheTotals()) + replace(totals, nodes=1)

    return FleetCacheStats(
        by_namespace=dict(sorted(by_namespace.items())),
        by_level=dict(sorted(by_level.items())),
        by_node=dict(sorted(by_node.items())),
        fresh_nodes=tuple(sorted(by_node)),
        stale_nodes=tuple(sorted(stale)),
    )


# --- L1 sizing from miss-ratio curves ----------------------------------------------------------


def _node_curve(points: Sequence[MissRatioPoint]) -> Curve:
    """One node's curve made well-formed: sorted, one point per capacity, anchored at (0, 1).

    An LRU cache never misses more when it grows (the inclusion property), so a point above
    an earlier one is estimation noise and is lowered to it.
    """
    by_capacity: dict[int, list[float]] = {}
    for point in points:
        by_capacity.setdefault(point.capacity_bytes, []).append(point.miss_ratio)
    by_capacity.setdefault(0, [1.0])  # an empty cache misses everything
    curve: Curve = []
    lowest = 1.0
    for capacity in sorted(by_capacity):
        lowest = min(lowest, statistics.fmean(by_capacity[capacity]))
        curve.append((capacity, lowest))
    return curve


def miss_ratio_at(curve: Curve, capacity: int) -> float:
    """Linear between points; flat past the last one (no evidence of further gains)."""
    if capacity <= curve[0][0]:
        return curve[0][1]
    for (low, low_ratio), (high, high_ratio) in itertools.pairwise(curve):
        if capacity <= high:
            return low_ratio + (high_ratio - low_ratio) * (capacity - low) / (high - low)
    return curve[-1][1]


def merge_curves(curves: Sequence[Sequence[MissRatioPoint]]) -> Curve:
    """The fleet's curve: at every capacity any node reported, the nodes' mean miss ratio.

    A plain mean (each node one vote): the L1 size is one setting for every node. Nodes that
    sent no points are left out; an empty result means no node had a curve.
    """
    nodes = [_node_curve(points) for points in curves if points]
    if not nodes:
        return []
    grid = sorted({capacity for curve in nodes for capacity, _ in curve})
    return [
        (capacity, statistics.fmean(miss_ratio_at(curve, capacity) for curve in nodes))
        for capacity in grid
    ]


def _smallest_reaching(curve: Curve, miss_ratio: float) -> int:
    """The smallest capacity at which the (non-increasing) curve is at or below ``miss_ratio``."""
    miss_ratio += _EPSILON  # 1 - 0.8 is 0.19999999999999996: a curve at 0.2 meets an 80 % target
    previous: tuple[int, float] | None = None
    for capacity, ratio in curve:
        if ratio <= miss_ratio:
            if previous is None:
                return capacity
            low, low_ratio = previous
            crossing = low + (low_ratio - miss_ratio) * (capacity - low) / (low_ratio - ratio)
            return min(capacity, math.ceil(crossing))
        previous = (capacity, ratio)
    return curve[-1][0]


def _bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def _percent(ratio: float) -> str:
    return f"{100 * ratio:.1f} %"


@dataclass(frozen=True)
class _Choice:
    capacity: int
    code: str
    why: str


def _choose(
    curve: Curve, current: int, target_hit_ratio: float | None, knee_tolerance: float
) -> _Choice:
    """The size by rule, before the bounds: the knee, or the target, or keep the current."""
    if not curve:
        return _Choice(
            current, "no_curve", f"no fresh node sent a miss-ratio curve; keeping {_bytes(current)}"
        )
    best = min(ratio for _, ratio in curve)
    worst = max(ratio for _, ratio in curve)
    if worst - best <= knee_tolerance:
        # Flat: no measured size helps more than the tolerance. That is also what a cache that
        # has seen only cold misses since it started looks like, so it is no evidence to act on.
        return _Choice(
            current,
            "flat_curve",
            f"the curve is flat (miss ratio {_percent(best)} to {_percent(worst)} at every "
            f"measured size), no size is better; keeping {_bytes(current)}",
        )
    knee = _smallest_reaching(curve, best + knee_tolerance)
    knee_why = (
        f"the knee of the curve, the smallest size within {100 * knee_tolerance:.1f} points "
        f"of the best miss ratio {_percent(best)}, is {_bytes(knee)}"
    )
    if target_hit_ratio is None:
        return _Choice(knee, "knee_of_curve", knee_why)
    if 1.0 - best < target_hit_ratio - _EPSILON:
        return _Choice(
            knee,
            "target_unreachable",
            f"the target hit ratio {_percent(target_hit_ratio)} is beyond the curve's best "
            f"{_percent(1.0 - best)}; {knee_why}",
        )
    meets = _smallest_reaching(curve, 1.0 - target_hit_ratio)
    return _Choice(
        meets,
        "meets_target",
        f"the smallest size meeting the target hit ratio {_percent(target_hit_ratio)} "
        f"is {_bytes(meets)}",
    )


def recommend_l1_size(
    curves: Sequence[Sequence[MissRatioPoint]],
    current_capacity_bytes: int,
    *,
    min_bytes: int,
    max_bytes: int,
    now: float,
    target_hit_ratio: float | None = None,
    knee_tolerance: float = 0.01,
    fleet: str = "default",
    decision_id: str | None = None,
) -> Decision:
    """Recommend one L1 capacity for the fleet, as a Decision for the decision log.

    Merge the nodes' curves (mean miss ratio, interpolated), then take the smallest capacity
    within ``knee_tolerance`` of the curve's minimum miss ratio (diminishing returns), or the
    smallest meeting ``target_hit_ratio`` when one is given (the knee if the target is out of
    reach), and clamp to [min_bytes, max_bytes]. A flat curve or no curve keeps the current
    size. The curves are for LRU and the L1 runs W-TinyLFU, so expected hit ratios are
    conservative. ``decide_seconds`` is 0: the caller times the call and copies it in.
    """
    if not 0 <= min_bytes <= max_bytes:
        raise ValueError(f"need 0 <= min_bytes <= max_bytes, got {min_bytes}, {max_bytes}")
    if current_capacity_bytes < 0:
        raise ValueError(f"current_capacity_bytes must be >= 0, got {current_capacity_bytes}")
    if not 0.0 <= knee_tolerance < 1.0:
        raise ValueError(f"knee_tolerance must be in [0, 1), got {knee_tolerance}")
    if target_hit_ratio is not None and not 0.0 < target_hit_ratio <= 1.0:
        raise ValueError(f"target_hit_ratio must be in (0, 1], got {target_hit_ratio}")

    curve = merge_curves(curves)
    nodes = sum(1 for points in curves if points)
    choice = _choose(curve, current_capacity_bytes, target_hit_ratio, knee_tolerance)
    recommended = min(max(choice.capacity, min_bytes), max_bytes)
    code = choice.code
    message = choice.why
    if recommended != choice.capacity:
        above = choice.capacity > max_bytes
        code = "clamped_to_max" if above else "clamped_to_min"
        bound = "maximum" if above else "minimum"
        message += f", clamped to the {bound} {_bytes(recommended)}"

    inputs: dict[str, float] = {
        "current_bytes": float(current_capacity_bytes),
        "recommended_bytes": float(recommended),
        "min_bytes": float(min_bytes),
        "max_bytes": float(max_bytes),
        "knee_tolerance": knee_tolerance,
        "nodes": float(nodes),
    }
    if target_hit_ratio is not None:
        inputs["target_hit_ratio"] = target_hit_ratio
    if curve:
        current_hit = 1.0 - miss_ratio_at(curve, current_capacity_bytes)
        recommended_hit = 1.0 - miss_ratio_at(curve, recommended)
        inputs["curve_min_miss_ratio"] = min(ratio for _, ratio in curve)
        inputs["expected_hit_ratio_current"] = current_hit
        inputs["expected_hit_ratio_recommended"] = recommended_hit
        message += (
            f"; expected hit ratio {_percent(current_hit)} at the current "
            f"{_bytes(current_capacity_bytes)}, {_percent(recommended_hit)} at "
            f"{_bytes(recommended)} ({nodes} node{'s' if nodes != 1 else ''})"
        )

    policy = (
        f"target hit ratio {target_hit_ratio}" if target_hit_ratio is not None else "knee"
    ) + f", tolerance {knee_tolerance}, bounds [{min_bytes}, {max_bytes}] bytes"
    return Decision(
        id=decision_id or f"cache-l1-{fleet[:40]}-{round(now * 1000)}",
        kind="cache",
        target=f"l1/{fleet}",
        from_value=float(current_capacity_bytes),
        to_value=float(recommended),
        reason=DecisionReason(code=code, message=message[:1024], inputs=inputs, policy=policy),
        decided_at=now,
        decide_seconds=0.0,
        actuation=Actuation(
            state="pending" if recommended != current_capacity_bytes else "skipped"
        ),
    )


def expected_hit_ratios(decision: Decision) -> tuple[float | None, float | None]:
    """(at the current size, at the recommended size) from a sizing decision; None without a
    curve."""
    inputs = decision.reason.inputs
    return inputs.get("expected_hit_ratio_current"), inputs.get("expected_hit_ratio_recommended")


# --- the facade --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachingSettings:
    """Policy for the caching engine, built once in ``main()`` and passed in."""

    stale_after_seconds: float = 30.0
    min_l1_bytes: int = 16 * 2**20
    max_l1_bytes: int = 4 * 2**30
    knee_tolerance: float = 0.01
    target_hit_ratio: float | None = None
    fleet: str = "default"

    def __post_init__(self) -> None:
        if self.stale_after_seconds <= 0:
            raise ValueError("stale_after_seconds must be positive")
        if not TUNING_MIN_BYTES <= self.min_l1_bytes <= self.max_l1_bytes <= TUNING_MAX_BYTES:
            raise ValueError(
                f"need {TUNING_MIN_BYTES} <= min_l1_bytes <= max_l1_bytes <= {TUNING_MAX_BYTES}"
                " (the TuningSet's cache capacity bounds)"
            )
        if not 0.0 <= self.knee_tolerance < 1.0:
            raise ValueError("knee_tolerance must be in [0, 1)")
        if self.target_hit_ratio is not None and not 0.0 < self.target_hit_ratio <= 1.0:
            raise ValueError("target_hit_ratio must be in (0, 1]")


class CachingEngine:
    """The caching area's public face: fleet statistics and L1 sizing. Stateless."""

    def __init__(self, settings: CachingSettings) -> None:
        self._settings = settings

    @property
    def settings(self) -> CachingSettings:
        return self._settings

    def _fresh(self, records: Sequence[AgentRecord], now: float) -> list[AgentRecord]:
        stale_after = self._settings.stale_after_seconds
        return [r for r in records if not is_stale(r.last_seen, now, stale_after)]

    def fleet_stats(self, records: Sequence[AgentRecord], now: float) -> FleetCacheStats:
        return fleet_stats(records, now, self._settings.stale_after_seconds)

    def recommend_l1_size(
        self,
        records: Sequence[AgentRecord],
        now: float,
        *,
        current_capacity_bytes: int | None = None,
        decision_id: str | None = None,
    ) -> Decision:
        """Size the L1 from the fresh nodes' curves.

        ``current_capacity_bytes`` defaults to the low median of the capacities the fresh
        nodes report (0 when none does, which the minimum bound then raises).
        """
        fresh = self._fresh(records, now)
        if current_capacity_bytes is None:
            reported = [
                r.report.cache_capacity_bytes for r in fresh if r.report.cache_capacity_bytes
            ]
            current_capacity_bytes = statistics.median_low(reported) if reported else 0
        return self.recommend_from_curves(
            [r.report.cache_mrc for r in fresh], current_capacity_bytes, now, decision_id
        )

    def recommend_from_curves(
        self,
        curves: Sequence[Sequence[MissRatioPoint]],
        current_capacity_bytes: int,
        now: float,
        decision_id: str | None = None,
    ) -> Decision:
        """``recommend_l1_size`` under this engine's settings (bounds, target, knee)."""
        settings = self._settings
        return recommend_l1_size(
            curves,
            current_capacity_bytes,
            min_bytes=settings.min_l1_bytes,
            max_bytes=settings.max_l1_bytes,
            now=now,
            target_hit_ratio=settings.target_hit_ratio,
            knee_tolerance=settings.knee_tolerance,
            fleet=settings.fleet,
            decision_id=decision_id,
        )
