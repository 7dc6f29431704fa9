"""Fleet findings: the agents' bottleneck findings grouped into things an operator can do.

One node says "container line/checkout-7d9f8-x2k4q/app is CPU-throttled"; three nodes saying
it about three replicas mean one thing: the workload's CPU limit is too low. Findings are
grouped by (namespace, workload, container, resource, kind), the workload read from the pod
name with the same rules the Prometheus queries use (``workload_of``), so a group is one
setting to change.

Suggestions come from the evidence:

- CFS throttling at share ``t`` of periods: the container wanted about ``1 / (1 - t)`` times
  its quota (each throttled period is a period where it ran out), so the limit to try is
  ``limit / (1 - t)`` with the worst node's ``t``, rounded up to 10 millicores. The factor is
  capped at 4x: past 75 % throttled the ratio says "much more", not how much.
- OOM kills: VPA's OOM bump (``oomBumpUpRatio`` 1.2, ``oomMinBumpUp`` 100 MiB):
  ``max(limit * 1.2, limit + 100 MiB)``, rounded up to a MiB.

A suggestion with a known current limit carries a machine-readable ``floor`` the vertical
recommendations can respect (never recommend under what was just shown to be too little).
Node-level findings (PSI, run queue, disk) name their culprits with a share; those groups get
no floor, only the share, since the node and not the container's limit is what ran out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from controller.ports import Resources
from controller.sources.workloads import workload_of
from shared.quantities import format_cpu, format_memory
from shared.wire import AgentReport, BottleneckFinding, Culprit

__all__ = [
    "CPU_STEP_MILLICORES",
    "MAX_THROTTLE_FACTOR",
    "MEMORY_STEP_BYTES",
    "OOM_BUMP_RATIO",
    "OOM_MIN_BUMP_BYTES",
    "ActionItem",
    "ContainerKey",
    "ResourceFloor",
    "aggregate_findings",
    "oom_suggestion",
    "throttling_suggestion",
]

MIB = 2**20
CPU_STEP_MILLICORES = 10
MEMORY_STEP_BYTES = MIB
MAX_THROTTLE_FACTOR = 4.0
OOM_BUMP_RATIO = 1.2  # VPA recommender --oom-bump-up-ratio
OOM_MIN_BUMP_BYTES = 100 * MIB  # VPA recommender --oom-min-bump-up-bytes
THROTTLED_SIGNAL = "cgroup.cpu.throttled_periods"
OOM_SIGNAL = "cgroup.memory.events.oom_kill"

ContainerKey = tuple[str, str, str]  # (namespace, workload, container)
Severity = Literal["warning", "critical"]


@dataclass(frozen=True, slots=True)
class ResourceFloor:
    """The least a container's resource should get: CPU in millicores, memory in bytes."""

    namespace: str
    workload: str
    container: str
    resource: Literal["cpu", "memory"]
    minimum: int


@dataclass(frozen=True, slots=True)
class ActionItem:
    """One workload container's bottleneck across the fleet, and what to do about it."""

    namespace: str
    workload: str
    container: str
    resource: str
    kind: str
    severity: Severity
    nodes: tuple[str, ...]
    rules: tuple[str, ...]
    worst_value: float | None  # the worst evidence value (throttled %, kills, share)
    suggestion: str
    floor: ResourceFloor | None = None

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    @property
    def message(self) -> str:
        where = f"{len(self.nodes)} node{'s' if len(self.nodes) != 1 else ''}"
        return f"{self.namespace}/{self.workload} {self.what} on {where}: {self.suggestion}"

    @property
    def what(self) -> str:
        if self.rules == ("cpu_throttling",):
            return "is CPU-throttled"
        if self.rules == ("oom_kill",):
            return "is OOM-killed"
        return f"holds {self.resource} {self.kind}"


def _ceil_to(value: float, step: int) -> int:
    return int(math.ceil(value / step - 1e-9) * step)


def throttling_suggestion(limit_millicores: int, throttled_share: float) -> int:
    """The CPU limit (millicores) for a container throttled in ``throttled_share`` of its
    periods: ``limit / (1 - share)``, the factor capped at 4, rounded up to 10m."""
    share = min(max(throttled_share, 0.0), 1.0)
    factor = MAX_THROTTLE_FACTOR if share >= 1 else min(MAX_THROTTLE_FACTOR, 1 / (1 - share))
    return _ceil_to(limit_millicores * factor, CPU_STEP_MILLICORES)


def oom_suggestion(limit_bytes: int) -> int:
    """VPA's OOM bump of a memory limit, rounded up to a MiB."""
    bumped = max(limit_bytes * OOM_BUMP_RATIO, limit_bytes + OOM_MIN_BUMP_BYTES)
    return _ceil_to(bumped, MEMORY_STEP_BYTES)


