"""One demo run: the processes, the controller in this process, the load, the faults, the view.

- Three agents (zones a, b, c; nodes ``line-node-a/b/c``) run as child processes. Their
  dataplanes listen on 127.0.0.1 / .2 / .3 (Linux's loopback is a /8), so all three serve the
  line service on the same route port, as agents on three nodes would.
- The controller runs here (``create_app`` on an aiohttp runner, loopback, a free port) with a
  ``LocalOrchestrator`` that runs the line service's replicas, spread over the three nodes.
- Metrics: the controller's own ScrapeSource scrapes only the agents, and nothing the agents
  export for local processes carries the ``namespace``/``pod`` labels a workload is read by
  (the dataplane's counters are per service and endpoint; container CPU comes from kubelet
  cgroups). So the demo gives the controller a ScrapeSource (the same class) whose targets are
  the agents *and* the replicas, which export ``http_requests_total`` and the latency histogram
  per pod. With ``--prometheus URL`` the controller reads that Prometheus instead (scraping
  every ``PROMETHEUS_SCRAPE_SECONDS``), which must scrape the agents and the replicas itself:
  their addresses are in ``<report>/prometheus-targets.json`` (file_sd, rewritten whenever
  the replicas change, left in place after the run), and the demo prints the scrape_config
  an operator adds.
- The load generator runs in its own process (``loadgen.LoadProcess``): on this loop it would
  time the controller's stalls as the service's latency. ``health`` watches this loop (lag,
  where it blocks, CPU) and the summary's ``harness`` section says how healthy it was.
- Cache: a part's TTL is the freshness bound of part master data, ``PART_TTL_SIMULATED_SECONDS``
  = 10 minutes of the story's time, so it is divided by the speed like every other duration of
  the story (40 s of wall time at 15x): the cache then sees as many lookups per TTL as the
  line would. Not scaling it would let one entry live for hours of simulated production.
- Every child is stopped on the way out (SIGTERM, then SIGKILL), and the kernel tells them to
  stop if this process dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.live import Live

from controller.app import CONTROLLER, ControllerDeps, create_app
from controller.demo.health import (
    BlockSampler,
    LoopWatch,
    engine_passes,
    harness_summary,
)
from controller.demo.loadgen import LatencyHistogram, LoadProcess, LoadProcessError, Recorder
from controller.demo.report import ReplicaSample
from controller.demo.scenarios import FaultEvent, Timeline
from controller.demo.view import (
    Snapshot,
    clock_of,
    decision_line,
    endpoint_rows,
    finding_line,
    plain_line,
    render,
)
from controller.orchestrators.local import LocalOrchestrator, LocalWorkloadSpec
from controller.ports import WorkloadRef
from controller.processes import die_with_parent_preexec, free_port
from controller.sources.prometheus import PrometheusSource
from controller.sources.scrape import ScrapeSource
from shared.config import load_settings
from shared.logs import configure_logging

ZONES = ("a", "b", "c")
NAMESPACE = "local"
SERVICE = "line-service"
LINE = WorkloadRef(NAMESPACE, SERVICE, "Local")
PER_REPLICA_RPS = 30  # the scaling policy's target per replica
# A replica in trouble answers this much later and fails this share of its answers with 503.
# Outlier detection is error-based (Envoy's): a replica that is only slow is steered around by
# peak-EWMA but never ejected, and one slower than the request timeout fails its callers (a
# try may last the whole request timeout, so there is no time left to retry elsewhere).
SLOW_MS = 400
SLOW_FAIL_RATIO = 0.5
REQUEST_TIMEOUT_MS = 2000
FINDING_LINE_EVERY_SECONDS = 30.0
PLAIN_EVERY_SECONDS = 5.0
PART_TTL_SIMULATED_SECONDS = 600.0
PROMETHEUS_SCRAPE_SECONDS = 1.0

log = logging.getLogger(__name__)


class DemoError(RuntimeError):
    """The demo cannot go on; the message says why (and shows a dead child's log tail)."""


def node_of(zone: str) -> str:
    return f"line-node-{zone}"


def dataplane_host(zone: str) -> str:
    return f"127.0.0.{ZONES.index(zone) + 1}"


def log_tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    expected_exit: bool = False


@dataclass
class Fleet:
    """The demo's own child processes (agents, noisy neighbours), and how to stop them."""

    workdir: Path
    token: str
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], env: Mapping[str, str], url: str = "") -> Child:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "LINESCALE_TOKEN": self.token},
                preexec_fn=die_with_parent_preexec(),
            )
        child = Child(name, process, log_path, url)
        self.children.append(child)
        return child

    def dead(self) -> list[Child]:
        return [
            child
            for child in self.children
            if not child.expected_exit and child.process.poll() is not None
        ]

    def stop_child(self, child: Child, timeout_seconds: float = 5.0) -> None:
        child.expected_exit = True
        if child.process.poll() is None:
            child.process.terminate()
            try:
                child.process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()

    def stop(self, timeout_seconds: float = 8.0) -> list[str]:
        """SIGTERM everyone, wait, SIGKILL what is left; returns names that needed SIGKILL."""
        for child in self.children:
            child.expected_exit = True
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + timeout_seconds
        killed = []
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
                killed.append(child.name)
        return killed


