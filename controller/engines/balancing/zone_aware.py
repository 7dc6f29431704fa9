"""Zone-aware routing: how much of one caller zone's traffic stays in its own zone.

Ports ``ZoneAwareLoadBalancerBase`` (envoyproxy/envoy
source/extensions/load_balancing_policies/common/load_balancer_impl.cc):
``earlyExitNonLocalityRouting`` (the preconditions), ``calculateLocalityPercentages`` (basis
points, floor division), ``regenerateLocalityRoutingStructures`` (LocalityDirect versus
LocalityResidual, residual capacity) and ``tryChooseLocalLocalityHosts`` (the per-request draw).
Envoy samples per request; we return the expected fraction of the caller zone's requests that
each upstream zone receives, which is what the draw converges to:

- LocalityDirect: everything to the caller's zone.
- LocalityResidual: ``local_percent_to_route / 10000`` to the caller's zone, the rest split in
  proportion to each other zone's residual capacity ``max(0, upstream_bp - local_bp)``.
- No residual capacity left (rounding): Envoy picks ``random % number_of_localities``, a
  uniform pick over every upstream locality, the caller's own included.

Zones are localities here. Upstream localities are the zones of *all* priority-0 endpoints, as
Envoy's ``healthyHostsPerLocality()`` keeps a slot (maybe empty) for each of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

RoutingMode = Literal["no_locality_routing", "locality_direct", "locality_residual"]

BASIS_POINTS: Final = 10000
DEFAULT_MIN_CLUSTER_SIZE: Final = 6
DEFAULT_ROUTING_ENABLED_PCT: Final = 100.0


@dataclass(frozen=True, slots=True)
class ZoneAwareSettings:
    """Envoy's ``ZoneAwareLbConfig``: ``routing_enabled`` (a Percent, rounded to an integer as
    ``PROTOBUF_PERCENT_TO_ROUNDED_INTEGER_OR_DEFAULT`` does) and ``min_cluster_size``."""

    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE
    routing_enabled_pct: float = DEFAULT_ROUTING_ENABLED_PCT

    @property
    def routing_enabled_integer_pct(self) -> int:
        """The integer percent ``featureEnabled`` compares ``random % 100`` against."""
        return min(100, max(0, math.floor(self.routing_enabled_pct + 0.5)))


@dataclass(frozen=True, slots=True)
class LocalityPercentages:
    """One upstream locality's share of callers and of healthy upstream hosts, in basis points."""

    local_bp: int
    upstream_bp: int


@dataclass(frozen=True, slots=True)
class ZoneAwareDecision:
    """Where one caller zone's priority-0 traffic goes.

    ``zone_shares`` covers every upstream locality and sums to 1 (empty when there is no healthy
    upstream host to split over). ``mode`` is the latched Envoy state; with 0 < routing enabled
    < 100 the shares blend zone-aware and plain routing. ``reason_code`` is a short code and
    ``reason`` the human explanation.
    """

    mode: RoutingMode
    reason_code: str
    reason: str
    zone_shares: Mapping[str, float]
    local_percent_to_route: int = 0
    residual_capacity: Mapping[str, int] = field(default_factory=dict)
    percentages: Mapping[str, LocalityPercentages] = field(default_factory=dict)


def calculate_locality_percentages(
    callers_per_zone: Mapping[str, int], upstream_healthy_per_zone: Mapping[str, int]
) -> dict[str, LocalityPercentages]:
    """``calculateLocalityPercentages``: ``10000 * count // total`` for callers and upstream.

    A caller zone without upstream hosts is absent from the result; an upstream zone without
    healthy hosts gets (0, 0) as Envoy cannot tell its locality from an empty host list.
    """
    total_local = sum(callers_per_zone.values())
    total_upstream = sum(upstream_healthy_per_zone.values())
    percentages: dict[str, LocalityPercentages] = {}
    for zone, healthy in upstream_healthy_per_zone.items():
        if healthy == 0:
            percentages[zone] = LocalityPercentages(0, 0)
            continue
        local_count = callers_per_zone.get(zone, 0)
        local_bp = BASIS_POINTS * local_count // total_local if total_local > 0 else 0
        upstream_bp = BASIS_POINTS * healthy // total_upstream if total_upstream > 0 else 0
        percentages[zone] = LocalityPercentages(local_bp, upstream_bp)
    return percentages


def plain_shares(hosts_per_zone: Mapping[str, int]) -> dict[str, float]:
    """Routing without zone preference: each zone's share of the hosts picked from."""
    total = sum(hosts_per_zone.values())
    if total == 0:
        return {}
    return {zone: count / total for zone, count in hosts_per_zone.items()}


def _no_locality_routing(
    code: str, reason: str, upstream_healthy_per_zone: Mapping[str, int]
) -> ZoneAwareDecision:
    return ZoneAwareDecision(
        "no_locality_routing", code, f"{code}: {reason}", plain_shares(upstream_healthy_per_zone)
    )


