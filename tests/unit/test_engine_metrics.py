"""The ScalabilityEngine's workload gauges: which workloads get them, what values they carry,
and that they follow the engine's listings and scales (the alerts "pinned at maxReplicas" and
"forecast error above the gate" compare them)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry

from controller.engine_metrics import WorkloadGauges, register_engine_metrics, workload_gauges
from controller.engines.scaling.engine import ScalabilityEngine
from controller.engines.scaling.forecast import Forecaster, fit_forecaster
from controller.engines.scaling.policy_sources import NO_POLICY, ResolvedPolicy
from controller.ports import ContainerState, PodState, Resources, WorkloadRef, WorkloadState
from controller.reconcile import StepContext
from shared.scaling_policy import ScalingPolicy, parse_policy

from engine_fakes import Cluster, Metrics

WEB = WorkloadRef("shop", "web", "Deployment")
BATCH = WorkloadRef("shop", "batch", "Deployment")
NOW = 1_700_000_000.0


def policy(*, predictive: bool = False, gate: float = 25.0) -> ScalingPolicy:
    metric = {"type": "Utilization", "averageUtilization": 50}
    return parse_policy(
        {
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": metric}}],
            "predictive": {"enabled": predictive, "maxErrorPercent": gate},
        }
    )


def workload(ref: WorkloadRef, replicas: int) -> WorkloadState:
    pods = tuple(
        PodState(
            f"{ref.name}-{i}",
            ready=True,
            containers=(ContainerState("app", Resources(cpu_millicores=500)),),
        )
        for i in range(replicas)
    )
    return WorkloadState(ref, replicas, replicas, pods)


def forecaster_with_error(mape: float | None) -> Forecaster:
    """A forecaster as fitted on too little history, with the held-out error set by hand."""
    unfitted = fit_forecaster([NOW], [1.0], step_seconds=60.0, seasonalities=["daily"])
    return replace(unfitted, recent_mape=mape)


@pytest.mark.parametrize(
    ("resolved", "forecaster", "expected"),
    [
        pytest.param(NO_POLICY, None, None, id="unmanaged-workload-has-no-gauges"),
        pytest.param(
            ResolvedPolicy(None, "annotation", "bad json"), None, None, id="invalid-policy-none"
        ),
        pytest.param(
            ResolvedPolicy(policy(), "api"),
            forecaster_with_error(45.0),
            WorkloadGauges(WEB, 7, 10, None, None),
            id="predictive-off-exposes-no-forecast-error-nor-gate",
        ),
        pytest.param(
            ResolvedPolicy(policy(predictive=True, gate=25.0), "file"),
            forecaster_with_error(45.0),
            WorkloadGauges(WEB, 7, 10, 45.0, 25.0),
            id="predictive-on-exposes-mape-and-policy-gate",
        ),
        pytest.param(
            ResolvedPolicy(policy(predictive=True, gate=25.0), "api"),
            None,
            WorkloadGauges(WEB, 7, 10, None, 25.0),
            id="predictive-on-not-fitted-yet-exposes-gate-only",
        ),
        pytest.param(
            ResolvedPolicy(policy(predictive=True, gate=25.0), "api"),
            forecaster_with_error(None),
            WorkloadGauges(WEB, 7, 10, None, 25.0),
            id="forecaster-without-holdout-error-exposes-gate-only",
        ),
    ],
)
def test_workload_gauges(
    resolved: ResolvedPolicy, forecaster: Forecaster | None, expected: WorkloadGauges | None
) -> None:
    assert workload_gauges(workload(WEB, 7), resolved, forecaster) == expected


def rescaled(ref: WorkloadRef, replicas: int, old: WorkloadState) -> WorkloadState:
    return workload(ref, replicas)


async def test_gauges_follow_the_engines_listing_and_scale_up_to_max_replicas() -> None:
    # web: 5 pods requesting 0.5 core use 5 cores = 200% of request against a 50% target,
    # so the HPA wants ceil(5 * 200 / 50) = 20, clamped to maxReplicas 10; the default
    # scale-up limit max(5 + 4 pods, 5 * 200%) = 10 lets it reach 10 in this pass.
    # batch has no policy: it is listed but not managed, so it has no gauges.
    cluster = Cluster({WEB: workload(WEB, 5), BATCH: workload(BATCH, 3)}, rescaled)
    metrics = Metrics({"cpu_cores": {WEB: 5.0}})
    engine = ScalabilityEngine(
        orchestrator=lambda: cluster,
        source=lambda: metrics,
        api_policies=lambda: {WEB: policy()},
        paused=lambda ref: False,
        clock=lambda: NOW,
    )
    registry = CollectorRegistry()
    register_engine_metrics(registry, engine)
    web = {"namespace": "shop", "workload": "web", "kind": "Deployment"}
    batch = {"namespace": "shop", "workload": "batch", "kind": "Deployment"}
    assert registry.get_sample_value("linescale_workload_replicas", web) is None  # no pass yet

    await engine.step(StepContext(now=NOW, backed_off=frozenset()))

    assert cluster.scaled == [(WEB, 10)]
    assert registry.get_sample_value("linescale_workload_replicas", web) == 10
    assert registry.get_sample_value("linescale_workload_max_replicas", web) == 10
    assert registry.get_sample_value("linescale_forecast_error_gate_percent", web) is None
    assert registry.get_sample_value("linescale_workload_replicas", batch) is None


async def test_a_failed_scale_leaves_the_listed_replicas() -> None:
    cluster = Cluster({WEB: workload(WEB, 5)}, rescaled)
    engine = ScalabilityEngine(
        orchestrator=lambda: cluster,
        source=lambda: Metrics({"cpu_cores": {WEB: 5.0}}),
        api_policies=lambda: {WEB: policy()},
        paused=lambda ref: False,
        clock=lambda: NOW,
    )
    registry = CollectorRegistry()
    register_engine_metrics(registry, engine)
    cluster.answer = replace(cluster.answer, ok=False, detail="forbidden", permanent=True)

    await engine.step(StepContext(now=NOW, backed_off=frozenset()))

    web = {"namespace": "shop", "workload": "web", "kind": "Deployment"}
    assert cluster.scaled == [(WEB, 10)]  # attempted, refused
    assert registry.get_sample_value("linescale_workload_replicas", web) == 5
