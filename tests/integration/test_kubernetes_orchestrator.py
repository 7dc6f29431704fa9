"""``KubernetesOrchestrator`` and ``LeaseElector`` through the real ``kubernetes`` client
against the API double."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from controller.orchestrators.kubernetes import KubernetesOrchestrator
from controller.orchestrators.leader import LeaseElector
from controller.ports import ContainerState, PodState, Resources, WorkloadRef

from kube_api_double import (
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    KubeApiDouble,
    api_client,
    container,
    deployment,
    pods_for,
    serve_in_thread,
    statefulset,
    write_kubeconfig,
)
from kube_rbac import CONTROLLER_RBAC

NS = "line-b"
MI = 2**20
CONTROLLER = "controller-token"
NO_WRITES = "read-only-token"
NO_EVENTS = "no-events-token"

WEB = WorkloadRef(NS, "web", "Deployment")
SPC = WorkloadRef(NS, "spc", "StatefulSet")
BATCH = WorkloadRef("line-a", "batch", "Deployment")
LEGACY = WorkloadRef(NS, "legacy", "Deployment")
IDLE = WorkloadRef(NS, "idle", "Deployment")


def make_double(**kwargs: Any) -> KubeApiDouble:
    web = deployment(
        "web",
        NS,
        replicas=2,
        ready_replicas=1,
        annotations={"team": "quality"},
        containers=[
            container(
                "app", {"cpu": "250m", "memory": "256Mi"}, {"cpu": "1", "memory": "512Mi"}, 8080
            ),
            container("sidecar", {"cpu": "0.05"}),
        ],
    )
    spc = statefulset("spc", NS, replicas=1, selector={"app": "spc", "tier": "db"})
    legacy = deployment("legacy", NS, labels={"app": "legacy"})
    batch = deployment("batch", "line-a", replicas=1)
    idle = deployment(
        "idle", NS, replicas=0, containers=[container("app", {"cpu": "100m"}, {"cpu": "1"})]
    )
    reads = {r for r in CONTROLLER_RBAC if r.split()[0] in ("get", "list")}
    return KubeApiDouble(
        tokens={
            CONTROLLER: set(CONTROLLER_RBAC),
            NO_WRITES: reads,
            NO_EVENTS: CONTROLLER_RBAC - {"create events"},
        },
        deployments=[web, legacy, batch, idle],
        statefulsets=[spc],
        pods=[
            *pods_for(web, ready=[True, False], nodes=("node-1", "node-2")),
            *pods_for(spc),
            *pods_for(legacy),
            *pods_for(batch),
        ],
        **kwargs,
    )


@pytest.fixture
def served() -> Iterator[tuple[KubeApiDouble, str]]:
    double = make_double()
    with serve_in_thread(double.app()) as url:
        yield double, url


@pytest.fixture
def double(served: tuple[KubeApiDouble, str]) -> KubeApiDouble:
    return served[0]


@pytest.fixture
async def kube(served: tuple[KubeApiDouble, str]) -> AsyncIterator[KubernetesOrchestrator]:
    orchestrator = KubernetesOrchestrator(
        api_client(served[1], CONTROLLER),
        timeout_seconds=5,
        backoff_seconds=3,
        instance="controller-0",
    )
    yield orchestrator
    await orchestrator.close()


def stored(double: KubeApiDouble, ref: WorkloadRef) -> dict[str, Any]:
    plural = "deployments" if ref.kind == "Deployment" else "statefulsets"
    obj = double.find(plural, ref.namespace, ref.name)
    assert obj is not None
    return obj


def app_resources(pod: dict[str, Any]) -> dict[str, Any]:
    resources: dict[str, Any] = pod["spec"]["containers"][0]["resources"]
    return resources


# --- discovery ---------------------------------------------------------------------------------


async def test_discovers_managed_workloads_only(kube: KubernetesOrchestrator) -> None:
    workloads = await kube.list_workloads()
    assert [w.ref for w in workloads] == [BATCH, IDLE, SPC, WEB]


async def test_reads_pods_resources_and_readiness(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    web = next(w for w in await kube.list_workloads() if w.ref == WEB)
    assert (web.desired_replicas, web.ready_replicas) == (2, 1)
    assert web.labels["linescale.io/managed"] == "true"
    assert web.annotations == {"team": "quality"}
    assert web.resource_version == stored(double, WEB)["metadata"]["resourceVersion"]
    app = ContainerState(
        "app",
        requests=Resources(cpu_millicores=250, memory_bytes=256 * MI),
        limits=Resources(cpu_millicores=1000, memory_bytes=512 * MI),
    )
    sidecar = ContainerState("sidecar", requests=Resources(cpu_millicores=50))
    assert web.pods == (
        PodState("web-6c9b8d7f5-00000", True, "node-1", "10.1.0.1:8080", (app, sidecar)),
        PodState("web-6c9b8d7f5-00001", False, "node-2", "10.1.0.2:8080", (app, sidecar)),
    )
    pod_lists = [c for c in double.calls if c.path == f"/api/v1/namespaces/{NS}/pods"]
    assert {c.query["labelSelector"] for c in pod_lists} >= {"app=web", "app=spc,tier=db"}


async def test_restricted_to_namespaces(served: tuple[KubeApiDouble, str]) -> None:
    kube = KubernetesOrchestrator(api_client(served[1], CONTROLLER), namespaces=["line-a"])
    try:
        assert [w.ref for w in await kube.list_workloads()] == [BATCH]
        assert await kube.get_workload(WEB) is None
        result = await kube.scale(WEB, 3, "test")
        assert result.permanent
        assert "outside the watched namespaces" in result.detail
    finally:
        await kube.close()
    assert served[0].writes() == []


async def test_get_workload(kube: KubernetesOrchestrator) -> None:
    spc = await kube.get_workload(SPC)
    assert spc is not None
    assert (spc.desired_replicas, [p.name for p in spc.pods]) == (1, ["spc-0"])
    assert await kube.get_workload(WorkloadRef(NS, "missing")) is None
    assert await kube.get_workload(LEGACY) is None  # not managed
    assert await kube.get_workload(WorkloadRef(NS, "web", "Local")) is None


async def test_unreadable_namespace_is_left_out_and_reported(
    served: tuple[KubeApiDouble, str],
) -> None:
    double, url = served
    double.fail_next(r"/statefulsets$", 503)
    kube = KubernetesOrchestrator(api_client(url, CONTROLLER))
    try:
        assert [w.ref for w in await kube.list_workloads()] == [BATCH, IDLE, WEB]
        assert kube.last_error == "the server is currently unable to handle the request"
    finally:
        await kube.close()


async def test_workload_whose_pods_cannot_be_listed_is_left_out(
    served: tuple[KubeApiDouble, str],
) -> None:
    double, url = served
    double.fail_next(r"/namespaces/line-b/pods$", 500)  # the first pod list: web's
    kube = KubernetesOrchestrator(api_client(url, CONTROLLER))
    try:
        refs = [w.ref for w in await kube.list_workloads()]
    finally:
        await kube.close()
    assert refs == [BATCH, IDLE, SPC]  # not reported with no pods: left out
    assert kube.last_error == "Internal error occurred: injected fault"


# --- scale -------------------------------------------------------------------------------------


async def test_scale_patches_the_scale_subresource_and_emits_an_event(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    result = await kube.scale(WEB, 4, "queue depth 120 > 40 per replica")
    assert result.ok, result
    assert not result.dry_run
    assert result.detail == "scaled Deployment line-b/web from 2 to 4 replicas"
    assert stored(double, WEB)["spec"]["replicas"] == 4
    patch = next(c for c in double.writes() if c.path.endswith("/deployments/web/scale"))
    assert patch.content_type == MERGE_PATCH
    assert patch.body["spec"] == {"replicas": 4}
    assert patch.body["metadata"]["resourceVersion"]  # guarded by what it read
    [event] = double.events
    assert event["apiVersion"] == "events.k8s.io/v1"
    assert event["reason"] == "LinescaleScaled"
    assert event["action"] == "Scale"
    assert event["type"] == "Normal"
    assert event["reportingController"] == "linescale.io/controller"
    assert event["reportingInstance"] == "controller-0"
    assert "queue depth 120 > 40 per replica" in event["note"]
    assert event["regarding"]["kind"] == "Deployment"
    assert event["regarding"]["name"] == "web"
    assert event["metadata"]["namespace"] == NS


async def test_scale_statefulset(kube: KubernetesOrchestrator, double: KubeApiDouble) -> None:
    assert (await kube.scale(SPC, 3, "load")).ok
    assert stored(double, SPC)["spec"]["replicas"] == 3
    assert double.events[0]["regarding"]["kind"] == "StatefulSet"


async def test_scale_to_the_current_count_writes_nothing(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    result = await kube.scale(WEB, 2, "steady")
    assert result.ok
    assert "already has 2 replicas" in result.detail
    assert double.writes() == []


async def test_conflict_is_re_read_and_retried(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    double.fail_next(r"/deployments/web/scale$", 409, times=2, method="PATCH")
    result = await kube.scale(WEB, 5, "load")
    assert result.ok, result
    assert stored(double, WEB)["spec"]["replicas"] == 5
    reads = [c for c in double.calls if c.method == "GET" and c.path.endswith("/deployments/web")]
    assert len(reads) == 3
    assert len(double.events) == 1


async def test_real_conflict_from_a_concurrent_writer_is_retried(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    # Someone else scales between our read and our write: our patch carries a stale
    # resourceVersion, the double refuses it with 409, and the adapter reads again.
    def concurrent_writer(d: KubeApiDouble) -> None:
        d.write("deployments", NS, "web", lambda obj: obj["spec"].update(replicas=3))

    double.before_next(r"/deployments/web/scale$", concurrent_writer, method="PATCH")
    result = await kube.scale(WEB, 6, "load")
    assert result.ok, result
    assert result.detail == "scaled Deployment line-b/web from 3 to 6 replicas"
    assert stored(double, WEB)["spec"]["replicas"] == 6
    patches = [c for c in double.writes() if c.path.endswith("/deployments/web/scale")]
    assert len(patches) == 2  # refused, then accepted
    assert (
        patches[0].body["metadata"]["resourceVersion"]
        != patches[1].body["metadata"]["resourceVersion"]
    )


async def test_persistent_conflict_is_transient(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    double.fail_next(r"/deployments/web/scale$", 409, times=100, method="PATCH")
    result = await kube.scale(WEB, 5, "load")
    assert not result.ok
    assert not result.permanent
    assert result.retry_after_seconds == 3
    assert "still conflicting after 5 attempts" in result.detail


async def test_too_many_requests_honours_retry_after(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    double.fail_next(r"/scale$", 429, retry_after=7)
    result = await kube.scale(WEB, 5, "load")
    assert (result.ok, result.permanent, result.retry_after_seconds) == (False, False, 7)
    assert "HTTP 429" in result.detail
    assert stored(double, WEB)["spec"]["replicas"] == 2
    assert double.events == []


@pytest.mark.parametrize("code", [500, 503])
async def test_server_errors_back_off(
    kube: KubernetesOrchestrator, double: KubeApiDouble, code: int
) -> None:
    double.fail_next(r"/scale$", code)
    result = await kube.scale(WEB, 5, "load")
    assert (result.ok, result.permanent, result.retry_after_seconds) == (False, False, 3)


async def test_missing_workload_is_permanent(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    result = await kube.scale(WorkloadRef(NS, "gone"), 3, "load")
    assert (result.ok, result.permanent) == (False, True)
    assert 'deployments.apps "gone" not found' in result.detail
    assert double.writes() == []


async def test_invalid_replicas_are_permanent(kube: KubernetesOrchestrator) -> None:
    result = await kube.scale(WEB, -1, "load")
    assert (result.ok, result.permanent) == (False, True)
    assert "HTTP 422" in result.detail
    assert "must be greater than or equal to 0" in result.detail


async def test_forbidden_is_permanent(served: tuple[KubeApiDouble, str]) -> None:
    kube = KubernetesOrchestrator(api_client(served[1], NO_WRITES))
    try:
        result = await kube.scale(WEB, 3, "load")
    finally:
        await kube.close()
    assert (result.ok, result.permanent) == (False, True)
    assert "HTTP 403" in result.detail


async def test_unmanaged_workload_is_not_touched(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    result = await kube.scale(LEGACY, 3, "load")
    assert (result.ok, result.permanent) == (False, True)
    assert "not labelled linescale.io/managed=true" in result.detail
    assert double.writes() == []


async def test_local_kind_is_permanent(kube: KubernetesOrchestrator) -> None:
    result = await kube.scale(WorkloadRef(NS, "web", "Local"), 3, "load")
    assert result.permanent


async def test_event_failure_does_not_fail_the_action(served: tuple[KubeApiDouble, str]) -> None:
    double, url = served
    kube = KubernetesOrchestrator(api_client(url, NO_EVENTS))
    try:
        assert (await kube.scale(WEB, 3, "load")).ok
    finally:
        await kube.close()
    assert stored(double, WEB)["spec"]["replicas"] == 3
    assert double.events == []


async def test_unreachable_api_server_is_transient() -> None:
    with serve_in_thread(make_double().app()) as url:
        pass  # stopped: nothing listens there any more
    configuration = client.Configuration(host=url)
    configuration.retries = 0
    kube = KubernetesOrchestrator(client.ApiClient(configuration), timeout_seconds=2)
    try:
        result = await kube.scale(WEB, 3, "load")
        assert await kube.list_workloads() == []
    finally:
        await kube.close()
    assert (result.ok, result.permanent, result.retry_after_seconds) == (False, False, 5.0)
    assert "no answer" in result.detail
    assert kube.last_error


# --- resize ------------------------------------------------------------------------------------


async def test_resize_in_place_on_every_pod(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    result = await kube.resize(
        WEB,
        "app",
        Resources(cpu_millicores=500),
        Resources(memory_bytes=1024 * MI),
        "p90 CPU above request",
    )
    assert result.ok, result
    assert "in place on 2 of 2 pods" in result.detail
    web_pods = [p for p in double.pods if p["metadata"]["name"].startswith("web-")]
    for pod in web_pods:
        assert app_resources(pod) == {
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "1Gi"},
        }
        assert pod["spec"]["containers"][1]["resources"] == {"requests": {"cpu": "0.05"}}
    resizes = [c for c in double.writes() if c.path.endswith("/resize")]
    assert len(resizes) == 2
    assert {c.content_type for c in resizes} == {STRATEGIC_MERGE_PATCH}
    web = stored(double, WEB)
    assert web["metadata"]["generation"] == 1  # the template is untouched: no rollout
    assert json.loads(web["metadata"]["annotations"]["resources.linescale.io/app"]) == {
        "requests": {"cpu": "500m"},
        "limits": {"memory": "1Gi"},
    }
    [event] = double.events
    assert (event["reason"], event["action"]) == ("LinescaleResized", "Resize")
    assert "p90 CPU above request" in event["note"]
    assert "in place" in event["note"]

    writes = len(double.writes())
    again = await kube.resize(WEB, "app", Resources(cpu_millicores=500), Resources(), "again")
    assert again.ok
    assert "every pod already has" in again.detail
    assert len(double.writes()) == writes


async def test_resize_falls_back_to_the_pod_template_without_the_subresource() -> None:
    double = make_double(resize_supported=False)
    with serve_in_thread(double.app()) as url:
        kube = KubernetesOrchestrator(api_client(url, CONTROLLER))
        try:
            result = await kube.resize(
                WEB, "app", Resources(cpu_millicores=750), Resources(), "p90 CPU above request"
            )
        finally:
            await kube.close()
    assert result.ok, result
    assert "by patching the pod template, a rolling update" in result.detail
    assert "pods/resize is not available on this API server" in result.detail
    web = stored(double, WEB)
    template = web["spec"]["template"]["spec"]["containers"]
    assert template[0]["resources"]["requests"] == {"cpu": "750m", "memory": "256Mi"}
    assert template[1]["name"] == "sidecar"
    assert web["metadata"]["generation"] == 2
    assert app_resources(double.pods[0])["requests"]["cpu"] == "250m"  # pods roll later
    [event] = double.events
    assert event["reason"] == "LinescaleResized"
    assert "rolling update" in event["note"]


async def test_template_patch_conflict_is_retried() -> None:
    double = make_double(resize_supported=False)
    double.fail_next(r"/deployments/web$", 409, method="PATCH")
    with serve_in_thread(double.app()) as url:
        kube = KubernetesOrchestrator(api_client(url, CONTROLLER))
        try:
            result = await kube.resize(WEB, "app", Resources(cpu_millicores=750), Resources(), "x")
        finally:
            await kube.close()
    assert result.ok, result
    patches = [c for c in double.writes() if c.path.endswith("/deployments/web")]
    assert len(patches) == 2
    assert patches[-1].content_type == STRATEGIC_MERGE_PATCH
    assert patches[-1].body["metadata"]["resourceVersion"]


async def test_resize_without_running_pods_patches_the_template(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    result = await kube.resize(IDLE, "app", Resources(cpu_millicores=200), Resources(), "x")
    assert result.ok, result
    assert "no pod is running" in result.detail
    idle = stored(double, IDLE)
    assert idle["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "200m"
    }


async def test_resize_of_an_unknown_container_is_permanent(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    result = await kube.resize(WEB, "nope", Resources(cpu_millicores=1), Resources(), "x")
    assert (result.ok, result.permanent) == (False, True)
    assert "no container nope" in result.detail
    assert double.writes() == []


async def test_resize_refused_by_validation_is_permanent(kube: KubernetesOrchestrator) -> None:
    result = await kube.resize(WEB, "app", Resources(cpu_millicores=2000), Resources(), "x")
    assert (result.ok, result.permanent) == (False, True)
    assert "HTTP 422" in result.detail
    assert "must be less than or equal to cpu limit" in result.detail


async def test_resize_interrupted_by_a_server_error_is_transient_with_progress(
    kube: KubernetesOrchestrator, double: KubeApiDouble
) -> None:
    double.fail_next(r"/pods/web-6c9b8d7f5-00001/resize$", 500)
    result = await kube.resize(WEB, "app", Resources(cpu_millicores=300), Resources(), "x")
    assert (result.ok, result.permanent, result.retry_after_seconds) == (False, False, 3)
    assert "1 of 2 pods resized before" in result.detail
    retried = await kube.resize(WEB, "app", Resources(cpu_millicores=300), Resources(), "x")
    assert "in place on 1 of 2 pods" in retried.detail  # only the one left


async def test_resize_with_nothing_to_change(kube: KubernetesOrchestrator) -> None:
    result = await kube.resize(WEB, "app", Resources(), Resources(), "x")
    assert result.ok
    assert "nothing to change" in result.detail


# --- dry run -----------------------------------------------------------------------------------


async def test_dry_run_writes_nothing(served: tuple[KubeApiDouble, str]) -> None:
    double, url = served
    kube = KubernetesOrchestrator(api_client(url, CONTROLLER), dry_run=True)
    try:
        scaled = await kube.scale(WEB, 5, "load")
        resized = await kube.resize(WEB, "app", Resources(cpu_millicores=400), Resources(), "cpu")
        template = await kube.resize(IDLE, "app", Resources(cpu_millicores=400), Resources(), "x")
    finally:
        await kube.close()
    for result in (scaled, resized, template):
        assert (result.ok, result.dry_run) == (True, True)
        assert result.detail.startswith("would ")
    assert scaled.detail == "would scale Deployment line-b/web from 2 to 5 replicas: load"
    assert "in place on 2 of 2 pods" in resized.detail
    assert "by patching the pod template" in template.detail
    assert double.writes() == []
    assert double.events == []


# --- construction ------------------------------------------------------------------------------


async def test_from_kubeconfig(served: tuple[KubeApiDouble, str], tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", served[1], CONTROLLER)
    kube = KubernetesOrchestrator.from_kubeconfig(str(kubeconfig), namespaces=["line-a"])
    try:
        assert [w.ref for w in await kube.list_workloads()] == [BATCH]
    finally:
        await kube.close()


# --- leader election ---------------------------------------------------------------------------


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def apis(served: tuple[KubeApiDouble, str]) -> Iterator[list[client.CoordinationV1Api]]:
    clients = [api_client(served[1], CONTROLLER) for _ in range(2)]
    yield [client.CoordinationV1Api(c) for c in clients]
    for c in clients:
        c.close()


def electors(
    apis: list[client.CoordinationV1Api], clock: FakeClock | None = None, **timings: Any
) -> tuple[LeaseElector, LeaseElector]:
    timings = timings or {
        "lease_duration_seconds": 2,
        "renew_deadline_seconds": 1.5,
        "retry_period_seconds": 0.5,
    }
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    a, b = (
        LeaseElector(api, "linescale", "controller", name, **timings, **extra)
        for api, name in zip(apis, ("controller-a", "controller-b"), strict=True)
    )
    return a, b


async def test_only_one_elector_leads_and_the_other_takes_over_an_expired_lease(
    apis: list[client.CoordinationV1Api], double: KubeApiDouble
) -> None:
    clock = FakeClock()
    a, b = electors(apis, clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert (a.is_leader, b.is_leader) == (True, False)

    clock.now += 1
    assert await a.try_acquire_or_renew()  # renews
    assert not await b.try_acquire_or_renew()
    lease = double.find("leases", "linescale", "controller")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "controller-a"
    assert lease["spec"]["leaseDurationSeconds"] == 2

    # a stops renewing. b waits a full lease duration from when it last saw a change.
    clock.now += 1.9
    assert not await b.try_acquire_or_renew()
    assert not a.is_leader  # past its renew deadline: a no longer acts as leader
    clock.now += 0.1
    assert await b.try_acquire_or_renew()
    assert b.is_leader
    lease = double.find("leases", "linescale", "controller")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "controller-b"
    assert lease["spec"]["leaseTransitions"] == 1

    assert not await a.try_acquire_or_renew()
    assert not a.is_leader


async def test_racing_candidates_get_exactly_one_leader(
    apis: list[client.CoordinationV1Api],
) -> None:
    clock = FakeClock()
    a, b = electors(apis, clock)
    won = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(won) == [False, True]
    assert a.is_leader != b.is_leader

    # Both see the same expired lease and both try to take it over: one 409s.
    clock.now += 10
    loser = b if a.is_leader else a
    await loser.try_acquire_or_renew()  # observe the record first, then let it expire
    clock.now += 10
    leader = a if a.is_leader else b
    loser_again, leader_again = await asyncio.gather(
        loser.try_acquire_or_renew(), leader.try_acquire_or_renew()
    )
    assert [loser_again, leader_again].count(True) == 1


async def test_release_hands_over_at_once(
    apis: list[client.CoordinationV1Api], double: KubeApiDouble
) -> None:
    clock = FakeClock()
    a, b = electors(apis, clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.release()
    assert not a.is_leader
    lease = double.find("leases", "linescale", "controller")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == ""
    assert await b.try_acquire_or_renew()  # no waiting for expiry
    assert await b.release()
    assert await a.release()  # nothing held: nothing to do


async def test_leader_that_cannot_renew_steps_down_by_its_deadline(
    apis: list[client.CoordinationV1Api], double: KubeApiDouble
) -> None:
    clock = FakeClock()
    a, _ = electors(apis, clock)
    assert await a.try_acquire_or_renew()
    double.fail_next(r"/leases/controller$", 500, times=100, method="PUT")
    clock.now += 1
    assert await a.try_acquire_or_renew()  # failed, but still within the renew deadline
    clock.now += 0.6
    assert not await a.try_acquire_or_renew()
    assert not a.is_leader


async def test_run_loops_elect_one_and_fail_over(apis: list[client.CoordinationV1Api]) -> None:
    a, b = electors(
        apis, lease_duration_seconds=1, renew_deadline_seconds=0.6, retry_period_seconds=0.1
    )
    tasks = {a: asyncio.create_task(a.run()), b: asyncio.create_task(b.run())}
    try:
        await wait_for(lambda: a.is_leader or b.is_leader, 2)
        await asyncio.sleep(0.3)
        assert a.is_leader != b.is_leader
        first, second = (a, b) if a.is_leader else (b, a)

        tasks[first].cancel()  # crashes without releasing: the other waits for expiry
        started = asyncio.get_running_loop().time()
        await wait_for(lambda: second.is_leader, 3)
        assert asyncio.get_running_loop().time() - started < 1.0 + 0.6 + 0.3
        assert not first.is_leader

        tasks[second].cancel()
        await asyncio.gather(tasks[second], return_exceptions=True)
        tasks[first] = asyncio.create_task(first.run())
        await second.release()  # graceful shutdown: the other takes over at its next try
        started = asyncio.get_running_loop().time()
        await wait_for(lambda: first.is_leader, 1)
        assert asyncio.get_running_loop().time() - started < 0.5
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def wait_for(condition: Callable[[], bool], seconds: float) -> None:
    """Poll: ``is_leader`` depends on the clock, so there is no event to wait for."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
