"""The ResourceEngine in the loop: workloads and their usage history become one cycle whose
right-sizing, efficiency and goals back /v1/recommendations and the efficiency metrics."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from controller.engines.resources.live import ResourceEngine, register_efficiency, usage_series
from controller.ports import ContainerState, PodState, Resources, WorkloadRef, WorkloadState
from controller.reconcile import StepContext
from shared.wire import AgentReport, parse

from engine_fakes import Cluster, Metrics
from messages import report

WEB = WorkloadRef("line", "web", "Deployment")
GI = 2**30
NOW = 1_700_000_000.0


def web() -> WorkloadState:
    app = ContainerState("app", requests=Resources(cpu_millicores=1000, memory_bytes=GI))
    pods = tuple(PodState(f"web-{i}", True, node="node-1", containers=(app,)) for i in range(2))
    return WorkloadState(WEB, 2, 2, pods)


def two_days(per_pod: float) -> list[tuple[float, float]]:
    """Workload totals every 5 minutes for two days: 2 pods at ``per_pod`` each."""
    return [(NOW - 2 * 86400 + 300 * i, 2 * per_pod) for i in range(2 * 288)]


async def test_a_cycle_sizes_containers_from_usage_and_reports_pool_efficiency() -> None:
    metrics = Metrics({})
    metrics.family_history = {
        "cpu_cores": {WEB: two_days(0.2)},
        "memory_bytes": {WEB: two_days(300 * 2**20)},
    }
    agent = parse(AgentReport, json.dumps(report(node="node-1")))
    engine = ResourceEngine(
        orchestrator=lambda: Cluster({WEB: web()}, lambda ref, n, old: old),
        source=lambda: metrics,
        reports=lambda: [agent],
        clock=lambda: NOW,
    )
    registry = CollectorRegistry()
    register_efficiency(registry, engine)
    (outcome,) = await engine.step(StepContext(now=NOW, backed_off=frozenset()))
    assert outcome.workload == WEB
    assert engine.last is not None
    (rec,) = engine.last.recommendations
    assert rec.cpu is not None
    assert rec.memory is not None
    # 200m used of 1000m requested, 300 MiB of 1 GiB: the targets come down near the usage.
    assert 200 <= rec.cpu.target <= 300
    assert 300 * 2**20 <= rec.memory.target <= 400 * 2**20
    cpu_ratio = registry.get_sample_value(
        "linescale_resource_efficiency_ratio", {"pool": "default", "resource": "cpu"}
    )
    assert cpu_ratio is not None
    assert abs(cpu_ratio - 0.2) < 0.01
    waste = registry.get_sample_value(
        "linescale_resource_waste", {"pool": "default", "unit": "cores"}
    )
    assert waste is not None
    assert abs(waste - 1.6) < 0.05  # 2 x (1.0 - 0.2) cores


async def test_without_metrics_nothing_is_sized() -> None:
    metrics = Metrics({}, down=True)
    engine = ResourceEngine(
        orchestrator=lambda: Cluster({WEB: web()}, lambda ref, n, old: old),
        source=lambda: metrics,
        reports=lambda: [],
    )
    outcomes = await engine.step(StepContext(now=NOW, backed_off=frozenset()))
    assert [(o.result, o.reason) for o in outcomes] == [("skipped", "metrics_unavailable")]
    assert engine.last is None


def test_usage_is_split_per_pod_and_paired_by_time() -> None:
    series = usage_series(web(), "app", [(1.0, 0.4), (2.0, 0.6)], [(1.0, 2e8), (3.0, 4e8)])
    assert list(series.times) == [1.0]
    assert (float(series.cpu_cores[0]), float(series.memory_bytes[0])) == (0.2, 1e8)
