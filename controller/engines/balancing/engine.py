"""The LoadBalancingEngine's reconcile step: endpoints and their health in, RoutingTables out.

Each pass (Envoy's outlier-detection interval, 10 s by default):

1. Services are the workloads annotated ``linescale.io/route-port`` (the port every agent's
   dataplane listens on for it; ``linescale.io/route-policy`` picks the balancer). Their
   endpoints are the pods with an address; a pod's zone and region are those of the agent on
   its node. A pod that is not ready is ``draining`` (no new requests, in-flight ones finish).
2. Outlier detection (``outlier.sweep``) runs on what the agents' dataplanes saw since the last
   pass: the differences of their cumulative per-endpoint counters, summed over agents.
3. For every caller zone (the zones of the fresh agents, Envoy's local cluster) the routing
   decision (``routing.compute_routing``) gives the zone shares; priority load, panic and
   slow-start weights are the same for all callers. Priority 0 is the callers' main region.
4. When a service's route differs from the one held, a new RoutingTable is published: held,
   and pushed to every fresh agent. Its version is above the held one and above any a fresh
   agent reports (after a controller restart the agents hold the predecessor's numbering,
   and the routes are published again so they take the new controller's table). Routes an
   operator set by hand for services this engine does not manage are kept.

Decisions (kind ``route``) are recorded for ejections and un-ejections and for changes of a
service's routing mode or panic state, each with its reason.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from controller.engines.balancing.outlier import (
    HostOutlierState,
    HostStats,
    OutlierEvent,
    OutlierSettings,
    sweep,
)
from controller.engines.balancing.routing import Endpoint as RoutingEndpoint
from controller.engines.balancing.routing import RoutingDecision, RoutingPolicy, compute_routing
from controller.engines.balancing.slow_start import SlowStartSettings
from controller.ports import Orchestrator, PodState, WorkloadRef, WorkloadState
from controller.reconcile import Outcome, StepContext
from shared.wire import (
    Actuation,
    AgentReport,
    Decision,
    DecisionReason,
    Endpoint,
    RoutingTable,
    ServiceRoute,
)

log = logging.getLogger(__name__)

ENGINE = "balancing"
ROUTE_PORT_ANNOTATION = "linescale.io/route-port"
ROUTE_POLICY_ANNOTATION = "linescale.io/route-policy"
POLICIES = ("p2c_peak_ewma", "round_robin", "least_request", "random")
UNKNOWN_ZONE = "unknown"
WEIGHT_SCALE = 100  # wire weights are 0..1000; a full-weight endpoint is 100


@dataclass(frozen=True, slots=True)
class BalancingSettings:
    interval_seconds: float = 10.0  # Envoy's outlier-detection interval
    outlier: OutlierSettings = field(default_factory=OutlierSettings)
    routing: RoutingPolicy = field(
        default_factory=lambda: RoutingPolicy(slow_start=SlowStartSettings(window_seconds=30.0))
    )


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A routed workload as the annotations describe it, or why it cannot be routed."""

    port: int | None
    policy: str
    error: str = ""


def service_spec(annotations: Mapping[str, str]) -> ServiceSpec | None:
    """The routing wanted by a workload's annotations; None when it asks for none."""
    raw_port = annotations.get(ROUTE_PORT_ANNOTATION)
    if raw_port is None:
        return None
    policy = annotations.get(ROUTE_POLICY_ANNOTATION, "p2c_peak_ewma")
    if policy not in POLICIES:
        return ServiceSpec(None, policy, f"{ROUTE_POLICY_ANNOTATION}: must be one of {POLICIES}")
    if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
        return ServiceSpec(None, policy, f"{ROUTE_PORT_ANNOTATION}: must be a port 1..65535")
    return ServiceSpec(int(raw_port), policy)


def endpoint_deltas(
    previous: Mapping[tuple[str, str, str], tuple[int, int]],
    reports: Sequence[AgentReport],
) -> tuple[dict[tuple[str, str], HostStats], dict[tuple[str, str, str], tuple[int, int]]]:
    """Per (service, address): requests and errors since the last pass, summed over agents,
    and the longest current error run any agent sees; plus the new cumulative counters. A
    counter that went down (an agent restarted) counts from zero."""
    totals: dict[tuple[str, str], HostStats] = {}
    current: dict[tuple[str, str, str], tuple[int, int]] = {}
    for report in reports:
        for stats in report.dataplane:
            key = (report.node, stats.service, stats.address)
            current[key] = (stats.requests, stats.errors)
            before_requests, before_errors = previous.get(key, (0, 0))
            requests = stats.requests - before_requests
            errors = stats.errors - before_errors
            if requests < 0 or errors < 0:
                requests, errors = stats.requests, stats.errors
            host = totals.get((stats.service, stats.address), HostStats(stats.address))
            totals[(stats.service, stats.address)] = HostStats(
                stats.address,
                requests=host.requests + requests,
                errors_5xx=host.errors_5xx + errors,
                consecutive_5xx=max(host.consecutive_5xx, stats.consecutive_errors),
            )
    return totals, current


