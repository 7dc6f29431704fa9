"""Reliability under change, end to end: steady open-loop traffic through a real agent's
dataplane while the replicas behind it scale out, lose one to SIGKILL and scale back in, and
while the controller itself is killed and replaced.

Real parts: the replicas are child processes of a LocalOrchestrator (annotated with
``linescale.io/route-port``, so the LoadBalancingEngine routes them), the metrics come from a
real Prometheus scraping a request counter, the agent is the installed ``linescale agent``
(its embedded proxy, or a real HAProxy it drives through the Runtime API) reporting to the
controller app, which runs in-process so that a second controller can take
over the same orchestrator (the orchestrator stands in for Kubernetes, which outlives any
controller). Assertions are on what the client saw, the decisions the controller logged, the
orchestrator's replica counts and the routing table the agent holds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.dataplane_haproxy import render_config
from controller.app import ControllerDeps, create_app
from controller.engines.balancing.engine import ROUTE_PORT_ANNOTATION
from controller.orchestrators.local import LocalOrchestrator, LocalWorkloadSpec
from controller.ports import ActionResult, Resources, WorkloadRef, WorkloadState
from controller.sources.prometheus import PrometheusSource
from shared.config import Settings, load_settings
from shared.wire import ServiceRoute

from demand_exporter import REPLICA_SERVER, Demand, requests_policy, serve_demand
from messages import TOKEN
from services import (
    HAProxyFactory,
    HAProxyServer,
    LinescaleFactory,
    LinescaleServer,
    PrometheusFactory,
    free_port,
)
from steady_load import Outcome, SteadyLoad, success_ratio, tally
from waiting import eventually_async

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORDERS = WorkloadRef("line", "orders", "Local")
NODE, ZONE = "node-a", "a"
PER_REPLICA_RPS = 10  # the policy's target; the demand exporter sets what Prometheus sees
LOAD_RPS = 60  # the real traffic through the dataplane, steady for the whole test
SUCCESS_FLOOR = 0.999


def policy(min_replicas: int, max_replicas: int) -> dict[str, Any]:
    return requests_policy(min_replicas, max_replicas, PER_REPLICA_RPS)


class OutlivingOrchestrator:
    """The LocalOrchestrator as Kubernetes would be: a controller that stops (or is killed)
    does not take the workloads down with it. ``close`` is the test's, not the controller's."""

    def __init__(self, local: LocalOrchestrator) -> None:
        self.local = local

    async def list_workloads(self) -> Sequence[WorkloadState]:
        return await self.local.list_workloads()

    async def get_workload(self, ref: WorkloadRef) -> WorkloadState | None:
        return await self.local.get_workload(ref)

    async def scale(self, ref: WorkloadRef, replicas: int, reason: str) -> ActionResult:
        return await self.local.scale(ref, replicas, reason)

    async def resize(
        self,
        ref: WorkloadRef,
        container: str,
        requests: Resources,
        limits: Resources,
        reason: str,
    ) -> ActionResult:
        return await self.local.resize(ref, container, requests, limits, reason)

    async def close(self) -> None:
        """A controller going away leaves its workloads running."""


@dataclass
class Controller:
    """One in-process controller app on a fixed loopback port (the agents know its URL)."""

    client: TestClient[Any, Any]
    started_at: float  # wall clock, like decisions' decided_at

    async def json(self, path: str, **params: str) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status == 200, await response.text()
        return await response.json()

    async def decisions(self, kind: str = "scale") -> list[dict[str, Any]]:
        body = await self.json("/v1/decisions", kind=kind, target=str(ORDERS), limit="1000")
        found: list[dict[str, Any]] = body["decisions"]
        return found

    async def kill(self) -> None:
        """Stop it as a crash would: the engines are cancelled mid-pass, nothing is handed
        over (its replacement only has the decision log, the controls file and the
        orchestrator)."""
        await self.client.close()


@dataclass
class Stack:
    """Everything but the controller, which a test may start, kill and start again."""

    local: LocalOrchestrator
    prometheus_url: str
    demand: Demand
    route_port: int
    controller_port: int
    tmp_path: Path
    session: aiohttp.ClientSession
    haproxy: HAProxyServer | None = None  # the agent drives it instead of its own proxy
    agent: LinescaleServer | None = None
    controllers: list[Controller] = field(default_factory=list)

    @property
    def controller_url(self) -> str:
        return f"http://127.0.0.1:{self.controller_port}"

    def settings(self) -> Settings:
        return load_settings(
            environ={},
            overrides={
                "token": TOKEN,
                "controller": {
                    "reconcile_interval_seconds": 0.3,
                    "scaling_interval_seconds": 0.5,
                    "balancing_interval_seconds": 0.3,
                    "decision_log_path": str(self.tmp_path / "decisions.jsonl"),
                    "controls_path": str(self.tmp_path / "controls.json"),
                },
            },
        )

    async def start_controller(self) -> Controller:
        source = PrometheusSource(self.prometheus_url, scrape_interval_seconds=1, timeout_seconds=2)
        app = create_app(
            self.settings(),
            ControllerDeps(source=source, orchestrator=OutlivingOrchestrator(self.local)),
        )
        server = TestServer(app, host="127.0.0.1", port=self.controller_port)
        client: TestClient[Any, Any] = TestClient(server)
        started_at = time.time()
        await client.start_server()
        controller = Controller(client, started_at)
        self.controllers.append(controller)
        return controller

    async def start_agent(self, linescale: LinescaleFactory) -> LinescaleServer:
        args = ["--node", NODE, "--zone", ZONE, "--region", "r1"]
        env = {"LINESCALE_TOKEN": TOKEN, "LINESCALE_AGENT__REPORT_INTERVAL_SECONDS": "0.2"}
        if self.haproxy is not None:
            env["LINESCALE_AGENT__DATAPLANE__MODE"] = "haproxy"
            env["LINESCALE_AGENT__DATAPLANE__HAPROXY__SOCKET"] = str(self.haproxy.socket_path)
        self.agent = await asyncio.to_thread(
            linescale, "agent", [*args, "--controller", self.controller_url], env=env
        )
        return self.agent

    async def agent_json(self, path: str) -> Any:
        assert self.agent is not None
        async with self.session.get(f"{self.agent.url}{path}") as response:
            return await response.json() if response.status == 200 else None

    async def agent_route(self) -> tuple[int, dict[str, str]]:
        """The agent's routing version and, for the orders service, address -> state."""
        table = await self.agent_json("/v1/routing")
        if table is None:
            return 0, {}
        services = [s for s in table["services"] if s["name"] == ORDERS.name]
        endpoints = {e["address"]: e["state"] for s in services for e in s["endpoints"]}
        return table["version"], endpoints

    async def ready_addresses(self) -> set[str]:
        state = await self.local.get_workload(ORDERS)
        assert state is not None
        return {pod.address for pod in state.pods if pod.ready}

    async def desired_replicas(self) -> int:
        state = await self.local.get_workload(ORDERS)
        assert state is not None
        return state.desired_replicas

    async def agent_routes_exactly(self, addresses: set[str]) -> bool:
        _, endpoints = await self.agent_route()
        active = {address for address, state in endpoints.items() if state == "active"}
        return bool(addresses) and active == addresses

    async def agent_routes_every_ready_replica(self, replicas: int) -> bool:
        ready = await self.ready_addresses()
        return len(ready) == replicas and await self.agent_routes_exactly(ready)