@dataclass(frozen=True)
class DemoOptions:
    duration: float
    timeline: Timeline
    story: str
    live: bool
    prometheus_url: str = ""
    redis_url: str = ""
    workdir: Path = Path(".")
    targets_path: Path | None = None  # file_sd targets for --prometheus (in the report folder)


def scaling_policy() -> dict[str, Any]:
    """HPA spec of the line service: requests per second per replica.

    Not p99 latency: the HPA averages a Pods metric over pods, so one sick replica's latency
    scales out a fleet that more replicas cannot help (the slow-replica story flapped 3..8,
    12 actions, with it); a sick replica is outlier ejection's and peak-EWMA's to handle."""
    return {
        "minReplicas": 3,
        "maxReplicas": 8,
        "metrics": [
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": "requests_per_second"},
                    "target": {"type": "AverageValue", "averageValue": str(PER_REPLICA_RPS)},
                },
            },
        ],
        # Compressed time: the demo's minutes stand for hours, so the windows are short.
        "behavior": {
            "scaleUp": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 5}],
            },
            "scaleDown": {
                "stabilizationWindowSeconds": 8,
                "policies": [{"type": "Pods", "value": 2, "periodSeconds": 5}],
            },
        },
    }


def part_ttl_seconds(speed: float) -> float:
    """Wall seconds a part stays cached: part master data's TTL in the story's time."""
    return PART_TTL_SIMULATED_SECONDS / speed


def line_service_spec(
    controller_url: str, route_port: int, token: str, initial_replicas: int, ttl_seconds: float
) -> LocalWorkloadSpec:
    return LocalWorkloadSpec(
        SERVICE,
        namespace=NAMESPACE,
        command=[
            sys.executable,
            "-m",
            "controller.demo.line_service",
            "--port",
            "{port}",
            "--namespace",
            NAMESPACE,
            "--name",
            SERVICE,
            "--controller",
            controller_url,
            "--ttl",
            f"{ttl_seconds:.3f}",
        ],
        env={"LINESCALE_TOKEN": token},
        readiness_path="/healthz",
        drain_seconds=1.0,
        stop_timeout_seconds=3.0,
        ready_timeout_seconds=20.0,
        annotations={
            "linescale.io/route-port": str(route_port),
            "linescale.io/scaling-policy": json.dumps(scaling_policy()),
        },
        nodes=tuple(node_of(zone) for zone in ZONES),
    )


def controller_overrides(token: str, prometheus_url: str) -> dict[str, Any]:
    return {
        "token": token,
        "log_format": "json",
        "controller": {
            "prometheus_url": prometheus_url,
            "agent_stale_after_seconds": 5.0,
            "reconcile_interval_seconds": 1.0,
            "scaling_interval_seconds": 1.0,
            "balancing_interval_seconds": 2.0,
            "performance_interval_seconds": 5.0,
            "resource_interval_seconds": 30.0,
            "vertical_interval_seconds": 60.0,
        },
    }


