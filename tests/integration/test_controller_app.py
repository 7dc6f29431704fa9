"""The controller's HTTP surface: reports in, status out, pushes fanned out to real agents."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import create_app as create_agent_app
from controller.app import CONTROLLER, ControllerDeps, reconcile_once
from controller.app import create_app as create_controller_app
from shared.config import Settings, load_settings

from messages import TOKEN, report, routing, tuning

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def settings(**controller: Any) -> Settings:
    return load_settings(
        environ={},
        overrides={"token": TOKEN, "controller": {"agent_stale_after_seconds": 15, **controller}},
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(aiohttp_client: Any, clock: FakeClock) -> TestClient:
    app = create_controller_app(settings(max_agents=3), ControllerDeps(clock=clock))
    return await aiohttp_client(app)  # type: ignore[no-any-return]


async def post_report(client: TestClient, body: dict[str, Any], node: str | None = None) -> int:
    path = f"/v1/agents/{node or body['node']}/report"
    return (await client.post(path, json=body, headers=AUTH)).status


async def test_reported_agent_appears_in_status_with_zone_and_health(client: TestClient) -> None:
    assert await post_report(client, report(node="node-1", zone="b")) == 200
    status = await (await client.get("/v1/status")).json()
    assert status["summary"] == {"agents": 1, "stale": 0, "healthy": 1}
    (agent,) = status["agents"]
    assert (agent["node"], agent["zone"], agent["health"], agent["stale"]) == (
        "node-1",
        "b",
        "ok",
        False,
    )
    agents = await (await client.get("/v1/agents")).json()
    assert agents["agents"][0]["report"]["capacity"]["cpu_cores"] == 4


async def test_agent_silent_past_the_threshold_is_marked_stale(
    client: TestClient, clock: FakeClock
) -> None:
    await post_report(client, report(node="quiet"))
    clock.now += 10
    await post_report(client, report(node="chatty"))
    clock.now += 10
    status = await (await client.get("/v1/status")).json()
    stale = {agent["node"]: agent["stale"] for agent in status["agents"]}
    assert stale == {"quiet": True, "chatty": False}
    assert status["summary"]["stale"] == 1
    metrics = await (await client.get("/metrics")).text()
    assert 'linescale_controller_agents{state="stale"} 1.0' in metrics


@pytest.mark.parametrize(
    ("headers", "body", "path_node", "status"),
    [
        pytest.param({}, report(), None, 401, id="report-without-token-401"),
        pytest.param({"Authorization": "Bearer x"}, report(), None, 403, id="wrong-token-403"),
        pytest.param(AUTH, report(zone=""), None, 400, id="malformed-report-400"),
        pytest.param(AUTH, report(node="node-1"), "node-2", 400, id="node-mismatch-400"),
    ],
)
async def test_refused_reports_change_nothing(
    client: TestClient,
    headers: dict[str, str],
    body: dict[str, Any],
    path_node: str | None,
    status: int,
) -> None:
    path = f"/v1/agents/{path_node or body['node'] or 'x'}/report"
    response = await client.post(path, json=body, headers=headers)
    assert response.status == status
    assert (await (await client.get("/v1/status")).json())["agents"] == []


async def test_agent_limit_refuses_new_agents_with_429(client: TestClient) -> None:
    for index in range(3):
        assert await post_report(client, report(node=f"node-{index}")) == 200
    assert await post_report(client, report(node="node-9")) == 429
    assert await post_report(client, report(node="node-0")) == 200


async def start_agent(aiohttp_server: Any, node: str) -> TestServer:
    agent_settings = load_settings(
        environ={}, overrides={"token": TOKEN, "agent": {"node": node, "zone": "a"}}
    )
    return await aiohttp_server(create_agent_app(agent_settings))  # type: ignore[no-any-return]


def url_of(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def held_by(server: TestServer, kind: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url_of(server)}/v1/{kind}") as r:
        assert r.status == 200
        held: dict[str, Any] = await r.json()
        return held


async def test_put_is_pushed_to_every_fresh_agent_and_skips_stale_ones(
    client: TestClient, aiohttp_server: Any, clock: FakeClock
) -> None:
    agents = {node: await start_agent(aiohttp_server, node) for node in ("node-a", "node-b")}
    await post_report(client, report(node="gone", endpoint="http://127.0.0.1:9"))
    clock.now += 20  # "gone" is stale now and must not be pushed to
    for node, server in agents.items():
        await post_report(client, report(node=node, endpoint=url_of(server)))

    for kind, body in (("routing", routing(version=7)), ("tuning", tuning(version=3))):
        response = await client.put(f"/v1/{kind}", json=body, headers=AUTH)
        answer = await response.json()
        assert response.status == 200
        assert sorted((a["node"], a["outcome"]) for a in answer["agents"]) == [
            ("node-a", "applied"),
            ("node-b", "applied"),
        ]
        for server in agents.values():
            assert (await held_by(server, kind))["version"] == body["version"]

    repeat = await client.put("/v1/routing", json=routing(version=7), headers=AUTH)
    assert (await repeat.json()) == {
        "status": "stale",
        "message": "version 7 is not newer than held 7",
        "agents": [],
    }


async def test_unreachable_agent_is_reported_as_failed_push(client: TestClient) -> None:
    await post_report(client, report(node="dead", endpoint="http://127.0.0.1:9"))
    answer = await (await client.put("/v1/routing", json=routing(), headers=AUTH)).json()
    assert answer["agents"][0]["outcome"] == "failed"
    assert answer["agents"][0]["detail"]
    metrics = await (await client.get("/metrics")).text()
    assert 'linescale_controller_pushes_total{kind="routing",outcome="failed"} 1.0' in metrics


async def test_reconcile_brings_a_restarted_agent_up_to_the_held_version(
    client: TestClient, aiohttp_server: Any
) -> None:
    await client.put("/v1/routing", json=routing(version=4), headers=AUTH)
    fresh_agent = await start_agent(aiohttp_server, "node-r")
    # The agent (re)started and reports that it holds nothing.
    await post_report(client, report(node="node-r", endpoint=url_of(fresh_agent)))
    await reconcile_once(client.app[CONTROLLER])
    assert (await held_by(fresh_agent, "routing"))["version"] == 4
    status = await (await client.get("/v1/status")).json()
    assert status["agents"][0]["routing_version"] == 4


async def test_the_push_job_catches_a_returning_agent_up_on_its_own(
    aiohttp_client: Any, aiohttp_server: Any
) -> None:
    app = create_controller_app(settings(reconcile_interval_seconds=0.1))
    client = await aiohttp_client(app)
    await client.put("/v1/routing", json=routing(version=7), headers=AUTH)
    fresh_agent = await start_agent(aiohttp_server, "node-r")
    await post_report(client, report(node="node-r", endpoint=url_of(fresh_agent)))
    async with aiohttp.ClientSession() as session:
        for _ in range(50):  # the periodic push job, not a call from the test, delivers it
            async with session.get(f"{url_of(fresh_agent)}/v1/routing") as answer:
                if answer.status == 200:
                    break
            await asyncio.sleep(0.05)
    assert (await held_by(fresh_agent, "routing"))["version"] == 7
    metrics = await (await client.get("/metrics")).text()
    assert 'linescale_last_success_timestamp_seconds{engine="push"}' in metrics


async def test_admin_put_needs_the_token_and_valid_body(client: TestClient) -> None:
    assert (await client.put("/v1/routing", json=routing())).status == 401
    bad = await client.put("/v1/tuning", json=tuning(cache={}), headers=AUTH)
    assert bad.status == 400
    assert "cache.capacity_bytes" in (await bad.json())["error"]
    assert (await client.get("/v1/routing")).status == 404
    assert (await client.get("/v1/tuning")).status == 404


async def test_fleet_invalidation_reaches_every_fresh_agents_l1(
    client: TestClient, aiohttp_server: Any
) -> None:
    agents = {node: await start_agent(aiohttp_server, node) for node in ("node-a", "node-b")}
    async with aiohttp.ClientSession() as session:
        for node, server in agents.items():
            await post_report(client, report(node=node, endpoint=url_of(server)))
            put = f"{url_of(server)}/v1/cache/orders/order-1"
            async with session.put(put, data=b"v", headers=AUTH) as response:
                assert response.status == 200
        assert (
            await client.post("/v1/cache/invalidate", json={"namespace": "orders"})
        ).status == 401
        bad = await client.post("/v1/cache/invalidate", json={"namespace": "orders"}, headers=AUTH)
        assert bad.status == 400
        answer = await (
            await client.post(
                "/v1/cache/invalidate",
                json={"namespace": "orders", "prefix": "order-"},
                headers=AUTH,
            )
        ).json()
        assert sorted((a["node"], a["outcome"], a["invalidated"]) for a in answer["agents"]) == [
            ("node-a", "applied", 1),
            ("node-b", "applied", 1),
        ]
        for server in agents.values():
            async with session.get(f"{url_of(server)}/v1/cache/orders/order-1") as response:
                assert response.status == 404


async def test_fleet_cache_stats_sum_reports_and_recommend_an_l1_size(client: TestClient) -> None:
    stats = [
        {"level": "l1", "namespace": "orders", "hits": 30, "misses": 10, "evictions": 1,
         "entries": 5, "bytes": 500},
    ]  # fmt: skip
    curve = [
        {"capacity_bytes": c, "miss_ratio": m}
        for c, m in ((2**20, 0.9), (2**24, 0.4), (2**26, 0.2), (2**28, 0.199))
    ]
    for node in ("node-a", "node-b"):
        body = report(node=node, cache=stats, cache_mrc=curve, cache_capacity_bytes=2**26)
        assert await post_report(client, body) == 200
    answer = await (await client.get("/v1/cache/stats")).json()
    (orders,) = answer["namespaces"]
    assert (orders["hits"], orders["misses"], orders["hit_ratio"], orders["nodes"]) == (
        60,
        20,
        0.75,
        2,
    )
    decision = answer["l1_size"]["decision"]
    assert decision["kind"] == "cache"
    assert decision["reason"]["code"] in {"knee_of_curve", "clamped_to_min"}
    assert 0 < decision["to_value"] <= 2**28


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-token-401"),
        pytest.param({"Authorization": "Bearer wrong-token"}, 403, id="wrong-token-403"),
        pytest.param({"Authorization": "Bearer reader-token-0123456789"}, 200, id="read-token"),
        pytest.param(AUTH, 200, id="admin-token-also-reads"),
    ],
)
async def test_optional_read_token_guards_reads_but_not_probes(
    aiohttp_client: Any, headers: dict[str, str], status: int
) -> None:
    guarded = load_settings(
        environ={},
        overrides={"token": TOKEN, "controller": {"read_token": "reader-token-0123456789"}},
    )
    client: TestClient = await aiohttp_client(create_controller_app(guarded))
    assert (await client.get("/v1/status", headers=headers)).status == status
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/metrics")).status == 200


async def test_agent_that_was_away_catches_up_from_its_report_answer(
    aiohttp_client: Any, aiohttp_server: Any
) -> None:
    controller_server = await aiohttp_server(create_controller_app(settings()))
    controller_url = url_of(controller_server)
    async with aiohttp.ClientSession() as session:
        for kind, body in (("routing", routing(version=9)), ("tuning", tuning(version=4))):
            async with session.put(f"{controller_url}/v1/{kind}", json=body, headers=AUTH) as r:
                assert r.status == 200  # no agent known yet: nothing pushed
    agent_settings = load_settings(
        environ={},
        overrides={
            "token": TOKEN,
            "agent": {
                "node": "late-node",
                "zone": "a",
                "controller_url": controller_url,
                "report_interval_seconds": 0.1,
            },
        },
    )
    agent: TestClient = await aiohttp_client(create_agent_app(agent_settings))
    for _ in range(50):
        ready = await (await agent.get("/readyz")).json()
        if (ready["routing_version"], ready["tuning_version"]) == (9, 4):
            break
        await asyncio.sleep(0.1)
    assert (ready["routing_version"], ready["tuning_version"]) == (9, 4)


async def test_the_held_routing_table_is_exposed_as_zone_shares_and_endpoint_states(
    client: TestClient,
) -> None:
    table = routing(version=3)
    table["services"][0]["zone_shares"] = {"a": {"a": 0.75, "b": 0.25}}
    assert (await client.put("/v1/routing", json=table, headers=AUTH)).status == 200
    metrics = await (await client.get("/metrics")).text()
    share = 'caller_zone="a",service="order-intake",upstream_zone="b"'
    assert f"linescale_routing_zone_share{{{share}}} 0.25" in metrics
    for state, count in (("active", 1), ("draining", 1), ("ejected", 0)):
        series = f'linescale_routing_endpoints{{service="order-intake",state="{state}"}}'
        assert f"{series} {count}.0" in metrics