@pytest.fixture
def dataplane() -> str:
    """Where the agent routes: its embedded proxy, or a local HAProxy it drives."""
    return "embedded"


def start_haproxy(haproxy_factory: HAProxyFactory) -> HAProxyServer:
    """HAProxy with the config the agent's HAProxy starts from for ``orders``: a frontend on
    the port it picks, an empty backend the agent fills through the Runtime API."""

    def config(socket_path: Path, port: int) -> str:
        route = ServiceRoute(name=ORDERS.name, listen_port=port, endpoints=[])
        return render_config([route], socket=str(socket_path))

    return haproxy_factory(full_config=config)


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    prometheus_factory: PrometheusFactory,
    dataplane: str,
) -> AsyncIterator[Stack]:
    """Prometheus seeing 15 requests/s for ``orders`` (two replicas' worth: the policy rounds
    up, and a rate of exactly 20 measured a hair above would keep three), the workload
    registered with one replica, and no controller yet."""
    demand = Demand(timestamps=True)
    demand.set(1.5 * PER_REPLICA_RPS)
    exporter = serve_demand(demand)
    prometheus = prometheus_factory({"orders": [exporter.address]}, scrape_interval="1s")
    await asyncio.to_thread(prometheus.wait_for_targets_up, "orders")
    haproxy = None
    if dataplane == "haproxy":
        haproxy = start_haproxy(request.getfixturevalue("haproxy_factory"))
    local = LocalOrchestrator(probe_interval_seconds=0.1, log_dir=tmp_path / "replicas")
    route_port = haproxy.port if haproxy is not None else free_port()
    spec = LocalWorkloadSpec(
        ORDERS.name,
        namespace=ORDERS.namespace,
        command=[sys.executable, "-c", REPLICA_SERVER, "{port}"],
        readiness_path="/",
        # Longer than a balancing pass plus a push: the agent stops sending to a replica
        # before it is stopped.
        drain_seconds=1.0,
        stop_timeout_seconds=2.0,
        annotations={ROUTE_PORT_ANNOTATION: str(route_port)},
        nodes=(NODE,),
    )
    stack: Stack | None = None
    try:
        registered = await local.register(spec, 1)
        assert registered.ok, registered.detail
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            stack = Stack(
                local=local,
                prometheus_url=prometheus.url,
                demand=demand,
                route_port=route_port,
                controller_port=free_port(),
                tmp_path=tmp_path,
                session=session,
                haproxy=haproxy,
            )

            async def rate_settled() -> bool:  # a full rate window at the demanded rate
                query = "sum(rate(http_requests_total[4s]))"
                result = await asyncio.to_thread(prometheus.query, query)
                return bool(result) and abs(float(result[0]["value"][1]) - demand.rate) < 1

            await eventually_async(rate_settled, 20, "Prometheus sees the demand")
            yield stack
    finally:
        for controller in stack.controllers if stack is not None else []:
            await controller.client.close()
        await local.close()
        exporter.close()