@dataclass
class _ServiceMemory:
    outliers: dict[str, HostOutlierState] = field(default_factory=dict)
    healthy_since: dict[str, float] = field(default_factory=dict)
    mode: str = ""
    panic: bool = False


@dataclass
class LoadBalancingEngine:
    """One per controller; ``step`` is what the ``EngineRunner`` calls each pass."""

    orchestrator: Callable[[], Orchestrator | None]
    # The fresh agents' last reports: callers (by zone) and what their dataplanes saw.
    reports: Callable[[], Sequence[AgentReport]]
    held: Callable[[], RoutingTable | None]
    publish: Callable[[RoutingTable], Awaitable[None]]
    settings: BalancingSettings = field(default_factory=BalancingSettings)
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    _memory: dict[str, _ServiceMemory] = field(default_factory=dict)
    _counters: dict[tuple[str, str, str], tuple[int, int]] = field(default_factory=dict)
    _published: set[str] = field(default_factory=set)  # services this engine ever routed
    _sequence: int = 0

    async def step(self, context: StepContext) -> list[Outcome]:
        orchestrator = self.orchestrator()
        if orchestrator is None:
            return []
        reports = list(self.reports())
        states = await orchestrator.list_workloads()
        services = {
            state.ref: (state, spec)
            for state in states
            if (spec := service_spec(state.annotations)) is not None
        }
        for gone in set(self._memory) - {ref.name for ref in services}:
            del self._memory[gone]
        stats, self._counters = endpoint_deltas(self._counters, reports)
        zones = {report.node: (report.zone, report.region) for report in reports}
        callers = dict(Counter(report.zone for report in reports))
        home_region = _main_region(reports)
        now_wall, now = self.clock(), self.monotonic()
        outcomes: list[Outcome] = []
        routes: dict[str, ServiceRoute] = {}
        for ref in sorted(services, key=lambda r: r.name):
            state, spec = services[ref]
            if spec.port is None:
                outcomes.append(Outcome(ref, "error", f"invalid_route: {spec.error}"))
                continue
            if ref.name in routes:
                outcomes.append(Outcome(ref, "error", "invalid_route: a service of that name"))
                continue
            memory = self._memory.setdefault(ref.name, _ServiceMemory())
            route, decisions = self._route(
                ref, state, spec, memory, stats, zones, callers, home_region, now, now_wall
            )
            routes[ref.name] = route
            outcomes.append(
                Outcome(ref, "unchanged", route_summary(route), decision=decisions[0])
                if decisions
                else Outcome(ref, "unchanged", route_summary(route))
            )
            outcomes.extend(
                Outcome(ref, "unchanged", d.reason.code, decision=d) for d in decisions[1:]
            )
        agents_version = max((report.routing_version for report in reports), default=0)
        changed = await self._publish(routes, agents_version)
        return [
            Outcome(o.workload, "acted", o.reason, decision=o.decision)
            if o.workload.name in changed and o.result == "unchanged"
            else o
            for o in outcomes
        ]

    def _route(
        self,
        ref: WorkloadRef,
        state: WorkloadState,
        spec: ServiceSpec,
        memory: _ServiceMemory,
        stats: Mapping[tuple[str, str], HostStats],
        zones: Mapping[str, tuple[str, str]],
        callers: Mapping[str, int],
        home_region: str,
        now: float,
        now_wall: float,
    ) -> tuple[ServiceRoute, list[Decision]]:
        pods = [pod for pod in state.pods if pod.address]
        addresses = {pod.address for pod in pods}
        host_stats = [stats.get((ref.name, a), HostStats(a)) for a in sorted(addresses)]
        outliers = {a: s for a, s in memory.outliers.items() if a in addresses}
        memory.outliers, events = sweep(outliers, host_stats, now, self.settings.outlier)
        moved = [event for event in events if event.action in ("ejected", "unejected")]
        decisions = [self._outlier_decision(ref, event, now_wall) for event in moved]
        for address in list(memory.healthy_since):
            if address not in addresses:
                del memory.healthy_since[address]
        endpoints: list[RoutingEndpoint] = []
        for pod in pods:
            zone, region = zones.get(pod.node, (UNKNOWN_ZONE, ""))
            ejected = memory.outliers.get(pod.address, HostOutlierState(pod.address)).ejected
            healthy = pod.ready and not ejected
            if healthy:
                memory.healthy_since.setdefault(pod.address, now)
            else:
                memory.healthy_since.pop(pod.address, None)
            since = memory.healthy_since.get(pod.address)
            endpoints.append(
                RoutingEndpoint(
                    pod.address,
                    zone,
                    region,
                    priority=0 if not home_region or region == home_region else 1,
                    healthy=healthy,
                    weight=1,
                    age_seconds=None if since is None else now - since,
                )
            )
        route = self._service_route(ref.name, spec, pods, endpoints, memory, callers)
        decision = self._mode_decision(ref, route, memory, now_wall)
        if decision is not None:
            decisions.append(decision)
        return route, decisions

    def _service_route(
        self,
        name: str,
        spec: ServiceSpec,
        pods: Sequence[PodState],
        endpoints: Sequence[RoutingEndpoint],
        memory: _ServiceMemory,
        callers: Mapping[str, int],
    ) -> ServiceRoute:
        zone_shares: dict[str, dict[str, float]] = {}
        decision: RoutingDecision | None = None
        for caller in sorted(callers) or [""]:
            if not endpoints:
                break
            decision = compute_routing(endpoints, callers, caller or None, self.settings.routing)
            if caller:
                zone_shares[caller] = _normalised(decision.zone_shares)
        wire = []
        for pod, endpoint in zip(pods, endpoints, strict=True):
            ejected = memory.outliers.get(pod.address, HostOutlierState(pod.address)).ejected
            weight = decision.endpoint_weights.get(pod.address, 1.0) if decision else 1.0
            wire.append(
                Endpoint(
                    address=pod.address,
                    zone=endpoint.zone,
                    region=endpoint.region,
                    weight=max(1, min(1000, round(weight * WEIGHT_SCALE))),
                    state="ejected" if ejected else "active" if pod.ready else "draining",
                    priority=endpoint.priority,
                )
            )
        load = list(decision.priority_load) if decision else []
        return ServiceRoute(
            name=name,
            policy=spec.policy,  # type: ignore[arg-type]
            endpoints=wire,
            listen_port=spec.port,
            zone_shares=zone_shares,
            priority_load=_normalised_list(load),
            panic=decision.panic if decision else False,
        )

    async def _publish(self, routes: Mapping[str, ServiceRoute], agents_version: int) -> set[str]:
        """Publish a new table when a managed route changed; the names that changed.

        A restarted controller holds nothing while its agents still hold what its predecessor
        pushed, numbered far above 1: they would ignore its tables as stale until its own
        count caught up. So a table is numbered above the newest version any agent reports,
        and the routes are published again when the agents are ahead of the held table."""
        held = self.held()
        held_version = held.version if held else 0
        previous = {service.name: service for service in held.services} if held else {}
        changed = {name for name, route in routes.items() if previous.get(name) != route}
        if not changed and not (routes and agents_version > held_version):
            return set()
        # Hand-set routes of services this engine never managed stay; its own gone ones go.
        kept = [s for name, s in previous.items() if name not in self._published]
        kept = [s for s in kept if s.name not in routes]
        self._published |= set(routes)
        services = sorted([*kept, *routes.values()], key=lambda s: s.name)
        table = RoutingTable(
            version=max(held_version, agents_version) + 1,
            generated_at=self.clock(),
            services=services,
        )
        await self.publish(table)
        return changed

    def _outlier_decision(self, ref: WorkloadRef, event: OutlierEvent, now: float) -> Decision:
        return self._decision(
            ref,
            event.address,
            "active" if event.action == "ejected" else "ejected",
            "ejected" if event.action == "ejected" else "active",
            event.reason,
            event.message,
            now,
        )

    def _mode_decision(
        self, ref: WorkloadRef, route: ServiceRoute, memory: _ServiceMemory, now: float
    ) -> Decision | None:
        mode = route_summary(route)
        if (mode, route.panic) == (memory.mode, memory.panic):
            return None
        before = memory.mode or "none"
        memory.mode, memory.panic = mode, route.panic
        code = "panic" if route.panic else "routing_changed"
        message = f"{ref.name}: {before} -> {mode}"
        return self._decision(ref, ref.name, before, mode, code, message, now)

    def _decision(
        self,
        ref: WorkloadRef,
        what: str,
        before: str,
        after: str,
        code: str,
        message: str,
        now: float,
    ) -> Decision:
        self._sequence += 1
        return Decision(
            id=f"route-{round(now * 1000)}-{self._sequence}",
            kind="route",
            target=f"{ref}/{what}"[:300],
            from_value=before[:300],
            to_value=after[:300],
            reason=DecisionReason(code=code, message=message[:1024]),
            decided_at=now,
            decide_seconds=0.0,
            actuation=Actuation(state="done", finished_at=self.clock()),
        )


def route_summary(route: ServiceRoute) -> str:
    """A short, stable description of how a service is routed (for reasons and decisions)."""
    active = sum(1 for e in route.endpoints if e.state == "active")
    ejected = sum(1 for e in route.endpoints if e.state == "ejected")
    zones = ",".join(sorted({e.zone for e in route.endpoints if e.state == "active"}))
    panic = " panic" if route.panic else ""
    return f"{active} active, {ejected} ejected in zones [{zones}]{panic}"


def _main_region(reports: Sequence[AgentReport]) -> str:
    regions = Counter(report.region for report in reports if report.region)
    return regions.most_common(1)[0][0] if regions else ""


def _normalised(shares: Mapping[str, float]) -> dict[str, float]:
    """Shares that sum to 1 exactly enough for the wire's check (float noise removed)."""
    total = sum(shares.values())
    if total <= 0:
        return {}
    return {zone: share / total for zone, share in shares.items() if share > 0}


def _normalised_list(load: Sequence[float]) -> list[float]:
    total = sum(load)
    return [share / total for share in load] if total > 0 else []