def tuning_set(version: int, part_ttl: float) -> dict[str, Any]:
    return {
        "version": version,
        "generated_at": time.time(),
        "cache": {
            "capacity_bytes": 64 * 2**20,
            "default_ttl_seconds": part_ttl,
            "max_ttl_seconds": max(300.0, part_ttl),  # a longer TTL would be refused
        },
        "dataplane": {
            "connect_timeout_ms": 250,
            "request_timeout_ms": REQUEST_TIMEOUT_MS,
            "retry_budget_percent": 20.0,
            "max_concurrency": 512,
        },
        "collector_interval_seconds": 1.0,
    }


# --- checks at start ---------------------------------------------------------------------------


async def check_prometheus(url: str) -> None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
            session.get(f"{url}/api/v1/query", params={"query": "1"}) as response,
        ):
            if response.status != 200:
                raise DemoError(f"--prometheus {url}: HTTP {response.status} to a test query")
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise DemoError(
            f"--prometheus {url} is unreachable: {error or type(error).__name__}"
        ) from None


async def check_redis(url: str) -> None:
    """A PING over a plain TCP connection (redis:// only; other schemes are left to the agent)."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        return
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 3)
        try:
            if parts.password:
                user = parts.username or "default"
                writer.write(f"AUTH {user} {parts.password}\r\n".encode())
                await asyncio.wait_for(reader.readline(), 3)
            writer.write(b"PING\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.readline(), 3)
        finally:
            writer.close()
    except (OSError, TimeoutError) as error:
        raise DemoError(f"--redis {url} is unreachable: {error or type(error).__name__}") from None
    if not answer.startswith(b"+PONG"):
        raise DemoError(f"--redis {url}: PING answered {answer[:80]!r}")


async def preflight(prometheus_url: str, redis_url: str) -> None:
    """Refuse to start when a server named on the command line does not answer."""
    if prometheus_url:
        await check_prometheus(prometheus_url)
    if redis_url:
        await check_redis(redis_url)


# --- what the controller sees -------------------------------------------------------------------


class Observer:
    """Polls the controller (and the orchestrator) once a second; keeps what the view and the
    summary need, bounded: one replica sample a poll, each decision once."""

    def __init__(
        self, session: aiohttp.ClientSession, controller_url: str, local: LocalOrchestrator
    ) -> None:
        self.session = session
        self.url = controller_url
        self.local = local
        self.replicas: list[ReplicaSample] = []
        self.decisions: dict[str, dict[str, Any]] = {}
        self.fresh: list[dict[str, Any]] = []  # new since the view last took them
        self.agents: list[dict[str, Any]] = []
        self.routing: dict[str, Any] | None = None
        self.pods: list[dict[str, Any]] = []
        self.desired = 0
        self.local_ejections = 0
        self._ejected: set[tuple[str, str]] = set()
        self._findings: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._told: dict[tuple[str, str, str], float] = {}
        self.finding_lines: list[str] = []

    async def _get(self, path: str, **params: str) -> Any:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with self.session.get(f"{self.url}{path}", params=params) as response:
                if response.status == 200:
                    return await response.json()
        return None

    async def poll(self, wall: float) -> None:
        state = await self.local.get_workload(LINE)
        if state is not None:
            self.desired = state.desired_replicas
            self.pods = [
                {"name": p.name, "node": p.node, "address": p.address, "ready": p.ready}
                for p in state.pods
            ]
            self.replicas.append(
                ReplicaSample(wall, state.desired_replicas, state.ready_replicas, len(state.pods))
            )
        agents = await self._get("/v1/agents")
        if agents is not None:
            self.agents = agents["agents"]
            self._count_local_ejections()
            self._note_findings(wall)
        routing = await self._get("/v1/routing")
        if routing is not None:
            self.routing = routing
        await self.poll_decisions()

    async def poll_decisions(self) -> None:
        since = max((float(d["decided_at"]) for d in self.decisions.values()), default=0.0)
        answer = await self._get("/v1/decisions", limit="1000", since=f"{max(0.0, since - 5)}")
        for decision in reversed((answer or {}).get("decisions", [])):
            if decision["id"] not in self.decisions:
                self.decisions[decision["id"]] = decision
                self.fresh.append(decision)

    def _note_findings(self, wall: float) -> None:
        """A feed line when an agent starts reporting a bottleneck; a finding that flaps
        (opens, clears, opens) is told again only after ``FINDING_LINE_EVERY_SECONDS``."""
        current = {
            (agent["node"], finding["rule"], finding["subject"]): finding
            for agent in self.agents
            for finding in agent["report"].get("findings", [])
        }
        for key in sorted(current.keys() - self._findings.keys()):
            if wall - self._told.get(key, -math.inf) >= FINDING_LINE_EVERY_SECONDS:
                self._told[key] = wall
                self.finding_lines.append(finding_line(key[0], current[key], wall, opened=True))
        self._findings = current

    def take_fresh(self) -> list[dict[str, Any]]:
        fresh, self.fresh = self.fresh, []
        return fresh

    def _count_local_ejections(self) -> None:
        now_ejected = {
            (agent["node"], stats["address"])
            for agent in self.agents
            for stats in agent["report"].get("dataplane", [])
            if stats.get("locally_ejected")
        }
        self.local_ejections += len(now_ejected - self._ejected)
        self._ejected = now_ejected

    def zones(self) -> dict[str, str]:
        return {node_of(zone): zone for zone in ZONES}

    def _route(self) -> dict[str, Any]:
        """The line service's route in the held routing table (GET /v1/routing)."""
        for service in (self.routing or {}).get("services", []):
            if service.get("name") == SERVICE:
                route: dict[str, Any] = service
                return route
        return {}

    def endpoint_states(self) -> dict[str, str]:
        return {e["address"]: e["state"] for e in self._route().get("endpoints", [])}

    def zone_shares(self) -> dict[str, dict[str, float]]:
        shares: dict[str, dict[str, float]] = self._route().get("zone_shares", {})
        return shares

    def bottlenecks(self) -> tuple[str, ...]:
        found = []
        for agent in self.agents:
            for finding in agent["report"].get("findings", []):
                found.append(
                    f"{agent['node']}: {finding['resource']} {finding['kind']} "
                    f"({finding['severity']}): {finding['message']}"[:160]
                )
        return tuple(found)

    def ejection_count(self) -> int:
        return sum(
            1
            for d in self.decisions.values()
            if d.get("kind") == "route" and d.get("to_value") == "ejected"
        )

    def last_scale(self) -> dict[str, Any] | None:
        scales = [d for d in self.decisions.values() if d.get("kind") == "scale"]
        return max(scales, key=lambda d: float(d["decided_at"]), default=None)


