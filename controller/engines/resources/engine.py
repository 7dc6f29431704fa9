"""``ResourceCycle``: one pure pass from what containers use to what the cluster should be.

In: containers (requests, limits, usage history, OOM and throttling events, pool, replicas),
nodes (labels, allocatable, price), configured pools, prices and pool histories. Out:

1. a right-sizing recommendation per container (``rightsizing.recommend_container``);
2. efficiency and waste per container, workload, namespace and pool, and the seed goals per
   pool (``efficiency``);
3. per pool, the nodes and cost per hour today, after consolidating today's requests, and
   after right-sizing and consolidating (``binpack.pack``), also split per namespace;
4. per pool, utilisation by requests and by usage, and forecasts of both with the run-out
   date and the nodes needed (``capacity``).

Every result carries its reason. No clock, no I/O: ``now`` is an input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from controller.engines.resources.binpack import (
    IDLE,
    Packing,
    PodRequest,
    cost_by_namespace,
    pack,
)
from controller.engines.resources.capacity import (
    INSTANCE_TYPE_LABEL,
    CapacityForecast,
    Node,
    NodePool,
    NodeType,
    PoolConfig,
    PoolHistory,
    PoolUtilisation,
    UnitPrices,
    forecast_pool,
    pools_from_nodes,
    unit_prices,
)
from controller.engines.resources.efficiency import (
    ContainerFootprint,
    EfficiencyReport,
    efficiency_report,
)
from controller.engines.resources.rightsizing import (
    DEFAULT_POLICY,
    ContainerUsage,
    Rightsizing,
    RightsizingPolicy,
    recommend_container,
)

__all__ = [
    "CycleContainer",
    "CycleInput",
    "CycleResult",
    "PoolPlan",
    "ResourceCycle",
    "ResourceSettings",
]


@dataclass(frozen=True, slots=True)
class ResourceSettings:
    policy: RightsizingPolicy = DEFAULT_POLICY
    pool_label: str = INSTANCE_TYPE_LABEL
    forecast_days: float = 30.0
    forecast_step_seconds: float = 3600.0
    max_utilisation: float = 1.0  # share of a node's allocatable that plans may fill


@dataclass(frozen=True, slots=True, eq=False)
class CycleContainer:
    """A container of a workload running ``replicas`` pods in ``pool``; its usage samples are
    per replica (one series for all replicas, as VPA aggregates them)."""

    usage: ContainerUsage
    pool: str
    replicas: int = 1


@dataclass(frozen=True, slots=True, eq=False)
class CycleInput:
    now: float
    containers: tuple[CycleContainer, ...]
    nodes: tuple[Node, ...]
    prices: Mapping[str, float] = field(default_factory=dict)
    pools: tuple[PoolConfig, ...] = ()
    pool_histories: tuple[PoolHistory, ...] = ()
    # More node types a pool may use (Karpenter-style choice of the cheapest mix).
    node_types: Mapping[str, tuple[NodeType, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PoolPlan:
    """A pool's nodes and cost per hour today, after consolidation, after right-sizing too."""

    pool: str
    nodes_today: int
    cost_today: float
    consolidated: Packing  # today's requests, packed as well as we can
    rightsized: Packing  # recommended requests, packed as well as we can
    baseline: Packing  # recommended requests, first-fit decreasing on the pool's type
    cost_by_namespace_today: Mapping[str, float]
    cost_by_namespace_after: Mapping[str, float]
    reason: str

    @property
    def savings_per_hour(self) -> float:
        return self.cost_today - self.rightsized.cost_per_hour


@dataclass(frozen=True, slots=True)
class CycleResult:
    recommendations: tuple[Rightsizing, ...]
    efficiency: EfficiencyReport
    pools: tuple[NodePool, ...]
    utilisation: tuple[PoolUtilisation, ...]
    plans: tuple[PoolPlan, ...]
    forecasts: tuple[CapacityForecast, ...]
    notes: tuple[str, ...]


@dataclass
class _Workload:
    namespace: str
    workload: str
    pool: str
    replicas: int
    cpu_today: int = 0
    memory_today: int = 0
    cpu_after: int = 0
    memory_after: int = 0


def _mean(values: npt.NDArray[np.float64]) -> float:
    return float(values.mean()) if values.size else 0.0