@dataclass
class _Group:
    severity: Severity = "warning"
    nodes: set[str] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)
    worst: float | None = None
    throttled_share: float | None = None
    ooms: float = 0.0


def _evidence(finding: BottleneckFinding, signal: str) -> float | None:
    for evidence in finding.evidence:
        if evidence.signal == signal:
            return evidence.value
    return None


def _owners(finding: BottleneckFinding) -> list[Culprit]:
    """The culprits that name a pod, one per (pod, container)."""
    seen: set[tuple[str, str, str]] = set()
    owners: list[Culprit] = []
    for culprit in finding.culprits:
        if not culprit.pod or not culprit.namespace:
            continue
        key = (culprit.namespace, culprit.pod, culprit.container)
        if key not in seen:
            seen.add(key)
            owners.append(culprit)
    return owners


def aggregate_findings(
    reports: Sequence[AgentReport],
    limits: Mapping[ContainerKey, Resources] | None = None,
    *,
    min_share: float = 0.1,
) -> list[ActionItem]:
    """Group the fresh agents' findings into action items, worst first.

    ``limits``: each container's current limits, by (namespace, workload, container), for
    absolute suggestions and floors; without one a suggestion is relative. Culprits of
    node-level findings holding less than ``min_share`` of the resource are left out.
    """
    limits = limits or {}
    groups: dict[tuple[str, str, str, str, str], _Group] = {}
    for report in reports:
        for finding in report.findings:
            throttled = _evidence(finding, THROTTLED_SIGNAL)
            kills = _evidence(finding, OOM_SIGNAL)
            for culprit in _owners(finding):
                own = finding.subject.startswith(("container/", "pod/"))
                if not own and culprit.share < min_share:
                    continue
                workload = workload_of(culprit.pod)
                key = (
                    culprit.namespace,
                    workload,
                    culprit.container,
                    finding.resource,
                    finding.kind,
                )
                group = groups.setdefault(key, _Group())
                group.nodes.add(report.node)
                group.rules.add(finding.rule)
                if finding.severity == "critical":
                    group.severity = "critical"
                value = finding.evidence[0].value if finding.evidence else None
                if not own:
                    value = culprit.share
                if value is not None and (group.worst is None or value > group.worst):
                    group.worst = value
                if throttled is not None and own:
                    share = throttled / 100.0
                    group.throttled_share = max(group.throttled_share or 0.0, share)
                if kills is not None and own:
                    group.ooms += kills
    items = [_item(key, group, limits.get(key[:3], Resources())) for key, group in groups.items()]
    return sorted(
        items,
        key=lambda i: (
            i.severity != "critical",
            -len(i.nodes),
            i.namespace,
            i.workload,
            i.container,
            i.resource,
            i.kind,
        ),
    )


def _item(key: tuple[str, str, str, str, str], group: _Group, limits: Resources) -> ActionItem:
    namespace, workload, container, resource, kind = key
    floor: ResourceFloor | None = None
    if group.throttled_share is not None:
        share = group.throttled_share
        factor = min(MAX_THROTTLE_FACTOR, 1 / (1 - share)) if share < 1 else MAX_THROTTLE_FACTOR
        if limits.cpu_millicores:
            wanted = throttling_suggestion(limits.cpu_millicores, share)
            suggestion = (
                f"raise its CPU limit from {format_cpu(limits.cpu_millicores)} to "
                f"{format_cpu(wanted)} (throttled in {100 * share:.0f} % of periods)"
            )
            floor = ResourceFloor(namespace, workload, container, "cpu", wanted)
        else:
            suggestion = (
                f"raise its CPU limit {factor:.2f}x (throttled in {100 * share:.0f} % of periods)"
            )
    elif group.ooms > 0 or "oom_kill" in group.rules:
        if limits.memory_bytes:
            wanted = oom_suggestion(limits.memory_bytes)
            suggestion = (
                f"raise its memory limit from {format_memory(limits.memory_bytes)} to "
                f"{format_memory(wanted)} ({group.ooms:.0f} OOM kills)"
            )
            floor = ResourceFloor(namespace, workload, container, "memory", wanted)
        else:
            suggestion = (
                f"raise its memory limit by {OOM_BUMP_RATIO:.1f}x, at least 100Mi "
                f"({group.ooms:.0f} OOM kills)"
            )
    else:
        held = f"{100 * group.worst:.0f} %" if group.worst is not None else "a share"
        suggestion = (
            f"it holds up to {held} of the nodes' {resource}: spread it (anti-affinity) or "
            "give it dedicated capacity"
        )
    return ActionItem(
        namespace=namespace,
        workload=workload,
        container=container,
        resource=resource,
        kind=kind,
        severity=group.severity,
        nodes=tuple(sorted(group.nodes)),
        rules=tuple(sorted(group.rules)),
        worst_value=group.worst,
        suggestion=suggestion,
        floor=floor,
    )
