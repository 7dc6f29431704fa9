"""The controller's ports: what engines and the reconcile loop need from the outside world.

Adapters live in ``controller/sources`` (metrics) and ``controller/orchestrators`` (actions).
Engines never see an adapter; errors come back as values (``ActionResult``), never as
exceptions across this boundary, so one failing workload never stops the loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

WorkloadKind = Literal["Deployment", "StatefulSet", "Local"]
MANAGED_LABEL = "linescale.io/managed"


@dataclass(frozen=True, slots=True, order=True)
class WorkloadRef:
    namespace: str
    name: str
    kind: WorkloadKind = "Deployment"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Resources:
    """CPU in millicores and memory in bytes; None where not set."""

    cpu_millicores: int | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ContainerState:
    name: str
    requests: Resources = Resources()
    limits: Resources = Resources()


@dataclass(frozen=True, slots=True)
class PodState:
    name: str
    ready: bool
    node: str = ""
    address: str = ""  # "host:port" where the pod serves, when known
    containers: tuple[ContainerState, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkloadState:
    ref: WorkloadRef
    desired_replicas: int
    ready_replicas: int
    pods: tuple[PodState, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    resource_version: str = ""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """The outcome of an action: done, or failed with whether and when to retry."""

    ok: bool
    detail: str = ""
    retry_after_seconds: float | None = None  # transient: try again after this delay
    permanent: bool = False  # will not succeed as asked (404, 422, forbidden)
    dry_run: bool = False


class Orchestrator(Protocol):
    """Where workloads run: Kubernetes, or local child processes for the demo and tests."""

    async def list_workloads(self) -> Sequence[WorkloadState]: ...

    async def get_workload(self, ref: WorkloadRef) -> WorkloadState | None: ...

    async def scale(self, ref: WorkloadRef, replicas: int, reason: str) -> ActionResult: ...

    async def resize(
        self,
        ref: WorkloadRef,
        container: str,
        requests: Resources,
        limits: Resources,
        reason: str,
    ) -> ActionResult: ...

    async def close(self) -> None: ...


MetricFamily = Literal[
    "cpu_cores",  # CPU used, in cores, summed over the workload's pods
    "memory_bytes",  # working set, summed
    "requests_per_second",  # request rate into the workload
    "latency_p99_seconds",  # p99 request latency
    "ready_replicas",
]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    healthy: bool
    detail: str = ""
    last_success: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One family's current value per workload. Missing or stale series are absent from
    ``values`` and listed in ``missing`` — never reported as zero."""

    family: MetricFamily
    values: Mapping[WorkloadRef, float]
    missing: tuple[WorkloadRef, ...] = ()
    at: float = 0.0


class MetricsSource(Protocol):
    """Answers the same questions from Prometheus or from a direct scrape of the agents."""

    async def current(
        self, family: MetricFamily, workloads: Sequence[WorkloadRef], now: float
    ) -> Reading | None:
        """None when the source cannot answer at all (unhealthy): callers must not act."""
        ...

    async def history(
        self,
        family: MetricFamily,
        workloads: Sequence[WorkloadRef],
        start: float,
        end: float,
        step_seconds: float,
    ) -> Mapping[WorkloadRef, Sequence[tuple[float, float]]] | None: ...

    def health(self) -> SourceHealth: ...

    async def close(self) -> None: ...
