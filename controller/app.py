"""The controller's HTTP app: agent reports in, routing and tuning out, status for operators.

Read-only endpoints (``GET``) need no token; everything that changes state does. A reconcile
loop re-pushes the current routing table and tuning set to any fresh agent that holds an
older version (an agent that restarted, or missed a push while unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from kubernetes import client
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.admin_api import admin_routes
from controller.cache_api import cache_routes
from controller.controls import WorkloadControls
from controller.decision_log import DecisionLog
from controller.engine_metrics import register_engine_metrics
from controller.engines.balancing.engine import ENGINE as BALANCING
from controller.engines.balancing.engine import BalancingSettings, LoadBalancingEngine
from controller.engines.caching import CachingEngine, CachingSettings
from controller.engines.performance.engine import ENGINE as PERFORMANCE
from controller.engines.performance.engine import PerformanceEngine, PerformanceSettings
from controller.engines.resources.live import ENGINE as RESOURCES
from controller.engines.resources.live import (
    ResourceEngine,
    ResourceLoopSettings,
    register_efficiency,
)
from controller.engines.scaling.engine import ENGINE as SCALABILITY
from controller.engines.scaling.engine import ScalabilityEngine, ScalabilitySettings
from controller.engines.scaling.policy_sources import PolicyFileError, load_policy_file
from controller.engines.scaling.vertical_engine import ENGINE as VERTICAL
from controller.engines.scaling.vertical_engine import VerticalEngine, VerticalSettings
from controller.openapi import openapi_document
from controller.orchestrators.kubernetes import KubernetesOrchestrator
from controller.orchestrators.leader import LeaseElector
from controller.orchestrators.local import LocalOrchestrator
from controller.ports import MetricsSource, Orchestrator, WorkloadRef
from controller.pusher import PushResult, PushTarget, push_all
from controller.reconcile import (
    EngineRunner,
    Outcome,
    ReconcileMetrics,
    Reconciler,
    Step,
    StepContext,
)
from controller.registry import AgentRecord, AgentRegistry, agents_to_push, is_stale
from controller.sources.prometheus import PrometheusSource
from controller.sources.scrape import ScrapeSource
from shared import __version__, metric_names
from shared.config import ConfigError, Settings
from shared.http_api import (
    RequestGuard,
    background_task,
    check_bearer,
    handle_healthz,
    json_error,
    metrics_handler,
    new_registry,
)
from shared.pushes import HeldState, PushDecision, PushKind
from shared.wire import AgentReport, Decision, RoutingTable, TuningSet

log = logging.getLogger(__name__)

PUSH_KINDS: tuple[PushKind, ...] = ("routing", "tuning")


@dataclass(frozen=True)
class ControllerDeps:
    clock: Callable[[], float] = time.time
    # None: built from settings at start-up (ScrapeSource or PrometheusSource; the local or
    # Kubernetes orchestrator). Tests inject their own.
    source: MetricsSource | None = None
    orchestrator: Orchestrator | None = None


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reports = Counter(
            metric_names.CONTROLLER_REPORTS,
            "Agent reports received, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("accepted", "refused"):
            self.reports.labels(outcome)
        self.pushes = Counter(
            metric_names.CONTROLLER_PUSHES,
            "Pushes to agents, by kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        for kind in PUSH_KINDS:
            for outcome in ("applied", "stale", "failed"):
                self.pushes.labels(kind, outcome)
        self.reconcile = ReconcileMetrics(registry)


class AgentsCollector(Collector):
    """``linescale_controller_agents{state}``, computed at scrape time from the registry."""

    def __init__(self, ctx: ControllerContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterable[GaugeMetricFamily]:
        now = self._ctx.deps.clock()
        stale_after = self._ctx.settings.controller.agent_stale_after_seconds
        family = GaugeMetricFamily(
            metric_names.CONTROLLER_AGENTS, "Known agents by state.", labels=["state"]
        )
        counts = {"fresh": 0, "stale": 0}
        for record in self._ctx.agents.records():
            counts["stale" if is_stale(record.last_seen, now, stale_after) else "fresh"] += 1
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family


@dataclass
class ControllerContext:
    settings: Settings
    deps: ControllerDeps
    registry: CollectorRegistry
    guard: RequestGuard
    metrics: ControllerMetrics
    token: str
    agents: AgentRegistry
    decisions: DecisionLog
    held: HeldState = field(default_factory=HeldState)
    started_at: float = 0.0
    session: aiohttp.ClientSession | None = None
    source: MetricsSource | None = None
    orchestrator: Orchestrator | None = None
    # Per-workload policies and pauses set through the admin API (engines read them).
    controls: WorkloadControls = field(default_factory=WorkloadControls)
    elector: LeaseElector | None = None
    scalability: ScalabilityEngine = field(init=False)  # built once the context exists
    performance: PerformanceEngine = field(init=False)
    resources: ResourceEngine = field(init=False)

    def is_leader(self) -> bool:
        """Whether this replica may act: always, unless leader election is running."""
        return self.elector is None or self.elector.is_leader

    def fresh_reports(self) -> list[AgentReport]:
        """The last report of every agent heard from recently."""
        now = self.deps.clock()
        stale_after = self.settings.controller.agent_stale_after_seconds
        records = self.agents.records()
        return [r.report for r in records if not is_stale(r.last_seen, now, stale_after)]

    def agent_endpoints(self) -> list[str]:
        """Fresh agents' base URLs: the embedded metrics source scrapes these."""
        now = self.deps.clock()
        stale_after = self.settings.controller.agent_stale_after_seconds
        return [
            r.report.endpoint for r in self.agents.records()
            if not is_stale(r.last_seen, now, stale_after)
        ]  # fmt: skip

    def status(self, record: AgentRecord) -> dict[str, object]:
        return record.status(self.deps.clock(), self.settings.controller.agent_stale_after_seconds)

    async def push(self, kind: PushKind, records: list[AgentRecord]) -> list[PushResult]:
        """Push the held ``kind`` to ``records``; remember which agents now hold it."""
        message = self.held.routing if kind == "routing" else self.held.tuning
        if message is None or not records or self.session is None:
            return []
        targets = [PushTarget(r.report.node, r.report.endpoint) for r in records]
        results = await push_all(
            self.session,
            targets,
            kind,
            message,
            self.token,
            self.settings.controller.push_timeout_seconds,
        )
        for result in results:
            self.metrics.pushes.labels(kind, result.outcome).inc()
            if result.outcome != "failed":
                self.agents.note_version(result.node, kind, message.version)
        return results