# --- faults ---------------------------------------------------------------------------------------


class Faults:
    """Starts and ends the timeline's faults; each start and end is a line in the feed."""

    def __init__(self, fleet: Fleet, observer: Observer, session: aiohttp.ClientSession) -> None:
        self.fleet = fleet
        self.observer = observer
        self.session = session
        self.started: dict[FaultEvent, Any] = {}
        self.ended: set[FaultEvent] = set()
        self.slow_pods: list[str] = []
        self.events: list[str] = []

    def active(self) -> tuple[str, ...]:
        return tuple(
            f"{fault.kind.replace('_', ' ')} on {fault.target}"
            for fault in self.started
            if fault not in self.ended
        )

    async def step(self, timeline: Timeline, wall: float) -> list[str]:
        lines = []
        for fault in timeline.faults:
            if fault not in self.started and fault.active(wall):
                self.started[fault] = await self._start(fault)
                lines.append(f"[{wall:6.1f}s] demo        fault starts: {self._describe(fault)}")
            elif fault in self.started and fault not in self.ended and wall >= fault.end_wall:
                described = self._describe(fault)
                await self._end(fault, self.started[fault])
                self.ended.add(fault)
                lines.append(f"[{wall:6.1f}s] demo        fault ends: {described}")
        self.events += lines
        return lines

    async def end_all(self) -> None:
        for fault, handle in list(self.started.items()):
            if fault not in self.ended:
                with contextlib.suppress(Exception):
                    await self._end(fault, handle)
                self.ended.add(fault)

    def _describe(self, fault: FaultEvent) -> str:
        if fault.kind == "slow_replica":
            pods = ", ".join(self.slow_pods) or "no replica"
            return (
                f"replica {pods} on {fault.target} in trouble (+{SLOW_MS} ms per request, "
                f"{SLOW_FAIL_RATIO:.0%} answered 503)"
            )
        return f"CPU burner (noisy neighbour) attributed to {fault.target}"

    async def _slow(self, address: str, ms: int, fail: float) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.session.post(
                f"http://{address}/_demo/slow",
                params={"ms": str(ms), "fail": str(fail)},
                headers={"Authorization": f"Bearer {self.fleet.token}"},
            ):
                pass

    async def _start(self, fault: FaultEvent) -> Any:
        if fault.kind == "slow_replica":
            pod = next((p for p in self.observer.pods if p["node"] == fault.target), None)
            if pod is None:
                return None
            self.slow_pods = [pod["name"]]
            await self._slow(pod["address"], SLOW_MS, SLOW_FAIL_RATIO)
            return pod["address"]
        burners = [
            self.fleet.spawn(
                f"noisy-neighbour-{index}",
                [sys.executable, "-c", "while True: pass"],
                {},
            )
            for index in range(os.cpu_count() or 2)
        ]
        return burners

    async def _end(self, fault: FaultEvent, handle: Any) -> None:
        if fault.kind == "slow_replica":
            if isinstance(handle, str):
                await self._slow(handle, 0, 0.0)
            self.slow_pods = []
            return
        for child in handle or []:
            await asyncio.to_thread(self.fleet.stop_child, child)


