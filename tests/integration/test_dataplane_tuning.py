"""A pushed TuningSet takes effect in the embedded dataplane: through the agent's real
``PUT /v1/tuning``, the concurrency limit admits at most ``max_concurrency`` requests per
service (the next gets 503 at once and is counted), and the request timeout and retry budget
replace the route's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.app import AGENT, AgentDeps, create_app
from agent.dataplane import Dataplane
from shared.config import load_settings
from shared.wire import Capacity

from messages import TOKEN, tuning
from services import free_port
from waiting import eventually_async

AUTH = {"Authorization": f"Bearer {TOKEN}"}
Client = TestClient[web.Request, web.Application]


@dataclass
class GatedBackend:
    """Holds every request until ``gate`` opens, so the number in flight is exact."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: int = 0
    server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived += 1
        if request.query.get("wait") != "no":
            await self.gate.wait()
        delay = float(request.query.get("delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        return web.json_response({"ok": True})

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"


@pytest.fixture
async def backend(aiohttp_server: Any) -> GatedBackend:
    gated = GatedBackend()
    app = web.Application()
    app.router.add_get("/{tail:.*}", gated.handle)
    gated.server = await aiohttp_server(app)
    return gated


@pytest.fixture
async def agent(aiohttp_client: Any) -> Client:
    settings = load_settings(
        environ={}, overrides={"token": TOKEN, "agent": {"node": "node-1", "zone": "a"}}
    )
    deps = AgentDeps(capacity=lambda: Capacity(cpu_cores=2, memory_bytes=1))
    return await aiohttp_client(create_app(settings, deps))  # type: ignore[no-any-return]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def put(agent: Client, kind: str, body: dict[str, Any]) -> None:
    response = await agent.put(f"/v1/{kind}", json=body, headers=AUTH)
    assert response.status == 200
    assert (await response.json())["status"] == "applied"


def limits(version: int, **dataplane: Any) -> dict[str, Any]:
    base = {
        "connect_timeout_ms": 1000,
        "request_timeout_ms": 10_000,
        "retry_budget_percent": 20,
        "max_concurrency": 2,
    }
    return tuning(version=version, dataplane={**base, **dataplane})


async def route(agent: Client, backend: GatedBackend, **service: Any) -> int:
    port = free_port()
    endpoints = [{"address": backend.address, "zone": "a"}]
    table = {
        "version": 1,
        "generated_at": 1.0,
        "services": [{"name": "orders", "listen_port": port, "endpoints": endpoints, **service}],
    }
    await put(agent, "routing", table)
    return port


async def get(session: aiohttp.ClientSession, port: int, query: str = "") -> tuple[int, Any]:
    async with session.get(f"http://127.0.0.1:{port}/{query}") as response:
        return response.status, await response.json()


async def until(predicate: Callable[[], bool]) -> None:
    async def check() -> bool:
        return predicate()

    await eventually_async(check, 5.0, "requests held by the backend", poll=0.01)


async def rejected(agent: Client) -> float:
    text = await (await agent.get("/metrics")).text()
    for line in text.splitlines():
        if line.startswith("linescale_dataplane_rejected_total{") and 'service="orders"' in line:
            assert 'reason="concurrency_limit"' in line
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_requests_beyond_max_concurrency_get_503_at_once_and_are_counted(
    agent: Client, backend: GatedBackend, session: aiohttp.ClientSession
) -> None:
    await put(agent, "tuning", limits(1, max_concurrency=2))
    port = await route(agent, backend)
    held = [asyncio.create_task(get(session, port)) for _ in range(2)]
    await until(lambda: backend.arrived == 2)
    started = time.monotonic()
    assert await get(session, port) == (503, {"error": "concurrency limit"})
    assert time.monotonic() - started < 1.0  # refused at once, not queued
    assert await rejected(agent) == 1.0
    backend.gate.set()
    assert [status for status, _ in await asyncio.gather(*held)] == [200, 200]
    assert (await get(session, port))[0] == 200  # capacity is back once they finish


async def test_a_newer_tuning_set_changes_the_limit_in_place(
    agent: Client, backend: GatedBackend, session: aiohttp.ClientSession
) -> None:
    port = await route(agent, backend)
    await put(agent, "tuning", limits(1, max_concurrency=1))
    first = asyncio.create_task(get(session, port))
    await until(lambda: backend.arrived == 1)
    assert (await get(session, port))[0] == 503
    await put(agent, "tuning", limits(2, max_concurrency=2))
    second = asyncio.create_task(get(session, port))
    await until(lambda: backend.arrived == 2)
    backend.gate.set()
    assert [status for status, _ in await asyncio.gather(first, second)] == [200, 200]


async def test_the_pushed_request_timeout_replaces_the_routes(
    agent: Client, backend: GatedBackend, session: aiohttp.ClientSession
) -> None:
    port = await route(agent, backend)  # the route's overall timeout is the default 15 s
    await put(agent, "tuning", limits(1, request_timeout_ms=300, max_concurrency=10))
    started = time.monotonic()
    status, body = await get(session, port, "?wait=no&delay=3")
    assert (status, body) == (504, {"error": "upstream timeout"})
    assert time.monotonic() - started < 2.0


async def test_the_pushed_retry_budget_and_limit_reach_services_started_later(
    agent: Client, backend: GatedBackend
) -> None:
    await put(agent, "tuning", limits(1, retry_budget_percent=5, connect_timeout_ms=250))
    await route(agent, backend, retries={"budget_percent": 50})
    dataplane = agent.app[AGENT].dataplane
    assert isinstance(dataplane, Dataplane)
    proxy = dataplane.services["orders"]
    assert proxy.budget.policy.budget_percent == 5
    assert proxy.timeouts.connect_seconds == 0.25
    assert proxy.max_concurrency == 2
