"""In-memory implementations of the controller's ports (Orchestrator, MetricsSource) for the
engines' unit tests: each case states exactly what the world looks like. The real adapters are
exercised by the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from controller.ports import (
    ActionResult,
    MetricFamily,
    Reading,
    Resources,
    SourceHealth,
    WorkloadRef,
    WorkloadState,
)


@dataclass
class Cluster:
    """An orchestrator holding workload states; ``scale`` sets the replica count."""

    states: dict[WorkloadRef, WorkloadState]
    # How a scale changes a workload's state: (ref, replicas, old state) -> new state.
    make: Callable[[WorkloadRef, int, WorkloadState], WorkloadState]
    scaled: list[tuple[WorkloadRef, int]] = field(default_factory=list)
    resized: list[tuple[WorkloadRef, str, Resources, Resources]] = field(default_factory=list)
    answer: ActionResult = field(default_factory=lambda: ActionResult(ok=True))
    failing: bool = False  # listing raises, as a broken adapter might

    async def list_workloads(self) -> Sequence[WorkloadState]:
        if self.failing:
            raise ConnectionError("api server unreachable")
        return [self.states[ref] for ref in sorted(self.states)]

    async def get_workload(self, ref: WorkloadRef) -> WorkloadState | None:
        return self.states.get(ref)

    async def scale(self, ref: WorkloadRef, replicas: int, reason: str) -> ActionResult:
        self.scaled.append((ref, replicas))
        if self.answer.ok and not self.answer.dry_run:
            self.states[ref] = self.make(ref, replicas, self.states[ref])
        return self.answer

    async def resize(
        self,
        ref: WorkloadRef,
        container: str,
        requests: Resources,
        limits: Resources,
        reason: str,
    ) -> ActionResult:
        self.resized.append((ref, container, requests, limits))
        return self.answer

    async def close(self) -> None:
        pass


@dataclass
class Metrics:
    """A source answering fixed values per family; ``down`` makes it unable to answer."""

    values: dict[MetricFamily, dict[WorkloadRef, float]]
    down: bool = False
    history_points: dict[WorkloadRef, list[tuple[float, float]]] = field(default_factory=dict)
    # Per family, when families differ; else ``history_points`` answers for every family.
    family_history: dict[MetricFamily, dict[WorkloadRef, list[tuple[float, float]]]] = field(
        default_factory=dict
    )

    async def current(
        self, family: MetricFamily, workloads: Sequence[WorkloadRef], now: float
    ) -> Reading | None:
        if self.down:
            return None
        known = self.values.get(family, {})
        values = {ref: known[ref] for ref in workloads if ref in known}
        missing = tuple(ref for ref in workloads if ref not in known)
        return Reading(family, values, missing, at=now)

    async def history(
        self,
        family: MetricFamily,
        workloads: Sequence[WorkloadRef],
        start: float,
        end: float,
        step_seconds: float,
    ) -> Mapping[WorkloadRef, Sequence[tuple[float, float]]] | None:
        if self.down:
            return None
        points = self.family_history.get(family, self.history_points)
        return {ref: [p for p in points.get(ref, []) if start <= p[0] <= end] for ref in workloads}

    def health(self) -> SourceHealth:
        return SourceHealth(not self.down)

    async def close(self) -> None:
        pass
