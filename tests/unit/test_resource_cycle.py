"""ResourceCycle end to end on a two-node pool small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from controller.engines.resources.capacity import INSTANCE_TYPE_LABEL, Node
from controller.engines.resources.engine import CycleContainer, CycleInput, ResourceCycle
from controller.engines.resources.rightsizing import ContainerUsage, UsageSeries
from controller.ports import Resources

GIB = 2**30
MIB = 2**20
NOW = 1_700_006_400.0
TIMES = (NOW - 8 * 86_400 + 3600 * np.arange(1, 193)).astype(np.float64)  # 8 days hourly


def usage(
    name: str, cores: float, memory: float, request_cpu: int, request_memory: int
) -> CycleContainer:
    series = UsageSeries(TIMES.copy(), np.full(192, cores), np.full(192, memory))
    container = ContainerUsage(
        "shop", name, "app", Resources(request_cpu, request_memory), Resources(), series
    )
    return CycleContainer(container, "m", replicas=2)


def test_cycle_rightsizes_consolidates_and_reports() -> None:
    # Two nodes of 4 cores / 16 GiB at 0.2/h. Two workloads x 2 replicas each ask 1.5 cores
    # and 4 GiB (6 cores, 16 GiB in all: two nodes) but use 0.2 cores and 400 MiB.
    nodes = tuple(Node(f"n{i}", {INSTANCE_TYPE_LABEL: "m"}, 4000, 16 * GIB, 0.2) for i in range(2))
    containers = (
        usage("cart", 0.2, 400 * MIB, 1500, 4 * GIB),
        usage("search", 0.2, 400 * MIB, 1500, 4 * GIB),
    )
    result = ResourceCycle().run(CycleInput(NOW, containers, nodes))
    assert all(r.defined for r in result.recommendations)
    (plan,) = result.plans
    assert plan.nodes_today == 2
    assert plan.cost_today == pytest.approx(0.4)
    # Right-sized: ~235m and 460 MiB per pod, 4 pods: one node.
    assert plan.rightsized.node_count == 1
    assert plan.savings_per_hour == pytest.approx(0.2)
    assert sum(plan.cost_by_namespace_after.values()) == pytest.approx(0.2)
    (utilisation,) = result.utilisation
    assert utilisation.cpu_by_requests == pytest.approx(6000 / 8000)
    assert utilisation.cpu_by_usage == pytest.approx(800 / 8000)
    (goal,) = result.efficiency.goals
    assert not goal.efficiency_goal_met
    assert not goal.waste_goal_met
    assert result.forecasts == ()
