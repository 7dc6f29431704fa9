"""Per-service performance analysis: rate, errors, latency, saturation and SLO burn rates.

Input is what the agents' dataplanes saw (cumulative per-endpoint counters, differenced
between passes and summed over agents) and, when Prometheus has them, latency histograms.
Everything here is pure and cheap: the SLO windows read a cumulative series with two binary
searches, so a pass over 1,000 services stays in the low milliseconds.

Burn rate (Google SRE workbook, "Alerting on SLOs"): ``error_ratio / (1 - SLO)`` over a
window; 1 spends the error budget exactly over the SLO period. The multi-window rule pages
when both the 1 h and the 5 m burn exceed 14.4 (2 % of a 30-day budget in an hour, and still
burning), and opens a ticket when both the 6 h and the 30 m burn exceed 6 (5 % in six hours).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.wire import AgentReport

__all__ = [
    "WINDOWS",
    "BurnRates",
    "CounterHistory",
    "Latency",
    "ServiceAnalysis",
    "ServiceSnapshot",
    "SloPolicy",
    "alert_level",
    "analyse",
    "analyse_service",
    "histogram_quantile",
    "service_snapshots",
]

# (name, seconds) of the SLO windows the alert rule reads.
WINDOWS: tuple[tuple[str, float], ...] = (
    ("5m", 300.0),
    ("30m", 1800.0),
    ("1h", 3600.0),
    ("6h", 21600.0),
)
AlertLevel = Literal["page", "ticket", "none"]
Counters = dict[tuple[str, str, str], tuple[int, int]]  # (node, service, address) -> totals


@dataclass(frozen=True, slots=True)
class SloPolicy:
    """An availability SLO and the SRE workbook's multi-window burn thresholds."""

    availability: float = 0.999
    page_burn: float = 14.4  # 1 h and 5 m
    ticket_burn: float = 6.0  # 6 h and 30 m

    def __post_init__(self) -> None:
        if not 0.0 < self.availability < 1.0:
            raise ValueError("availability must be in (0, 1)")


@dataclass(frozen=True, slots=True)
class ServiceSnapshot:
    """One service over the last interval, summed over agents and endpoints.

    ``histogram``: the interval's latency histogram as (upper bound in ms, cumulative count),
    ascending, the last bound ``inf``; empty when only the dataplanes' EWMA is known.
    ``capacity``: the concurrency the dataplanes allow it in all (limit times agents).
    """

    service: str
    interval_seconds: float
    requests: int
    errors: int
    in_flight: int
    ewma_ms: float | None = None
    capacity: int | None = None
    histogram: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles from a histogram; else the dataplanes' request-weighted peak-EWMA."""

    source: Literal["histogram", "ewma", "none"]
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None

    @property
    def headline_ms(self) -> float | None:
        """The one figure to tune against: p99 when known, else the EWMA."""
        return self.p99_ms if self.p99_ms is not None else self.mean_ms


@dataclass(frozen=True, slots=True)
class BurnRates:
    by_window: Mapping[str, float | None]
    alert: AlertLevel


@dataclass(frozen=True, slots=True)
class ServiceAnalysis:
    service: str
    request_rate: float  # per second
    error_rate: float | None  # errors / requests over the interval; None without requests
    latency: Latency
    saturation: float | None  # in flight / capacity
    burn: BurnRates


class CounterHistory:
    """One service's cumulative (requests, errors) at each pass, for windowed ratios.

    Kept as parallel lists so a window is two bisects and two subtractions; samples older
    than ``keep_seconds`` are dropped on ``record``.
    """

    __slots__ = ("_errors", "_requests", "_times", "keep_seconds")

    def __init__(self, keep_seconds: float = WINDOWS[-1][1]) -> None:
        self.keep_seconds = keep_seconds
        self._times: list[float] = []
        self._requests: list[int] = []
        self._errors: list[int] = []

    def __len__(self) -> int:
        return len(self._times)

    def record(self, at: float, requests: int, errors: int) -> None:
        """Add an interval's counts at time ``at`` (times must not go back)."""
        if self._times and at < self._times[-1]:
            raise ValueError("history times must not go back")
        last_requests = self._requests[-1] if self._requests else 0
        last_errors = self._errors[-1] if self._errors else 0
        self._times.append(at)
        self._requests.append(last_requests + requests)
        self._errors.append(last_errors + errors)
        cut = bisect.bisect_left(self._times, at - self.keep_seconds)
        if cut > len(self._times) // 2:  # amortised: trim in halves, not every pass
            del self._times[:cut], self._requests[:cut], self._errors[:cut]

    def window(self, now: float, seconds: float) -> tuple[int, int]:
        """(requests, errors) recorded in ``(now - seconds, now]``."""
        times = self._times
        if not times:
            return 0, 0
        end = bisect.bisect_right(times, now) - 1
        if end < 0:
            return 0, 0
        start = bisect.bisect_right(times, now - seconds) - 1
        before_requests = self._requests[start] if start >= 0 else 0
        before_errors = self._errors[start] if start >= 0 else 0
        return self._requests[end] - before_requests, self._errors[end] - before_errors


