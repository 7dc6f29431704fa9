"""The Kubernetes API double, pinned through the real ``kubernetes`` client: the Status shapes
the API documents, label selectors, resourceVersion, scale, resize, leases, events, faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3
from kubernetes import client

from kube_api_double import (
    MERGE_PATCH,
    KubeApiDouble,
    api_client,
    container,
    deployment,
    node,
    pods_for,
    serve_in_thread,
    statefulset,
)

ADMIN = "admin-token"
READER = "reader-token"
NS = "line-b"


def make_double(**kwargs: Any) -> KubeApiDouble:
    web = deployment(
        "web",
        NS,
        replicas=2,
        containers=[
            container("app", {"cpu": "250m", "memory": "256Mi"}, {"cpu": "1", "memory": "512Mi"}),
            container("sidecar", {"cpu": "50m"}),
        ],
    )
    return KubeApiDouble(
        tokens={ADMIN: {"* *"}, READER: {"list deployments", "get deployments"}},
        users={READER: "system:serviceaccount:linescale:reader"},
        deployments=[
            web,
            deployment("intake", NS, labels={"app": "intake", "tier": "front"}),
            deployment("batch", "line-a", labels={"tier": "back", "linescale.io/managed": "true"}),
        ],
        statefulsets=[statefulset("spc", NS, replicas=3)],
        pods=pods_for(web),
        nodes=[node("node-1"), node("node-2", {"zone": "b"})],
        **kwargs,
    )


@pytest.fixture
def served() -> Iterator[tuple[KubeApiDouble, str]]:
    double = make_double()
    with serve_in_thread(double.app()) as url:
        yield double, url


@pytest.fixture
def admin(served: tuple[KubeApiDouble, str]) -> Iterator[client.ApiClient]:
    with api_client(served[1], ADMIN) as api:
        yield api


def status_of(caught: pytest.ExceptionInfo[client.ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(caught.value.body)
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == caught.value.status
    return body


# --- authentication and authorization -----------------------------------------------------------


@pytest.mark.parametrize(
    "token", [pytest.param("", id="none"), pytest.param("bogus", id="unknown")]
)
def test_unauthenticated_is_401_status(served: tuple[KubeApiDouble, str], token: str) -> None:
    with api_client(served[1], token) as api, pytest.raises(client.ApiException) as caught:
        client.AppsV1Api(api).list_deployment_for_all_namespaces()
    assert caught.value.status == 401
    assert status_of(caught)["reason"] == "Unauthorized"


def test_forbidden_names_verb_subresource_group_and_namespace(
    served: tuple[KubeApiDouble, str],
) -> None:
    double, url = served
    with api_client(url, READER) as api:
        apps = client.AppsV1Api(api)
        assert len(apps.list_namespaced_deployment(NS).items) == 2
        with pytest.raises(client.ApiException) as caught:
            apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    assert caught.value.status == 403
    body = status_of(caught)
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'deployments.apps "web" is forbidden: User "system:serviceaccount:linescale:reader" '
        'cannot patch resource "deployments/scale" in API group "apps" in the namespace "line-b"'
    )
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    assert double.find("deployments", NS, "web")["spec"]["replicas"] == 2  # type: ignore[index]


# --- not found ---------------------------------------------------------------------------------


def test_missing_object_is_404_not_found_status(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.AppsV1Api(admin).read_namespaced_deployment("nope", NS)
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_missing_core_object_has_no_group(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(admin).read_namespaced_pod("nope", NS)
    assert status_of(caught)["details"] == {"name": "nope", "kind": "pods"}


def test_unknown_path_is_the_generic_404(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.BatchV1Api(admin).list_job_for_all_namespaces()
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == "the server could not find the requested resource"


def test_unsupported_verb_is_405(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.AppsV1Api(admin).delete_namespaced_deployment("web", NS)
    assert (caught.value.status, status_of(caught)["reason"]) == (405, "MethodNotAllowed")


# --- lists and selectors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        pytest.param("", ["batch", "intake", "web"], id="everything"),
        pytest.param("linescale.io/managed=true", ["batch", "web"], id="equality"),
        pytest.param("linescale.io/managed==true", ["batch", "web"], id="double-equals"),
        pytest.param("tier!=front", ["batch", "web"], id="inequality-matches-absent-key"),
        pytest.param("tier in (front,back)", ["batch", "intake"], id="set-in"),
        pytest.param("tier notin (front)", ["batch", "web"], id="set-notin"),
        pytest.param("tier", ["batch", "intake"], id="exists"),
        pytest.param("!tier", ["web"], id="does-not-exist"),
        pytest.param("tier in (back, front),app=intake", ["intake"], id="and-of-terms"),
        pytest.param("linescale.io/managed=true,!tier", ["web"], id="equality-and-absent"),
        pytest.param("tier=middle", [], id="no-match"),
    ],
)
def test_label_selectors(admin: client.ApiClient, selector: str, names: list[str]) -> None:
    listed = client.AppsV1Api(admin).list_deployment_for_all_namespaces(label_selector=selector)
    assert sorted(d.metadata.name for d in listed.items) == names


def test_namespaced_list_and_statefulsets(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    listed = apps.list_namespaced_deployment("line-a", label_selector="tier=back")
    assert [d.metadata.name for d in listed.items] == ["batch"]
    sets = apps.list_stateful_set_for_all_namespaces(label_selector="linescale.io/managed=true")
    assert [(s.metadata.name, s.spec.replicas) for s in sets.items] == [("spc", 3)]
    assert apps.read_namespaced_stateful_set("spc", NS).spec.service_name == "spc"


def test_bad_label_selector_is_400(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.AppsV1Api(admin).list_deployment_for_all_namespaces(label_selector="a in (x")
    assert (caught.value.status, status_of(caught)["reason"]) == (400, "BadRequest")


def test_pods_by_label_and_field(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    pods = core.list_namespaced_pod(
        NS, label_selector="app=web", field_selector="status.phase=Running"
    )
    assert len(pods.items) == 2
    first = pods.items[0]
    assert first.spec.containers[0].resources.requests == {"cpu": "250m", "memory": "256Mi"}
    assert first.status.pod_ip == "10.1.0.1"
    assert [(c.type, c.status) for c in first.status.conditions] == [("Ready", "True")]
    assert core.list_namespaced_pod(NS, label_selector="app=other").items == []


def test_nodes_list_and_get(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    assert [n.metadata.name for n in core.list_node(label_selector="zone=b").items] == ["node-2"]
    assert core.read_node("node-1").status.allocatable["cpu"] == "3800m"


def test_every_object_carries_identity_metadata(admin: client.ApiClient) -> None:
    for obj in [
        *client.AppsV1Api(admin).list_deployment_for_all_namespaces().items,
        *client.CoreV1Api(admin).list_pod_for_all_namespaces().items,
    ]:
        meta = obj.metadata
        assert all((meta.name, meta.namespace, meta.uid, meta.resource_version))
        assert meta.labels is not None
        assert meta.creation_timestamp is not None


# --- scale -------------------------------------------------------------------------------------


def test_scale_read_reports_replicas_and_selector(admin: client.ApiClient) -> None:
    scale = client.AppsV1Api(admin).read_namespaced_deployment_scale("web", NS)
    assert scale.kind == "Scale"
    assert scale.api_version == "autoscaling/v1"
    assert scale.spec.replicas == 2
    assert scale.status.selector == "app=web"


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param(None, id="client-default-strategic"),
        pytest.param(MERGE_PATCH, id="merge-patch"),
    ],
)
def test_scale_patch_changes_replicas_and_bumps_versions(
    served: tuple[KubeApiDouble, str], admin: client.ApiClient, content_type: str | None
) -> None:
    double, _ = served
    apps = client.AppsV1Api(admin)
    before = apps.read_namespaced_deployment("web", NS)
    scale = apps.patch_namespaced_deployment_scale(
        "web", NS, {"spec": {"replicas": 5}}, _content_type=content_type
    )
    after = apps.read_namespaced_deployment("web", NS)
    assert scale.spec.replicas == after.spec.replicas == 5
    assert int(after.metadata.resource_version) > int(before.metadata.resource_version)
    assert scale.metadata.resource_version == after.metadata.resource_version
    assert after.metadata.generation == before.metadata.generation + 1
    assert double.calls[-2].content_type == (
        content_type or "application/strategic-merge-patch+json"
    )


def test_no_op_write_keeps_the_resource_version(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    before = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 2}})
    assert apps.read_namespaced_deployment("web", NS).metadata.resource_version == before


def test_global_resource_version_counts_every_write(
    served: tuple[KubeApiDouble, str], admin: client.ApiClient
) -> None:
    double, _ = served
    apps = client.AppsV1Api(admin)
    start = int(apps.list_deployment_for_all_namespaces().metadata.resource_version)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
    apps.patch_namespaced_stateful_set_scale("spc", NS, {"spec": {"replicas": 4}})
    end = int(apps.list_deployment_for_all_namespaces().metadata.resource_version)
    assert end == start + 2 == double.resource_version
    assert apps.read_namespaced_stateful_set("spc", NS).metadata.resource_version == str(end)


def test_scale_put_with_stale_resource_version_is_409_conflict(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    scale = apps.read_namespaced_deployment_scale("web", NS)
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})  # someone else
    scale.spec.replicas = 6
    with pytest.raises(client.ApiException) as caught:
        apps.replace_namespaced_deployment_scale("web", NS, scale)
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert body["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    fresh = apps.read_namespaced_deployment_scale("web", NS)
    fresh.spec.replicas = 6
    assert apps.replace_namespaced_deployment_scale("web", NS, fresh).spec.replicas == 6


def test_scale_patch_with_stale_resource_version_is_409(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    stale = apps.read_namespaced_deployment_scale("web", NS).metadata.resource_version
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment_scale(
            "web", NS, {"metadata": {"resourceVersion": stale}, "spec": {"replicas": 9}}
        )
    assert caught.value.status == 409
    assert apps.read_namespaced_deployment_scale("web", NS).spec.replicas == 4


def test_negative_replicas_are_422_invalid_with_the_field(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": -1}})
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: '
        "must be greater than or equal to 0"
    )
    assert body["details"]["kind"] == "Scale"
    assert body["details"]["group"] == "autoscaling"
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.replicas"]
    assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"


def test_non_integer_replicas_in_a_patch_are_422_on_the_patch(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": "three"}})
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert [c["field"] for c in body["details"]["causes"]] == ["patch"]
    assert "cannot unmarshal string" in body["message"]


def test_non_integer_replicas_in_a_put_are_400_like_a_decode_error(
    served: tuple[KubeApiDouble, str], admin: client.ApiClient
) -> None:
    # The client validates its own PUT bodies, so send this one by hand.
    scale = admin.sanitize_for_serialization(
        client.AppsV1Api(admin).read_namespaced_deployment_scale("web", NS)
    )
    scale["spec"]["replicas"] = 1.5
    with urllib3.PoolManager() as http:
        response = http.request(
            "PUT",
            f"{served[1]}/apis/apps/v1/namespaces/{NS}/deployments/web/scale",
            body=json.dumps(scale),
            headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
        )
    body = response.json()
    assert (response.status, body["reason"], body["kind"]) == (400, "BadRequest", "Status")
    assert "cannot unmarshal number" in body["message"]


def test_scale_of_a_missing_workload_is_404(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.AppsV1Api(admin).patch_namespaced_stateful_set_scale(
            "gone", NS, {"spec": {"replicas": 1}}
        )
    assert status_of(caught)["message"] == 'statefulsets.apps "gone" not found'


# --- workload patches --------------------------------------------------------------------------


def test_strategic_merge_patch_merges_containers_by_name(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    patched = apps.patch_namespaced_deployment(
        "web",
        NS,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [{"name": "app", "resources": {"requests": {"cpu": "500m"}}}]
                    }
                }
            }
        },
    )
    containers = patched.spec.template.spec.containers
    assert [c.name for c in containers] == ["app", "sidecar"]
    assert containers[0].resources.requests == {"cpu": "500m", "memory": "256Mi"}
    assert containers[0].image == "registry.example/app:1"
    assert patched.metadata.generation == 2


def test_merge_patch_replaces_lists(admin: client.ApiClient) -> None:
    patched = client.AppsV1Api(admin).patch_namespaced_deployment(
        "web",
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}]}}}},
        _content_type=MERGE_PATCH,
    )
    assert [c.name for c in patched.spec.template.spec.containers] == ["only"]


def test_workload_patch_checks_resource_version(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    current = apps.read_namespaced_deployment("web", NS).metadata.resource_version
    patch = {"metadata": {"resourceVersion": current, "annotations": {"a": "1"}}}
    assert apps.patch_namespaced_deployment("web", NS, patch).metadata.annotations == {"a": "1"}
    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment("web", NS, patch)  # now stale
    assert status_of(caught)["reason"] == "Conflict"


def test_requests_above_limits_are_invalid(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.AppsV1Api(admin).patch_namespaced_deployment(
            "web",
            NS,
            {"spec": {"template": {"spec": {"containers": [
                {"name": "app", "resources": {"requests": {"cpu": "2"}}}
            ]}}}},
        )  # fmt: skip
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["kind"] == "Deployment"
    assert [c["field"] for c in body["details"]["causes"]] == [
        "spec.template.spec.containers[0].resources.requests"
    ]


def test_status_is_not_writable_through_the_main_resource(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    patched = apps.patch_namespaced_deployment("web", NS, {"status": {"readyReplicas": 0}})
    assert patched.status.ready_replicas == 2


# --- pods/resize -------------------------------------------------------------------------------


def resize_body(cpu: str, memory: str = "256Mi") -> dict[str, Any]:
    return {
        "spec": {
            "containers": [
                {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}}
            ]
        }
    }


def test_resize_changes_container_resources_in_place(
    served: tuple[KubeApiDouble, str], admin: client.ApiClient
) -> None:
    double, _ = served
    core = client.CoreV1Api(admin)
    name = double.pods[0]["metadata"]["name"]
    before = core.read_namespaced_pod(name, NS)
    resized = core.patch_namespaced_pod_resize(name, NS, resize_body("500m"))
    app = resized.spec.containers[0]
    assert app.resources.requests == {"cpu": "500m", "memory": "256Mi"}
    assert app.resources.limits == {"cpu": "1", "memory": "512Mi"}
    assert resized.status.container_statuses[0].resources.requests["cpu"] == "500m"
    assert resized.metadata.uid == before.metadata.uid
    assert int(resized.metadata.resource_version) > int(before.metadata.resource_version)
    assert double.calls[-1].path.endswith(f"/pods/{name}/resize")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(
            {"spec": {"containers": [{"name": "app", "image": "other"}]}}, "spec", id="image"
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "new", "image": "x"}]}}, "spec", id="new-container"
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": None}}}]}},
            "spec.containers[0].resources.limits[cpu]",
            id="remove-limit",
        ),
        pytest.param(
            resize_body("2"), "spec.containers[0].resources.requests", id="request-over-limit"
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "sidecar", "resources": {"requests": None}}]}},
            "spec.containers[1].resources.requests[cpu]",
            id="remove-request",
        ),
    ],
)
def test_resize_refuses_what_the_api_server_refuses(
    served: tuple[KubeApiDouble, str], admin: client.ApiClient, body: dict[str, Any], field: str
) -> None:
    double, _ = served
    name = double.pods[0]["metadata"]["name"]
    with pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(admin).patch_namespaced_pod_resize(name, NS, body)
    status_body = status_of(caught)
    assert (caught.value.status, status_body["reason"]) == (422, "Invalid")
    assert field in [c["field"] for c in status_body["details"]["causes"]]


def test_resize_may_not_change_the_qos_class() -> None:
    guaranteed = deployment(
        "g",
        NS,
        containers=[container("app", {"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})],
    )
    double = KubeApiDouble(tokens={ADMIN: {"* *"}}, pods=pods_for(guaranteed, 1))
    with serve_in_thread(double.app()) as url, api_client(url, ADMIN) as api:
        core = client.CoreV1Api(api)
        with pytest.raises(client.ApiException) as caught:
            core.patch_namespaced_pod_resize(
                double.pods[0]["metadata"]["name"], NS, resize_body("500m", "1Gi")
            )
        assert "QOS" in status_of(caught)["message"]
        both = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}
        resized = core.patch_namespaced_pod_resize(
            double.pods[0]["metadata"]["name"],
            NS,
            {"spec": {"containers": [{"name": "app", "resources": both}]}},
        )
        assert resized.spec.containers[0].resources.limits["cpu"] == "2"


def test_resize_of_a_missing_pod_is_404_for_the_pod(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(admin).patch_namespaced_pod_resize("gone", NS, resize_body("1"))
    assert status_of(caught)["message"] == 'pods "gone" not found'


def test_resize_absent_on_an_older_api_server_is_the_generic_404() -> None:
    double = make_double(resize_supported=False)
    with serve_in_thread(double.app()) as url, api_client(url, ADMIN) as api:
        core = client.CoreV1Api(api)
        name = double.pods[0]["metadata"]["name"]
        assert core.read_namespaced_pod(name, NS).metadata.name == name
        with pytest.raises(client.ApiException) as caught:
            core.patch_namespaced_pod_resize(name, NS, resize_body("500m"))
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (404, "NotFound")
    assert body["message"] == "the server could not find the requested resource"
    assert "details" not in body or "name" not in body["details"]


# --- leases ------------------------------------------------------------------------------------


def lease(name: str, holder: str, rv: str | None = None) -> client.V1Lease:
    now = datetime.now(UTC)
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, resource_version=rv),
        spec=client.V1LeaseSpec(
            holder_identity=holder,
            lease_duration_seconds=15,
            acquire_time=now,
            renew_time=now,
            lease_transitions=0,
        ),
    )


def test_lease_lifecycle(served: tuple[KubeApiDouble, str], admin: client.ApiClient) -> None:
    double, _ = served
    coordination = client.CoordinationV1Api(admin)
    with pytest.raises(client.ApiException) as caught:
        coordination.read_namespaced_lease("leader", NS)
    assert status_of(caught)["message"] == 'leases.coordination.k8s.io "leader" not found'

    created = coordination.create_namespaced_lease(NS, lease("leader", "a"))
    assert created.metadata.namespace == NS
    assert created.spec.holder_identity == "a"
    stored = double.find("leases", NS, "leader")
    assert stored is not None
    assert stored["spec"]["renewTime"].endswith("Z")  # MicroTime as the API writes it

    with pytest.raises(client.ApiException) as caught:
        coordination.create_namespaced_lease(NS, lease("leader", "b"))
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (409, "AlreadyExists")
    assert body["message"] == 'leases.coordination.k8s.io "leader" already exists'
    assert body["details"] == {"name": "leader", "group": "coordination.k8s.io", "kind": "leases"}

    rv = created.metadata.resource_version
    renewed = coordination.replace_namespaced_lease("leader", NS, lease("leader", "a", rv))
    assert int(renewed.metadata.resource_version) > int(rv)
    assert renewed.metadata.uid == created.metadata.uid

    with pytest.raises(client.ApiException) as caught:
        coordination.replace_namespaced_lease("leader", NS, lease("leader", "b", rv))
    assert (caught.value.status, status_of(caught)["reason"]) == (409, "Conflict")

    with pytest.raises(client.ApiException) as caught:
        coordination.replace_namespaced_lease("leader", NS, lease("leader", "b"))
    body = status_of(caught)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert [c["field"] for c in body["details"]["causes"]] == ["metadata.resourceVersion"]
    assert coordination.read_namespaced_lease("leader", NS).spec.holder_identity == "a"


def test_lease_update_of_a_missing_lease_is_404(admin: client.ApiClient) -> None:
    with pytest.raises(client.ApiException) as caught:
        client.CoordinationV1Api(admin).replace_namespaced_lease(
            "absent", NS, lease("absent", "a", "5")
        )
    assert caught.value.status == 404


# --- events ------------------------------------------------------------------------------------


def test_events_are_recorded(served: tuple[KubeApiDouble, str], admin: client.ApiClient) -> None:
    double, _ = served
    event = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="web.1"),
        event_time=datetime.now(UTC),
        reporting_controller="linescale.io/controller",
        reporting_instance="controller-0",
        action="Scale",
        reason="LinescaleScaled",
        note="scaled",
        type="Normal",
        regarding=client.V1ObjectReference(kind="Deployment", name="web", namespace=NS),
    )
    created = client.EventsV1Api(admin).create_namespaced_event(NS, event)
    assert created.reason == "LinescaleScaled"
    assert [e["reason"] for e in double.events] == ["LinescaleScaled"]
    assert double.events[0]["apiVersion"] == "events.k8s.io/v1"


def test_incomplete_event_is_invalid(admin: client.ApiClient) -> None:
    event = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="web.2"), event_time=datetime.now(UTC)
    )
    with pytest.raises(client.ApiException) as caught:
        client.EventsV1Api(admin).create_namespaced_event(NS, event)
    fields = {c["field"] for c in status_of(caught)["details"]["causes"]}
    assert fields == {"reportingController", "reportingInstance", "action", "reason"}


def test_core_events_are_recorded(
    served: tuple[KubeApiDouble, str], admin: client.ApiClient
) -> None:
    double, _ = served
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name="web."),
        involved_object=client.V1ObjectReference(kind="Deployment", name="web", namespace=NS),
        reason="LinescaleScaled",
        message="scaled",
        type="Normal",
    )
    created = client.CoreV1Api(admin).create_namespaced_event(NS, event)
    assert created.metadata.name.startswith("web.")
    assert double.events[0]["kind"] == "Event"


# --- faults ------------------------------------------------------------------------------------


def test_injected_faults_answer_first_then_stop(
    served: tuple[KubeApiDouble, str], admin: client.ApiClient
) -> None:
    double, _ = served
    double.fail_next(r"/deployments/web/scale$", 429, times=2, method="PATCH", retry_after=7)
    apps = client.AppsV1Api(admin)
    for _ in range(2):
        with pytest.raises(client.ApiException) as caught:
            apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}})
        body = status_of(caught)
        assert (caught.value.status, body["reason"]) == (429, "TooManyRequests")
        assert caught.value.headers["Retry-After"] == "7"
        assert body["details"] == {"retryAfterSeconds": 7}
    assert apps.read_namespaced_deployment_scale("web", NS).spec.replicas == 2  # GETs untouched
    assert (
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 3}}).spec.replicas
        == 3
    )


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        pytest.param(409, "Conflict", id="conflict"),
        pytest.param(500, "InternalError", id="internal"),
        pytest.param(503, "ServiceUnavailable", id="unavailable"),
    ],
)
def test_injected_fault_statuses(
    served: tuple[KubeApiDouble, str], admin: client.ApiClient, code: int, reason: str
) -> None:
    double, _ = served
    double.fail_next("/leases", code)
    with pytest.raises(client.ApiException) as caught:
        client.CoordinationV1Api(admin).create_namespaced_lease(NS, lease("x", "a"))
    assert (caught.value.status, status_of(caught)["reason"]) == (code, reason)
    assert double.find("leases", NS, "x") is None
