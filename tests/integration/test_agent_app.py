"""The agent's HTTP surface: probes, metrics, and guarded, versioned, strict pushes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent.app import AgentDeps, advertise_url, create_app
from shared.config import Settings, load_settings
from shared.wire import AgentReport, Capacity

from messages import TOKEN, report, routing, tuning

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def agent_settings(**agent: Any) -> Settings:
    return load_settings(
        environ={},
        overrides={"token": TOKEN, "agent": {"node": "node-1", "zone": "a", **agent}},
    )


@pytest.fixture
async def client(aiohttp_client: Any) -> TestClient:
    deps = AgentDeps(clock=lambda: 1000.0, capacity=lambda: Capacity(cpu_cores=2, memory_bytes=1))
    app = create_app(agent_settings(max_body_bytes=4096), deps)
    return await aiohttp_client(app)  # type: ignore[no-any-return]


async def test_probes_answer(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["routing_version"] == 0


async def test_metrics_expose_build_and_process_info(client: TestClient) -> None:
    text = await (await client.get("/metrics")).text()
    assert 'linescale_build_info{component="agent"' in text
    assert "process_resident_memory_bytes" in text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/v1/routing", routing(), id="routing"),
        pytest.param("/v1/tuning", tuning(), id="tuning"),
    ],
)
async def test_push_is_applied_then_served(
    client: TestClient, path: str, body: dict[str, Any]
) -> None:
    assert (await client.get(path)).status == 404
    response = await client.put(path, json=body, headers=AUTH)
    assert response.status == 200
    assert (await response.json())["status"] == "applied"
    held = await (await client.get(path)).json()
    assert held["version"] == body["version"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-token-401"),
        pytest.param({"Authorization": "Bearer wrong-token"}, 403, id="wrong-token-403"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, id="not-bearer-401"),
    ],
)
async def test_push_without_the_right_token_is_refused_and_changes_nothing(
    client: TestClient, headers: dict[str, str], status: int
) -> None:
    response = await client.put("/v1/routing", json=routing(), headers=headers)
    assert response.status == status
    assert (await client.get("/v1/routing")).status == 404
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_malformed_push_gets_400_naming_the_field_and_keeps_the_held_table(
    client: TestClient,
) -> None:
    await client.put("/v1/routing", json=routing(version=1), headers=AUTH)
    bad = routing(version=2)
    bad["services"][0]["endpoints"][0]["weight"] = -5
    response = await client.put("/v1/routing", json=bad, headers=AUTH)
    assert response.status == 400
    answer = await response.json()
    assert answer["fields"][0]["field"] == "services.0.endpoints.0.weight"
    assert (await (await client.get("/v1/routing")).json())["version"] == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [pytest.param(5, 5, id="repeated-version"), pytest.param(5, 4, id="older-version")],
)
async def test_stale_push_is_ignored_with_200(client: TestClient, first: int, second: int) -> None:
    await client.put("/v1/routing", json=routing(version=first), headers=AUTH)
    changed = routing(version=second, services=[])
    response = await client.put("/v1/routing", json=changed, headers=AUTH)
    assert response.status == 200
    assert (await response.json())["status"] == "stale"
    held = await (await client.get("/v1/routing")).json()
    assert (held["version"], len(held["services"])) == (first, 1)


async def test_oversized_body_gets_413(client: TestClient) -> None:
    padding = routing()
    padding["services"][0]["name"] = "a" * 5000
    response = await client.put("/v1/routing", data=json.dumps(padding), headers=AUTH)
    assert response.status == 413
    assert (await client.get("/v1/routing")).status == 404


async def test_refusals_are_counted_by_reason(client: TestClient) -> None:
    await client.put("/v1/tuning", json=tuning(), headers={})
    await client.put("/v1/tuning", json={"version": "x"}, headers=AUTH)
    await client.put("/v1/tuning", json=tuning(version=2), headers=AUTH)
    text = await (await client.get("/metrics")).text()
    assert 'linescale_http_rejected_requests_total{reason="unauthorized"} 1.0' in text
    assert 'linescale_http_rejected_requests_total{reason="invalid"} 1.0' in text
    assert 'linescale_agent_pushes_total{kind="tuning",outcome="applied"} 1.0' in text
    assert "linescale_agent_tuning_version 2.0" in text


async def test_agent_keeps_serving_when_the_controller_is_away(aiohttp_client: Any) -> None:
    # Port 9 (discard) on loopback refuses connections: the controller is "away".
    settings = agent_settings(controller_url="http://127.0.0.1:9", report_interval_seconds=0.05)
    client: TestClient = await aiohttp_client(create_app(settings))
    await client.put("/v1/routing", json=routing(), headers=AUTH)
    for _ in range(100):
        text = await (await client.get("/metrics")).text()
        if 'linescale_agent_reports_total{outcome="unreachable"} 2.0' in text:
            break
        await asyncio.sleep(0.05)
    assert 'linescale_agent_reports_total{outcome="unreachable"} 2.0' in text
    assert (await (await client.get("/v1/routing")).json())["version"] == routing()["version"]


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        pytest.param({"listen": "127.0.0.1:9400"}, "http://127.0.0.1:9400", id="from-listen"),
        pytest.param({"listen": "[::1]:9400"}, "http://[::1]:9400", id="ipv6-listen-bracketed"),
        pytest.param(
            {"advertise_url": "http://10.1.2.3:9400/"}, "http://10.1.2.3:9400", id="configured"
        ),
    ],
)
def test_advertised_url_is_valid_in_a_report(agent: dict[str, str], expected: str) -> None:
    settings = agent_settings(**agent)
    assert advertise_url(settings) == expected
    AgentReport.model_validate({**report(), "endpoint": advertise_url(settings)})