async def scale_decisions_reach(controller: Controller, replicas: int, stack: Stack) -> bool:
    """The orchestrator runs ``replicas`` and a finished scale decision says so."""
    if await stack.desired_replicas() != replicas:
        return False
    return any(
        d["to_value"] == replicas and d["actuation"]["state"] == "done"
        for d in await controller.decisions()
    )


def summary(outcomes: list[Outcome]) -> str:
    return f"{len(outcomes)} requests: {dict(tally(outcomes))}"


@pytest.mark.parametrize("dataplane", ["embedded", "haproxy"])
async def test_scale_out_replica_kill_and_scale_in_lose_no_request(
    stack: Stack, linescale_factory: LinescaleFactory
) -> None:
    controller = await stack.start_controller()
    put = await controller.client.put(
        f"/v1/workloads/{ORDERS.namespace}/{ORDERS.name}/policy", json=policy(2, 5), headers=AUTH
    )
    assert put.status == 200, await put.text()
    await stack.start_agent(linescale_factory)
    await eventually_async(lambda: scale_decisions_reach(controller, 2, stack), 30, "at 2")
    await eventually_async(
        lambda: stack.agent_routes_every_ready_replica(2), 15, "the agent routes both replicas"
    )

    async with SteadyLoad(f"http://127.0.0.1:{stack.route_port}/", LOAD_RPS) as load:
        await asyncio.sleep(2)
        stack.demand.set(4.5 * PER_REPLICA_RPS)
        await eventually_async(lambda: scale_decisions_reach(controller, 5, stack), 40, "at 5")
        await eventually_async(
            lambda: stack.agent_routes_every_ready_replica(5), 15, "the agent routes all five"
        )

        state = await stack.local.get_workload(ORDERS)
        assert state is not None
        victim = state.pods[-1]
        os.kill(stack.local.pids(ORDERS)[victim.name], signal.SIGKILL)

        async def replaced() -> bool:  # restarted in its slot, on a fresh port
            state = await stack.local.get_workload(ORDERS)
            assert state is not None
            (again,) = [pod for pod in state.pods if pod.name == victim.name]
            _, endpoints = await stack.agent_route()
            return (
                again.ready
                and victim.address not in endpoints
                and endpoints.get(again.address) == "active"
            )

        replaced_after = await eventually_async(replaced, 20, "the killed replica replaced")

        stack.demand.set(1.5 * PER_REPLICA_RPS)
        await eventually_async(lambda: scale_decisions_reach(controller, 2, stack), 40, "at 2")
        await eventually_async(
            lambda: stack.agent_routes_every_ready_replica(2), 15, "the agent routes two"
        )
        await asyncio.sleep(2)

    outcomes = load.outcomes()
    assert load.sent == len(outcomes)  # every request ended in an answer or a counted error
    assert load.sent >= LOAD_RPS * 10
    assert success_ratio(outcomes) >= SUCCESS_FLOOR, summary(outcomes)
    decisions = await controller.decisions()
    ups = [d for d in decisions if d["to_value"] > d["from_value"]]
    downs = [d for d in decisions if d["to_value"] < d["from_value"]]
    assert max(d["to_value"] for d in ups) == 5
    assert min(d["to_value"] for d in downs) == 2
    assert all(d["actuation"]["state"] == "done" for d in ups + downs)
    print(f"{summary(outcomes)}; killed replica replaced in {replaced_after:.1f}s")