# --- the run -----------------------------------------------------------------------------------


@dataclass
class RunResult:
    timeline: Timeline
    recorder: Recorder
    replicas: list[ReplicaSample]
    decisions: list[dict[str, Any]]
    wall_seconds: float = 0.0
    started_epoch: float = 0.0
    local_ejections: int = 0
    interrupted: bool = False
    error: str = ""
    harness: dict[str, Any] = field(default_factory=dict)


def snapshot_of(
    timeline: Timeline,
    recorder: Recorder,
    loadgen: LoadProcess | None,
    observer: Observer,
    faults: Faults,
    wall: float,
    feed: list[str],
    redis: bool,
) -> Snapshot:
    window = 5.0
    recent = [b for b in recorder.since(max(0.0, wall - window - 1)) if b.start < wall - 1] or (
        recorder.since(max(0.0, wall - 1))
    )
    seconds = max(1.0, len(recent) * recorder.bucket_seconds)
    latency = LatencyHistogram.merged(b.latency for b in recent)
    cache: Counter[str] = Counter()
    pods: Counter[str] = Counter()
    for bucket in recent:
        cache.update(bucket.cache)
        pods.update(bucket.pods)
    lookups = sum(cache.values())
    every_cache: Counter[str] = Counter()
    for bucket in recorder.buckets.values():
        every_cache.update(bucket.cache)
    ahead = max(timeline.rate_at(wall + step) for step in range(0, 31, 5))
    last = observer.last_scale()
    engine_view = ""
    if last is not None:
        engine_view = f"engine: {last['to_value']} ({last['reason']['code']}); "
    forecast = (
        f"{engine_view}load ahead {ahead:.0f}/s needs ~"
        f"{max(1, math.ceil(ahead / PER_REPLICA_RPS))} at {PER_REPLICA_RPS}/s each"
    )
    ready = sum(1 for pod in observer.pods if pod["ready"])
    return Snapshot(
        scenario=timeline.scenario,
        wall=wall,
        duration=timeline.wall_seconds,
        speed=timeline.speed,
        sim_clock=clock_of(timeline.sim_at(wall)),
        offered_rps=timeline.rate_at(wall),
        served_rps=sum(b.ok for b in recent) / seconds,
        failed_rps=sum(b.failed for b in recent) / seconds,
        in_flight=loadgen.in_flight if loadgen is not None else 0,
        p50_ms=latency.quantile(0.5),
        p99_ms=latency.quantile(0.99),
        desired=observer.desired,
        ready=ready,
        running=len(observer.pods),
        forecast=forecast,
        endpoints=endpoint_rows(
            observer.pods, observer.endpoint_states(), observer.zones(), pods, faults.slow_pods
        ),
        zone_shares=observer.zone_shares(),
        ejections=observer.ejection_count(),
        local_ejections=observer.local_ejections,
        hit_ratio=(cache["L1"] + cache["L2"]) / lookups if lookups else None,
        l1_hits=every_cache["L1"],
        l2_hits=every_cache["L2"],
        redis=redis,
        bottlenecks=observer.bottlenecks(),
        faults=faults.active(),
        decisions=tuple(feed[-20:]),
    )


