"""Scale-out 1 -> 1000 through the real ``kubernetes`` client: the world the integration test
and the validation runner's benchmark (``testing/bench/bench_scale_out.py``) both run in.

Deployment ``shop/burst`` on the in-repo API double, the cluster simulator making its pods,
one pod reporting 10,000 requests/s through a ScrapeSource, and the controller app with the
KubernetesOrchestrator. Sharing it keeps the benchmark's figure about the tested set-up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controller.app import ControllerDeps, create_app
from controller.orchestrators.kubernetes import KubernetesOrchestrator
from controller.ports import WorkloadRef
from controller.sources.scrape import ScrapeSource
from shared.config import load_settings

from demand_exporter import Demand, serve_demand
from kube_api_double import KubeApiDouble, api_client, deployment, serve_in_thread
from kube_cluster_sim import ClusterSim, StartTime
from kube_rbac import CONTROLLER_RBAC
from messages import TOKEN
from waiting import eventually_async

NS = "shop"
BURST = WorkloadRef(NS, "burst", "Deployment")
CONTROLLER = "controller-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCALE_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/burst/scale"
REQUESTS_PER_SECOND = 10_000.0
PER_POD_TARGET = 10
MAX_REPLICAS = 1000
POLICY = {
    "minReplicas": 1,
    "maxReplicas": MAX_REPLICAS,
    "metrics": [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "requests_per_second"},
                "target": {"type": "AverageValue", "averageValue": str(PER_POD_TARGET)},
            },
        }
    ],
    "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 1000, "periodSeconds": 15}]}},
}


def burst_double() -> KubeApiDouble:
    """Deployment ``burst``, 1 replica wanted and no pod yet: the simulator makes it."""
    return KubeApiDouble(
        tokens={CONTROLLER: set(CONTROLLER_RBAC)},
        deployments=[deployment("burst", NS, replicas=1, ready_replicas=0)],
    )


def stored_burst(double: KubeApiDouble) -> dict[str, Any]:
    obj = double.find("deployments", NS, "burst")
    assert obj is not None
    return obj


@dataclass
class BurstWorld:
    client: TestClient[web.Request, web.Application]
    double: KubeApiDouble
    sim: ClusterSim
    source: ScrapeSource
    orchestrator: KubernetesOrchestrator
    patch_arrived: list[float]  # when each PATCH of the scale subresource reached the double

    async def wait_rate_seen(self) -> None:
        """Until the source reads the demand, so the first pass with the policy has its metric."""

        async def rate_seen() -> bool:
            reading = await self.source.current("requests_per_second", [BURST], time.time())
            return reading is not None and BURST in reading.values

        await eventually_async(rate_seen, 30, "the scrape source sees the request rate")

    async def put_policy(self) -> None:
        put = await self.client.put(f"/v1/workloads/{NS}/burst/policy", json=POLICY, headers=AUTH)
        assert put.status == 200, await put.text()


@contextlib.asynccontextmanager
async def burst_world(start_time: StartTime, seed: int) -> AsyncIterator[BurstWorld]:
    """The world with its first pod ready and the controller serving; torn down in order
    (the controller stops before the API double does)."""
    double = burst_double()
    patch_arrived: list[float] = []
    double.before_next(
        r"/deployments/burst/scale$", lambda _: patch_arrived.append(time.time()), method="PATCH"
    )
    with (
        serve_in_thread(double.app()) as url,
        ClusterSim(double, NS, "burst", start_time=start_time, seed=seed) as sim,
    ):

        async def first_pod_ready() -> bool:
            return sim.ready_count == 1

        await eventually_async(first_pod_ready, 30, "the first pod ready")
        demand = Demand(NS, sim.pod_names[0], timestamps=True)
        demand.set(REQUESTS_PER_SECOND)
        exporter = serve_demand(demand)
        try:
            source = ScrapeSource(lambda: [exporter.address], interval_seconds=1)
            orchestrator = KubernetesOrchestrator(
                api_client(url, CONTROLLER),
                timeout_seconds=30,
                backoff_seconds=3,
                instance="controller-0",
            )
            settings = load_settings(
                environ={},
                overrides={"token": TOKEN, "controller": {"scaling_interval_seconds": 0.5}},
            )
            app = create_app(settings, ControllerDeps(source=source, orchestrator=orchestrator))
            async with TestClient(TestServer(app)) as client:
                yield BurstWorld(client, double, sim, source, orchestrator, patch_arrived)
        finally:
            exporter.close()
