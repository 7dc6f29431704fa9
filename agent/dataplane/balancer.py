"""Which endpoint takes the next request: priority level, then zone, then endpoint.

The controller decides the shares (``priority_load``, ``zone_shares``, weights, states); this
module only realises them, per request, in memory, with an injected random source:

1. Priority level: drawn by ``priority_load`` among levels that can take traffic (empty load:
   the lowest such level), as Envoy's priority load after the controller computed it.
2. Zone, on priority 0 only: drawn by ``zone_shares[own zone]`` among zones that can take
   traffic; a caller zone not listed picks over the whole level, which splits by healthy hosts
   (by weight) as Envoy does without zone-aware routing.
3. Endpoint, by the service's policy: power of two choices on peak-EWMA cost (Finagle,
   Linkerd), smooth weighted round robin (nginx), least request (Envoy: P2C on active
   requests, EDF over ``weight / (active + 1)`` when weights differ), or weighted random.

Eligibility: ``active`` endpoints only, with weight above 0 and not ejected locally by passive
health; ``draining`` ones never take new requests (their in-flight ones finish); ``ejected`` ones
only when the service is in ``panic``, which routes over every non-draining endpoint of a level,
ignoring health (Envoy's panic mode; draining endpoints stay out, see envoyproxy/envoy#46800).
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal, Protocol

from agent.dataplane.ewma import PeakEwma

Policy = Literal["p2c_peak_ewma", "round_robin", "least_request", "random"]
EndpointState = Literal["active", "draining", "ejected"]

# Envoy least_request: active_request_bias default 1.0 (weight / (active + 1) ** bias).
ACTIVE_REQUEST_BIAS = 1.0
# Weighted distinct pair: redraws of the second endpoint before falling back to a neighbour.
MAX_REDRAWS = 8


class RandomSource(Protocol):
    """``random.Random`` or anything with its ``random()``; seeded in tests."""

    def random(self) -> float: ...


class Upstream:
    """One endpoint as the balancer sees it; the proxy keeps the same object across table
    updates (same address), so in-flight counts and the EWMA survive a new table."""

    __slots__ = (
        "address",
        "ewma",
        "in_flight",
        "locally_ejected",
        "priority",
        "state",
        "weight",
        "zone",
    )

    def __init__(
        self,
        address: str,
        ewma: PeakEwma,
        *,
        zone: str = "",
        weight: int = 100,
        state: EndpointState = "active",
        priority: int = 0,
    ) -> None:
        self.address = address
        self.zone = zone
        self.weight = weight
        self.state: EndpointState = state
        self.priority = priority
        self.ewma = ewma
        self.in_flight = 0
        self.locally_ejected = False

    def __repr__(self) -> str:
        return f"Upstream({self.address!r}, zone={self.zone!r}, weight={self.weight})"


def is_eligible(upstream: Upstream, panic: bool) -> bool:
    """May take new requests: never when draining or weight 0; in panic regardless of health."""
    if upstream.weight <= 0 or upstream.state == "draining":
        return False
    if panic:
        return True
    return upstream.state == "active" and not upstream.locally_ejected


def weighted_index(shares: Sequence[float], draw: float) -> int | None:
    """Index drawn in proportion to ``shares`` for a uniform ``draw`` in [0, 1); None if all
    shares are 0."""
    total = sum(shares)
    if total <= 0:
        return None
    target = draw * total
    running = 0.0
    last = None
    for index, share in enumerate(shares):
        if share <= 0:
            continue
        running += share
        last = index
        if target < running:
            return index
    return last  # rounding at the top end


def choose_priority(
    available_levels: Collection[int], priority_load: Sequence[float], draw: float
) -> int | None:
    """The level for one request: by ``priority_load`` over levels that have eligible
    endpoints (renormalised), else the lowest such level; None if no level has any."""
    if not available_levels:
        return None
    if priority_load:
        loads = [
            load if level in available_levels else 0.0 for level, load in enumerate(priority_load)
        ]
        chosen = weighted_index(loads, draw)
        if chosen is not None:
            return chosen
    return min(available_levels)


def choose_zone(
    available_zones: Collection[str], shares: Mapping[str, float], draw: float
) -> str | None:
    """The upstream zone for a priority-0 request by the caller zone's shares, over zones that
    have eligible endpoints; None: no share applies, pick over the whole level."""
    zones = [zone for zone in sorted(shares) if shares[zone] > 0 and zone in available_zones]
    index = weighted_index([shares[zone] for zone in zones], draw)
    return None if index is None else zones[index]


class _Picker:
    """Picks one endpoint from a fixed candidate list (one level, or one zone of level 0)."""

    def __init__(self, candidates: Sequence[Upstream], rng: RandomSource) -> None:
        self.candidates = list(candidates)
        self.rng = rng
        weights = [upstream.weight for upstream in self.candidates]
        self.uniform = len(set(weights)) <= 1
        self.cumulative = list(accumulate(weights))
        self.total = self.cumulative[-1] if self.cumulative else 0

    def draw(self) -> Upstream:
        """One candidate in proportion to its weight."""
        if self.uniform:
            return self.candidates[int(self.rng.random() * len(self.candidates))]
        index = bisect_right(self.cumulative, self.rng.random() * self.total)
        return self.candidates[min(index, len(self.candidates) - 1)]

    def pick(self, now: float) -> Upstream:
        raise NotImplementedError


class RandomPicker(_Picker):
    def pick(self, now: float) -> Upstream:
        return self.draw()


class PeakEwmaPicker(_Picker):
    """Two distinct endpoints drawn by weight (tower's p2c ``sample_floyd2`` and Finagle draw
    distinct pairs), the lower ``ewma * (in_flight + 1)`` wins; a tie keeps the first draw,
    so equal costs split by weight. Distinct pairs mean the costliest endpoint never wins.
    Weights act through the draw only: a slow-starting endpoint at 10 % weight is offered in
    fewer pairs; dividing the cost by the weight too would starve light endpoints outright
    whenever costs are equal."""

    def pick(self, now: float) -> Upstream:
        count = len(self.candidates)
        if count == 1:
            return self.candidates[0]
        if self.uniform:
            first_index = int(self.rng.random() * count)
            second_index = int(self.rng.random() * (count - 1))
            if second_index >= first_index:
                second_index += 1
            first, second = self.candidates[first_index], self.candidates[second_index]
        else:
            first = self.draw()
            second = self.draw()
            for _ in range(MAX_REDRAWS):
                if second is not first:
                    break
                second = self.draw()
            else:
                # One endpoint holds nearly all the weight: compare it with its neighbour.
                index = self.candidates.index(first)
                second = self.candidates[(index + 1) % count]
        first_cost = first.ewma.cost(now, first.in_flight)
        return second if second.ewma.cost(now, second.in_flight) < first_cost else first


class RoundRobinPicker(_Picker):
    """Smooth weighted round robin (nginx): each pick adds every weight to its running score,
    takes the highest and subtracts the total from it, so a 5:1:1 split is spread as
    a a b a c a a rather than in bursts. Equal weights: a plain rotation from a random start."""

    def __init__(self, candidates: Sequence[Upstream], rng: RandomSource) -> None:
        super().__init__(candidates, rng)
        self.scores = [0] * len(self.candidates)
        self.weights = [upstream.weight for upstream in self.candidates]
        self.next_index = int(rng.random() * len(self.candidates)) if self.candidates else 0

    def pick(self, now: float) -> Upstream:
        if self.uniform:
            index = self.next_index
            self.next_index = (index + 1) % len(self.candidates)
            return self.candidates[index]
        scores = self.scores
        best = 0
        best_score = -(2**62)
        for index, weight in enumerate(self.weights):
            score = scores[index] + weight
            scores[index] = score
            if score > best_score:
                best, best_score = index, score
        scores[best] -= self.total
        return self.candidates[best]


class LeastRequestPicker(_Picker):
    """Envoy's least request. Equal weights: two uniform draws with replacement, fewer active
    requests wins (ties keep the first). Unequal weights: earliest-deadline-first over the
    dynamic weight ``weight / (active + 1) ** bias``, refreshed for the picked host on each
    pick (Envoy's EdfScheduler ``pickAndAdd``), so a heavy host takes its share but never all
    of it while loaded."""

    def __init__(self, candidates: Sequence[Upstream], rng: RandomSource) -> None:
        super().__init__(candidates, rng)
        self.clock = 0.0
        self.sequence = len(self.candidates)
        # (deadline, insertion order, index): the order breaks ties as Envoy's does (FIFO).
        self.heap = [
            (1.0 / self._dynamic_weight(upstream), order, order)
            for order, upstream in enumerate(self.candidates)
        ]
        heapq.heapify(self.heap)

    @staticmethod
    def _dynamic_weight(upstream: Upstream) -> float:
        return float(upstream.weight / (upstream.in_flight + 1.0) ** ACTIVE_REQUEST_BIAS)

    def pick(self, now: float) -> Upstream:
        if self.uniform:
            first = self.draw()
            second = self.draw()
            return second if second.in_flight < first.in_flight else first
        deadline, _, index = heapq.heappop(self.heap)
        self.clock = deadline
        upstream = self.candidates[index]
        self.sequence += 1
        heapq.heappush(
            self.heap,
            (self.clock + 1.0 / self._dynamic_weight(upstream), self.sequence, index),
        )
        return upstream


PICKERS: dict[Policy, type[_Picker]] = {
    "p2c_peak_ewma": PeakEwmaPicker,
    "round_robin": RoundRobinPicker,
    "least_request": LeastRequestPicker,
    "random": RandomPicker,
}


@dataclass(frozen=True)
class RouteShape:
    """The service-wide inputs of a pick (from the routing table or static config)."""

    policy: Policy = "p2c_peak_ewma"
    own_zone: str = ""
    zone_shares: Mapping[str, Mapping[str, float]] | None = None
    priority_load: Sequence[float] = ()
    panic: bool = False

    def own_zone_shares(self) -> Mapping[str, float]:
        if not self.zone_shares:
            return {}
        return self.zone_shares.get(self.own_zone) or {}


class Balancer:
    """Per-service picker. Candidate groups are built once per change (a new table, a local
    ejection or its end: call ``rebuild``), so a pick does O(1) or O(log n) work, plus O(n)
    for smooth weighted round robin."""

    def __init__(self, shape: RouteShape, upstreams: Iterable[Upstream], rng: RandomSource):
        self.rng = rng
        self.shape = shape
        self.upstreams = list(upstreams)
        self.rebuild()

    def update(self, shape: RouteShape, upstreams: Iterable[Upstream]) -> None:
        self.shape = shape
        self.upstreams = list(upstreams)
        self.rebuild()

    def rebuild(self) -> None:
        """Regroup after a change of eligibility (states, local ejections)."""
        panic = self.shape.panic
        levels: dict[int, list[Upstream]] = {}
        for upstream in self.upstreams:
            if is_eligible(upstream, panic):
                levels.setdefault(upstream.priority, []).append(upstream)
        picker_type = PICKERS[self.shape.policy]
        self._levels = {level: picker_type(group, self.rng) for level, group in levels.items()}
        self._zone_shares = self.shape.own_zone_shares()
        self._zones: dict[str, _Picker] = {}
        if self._zone_shares and 0 in levels:
            by_zone: dict[str, list[Upstream]] = {}
            for upstream in levels[0]:
                by_zone.setdefault(upstream.zone, []).append(upstream)
            self._zones = {zone: picker_type(group, self.rng) for zone, group in by_zone.items()}
        self._single_level = next(iter(self._levels)) if len(self._levels) == 1 else None

    def eligible(self) -> list[Upstream]:
        """Every endpoint that may take a new request now."""
        return [upstream for picker in self._levels.values() for upstream in picker.candidates]

    def pick(self, now: float, exclude: Collection[Upstream] = ()) -> Upstream | None:
        """The endpoint for one request (or one retry, avoiding ``exclude`` when any other
        endpoint is eligible); None when nothing may take it ("no healthy upstream")."""
        picker = self._group()
        if picker is None:
            return None
        chosen = picker.pick(now)
        if not exclude or chosen not in exclude:
            return chosen
        others = [upstream for upstream in picker.candidates if upstream not in exclude]
        if not others:
            others = [upstream for upstream in self.eligible() if upstream not in exclude]
        if not others:
            return chosen  # the only endpoint there is
        return type(picker)(others, self.rng).pick(now)

    def _group(self) -> _Picker | None:
        if self._single_level is not None and not self.shape.priority_load:
            level: int | None = self._single_level
        else:
            level = choose_priority(self._levels.keys(), self.shape.priority_load, self._draw())
        if level is None:
            return None
        if level == 0 and self._zones:
            zone = choose_zone(self._zones.keys(), self._zone_shares, self._draw())
            if zone is not None:
                return self._zones[zone]
        return self._levels[level]

    def _draw(self) -> float:
        return self.rng.random()
