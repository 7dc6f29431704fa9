"""The ScalabilityEngine's reconcile step: read, decide (HPA-exact, plus forecast), act, record.

Each pass lists the managed workloads, reads every metric family the policies need in one
batched query per family, and then, workload by workload: resolves the policy, builds the HPA
observation, decides, scales through the orchestrator and records the decision. The decisions
themselves are the pure functions of ``horizontal`` and ``predictive``; this module is the edge.

State kept between passes, per workload and bounded by the number of workloads: the HPA's
recommendation and scale-event history (seeded, the first time a workload is seen, from the
decision log and the current replica count, as the HPA seeds it), the last fitted forecaster,
and the last reason recorded (a held decision is logged when its reason changes, not every
pass). Workloads that disappear are forgotten.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from controller.engines.scaling.forecast import Forecaster, fit_forecaster
from controller.engines.scaling.horizontal import (
    HorizontalDecision,
    MetricResult,
    NoMetricAvailableError,
    decide,
)
from controller.engines.scaling.normalize import (
    ScaleEvent,
    ScalingHistory,
    TimestampedRecommendation,
)
from controller.engines.scaling.policy_sources import (
    FilePolicyKey,
    ResolvedPolicy,
    resolve_policy,
)
from controller.engines.scaling.predictive import PredictiveDecision, predictive_replicas
from controller.engines.scaling.readings import (
    families_for,
    family_of,
    observation_from_readings,
)
from controller.engines.scaling.replica_calculator import MissingRequestError
from controller.ports import (
    ContainerState,
    MetricFamily,
    MetricsSource,
    Orchestrator,
    Reading,
    WorkloadRef,
    WorkloadState,
)
from controller.reconcile import Outcome, StepContext, reconcile_each
from shared.quantities import parse_quantity
from shared.scaling_policy import ScalingPolicy
from shared.wire import Actuation, Decision, DecisionReason

log = logging.getLogger(__name__)

ENGINE = "scalability"
Direction = Literal["up", "down", "none"]
MAX_FORECAST_POINTS = 64  # kept in a decision's reason, for the operator's chart
METRICS_UNAVAILABLE = "metrics_unavailable"


def reason_code(kubernetes_reason: str) -> str:
    """``DesiredWithinRange`` -> ``desired_within_range``: decision-log reason codes."""
    out = []
    for index, char in enumerate(kubernetes_reason):
        if char.isupper() and index and not kubernetes_reason[index - 1].isupper():
            out.append("_")
        out.append(char.lower())
    return "".join(out)


@dataclass(frozen=True, slots=True)
class ScalabilitySettings:
    interval_seconds: float = 15.0  # the HPA's sync period
    tolerance: float = 0.1
    downscale_stabilization_seconds: float = 300.0
    forecast_refit_seconds: float = 900.0
    forecast_step_seconds: float = 60.0
    error_retry_seconds: float = 30.0


@dataclass
class _WorkloadMemory:
    history: ScalingHistory
    forecaster: Forecaster | None = None
    fitted_at: float = -math.inf
    last_reason: str = ""
    last_scaled: tuple[float, Literal["up", "down"]] | None = None  # when, which way


@dataclass
class ScalabilityEngine:
    """One instance per controller; ``step`` is what the ``EngineRunner`` calls each pass."""

    orchestrator: Callable[[], Orchestrator | None]
    source: Callable[[], MetricsSource | None]
    api_policies: Callable[[], Mapping[WorkloadRef, ScalingPolicy]]
    paused: Callable[[WorkloadRef], bool]
    file_policies: Mapping[FilePolicyKey, ScalingPolicy] = field(default_factory=dict)
    # Past scale decisions of a workload since a time, newest first (the decision log).
    past_decisions: Callable[[WorkloadRef, float], Sequence[Decision]] = lambda ref, since: ()
    settings: ScalabilitySettings = field(default_factory=ScalabilitySettings)
    clock: Callable[[], float] = time.time
    _memory: dict[WorkloadRef, _WorkloadMemory] = field(default_factory=dict)
    # The workloads as of the last pass, with the replica counts this engine then set: what
    # the workload gauges show, without calling the cluster at scrape time.
    last_states: dict[WorkloadRef, WorkloadState] = field(default_factory=dict)
    _sequence: int = 0

    def recent_direction(self, ref: WorkloadRef, within_seconds: float) -> Direction:
        """Which way this engine scaled ``ref`` in the last ``within_seconds``, if it did:
        the vertical engine must not resize in the same direction at the same time."""
        memory = self._memory.get(ref)
        if memory is None or memory.last_scaled is None:
            return "none"
        at, direction = memory.last_scaled
        return direction if self.clock() - at <= within_seconds else "none"

    def forecaster(self, ref: WorkloadRef) -> Forecaster | None:
        """The forecaster last fitted for ``ref`` (predictive policies only)."""
        memory = self._memory.get(ref)
        return None if memory is None else memory.forecaster

    def resolve(self, state: WorkloadState) -> ResolvedPolicy:
        """The policy in force for a workload (admin API, annotation, file) and its origin."""
        return resolve_policy(state, self.api_policies(), self.file_policies)

    async def step(self, context: StepContext) -> list[Outcome]:
        orchestrator, source = self.orchestrator(), self.source()
        if orchestrator is None or source is None:
            return []  # the platform is still starting
        states = {state.ref: state for state in await orchestrator.list_workloads()}
        self.last_states = dict(states)
        for gone in set(self._memory) - set(states):
            del self._memory[gone]
        resolved = {ref: self.resolve(state) for ref, state in states.items()}
        managed = sorted(ref for ref, r in resolved.items() if r.origin is not None)
        readings = await self._read(source, resolved, managed, context.now)

        async def handle(ref: WorkloadRef) -> Outcome:
            return await self._reconcile(
                orchestrator, source, states[ref], resolved[ref], readings, context.now
            )

        return await reconcile_each(
            managed, handle, context, error_retry_seconds=self.settings.error_retry_seconds
        )

    async def _read(
        self,
        source: MetricsSource,
        resolved: Mapping[WorkloadRef, ResolvedPolicy],
        managed: Sequence[WorkloadRef],
        now: float,
    ) -> dict[MetricFamily, Reading | None]:
        """One batched query per family any policy needs; None where the source cannot
        answer (every metric of that family then fails, and nothing scales down on it)."""
        wanted: dict[MetricFamily, list[WorkloadRef]] = {}
        for ref in managed:
            policy = resolved[ref].policy
            for family in families_for(policy) if policy is not None else ():
                wanted.setdefault(family, []).append(ref)
        return {family: await source.current(family, refs, now) for family, refs in wanted.items()}

    async def _reconcile(
        self,
        orchestrator: Orchestrator,
        source: MetricsSource,
        state: WorkloadState,
        resolved: ResolvedPolicy,
        readings: Mapping[MetricFamily, Reading | None],
        now: float,
    ) -> Outcome:
        ref = state.ref
        if resolved.policy is None:
            return Outcome(ref, "error", f"invalid_policy: {resolved.error}")
        if self.paused(ref):
            return Outcome(ref, "skipped", "paused")
        policy = resolved.policy
        memory = self._remember(ref, state.desired_replicas, now)
        started = time.perf_counter()
        observation = observation_from_readings(state, policy, readings)
        current = state.desired_replicas
        try:
            horizontal = decide(
                policy,
                current,
                now,
                observation=observation,
                history=memory.history,
                tolerance=self.settings.tolerance,
                downscale_stabilization_seconds=self.settings.downscale_stabilization_seconds,
            )
        except NoMetricAvailableError as error:
            return self._hold(ref, memory, current, METRICS_UNAVAILABLE, str(error), now, started)
        except MissingRequestError as error:
            message = f"a Utilization target needs every pod's request: {error}"
            return self._hold(ref, memory, current, "missing_request", message, now, started)
        predictive: PredictiveDecision | None = None
        reactive = horizontal.raw_recommendation
        if policy.predictive.enabled and horizontal.raw_recommendation is not None:
            predictive = await self._predict(source, state, policy, memory, horizontal, now)
            if predictive.replicas > horizontal.raw_recommendation:
                horizontal = decide(
                    policy,
                    current,
                    now,
                    raw_recommendation=predictive.replicas,
                    history=memory.history,
                    downscale_stabilization_seconds=self.settings.downscale_stabilization_seconds,
                )
        decide_seconds = time.perf_counter() - started
        desired = horizontal.desired_replicas
        code = (
            predictive.reason
            if predictive is not None and predictive.reason == "forecast_ahead"
            else reason_code(horizontal.reason)
        )
        message = horizontal.message
        if predictive is not None:
            message = f"{message}; {predictive.message}"
        if desired == current:
            memory.history = horizontal.history
            decision = None
            if code != memory.last_reason and not code.startswith("desired_within"):
                decision = self._record(
                    ref,
                    (current, current),
                    code,
                    message,
                    now,
                    decide_seconds,
                    self._finished("skipped"),
                    horizontal=horizontal,
                    predictive=predictive,
                    reactive=reactive,
                    origin=resolved.origin,
                )
            memory.last_reason = code
            return Outcome(ref, "unchanged", code, decision=decision)
        result = await orchestrator.scale(ref, desired, f"{code}: {message}")
        if result.ok:
            memory.history = horizontal.history
            if not result.dry_run:
                memory.last_scaled = (now, "up" if desired > current else "down")
                self.last_states[ref] = dataclasses.replace(state, desired_replicas=desired)
        else:  # the scale did not happen: keep the recommendation, drop the event
            memory.history = dataclasses.replace(
                horizontal.history,
                scale_up_events=memory.history.scale_up_events,
                scale_down_events=memory.history.scale_down_events,
            )
        memory.last_reason = code
        actuation = self._finished(
            "skipped" if result.dry_run else "done" if result.ok else "failed",
            "" if result.ok else result.detail,
        )
        decision = self._record(
            ref,
            (current, desired),
            code,
            message,
            now,
            decide_seconds,
            actuation,
            horizontal=horizontal,
            predictive=predictive,
            reactive=reactive,
            origin=resolved.origin,
        )
        if not result.ok:
            return Outcome(
                ref,
                "error",
                f"scale to {desired} failed: {result.detail}",
                retry_after_seconds=None
                if result.permanent
                else result.retry_after_seconds or self.settings.error_retry_seconds,
                decision=decision,
            )
        return Outcome(ref, "acted", f"{code}: {current} -> {desired}", decision=decision)

    def _remember(self, ref: WorkloadRef, current: int, now: float) -> _WorkloadMemory:
        memory = self._memory.get(ref)
        if memory is None:
            memory = self._memory[ref] = _WorkloadMemory(self._seed_history(ref, current, now))
        return memory

    def _seed_history(self, ref: WorkloadRef, current: int, now: float) -> ScalingHistory:
        """What the HPA would remember: the current count as a recommendation (so a new
        controller does not scale down at once), plus the recent scale decisions it made
        before a restart, as recommendations and scale events."""
        horizon = max(self.settings.downscale_stabilization_seconds, 3600.0)
        recommendations = [TimestampedRecommendation(current, now)]
        ups: list[ScaleEvent] = []
        downs: list[ScaleEvent] = []
        for past in self.past_decisions(ref, now - horizon):
            if past.kind != "scale" or not isinstance(past.to_value, int | float):
                continue
            recommendations.append(TimestampedRecommendation(int(past.to_value), past.decided_at))
            if past.actuation.state == "done" and isinstance(past.from_value, int | float):
                change = int(past.to_value) - int(past.from_value)
                event = ScaleEvent(abs(change), past.decided_at)
                (ups if change > 0 else downs).append(event)
        return ScalingHistory(tuple(recommendations), tuple(ups), tuple(downs))

    async def _predict(
        self,
        source: MetricsSource,
        state: WorkloadState,
        policy: ScalingPolicy,
        memory: _WorkloadMemory,
        horizontal: HorizontalDecision,
        now: float,
    ) -> PredictiveDecision:
        assert horizontal.raw_recommendation is not None
        reactive = horizontal.raw_recommendation
        spec = policy.predictive
        target = _per_replica_target(policy, state)
        if target is None:
            return PredictiveDecision(
                reactive, "forecast_unavailable", "the first metric has no per-replica target"
            )
        family, per_replica = target
        if now - memory.fitted_at >= self.settings.forecast_refit_seconds:
            step = self.settings.forecast_step_seconds
            series = await source.history(
                family, [state.ref], now - spec.history_window_seconds, now, step
            )
            points = (series or {}).get(state.ref, ())
            memory.forecaster = fit_forecaster(
                [t for t, _ in points],
                [v for _, v in points],
                step_seconds=step,
                seasonalities=spec.seasonalities,
                min_history_seconds=spec.min_history_seconds,
                lead_time_seconds=spec.lead_time_seconds,
            )
            memory.fitted_at = now
        forecaster = memory.forecaster
        horizon = max(1, math.ceil(spec.lead_time_seconds / self.settings.forecast_step_seconds))
        forecast = forecaster.forecast(horizon) if forecaster is not None else None
        return predictive_replicas(
            reactive_replicas=reactive,
            forecast=forecast,
            now=now,
            lead_time_seconds=spec.lead_time_seconds,
            per_replica_target=per_replica,
            mode=spec.mode,
            max_error_percent=spec.max_error_percent,
        )

    def _hold(
        self,
        ref: WorkloadRef,
        memory: _WorkloadMemory,
        current: int,
        code: str,
        message: str,
        now: float,
        started: float,
    ) -> Outcome:
        """No decision could be computed: keep the replicas, record why once."""
        decision = None
        if code != memory.last_reason:
            elapsed = time.perf_counter() - started
            actuation = self._finished("skipped")
            decision = self._record(ref, (current, current), code, message, now, elapsed, actuation)
        memory.last_reason = code
        return Outcome(ref, "skipped", code, decision=decision)

    def _record(
        self,
        ref: WorkloadRef,
        change: tuple[int, int],
        code: str,
        message: str,
        now: float,
        decide_seconds: float,
        actuation: Actuation,
        *,
        horizontal: HorizontalDecision | None = None,
        predictive: PredictiveDecision | None = None,
        reactive: int | None = None,
        origin: str | None = None,
    ) -> Decision:
        """The decision-log entry of one pass over ``ref``: ``change`` is (from, to)."""
        current, desired = change
        inputs: dict[str, float] = {"current_replicas": current, "desired_replicas": desired}
        if horizontal is not None:
            if horizontal.raw_recommendation is not None:
                inputs["raw_recommendation"] = horizontal.raw_recommendation
            for result in horizontal.metrics:
                inputs.update(_metric_inputs(result))
        forecast: list[float] = []
        if predictive is not None:
            if reactive is not None:
                inputs["reactive_recommendation"] = reactive
            if predictive.forecast_replicas is not None:
                inputs["forecast_replicas"] = predictive.forecast_replicas
            if predictive.forecast_peak is not None:
                inputs["forecast_peak"] = predictive.forecast_peak
                forecast = [predictive.forecast_peak]
        self._sequence += 1
        return Decision(
            id=f"scale-{round(now * 1000)}-{self._sequence}",
            kind="scale",
            target=str(ref),
            from_value=current,
            to_value=desired,
            reason=DecisionReason(
                code=code[:64],
                message=message[:1024],
                inputs={k: float(v) for k, v in inputs.items() if math.isfinite(v)},
                policy=f"{origin} policy" if origin else "",
                forecast=forecast[:MAX_FORECAST_POINTS],
            ),
            decided_at=now,
            decide_seconds=decide_seconds,
            actuation=actuation,
        )

    def _finished(self, state: str, error: str = "") -> Actuation:
        return Actuation(state=state, finished_at=self.clock(), error=error[:1024])  # type: ignore[arg-type]


def _metric_inputs(result: MetricResult) -> dict[str, float]:
    name = result.spec.metric_name
    inputs: dict[str, float] = {}
    if result.proposal is not None:
        inputs[f"{name}_proposal"] = result.proposal
    if result.utilization is not None:
        inputs[f"{name}_utilization_percent"] = result.utilization
    if result.average_value is not None:
        inputs[f"{name}_average"] = result.average_value / 1000
    if result.value is not None:
        inputs[f"{name}_value"] = result.value / 1000
    return inputs


def _request(container: ContainerState, resource: str) -> float | None:
    """A container's request in the family's unit (cores or bytes)."""
    if resource == "cpu":
        millicores = container.requests.cpu_millicores
        return None if millicores is None else millicores / 1000
    return container.requests.memory_bytes


def _per_replica_target(
    policy: ScalingPolicy, state: WorkloadState
) -> tuple[MetricFamily, float] | None:
    """What one replica is meant to carry of the first metric, in the family's unit: the
    forecast of the workload's total divided by it is the replicas the forecast needs."""
    spec = policy.metrics[0]
    family = family_of(spec)
    target = spec.target
    if family is None:
        return None
    if target.average_value is not None:
        return family, float(parse_quantity(target.average_value))
    if target.average_utilization is None or not state.pods:
        return None
    requests = [
        amount
        for pod in state.pods
        for container in pod.containers
        if (amount := _request(container, spec.metric_name)) is not None
    ]
    if not requests:
        return None
    per_pod = sum(requests) / len(state.pods)
    return family, per_pod * target.average_utilization / 100