def service_snapshots(
    previous: Mapping[tuple[str, str, str], tuple[int, int]],
    reports: Sequence[AgentReport],
    interval_seconds: float,
    *,
    limit_per_agent: int | None = None,
) -> tuple[dict[str, ServiceSnapshot], Counters]:
    """Per service: requests and errors since the last pass (summed over agents; a counter
    that went down, an agent restart, counts from zero), in flight now, request-weighted
    EWMA; plus the new cumulative counters to pass back next time."""
    current: Counters = {}
    requests: dict[str, int] = {}
    errors: dict[str, int] = {}
    in_flight: dict[str, int] = {}
    weighted: dict[str, float] = {}
    weights: dict[str, float] = {}
    agents: dict[str, set[str]] = {}
    for report in reports:
        for stats in report.dataplane:
            service = stats.service
            key = (report.node, service, stats.address)
            current[key] = (stats.requests, stats.errors)
            before_requests, before_errors = previous.get(key, (0, 0))
            new_requests = stats.requests - before_requests
            new_errors = stats.errors - before_errors
            if new_requests < 0 or new_errors < 0:
                new_requests, new_errors = stats.requests, stats.errors
            requests[service] = requests.get(service, 0) + new_requests
            errors[service] = errors.get(service, 0) + new_errors
            in_flight[service] = in_flight.get(service, 0) + stats.in_flight
            # Weight by the interval's requests; an idle endpoint still counts a little, so a
            # quiet service has a latency at all.
            weight = new_requests + 1e-3
            weighted[service] = weighted.get(service, 0.0) + stats.ewma_latency_ms * weight
            weights[service] = weights.get(service, 0.0) + weight
            agents.setdefault(service, set()).add(report.node)
    snapshots = {
        service: ServiceSnapshot(
            service=service,
            interval_seconds=interval_seconds,
            requests=requests[service],
            errors=errors[service],
            in_flight=in_flight[service],
            ewma_ms=weighted[service] / weights[service],
            capacity=None if limit_per_agent is None else limit_per_agent * len(agents[service]),
        )
        for service in sorted(requests)
    }
    return snapshots, current


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile``: linear interpolation inside the bucket holding the
    rank; the lowest bucket starts at 0 (for a positive bound); a rank in the ``+Inf`` bucket
    answers the highest finite bound. None without observations."""
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * total
    index = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0] if len(buckets) > 1 else None
    upper, count = buckets[index]
    if index == 0:
        lower, below = (0.0 if upper > 0 else upper), 0.0
    else:
        lower, below = buckets[index - 1]
    in_bucket = count - below
    if in_bucket <= 0:
        return upper
    return lower + (upper - lower) * (rank - below) / in_bucket


def _latency(snapshot: ServiceSnapshot) -> Latency:
    if snapshot.histogram:
        p50 = histogram_quantile(0.5, snapshot.histogram)
        if p50 is not None:
            return Latency(
                "histogram",
                mean_ms=snapshot.ewma_ms,
                p50_ms=p50,
                p90_ms=histogram_quantile(0.9, snapshot.histogram),
                p99_ms=histogram_quantile(0.99, snapshot.histogram),
            )
    if snapshot.ewma_ms is not None:
        return Latency("ewma", mean_ms=snapshot.ewma_ms)
    return Latency("none")


def alert_level(burn: Mapping[str, float | None], slo: SloPolicy) -> AlertLevel:
    """The SRE workbook's multi-window, multi-burn-rate rule: both windows must burn."""

    def over(window: str, threshold: float) -> bool:
        value = burn.get(window)
        return value is not None and value > threshold

    if over("1h", slo.page_burn) and over("5m", slo.page_burn):
        return "page"
    if over("6h", slo.ticket_burn) and over("30m", slo.ticket_burn):
        return "ticket"
    return "none"


def analyse_service(
    snapshot: ServiceSnapshot, history: CounterHistory, now: float, slo: SloPolicy
) -> ServiceAnalysis:
    """One service; ``history`` must already hold this interval's counts."""
    budget = 1.0 - slo.availability
    burn: dict[str, float | None] = {}
    for name, seconds in WINDOWS:
        requests, errors = history.window(now, seconds)
        burn[name] = errors / requests / budget if requests > 0 else None
    interval = snapshot.interval_seconds
    return ServiceAnalysis(
        service=snapshot.service,
        request_rate=snapshot.requests / interval if interval > 0 else 0.0,
        error_rate=snapshot.errors / snapshot.requests if snapshot.requests > 0 else None,
        latency=_latency(snapshot),
        saturation=(snapshot.in_flight / snapshot.capacity if snapshot.capacity else None),
        burn=BurnRates(burn, alert_level(burn, slo)),
    )


def analyse(
    snapshots: Mapping[str, ServiceSnapshot],
    histories: dict[str, CounterHistory],
    now: float,
    slo: SloPolicy = SloPolicy(),
) -> dict[str, ServiceAnalysis]:
    """Record each snapshot in its service's history, then analyse every service."""
    results: dict[str, ServiceAnalysis] = {}
    for service, snapshot in snapshots.items():
        history = histories.get(service)
        if history is None:
            history = histories[service] = CounterHistory()
        history.record(now, snapshot.requests, snapshot.errors)
        results[service] = analyse_service(snapshot, history, now, slo)
    return results
