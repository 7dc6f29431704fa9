"""Gauges over the ScalabilityEngine's state, for the alerts that need them.

"Pinned at maxReplicas" compares ``linescale_workload_replicas`` with
``linescale_workload_max_replicas``; "forecast error above the gate" compares
``linescale_forecast_error_percent`` (the fitted forecaster's MAPE on its held-out window, the
number the predictive gate checks) with ``linescale_forecast_error_gate_percent`` (the
policy's ``predictive.maxErrorPercent``). Labels: ``namespace``, ``workload``, ``kind``.

Values are the engine's ``last_states``: what its orchestrator listed on its last pass, with
the replica counts it then set; reading them never calls the cluster at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.engines.scaling.engine import ScalabilityEngine
from controller.engines.scaling.forecast import Forecaster
from controller.engines.scaling.policy_sources import ResolvedPolicy
from controller.ports import (
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


class ScalabilityCollector(Collector):
    """The four workload gauges, computed at scrape time from the engine's last pass."""

    def __init__(self, engine: ScalabilityEngine) -> None:
        self._engine = engine

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
        engine = self._engine
        for ref, state in sorted(engine.last_states.items()):
            gauges = workload_gauges(state, engine.resolve(state), engine.forecaster(ref))
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
    collector = ScalabilityCollector(engine)
    registry.register(collector)
    return collector
