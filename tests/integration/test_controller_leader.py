"""Two controller replicas on one (double) Kubernetes API: one leads; when it stops, the other
takes over, through a coordination.k8s.io Lease, via the real kubernetes client."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kube_api_double import KubeApiDouble, serve_in_thread, write_kubeconfig
from messages import TOKEN
from services import LinescaleFactory, LinescaleServer
from waiting import eventually

KUBE_TOKEN = "controller-sa-token"
RBAC = {
    "list deployments",
    "list statefulsets",
    "list pods",
    "get leases",
    "create leases",
    "update leases",
    "create events",
}


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Iterator[tuple[KubeApiDouble, Path]]:
    double = KubeApiDouble(tokens={KUBE_TOKEN: set(RBAC)})
    with serve_in_thread(double.app()) as url:
        yield double, write_kubeconfig(tmp_path / "kubeconfig", url, KUBE_TOKEN)


def leads(controller: LinescaleServer) -> bool:
    with urllib.request.urlopen(f"{controller.url}/v1/status", timeout=5) as response:
        status: dict[str, Any] = json.load(response)
    return bool(status["leader"])


def leader_gauge(controller: LinescaleServer) -> float:
    with urllib.request.urlopen(f"{controller.url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("linescale_controller_leader "):
                return float(line.split()[1])
    raise AssertionError("linescale_controller_leader not exposed")


def test_one_replica_leads_and_the_other_takes_over_when_it_stops(
    linescale_factory: LinescaleFactory, kubeconfig: tuple[KubeApiDouble, Path]
) -> None:
    _, path = kubeconfig
    env = {"LINESCALE_TOKEN": TOKEN, "LINESCALE_CONTROLLER__LEASE_DURATION_SECONDS": "3"}
    args = ["--orchestrator", "kubernetes", "--kubeconfig", str(path)]
    first = linescale_factory("controller", args, env=env)
    second = linescale_factory("controller", args, env=env)
    eventually(lambda: leads(first) or leads(second), within=10)
    assert [leads(first), leads(second)].count(True) == 1

    leader, follower = (first, second) if leads(first) else (second, first)
    assert (leader_gauge(leader), leader_gauge(follower)) == (1.0, 0.0)
    leader.stop()  # graceful: it releases the Lease on the way out
    took = eventually(lambda: leads(follower), within=3 + 2)
    assert took <= 3 + 2  # within the lease duration, plus one retry period of slack
