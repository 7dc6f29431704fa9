"""Efficiency and waste: how much of what is requested is used, and what the rest costs.

- **Efficiency** = usage / requests, per container, then summed up per workload, namespace
  and pool (sums of usage over sums of requests, so a big container weighs more). Usage is the
  mean over the window (what the capacity was actually used for, OpenCost's measure).
- **Waste** = requests - usage, in cores, bytes and money per hour (cores x price per
  core-hour + GiB x price per GiB-hour, the node price split OpenCost's way, see
  ``capacity.unit_prices``). A container using *more* than it requests wastes nothing; its
  overuse does not offset another's waste.
- **Cost efficiency** = priced usage / priced requests, and **waste share** = priced waste /
  priced requests: the two numbers the seed goals are about (efficiency > 85 %, waste < 15 %),
  reported as measured per pool with whether each goal is met.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from controller.engines.resources.capacity import UnitPrices

__all__ = [
    "EFFICIENCY_GOAL",
    "WASTE_GOAL",
    "ContainerFootprint",
    "Efficiency",
    "EfficiencyReport",
    "PoolGoals",
    "aggregate",
    "container_efficiency",
    "efficiency_report",
    "pool_goals",
]

EFFICIENCY_GOAL = 0.85  # seed goal: usage / requests above 85 %
WASTE_GOAL = 0.15  # seed goal: waste under 15 % of what requests cost


@dataclass(frozen=True, slots=True)
class ContainerFootprint:
    """One container's requests and mean usage per replica, times its replicas."""

    namespace: str
    workload: str
    container: str
    pool: str
    replicas: int
    requested_cpu_millicores: int
    requested_memory_bytes: int
    used_cpu_millicores: float  # mean per replica
    used_memory_bytes: float  # mean per replica


@dataclass(frozen=True, slots=True)
class Efficiency:
    """Totals of one scope (a container, workload, namespace or pool) and what they cost."""

    scope: str
    key: str
    requested_cpu_millicores: float
    used_cpu_millicores: float
    requested_memory_bytes: float
    used_memory_bytes: float
    waste_cpu_millicores: float
    waste_memory_bytes: float
    requested_per_hour: float
    used_per_hour: float
    waste_per_hour: float

    @property
    def cpu_efficiency(self) -> float | None:
        if self.requested_cpu_millicores <= 0:
            return None
        return self.used_cpu_millicores / self.requested_cpu_millicores

    @property
    def memory_efficiency(self) -> float | None:
        if self.requested_memory_bytes <= 0:
            return None
        return self.used_memory_bytes / self.requested_memory_bytes

    @property
    def cost_efficiency(self) -> float | None:
        """Priced usage / priced requests (usage above a request counts up to the request)."""
        if self.requested_per_hour <= 0:
            return None
        return (self.requested_per_hour - self.waste_per_hour) / self.requested_per_hour

    @property
    def waste_share(self) -> float | None:
        if self.requested_per_hour <= 0:
            return None
        return self.waste_per_hour / self.requested_per_hour


def container_efficiency(footprint: ContainerFootprint, prices: UnitPrices) -> Efficiency:
    """One container over all its replicas."""
    replicas = footprint.replicas
    requested_cpu = footprint.requested_cpu_millicores * replicas
    requested_memory = footprint.requested_memory_bytes * replicas
    used_cpu = footprint.used_cpu_millicores * replicas
    used_memory = footprint.used_memory_bytes * replicas
    waste_cpu = max(0.0, requested_cpu - used_cpu)
    waste_memory = max(0.0, requested_memory - used_memory)
    return Efficiency(
        scope="container",
        key=f"{footprint.namespace}/{footprint.workload}/{footprint.container}",
        requested_cpu_millicores=requested_cpu,
        used_cpu_millicores=used_cpu,
        requested_memory_bytes=requested_memory,
        used_memory_bytes=used_memory,
        waste_cpu_millicores=waste_cpu,
        waste_memory_bytes=waste_memory,
        requested_per_hour=prices.cost_per_hour(requested_cpu, requested_memory),
        used_per_hour=prices.cost_per_hour(used_cpu, used_memory),
        waste_per_hour=prices.cost_per_hour(waste_cpu, waste_memory),
    )


def aggregate(items: Sequence[tuple[str, Efficiency]], scope: str) -> tuple[Efficiency, ...]:
    """Sum containers' totals per key (``(key, efficiency)`` pairs), keys in sorted order."""
    sums: dict[str, list[float]] = {}
    for key, item in items:
        row = sums.setdefault(key, [0.0] * 9)
        for index, value in enumerate(
            (
                item.requested_cpu_millicores,
                item.used_cpu_millicores,
                item.requested_memory_bytes,
                item.used_memory_bytes,
                item.waste_cpu_millicores,
                item.waste_memory_bytes,
                item.requested_per_hour,
                item.used_per_hour,
                item.waste_per_hour,
            )
        ):
            row[index] += value
    return tuple(Efficiency(scope, key, *sums[key]) for key in sorted(sums))


@dataclass(frozen=True, slots=True)
class PoolGoals:
    """The seed goals as measured on one pool."""

    pool: str
    cost_efficiency: float | None
    waste_share: float | None
    efficiency_goal_met: bool
    waste_goal_met: bool


def pool_goals(pool: Efficiency) -> PoolGoals:
    efficiency = pool.cost_efficiency
    waste = pool.waste_share
    return PoolGoals(
        pool=pool.key,
        cost_efficiency=efficiency,
        waste_share=waste,
        efficiency_goal_met=efficiency is not None and efficiency > EFFICIENCY_GOAL,
        waste_goal_met=waste is not None and waste < WASTE_GOAL,
    )


@dataclass(frozen=True, slots=True)
class EfficiencyReport:
    containers: tuple[Efficiency, ...]
    workloads: tuple[Efficiency, ...]
    namespaces: tuple[Efficiency, ...]
    pools: tuple[Efficiency, ...]
    goals: tuple[PoolGoals, ...]


def efficiency_report(
    footprints: Sequence[ContainerFootprint],
    prices: Mapping[str, UnitPrices] | Callable[[str], UnitPrices],
) -> EfficiencyReport:
    """Efficiency and waste per container, workload, namespace and pool; ``prices`` gives the
    unit prices of each pool."""
    price_of = prices if callable(prices) else prices.__getitem__
    per_container = [
        (footprint, container_efficiency(footprint, price_of(footprint.pool)))
        for footprint in footprints
    ]
    containers = tuple(item for _, item in per_container)
    workloads = aggregate(
        [(f"{fp.namespace}/{fp.workload}", item) for fp, item in per_container], "workload"
    )
    namespaces = aggregate([(fp.namespace, item) for fp, item in per_container], "namespace")
    pools = aggregate([(fp.pool, item) for fp, item in per_container], "pool")
    return EfficiencyReport(
        containers=containers,
        workloads=workloads,
        namespaces=namespaces,
        pools=pools,
        goals=tuple(pool_goals(pool) for pool in pools),
    )
