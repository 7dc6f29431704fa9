"""The ResourceEngine in the controller loop: one ``ResourceCycle`` over what runs now.

Each pass (5 minutes by default) reads every workload's containers and requests from the
orchestrator, their usage history from the metrics source (one batched range query per family;
a workload's total split over its pods, and over a pod's containers by their requests, as the
vertical engine does), and the nodes from the fresh agents' reports (capacity, zone, at the
configured price). The pure cycle then runs off the event loop; its result backs
``/v1/recommendations`` and the efficiency metrics:

- ``linescale_resource_efficiency_ratio{pool,resource}``: usage / requests (cpu, memory, cost);
- ``linescale_resource_waste{pool,unit}``: requests - usage in cores, bytes and money per hour.

Recommendations are not applied here; the vertical engine applies them where a policy says so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.engines.resources.capacity import INSTANCE_TYPE_LABEL, Node
from controller.engines.resources.engine import (
    CycleContainer,
    CycleInput,
    CycleResult,
    ResourceCycle,
)
from controller.engines.resources.rightsizing import ContainerUsage, UsageSeries
from controller.engines.scaling.vertical_engine import container_shares
from controller.ports import MetricsSource, Orchestrator, WorkloadRef, WorkloadState
from controller.reconcile import Outcome, StepContext
from shared import metric_names
from shared.wire import AgentReport

ENGINE = "resources"
ZONE_LABEL = "topology.kubernetes.io/zone"


@dataclass(frozen=True, slots=True)
class ResourceLoopSettings:
    interval_seconds: float = 300.0
    history_seconds: float = 8 * 86400.0  # VPA's memory window
    step_seconds: float = 300.0
    node_price_per_hour: float = 0.192  # m5.xlarge on-demand, us-east-1
    pool: str = "default"  # the pool nodes are in unless their labels say otherwise


def usage_series(
    state: WorkloadState,
    container: str,
    cpu: Sequence[tuple[float, float]],
    memory: Sequence[tuple[float, float]],
) -> UsageSeries:
    """One container's per-replica usage from its workload's totals; samples are paired by
    time (a time missing in either series is left out)."""
    pods = max(1, len(state.pods))
    containers = state.pods[0].containers if state.pods else ()
    cpu_share = container_shares(containers, "cpu").get(container, 1.0)
    memory_share = container_shares(containers, "memory").get(container, 1.0)
    memory_at = dict(memory)
    return UsageSeries.of(
        (at, cores / pods * cpu_share, memory_at[at] / pods * memory_share)
        for at, cores in cpu
        if at in memory_at
    )


def nodes_of(reports: Iterable[AgentReport], settings: ResourceLoopSettings) -> tuple[Node, ...]:
    return tuple(
        Node(
            name=report.node,
            labels={ZONE_LABEL: report.zone, INSTANCE_TYPE_LABEL: settings.pool},
            cpu_millicores=round(report.capacity.cpu_cores * 1000),
            memory_bytes=report.capacity.memory_bytes,
            price_per_hour=settings.node_price_per_hour,
        )
        for report in reports
    )


@dataclass
class ResourceEngine:
    orchestrator: Callable[[], Orchestrator | None]
    source: Callable[[], MetricsSource | None]
    reports: Callable[[], Sequence[AgentReport]]
    settings: ResourceLoopSettings = field(default_factory=ResourceLoopSettings)
    cycle: ResourceCycle = field(default_factory=ResourceCycle)
    clock: Callable[[], float] = time.time
    last: CycleResult | None = None  # what /v1/recommendations shows
    last_at: float | None = None

    async def step(self, context: StepContext) -> list[Outcome]:
        orchestrator, source = self.orchestrator(), self.source()
        if orchestrator is None or source is None:
            return []
        states = [s for s in await orchestrator.list_workloads() if s.pods]
        refs = [state.ref for state in states]
        start = context.now - self.settings.history_seconds
        step = self.settings.step_seconds
        cpu = await source.history("cpu_cores", refs, start, context.now, step) if refs else {}
        memory = (
            await source.history("memory_bytes", refs, start, context.now, step) if refs else {}
        )
        if cpu is None or memory is None:
            return [Outcome(ref, "skipped", "metrics_unavailable") for ref in refs]
        nodes = nodes_of(self.reports(), self.settings)
        containers = tuple(
            CycleContainer(
                ContainerUsage(
                    namespace=state.ref.namespace,
                    workload=state.ref.name,
                    container=container.name,
                    requests=container.requests,
                    limits=container.limits,
                    usage=usage_series(
                        state, container.name, cpu.get(state.ref, ()), memory.get(state.ref, ())
                    ),
                    containers_in_pod=len(state.pods[0].containers),
                ),
                pool=self.settings.pool,
                replicas=len(state.pods),
            )
            for state in states
            for container in state.pods[0].containers
        )
        cycle_input = CycleInput(now=context.now, containers=containers, nodes=nodes)
        self.last = await asyncio.to_thread(self.cycle.run, cycle_input)
        self.last_at = context.now
        by_workload: dict[WorkloadRef, list[str]] = {}
        for rec in self.last.recommendations:
            ref = next(r for r in refs if (r.namespace, r.name) == (rec.namespace, rec.workload))
            by_workload.setdefault(ref, []).append(f"{rec.container}: {rec.reason}")
        return [
            Outcome(ref, "unchanged", "; ".join(reasons)[:300])
            for ref, reasons in sorted(by_workload.items())
        ]


class EfficiencyCollector(Collector):
    """The last cycle's per-pool efficiency and waste, read at scrape time."""

    def __init__(self, engine: ResourceEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[GaugeMetricFamily]:
        ratio = GaugeMetricFamily(
            metric_names.RESOURCE_EFFICIENCY,
            "Usage / requests per node pool, by resource (cpu, memory, cost).",
            labels=["pool", "resource"],
        )
        waste = GaugeMetricFamily(
            metric_names.RESOURCE_WASTE,
            "Requests minus usage per node pool: cores, bytes, and money per hour.",
            labels=["pool", "unit"],
        )
        result = self._engine.last
        for pool in result.efficiency.pools if result is not None else ():
            for resource, value in (
                ("cpu", pool.cpu_efficiency),
                ("memory", pool.memory_efficiency),
                ("cost", pool.cost_efficiency),
            ):
                if value is not None:
                    ratio.add_metric([pool.key, resource], value)
            waste.add_metric([pool.key, "cores"], pool.waste_cpu_millicores / 1000)
            waste.add_metric([pool.key, "bytes"], pool.waste_memory_bytes)
            waste.add_metric([pool.key, "per_hour"], pool.waste_per_hour)
        yield ratio
        yield waste


def register_efficiency(registry: CollectorRegistry, engine: ResourceEngine) -> None:
    registry.register(EfficiencyCollector(engine))
