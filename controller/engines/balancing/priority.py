"""Priority load, panic and locality weights: Envoy's failover math.

Ports ``LoadBalancerBase::recalculatePerPriorityState``, ``distributeLoad``,
``recalculatePerPriorityPanic``, ``recalculateLoadInTotalPanic`` and ``isHostSetInPanic``
(envoyproxy/envoy source/extensions/load_balancing_policies/common/load_balancer_impl.cc) and
``LocalityWrr::effectiveLocalityWeight`` (.../common/locality_wrr.cc). All percentages are the
integers Envoy computes (floor division, remainder to the first priority with availability),
so a level's share can differ by one point from the rounded figures in Envoy's docs.

The overprovisioning factor is Envoy's integer form here (140 means 1.4), as in
``HostSet::overprovisioningFactor()``; callers holding a multiplier convert it with
``overprovisioning_factor_from_multiplier``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_OVERPROVISIONING_FACTOR = 140  # kDefaultOverProvisioningFactor
DEFAULT_PANIC_THRESHOLD_PCT = 50  # upstream.healthy_panic_threshold


@dataclass(frozen=True, slots=True)
class PriorityLevel:
    """One priority's host set: counts, and optionally weight sums.

    ``hosts`` includes excluded hosts (as Envoy's ``hosts()`` does); ``healthy``, ``degraded``
    and ``excluded`` are disjoint subsets of it. The ``*_weight`` sums, when given, replace the
    counts in the health ratio (Envoy's ``weighted_priority_health``); ``total_weight`` is the
    weight of all hosts minus the excluded ones. Panic and total-panic splits always use counts.
    """

    hosts: int
    healthy: int
    degraded: int = 0
    excluded: int = 0
    healthy_weight: int | None = None
    degraded_weight: int | None = None
    total_weight: int | None = None

    def __post_init__(self) -> None:
        if min(self.hosts, self.healthy, self.degraded, self.excluded) < 0:
            raise ValueError("host counts must not be negative")
        if self.healthy + self.degraded + self.excluded > self.hosts:
            raise ValueError("healthy + degraded + excluded exceeds hosts")
        weights = (self.healthy_weight, self.degraded_weight, self.total_weight)
        if any(w is not None for w in weights) and any(w is None for w in weights):
            raise ValueError("give all of healthy_weight, degraded_weight, total_weight or none")


@dataclass(frozen=True, slots=True)
class PriorityLoad:
    """Envoy's per-priority state after a recalculation.

    ``healthy_load``/``degraded_load`` are integer percentages summing to 100;
    ``health``/``degraded_availability`` are each level's availability (0-100) and
    ``normalized_total_availability`` their capped sum.
    """

    healthy_load: tuple[int, ...]
    degraded_load: tuple[int, ...]
    health: tuple[int, ...]
    degraded_availability: tuple[int, ...]
    normalized_total_availability: int
    panic: tuple[bool, ...]
    total_panic: bool

    @property
    def load(self) -> tuple[int, ...]:
        """Healthy plus degraded percentage per priority."""
        return tuple(h + d for h, d in zip(self.healthy_load, self.degraded_load, strict=True))


def overprovisioning_factor_from_multiplier(multiplier: float) -> int:
    """1.4 -> 140, rounded half up: Envoy stores the factor as an integer percentage.

    The product is first rounded to 9 decimals so 1.005 (100.49999... in binary) gives 101.
    """
    return math.floor(round(multiplier * 100, 9) + 0.5)


def level_availability(level: PriorityLevel, overprovisioning_factor: int) -> tuple[int, int]:
    """(health, degraded availability) of one level: ``min(100, factor * part // total)``."""
    host_count = level.hosts - level.excluded
    if host_count <= 0:
        return 0, 0
    if level.total_weight is not None:
        healthy = level.healthy_weight or 0
        degraded = level.degraded_weight or 0
        total = level.total_weight
        if total <= 0:
            return 0, 0
    else:
        healthy, degraded, total = level.healthy, level.degraded, host_count
    return (
        min(100, overprovisioning_factor * healthy // total),
        min(100, overprovisioning_factor * degraded // total),
    )


def is_level_in_panic(level: PriorityLevel, panic_threshold_pct: int) -> bool:
    """``isHostSetInPanic``: (healthy + degraded) % of non-excluded hosts below the threshold.

    An empty (or all-excluded) level counts as 0 % available, so it is in panic whenever the
    threshold is above 0.
    """
    threshold = min(100, panic_threshold_pct)
    host_count = level.hosts - level.excluded
    healthy_pct = 0.0 if host_count <= 0 else 100.0 * level.healthy / host_count
    degraded_pct = 0.0 if host_count <= 0 else 100.0 * level.degraded / host_count
    return healthy_pct + degraded_pct < threshold


def _distribute(
    availability: Sequence[int], total_load: int, normalized_total: int
) -> tuple[list[int], int, int]:
    """``distributeLoad``: greedy in priority order; returns loads, first available, rest."""
    loads: list[int] = []
    first_available = -1
    for index, available in enumerate(availability):
        if first_available < 0 and available > 0:
            first_available = index
        load = min(total_load, available * 100 // normalized_total)
        loads.append(load)
        total_load -= load
    return loads, first_available, total_load


def _total_panic_load(levels: Sequence[PriorityLevel]) -> list[int]:
    """``recalculateLoadInTotalPanic``: split by raw host counts (excluded hosts included)."""
    total_hosts = sum(level.hosts for level in levels)
    loads = [0] * len(levels)
    if total_hosts == 0:
        loads[0] = 100
        return loads
    first_non_empty = next(i for i, level in enumerate(levels) if level.hosts)
    for index, level in enumerate(levels):
        loads[index] = 100 * level.hosts // total_hosts
    loads[first_non_empty] += 100 - sum(loads)
    return loads


def priority_load(
    levels: Sequence[PriorityLevel],
    *,
    overprovisioning_factor: int = DEFAULT_OVERPROVISIONING_FACTOR,
    panic_threshold_pct: int = DEFAULT_PANIC_THRESHOLD_PCT,
) -> PriorityLoad:
    """The load each priority takes, and which levels are in panic (0 disables panic).

    Per-level panic is only considered when the normalized total availability is below 100;
    when every level is in panic ("total panic") the load follows host counts instead. With
    panic disabled and nothing available, Envoy assigns 100 % to P0 (nothing can be served).
    """
    if not levels:
        raise ValueError("at least one priority level is needed")
    if overprovisioning_factor <= 0:
        raise ValueError("the overprovisioning factor must be positive")
    availability = [level_availability(level, overprovisioning_factor) for level in levels]
    health = tuple(h for h, _ in availability)
    degraded = tuple(d for _, d in availability)
    normalized_total = min(100, sum(health) + sum(degraded))
    count = len(levels)
    threshold = min(100, max(0, panic_threshold_pct))

    healthy_load = [0] * count
    degraded_load = [0] * count
    if normalized_total > 0:
        healthy_load, first_healthy, remaining = _distribute(health, 100, normalized_total)
        degraded_load, first_degraded, remaining = _distribute(
            degraded, remaining, normalized_total
        )
        if remaining:
            if first_healthy != -1:
                healthy_load[first_healthy] += remaining
            else:
                degraded_load[first_degraded] += remaining

    if threshold == 0 and normalized_total == 0:
        healthy_load = [0] * count
        healthy_load[0] = 100
        return PriorityLoad(
            tuple(healthy_load), tuple([0] * count), health, degraded, 0, (False,) * count, False
        )

    panic = tuple(
        False if normalized_total == 100 else is_level_in_panic(level, threshold)
        for level in levels
    )
    total_panic = all(panic)
    if total_panic:
        healthy_load = _total_panic_load(levels)
        degraded_load = [0] * count
    return PriorityLoad(
        tuple(healthy_load),
        tuple(degraded_load),
        health,
        degraded,
        normalized_total,
        panic,
        total_panic,
    )


def effective_locality_weight(
    weight: int,
    eligible_hosts: int,
    hosts: int,
    excluded_hosts: int = 0,
    overprovisioning_factor: int = DEFAULT_OVERPROVISIONING_FACTOR,
) -> float:
    """``LocalityWrr::effectiveLocalityWeight``: ``w * min(1, factor * eligible / (hosts - excl))``.

    A locality with no non-excluded hosts weighs 0 and is never picked.
    """
    host_count = hosts - excluded_hosts
    if host_count <= 0:
        return 0.0
    availability_ratio = 1.0 * eligible_hosts / host_count
    return weight * min(1.0, (overprovisioning_factor / 100.0) * availability_ratio)