def _precondition_failure(
    local_zone: str | None,
    callers_per_zone: Mapping[str, int] | None,
    upstream_healthy_per_zone: Mapping[str, int],
    settings: ZoneAwareSettings,
) -> tuple[str, str] | None:
    """``earlyExitNonLocalityRouting``, in Envoy's order; None when zone routing may proceed."""
    if len(upstream_healthy_per_zone) < 2:
        return (
            "too_few_upstream_zones",
            f"priority-0 endpoints span {len(upstream_healthy_per_zone)} zone(s); "
            "zone-aware routing needs at least 2",
        )
    if local_zone is None or callers_per_zone is None:
        return "no_local_cluster", "no caller zone and callers per zone were given"
    caller_zones = sum(1 for count in callers_per_zone.values() if count > 0)
    if caller_zones < 2:
        return (
            "too_few_caller_zones",
            f"callers span {caller_zones} zone(s); zone-aware routing needs at least 2",
        )
    if callers_per_zone.get(local_zone, 0) <= 0:
        return "local_cluster_not_ok", f"no callers are counted in the local zone {local_zone!r}"
    total_healthy = sum(upstream_healthy_per_zone.values())
    if total_healthy < settings.min_cluster_size:
        return (
            "cluster_too_small",
            f"{total_healthy} healthy hosts < minClusterSize {settings.min_cluster_size}",
        )
    return None


def _zone_aware_shares(
    local_zone: str,
    upstream_zones: list[str],
    local_percent_to_route: int,
    residual: Mapping[str, int],
) -> dict[str, float]:
    local_fraction = min(local_percent_to_route, BASIS_POINTS) / BASIS_POINTS
    cross_fraction = 1.0 - local_fraction
    total_residual = sum(residual.values())
    shares = dict.fromkeys(upstream_zones, 0.0)
    if local_zone in shares:
        shares[local_zone] = local_fraction
    if cross_fraction <= 0.0:
        return shares
    for zone in upstream_zones:
        if total_residual == 0:
            shares[zone] += cross_fraction / len(upstream_zones)
        else:
            shares[zone] += cross_fraction * residual.get(zone, 0) / total_residual
    return shares


def _blend(
    enabled_pct: int, zone_aware: Mapping[str, float], plain: Mapping[str, float]
) -> dict[str, float]:
    enabled = enabled_pct / 100
    zones = list(zone_aware) + [zone for zone in plain if zone not in zone_aware]
    return {
        zone: enabled * zone_aware.get(zone, 0.0) + (1 - enabled) * plain.get(zone, 0.0)
        for zone in zones
    }


def zone_aware_routing(
    local_zone: str | None,
    callers_per_zone: Mapping[str, int] | None,
    upstream_healthy_per_zone: Mapping[str, int],
    settings: ZoneAwareSettings | None = None,
) -> ZoneAwareDecision:
    """The zone split for callers in ``local_zone`` (Envoy's local locality).

    ``callers_per_zone`` is the local cluster (caller proxies per zone; None when there is no
    local cluster). ``upstream_healthy_per_zone`` holds every upstream priority-0 zone, with its
    count of healthy hosts (0 allowed). Panic is the caller's concern: Envoy checks it first and
    then routes over all hosts with no zone preference.
    """
    settings = settings or ZoneAwareSettings()
    failure = _precondition_failure(
        local_zone, callers_per_zone, upstream_healthy_per_zone, settings
    )
    if failure is not None:
        return _no_locality_routing(*failure, upstream_healthy_per_zone)
    assert local_zone is not None  # by the preconditions
    assert callers_per_zone is not None

    local_counts = {zone: count for zone, count in callers_per_zone.items() if count > 0}
    percentages = calculate_locality_percentages(local_counts, upstream_healthy_per_zone)
    upstream_zones = list(upstream_healthy_per_zone)
    has_local_locality = local_zone in upstream_healthy_per_zone
    own = percentages.get(local_zone, LocalityPercentages(0, 0))

    enabled_pct = settings.routing_enabled_integer_pct
    plain = plain_shares(upstream_healthy_per_zone)
    if enabled_pct == 0:
        return _no_locality_routing(
            "routing_disabled", "routingEnabledPct rounds to 0 %", upstream_healthy_per_zone
        )
    blend_note = (
        ""
        if enabled_pct == 100
        else f"; routingEnabledPct {enabled_pct} blends it with the plain split"
    )

    if has_local_locality and own.upstream_bp > 0 and own.upstream_bp >= own.local_bp:
        direct = dict.fromkeys(upstream_zones, 0.0)
        direct[local_zone] = 1.0
        reason = (
            f"locality_direct: zone {local_zone!r} holds {own.upstream_bp / 100:.2f} % of "
            f"healthy upstream hosts >= {own.local_bp / 100:.2f} % of callers{blend_note}"
        )
        return ZoneAwareDecision(
            "locality_direct",
            "locality_direct",
            reason,
            _blend(enabled_pct, direct, plain),
            BASIS_POINTS,
            {},
            percentages,
        )

    local_percent_to_route = (
        own.upstream_bp * BASIS_POINTS // own.local_bp
        if has_local_locality and own.local_bp > 0
        else 0
    )
    residual = {
        zone: max(0, pct.upstream_bp - pct.local_bp)
        for zone, pct in percentages.items()
        if not (has_local_locality and zone == local_zone)
    }
    shares = _zone_aware_shares(local_zone, upstream_zones, local_percent_to_route, residual)
    if sum(residual.values()) == 0 and local_percent_to_route < BASIS_POINTS:
        code = "no_capacity_left"
        detail = (
            f"{local_percent_to_route / 100:.2f} % stays in zone {local_zone!r}; no zone has "
            "residual capacity, so the rest is spread evenly over all upstream zones"
        )
    else:
        code = "locality_residual"
        detail = (
            f"{local_percent_to_route / 100:.2f} % stays in zone {local_zone!r}; the rest goes "
            "to zones in proportion to their residual capacity"
        )
    return ZoneAwareDecision(
        "locality_residual",
        code,
        f"{code}: {detail}{blend_note}",
        _blend(enabled_pct, shares, plain),
        local_percent_to_route,
        residual,
        percentages,
    )
