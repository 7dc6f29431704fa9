"""The embedded dataplane end to end: real backends (child processes on loopback) behind the
agent's proxy, routing tables pushed through the agent's real ``PUT /v1/routing``."""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.app import AGENT, AgentDeps, build_report, create_app
from agent.dataplane import Dataplane
from shared.config import Settings, load_settings
from shared.wire import Capacity

from messages import TOKEN
from services import free_port

AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]

# A backend answers with its name; ``?delay=`` seconds makes it slow.
BACKEND = """
import asyncio, sys
from aiohttp import web

async def handle(request):
    delay = float(request.query.get("delay", "0"))
    if delay:
        await asyncio.sleep(delay)
    body = await request.read()
    return web.json_response({
        "backend": sys.argv[2],
        "forwarded_for": request.headers.get("X-Forwarded-For", ""),
        "secret": request.headers.get("X-Secret", ""),
        "bytes": len(body),
    })

app = web.Application()
app.router.add_route("*", "/{tail:.*}", handle)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@dataclass
class Backend:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=5)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_backend(name: str) -> Backend:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BACKEND, str(port), name])
    deadline = time.monotonic() + 15
    while not _listening(port):
        assert process.poll() is None, f"backend {name} exited"
        assert time.monotonic() < deadline, f"backend {name} not listening"
        time.sleep(0.05)
    return Backend(name, port, process)


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    started = [start_backend(name) for name in ("b0", "b1", "b2")]
    try:
        yield started
    finally:
        for backend in started:
            if backend.process.poll() is None:
                backend.process.terminate()
                backend.process.wait(timeout=5)


def agent_settings(**dataplane: Any) -> Settings:
    agent: dict[str, Any] = {"node": "node-1", "zone": "a", "dataplane": dataplane}
    if "controller_url" in dataplane:
        agent["controller_url"] = dataplane.pop("controller_url")
        agent["report_interval_seconds"] = 0.2
    return load_settings(environ={}, overrides={"token": TOKEN, "agent": agent})


async def start_agent(aiohttp_client: Any, settings: Settings) -> Client:
    deps = AgentDeps(capacity=lambda: Capacity(cpu_cores=2, memory_bytes=1))
    return await aiohttp_client(create_app(settings, deps))  # type: ignore[no-any-return]


@pytest.fixture
async def agent(aiohttp_client: Any) -> Client:
    return await start_agent(aiohttp_client, agent_settings())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def endpoint(backend: Backend, **changes: Any) -> dict[str, Any]:
    return {"address": backend.address, "zone": "a", **changes}


def table(version: int, port: int, endpoints: list[dict[str, Any]], **route: Any) -> dict[str, Any]:
    service = {"name": "orders", "listen_port": port, "endpoints": endpoints, **route}
    return {"version": version, "generated_at": 1.0, "services": [service]}


def dataplane_of(agent: Client) -> Dataplane:
    running = agent.app[AGENT].dataplane
    assert running is not None
    return running


async def push(agent: Client, body: dict[str, Any]) -> None:
    response = await agent.put("/v1/routing", json=body, headers=AUTH)
    assert response.status == 200
    assert (await response.json())["status"] == "applied"


async def call(
    session: aiohttp.ClientSession, port: int, path: str = "/", method: str = "GET", **kwargs: Any
) -> tuple[int, Any]:
    async with session.request(method, f"http://127.0.0.1:{port}{path}", **kwargs) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def served_by(session: aiohttp.ClientSession, port: int, count: int) -> Counter[str]:
    tally: Counter[str] = Counter()
    for _ in range(count):
        status, body = await call(session, port)
        assert status == 200, body
        tally[body["backend"]] += 1
    return tally


def assert_share(count: int, total: int, expected: float, sigmas: float = 4.5) -> None:
    sigma = math.sqrt(total * expected * (1 - expected))
    assert abs(count - total * expected) <= sigmas * sigma, (count, total * expected, sigma)


@pytest.mark.parametrize("policy", ["random", "round_robin", "least_request"])
async def test_weights_are_honoured_through_a_pushed_table(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend], policy: str
) -> None:
    port = free_port()
    weights = (100, 200, 300)
    endpoints = [endpoint(b, weight=w) for b, w in zip(backends, weights, strict=True)]
    await push(agent, table(1, port, endpoints, policy=policy))
    tally = await served_by(session, port, 1200)
    for backend, weight in zip(backends, weights, strict=True):
        assert_share(tally[backend.name], 1200, weight / 600)


async def test_peak_ewma_leans_toward_heavier_endpoints(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    # Weights choose which two endpoints are compared; the cheaper one wins. With equal real
    # latency the decay-on-read of peak-EWMA pulls shares toward equal busy time, so a light
    # endpoint is drawn into few comparisons but wins about half of those.
    port = free_port()
    weights = (10, 100, 100)
    endpoints = [endpoint(b, weight=w) for b, w in zip(backends, weights, strict=True)]
    await push(agent, table(1, port, endpoints))
    tally = await served_by(session, port, 600)
    assert 0 < tally["b0"] < min(tally["b1"], tally["b2"])


async def test_an_ejected_endpoint_gets_nothing(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    endpoints = [
        endpoint(backends[0], state="ejected"),
        endpoint(backends[1]),
        endpoint(backends[2]),
    ]
    await push(agent, table(1, port, endpoints))
    assert set(await served_by(session, port, 300)) == {"b1", "b2"}


async def test_forwarding_drops_hop_by_hop_headers_and_adds_forwarded_for(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    await push(agent, table(1, port, [endpoint(backends[0])]))
    status, body = await call(
        session,
        port,
        "/orders?id=1",
        "PUT",
        data=b"x" * 1000,
        headers={
            "X-Forwarded-For": "10.9.9.9",
            "Connection": "keep-alive, X-Secret",
            "X-Secret": "s",
        },
    )
    assert status == 200
    assert body["bytes"] == 1000
    assert body["forwarded_for"] == "10.9.9.9, 127.0.0.1"
    assert body["secret"] == ""  # named in Connection: hop-by-hop


async def test_nothing_to_route_to_answers_503_no_healthy_upstream(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    await push(agent, table(1, port, [endpoint(b, state="draining") for b in backends]))
    assert await call(session, port) == (503, {"error": "no healthy upstream"})


async def test_overall_timeout_answers_504(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    timeouts = {"per_try_seconds": 0.2, "overall_seconds": 0.3}
    await push(agent, table(1, port, [endpoint(backends[0])], timeouts=timeouts))
    started = time.monotonic()
    status, _ = await call(session, port, "/?delay=2")
    assert status == 504
    assert time.monotonic() - started < 1.5


async def test_draining_and_removed_endpoints_finish_in_flight_requests(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    await push(agent, table(1, port, [endpoint(b) for b in backends], policy="round_robin"))
    slow = [asyncio.create_task(call(session, port, "/?delay=1")) for _ in range(6)]
    await asyncio.sleep(0.3)  # all six are in flight, two per backend (round robin)
    proxy = dataplane_of(agent).services["orders"]
    assert {e.address: e.in_flight for e in proxy.endpoints()} == {b.address: 2 for b in backends}
    # b1 drains, b2 leaves the table: neither takes a new request, both finish theirs.
    await push(
        agent, table(2, port, [endpoint(backends[0]), endpoint(backends[1], state="draining")])
    )
    assert set(await served_by(session, port, 50)) == {"b0"}
    results = await asyncio.gather(*slow)
    assert [status for status, _ in results] == [200] * 6
    assert Counter(body["backend"] for _, body in results) == {"b0": 2, "b1": 2, "b2": 2}


async def test_a_service_removed_from_the_table_stops_listening_after_in_flight_requests(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    await push(agent, table(1, port, [endpoint(backends[0])]))
    slow = asyncio.create_task(call(session, port, "/?delay=0.8"))
    await asyncio.sleep(0.2)
    await push(agent, {"version": 2, "generated_at": 2.0, "services": []})
    status, body = await slow
    assert (status, body["backend"]) == (200, "b0")
    async with aiohttp.ClientSession() as fresh:
        with pytest.raises(aiohttp.ClientConnectionError):
            await call(fresh, port)


async def test_a_killed_backend_under_steady_load_loses_no_request(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    await push(agent, table(1, port, [endpoint(b) for b in backends]))
    outcomes: Counter[str] = Counter()

    async def one() -> None:
        try:
            status, _ = await call(session, port, "/?delay=0.02")
            outcomes[str(status)] += 1
        except aiohttp.ClientError as error:  # an answer lost: never acceptable
            outcomes[type(error).__name__] += 1

    tasks = []
    rate, seconds = 300, 3.0
    started = time.monotonic()
    for index in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
        if index == int(rate * seconds / 3):
            backends[1].kill()
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    total = sum(outcomes.values())
    assert total == int(rate * seconds)
    assert set(outcomes) <= {"200", "502", "503", "504"}, outcomes  # every request answered
    assert outcomes["200"] / total >= 0.999, outcomes
    stats = {s.address: s for s in dataplane_of(agent).stats()}
    assert stats[backends[1].address].locally_ejected
    assert stats[backends[1].address].errors >= 1


async def test_routing_continues_with_the_last_table_while_the_controller_is_away(
    aiohttp_client: Any, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    dead_controller = f"http://127.0.0.1:{free_port()}"
    agent = await start_agent(aiohttp_client, agent_settings(controller_url=dead_controller))
    port = free_port()
    await push(agent, table(4, port, [endpoint(b) for b in backends[:2]]))
    await asyncio.sleep(0.6)  # several failed reports
    metrics = await (await agent.get("/metrics")).text()
    assert 'linescale_agent_reports_total{outcome="unreachable"}' in metrics
    assert set(await served_by(session, port, 100)) == {"b0", "b1"}
    assert (await (await agent.get("/readyz")).json())["routing_version"] == 4


async def test_a_static_service_works_without_a_controller(
    aiohttp_client: Any, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    static = {
        "name": "orders",
        "listen": f"127.0.0.1:{port}",
        "policy": "round_robin",
        "endpoints": [backends[0].address, {"address": backends[1].address, "weight": 300}],
    }
    await start_agent(aiohttp_client, agent_settings(services=[static]))
    assert await served_by(session, port, 400) == {"b0": 100, "b1": 300}


async def test_the_report_and_metrics_carry_per_endpoint_stats(
    agent: Client, session: aiohttp.ClientSession, backends: list[Backend]
) -> None:
    port = free_port()
    await push(agent, table(1, port, [endpoint(backends[0]), endpoint(backends[1], zone="b")]))
    await served_by(session, port, 20)
    report = build_report(agent.app[AGENT], 0)
    by_address = {s.address: s for s in report.dataplane}
    assert sum(s.requests for s in report.dataplane) == 20
    assert by_address[backends[1].address].zone == "b"
    assert all(
        s.errors == 0 and s.in_flight == 0 and s.ewma_latency_ms > 0 for s in report.dataplane
    )
    metrics = await (await agent.get("/metrics")).text()
    assert (
        f'linescale_dataplane_requests_total{{code_class="2xx",endpoint="{backends[0].address}",'
        'service="orders"}' in metrics
    )
    assert "linescale_dataplane_ewma_seconds{" in metrics
    assert "linescale_dataplane_request_duration_seconds_bucket{" in metrics
