"""Gauges over the ScalabilityEngine's state, for the alerts that need them.

"Pinned at maxReplicas" compares ``linescale_workload_replicas`` with
``linescale_workload_max_replicas``; "forecast error above the gate" compares
``linescale_forecast_error_percent`` (the fitted forecaster's MAPE on its held-out window, the
number the predictive gate checks) with ``linescale_forecast_error_gate_percent`` (the
policy's ``predictive.maxErrorPercent``). Labels: ``namespace``, ``workload``, ``kind``.

The engine keeps no workload states between passes, so the collector records what the
engine's orchestrator listed on its last pass (and the replica counts it then set): values are
as of the engine's last pass, and reading them never calls the cluster at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.engines.scaling.engine import ScalabilityEngine
from controller.engines.scaling.forecast import Forecaster
from controller.engines.scaling.policy_sources import ResolvedPolicy
from controller.ports import (
    ActionResult,
    Orchestrator,
    Resources,
    WorkloadRef,
    WorkloadState,
)
from shared import metric_names

LABELS = ("namespace", "workload", "kind")


@dataclass(frozen=True, slots=True)
class WorkloadGauges:
    """One managed workload's values; None where there is nothing to expose."""

    ref: WorkloadRef
    replicas: int
    max_replicas: int
    forecast_error_percent: float | None  # None: predictive off, or no fitted model yet
    forecast_error_gate_percent: float | None  # None: predictive off


def workload_gauges(
    state: WorkloadState, resolved: ResolvedPolicy, forecaster: Forecaster | None
) -> WorkloadGauges | None:
    """The gauges of one workload, or None when no usable policy manages it (an unmanaged
    workload has no maxReplicas to be pinned at; an invalid policy alerts through
    reconcile errors instead)."""
    policy = resolved.policy
    if policy is None or resolved.origin is None:
        return None
    predictive = policy.predictive.enabled
    error = forecaster.recent_mape if predictive and forecaster is not None else None
    return WorkloadGauges(
        ref=state.ref,
        replicas=state.desired_replicas,
        max_replicas=policy.max_replicas,
        forecast_error_percent=error,
        forecast_error_gate_percent=policy.predictive.max_error_percent if predictive else None,
    )


class WorkloadBook:
    """The workload states the engine's orchestrator returned on its last listing, updated
    by the scales that then succeeded."""

    def __init__(self) -> None:
        self._states: dict[WorkloadRef, WorkloadState] = {}

    def listed(self, states: Sequence[WorkloadState]) -> None:
        self._states = {state.ref: state for state in states}

    def scaled(self, ref: WorkloadRef, replicas: int) -> None:
        state = self._states.get(ref)
        if state is not None:
            self._states[ref] = replace(state, desired_replicas=replicas)

    def states(self) -> list[WorkloadState]:
        return [self._states[ref] for ref in sorted(self._states)]


@dataclass(frozen=True, slots=True)
class RecordingOrchestrator:
    """An orchestrator that tells a ``WorkloadBook`` what it listed and scaled."""

    inner: Orchestrator
    book: WorkloadBook

    async def list_workloads(self) -> Sequence[WorkloadState]:
        states = await self.inner.list_workloads()
        self.book.listed(states)
        return states

    async def get_workload(self, ref: WorkloadRef) -> WorkloadState | None:
        return await self.inner.get_workload(ref)

    async def scale(self, ref: WorkloadRef, replicas: int, reason: str) -> ActionResult:
        result = await self.inner.scale(ref, replicas, reason)
        if result.ok and not result.dry_run:
            self.book.scaled(ref, replicas)
        return result

    async def resize(
        self,
        ref: WorkloadRef,
        container: str,
        requests: Resources,
        limits: Resources,
        reason: str,
    ) -> ActionResult:
        return await self.inner.resize(ref, container, requests, limits, reason)

    async def close(self) -> None:
        await self.inner.close()


class ScalabilityCollector(Collector):
    """The four workload gauges, computed at scrape time from the book and the engine."""

    def __init__(
        self,
        book: WorkloadBook,
        resolve: Callable[[WorkloadState], ResolvedPolicy],
        forecasters: Callable[[], Mapping[WorkloadRef, Forecaster | None]],
    ) -> None:
        self._book = book
        self._resolve = resolve
        self._forecasters = forecasters

    def collect(self) -> Iterable[GaugeMetricFamily]:
        families = {
            "replicas": GaugeMetricFamily(
                metric_names.WORKLOAD_REPLICAS,
                "Replicas of a managed workload as of the ScalabilityEngine's last pass.",
                labels=LABELS,
            ),
            "max": GaugeMetricFamily(
                metric_names.WORKLOAD_MAX_REPLICAS,
                "maxReplicas of the policy in force for a managed workload.",
                labels=LABELS,
            ),
            "error": GaugeMetricFamily(
                metric_names.FORECAST_ERROR,
                "MAPE of the workload's fitted forecast on its held-out window, percent.",
                labels=LABELS,
            ),
            "gate": GaugeMetricFamily(
                metric_names.FORECAST_ERROR_GATE,
                "Forecast error above which predictive scaling is not trusted, percent.",
                labels=LABELS,
            ),
        }
        forecasters = self._forecasters()
        for state in self._book.states():
            gauges = workload_gauges(state, self._resolve(state), forecasters.get(state.ref))
            if gauges is None:
                continue
            labels = [gauges.ref.namespace, gauges.ref.name, gauges.ref.kind]
            families["replicas"].add_metric(labels, gauges.replicas)
            families["max"].add_metric(labels, gauges.max_replicas)
            if gauges.forecast_error_percent is not None:
                families["error"].add_metric(labels, gauges.forecast_error_percent)
            if gauges.forecast_error_gate_percent is not None:
                families["gate"].add_metric(labels, gauges.forecast_error_gate_percent)
        yield from families.values()


def register_engine_metrics(
    registry: CollectorRegistry, engine: ScalabilityEngine
) -> ScalabilityCollector:
    """Route the engine's orchestrator through a recording one and register the gauges."""
    book = WorkloadBook()
    inner = engine.orchestrator

    def recording() -> Orchestrator | None:
        orchestrator = inner()
        return None if orchestrator is None else RecordingOrchestrator(orchestrator, book)

    engine.orchestrator = recording

    def forecasters() -> dict[WorkloadRef, Forecaster | None]:
        return {state.ref: engine.forecaster(state.ref) for state in book.states()}

    collector = ScalabilityCollector(book, engine.resolve, forecasters)
    registry.register(collector)
    return collector
