"""The PerformanceEngine's reconcile step: agent reports in; analysis, fleet findings and
verified TuningSet changes out.

Each pass:

1. Analysis (``analysis``): per service, what the dataplanes saw since the last pass (rate,
   error ratio, latency, saturation against the concurrency limit in force) and the SLO burn
   rates over 5 m / 30 m / 1 h / 6 h with the SRE multi-window alert level.
2. Findings (``findings``): the agents' bottleneck findings grouped per workload container
   into action items with suggested limits and floors.
3. Fleet metrics, one value per pass, kept as series: ``latency_ms`` (request-weighted),
   ``error_rate``, ``cache_hit_ratio`` (L1, since the last pass), ``finding_flaps`` (findings
   opened or closed since the last pass) and ``agent_overhead_cores`` (when a source is
   given). Tuning trials are verified against them.
4. Tuning (``tuning``): every knob's state machine advances; proposers run only for idle
   knobs, and at most ``max_trials_in_flight`` knobs are verified at once (default one: two
   changes moving the same metric could not be told apart). A change or a rollback publishes
   the held TuningSet with the new values as the next version.

An observation counts for a trial only once every fresh agent has reported the trial's
TuningSet version for two passes in a row, so an interval measured partly under the old
value never decides. Outcomes are for the synthetic ``linescale/fleet`` workload, one per
decision.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from controller.engines.caching import merge_curves, miss_ratio_at
from controller.engines.performance.analysis import (
    CounterHistory,
    ServiceAnalysis,
    SloPolicy,
    analyse,
    service_snapshots,
)
from controller.engines.performance.concurrency import (
    AimdLimit,
    AimdSettings,
    Gradient2Limit,
    Gradient2Settings,
    aimd_update,
    gradient2_update,
)
from controller.engines.performance.findings import ActionItem, ContainerKey, aggregate_findings
from controller.engines.performance.tuning import (
    KNOBS,
    Knob,
    KnobState,
    KnobStep,
    Proposal,
    TuningPolicy,
    advance,
    baseline_of,
    knob_value,
    propose_cache_capacity,
    propose_cache_ttl,
    propose_collector_interval,
    propose_max_concurrency,
    propose_retry_budget,
    with_values,
)
from controller.ports import Resources, WorkloadRef
from controller.reconcile import BACKOFF_REASON, Outcome, StepContext
from shared.wire import Actuation, AgentReport, TuningSet

__all__ = ["ENGINE", "FLEET", "PerformanceEngine", "PerformanceSettings", "fleet_metrics"]

log = logging.getLogger(__name__)

ENGINE = "performance"
FLEET = WorkloadRef("linescale", "fleet", "Local")  # fleet-wide tuning has no workload of its own
FindingKey = tuple[str, str, str]  # (node, rule, subject)


@dataclass(frozen=True, slots=True)
class PerformanceSettings:
    interval_seconds: float = 30.0
    slo: SloPolicy = field(default_factory=SloPolicy)
    tuning: TuningPolicy = field(default_factory=TuningPolicy)
    knobs: tuple[Knob, ...] = KNOBS
    baseline_seconds: float = 300.0  # the window before a change its baseline is read from
    max_trials_in_flight: int = 1
    concurrency_algorithm: Literal["gradient2", "aimd"] = "gradient2"
    gradient2: Gradient2Settings = field(
        default_factory=lambda: Gradient2Settings(min_limit=8, max_limit=4096)
    )
    aimd: AimdSettings = field(default_factory=lambda: AimdSettings(min_limit=8, max_limit=4096))
    aimd_drop_error_rate: float = 0.01  # an AIMD sample "dropped" above this error ratio
    cache_min_bytes: int = 16 * 2**20
    cache_max_bytes: int = 4 * 2**30
    overhead_budget_cores: float = 0.05

    def __post_init__(self) -> None:
        if self.interval_seconds <= 0 or self.baseline_seconds <= 0:
            raise ValueError("interval_seconds and baseline_seconds must be positive")
        if self.max_trials_in_flight < 1:
            raise ValueError("max_trials_in_flight must be >= 1")
        unknown = set(self.knobs) - set(KNOBS)
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}")


def fleet_metrics(analysis: Mapping[str, ServiceAnalysis]) -> dict[str, float]:
    """Request-weighted latency and the error ratio over all services that had requests."""
    requests = errors = 0.0
    weighted = weight = 0.0
    for result in analysis.values():
        if result.error_rate is None:
            continue
        count = result.request_rate
        requests += count
        errors += result.error_rate * count
        latency = result.latency.headline_ms
        if latency is not None:
            weighted += latency * count
            weight += count
    metrics: dict[str, float] = {}
    if requests > 0:
        metrics["error_rate"] = errors / requests
    if weight > 0:
        metrics["latency_ms"] = weighted / weight
    return metrics


@dataclass
class PerformanceEngine:
    """One per controller; ``step`` is what the ``EngineRunner`` calls each pass."""

    reports: Callable[[], Sequence[AgentReport]]  # the fresh agents' last reports
    held: Callable[[], TuningSet | None]
    publish: Callable[[TuningSet], Awaitable[None]]
    settings: PerformanceSettings = field(default_factory=PerformanceSettings)
    clock: Callable[[], float] = time.time
    # The agents' own CPU use in cores (e.g. from Prometheus), None when unknown.
    agent_overhead: Callable[[], float | None] = lambda: None
    # Containers' current limits, for absolute suggestions in the fleet findings.
    limits: Callable[[], Mapping[ContainerKey, Resources]] = dict
    analysis: dict[str, ServiceAnalysis] = field(default_factory=dict)
    action_items: list[ActionItem] = field(default_factory=list)
    knob_states: dict[Knob, KnobState] = field(default_factory=dict)
    _counters: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)
    _histories: dict[str, CounterHistory] = field(default_factory=dict)
    _cache_counters: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    _series: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    _finding_keys: set[FindingKey] | None = None
    _last_at: float | None = None
    _caught_up_before: int = 0
    _gradient2: Gradient2Limit | None = None
    _aimd: AimdLimit | None = None

    async def step(self, context: StepContext) -> list[Outcome]:
        now = context.now
        reports = list(self.reports())
        held = self.held()
        metrics = self._observe(reports, held, now)
        caught_up = min((report.tuning_version for report in reports), default=0)
        settled_version = min(caught_up, self._caught_up_before)
        self._caught_up_before = caught_up
        if held is None:
            return [Outcome(FLEET, "unchanged", "no tuning set held yet")]
        if FLEET in context.backed_off:
            return [Outcome(FLEET, "skipped", BACKOFF_REASON)]
        self._update_limiter(held, reports, metrics)
        steps = self._advance(held, reports, metrics, settled_version, now)
        changes = {knob: s.publish for knob, s in steps.items() if s.publish is not None}
        decisions = [s.decision for s in steps.values() if s.decision is not None]
        if changes:
            try:
                tuning = with_values(held, changes, version=held.version + 1, generated_at=now)
                await self.publish(tuning)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.exception("performance: publishing a tuning set failed")
                for knob, knob_step in steps.items():
                    if knob not in changes:
                        self.knob_states[knob] = knob_step.state
                return [
                    Outcome(
                        FLEET,
                        "error",
                        f"publish_failed: {type(error).__name__}: {error}",
                        retry_after_seconds=self.settings.interval_seconds,
                    )
                ]
            done = Actuation(state="done", finished_at=self.clock())
            decisions = [
                d.model_copy(update={"actuation": done}) if d.actuation.state == "pending" else d
                for d in decisions
            ]
        for knob, knob_step in steps.items():
            self.knob_states[knob] = knob_step.state
        if not decisions:
            return [Outcome(FLEET, "unchanged", self._summary())]
        result: Literal["acted", "unchanged"] = "acted" if changes else "unchanged"
        return [Outcome(FLEET, result, d.reason.code, decision=d) for d in decisions]

    # --- observation ---------------------------------------------------------------------

    def _observe(
        self, reports: Sequence[AgentReport], held: TuningSet | None, now: float
    ) -> dict[str, float]:
        """Analysis, findings and this pass's fleet metrics (also appended to the series)."""
        interval = now - self._last_at if self._last_at is not None else 0.0
        if interval <= 0:
            interval = self.settings.interval_seconds
        self._last_at = now
        limit = held.dataplane.max_concurrency if held is not None else None
        snapshots, self._counters = service_snapshots(
            self._counters, reports, interval, limit_per_agent=limit
        )
        for gone in set(self._histories) - set(snapshots):
            if not self._histories[gone].window(now, self._histories[gone].keep_seconds)[0]:
                del self._histories[gone]
        self.analysis = analyse(snapshots, self._histories, now, self.settings.slo)
        self.action_items = aggregate_findings(reports, self.limits())
        metrics = fleet_metrics(self.analysis)
        hit_ratio = self._cache_hit_ratio(reports)
        if hit_ratio is not None:
            metrics["cache_hit_ratio"] = hit_ratio
        flaps = self._flaps(reports)
        if flaps is not None:
            metrics["finding_flaps"] = flaps
        overhead = self.agent_overhead()
        if overhead is not None:
            metrics["agent_overhead_cores"] = overhead
        keep = self.settings.baseline_seconds + 2 * self.settings.tuning.verify_seconds
        for name, value in metrics.items():
            series = self._series.setdefault(name, deque())
            series.append((now, value))
            while series and series[0][0] <= now - keep:
                series.popleft()
        return metrics

    def _cache_hit_ratio(self, reports: Sequence[AgentReport]) -> float | None:
        """The L1 hit ratio over the fleet since the last pass (restarted agents from zero)."""
        hits = misses = 0
        current: dict[tuple[str, str], tuple[int, int]] = {}
        for report in reports:
            for stats in report.cache:
                if stats.level != "l1":
                    continue
                key = (report.node, stats.namespace)
                current[key] = (stats.hits, stats.misses)
                before_hits, before_misses = self._cache_counters.get(key, (0, 0))
                new_hits, new_misses = stats.hits - before_hits, stats.misses - before_misses
                if new_hits < 0 or new_misses < 0:
                    new_hits, new_misses = stats.hits, stats.misses
                hits += new_hits
                misses += new_misses
        self._cache_counters = current
        return hits / (hits + misses) if hits + misses else None

    def _flaps(self, reports: Sequence[AgentReport]) -> float | None:
        keys = {(r.node, f.rule, f.subject) for r in reports for f in r.findings}
        before, self._finding_keys = self._finding_keys, keys
        return None if before is None else float(len(keys ^ before))

    def _window(self, metric: str, now: float, seconds: float) -> list[float]:
        return [v for at, v in self._series.get(metric, ()) if now - seconds < at <= now]

    # --- tuning --------------------------------------------------------------------------

    def _update_limiter(
        self, held: TuningSet, reports: Sequence[AgentReport], metrics: Mapping[str, float]
    ) -> None:
        """Feed the adaptive limiter one fleet sample: latency, and the most in flight any
        one agent had towards one service (the limit is per agent and service)."""
        current = held.dataplane.max_concurrency
        if self._gradient2 is None:
            self._gradient2 = Gradient2Limit(float(current))
        if self._aimd is None:
            self._aimd = AimdLimit(current)
        latency = metrics.get("latency_ms")
        if latency is None:
            return
        per_agent: dict[tuple[str, str], int] = {}
        for report in reports:
            for stats in report.dataplane:
                key = (report.node, stats.service)
                per_agent[key] = per_agent.get(key, 0) + stats.in_flight
        in_flight = max(per_agent.values(), default=0)
        rtt = latency / 1000.0
        if self.settings.concurrency_algorithm == "gradient2":
            self._gradient2 = gradient2_update(
                self._gradient2, rtt, in_flight, self.settings.gradient2
            )
        else:
            dropped = metrics.get("error_rate", 0.0) > self.settings.aimd_drop_error_rate
            self._aimd = aimd_update(self._aimd, rtt, in_flight, dropped, self.settings.aimd)

    def _advance(
        self,
        held: TuningSet,
        reports: Sequence[AgentReport],
        metrics: Mapping[str, float],
        settled_version: int,
        now: float,
    ) -> dict[Knob, KnobStep]:
        settings = self.settings
        policy = settings.tuning
        in_flight = sum(
            1 for k in settings.knobs if self.knob_states.get(k, KnobState(k)).phase == "verifying"
        )
        steps: dict[Knob, KnobStep] = {}
        for knob in settings.knobs:
            state = self.knob_states.get(knob, KnobState(knob))
            observation = None
            if state.trial is not None and settled_version >= state.trial.version:
                observation = metrics.get(state.trial.proposal.metric)
            proposal = baseline = None
            ready = state.phase == "idle" or (
                state.phase == "cooldown" and now >= state.cooldown_until
            )
            if ready and in_flight < settings.max_trials_in_flight:
                proposal = self._propose(knob, held, reports, metrics, now)
                if proposal is not None:
                    baseline = baseline_of(
                        self._window(proposal.metric, now, settings.baseline_seconds)
                    )
            step = advance(
                state,
                now=now,
                current_value=knob_value(held, knob),
                policy=policy,
                observation=observation,
                proposal=proposal,
                baseline=baseline,
                version=held.version + 1,
            )
            if step.state.phase == "verifying" and state.phase != "verifying":
                in_flight += 1
            steps[knob] = step
        return steps

    def _propose(
        self,
        knob: Knob,
        held: TuningSet,
        reports: Sequence[AgentReport],
        metrics: Mapping[str, float],
        now: float,
    ) -> Proposal | None:
        settings = self.settings
        if knob == "cache.capacity_bytes":
            curve = merge_curves([report.cache_mrc for report in reports])
            ratios = [ratio for _, ratio in curve]
            if not curve or max(ratios) - min(ratios) <= 0.01:
                return None  # no curve, or a flat one (cold misses only): no evidence
            current = held.cache.capacity_bytes
            sizes = {
                current,
                min(current * 2, settings.cache_max_bytes),
                max(current // 2, settings.cache_min_bytes),
            }
            return propose_cache_capacity(
                {size: 1.0 - miss_ratio_at(curve, size) for size in sizes},
                current,
                min_bytes=settings.cache_min_bytes,
                max_bytes=settings.cache_max_bytes,
            )
        if knob == "cache.default_ttl_seconds":
            return propose_cache_ttl(
                metrics.get("cache_hit_ratio"),
                _fill_ratio(reports, held.cache.capacity_bytes),
                held.cache.default_ttl_seconds,
                held.cache.max_ttl_seconds,
            )
        if knob == "dataplane.max_concurrency":
            if settings.concurrency_algorithm == "gradient2":
                limit = self._gradient2.limit if self._gradient2 is not None else None
            else:
                limit = self._aimd.limit if self._aimd is not None else None
            if limit is None:
                return None
            return propose_max_concurrency(
                held.dataplane.max_concurrency, limit, algorithm=settings.concurrency_algorithm
            )
        if knob == "dataplane.retry_budget_percent":
            return propose_retry_budget(
                metrics.get("error_rate"), held.dataplane.retry_budget_percent
            )
        flaps = self._window("finding_flaps", now, settings.baseline_seconds)
        return propose_collector_interval(
            held.collector_interval_seconds,
            metrics.get("agent_overhead_cores"),
            sum(len(report.findings) for report in reports),
            sum(flaps) / len(flaps) if flaps else 0.0,
            overhead_budget_cores=settings.overhead_budget_cores,
        )

    def _summary(self) -> str:
        phases = [
            f"{knob} {state.phase}"
            for knob, state in sorted(self.knob_states.items())
            if state.phase != "idle"
        ]
        paging = sum(1 for a in self.analysis.values() if a.burn.alert == "page")
        return (
            f"{len(self.analysis)} services ({paging} paging), "
            f"{len(self.action_items)} action items; "
            + (", ".join(phases) if phases else "no tuning in flight")
        )


def _fill_ratio(reports: Sequence[AgentReport], capacity_bytes: int) -> float | None:
    """The fullest node's L1 bytes over the pushed capacity."""
    fills = []
    for report in reports:
        used = sum(stats.bytes for stats in report.cache if stats.level == "l1")
        capacity = report.cache_capacity_bytes or capacity_bytes
        if report.cache and capacity > 0:
            fills.append(used / capacity)
    return max(fills) if fills else None
