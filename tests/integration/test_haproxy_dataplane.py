"""The HAProxy dataplane against a real HAProxy 2.6: a config rendered by ``render_config``,
tables applied through the Runtime API, read back, and real requests through HAProxy.

The backends are small aiohttp apps on loopback that count the requests they serve. Missing
``haproxy`` skips these tests, or fails them under ``LINESCALE_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from agent.app import create_app as create_agent_app
from agent.dataplane_haproxy import (
    HAProxyDataplane,
    RuntimeAPI,
    RuntimeAPIError,
    RuntimeAPIUnreachableError,
    ServerView,
    render_config,
)
from agent.dataplane_haproxy.render import server_name
from shared.config import HAProxySettings, load_settings
from shared.wire import RoutingTable, ServiceRoute

from messages import TOKEN
from services import HAProxyFactory, HAProxyServer
from waiting import eventually_async

pytestmark = pytest.mark.services

SERVICE = "web"
BACKEND = f"ls_{SERVICE}"
ZONE = "zone-a"

BackendFactory = Callable[[str], Awaitable["Backend"]]


class Backend:
    """One upstream: counts requests; ``/slow`` holds its answer until ``release`` is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits: Counter[str] = Counter()
        self.release = asyncio.Event()
        self.slow_started = asyncio.Event()
        self.address = ""

    def app(self) -> web.Application:
        async def fast(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            return web.Response(text=self.name)

        async def slow(request: web.Request) -> web.Response:
            self.hits[request.path] += 1
            self.slow_started.set()
            await self.release.wait()
            return web.Response(text=self.name)

        app = web.Application()
        app.router.add_get("/", fast)
        app.router.add_get("/slow", slow)
        return app


@pytest.fixture
async def backends(aiohttp_server: Any) -> dict[str, Backend]:
    started: dict[str, Backend] = {}
    for name in ("b1", "b2", "b3", "b4"):
        backend = Backend(name)
        server: TestServer = await aiohttp_server(backend.app())
        backend.address = f"127.0.0.1:{server.port}"
        started[name] = backend
    return started


def _route(port: int, endpoints: list[dict[str, Any]], **fields: Any) -> ServiceRoute:
    return ServiceRoute.model_validate(
        {
            "name": SERVICE,
            "policy": "round_robin",
            "listen_port": port,
            "endpoints": [{"zone": ZONE, **endpoint} for endpoint in endpoints],
            **fields,
        }
    )


def _table(version: int, route: ServiceRoute) -> RoutingTable:
    return RoutingTable(version=version, generated_at=0.0, services=[route])


def _start(haproxy_factory: HAProxyFactory) -> HAProxyServer:
    """HAProxy running exactly the config ``render_config`` writes for the service."""

    def config(socket_path: Path, port: int) -> str:
        return render_config([_route(port, [])], socket=str(socket_path))

    return haproxy_factory(full_config=config)


def _dataplane(haproxy: HAProxyServer) -> HAProxyDataplane:
    return HAProxyDataplane(HAProxySettings(socket=str(haproxy.socket_path), timeout_seconds=5))


async def _send(port: int, count: int, backends: dict[str, Backend]) -> Counter[str]:
    """``count`` sequential GETs through HAProxy; which backend answered each."""
    answered: Counter[str] = Counter()
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            async with session.get(f"http://127.0.0.1:{port}/") as response:
                assert response.status == 200
                answered[await response.text()] += 1
    assert sum(answered.values()) == count
    assert set(answered) <= set(backends)
    return answered


def _within_binomial_bounds(observed: int, total: int, expected_share: float) -> bool:
    """Within 4 standard deviations of a binomial(total, share) draw: a bound every fair
    weighted balancer meets (roundrobin is far tighter), and that a wrong weight breaks."""
    mean = total * expected_share
    sigma = math.sqrt(total * expected_share * (1 - expected_share))
    return abs(observed - mean) <= 4 * sigma + 1


def _summary(views: list[ServerView]) -> list[tuple[str, str, int, str, bool]]:
    return sorted((v.name, v.address, v.weight, v.state, v.backup) for v in views)


async def test_apply_then_read_back_matches_the_table(
    haproxy_factory: HAProxyFactory, backends: dict[str, Backend]
) -> None:
    haproxy = _start(haproxy_factory)
    port = haproxy.frontend_port
    b1, b2, b3 = backends["b1"], backends["b2"], backends["b3"]
    route = _route(
        port,
        [
            {"address": b1.address, "weight": 100},
            {"address": b2.address, "weight": 50},
            {"address": b3.address, "weight": 25, "state": "ejected"},
        ],
    )
    dataplane = _dataplane(haproxy)

    result = await dataplane.apply(_table(1, route), ZONE)
    running = await dataplane.read_back()

    assert result.ok
    assert result.unmanaged == ()
    # Weights 100 : 50 -> 256 : 128 (largest share -> 256); ejected -> maint at weight 0.
    assert _summary(running[SERVICE]) == sorted(
        [
            (server_name(b1.address), b1.address, 256, "ready", False),
            (server_name(b2.address), b2.address, 128, "ready", False),
            (server_name(b3.address), b3.address, 0, "maint", False),
        ]
    )
    # A second apply of the same table has nothing left to do.
    again = await dataplane.apply(_table(1, route), ZONE)
    assert [outcome.sent for outcome in again.services] == [()]


async def test_weights_are_honoured_and_maint_gets_nothing(
    haproxy_factory: HAProxyFactory, backends: dict[str, Backend]
) -> None:
    haproxy = _start(haproxy_factory)
    port = haproxy.frontend_port
    b1, b2, b3 = backends["b1"], backends["b2"], backends["b3"]
    dataplane = _dataplane(haproxy)
    route = _route(
        port,
        [
            {"address": b1.address, "weight": 100},
            {"address": b2.address, "weight": 50},
            {"address": b3.address, "weight": 25, "state": "ejected"},
        ],
    )
    await dataplane.apply(_table(1, route), ZONE)

    answered = await _send(port, 600, backends)

    # HAProxy weights 256 : 128 -> shares 2/3 : 1/3; b3 in maintenance takes nothing.
    assert _within_binomial_bounds(answered["b1"], 600, 2 / 3), answered
    assert _within_binomial_bounds(answered["b2"], 600, 1 / 3), answered
    assert answered["b3"] == 0
    assert b3.hits["/"] == 0
    await dataplane.refresh_stats()
    stats = {s.address: s for s in dataplane.stats()}
    assert stats[b1.address].requests == answered["b1"]
    assert stats[b2.address].requests == answered["b2"]
    assert stats[b3.address].requests == 0
    assert {s.zone for s in stats.values()} == {ZONE}
    assert all(s.service == SERVICE and s.errors == 0 for s in stats.values())


async def test_table_change_drains_adds_and_removes(
    haproxy_factory: HAProxyFactory, backends: dict[str, Backend]
) -> None:
    haproxy = _start(haproxy_factory)
    port = haproxy.frontend_port
    b1, b2, b3, b4 = (backends[name] for name in ("b1", "b2", "b3", "b4"))
    dataplane = _dataplane(haproxy)
    await dataplane.apply(
        _table(
            1,
            _route(
                port,
                [
                    {"address": b1.address, "weight": 100},
                    {"address": b2.address, "weight": 50},
                    {"address": b3.address, "weight": 100},
                ],
            ),
        ),
        ZONE,
    )
    await _send(port, 30, backends)  # b3 serves, so it has counters and pooled connections

    # v2: drain b1, keep b2, remove b3, add b4.
    changed = _route(
        port,
        [
            {"address": b1.address, "weight": 100, "state": "draining"},
            {"address": b2.address, "weight": 50},
            {"address": b4.address, "weight": 100},
        ],
    )
    result = await dataplane.apply(_table(2, changed), ZONE)

    assert result.ok
    assert result.services[0].waiting_removal == ()
    running = await dataplane.read_back()
    assert _summary(running[SERVICE]) == sorted(
        [
            (server_name(b1.address), b1.address, 0, "drain", False),
            (server_name(b2.address), b2.address, 128, "ready", False),
            (server_name(b4.address), b4.address, 256, "ready", False),
        ]
    )
    before = {name: backend.hits["/"] for name, backend in backends.items()}
    answered = await _send(port, 300, backends)
    assert answered["b1"] == 0
    assert answered["b3"] == 0
    assert backends["b1"].hits["/"] == before["b1"]
    assert _within_binomial_bounds(answered["b4"], 300, 2 / 3), answered
    assert _within_binomial_bounds(answered["b2"], 300, 1 / 3), answered


async def test_removing_a_busy_server_waits_until_it_is_idle(
    haproxy_factory: HAProxyFactory, backends: dict[str, Backend]
) -> None:
    haproxy = _start(haproxy_factory)
    port = haproxy.frontend_port
    b2, b4 = backends["b2"], backends["b4"]
    dataplane = _dataplane(haproxy)
    await dataplane.apply(_table(1, _route(port, [{"address": b2.address}])), ZONE)
    async with aiohttp.ClientSession() as session:
        slow = asyncio.create_task(session.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.wait_for(b2.slow_started.wait(), 10)

        without_b2 = _table(2, _route(port, [{"address": b4.address}]))
        busy = await dataplane.apply(without_b2, ZONE)
        running = {view.name: view for view in (await dataplane.read_back())[SERVICE]}

        b2_name = server_name(b2.address)
        assert busy.ok
        assert busy.services[0].waiting_removal == (b2_name,)
        assert running[b2_name].state == "drain"
        assert running[b2_name].sessions == 1
        assert not any(step.command.startswith("del server") for step in busy.services[0].sent)
        # Still busy: applying again neither deletes it nor fails.
        assert (await dataplane.apply(without_b2, ZONE)).services[0].waiting_removal == (b2_name,)

        b2.release.set()
        response = await asyncio.wait_for(slow, 10)
        assert await response.text() == "b2"
        response.release()

    async def deleted() -> bool:
        result = await dataplane.apply(without_b2, ZONE)
        assert result.ok, result
        names = {view.name for view in (await dataplane.read_back())[SERVICE]}
        return b2_name not in names

    await eventually_async(deleted, within=10, what=f"{b2_name} deleted once idle")
    assert _summary((await dataplane.read_back())[SERVICE]) == [
        (server_name(b4.address), b4.address, 256, "ready", False)
    ]


async def test_priority_levels_become_backup_servers_haproxy_fails_over_to(
    haproxy_factory: HAProxyFactory, backends: dict[str, Backend]
) -> None:
    haproxy = _start(haproxy_factory)
    port = haproxy.frontend_port
    b1, b2 = backends["b1"], backends["b2"]
    dataplane = _dataplane(haproxy)
    route = _route(port, [{"address": b1.address}, {"address": b2.address, "priority": 1}])

    await dataplane.apply(_table(1, route), ZONE)
    running = await dataplane.read_back()
    primary_only = await _send(port, 20, backends)
    # HAProxy itself moves to the backup once the primary is out, before any new table.
    await dataplane.runtime.execute(f"set server {BACKEND}/{server_name(b1.address)} state maint")
    failed_over = await _send(port, 20, backends)

    assert _summary(running[SERVICE]) == sorted(
        [
            (server_name(b1.address), b1.address, 256, "ready", False),
            (server_name(b2.address, backup=True), b2.address, 256, "ready", True),
        ]
    )
    assert primary_only == Counter({"b1": 20})
    assert failed_over == Counter({"b2": 20})


async def test_service_without_backend_is_reported_unmanaged(
    haproxy_factory: HAProxyFactory, backends: dict[str, Backend]
) -> None:
    haproxy = _start(haproxy_factory)
    port = haproxy.frontend_port
    dataplane = _dataplane(haproxy)
    other = ServiceRoute.model_validate(
        {
            "name": "api",
            "listen_port": 1,
            "endpoints": [{"address": backends["b1"].address, "zone": ZONE}],
        }
    )
    table = RoutingTable(
        version=1,
        generated_at=0.0,
        services=[_route(port, [{"address": backends["b2"].address}]), other],
    )

    result = await dataplane.apply(table, ZONE)
    nothing = await dataplane.apply(None, ZONE)

    assert result.unmanaged == ("api",)
    assert [outcome.service for outcome in result.services] == [SERVICE]
    assert nothing.services == ()
    assert nothing.untouched == (BACKEND,)
    assert set(await dataplane.read_back()) == {SERVICE}


async def test_runtime_errors_carry_haproxys_message(haproxy_factory: HAProxyFactory) -> None:
    haproxy = _start(haproxy_factory)
    runtime = RuntimeAPI(str(haproxy.socket_path), timeout_seconds=5)

    with pytest.raises(RuntimeAPIError) as unknown_server:
        await runtime.execute(f"set server {BACKEND}/nope weight 10")
    with pytest.raises(RuntimeAPIError) as too_heavy:
        await runtime.execute(f"add server {BACKEND}/s 127.0.0.1:9 weight 300")
    with pytest.raises(RuntimeAPIError) as unknown_backend:
        await runtime.show_servers_state("nope")
    unreachable = RuntimeAPI(str(haproxy.socket_path) + ".missing", timeout_seconds=1)
    with pytest.raises(RuntimeAPIUnreachableError):
        await unreachable.show_backends()

    assert unknown_server.value.message == "No such server."
    assert "not within 0 and 256" in too_heavy.value.message
    assert unknown_backend.value.message == "Can't find backend."
    assert await runtime.show_backends() == [BACKEND]


async def test_the_agent_in_haproxy_mode_routes_pushed_tables_through_haproxy(
    haproxy_factory: HAProxyFactory, backends: dict[str, Backend], aiohttp_client: Any
) -> None:
    haproxy = _start(haproxy_factory)
    settings = load_settings(
        environ={},
        overrides={
            "token": TOKEN,
            "agent": {
                "node": "node-1",
                "zone": ZONE,
                "dataplane": {"mode": "haproxy", "haproxy": {"socket": str(haproxy.socket_path)}},
            },
        },
    )
    client = await aiohttp_client(create_agent_app(settings))
    b1, b2 = backends["b1"], backends["b2"]
    table = _table(
        1,
        _route(
            haproxy.port,
            [{"address": b1.address, "weight": 100}, {"address": b2.address, "state": "ejected"}],
        ),
    )
    pushed = await client.put(
        "/v1/routing",
        data=table.model_dump_json(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert pushed.status == 200, await pushed.text()
    answered = await _send(haproxy.port, 20, backends)
    assert answered == Counter({"b1": 20})
    running = await _dataplane(haproxy).read_back()
    assert {view.state for view in running[SERVICE]} == {"ready", "maint"}