async def _wait(
    what: str, check: Callable[[], Any], within: float, stop: asyncio.Event, fleet: Fleet
) -> bool:
    """Until ``check()`` is truthy; False when stopped; DemoError on timeout or a dead child."""
    deadline = time.monotonic() + within
    while not stop.is_set():
        if dead := fleet.dead():
            raise DemoError(f"{dead[0].name} exited early:\n{log_tail(dead[0].log_path)}")
        if await check():
            return True
        if time.monotonic() > deadline:
            raise DemoError(f"{what}: not within {within:.0f}s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
    return False


async def _status_ok(session: aiohttp.ClientSession, url: str) -> bool:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
        async with session.get(url) as response:
            return response.status == 200
    return False


def scrape_targets(agents: list[str], replicas: list[str]) -> list[dict[str, Any]]:
    """file_sd target groups for a Prometheus given with --prometheus."""
    return [
        {"targets": agents, "labels": {"job": "linescale-agents"}},
        {"targets": replicas, "labels": {"job": SERVICE}},
    ]


def write_targets(path: Path, groups: list[dict[str, Any]]) -> None:
    """Whole or not at all: Prometheus re-reads the file as soon as it changes."""
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(json.dumps(groups, indent=2) + "\n")
    partial.replace(path)


def scrape_config(targets_path: Path) -> str:
    """What an operator adds to their Prometheus's ``scrape_configs`` for --prometheus."""
    return (
        "scrape_configs:\n"
        "  - job_name: linescale-demo\n"
        f"    scrape_interval: {PROMETHEUS_SCRAPE_SECONDS:g}s\n"
        f"    scrape_timeout: {PROMETHEUS_SCRAPE_SECONDS:g}s\n"
        "    file_sd_configs:\n"
        f"      - files: [{json.dumps(str(targets_path))}]\n"
        "        refresh_interval: 5s"
    )


class TargetsFile:
    """Keeps the file_sd targets file in step with the ready replicas."""

    def __init__(self, path: Path, agents: list[str], local: LocalOrchestrator) -> None:
        self.path, self.agents, self.local = path, agents, local
        self.written: list[dict[str, Any]] | None = None

    def refresh(self) -> None:
        groups = scrape_targets(self.agents, self.local.ready_endpoints(LINE))
        if groups != self.written:
            write_targets(self.path, groups)
            self.written = groups


def new_result(timeline: Timeline) -> RunResult:
    """An empty result; ``run_demo`` fills it as it goes, so a failed run still has a summary."""
    recorder = Recorder(bucket_seconds=max(1.0, math.ceil(timeline.wall_seconds / 3600)))
    return RunResult(timeline, recorder, [], [])


async def run_demo(
    options: DemoOptions, fleet: Fleet, console: Console, result: RunResult
) -> RunResult:
    """The whole run; fills ``result``, also when stopped early (Ctrl-C) or failing."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    controller_log: IO[str] = (options.workdir / "controller.log").open("w")
    configure_logging("info", "json", controller_log)
    local = LocalOrchestrator(probe_interval_seconds=0.25, log_dir=options.workdir / "replicas")
    controller_port = free_port()
    controller_url = f"http://127.0.0.1:{controller_port}"
    agent_ports = {zone: free_port() for zone in ZONES}
    agent_urls = [f"http://127.0.0.1:{port}" for port in agent_ports.values()]
    source: ScrapeSource | PrometheusSource
    settings = load_settings(
        environ={}, overrides=controller_overrides(fleet.token, options.prometheus_url)
    )
    app: web.Application
    if options.prometheus_url:
        source = PrometheusSource(
            options.prometheus_url, scrape_interval_seconds=PROMETHEUS_SCRAPE_SECONDS
        )
    else:

        def targets() -> list[str]:
            return [*app[CONTROLLER].agent_endpoints(), *local.ready_endpoints(LINE)]

        source = ScrapeSource(targets, interval_seconds=1.0)
    app = create_app(settings, ControllerDeps(source=source, orchestrator=local))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    timeout = aiohttp.ClientTimeout(total=2)
    try:
        site = web.TCPSite(runner, "127.0.0.1", controller_port)
        await site.start()
        for zone, port in agent_ports.items():
            args = [
                sys.executable,
                "-m",
                "agent",
                "--listen",
                f"127.0.0.1:{port}",
                "--node",
                node_of(zone),
                "--zone",
                zone,
                "--region",
                "demo",
                "--controller",
                controller_url,
            ]
            if options.redis_url:
                args += ["--redis", options.redis_url]
            fleet.spawn(
                f"agent-{zone}",
                args,
                {
                    "LINESCALE_AGENT__REPORT_INTERVAL_SECONDS": "1",
                    "LINESCALE_AGENT__COLLECTOR__INTERVAL_SECONDS": "1",
                    "LINESCALE_AGENT__DATAPLANE__LISTEN_HOST": dataplane_host(zone),
                    "LINESCALE_LOG_FORMAT": "json",
                },
                url=f"http://127.0.0.1:{port}",
            )
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await _run_with_controller(
                options, fleet, console, session, local, controller_url, agent_urls, stop, result
            )
    finally:
        await runner.cleanup()  # stops the replicas (the orchestrator closes with the app)
        controller_log.close()


async def _run_with_controller(
    options: DemoOptions,
    fleet: Fleet,
    console: Console,
    session: aiohttp.ClientSession,
    local: LocalOrchestrator,
    controller_url: str,
    agent_urls: list[str],
    stop: asyncio.Event,
    result: RunResult,
) -> RunResult:
    timeline, recorder = options.timeline, result.recorder
    say = console.print if options.live else print

    async def agents_registered() -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with session.get(f"{controller_url}/v1/status") as response:
                return response.status == 200 and len((await response.json())["agents"]) == 3
        return False

    say(f"linescale demo: {timeline.scenario}: starting 3 agents and the controller ...")
    if not await _wait("three agents registered", agents_registered, 30, stop, fleet):
        result.interrupted = True
        return result
    part_ttl = part_ttl_seconds(timeline.speed)
    async with session.put(
        f"{controller_url}/v1/tuning",
        json=tuning_set(1, part_ttl),
        headers={"Authorization": f"Bearer {fleet.token}"},
    ) as response:
        if response.status != 200:
            raise DemoError(f"PUT /v1/tuning: HTTP {response.status}: {await response.text()}")
    route_port = free_port()
    initial = int(scaling_policy()["minReplicas"])
    registered = await local.register(
        line_service_spec(controller_url, route_port, fleet.token, initial, part_ttl), initial
    )
    if not registered.ok:
        raise DemoError(f"the line service did not start: {registered.detail}")
    entrypoints = [f"http://{dataplane_host(zone)}:{route_port}" for zone in ZONES]

    async def routed() -> bool:
        answers = [await _status_ok(session, f"{url}/healthz") for url in entrypoints]
        return all(answers)

    say(f"linescale demo: line service up ({initial} replicas); waiting for the routing table ...")
    if not await _wait("the agents' dataplanes route the line service", routed, 30, stop, fleet):
        result.interrupted = True
        return result
    targets_file: TargetsFile | None = None
    if options.prometheus_url and options.targets_path is not None:
        agent_hosts = [url.removeprefix("http://") for url in agent_urls]
        targets_file = TargetsFile(options.targets_path, agent_hosts, local)
        targets_file.refresh()
        say(
            f"linescale demo: {options.prometheus_url} must scrape the agents and the replicas "
            f"listed in {options.targets_path}; add to its configuration:\n"
            + scrape_config(options.targets_path)
        )

    observer = Observer(session, controller_url, local)
    faults = Faults(fleet, observer, session)
    loadgen = LoadProcess(
        timeline,
        entrypoints,
        recorder,
        options.workdir / "loadgen.log",
        preexec_fn=die_with_parent_preexec(),
    )
    try:
        await loadgen.open()
    except LoadProcessError as error:
        raise DemoError(str(error)) from None
    started = time.monotonic()
    result.started_epoch = time.time()
    watch = LoopWatch(started)
    watch_task = asyncio.create_task(watch.run(stop), name="demo-loop-watch")
    sampler = BlockSampler(watch)
    sampler.start()
    await observer.poll_decisions()
    observer.take_fresh()  # decisions made while starting up are not the story's
    say(
        f"linescale demo: sending load ({timeline.scenario}, {timeline.wall_seconds:.0f}s at "
        f"{timeline.speed:g}x, peak {timeline.peak_rate:.0f} req/s) through "
        + ", ".join(entrypoints)
    )
    load_task = asyncio.create_task(loadgen.run(started, stop), name="demo-load")
    feed: list[str] = []
    last_plain = -math.inf
    live = Live(console=console, refresh_per_second=4, transient=False) if options.live else None
    try:
        if live is not None:
            live.start()
        while not stop.is_set() and not load_task.done():
            wall = time.monotonic() - started
            if dead := fleet.dead():
                raise DemoError(f"{dead[0].name} died:\n{log_tail(dead[0].log_path)}")
            for line in await faults.step(timeline, wall):
                feed.append(line)
                if live is None:
                    print(line, flush=True)
            await observer.poll(wall)
            if targets_file is not None:
                targets_file.refresh()
            lines = observer.finding_lines + [
                decision_line(decision, float(decision["decided_at"]) - result.started_epoch)
                for decision in observer.take_fresh()
            ]
            observer.finding_lines = []
            for line in lines:
                feed.append(line)
                if live is None:
                    print(line, flush=True)
            del feed[:-50]
            snapshot = snapshot_of(
                timeline, recorder, loadgen, observer, faults, wall, feed, bool(options.redis_url)
            )
            if live is not None:
                live.update(render(snapshot))
            elif wall - last_plain >= PLAIN_EVERY_SECONDS:
                print(plain_line(snapshot), flush=True)
                last_plain = wall
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        if live is not None:
            live.stop()
        result.interrupted = stop.is_set()
        stop.set()
        result.wall_seconds = min(time.monotonic() - started, timeline.wall_seconds)
        sampler.stop()
        with contextlib.suppress(Exception):
            await watch_task
        load_error: BaseException | None = None
        try:
            await asyncio.wait_for(load_task, loadgen.timeout_seconds + 3)
        except Exception as error:  # reported below, once the run is wound down
            load_error = error
        await loadgen.close()
        await faults.end_all()
        if targets_file is not None:
            targets_file.refresh()
        result.harness = harness_summary(
            watch.seconds,
            recorder.ordered(),
            sampler.samples,
            engine_passes(await _text(session, f"{controller_url}/metrics")),
        )
        with contextlib.suppress(Exception):
            await observer.poll(result.wall_seconds)
        result.replicas = observer.replicas
        result.decisions = sorted(
            (
                d
                for d in observer.decisions.values()
                if float(d["decided_at"]) >= result.started_epoch
            ),
            key=lambda d: float(d["decided_at"]),
        )
        result.local_ejections = observer.local_ejections
    if load_error is not None and not result.interrupted:
        raise DemoError(f"the load generator failed: {load_error}")
    return result


async def _text(session: aiohttp.ClientSession, url: str) -> str:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
        async with session.get(url) as response:
            return await response.text()
    return ""


def new_token() -> str:
    return secrets.token_urlsafe(24)
