"""The vertical engine: VPA recommendations fed from workload readings, recorded in Recommend
mode, applied in place when VPA's updater would, withheld where they would fight the HPA, and
held by the disruption budget in Recreate mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from controller.engines.scaling.engine import Direction
from controller.engines.scaling.policy_sources import ResolvedPolicy
from controller.engines.scaling.vertical_engine import (
    VerticalEngine,
    container_shares,
    scaled_limit,
)
from controller.ports import (
    ContainerState,
    MetricFamily,
    PodState,
    Resources,
    WorkloadRef,
    WorkloadState,
)
from controller.reconcile import Outcome, StepContext
from shared.scaling_policy import parse_policy

from engine_fakes import Cluster, Metrics

WEB = WorkloadRef("line", "web", "Deployment")
NOW = 1_700_000_000.0
MI = 2**20
STEP = 600.0  # one pass every 10 minutes of fake time


def app(cpu: int = 1000, memory: int = 1024 * MI, cpu_limit: int | None = 2000) -> ContainerState:
    return ContainerState(
        "app",
        requests=Resources(cpu_millicores=cpu, memory_bytes=memory),
        limits=Resources(cpu_millicores=cpu_limit),
    )


def web(replicas: int = 3, container: ContainerState | None = None) -> WorkloadState:
    pods = tuple(
        PodState(f"web-{i}", True, containers=(container or app(),)) for i in range(replicas)
    )
    return WorkloadState(WEB, replicas, replicas, pods)


def policy(mode: str, *, hpa_cpu: bool = False) -> Any:
    spec: dict[str, Any] = {"maxReplicas": 10, "vertical": {"mode": mode}}
    if not hpa_cpu:  # scale horizontally on requests/s, which a resize does not move
        spec["metrics"] = [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "requests_per_second"},
                    "target": {"type": "AverageValue", "averageValue": "10"},
                },
            }
        ]
    return parse_policy(spec)


@dataclass
class Setup:
    mode: str
    replicas: int = 3
    hpa_cpu: bool = False
    direction: Direction = "none"
    now: float = NOW
    cluster: Cluster = field(init=False)
    metrics: Metrics = field(init=False)
    engine: VerticalEngine = field(init=False)

    def __post_init__(self) -> None:
        scaling = policy(self.mode, hpa_cpu=self.hpa_cpu)
        self.cluster = Cluster({WEB: web(self.replicas)}, lambda ref, n, old: web(n))
        # Each of the 3 pods uses 0.2 cores and 300 MiB: far below its 1 core / 1 GiB.
        per_pod = {"cpu_cores": 0.2, "memory_bytes": 300 * MI}
        values: dict[MetricFamily, dict[WorkloadRef, float]] = {
            family: {WEB: amount * self.replicas} for family, amount in per_pod.items()
        }
        self.metrics = Metrics(values)
        self.engine = VerticalEngine(
            orchestrator=lambda: self.cluster,
            source=lambda: self.metrics,
            resolve=lambda state: ResolvedPolicy(scaling, "api"),
            paused=lambda ref: False,
            horizontal_direction=lambda ref: self.direction,
            clock=lambda: self.now,
        )

    async def passes(self, count: int) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for _ in range(count):
            outcomes += await self.engine.step(StepContext(now=self.now, backed_off=frozenset()))
            self.now += STEP
        return outcomes


async def test_recommend_mode_records_the_vpa_target_once_and_resizes_nothing() -> None:
    setup = Setup("Recommend")
    outcomes = await setup.passes(6)
    decisions = [o.decision for o in outcomes if o.decision is not None]
    assert len(decisions) == 1  # unchanged recommendations are not logged again
    (decision,) = decisions
    assert (decision.kind, decision.reason.code, decision.actuation.state) == (
        "resize",
        "vertical_recommendation",
        "skipped",
    )
    # P90 of a constant 200m lands in the bucket ending at ~206m; + 15 % margin.
    assert decision.to_value is not None
    assert "cpu 2" in str(decision.to_value)
    assert setup.cluster.resized == []


async def test_in_place_waits_for_pod_age_then_resizes_memory_and_scales_limits() -> None:
    setup = Setup("InPlace")
    young = await setup.passes(6)  # one hour: pods too young, request within the wide bounds
    assert setup.cluster.resized == []
    assert {o.reason for o in young} <= {"short_lived_within_range", "no_recommendation_yet"}
    await setup.passes(70)  # past 12 hours
    assert setup.cluster.resized, "expected an in-place resize"
    ref, container, requests, limits = setup.cluster.resized[0]
    assert (ref, container) == (WEB, "app")
    assert requests.cpu_millicores is not None
    assert 200 <= requests.cpu_millicores <= 260
    assert requests.memory_bytes is not None
    assert 300 * MI < requests.memory_bytes < 400 * MI
    # The CPU limit keeps its 2:1 ratio to the request; memory had no limit.
    assert limits.cpu_millicores == scaled_limit(2000, 1000, requests.cpu_millicores)
    assert limits.memory_bytes is None


async def test_a_resource_the_hpa_reads_by_utilization_is_only_recommended() -> None:
    setup = Setup("InPlace", hpa_cpu=True)
    await setup.passes(76)
    assert setup.cluster.resized
    assert all(requests.cpu_millicores is None for _, _, requests, _ in setup.cluster.resized)
    assert all(requests.memory_bytes is not None for _, _, requests, _ in setup.cluster.resized)


async def test_no_resize_in_the_direction_horizontal_scaling_just_moved() -> None:
    setup = Setup("InPlace", direction="down")
    outcomes = await setup.passes(76)
    assert setup.cluster.resized == []
    assert any("horizontal_scaling_in_progress" in o.reason for o in outcomes)


async def test_recreate_mode_respects_the_disruption_budget() -> None:
    setup = Setup("Recreate", replicas=1)  # VPA never evicts below 2 replicas
    outcomes = await setup.passes(76)
    assert setup.cluster.resized == []
    assert outcomes[-1].reason == "too_few_replicas"


async def test_without_readings_nothing_is_recommended() -> None:
    setup = Setup("InPlace")
    setup.metrics.down = True
    outcomes = await setup.passes(3)
    assert {o.reason for o in outcomes} == {"metrics_unavailable"}
    assert setup.cluster.resized == []


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        pytest.param(
            [
                ContainerState("app", requests=Resources(cpu_millicores=300)),
                ContainerState("proxy", requests=Resources(cpu_millicores=100)),
            ],
            {"app": 0.75, "proxy": 0.25},
            id="share-of-requests",
        ),
        pytest.param(
            [ContainerState("a"), ContainerState("b")], {"a": 0.5, "b": 0.5}, id="even-without"
        ),
    ],
)
def test_container_shares(containers: list[ContainerState], expected: dict[str, float]) -> None:
    shares = container_shares(containers, "cpu")
    for name, share in expected.items():
        assert shares[name] == pytest.approx(share)
