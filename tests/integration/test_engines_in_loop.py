"""Every engine of the controller runs in its loop against the Kubernetes API double (through
the real ``kubernetes`` client) and a real metrics adapter (``ScrapeSource`` scraping a
container-metrics exposition): the ResourceEngine's right-sizing and efficiency appear in
``/v1/recommendations`` and the metrics, and each engine reports its passes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.app import ControllerDeps, create_app
from controller.orchestrators.kubernetes import KubernetesOrchestrator
from controller.sources.scrape import ScrapeSource
from shared.config import load_settings

from demand_exporter import serve_exposition
from kube_api_double import (
    KubeApiDouble,
    api_client,
    container,
    deployment,
    pods_for,
    serve_in_thread,
)
from kube_rbac import CONTROLLER_RBAC
from messages import TOKEN
from waiting import eventually_async

pytestmark = pytest.mark.timeout(60)

NS = "line"
CONTROLLER = "controller-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def container_metrics(started: float, pods: list[str]) -> bytes:
    """Each pod's app container at 0.2 cores and 300 MiB."""
    elapsed = time.time() - started
    lines = ["# TYPE linescale_container_cpu_usage_seconds_total counter"]
    labels = [f'namespace="{NS}",pod="{pod}",container="app"' for pod in pods]
    lines += [
        f"linescale_container_cpu_usage_seconds_total{{{lab}}} {0.2 * elapsed}" for lab in labels
    ]
    lines.append("# TYPE linescale_container_memory_usage_bytes gauge")
    lines += [f"linescale_container_memory_usage_bytes{{{lab}}} {300 * 2**20}" for lab in labels]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def exporter() -> Iterator[str]:
    started = time.time()
    pods = ["web-6c9b8d7f5-00000", "web-6c9b8d7f5-00001"]

    exporter = serve_exposition(lambda: container_metrics(started, pods))
    yield exporter.address
    exporter.close()


@pytest.fixture
def cluster() -> Iterator[str]:
    web = deployment(
        "web", NS, replicas=2, containers=[container("app", {"cpu": "1", "memory": "1Gi"})]
    )
    double = KubeApiDouble(
        tokens={CONTROLLER: set(CONTROLLER_RBAC)}, deployments=[web], pods=pods_for(web)
    )
    with serve_in_thread(double.app()) as url:
        yield url


async def test_every_engine_runs_and_resources_back_the_recommendations(
    aiohttp_client: Any, exporter: str, cluster: str
) -> None:
    intervals = {
        "reconcile_interval_seconds": 0.5,
        "scaling_interval_seconds": 0.5,
        "balancing_interval_seconds": 0.5,
        "resource_interval_seconds": 1.0,
        "performance_interval_seconds": 0.5,
        "vertical_interval_seconds": 0.5,
    }
    settings = load_settings(environ={}, overrides={"token": TOKEN, "controller": intervals})
    source = ScrapeSource(lambda: [exporter], interval_seconds=0.5)
    orchestrator = KubernetesOrchestrator(api_client(cluster, CONTROLLER))
    app = create_app(settings, ControllerDeps(source=source, orchestrator=orchestrator))
    client = await aiohttp_client(app)

    async def sized() -> bool:
        body = await (await client.get("/v1/recommendations")).json()
        return any(r["workload"] == "web" for r in body["rightsizing"])

    await eventually_async(sized, 30, "the ResourceEngine sized the web containers")
    body = await (await client.get("/v1/recommendations")).json()
    (web,) = [r for r in body["rightsizing"] if r["workload"] == "web"]
    assert web["container"] == "app"
    assert web["reason"]  # seconds of history: undefined, and it says why
    metrics = await (await client.get("/metrics")).text()
    for engine in ("push", "scalability", "balancing", "resources", "performance", "vertical"):
        assert f'linescale_last_success_timestamp_seconds{{engine="{engine}"}}' in metrics, engine