CONTROLLER = web.AppKey("controller", ControllerContext)


async def handle_report(request: web.Request) -> web.Response:
    ctx = request.app[CONTROLLER]
    report = await ctx.guard.authenticated_read(request, AgentReport)
    node = request.match_info["node"]
    if report.node != node:
        ctx.metrics.reports.labels("refused").inc()
        raise json_error(400, f"node: report is for {report.node!r} but was posted to {node!r}")
    outcome = ctx.agents.record(report, ctx.deps.clock())
    if outcome == "full":
        ctx.metrics.reports.labels("refused").inc()
        raise json_error(429, f"agent limit {ctx.settings.controller.max_agents} reached")
    ctx.metrics.reports.labels("accepted").inc()
    if outcome == "new":
        log.info(
            "agent %s joined (zone %s)",
            node,
            report.zone,
            extra={"node": node, "zone": report.zone},
        )
    return web.json_response(
        {
            "status": "accepted",
            "routing_version": ctx.held.version("routing"),
            "tuning_version": ctx.held.version("tuning"),
        }
    )


async def handle_agents(request: web.Request) -> web.Response:
    ctx = request.app[CONTROLLER]
    return web.json_response(
        {
            "agents": [
                {**ctx.status(record), "report": record.report.model_dump(mode="json")}
                for record in ctx.agents.records()
            ]
        }
    )


