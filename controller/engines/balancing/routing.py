"""One service's routing decision, and the ``decide`` kind ``routing``.

``compute_routing`` chains Envoy's steps the way a proxy applies them to a request: priority
load (with panic) first, then, for priority 0 only, zone-aware routing, and slow start on the
endpoint weights. ``decide_routing`` is the JSON face; its format is documented on it.

Choices, where Envoy has no JSON of its own:

- endpoint weight defaults to 1 (Envoy's ``load_balancing_weight`` default); output weights are
  floats, ``weight * slow-start factor``. Slow start only scales healthy endpoints (Envoy's
  ``applySlowStartFactor`` checks the host is healthy); others keep their weight.
- ``overprovisioningFactor`` is a multiplier (1.4) and is rounded to Envoy's integer form (140);
  ``panicThresholdPct`` and ``routingEnabledPct`` are rounded to whole percents as Envoy rounds
  its ``Percent`` fields.
- ``zoneShares`` follows priority-0 hosts: in panic the split is over *all* priority-0 hosts
  (Envoy's ``AllHosts`` source), otherwise over the healthy ones (degraded ones if none is
  healthy).
- ``panic`` is the panic flag of priority 0, or of the first priority taking traffic when
  priority 0 takes none; ``panicPerPriority`` lists all levels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from controller.engines.balancing.priority import (
    PriorityLevel,
    PriorityLoad,
    overprovisioning_factor_from_multiplier,
    priority_load,
)
from controller.engines.balancing.slow_start import (
    DEFAULT_AGGRESSION,
    DEFAULT_MIN_WEIGHT_PCT,
    SlowStartSettings,
    slow_start_factor,
)
from controller.engines.balancing.zone_aware import (
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_ROUTING_ENABLED_PCT,
    RoutingMode,
    ZoneAwareSettings,
    plain_shares,
    zone_aware_routing,
)
from controller.engines.decide_input import DecideInputError

MAX_ENDPOINTS: Final = 5000
MAX_ZONES: Final = 64
MAX_PRIORITY: Final = 127
MAX_WEIGHT: Final = 2**31 - 1
MAX_CALLERS: Final = 2**31 - 1
MAX_NAME_LENGTH: Final = 253
MAX_AGE_SECONDS: Final = float(2**53)
MAX_OVERPROVISIONING_FACTOR: Final = 10000.0
DEFAULT_PANIC_THRESHOLD_PCT: Final = 50.0
DEFAULT_OVERPROVISIONING_MULTIPLIER: Final = 1.4


class NoEndpointsError(ValueError):
    """There is nothing to route to."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One upstream endpoint. ``degraded`` and ``excluded`` mirror Envoy's host sets: a
    degraded host serves only when healthy ones run short; an excluded one (not yet warmed)
    is left out of health ratios. ``age_seconds`` is the time since it turned healthy."""

    address: str
    zone: str
    region: str = ""
    priority: int = 0
    healthy: bool = True
    weight: int = 1
    age_seconds: float | None = None
    degraded: bool = False
    excluded: bool = False

    @property
    def counts_healthy(self) -> bool:
        return self.healthy and not self.degraded and not self.excluded

    @property
    def counts_degraded(self) -> bool:
        return self.degraded and not self.excluded


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    """The knobs of ``policy`` with Envoy's defaults; ``slow_start`` None means off."""

    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE
    routing_enabled_pct: float = DEFAULT_ROUTING_ENABLED_PCT
    panic_threshold_pct: float = DEFAULT_PANIC_THRESHOLD_PCT
    overprovisioning_factor: float = DEFAULT_OVERPROVISIONING_MULTIPLIER
    slow_start: SlowStartSettings | None = None


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Where one caller zone's requests to one service go, and why.

    ``priority_load`` is fractions per priority (Envoy's integer percents / 100, healthy plus
    degraded); ``zone_shares`` the fraction of priority-0 traffic per upstream zone.
    """

    mode: RoutingMode
    zone_shares: Mapping[str, float]
    priority_load: tuple[float, ...]
    panic: bool
    endpoint_weights: Mapping[str, float]
    reason_code: str
    reason: str
    priorities: PriorityLoad
    local_percent_to_route: int


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _levels(endpoints: Sequence[Endpoint]) -> list[PriorityLevel]:
    top = max(endpoint.priority for endpoint in endpoints)
    counts = [[0, 0, 0, 0] for _ in range(top + 1)]
    for endpoint in endpoints:
        level = counts[endpoint.priority]
        level[0] += 1
        level[1] += endpoint.counts_healthy
        level[2] += endpoint.counts_degraded
        level[3] += endpoint.excluded
    return [
        PriorityLevel(hosts, healthy, degraded, excluded)
        for hosts, healthy, degraded, excluded in counts
    ]


def _zone_counts(
    endpoints: Sequence[Endpoint], include: Literal["all", "healthy", "degraded"]
) -> dict[str, int]:
    """Per priority-0 zone (every zone present, in first-seen order) how many hosts count."""
    counts: dict[str, int] = {}
    for endpoint in endpoints:
        if endpoint.priority != 0:
            continue
        selected = (
            True
            if include == "all"
            else endpoint.counts_healthy
            if include == "healthy"
            else endpoint.counts_degraded
        )
        counts[endpoint.zone] = counts.get(endpoint.zone, 0) + int(selected)
    return counts


def _reported_panic(load: PriorityLoad) -> bool:
    loads = load.load
    if loads[0] > 0:
        return load.panic[0]
    first_loaded = next((i for i, share in enumerate(loads) if share > 0), 0)
    return load.panic[first_loaded]


def compute_routing(
    endpoints: Sequence[Endpoint],
    callers_per_zone: Mapping[str, int] | None,
    local_zone: str | None,
    policy: RoutingPolicy | None = None,
) -> RoutingDecision:
    """The routing decision for callers in ``local_zone`` of one service.

    Raises ``NoEndpointsError`` when there are no endpoints.
    """
    if not endpoints:
        raise NoEndpointsError("no endpoints to route to")
    policy = policy or RoutingPolicy()
    threshold = _round_half_up(policy.panic_threshold_pct)
    factor = overprovisioning_factor_from_multiplier(policy.overprovisioning_factor)
    levels = _levels(endpoints)
    priorities = priority_load(
        levels, overprovisioning_factor=factor, panic_threshold_pct=threshold
    )
    weights = {
        endpoint.address: endpoint.weight
        * (
            slow_start_factor(endpoint.age_seconds, policy.slow_start)
            if endpoint.counts_healthy
            else 1.0
        )
        for endpoint in endpoints
    }
    fractions = tuple(share / 100 for share in priorities.load)
    panic = _reported_panic(priorities)

    if priorities.panic[0]:
        level = levels[0]
        pct = (
            0.0
            if level.hosts == level.excluded
            else 100 * level.healthy / (level.hosts - level.excluded)
        )
        reason = (
            f"panic: priority 0 has {level.healthy} healthy of {level.hosts - level.excluded} "
            f"hosts ({pct:.1f} %) < panicThresholdPct {threshold}; traffic goes to all "
            "priority-0 hosts with no zone preference"
        )
        return RoutingDecision(
            "no_locality_routing",
            plain_shares(_zone_counts(endpoints, "all")),
            fractions,
            panic,
            weights,
            "panic",
            reason,
            priorities,
            0,
        )

    healthy_per_zone = _zone_counts(endpoints, "healthy")
    zone_decision = zone_aware_routing(
        local_zone,
        callers_per_zone,
        healthy_per_zone,
        ZoneAwareSettings(policy.min_cluster_size, policy.routing_enabled_pct),
    )
    shares = zone_decision.zone_shares
    if not shares and zone_decision.mode == "no_locality_routing":
        shares = plain_shares(_zone_counts(endpoints, "degraded"))
    return RoutingDecision(
        zone_decision.mode,
        shares,
        fractions,
        panic,
        weights,
        zone_decision.reason_code,
        zone_decision.reason,
        priorities,
        zone_decision.local_percent_to_route,
    )


# --- the JSON interface ----------------------------------------------------------------------

_TOP_KEYS: Final = frozenset({"kind", "localZone", "callersPerZone", "endpoints", "policy"})
_ENDPOINT_KEYS: Final = frozenset(
    {
        "address",
        "zone",
        "region",
        "priority",
        "healthy",
        "weight",
        "ageSeconds",
        "degraded",
        "excluded",
    }
)
_POLICY_KEYS: Final = frozenset(
    {
        "zoneAware",
        "panicThresholdPct",
        "overprovisioningFactor",
        "slowStart",
    }
)
_ZONE_AWARE_KEYS: Final = frozenset({"minClusterSize", "routingEnabledPct"})
_SLOW_START_KEYS: Final = frozenset({"windowSeconds", "aggression", "minWeightPct"})


class _FieldError(ValueError):
    """A field at fault: ``field`` is relative to the innermost list entry being parsed, so
    paths are only formatted on failure (formatting them per field dominated the parse)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _object(value: object, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _FieldError(path, "must be an object")
    if not value.keys() <= allowed:
        unknown = next(key for key in value if key not in allowed)
        raise _FieldError(f"{path}.{unknown}" if path else str(unknown), "unknown field")
    return value


def _name(value: object, path: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise _FieldError(
            path, f"must be a non-empty string of at most {MAX_NAME_LENGTH} characters"
        )
    return value


def _flag(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _FieldError(path, "must be true or false")
    return value


def _whole(value: object, path: str, low: int, high: int) -> int:
    """An integer (a float with no fraction is accepted) within [low, high]."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError(path, "must be an integer")
    if not low <= value <= high:
        raise _FieldError(path, f"must be between {low} and {high}")
    return value


def _real(value: object, path: str, low: float, high: float, *, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _FieldError(path, "must be a finite number")
    number = float(value)
    if number < low or number > high or (open_low and number == low):
        bound = f"greater than {low:g}" if open_low else f"at least {low:g}"
        raise _FieldError(path, f"must be {bound} and at most {high:g}")
    return number


def _parse_endpoint(entry: Mapping[str, Any]) -> Endpoint:
    """One endpoint; problems name fields relative to the endpoint.

    The common well-typed values take an inline fast path (one decision for 5000 endpoints
    stays fast); anything else goes through the validators, which convert or refuse.
    """
    get = entry.get
    address, zone = get("address"), get("zone")
    if address is None or zone is None:
        raise _FieldError("address" if address is None else "zone", "required")
    if type(address) is not str or not 0 < len(address) <= MAX_NAME_LENGTH:
        address = _name(address, "address")
    if type(zone) is not str or not 0 < len(zone) <= MAX_NAME_LENGTH:
        zone = _name(zone, "zone")
    region = get("region", "")
    if type(region) is not str or len(region) > MAX_NAME_LENGTH:
        raise _FieldError("region", "must be a string")
    priority = get("priority", 0)
    if type(priority) is not int or not 0 <= priority <= MAX_PRIORITY:
        priority = _whole(priority, "priority", 0, MAX_PRIORITY)
    weight = get("weight", 1)
    if type(weight) is not int or not 1 <= weight <= MAX_WEIGHT:
        weight = _whole(weight, "weight", 1, MAX_WEIGHT)
    age = get("ageSeconds")
    if age is not None and (type(age) is not float or not 0.0 <= age <= MAX_AGE_SECONDS):
        age = _real(age, "ageSeconds", 0.0, MAX_AGE_SECONDS)
    healthy, degraded, excluded = (
        get("healthy", True),
        get("degraded", False),
        get("excluded", False),
    )
    return Endpoint(
        address,
        zone,
        region,
        priority,
        healthy if type(healthy) is bool else _flag(healthy, "healthy"),
        weight,
        age,
        degraded if type(degraded) is bool else _flag(degraded, "degraded"),
        excluded if type(excluded) is bool else _flag(excluded, "excluded"),
    )


def _parse_endpoints(raw: object) -> list[Endpoint]:
    if not isinstance(raw, list):
        raise _FieldError("endpoints", "must be a list")
    if len(raw) > MAX_ENDPOINTS:
        raise _FieldError("endpoints", f"at most {MAX_ENDPOINTS} entries")
    endpoints: list[Endpoint] = []
    seen: set[str] = set()
    zones: set[str] = set()
    for index, item in enumerate(raw):
        try:
            endpoint = _parse_endpoint(_object(item, "", _ENDPOINT_KEYS))
        except _FieldError as problem:
            field = f"endpoints.{index}.{problem.field}" if problem.field else f"endpoints.{index}"
            raise _FieldError(field, problem.problem) from None
        if endpoint.address in seen:
            raise _FieldError(
                f"endpoints.{index}.address", f"duplicate address {endpoint.address!r}"
            )
        seen.add(endpoint.address)
        zones.add(endpoint.zone)
        if len(zones) > MAX_ZONES:
            raise _FieldError("endpoints", f"at most {MAX_ZONES} zones")
        endpoints.append(endpoint)
    return endpoints


def _parse_callers(raw: object) -> dict[str, int]:
    if not isinstance(raw, Mapping):
        raise _FieldError("callersPerZone", "must be an object")
    if len(raw) > MAX_ZONES:
        raise _FieldError("callersPerZone", f"at most {MAX_ZONES} zones")
    return {
        _name(zone, "callersPerZone"): _whole(count, f"callersPerZone.{zone}", 0, MAX_CALLERS)
        for zone, count in raw.items()
    }


def _parse_policy(raw: object) -> RoutingPolicy:
    policy = _object(raw, "policy", _POLICY_KEYS)
    zone_aware = _object(policy.get("zoneAware", {}), "policy.zoneAware", _ZONE_AWARE_KEYS)
    slow_start: SlowStartSettings | None = None
    if "slowStart" in policy:
        slow = _object(policy["slowStart"], "policy.slowStart", _SLOW_START_KEYS)
        if "windowSeconds" in slow:
            slow_start = SlowStartSettings(
                _real(slow["windowSeconds"], "policy.slowStart.windowSeconds", 0.0, 1e9),
                _real(
                    slow.get("aggression", DEFAULT_AGGRESSION),
                    "policy.slowStart.aggression",
                    0.0,
                    1e6,
                    open_low=True,
                ),
                _real(
                    slow.get("minWeightPct", DEFAULT_MIN_WEIGHT_PCT),
                    "policy.slowStart.minWeightPct",
                    0.0,
                    100.0,
                ),
            )
    return RoutingPolicy(
        min_cluster_size=_whole(
            zone_aware.get("minClusterSize", DEFAULT_MIN_CLUSTER_SIZE),
            "policy.zoneAware.minClusterSize",
            0,
            2**32 - 1,
        ),
        routing_enabled_pct=_real(
            zone_aware.get("routingEnabledPct", DEFAULT_ROUTING_ENABLED_PCT),
            "policy.zoneAware.routingEnabledPct",
            0.0,
            100.0,
        ),
        panic_threshold_pct=_real(
            policy.get("panicThresholdPct", DEFAULT_PANIC_THRESHOLD_PCT),
            "policy.panicThresholdPct",
            0.0,
            100.0,
        ),
        overprovisioning_factor=_real(
            policy.get("overprovisioningFactor", DEFAULT_OVERPROVISIONING_MULTIPLIER),
            "policy.overprovisioningFactor",
            0.01,
            MAX_OVERPROVISIONING_FACTOR,
        ),
        slow_start=slow_start,
    )


def decide_routing(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Decide one service's routing for one caller zone from a JSON request (already parsed).

    Input::

        {"kind": "routing", "localZone": "a", "callersPerZone": {"a": 2, "b": 1},
         "endpoints": [{"address", "zone", "region" (""), "priority" (0), "healthy" (true),
                        "weight" (1), "ageSeconds" (none: not in slow start),
                        "degraded" (false), "excluded" (false)}],
         "policy": {"zoneAware": {"minClusterSize" (6), "routingEnabledPct" (100)},
                    "panicThresholdPct" (50), "overprovisioningFactor" (1.4),
                    "slowStart": {"windowSeconds" (off), "aggression" (1.0),
                                  "minWeightPct" (10)}}}

    ``localZone`` and ``callersPerZone`` are optional: without them there is no local cluster
    and so no zone-aware routing. Output: ``mode``, ``zoneShares``, ``priorityLoad``,
    ``panic``, ``endpointWeights``, ``reason`` ("code: text"), plus ``reasonCode``,
    ``panicPerPriority``, ``healthyPriorityLoadPct``, ``degradedPriorityLoadPct`` and
    ``localPercentToRouteBp``. Raises ``DecideInputError`` (400 malformed, 422 no endpoints).
    """
    try:
        body = _object(raw, "", _TOP_KEYS)
        if body.get("kind") != "routing":
            raise _FieldError("kind", "must be 'routing'")
        if "endpoints" not in body:
            raise _FieldError("endpoints", "required")
        endpoints = _parse_endpoints(body["endpoints"])
        zone = body.get("localZone")
        local_zone = None if zone is None else _name(zone, "localZone")
        callers_raw = body.get("callersPerZone")
        callers = None if callers_raw is None else _parse_callers(callers_raw)
        if callers is not None and len(callers.keys() | {e.zone for e in endpoints}) > MAX_ZONES:
            raise _FieldError("callersPerZone", f"at most {MAX_ZONES} zones in all")
        policy = _parse_policy(body.get("policy", {}))
    except _FieldError as problem:
        field = problem.field or "(body)"
        raise DecideInputError(
            400, f"{field}: {problem.problem}", [(field, problem.problem)]
        ) from None
    try:
        decision = compute_routing(endpoints, callers, local_zone, policy)
    except NoEndpointsError as error:
        raise DecideInputError(422, f"nothing to route: {error}") from None
    priorities = decision.priorities
    return {
        "mode": decision.mode,
        "zoneShares": dict(decision.zone_shares),
        "priorityLoad": list(decision.priority_load),
        "panic": decision.panic,
        "endpointWeights": dict(decision.endpoint_weights),
        "reason": decision.reason,
        "reasonCode": decision.reason_code,
        "panicPerPriority": list(priorities.panic),
        "healthyPriorityLoadPct": list(priorities.healthy_load),
        "degradedPriorityLoadPct": list(priorities.degraded_load),
        "localPercentToRouteBp": decision.local_percent_to_route,
    }