@dataclass
class Watch:
    """What the agent and the orchestrator held, sampled all along."""

    samples: list[tuple[float, int, dict[str, str], set[str], int]] = field(default_factory=list)

    async def run(self, stack: Stack) -> None:
        while True:
            version, endpoints = await stack.agent_route()
            ready = await stack.ready_addresses()
            self.samples.append(
                (time.monotonic(), version, endpoints, ready, await stack.desired_replicas())
            )
            await asyncio.sleep(0.1)


async def test_a_killed_controller_leaves_traffic_alone_and_its_successor_resumes(
    stack: Stack, linescale_factory: LinescaleFactory
) -> None:
    first = await stack.start_controller()
    put = await first.client.put(
        f"/v1/workloads/{ORDERS.namespace}/{ORDERS.name}/policy", json=policy(1, 5), headers=AUTH
    )
    assert put.status == 200, await put.text()
    await stack.start_agent(linescale_factory)
    await eventually_async(lambda: scale_decisions_reach(first, 2, stack), 30, "1 -> 2")

    async def converged(controller: Controller, above: int = 0) -> bool:
        held = await controller.json("/v1/routing")
        version, _ = await stack.agent_route()
        same_table = version == held["version"] > above
        return same_table and await stack.agent_routes_every_ready_replica(2)

    await eventually_async(lambda: converged(first), 15, "the agent holds the first's table")
    # A controller that has run for a while is far past version 1 (every scale, restart and
    # ejection adds one): the same table again, numbered as such a controller would have it.
    seasoned = {**await first.json("/v1/routing"), "version": 100}
    put = await first.client.put("/v1/routing", json=seasoned, headers=AUTH)
    assert (await put.json())["status"] == "applied", await put.text()
    await eventually_async(lambda: converged(first, above=99), 15, "the agent holds v100")
    watch = Watch()
    watcher = asyncio.create_task(watch.run(stack))
    try:
        async with SteadyLoad(f"http://127.0.0.1:{stack.route_port}/", LOAD_RPS) as load:
            await asyncio.sleep(2)
            earlier = {d["id"] for d in await first.decisions()}
            assert earlier  # the scale-up to two, at least
            held_before, routed_before = await stack.agent_route()
            await first.kill()
            gap_started = time.monotonic()
            await asyncio.sleep(3)
            assert await stack.agent_route() == (held_before, routed_before)
            second = await stack.start_controller()
            gap_ended = time.monotonic()

            assert earlier <= {d["id"] for d in await second.decisions()}
            workload = await second.json(f"/v1/workloads/{ORDERS.namespace}/{ORDERS.name}")
            assert (workload["desired_replicas"], workload["policy_origin"]) == (2, "api")
            accepted_after = await eventually_async(
                lambda: converged(second, above=held_before),
                15,
                "the agent accepts the successor's table",
            )
            await asyncio.sleep(4)  # several passes of every engine under steady load
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)

    outcomes = load.outcomes()
    assert load.sent == len(outcomes)
    gap = load.outcomes(gap_started, gap_ended)
    assert len(gap) >= LOAD_RPS * 2
    assert success_ratio(gap) >= SUCCESS_FLOOR, summary(gap)
    assert success_ratio(outcomes) >= SUCCESS_FLOOR, summary(outcomes)
    # No wrong action: the successor scaled nothing (the load stayed at two replicas' worth)
    # and no table the agent held left out, or stopped sending to, a live replica.
    acted = [d for d in await second.decisions() if d["decided_at"] >= second.started_at]
    assert acted == [], acted
    assert {desired for *_, desired in watch.samples} == {2}
    for at, version, endpoints, ready, _ in watch.samples:
        active = {address for address, state in endpoints.items() if state == "active"}
        assert ready <= active, (at, version, endpoints, ready)
    print(
        f"{summary(outcomes)}; in the gap {summary(gap)}; the successor's table replaced "
        f"v{held_before} {accepted_after:.1f}s after it started"
    )