async def handle_status(request: web.Request) -> web.Response:
    ctx = request.app[CONTROLLER]
    now = ctx.deps.clock()
    agents = [ctx.status(record) for record in ctx.agents.records()]
    return web.json_response(
        {
            "controller": {
                "version": __version__,
                "uptime_seconds": round(now - ctx.started_at, 3),
                "routing_version": ctx.held.version("routing"),
                "tuning_version": ctx.held.version("tuning"),
                "dry_run": ctx.settings.controller.dry_run,
            },
            "source": _source_status(ctx),
            "orchestrator": type(ctx.orchestrator).__name__ if ctx.orchestrator else None,
            "leader": ctx.is_leader(),
            "summary": {
                "agents": len(agents),
                "stale": sum(1 for agent in agents if agent["stale"]),
                "healthy": sum(
                    1 for agent in agents if not agent["stale"] and agent["health"] == "ok"
                ),
            },
            "agents": agents,
        }
    )


def _source_status(ctx: ControllerContext) -> dict[str, object] | None:
    if ctx.source is None:
        return None
    health = ctx.source.health()
    return {
        "kind": type(ctx.source).__name__,
        "healthy": health.healthy,
        "detail": health.detail,
        "last_success": health.last_success,
    }


def _get_held(kind: PushKind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle_get(request: web.Request) -> web.Response:
        held = request.app[CONTROLLER].held
        message = held.routing if kind == "routing" else held.tuning
        if message is None:
            return web.json_response({"error": f"no {kind} set yet"}, status=404)
        return web.json_response(text=message.model_dump_json())

    return handle_get


async def push_to_fresh(ctx: ControllerContext, kind: PushKind) -> list[PushResult]:
    """Push the held ``kind`` (just changed) to every fresh agent."""
    now = ctx.deps.clock()
    stale_after = ctx.settings.controller.agent_stale_after_seconds
    fresh = [r for r in ctx.agents.records() if not is_stale(r.last_seen, now, stale_after)]
    results = await ctx.push(kind, fresh)
    log.info(
        "%s set to version %d, pushed to %d agents",
        kind,
        ctx.held.version(kind),
        len(results),
        extra={"kind": kind, "version": ctx.held.version(kind)},
    )
    return results


async def _fan_out(ctx: ControllerContext, kind: PushKind, decision: PushDecision) -> web.Response:
    if not decision.apply:
        return web.json_response({"status": "stale", "message": decision.message, "agents": []})
    results = await push_to_fresh(ctx, kind)
    return web.json_response(
        {
            "status": "applied",
            "message": decision.message,
            "agents": [result.as_dict() for result in results],
        }
    )


async def handle_put_routing(request: web.Request) -> web.Response:
    ctx = request.app[CONTROLLER]
    table = await ctx.guard.authenticated_read(request, RoutingTable)
    return await _fan_out(ctx, "routing", ctx.held.offer_routing(table))


async def handle_put_tuning(request: web.Request) -> web.Response:
    ctx = request.app[CONTROLLER]
    tuning = await ctx.guard.authenticated_read(request, TuningSet)
    return await _fan_out(ctx, "tuning", ctx.held.offer_tuning(tuning))


async def reconcile_once(ctx: ControllerContext) -> None:
    """Forget long-silent agents, then bring every fresh agent up to the held versions."""
    settings = ctx.settings.controller
    now = ctx.deps.clock()
    for node in ctx.agents.prune(now, settings.agent_forget_after_seconds):
        log.info("forgot agent %s after long silence", node, extra={"node": node})
    for kind in PUSH_KINDS:
        lagging = agents_to_push(
            ctx.agents.records(),
            kind,
            ctx.held.version(kind),
            now,
            settings.agent_stale_after_seconds,
        )
        await ctx.push(kind, lagging)


async def push_step(ctx: ControllerContext, context: StepContext) -> list[Outcome]:
    """The push channel's reconcile step: it acts on agents, not workloads, so it reports no
    per-workload outcomes; its passes, duration and failures show under ``engine="push"``."""
    await reconcile_once(ctx)
    return []


def build_reconciler(ctx: ControllerContext) -> Reconciler:
    """Every periodic job of the controller on the one reconcile mechanism. The push channel
    runs on every replica (it only hands out state already decided); engines run on the
    leader only and record their decisions."""
    settings = ctx.settings.controller
    push = EngineRunner(
        "push",
        settings.reconcile_interval_seconds,
        functools.partial(push_step, ctx),
        ctx.metrics.reconcile,
        clock=ctx.deps.clock,
    )
    engines: list[tuple[str, float, Step]] = [
        (SCALABILITY, settings.scaling_interval_seconds, ctx.scalability.step),
        (BALANCING, settings.balancing_interval_seconds, build_balancing(ctx).step),
        (RESOURCES, settings.resource_interval_seconds, ctx.resources.step),
        (PERFORMANCE, settings.performance_interval_seconds, ctx.performance.step),
        (VERTICAL, settings.vertical_interval_seconds, build_vertical(ctx).step),
    ]
    return Reconciler(
        [
            push,
            *(
                EngineRunner(
                    name,
                    interval,
                    step,
                    ctx.metrics.reconcile,
                    clock=ctx.deps.clock,
                    decision_log=ctx.decisions,
                    may_act=ctx.is_leader,
                )
                for name, interval, step in engines
            ),
        ]
    )


def build_balancing(ctx: ControllerContext) -> LoadBalancingEngine:
    """Routing over the orchestrator's endpoints and the fresh agents' dataplane reports;
    each new table is held and pushed to every fresh agent."""

    async def publish(table: RoutingTable) -> None:
        if ctx.held.offer_routing(table).apply:
            await push_to_fresh(ctx, "routing")

    return LoadBalancingEngine(
        orchestrator=lambda: ctx.orchestrator,
        reports=ctx.fresh_reports,
        held=lambda: ctx.held.routing,
        publish=publish,
        settings=BalancingSettings(
            interval_seconds=ctx.settings.controller.balancing_interval_seconds
        ),
        clock=ctx.deps.clock,
    )


def build_performance(ctx: ControllerContext) -> PerformanceEngine:
    """Fleet analysis and automatic tuning; each TuningSet it settles on is held and pushed
    to every fresh agent, like one set through ``PUT /v1/tuning``."""

    async def publish(tuning: TuningSet) -> None:
        if ctx.held.offer_tuning(tuning).apply:
            await push_to_fresh(ctx, "tuning")

    return PerformanceEngine(
        reports=ctx.fresh_reports,
        held=lambda: ctx.held.tuning,
        publish=publish,
        settings=PerformanceSettings(
            interval_seconds=ctx.settings.controller.performance_interval_seconds
        ),
        clock=ctx.deps.clock,
    )


def build_vertical(ctx: ControllerContext) -> VerticalEngine:
    """Vertical scaling beside the ScalabilityEngine, which it asks about recent scaling so
    the two never move the same way at once."""
    interval = ctx.settings.controller.vertical_interval_seconds
    return VerticalEngine(
        orchestrator=lambda: ctx.orchestrator,
        source=lambda: ctx.source,
        resolve=ctx.scalability.resolve,
        paused=lambda ref: ref in ctx.controls.paused,
        horizontal_direction=lambda ref: ctx.scalability.recent_direction(ref, interval),
        settings=VerticalSettings(interval_seconds=interval),
        clock=ctx.deps.clock,
    )


def build_scalability(ctx: ControllerContext) -> ScalabilityEngine:
    """The ScalabilityEngine over this controller's platform, controls and decision log;
    an unusable policy file is a configuration error (exit 2 naming it)."""
    settings = ctx.settings.controller
    file_policies = {}
    if settings.policies_path:
        try:
            file_policies = load_policy_file(Path(settings.policies_path))
        except PolicyFileError as error:
            raise ConfigError(f"controller.policies_path: {error}") from None

    def past_decisions(ref: WorkloadRef, since: float) -> list[Decision]:
        return ctx.decisions.query(kind="scale", target=str(ref), since=since, limit=100)[0]

    return ScalabilityEngine(
        orchestrator=lambda: ctx.orchestrator,
        source=lambda: ctx.source,
        api_policies=lambda: ctx.controls.policies,
        paused=lambda ref: ref in ctx.controls.paused,
        file_policies=file_policies,
        past_decisions=past_decisions,
        settings=ScalabilitySettings(interval_seconds=settings.scaling_interval_seconds),
        clock=ctx.deps.clock,
    )


def _background(
    ctx: ControllerContext,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def background(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as session:
            ctx.session = session
            try:
                async with build_reconciler(ctx):
                    yield
            finally:
                ctx.session = None

    return background


def build_source(ctx: ControllerContext) -> MetricsSource:
    """Prometheus when a URL is configured, else a direct scrape of the agents."""
    url = ctx.settings.controller.prometheus_url
    if url:
        return PrometheusSource(url)
    return ScrapeSource(ctx.agent_endpoints)


def build_orchestrator(ctx: ControllerContext) -> Orchestrator:
    controller = ctx.settings.controller
    if controller.orchestrator == "kubernetes":
        options: dict[str, Any] = {
            "namespaces": tuple(controller.namespaces),
            "dry_run": controller.dry_run,
        }
        if controller.kubeconfig:
            return KubernetesOrchestrator.from_kubeconfig(controller.kubeconfig, **options)
        return KubernetesOrchestrator.in_cluster(**options)
    return LocalOrchestrator(dry_run=controller.dry_run)


def build_elector(ctx: ControllerContext) -> LeaseElector | None:
    """Leader election among controller replicas, with the Kubernetes orchestrator only."""
    controller = ctx.settings.controller
    if not controller.leader_election or not isinstance(ctx.orchestrator, KubernetesOrchestrator):
        return None
    duration = controller.lease_duration_seconds
    return LeaseElector(
        client.CoordinationV1Api(ctx.orchestrator.api_client),
        controller.lease_namespace,
        controller.lease_name,
        identity=f"{socket.gethostname()}-{secrets.token_hex(3)}",
        lease_duration_seconds=duration,
        renew_deadline_seconds=duration * 2 / 3,
        retry_period_seconds=duration / 5,
    )


def _platform(
    ctx: ControllerContext,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def platform(app: web.Application) -> AsyncIterator[None]:
        ctx.source = ctx.deps.source or build_source(ctx)
        ctx.orchestrator = ctx.deps.orchestrator or build_orchestrator(ctx)
        if isinstance(ctx.source, ScrapeSource):
            await ctx.source.start()
        watch = _watch_prometheus(ctx.source, ctx.settings.controller.reconcile_interval_seconds)
        ctx.elector = build_elector(ctx)
        try:
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(background_task(watch, "controller-source-watch"))
                if ctx.elector is not None:
                    await stack.enter_async_context(
                        background_task(ctx.elector.run(), "controller-leader-election")
                    )
                yield
        finally:
            if ctx.elector is not None:
                await ctx.elector.release()  # a successor takes over at once, not at expiry
            await ctx.source.close()
            await ctx.orchestrator.close()

    return platform


async def _watch_prometheus(source: MetricsSource, interval_seconds: float) -> None:
    """Keep Prometheus' health current even while no engine queries it, so /v1/status and the
    source-healthy metric show an outage (and the recovery) when it happens."""
    if not isinstance(source, PrometheusSource):
        return
    while True:
        await source.probe()
        await asyncio.sleep(interval_seconds)


class RoutingCollector(Collector):
    """The held routing table as gauges: each caller zone's share per upstream zone, and the
    endpoints per state, so dashboards and alerts see what every agent is told."""

    def __init__(self, ctx: ControllerContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterable[GaugeMetricFamily]:
        shares = GaugeMetricFamily(
            metric_names.ROUTING_ZONE_SHARE,
            "Fraction of a caller zone's traffic sent to each upstream zone (priority 0).",
            labels=["service", "caller_zone", "upstream_zone"],
        )
        endpoints = GaugeMetricFamily(
            metric_names.ROUTING_ENDPOINTS,
            "Endpoints in the held routing table, by service and state.",
            labels=["service", "state"],
        )
        table = self._ctx.held.routing
        for service in table.services if table is not None else ():
            for caller, upstream in service.zone_shares.items():
                for zone, share in upstream.items():
                    shares.add_metric([service.name, caller, zone], share)
            for state in ("active", "draining", "ejected"):
                count = sum(1 for e in service.endpoints if e.state == state)
                endpoints.add_metric([service.name, state], count)
        yield shares
        yield endpoints


class SourceHealthCollector(Collector):
    """``linescale_controller_source_healthy``: 0 while the metrics source cannot answer, so
    an alert can fire before anyone wonders why nothing scales; and
    ``linescale_controller_leader``, so an alert can fire when no replica leads."""

    def __init__(self, ctx: ControllerContext) -> None:
        self._ctx = ctx

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            metric_names.CONTROLLER_SOURCE_HEALTHY,
            "1 when the metrics source answers, 0 when it does not.",
            labels=["source"],
        )
        source = self._ctx.source
        if source is not None:
            family.add_metric([type(source).__name__], 1.0 if source.health().healthy else 0.0)
        yield family
        yield GaugeMetricFamily(
            metric_names.CONTROLLER_LEADER,
            "1 on the controller replica that may act (holds the Lease, or runs alone).",
            value=1.0 if self._ctx.is_leader() else 0.0,
        )


def read_guard(read_token: str, admin_token: str) -> Middleware:
    """Middleware: with a read token configured, reads under /v1/ need a token too."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if read_token and request.method == "GET" and request.path.startswith("/v1/"):
            header = request.headers.get("Authorization")
            if "ok" not in (check_bearer(header, read_token), check_bearer(header, admin_token)):
                status = 401 if check_bearer(header, read_token) == "missing" else 403
                return web.json_response({"error": "read token required"}, status=status)
        return await handler(request)

    return guard


def _openapi_handler(document: dict[str, object]) -> Handler:
    async def handle_openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    return handle_openapi


def create_app(settings: Settings, deps: ControllerDeps | None = None) -> web.Application:
    """The controller app; refuses to build without a usable token."""
    registry = new_registry("controller")
    token = settings.require_token()
    ctx = ControllerContext(
        settings=settings,
        deps=deps or ControllerDeps(),
        registry=registry,
        guard=RequestGuard(token, settings.controller.max_body_bytes, registry),
        metrics=ControllerMetrics(registry),
        token=token,
        agents=AgentRegistry(settings.controller.max_agents),
        controls=WorkloadControls(
            Path(settings.controller.controls_path) if settings.controller.controls_path else None
        ),
        decisions=DecisionLog(
            Path(settings.controller.decision_log_path)
            if settings.controller.decision_log_path
            else None,
            clock=(deps or ControllerDeps()).clock,
        ),
    )
    ctx.started_at = ctx.deps.clock()
    ctx.scalability = build_scalability(ctx)
    ctx.performance = build_performance(ctx)
    ctx.resources = ResourceEngine(
        orchestrator=lambda: ctx.orchestrator,
        source=lambda: ctx.source,
        reports=ctx.fresh_reports,
        settings=ResourceLoopSettings(
            interval_seconds=settings.controller.resource_interval_seconds,
            node_price_per_hour=settings.controller.node_price_per_hour,
        ),
        clock=ctx.deps.clock,
    )
    register_efficiency(registry, ctx.resources)
    registry.register(SourceHealthCollector(ctx))
    registry.register(AgentsCollector(ctx))
    registry.register(RoutingCollector(ctx))
    register_engine_metrics(registry, ctx.scalability)
    app = web.Application(
        client_max_size=settings.controller.max_body_bytes,
        middlewares=[read_guard(settings.controller.read_token.get_secret_value(), token)],
    )
    app[CONTROLLER] = ctx
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_healthz)
    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/openapi.json", _openapi_handler(openapi_document()))
    app.router.add_post("/v1/agents/{node}/report", handle_report)
    app.router.add_get("/v1/agents", handle_agents)
    app.router.add_get("/v1/status", handle_status)
    app.router.add_get("/v1/routing", _get_held("routing"))
    app.router.add_put("/v1/routing", handle_put_routing)
    app.router.add_get("/v1/tuning", _get_held("tuning"))
    app.router.add_put("/v1/tuning", handle_put_tuning)
    app.router.add_routes(
        cache_routes(
            CachingEngine(
                CachingSettings(stale_after_seconds=settings.controller.agent_stale_after_seconds)
            ),
            CONTROLLER,
        )
    )
    app.router.add_routes(admin_routes(CONTROLLER))
    app.cleanup_ctx.append(_platform(ctx))
    app.cleanup_ctx.append(_background(ctx))
    return app
