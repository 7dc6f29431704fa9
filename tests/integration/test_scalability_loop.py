"""The ScalabilityEngine in the controller's loop, with real parts: a real Prometheus scraping a
request counter, the LocalOrchestrator running real replicas, decisions read back over the
admin API. Prometheus is stopped mid-test: nothing scales down on the missing data, the source
shows unhealthy, and scaling resumes when it returns."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from controller.app import ControllerDeps, create_app
from controller.orchestrators.local import LocalOrchestrator
from controller.ports import WorkloadRef
from controller.sources.prometheus import PrometheusSource
from shared.config import load_settings

from demand_exporter import Demand, local_replicas, requests_policy, serve_demand
from messages import TOKEN
from services import PrometheusFactory
from waiting import eventually_async

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORDERS = WorkloadRef("line", "orders", "Local")
PER_REPLICA_RPS = 10


POLICY = requests_policy(1, 5, PER_REPLICA_RPS)


@pytest.fixture
async def orchestrator(tmp_path: Path) -> AsyncIterator[LocalOrchestrator]:
    async with local_replicas(tmp_path / "logs", "orders", "line") as local:
        yield local


async def test_scales_on_prometheus_holds_through_its_outage_and_resumes(
    aiohttp_client: Any, prometheus_factory: PrometheusFactory, orchestrator: LocalOrchestrator
) -> None:
    demand = Demand()
    demand.set(45)  # 45 requests/s against 10 per replica
    exporter = serve_demand(demand)
    prometheus = prometheus_factory({"orders": [exporter.address]}, scrape_interval="1s")
    await asyncio.to_thread(prometheus.wait_for_targets_up, "orders")

    async def rate_settled() -> bool:  # a full rate window of samples at the new rate
        result = await asyncio.to_thread(prometheus.query, "sum(rate(http_requests_total[4s]))")
        return bool(result) and abs(float(result[0]["value"][1]) - 45) < 2

    await eventually_async(rate_settled, 20, "Prometheus sees 45 requests/s")
    settings = load_settings(
        environ={},
        overrides={"token": TOKEN, "controller": {"scaling_interval_seconds": 0.5}},
    )
    source = PrometheusSource(prometheus.url, scrape_interval_seconds=1, timeout_seconds=2)
    app = create_app(settings, ControllerDeps(source=source, orchestrator=orchestrator))
    client: TestClient = await aiohttp_client(app)
    put = await client.put("/v1/workloads/line/orders/policy", json=POLICY, headers=AUTH)
    assert put.status == 200, await put.text()

    async def replicas() -> int:
        state = await orchestrator.get_workload(ORDERS)
        assert state is not None
        return state.desired_replicas

    async def decisions(**query: str) -> list[dict[str, Any]]:
        answer = await client.get("/v1/decisions", params={"target": "line/orders", **query})
        found: list[dict[str, Any]] = (await answer.json())["decisions"]
        return found

    # One decision takes 1 -> 5 (the behavior allows +10 pods per 15 s).
    async def at_five() -> bool:  # the decision is logged once the replicas are ready
        return await replicas() == 5 and any(d["to_value"] == 5 for d in await decisions())

    await eventually_async(at_five, 30, "scale-up to 5")
    (scale_up,) = [d for d in await decisions() if d["to_value"] == 5]
    assert (scale_up["from_value"], scale_up["actuation"]["state"]) == (1, "done")
    assert scale_up["reason"]["inputs"]["requests_per_second_average"] == pytest.approx(45, rel=0.2)

    # Prometheus goes away and the load with it: no scale-down on the missing data.
    demand.set(50)
    prometheus.process.stop()
    demand.set(0)

    async def source_unhealthy() -> bool:
        status = await (await client.get("/v1/status")).json()
        return status["source"]["healthy"] is False

    await eventually_async(source_unhealthy, 20, "source marked unhealthy")
    await asyncio.sleep(3)  # several passes of the engine
    assert await replicas() == 5
    assert await decisions(reason="metrics_unavailable")
    metrics = await (await client.get("/metrics")).text()
    assert 'linescale_controller_source_healthy{source="PrometheusSource"} 0.0' in metrics

    # Prometheus is back: the load is now zero, so it scales in.
    await asyncio.to_thread(prometheus.restart)

    async def at_one() -> bool:
        return await replicas() == 1 and (await decisions())[0]["to_value"] == 1

    await eventually_async(at_one, 40, "scale-down to 1 after recovery")
    latest = (await decisions())[0]
    assert (latest["from_value"], latest["to_value"]) == (5, 1)
    metrics = await (await client.get("/metrics")).text()
    assert 'linescale_reconcile_total{engine="scalability",result="acted"} 2.0' in metrics
