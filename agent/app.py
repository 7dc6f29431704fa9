"""The agent's HTTP app: probes, metrics, bottlenecks, and the routing/tuning push endpoints.

Built by ``create_app(settings, deps)``; the sampling loop, the report loop and its HTTP
session live in ``cleanup_ctx`` so they start with the app and stop, in order, when it shuts
down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from agent.cache.http_api import CACHE, CacheRuntime, add_routes
from agent.cache.invalidation import InvalidationBus
from agent.cache.l1 import L1Cache
from agent.cache.l2 import RedisL2
from agent.cache.mrc import MissRatioCurve
from agent.cache.service import CacheGauges, CacheMetrics, CacheService
from agent.dataplane import Dataplane, RoutingDataplane
from agent.dataplane_haproxy.agent_dataplane import HAProxyAgentDataplane
from agent.kube_pods import KubePodDirectory, kubernetes_pod_lister
from agent.observe.collector import Collector
from agent.observe.exposition import Observation, ObservationCollector
from agent.observe.sampler import (
    Sampler,
    SamplerMetrics,
    SampleSource,
    observation_health,
    sampling_loop,
)
from agent.profiling import (
    ProfilingError,
    http_status_for,
    parse_profile_query,
    profile_process,
)
from agent.reporter import ReportMetrics, ReportTarget, kinds_to_fetch, report_loop
from shared import metric_names
from shared.config import ConfigError, Settings, split_listen
from shared.http_api import (
    RequestGuard,
    background_task,
    handle_healthz,
    metrics_handler,
    new_registry,
)
from shared.profiling import start_profiling, stop_profiling
from shared.pushes import HeldState, PushDecision, PushKind
from shared.wire import (
    MAX_CACHE_STATS,
    MAX_FINDINGS,
    AgentReport,
    BottleneckThresholds,
    Capacity,
    RoutingTable,
    TuningSet,
    WireError,
    WireModel,
    parse,
)

log = logging.getLogger(__name__)


def host_capacity() -> Capacity:
    return Capacity(
        cpu_cores=float(psutil.cpu_count() or 1), memory_bytes=psutil.virtual_memory().total
    )


@dataclass(frozen=True)
class AgentDeps:
    """What the agent reads from the world, injectable for tests."""

    clock: Callable[[], float] = time.time
    capacity: Callable[[], Capacity] = host_capacity
    # None: the real collector over ``agent.collector.proc_root`` and ``cgroup_root``.
    sample_source: SampleSource | None = None


class PushMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pushes = Counter(
            metric_names.AGENT_PUSHES,
            "Routing and tuning pushes received, by kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.versions: dict[PushKind, Gauge] = {
            "routing": Gauge(
                metric_names.AGENT_ROUTING_VERSION,
                "Version of the routing table held.",
                registry=registry,
            ),
            "tuning": Gauge(
                metric_names.AGENT_TUNING_VERSION,
                "Version of the tuning set held.",
                registry=registry,
            ),
        }


@dataclass
class AgentContext:
    settings: Settings
    deps: AgentDeps
    registry: CollectorRegistry
    guard: RequestGuard
    metrics: PushMetrics
    exposition: ObservationCollector
    cache: CacheRuntime
    instance: str = field(default_factory=lambda: secrets.token_hex(4))
    held: HeldState = field(default_factory=HeldState)
    observation: Observation = field(default_factory=Observation)
    dataplane: RoutingDataplane | None = None

    @property
    def node_id(self) -> str:
        """This agent process among all agents on the bus (a node's agent may restart)."""
        return f"{self.settings.agent.node}/{self.instance}"

    def publish(self, observation: Observation) -> None:
        self.observation = observation
        self.exposition.publish(observation)

    async def apply_routing(self, table: RoutingTable) -> PushDecision:
        """Hold a newer routing table and route by it at once."""
        decision = self.held.offer_routing(table)
        if decision.apply and self.dataplane is not None:
            await self.dataplane.apply(table)
        return decision

    def apply_tuning(self, tuning: TuningSet) -> PushDecision:
        """Hold a newer tuning set. Interval and thresholds are read by the sampler on each
        pass; the cache is resized and the embedded dataplane's limits set here."""
        decision = self.held.offer_tuning(tuning)
        if decision.apply and self.cache.service is not None:
            self.cache.service.l1.resize(tuning.cache.capacity_bytes)
        if decision.apply and isinstance(self.dataplane, Dataplane):
            self.dataplane.tune(tuning.dataplane)
        return decision

    def collector_interval(self) -> float:
        """A pushed tuning set wins over the configured interval."""
        if self.held.tuning is not None:
            return self.held.tuning.collector_interval_seconds
        return self.settings.agent.collector.interval_seconds

    def thresholds(self) -> BottleneckThresholds:
        """Pushed thresholds win over configured ones, from the next sample on."""
        if self.held.tuning is not None and self.held.tuning.bottlenecks is not None:
            return self.held.tuning.bottlenecks
        return self.settings.agent.bottlenecks


AGENT = web.AppKey("agent", AgentContext)


def advertise_url(settings: Settings) -> str:
    """Where the controller reaches this agent: configured, else derived from ``listen``."""
    if settings.agent.advertise_url:
        return settings.agent.advertise_url
    host, port = split_listen(settings.agent.listen)
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def build_report(ctx: AgentContext, sequence: int) -> AgentReport:
    agent = ctx.settings.agent
    now = ctx.deps.clock()
    observation = ctx.observation
    health, reasons = observation_health(observation, now, ctx.collector_interval())
    return AgentReport(
        node=agent.node,
        zone=agent.zone,
        region=agent.region,
        endpoint=advertise_url(ctx.settings),
        sent_at=now,
        sequence=sequence,
        health=health,
        health_reasons=reasons,
        capacity=ctx.deps.capacity(),
        findings=observation.findings[:MAX_FINDINGS],
        **_cache_report(ctx),
        dataplane=ctx.dataplane.stats() if ctx.dataplane is not None else [],
        routing_version=ctx.held.version("routing"),
        tuning_version=ctx.held.version("tuning"),
    )


def _cache_report(ctx: AgentContext) -> dict[str, Any]:
    service = ctx.cache.service
    if service is None:
        return {}
    return {
        "cache": service.level_stats()[:MAX_CACHE_STATS],
        "cache_mrc": service.miss_ratio_curve(),
        "cache_capacity_bytes": service.l1.capacity_bytes,
    }


def _held(ctx: AgentContext, kind: PushKind) -> WireModel | None:
    return ctx.held.routing if kind == "routing" else ctx.held.tuning


def _get_handler(kind: PushKind) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle_get(request: web.Request) -> web.Response:
        held = _held(request.app[AGENT], kind)
        if held is None:
            return web.json_response({"error": f"no {kind} received yet"}, status=404)
        return web.json_response(text=held.model_dump_json())

    return handle_get


async def handle_put_routing(request: web.Request) -> web.Response:
    ctx = request.app[AGENT]
    table = await ctx.guard.authenticated_read(request, RoutingTable)
    return _push_response(ctx, "routing", table.version, await ctx.apply_routing(table))


async def handle_put_tuning(request: web.Request) -> web.Response:
    ctx = request.app[AGENT]
    tuning = await ctx.guard.authenticated_read(request, TuningSet)
    return _push_response(ctx, "tuning", tuning.version, ctx.apply_tuning(tuning))


def _push_response(
    ctx: AgentContext, kind: PushKind, version: int, decision: PushDecision
) -> web.Response:
    ctx.metrics.pushes.labels(kind, decision.reason).inc()
    if decision.apply:
        ctx.metrics.versions[kind].set(version)
        log.info("applied %s version %d", kind, version, extra={"kind": kind, "version": version})
    else:
        log.info("ignored %s push: %s", kind, decision.message, extra={"kind": kind})
    return web.json_response({"status": decision.reason, "message": decision.message})


async def handle_bottlenecks(request: web.Request) -> web.Response:
    """The open findings, with the thresholds that produced them."""
    ctx = request.app[AGENT]
    observation = ctx.observation
    return web.json_response(
        {
            "node": ctx.settings.agent.node,
            "sampled_at": observation.sample.timestamp if observation.sample else None,
            "findings": [finding.model_dump(mode="json") for finding in observation.findings],
            "thresholds": ctx.thresholds().model_dump(mode="json"),
        }
    )


async def handle_process_profile(request: web.Request) -> web.Response:
    """A CPU profile of any Python process on the node, on demand (token required: it
    attaches to another process with ptrace)."""
    ctx = request.app[AGENT]
    ctx.guard.authenticate(request)
    profiling = ctx.settings.agent.profiling
    try:
        wanted = parse_profile_query(
            request.match_info["pid"], request.query, max_seconds=profiling.max_seconds
        )
        result = await profile_process(
            wanted.pid,
            wanted.seconds,
            wanted.fmt,
            pyspy=profiling.pyspy_path or None,
            proc_root=Path(ctx.settings.agent.collector.proc_root),
            max_seconds=profiling.max_seconds,
            rate=wanted.rate,
        )
    except ProfilingError as error:
        return web.json_response({"error": str(error)}, status=http_status_for(error))
    return web.Response(
        body=result.data,
        headers={
            "Content-Type": result.content_type,
            "Content-Disposition": f'inline; filename="{result.filename}"',
        },
    )


async def handle_readyz(request: web.Request) -> web.Response:
    ctx = request.app[AGENT]
    return web.json_response(
        {
            "status": "ready",
            "routing_version": ctx.held.version("routing"),
            "tuning_version": ctx.held.version("tuning"),
        }
    )


async def catch_up(
    ctx: AgentContext, session: aiohttp.ClientSession, answer: dict[str, Any]
) -> None:
    """Fetch what the controller holds newer than we do (after a restart or an outage)."""
    held: dict[PushKind, int] = {
        "routing": ctx.held.version("routing"),
        "tuning": ctx.held.version("tuning"),
    }
    for kind in kinds_to_fetch(held, answer):
        url = f"{ctx.settings.agent.controller_url}/v1/{kind}"
        try:
            async with session.get(
                url, timeout=aiohttp.ClientTimeout(total=ctx.settings.agent.report_timeout_seconds)
            ) as response:
                if response.status != 200:
                    continue
                raw = await response.read()
            if kind == "routing":
                table = parse(RoutingTable, raw)
                decision, version = await ctx.apply_routing(table), table.version
            else:
                tuning = parse(TuningSet, raw)
                decision, version = ctx.apply_tuning(tuning), tuning.version
        except (aiohttp.ClientError, TimeoutError, WireError) as error:
            log.warning("catch-up of %s failed: %s", kind, error)
            continue
        ctx.metrics.pushes.labels(kind, f"caught_up_{decision.reason}").inc()
        if decision.apply:
            ctx.metrics.versions[kind].set(version)
            log.info("caught up %s to version %d", kind, version)


def _reporting(
    ctx: AgentContext,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def reporting(app: web.Application) -> AsyncIterator[None]:
        agent = ctx.settings.agent
        if not agent.controller_url:
            log.warning("no controller_url configured: not reporting")
            yield
            return
        metrics = ReportMetrics(ctx.registry)
        target = ReportTarget(
            url=f"{agent.controller_url}/v1/agents/{agent.node}/report",
            token=ctx.settings.require_token(),
            timeout_seconds=agent.report_timeout_seconds,
        )
        async with aiohttp.ClientSession() as session:
            loop = report_loop(
                session,
                target,
                lambda sequence: build_report(ctx, sequence),
                agent.report_interval_seconds,
                metrics,
                on_answer=lambda answer: catch_up(ctx, session, answer),
            )
            async with background_task(loop, "agent-report-loop"):
                yield

    return reporting


def default_sample_source(settings: Settings, registry: CollectorRegistry) -> SampleSource:
    """The real collector over the configured roots, with pod names when a pod list is set."""
    agent = settings.agent
    pod_directory = None
    if agent.pod_list.source != "off":
        failures = Counter(
            metric_names.AGENT_POD_LIST_FAILURES,
            "Pod list refreshes that failed (names kept from the last good list).",
            registry=registry,
        )
        pod_directory = KubePodDirectory(
            kubernetes_pod_lister(agent.pod_list.source, agent.pod_list.kubeconfig),
            agent.node,
            refresh_seconds=agent.pod_list.refresh_seconds,
            timeout_seconds=agent.pod_list.timeout_seconds,
            clock=time.monotonic,
            on_failure=failures.inc,
        )
    return Collector(
        Path(agent.collector.proc_root),
        Path(agent.collector.cgroup_root),
        time.time,
        top_k=agent.collector.top_processes,
        pod_directory=pod_directory,
    )


def _sampling(
    ctx: AgentContext,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def sampling(app: web.Application) -> AsyncIterator[None]:
        source = ctx.deps.sample_source or default_sample_source(ctx.settings, ctx.registry)
        loop = sampling_loop(
            Sampler(source, ctx.settings.agent.node),
            ctx.publish,
            ctx.collector_interval,
            ctx.thresholds,
            SamplerMetrics(ctx.registry),
        )
        async with background_task(loop, "agent-sampling-loop"):
            yield

    return sampling


def _self_profiling(
    ctx: AgentContext,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def self_profiling(app: web.Application) -> AsyncIterator[None]:
        agent = ctx.settings.agent
        if not agent.profiling.server_address:
            yield
            return
        started = start_profiling(
            "linescale-agent",
            agent.profiling.server_address,
            tags={"node": agent.node, "zone": agent.zone, "region": agent.region},
            sample_rate=agent.profiling.sample_rate,
        )
        try:
            yield
        finally:
            if started:
                await asyncio.to_thread(stop_profiling)

    return self_profiling


def _caching(
    ctx: AgentContext,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def caching(app: web.Application) -> AsyncIterator[None]:
        cache = ctx.settings.agent.cache
        if not cache.enabled:
            yield
            return
        l1 = L1Cache(
            cache.capacity_bytes,
            time.monotonic,
            default_ttl_seconds=cache.default_ttl_seconds,
            namespace_ttls=cache.namespace_ttls,
            max_ttl_seconds=cache.max_ttl_seconds,
            negative_ttl_seconds=cache.negative_ttl_seconds,
            stale_seconds=cache.stale_seconds,
        )
        l2 = None
        if cache.redis_url:
            l2 = RedisL2(
                cache.redis_url,
                socket_connect_timeout=cache.redis_timeout_seconds,
                socket_timeout=cache.redis_timeout_seconds,
                compress_above=cache.compress_above_bytes,
            )
        service = CacheService(
            l1,
            l2,
            None,
            node_id=ctx.node_id,
            metrics=CacheMetrics(ctx.registry),
            mrc=MissRatioCurve(),
            default_ttl_seconds=cache.default_ttl_seconds,
        )
        bus = None
        if cache.redis_url:
            bus = InvalidationBus(
                cache.redis_url,
                ctx.node_id,
                on_message=service.apply,
                on_reconnect=service.channel_lost,
                socket_connect_timeout=cache.redis_timeout_seconds,
                socket_timeout=cache.redis_timeout_seconds,
            )
            service.publisher = bus
            await bus.start()
        ctx.cache.service = service
        try:
            async with contextlib.AsyncExitStack() as tasks:
                await tasks.enter_async_context(
                    background_task(_expire_loop(l1), "agent-cache-expiry")
                )
                if l2 is not None:
                    await tasks.enter_async_context(
                        background_task(_l2_probe_loop(l2), "agent-cache-l2-probe")
                    )
                yield
        finally:
            ctx.cache.service = None
            if bus is not None:
                await bus.close()
            await l1.close()
            if l2 is not None:
                await l2.close()

    return caching


def _dataplane(
    ctx: AgentContext,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def dataplane(app: web.Application) -> AsyncIterator[None]:
        settings = ctx.settings.agent.dataplane
        zone = ctx.settings.agent.zone
        running: RoutingDataplane
        if settings.mode == "embedded":
            running = Dataplane(settings, zone, ctx.registry)
            if ctx.held.tuning is not None:
                running.tune(ctx.held.tuning.dataplane)
        elif settings.mode == "haproxy":
            running = HAProxyAgentDataplane(settings, zone, ctx.registry)
        else:
            yield
            return
        await running.apply(ctx.held.routing)
        await running.start()
        ctx.dataplane = running
        try:
            yield
        finally:
            ctx.dataplane = None
            await running.close()

    return dataplane


async def _l2_probe_loop(l2: RedisL2, idle_seconds: float = 1.0) -> None:
    """Probe a down Redis on the backoff's schedule without waiting for traffic: otherwise a
    quiet node would report L2 down (and LinescaleCacheL2Down keep firing) until its next
    cache call."""
    while True:
        await asyncio.sleep(max(l2.retry_in, idle_seconds))
        await l2.probe()


async def _expire_loop(l1: L1Cache, interval_seconds: float = 1.0) -> None:
    """Reclaim expired entries that nobody reads again, a bounded batch at a time."""
    while True:
        await asyncio.sleep(interval_seconds)
        l1.expire()


def create_app(settings: Settings, deps: AgentDeps | None = None) -> web.Application:
    """The agent app; refuses to build without node, zone and a usable token."""
    if not settings.agent.node or not settings.agent.zone:
        raise ConfigError("agent.node and agent.zone are required (--node, --zone)")
    registry = new_registry("agent")
    guard = RequestGuard(settings.require_token(), settings.agent.max_body_bytes, registry)
    ctx = AgentContext(
        settings=settings,
        deps=deps or AgentDeps(),
        registry=registry,
        guard=guard,
        metrics=PushMetrics(registry),
        exposition=ObservationCollector(Observation()),
        cache=CacheRuntime(settings.agent.cache, guard),
    )
    registry.register(ctx.exposition)
    registry.register(CacheGauges(lambda: ctx.cache.service))
    app = web.Application(client_max_size=settings.agent.max_body_bytes)
    app[AGENT] = ctx
    app[CACHE] = ctx.cache
    add_routes(app)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    app.router.add_get("/metrics", metrics_handler(registry))
    app.router.add_get("/v1/bottlenecks", handle_bottlenecks)
    app.router.add_get("/v1/processes/{pid}/profile", handle_process_profile)
    app.router.add_get("/v1/routing", _get_handler("routing"))
    app.router.add_put("/v1/routing", handle_put_routing)
    app.router.add_get("/v1/tuning", _get_handler("tuning"))
    app.router.add_put("/v1/tuning", handle_put_tuning)
    app.cleanup_ctx.append(_self_profiling(ctx))
    app.cleanup_ctx.append(_caching(ctx))
    app.cleanup_ctx.append(_dataplane(ctx))
    app.cleanup_ctx.append(_sampling(ctx))
    app.cleanup_ctx.append(_reporting(ctx))
    return app
