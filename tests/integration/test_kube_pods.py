"""Pod names for the collector, through the real kubernetes client against the API double."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from kubernetes import client

from agent.app import create_app
from agent.kube_pods import KubePodDirectory, bare_container_id
from shared.config import load_settings

from kube_api_double import KubeApiDouble, pod, serve_in_thread, write_kubeconfig
from messages import TOKEN

AGENT_TOKEN = "agent-sa-token"
NO_RBAC_TOKEN = "no-rbac-token"
UID_A = "259c626d-b908-4b6a-bef7-22a42bc0cf63"
UID_B = "5cc026eb-309d-4f57-bb07-ff87d74b0ac0"
CID = "9aa1f3e4c42a5ba39614e99148727351fa00ae39bc1fb4400a840b1ddcda31d6"


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api_double() -> Iterator[tuple[KubeApiDouble, str]]:
    double = KubeApiDouble(
        tokens={AGENT_TOKEN: {"list pods"}, NO_RBAC_TOKEN: set()},
        pods=[
            pod("vision-0", "quality", "node-1", UID_A, {"inference": f"containerd://{CID}"}),
            pod("spc-0", "quality", "node-2", UID_B, {"aggregator": "cri-o://abc"}),
        ],
    )
    with serve_in_thread(double.app()) as url:
        yield double, url


def core_api(url: str, token: str) -> client.CoreV1Api:
    configuration = client.Configuration(host=url)
    configuration.api_key = {"BearerToken": token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return client.CoreV1Api(client.ApiClient(configuration))


def directory(url: str, token: str, clock: FakeClock, failures: list[int]) -> KubePodDirectory:
    return KubePodDirectory(
        core_api(url, token),
        "node-1",
        refresh_seconds=30,
        timeout_seconds=2,
        clock=clock,
        on_failure=lambda: failures.append(1),
    )


def test_lists_only_this_nodes_pods_with_container_names(
    api_double: tuple[KubeApiDouble, str],
) -> None:
    double, url = api_double
    pods = directory(url, AGENT_TOKEN, FakeClock(), [])()
    assert set(pods) == {UID_A}
    assert (pods[UID_A].namespace, pods[UID_A].name) == ("quality", "vision-0")
    assert pods[UID_A].containers == {CID: "inference"}
    assert "fieldSelector=spec.nodeName%3Dnode-1" in double.requests[0]


def test_refreshes_at_most_once_per_period(api_double: tuple[KubeApiDouble, str]) -> None:
    double, url = api_double
    clock = FakeClock()
    pods = directory(url, AGENT_TOKEN, clock, [])
    for now in (0, 10, 29.9):
        clock.now = now
        pods()
    assert len(double.requests) == 1
    clock.now = 30
    pods()
    assert len(double.requests) == 2


def test_forbidden_list_is_counted_and_leaves_uids_only(
    api_double: tuple[KubeApiDouble, str],
) -> None:
    _, url = api_double
    failures: list[int] = []
    assert directory(url, NO_RBAC_TOKEN, FakeClock(), failures)() == {}
    assert failures == [1]


def test_api_going_away_keeps_the_last_known_names() -> None:
    double = KubeApiDouble(
        tokens={AGENT_TOKEN: {"list pods"}},
        pods=[pod("vision-0", "quality", "node-1", UID_A, {"inference": f"containerd://{CID}"})],
    )
    clock = FakeClock()
    failures: list[int] = []
    with serve_in_thread(double.app()) as url:
        pods = directory(url, AGENT_TOKEN, clock, failures)
        assert set(pods()) == {UID_A}
    clock.now = 31  # the server is gone now
    assert set(pods()) == {UID_A}
    assert failures == [1]


@pytest.mark.parametrize(
    ("container_id", "bare"),
    [
        pytest.param("containerd://abc", "abc", id="containerd"),
        pytest.param("cri-o://abc", "abc", id="cri-o"),
        pytest.param("docker://abc", "abc", id="docker"),
        pytest.param(None, "", id="not-started"),
    ],
)
def test_bare_container_id(container_id: str | None, bare: str) -> None:
    assert bare_container_id(container_id) == bare


def test_unsupported_field_selector_is_refused_like_the_api_server(
    api_double: tuple[KubeApiDouble, str],
) -> None:
    _, url = api_double
    with pytest.raises(client.ApiException) as caught:
        core_api(url, AGENT_TOKEN).list_pod_for_all_namespaces(field_selector="spec.image=x")
    assert caught.value.status == 400


FIXTURE_NODE = Path(__file__).resolve().parents[1] / "fixtures/observe/node-a"
FIXTURE_UID = "8a3b2c1d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"
FIXTURE_CID = "52c6070f3f7035310a27bda65a416b771881023d317c41dfb9ebf79f446b7b5f"


async def test_agent_metrics_carry_pod_names_from_a_kubeconfig_pod_list(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    double = KubeApiDouble(
        tokens={AGENT_TOKEN: {"list pods"}},
        pods=[
            pod(
                "order-intake-7d9",
                "line-b",
                "node-a",
                FIXTURE_UID,
                {"intake": f"containerd://{FIXTURE_CID}"},
            )
        ],
    )
    with serve_in_thread(double.app()) as url:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url, AGENT_TOKEN, user="agent")
        settings = load_settings(
            environ={},
            overrides={
                "token": TOKEN,
                "agent": {
                    "node": "node-a",
                    "zone": "a",
                    "collector": {
                        "proc_root": str(FIXTURE_NODE / "proc"),
                        "cgroup_root": str(FIXTURE_NODE / "sys/fs/cgroup"),
                    },
                    "pod_list": {"source": "kubeconfig", "kubeconfig": str(kubeconfig)},
                },
            },
        )
        agent: TestClient = await aiohttp_client(create_app(settings))
        for _ in range(50):
            metrics = await (await agent.get("/metrics")).text()
            if "linescale_container_cpu_cfs_throttled_periods_total" in metrics:
                break
            await asyncio.sleep(0.1)
    throttled = [
        line
        for line in metrics.splitlines()
        if line.startswith("linescale_container_cpu_cfs_throttled_periods_total{")
        and FIXTURE_UID in line
        and FIXTURE_CID[:12] in line
    ]
    assert throttled, metrics
    assert 'namespace="line-b"' in throttled[0]
    assert 'pod="order-intake-7d9"' in throttled[0]
    assert 'container="intake"' in throttled[0]
