"""Efficiency and waste, per container and summed per workload, namespace and pool.

Prices are round numbers (1.0 per core-hour, 0.5 per GiB-hour) so the money is hand-checked.
"""

from __future__ import annotations

import pytest

from controller.engines.resources.capacity import UnitPrices
from controller.engines.resources.efficiency import (
    ContainerFootprint,
    Efficiency,
    container_efficiency,
    efficiency_report,
    pool_goals,
)

GIB = 2**30
PRICES = UnitPrices(per_core_hour=1.0, per_gib_hour=0.5)


def footprint(
    cpu_request: int,
    memory_request: int,
    cpu_used: float,
    memory_used: float,
    *,
    namespace: str = "shop",
    workload: str = "cart",
    container: str = "app",
    pool: str = "general",
    replicas: int = 1,
) -> ContainerFootprint:
    return ContainerFootprint(
        namespace, workload, container, pool, replicas, cpu_request, memory_request, cpu_used,
        memory_used,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("item", "cpu_eff", "mem_eff", "waste_cpu", "waste_mem", "waste_money"),
    [
        # 1 core / 2 GiB requested, half used: 0.5 core + 1 GiB wasted = 0.5 + 0.5 per hour.
        pytest.param(footprint(1000, 2 * GIB, 500, GIB), 0.5, 0.5, 500, GIB, 1.0, id="half"),
        # Three replicas triple everything.
        pytest.param(
            footprint(1000, 2 * GIB, 500, GIB, replicas=3),
            0.5,
            0.5,
            1500,
            3 * GIB,
            3.0,
            id="three-replicas",
        ),
        # Using more CPU than requested wastes no CPU; memory still half wasted (0.5/h).
        pytest.param(footprint(1000, 2 * GIB, 1500, GIB), 1.5, 0.5, 0, GIB, 0.5, id="cpu-overuse"),
    ],
)
def test_container_efficiency_and_waste(
    item: ContainerFootprint,
    cpu_eff: float,
    mem_eff: float,
    waste_cpu: float,
    waste_mem: float,
    waste_money: float,
) -> None:
    result = container_efficiency(item, PRICES)
    assert result.cpu_efficiency == pytest.approx(cpu_eff)
    assert result.memory_efficiency == pytest.approx(mem_eff)
    assert result.waste_cpu_millicores == pytest.approx(waste_cpu)
    assert result.waste_memory_bytes == pytest.approx(waste_mem)
    assert result.waste_per_hour == pytest.approx(waste_money)


def test_no_request_has_no_efficiency() -> None:
    result = container_efficiency(footprint(0, 0, 100, GIB), PRICES)
    assert (result.cpu_efficiency, result.memory_efficiency, result.waste_share) == (
        None,
        None,
        None,
    )


def test_overuse_does_not_offset_waste_elsewhere() -> None:
    # "a" wastes 1 core (1.0/h); "b" uses 1 core more than it asks: the namespace still
    # wastes 1.0/h of 2.0/h requested (50 %), though usage equals requests in total.
    report = efficiency_report(
        [
            footprint(1000, 0, 0, 0, workload="a"),
            footprint(1000, 0, 2000, 0, workload="b"),
        ],
        {"general": PRICES},
    )
    (namespace,) = report.namespaces
    assert namespace.cpu_efficiency == pytest.approx(1.0)
    assert namespace.waste_per_hour == pytest.approx(1.0)
    assert namespace.waste_share == pytest.approx(0.5)


def test_report_sums_per_workload_namespace_and_pool() -> None:
    report = efficiency_report(
        [
            footprint(1000, GIB, 900, GIB, container="app"),
            footprint(1000, GIB, 500, GIB, container="sidecar"),
            footprint(2000, 0, 2000, 0, namespace="search", workload="api", pool="cpu"),
        ],
        {"general": PRICES, "cpu": PRICES},
    )
    assert [w.key for w in report.workloads] == ["search/api", "shop/cart"]
    cart = report.workloads[1]
    assert cart.requested_cpu_millicores == 2000
    assert cart.used_cpu_millicores == pytest.approx(1400)
    assert cart.cpu_efficiency == pytest.approx(0.7)
    assert [p.key for p in report.pools] == ["cpu", "general"]
    assert [n.key for n in report.namespaces] == ["search", "shop"]


def _pool(requested: float, waste: float) -> Efficiency:
    return Efficiency("pool", "p", 0, 0, 0, 0, 0, 0, requested, requested - waste, waste)


@pytest.mark.parametrize(
    ("waste", "efficiency_met", "waste_met"),
    [
        # Seed goals: efficiency > 85 %, waste < 15 %.
        pytest.param(0.10, True, True, id="90pct-efficient"),
        pytest.param(0.15, False, False, id="85pct-is-not-above"),
        pytest.param(0.40, False, False, id="60pct-efficient"),
    ],
)
def test_seed_goals_per_pool(waste: float, efficiency_met: bool, waste_met: bool) -> None:
    goals = pool_goals(_pool(1.0, waste))
    assert goals.waste_share == pytest.approx(waste)
    assert goals.cost_efficiency == pytest.approx(1 - waste)
    assert (goals.efficiency_goal_met, goals.waste_goal_met) == (efficiency_met, waste_met)
