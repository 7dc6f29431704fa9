"""Vertical scaling in the controller loop: VPA-equivalent recommendations, applied safely.

Runs as its own engine (``vertical``) at the VPA recommender's pace (1 min by default). Each
pass feeds every vertically managed container's usage history from the metrics source, asks
``vertical.recommend`` for its VPA recommendation and, by the policy's ``vertical.mode``:

- ``Recommend``: records the recommendation (actuation ``skipped``) when it moves by 10 % or
  more from the last one recorded, so ``/v1/decisions`` shows it without noise;
- ``InPlace``: resizes through the orchestrator (``pods/resize``) when VPA's updater would
  update the pods (request outside [lower, upper], or a 10 % change on pods older than 12 h);
- ``Recreate``: the same, only while the disruption budget (VPA's eviction tolerance, at least
  two replicas) allows a pod to be replaced.

Never fights the horizontal engine: a resource an HPA Utilization target reads is only
recommended, and nothing is resized in the direction the horizontal engine scaled in the last
interval (``vertical.withheld_resources``). Limits keep their ratio to requests, as VPA does.

Readings are per workload; a container's share of the per-pod usage is its share of the pod's
requests (even shares when none is set). Pod ages are not in our pod states, so a pod's age is
taken as the time since this controller first saw its workload: never older than it is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.engines.scaling.engine import Direction
from controller.engines.scaling.policy_sources import ResolvedPolicy
from controller.engines.scaling.vertical import (
    ContainerRecommendation,
    ContainerUsageHistory,
    HorizontalMetric,
    recommend,
    recreate_budget,
    resize_direction,
    should_update,
    withheld_resources,
)
from controller.ports import (
    ActionResult,
    ContainerState,
    MetricsSource,
    Orchestrator,
    Reading,
    Resources,
    WorkloadRef,
    WorkloadState,
)
from controller.reconcile import Outcome, StepContext, reconcile_each
from shared.quantities import format_cpu, format_memory, parse_cpu_millicores, parse_memory_bytes
from shared.scaling_policy import ResourceBounds, ScalingPolicy
from shared.wire import Actuation, Decision, DecisionReason

ENGINE = "vertical"
RECOMMENDATION_CHANGE = 0.10  # record a Recommend-mode recommendation again past this change


@dataclass(frozen=True, slots=True)
class VerticalSettings:
    interval_seconds: float = 60.0  # the VPA recommender's loop
    error_retry_seconds: float = 60.0


@dataclass
class _Memory:
    first_seen: float
    histories: dict[str, ContainerUsageHistory] = field(default_factory=dict)
    recorded: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)


def _bounds(bounds: ResourceBounds | None) -> Resources | None:
    if bounds is None:
        return None
    return Resources(
        cpu_millicores=None if bounds.cpu is None else parse_cpu_millicores(bounds.cpu),
        memory_bytes=None if bounds.memory is None else parse_memory_bytes(bounds.memory),
    )


def container_shares(containers: Sequence[ContainerState], resource: str) -> dict[str, float]:
    """Each container's share of its pod's usage of ``resource``: its share of the requests,
    or an even share when the pod requests none."""
    requests = {
        c.name: (c.requests.cpu_millicores if resource == "cpu" else c.requests.memory_bytes) or 0
        for c in containers
    }
    total = sum(requests.values())
    if total <= 0:
        return {name: 1 / len(containers) for name in requests} if containers else {}
    return {name: amount / total for name, amount in requests.items()}


def scaled_limit(limit: int | None, old_request: int | None, new_request: int) -> int | None:
    """The limit that keeps its ratio to the request (VPA's proportional limits)."""
    if limit is None or not old_request:
        return None
    return math.ceil(limit * new_request / old_request)


def hpa_metrics(policy: ScalingPolicy) -> list[HorizontalMetric]:
    return [
        HorizontalMetric(
            spec.metric_name,
            spec.target.type,
            getattr(spec.source, "container", None) or None,
        )
        for spec in policy.metrics
    ]


def _describe(container: str, cpu: int | None, memory: int | None) -> str:
    parts = []
    if cpu is not None:
        parts.append(f"cpu {format_cpu(cpu)}")
    if memory is not None:
        parts.append(f"memory {format_memory(memory)}")
    return f"{container}: " + ", ".join(parts)


def _requests(container: ContainerState) -> str:
    requests = container.requests
    return _describe(container.name, requests.cpu_millicores, requests.memory_bytes)


@dataclass
class VerticalEngine:
    """One instance per controller; ``step`` is what the ``EngineRunner`` calls."""

    orchestrator: Callable[[], Orchestrator | None]
    source: Callable[[], MetricsSource | None]
    resolve: Callable[[WorkloadState], ResolvedPolicy]
    paused: Callable[[WorkloadRef], bool]
    # The direction the horizontal engine scaled a workload in its last interval.
    horizontal_direction: Callable[[WorkloadRef], Direction] = lambda ref: "none"
    settings: VerticalSettings = field(default_factory=VerticalSettings)
    clock: Callable[[], float] = time.time
    _memory: dict[WorkloadRef, _Memory] = field(default_factory=dict)
    _sequence: int = 0

    async def step(self, context: StepContext) -> list[Outcome]:
        orchestrator, source = self.orchestrator(), self.source()
        if orchestrator is None or source is None:
            return []
        states = {state.ref: state for state in await orchestrator.list_workloads()}
        for gone in set(self._memory) - set(states):
            del self._memory[gone]
        managed: dict[WorkloadRef, ScalingPolicy] = {}
        for ref, state in states.items():
            policy = self.resolve(state).policy
            if policy is not None and policy.vertical.mode != "Off" and state.pods:
                managed[ref] = policy
        refs = sorted(managed)
        cpu = await source.current("cpu_cores", refs, context.now) if refs else None
        memory = await source.current("memory_bytes", refs, context.now) if refs else None

        async def handle(ref: WorkloadRef) -> Outcome:
            return await self._reconcile(
                orchestrator, states[ref], managed[ref], cpu, memory, context.now
            )

        return await reconcile_each(
            refs, handle, context, error_retry_seconds=self.settings.error_retry_seconds
        )

    def _feed(
        self,
        memory: _Memory,
        state: WorkloadState,
        containers: Sequence[ContainerState],
        cpu: Reading | None,
        usage: Reading | None,
        now: float,
    ) -> bool:
        """Add this pass's per-container samples; False when the source had none."""
        at = datetime.fromtimestamp(now, UTC)
        pods = len(state.pods)
        fed = False
        for reading, resource in ((cpu, "cpu"), (usage, "memory")):
            total = None if reading is None else reading.values.get(state.ref)
            if total is None:
                continue
            fed = True
            for name, share in container_shares(containers, resource).items():
                history = memory.histories.setdefault(name, ContainerUsageHistory())
                per_container = total / pods * share
                if resource == "cpu":
                    history.add_cpu_sample(at, per_container)
                else:
                    history.add_memory_sample(at, round(per_container))
        return fed

    async def _reconcile(
        self,
        orchestrator: Orchestrator,
        state: WorkloadState,
        policy: ScalingPolicy,
        cpu: Reading | None,
        usage: Reading | None,
        now: float,
    ) -> Outcome:
        ref = state.ref
        if self.paused(ref):
            return Outcome(ref, "skipped", "paused")
        memory = self._memory.setdefault(ref, _Memory(first_seen=now))
        spec = policy.vertical
        pod_containers = state.pods[0].containers
        containers = [
            c for c in pod_containers if spec.containers is None or c.name in spec.containers
        ]
        if not containers:
            return Outcome(ref, "skipped", "no_vertical_containers")
        if not self._feed(memory, state, pod_containers, cpu, usage, now):
            return Outcome(ref, "skipped", "metrics_unavailable")
        at = datetime.fromtimestamp(now, UTC)
        recommendations = {
            c.name: recommend(
                memory.histories[c.name],
                container=c.name,
                now=at,
                containers_in_pod=len(pod_containers),
                min_allowed=_bounds(spec.min_allowed),
                max_allowed=_bounds(spec.max_allowed),
                controlled_resources=tuple(spec.controlled_resources),
            )
            for c in containers
            if c.name in memory.histories
        }
        defined = {name: r for name, r in recommendations.items() if r.defined}
        if not defined:
            return Outcome(ref, "skipped", "no_recommendation_yet")
        if spec.mode == "Recommend":
            return self._recommend_only(ref, containers, defined, memory, now)
        update = should_update(
            containers=containers,
            recommendations=defined,
            pod_started_at=datetime.fromtimestamp(memory.first_seen, UTC),
            now=at,
        )
        if not update.update:
            return Outcome(ref, "unchanged", update.reason)
        if spec.mode == "Recreate":
            budget = recreate_budget(replicas=state.desired_replicas, ready=state.ready_replicas)
            if budget.allowed == 0:
                return Outcome(ref, "skipped", budget.reason)
        return await self._resize(orchestrator, state, policy, containers, defined, now)

    def _recommend_only(
        self,
        ref: WorkloadRef,
        containers: Sequence[ContainerState],
        recommendations: Mapping[str, ContainerRecommendation],
        memory: _Memory,
        now: float,
    ) -> Outcome:
        changed = []
        for container in containers:
            rec = recommendations.get(container.name)
            if rec is None:
                continue
            targets = (
                rec.cpu.target if rec.cpu else None,
                rec.memory.target if rec.memory else None,
            )
            if _moved(memory.recorded.get(container.name), targets):
                memory.recorded[container.name] = targets
                changed.append((container, targets))
        if not changed:
            return Outcome(ref, "unchanged", "recommendation_unchanged")
        decision = self._decision(
            ref,
            "; ".join(_requests(c) for c, _ in changed),
            "; ".join(_describe(c.name, *targets) for c, targets in changed),
            "vertical_recommendation",
            "recommend-only mode: VPA target (P90 + 15 %) recorded, nothing resized",
            now,
            Actuation(state="skipped", finished_at=self.clock()),
        )  # fmt: skip
        return Outcome(ref, "unchanged", "vertical_recommendation", decision=decision)

    async def _resize(
        self,
        orchestrator: Orchestrator,
        state: WorkloadState,
        policy: ScalingPolicy,
        containers: Sequence[ContainerState],
        recommendations: Mapping[str, ContainerRecommendation],
        now: float,
    ) -> Outcome:
        ref = state.ref
        before, after, withheld, results = [], [], [], []
        for container in containers:
            rec = recommendations.get(container.name)
            if rec is None:
                continue
            current = container.requests
            directions = {
                "cpu": resize_direction(current.cpu_millicores, rec.cpu.target)
                if rec.cpu else "none",
                "memory": resize_direction(current.memory_bytes, rec.memory.target)
                if rec.memory else "none",
            }  # fmt: skip
            verdict = withheld_resources(
                hpa_metrics=hpa_metrics(policy),
                resize_directions=directions,  # type: ignore[arg-type]
                horizontal_direction=self.horizontal_direction(ref),
                container=container.name,
            )
            withheld += [f"{container.name} {w.resource}: {w.reason}" for w in verdict.withheld]
            cpu = rec.cpu.target if rec.cpu and "cpu" in verdict.actuate else None
            memory = rec.memory.target if rec.memory and "memory" in verdict.actuate else None
            if cpu is None and memory is None:
                continue
            requests = Resources(cpu_millicores=cpu, memory_bytes=memory)
            limits = Resources(
                cpu_millicores=None
                if cpu is None
                else scaled_limit(container.limits.cpu_millicores, current.cpu_millicores, cpu),
                memory_bytes=None
                if memory is None
                else scaled_limit(container.limits.memory_bytes, current.memory_bytes, memory),
            )
            message = f"VPA target for {container.name}: " + _describe(container.name, cpu, memory)
            result: ActionResult = await orchestrator.resize(
                ref, container.name, requests, limits, message
            )
            before.append(_requests(container))
            after.append(_describe(container.name, cpu, memory))
            results.append(result)
        if not after:
            return Outcome(ref, "unchanged", "withheld: " + "; ".join(withheld))
        failed = next((result for result in results if not result.ok), None)
        dry_run = any(result.dry_run for result in results)
        message = "resized to the VPA target (P90 + 15 %)"
        if withheld:
            message += "; withheld: " + "; ".join(withheld)
        decision = self._decision(
            ref,
            "; ".join(before),
            "; ".join(after),
            f"vertical_{policy.vertical.mode.lower()}",
            message,
            now,
            Actuation(
                state="failed" if failed else "skipped" if dry_run else "done",
                finished_at=self.clock(),
                error=failed.detail[:1024] if failed else "",
            ),
        )
        if failed is not None:
            retry = None
            if not failed.permanent:
                retry = failed.retry_after_seconds or self.settings.error_retry_seconds
            reason = f"resize failed: {failed.detail}"
            return Outcome(ref, "error", reason, retry_after_seconds=retry, decision=decision)
        return Outcome(ref, "acted", "resized", decision=decision)

    def _decision(
        self,
        ref: WorkloadRef,
        before: str,
        after: str,
        code: str,
        message: str,
        now: float,
        actuation: Actuation,
    ) -> Decision:
        self._sequence += 1
        return Decision(
            id=f"resize-{round(now * 1000)}-{self._sequence}",
            kind="resize",
            target=str(ref),
            from_value=before[:300],
            to_value=after[:300],
            reason=DecisionReason(code=code, message=message[:1024]),
            decided_at=now,
            decide_seconds=0.0,
            actuation=actuation,
        )


def _moved(
    previous: tuple[int | None, int | None] | None, targets: tuple[int | None, int | None]
) -> bool:
    if previous is None:
        return True
    for old, new in zip(previous, targets, strict=True):
        if (old is None) != (new is None):
            return True
        if old and new and abs(new - old) / old >= RECOMMENDATION_CHANGE:
            return True
    return False