class ResourceCycle:
    """Runs the whole resource pass; holds only its settings."""

    def __init__(self, settings: ResourceSettings | None = None) -> None:
        self.settings = settings or ResourceSettings()

    def run(self, inputs: CycleInput) -> CycleResult:
        settings = self.settings
        policy = settings.policy
        notes: list[str] = []
        pools = pools_from_nodes(
            inputs.nodes,
            pool_label=settings.pool_label,
            prices=inputs.prices,
            configured=inputs.pools,
        )
        by_name = {pool.name: pool for pool in pools}
        prices: dict[str, UnitPrices] = {pool.name: unit_prices(pool.node_type) for pool in pools}
        recommendations: list[Rightsizing] = []
        footprints: list[ContainerFootprint] = []
        workloads: dict[tuple[str, str], _Workload] = {}
        since = inputs.now - policy.history_seconds
        for item in inputs.containers:
            usage = item.usage
            result = recommend_container(usage, now=inputs.now, policy=policy)
            recommendations.append(result)
            if item.pool not in prices:
                notes.append(
                    f"{usage.namespace}/{usage.workload}/{usage.container}: pool "
                    f"{item.pool!r} has no nodes; priced at 0"
                )
                prices[item.pool] = UnitPrices(0.0, 0.0)
            window = usage.usage.within(since, inputs.now)
            cpu_request = usage.requests.cpu_millicores or 0
            memory_request = usage.requests.memory_bytes or 0
            footprints.append(
                ContainerFootprint(
                    usage.namespace,
                    usage.workload,
                    usage.container,
                    item.pool,
                    item.replicas,
                    cpu_request,
                    memory_request,
                    _mean(window.cpu_cores) * 1000,
                    _mean(window.memory_bytes),
                )
            )
            key = (usage.namespace, usage.workload)
            workload = workloads.get(key)
            if workload is None:
                workload = _Workload(usage.namespace, usage.workload, item.pool, item.replicas)
                workloads[key] = workload
            workload.replicas = max(workload.replicas, item.replicas)
            workload.cpu_today += cpu_request
            workload.memory_today += memory_request
            workload.cpu_after += result.cpu.target if result.cpu else cpu_request
            workload.memory_after += result.memory.target if result.memory else memory_request
        efficiency = efficiency_report(footprints, prices)
        utilisation = self._utilisation(pools, footprints)
        plans = tuple(
            self._plan(pool, [w for w in workloads.values() if w.pool == pool.name], inputs)
            for pool in pools
        )
        forecasts: list[CapacityForecast] = []
        for history in inputs.pool_histories:
            pool = by_name.get(history.pool)
            if pool is None:
                notes.append(f"history of pool {history.pool!r}, which has no nodes: skipped")
                continue
            forecasts.append(
                forecast_pool(
                    pool,
                    history,
                    horizon_days=settings.forecast_days,
                    step_seconds=settings.forecast_step_seconds,
                    max_utilisation=settings.max_utilisation,
                )
            )
        undefined = sum(not result.defined for result in recommendations)
        if undefined:
            notes.append(
                f"{undefined} of {len(recommendations)} containers undefined (not enough "
                "history): their current requests are kept in the plans"
            )
        return CycleResult(
            recommendations=tuple(recommendations),
            efficiency=efficiency,
            pools=pools,
            utilisation=utilisation,
            plans=plans,
            forecasts=tuple(forecasts),
            notes=tuple(notes),
        )

    @staticmethod
    def _utilisation(
        pools: tuple[NodePool, ...], footprints: list[ContainerFootprint]
    ) -> tuple[PoolUtilisation, ...]:
        totals: dict[str, list[float]] = {pool.name: [0.0, 0.0, 0.0, 0.0] for pool in pools}
        for fp in footprints:
            row = totals.get(fp.pool)
            if row is None:
                continue
            row[0] += fp.requested_cpu_millicores * fp.replicas
            row[1] += fp.requested_memory_bytes * fp.replicas
            row[2] += fp.used_cpu_millicores * fp.replicas
            row[3] += fp.used_memory_bytes * fp.replicas
        return tuple(
            PoolUtilisation(
                pool.name,
                pool.node_count,
                pool.cpu_millicores,
                pool.memory_bytes,
                *totals[pool.name],
            )
            for pool in pools
        )

    def _plan(self, pool: NodePool, workloads: list[_Workload], inputs: CycleInput) -> PoolPlan:
        fill = self.settings.max_utilisation
        types = tuple(
            NodeType(
                node_type.name,
                int(node_type.cpu_millicores * fill),
                int(node_type.memory_bytes * fill),
                node_type.price_per_hour,
            )
            for node_type in (pool.node_type, *inputs.node_types.get(pool.name, ()))
        )
        today: list[PodRequest] = []
        after: list[PodRequest] = []
        for w in workloads:
            for replica in range(w.replicas):
                name = f"{w.namespace}/{w.workload}-{replica}"
                today.append(PodRequest(name, w.namespace, w.cpu_today, w.memory_today))
                after.append(PodRequest(name, w.namespace, w.cpu_after, w.memory_after))
        consolidated = pack(today, types).best
        rightsized_plan = pack(after, types)
        prices = unit_prices(pool.node_type)
        today_costs: dict[str, float] = {}
        for pod in today:
            cost = prices.cost_per_hour(pod.cpu_millicores, pod.memory_bytes)
            today_costs[pod.namespace] = today_costs.get(pod.namespace, 0.0) + cost
        today_costs[IDLE] = max(0.0, pool.cost_per_hour - sum(today_costs.values()))
        best = rightsized_plan.best
        reason = (
            f"{pool.node_count} nodes ({pool.cost_per_hour:.2f}/h) today; "
            f"{consolidated.node_count} ({consolidated.cost_per_hour:.2f}/h) consolidated; "
            f"{best.node_count} ({best.cost_per_hour:.2f}/h) right-sized with {best.strategy}"
        )
        if best.unplaced:
            reason += f"; {len(best.unplaced)} pods fit no node type"
        return PoolPlan(
            pool=pool.name,
            nodes_today=pool.node_count,
            cost_today=pool.cost_per_hour,
            consolidated=consolidated,
            rightsized=best,
            baseline=rightsized_plan.baseline,
            cost_by_namespace_today=today_costs,
            cost_by_namespace_after=cost_by_namespace(best),
            reason=reason,
        )
