"""The kustomize base in deploy/daemonset renders, every object is what the Kubernetes API
accepts (model classes, no unknown keys), and the manifests agree with the code they run:
RBAC with the calls it makes, probes with the routes it serves, the ConfigMap with
``load_settings``, mounts and ports with the configuration."""

from __future__ import annotations

import re
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent import main as agent_main
from agent.app import AgentDeps, advertise_url
from agent.app import create_app as create_agent_app
from controller import main as controller_main
from controller.app import ControllerDeps
from controller.app import create_app as create_controller_app
from shared.config import Settings, load_settings, split_listen
from shared.quantities import parse_quantity
from shared.wire import Capacity

from kube_rbac import CONTROLLER_RBAC
from manifests import (
    BASE,
    TOPOLOGY_LABELS_OVERLAY,
    container_environment,
    deserialize,
    find,
    iter_probes,
    model_name,
    monitor_problems,
    only_container,
    pod_spec,
    render,
    resolve_port,
    selects,
    unknown_keys,
)
from messages import TOKEN

AppClient = TestClient[web.Request, web.Application]

# Every object the base must render (kind, name; generated ConfigMaps carry a hash suffix).
EXPECTED_OBJECTS = [
    ("Namespace", "linescale"),
    ("PriorityClass", "linescale-node-agent"),
    ("ServiceAccount", "linescale-agent"),
    ("ClusterRole", "linescale-agent"),
    ("ClusterRoleBinding", "linescale-agent"),
    ("DaemonSet", "linescale-agent"),
    ("Service", "linescale-agent"),
    ("ServiceAccount", "linescale-controller"),
    ("ClusterRole", "linescale-controller"),
    ("ClusterRoleBinding", "linescale-controller"),
    ("Role", "linescale-controller-leader"),
    ("RoleBinding", "linescale-controller-leader"),
    ("Deployment", "linescale-controller"),
    ("Service", "linescale-controller"),
    ("PodDisruptionBudget", "linescale-controller"),
    ("ConfigMap", "linescale-config"),
    ("ConfigMap", "linescale-agent-zone"),
    ("NetworkPolicy", "linescale-agent"),
    ("NetworkPolicy", "linescale-controller"),
    ("PodMonitor", "linescale-agent"),
    ("ServiceMonitor", "linescale-controller"),
]
API_OBJECTS = [entry for entry in EXPECTED_OBJECTS if not entry[0].endswith("Monitor")]
MONITORS = [entry for entry in EXPECTED_OBJECTS if entry[0].endswith("Monitor")]
CLUSTER_SCOPED = {"Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding"}

# What the Downward API would give a pod on a node (any values: the tests follow them through).
FIELD_VALUES = {
    "spec.nodeName": "node-7",
    "status.podIP": "10.1.2.3",
    "metadata.labels['topology.kubernetes.io/zone']": "eu-west-1b",
    "metadata.labels['topology.kubernetes.io/region']": "eu-west-1",
}

# README "Performance": agent CPU 0.32-0.37 % of one core, RSS 55.7 MB (465 processes).
MEASURED_AGENT_CPU_CORES = Decimal("0.0037")
MEASURED_AGENT_RSS_BYTES = Decimal("55.7e6")

WORKLOADS = {
    "agent": ("DaemonSet", "linescale-agent"),
    "controller": ("Deployment", "linescale-controller"),
}


def rendered(base: Path) -> list[dict[str, Any]]:
    try:
        return render(base)
    except subprocess.CalledProcessError as error:  # kubectl's own message, not a traceback
        pytest.fail(f"kubectl kustomize {base} failed: {error.stderr}")


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return rendered(BASE)


@pytest.fixture(scope="module")
def overlay_documents() -> list[dict[str, Any]]:
    return rendered(TOPOLOGY_LABELS_OVERLAY)


def workload(documents: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return find(documents, *WORKLOADS[component])


def config_maps(documents: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}


def effective_settings(documents: list[dict[str, Any]], component: str, tmp_path: Path) -> Settings:
    """The settings the component's container would run with: its args (through the
    component's own argument parser), the ConfigMap's file and the pod's environment."""
    container = only_container(workload(documents, component))
    mount_path = mounted_path(documents, component, "ConfigMap")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(find(documents, "ConfigMap", "linescale-config")["data"]["config.yaml"])
    args = list(container["args"][1:])
    assert args[args.index("--config") + 1] == f"{mount_path}/config.yaml"
    args[args.index("--config") + 1] = str(config_path)
    main = agent_main if component == "agent" else controller_main
    environ = container_environment(
        container, field_values=FIELD_VALUES, config_maps=config_maps(documents)
    )
    # The token comes from the mounted Secret in the pod; here it is given directly
    # (test_the_token_file_is_the_mounted_secret checks the file path).
    environ["LINESCALE_TOKEN"] = TOKEN
    return load_settings(config_path, environ, main.flag_overrides(main.parse_args(args)))


def mounted_path(documents: list[dict[str, Any]], component: str, source: str) -> str:
    """Where the container mounts its volume of this source (ConfigMap config, Secret)."""
    key = {"ConfigMap": "configMap", "Secret": "secret"}[source]
    spec = pod_spec(workload(documents, component))
    (volume,) = [
        v["name"] for v in spec["volumes"] if key in v and v["name"] in ("config", "token")
    ]
    container = only_container(workload(documents, component))
    (mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume]
    return str(mount)


def test_the_base_renders_exactly_the_expected_objects(documents: list[dict[str, Any]]) -> None:
    rendered = sorted((d["kind"], d["metadata"]["name"]) for d in documents)
    expected = sorted(
        (kind, find(documents, kind, name)["metadata"]["name"]) for kind, name in EXPECTED_OBJECTS
    )
    assert rendered == expected


@pytest.mark.parametrize(
    ("kind", "name"), EXPECTED_OBJECTS, ids=[f"{k}/{n}" for k, n in EXPECTED_OBJECTS]
)
def test_every_object_is_in_the_linescale_namespace_with_the_common_labels(
    documents: list[dict[str, Any]], kind: str, name: str
) -> None:
    metadata = find(documents, kind, name)["metadata"]
    assert metadata.get("namespace") == (None if kind in CLUSTER_SCOPED else "linescale")
    assert metadata["labels"]["app.kubernetes.io/part-of"] == "linescale"


@pytest.mark.parametrize(("kind", "name"), API_OBJECTS, ids=[f"{k}/{n}" for k, n in API_OBJECTS])
def test_every_api_object_deserializes_into_its_model_with_no_unknown_key(
    documents: list[dict[str, Any]], kind: str, name: str
) -> None:
    document = find(documents, kind, name)
    model = deserialize(document)
    assert type(model).__name__ == model_name(document)
    assert unknown_keys(document, model_name(document)) == []


@pytest.mark.parametrize(("kind", "name"), MONITORS, ids=[f"{k}/{n}" for k, n in MONITORS])
def test_monitors_have_the_fields_the_operator_requires(
    documents: list[dict[str, Any]], kind: str, name: str
) -> None:
    assert monitor_problems(find(documents, kind, name)) == []


# The checkers themselves: a typo or a missing required field must fail.
BROKEN_DAEMONSET = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "x", "lables": {}},
    "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {
            "spec": {
                "hostPid": True,
                "containers": [
                    {
                        "name": "c",
                        "resources": {"requests": {"cpu": "1"}},
                        "readinessProbe": {"httpGet": {"paht": "/readyz", "port": 9400}},
                        "volumeMounts": [{"name": "v", "mountPath": "/v", "readonly": True}],
                    }
                ],
            }
        },
    },
}


def test_unknown_keys_are_found_at_any_depth() -> None:
    assert unknown_keys(BROKEN_DAEMONSET, "V1DaemonSet") == [
        ".metadata.lables",
        ".spec.template.spec.hostPid",
        ".spec.template.spec.containers[0].readinessProbe.httpGet.paht",
        ".spec.template.spec.containers[0].volumeMounts[0].readonly",
    ]


@pytest.mark.parametrize(
    ("document", "missing"),
    [
        pytest.param(
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "metadata": {"name": "x"},
                "spec": {"template": {}},
            },
            "selector",
            id="daemonset-without-selector",
        ),
        pytest.param(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "x"},
                "spec": {"ports": [{"name": "http"}]},
            },
            "port",
            id="service-port-without-port",
        ),
        pytest.param(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "x"},
                "rules": [{"resources": ["pods"]}],
            },
            "verbs",
            id="rule-without-verbs",
        ),
    ],
)
def test_a_missing_required_field_is_refused(document: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        deserialize(document)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        pytest.param(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": {"name": "x"},
                "spec": {"selector": {"matchLabels": {"a": "b"}}},
            },
            "spec.podMetricsEndpoints missing",
            id="podmonitor-without-endpoints",
        ),
        pytest.param(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "x"},
                "spec": {"endpoints": [{"port": "http"}]},
            },
            "spec.selector missing",
            id="servicemonitor-without-selector",
        ),
        pytest.param(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "x"},
                "spec": {"selector": {}, "endpoints": [{"port": "http", "paht": "/metrics"}]},
            },
            "spec.endpoints[0].paht unknown",
            id="servicemonitor-endpoint-typo",
        ),
    ],
)
def test_monitor_schema_finds_what_is_wrong(document: dict[str, Any], problem: str) -> None:
    assert problem in monitor_problems(document)


def bound_grants(documents: list[dict[str, Any]], service_account: str) -> set[str]:
    """``"verb resource"`` for every rule of every role bound to the service account."""
    grants: set[str] = set()
    for binding in documents:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        if not any(s["name"] == service_account for s in binding["subjects"]):
            continue
        role = find(documents, binding["roleRef"]["kind"], binding["roleRef"]["name"])
        grants |= {
            f"{verb} {resource}"
            for rule in role["rules"]
            for verb in rule["verbs"]
            for resource in rule["resources"]
        }
    return grants


@pytest.mark.parametrize(
    ("component", "calls"),
    [
        pytest.param("controller", CONTROLLER_RBAC, id="controller-orchestrator-and-lease"),
        # agent/kube_pods.py: list_pod_for_all_namespaces(field_selector=spec.nodeName=...).
        pytest.param("agent", {"list pods"}, id="agent-lists-its-nodes-pods"),
    ],
)
def test_the_workloads_account_is_granted_exactly_the_calls_the_code_makes(
    documents: list[dict[str, Any]], component: str, calls: set[str]
) -> None:
    account = pod_spec(workload(documents, component))["serviceAccountName"]
    assert bound_grants(documents, account) == calls


@pytest.fixture
async def agent_client(aiohttp_client: Any) -> AppClient:
    settings = load_settings(
        environ={}, overrides={"token": TOKEN, "agent": {"node": "node-1", "zone": "a"}}
    )
    deps = AgentDeps(clock=lambda: 1000.0, capacity=lambda: Capacity(cpu_cores=2, memory_bytes=1))
    return await aiohttp_client(create_agent_app(settings, deps))  # type: ignore[no-any-return]


@pytest.fixture
async def controller_client(aiohttp_client: Any) -> AppClient:
    settings = load_settings(environ={}, overrides={"token": TOKEN})
    app = create_controller_app(settings, ControllerDeps(clock=lambda: 1000.0))
    return await aiohttp_client(app)  # type: ignore[no-any-return]


@pytest.mark.parametrize("component", ["agent", "controller"])
async def test_probe_paths_are_served_by_the_app(
    documents: list[dict[str, Any]],
    agent_client: AppClient,
    controller_client: AppClient,
    component: str,
) -> None:
    client = agent_client if component == "agent" else controller_client
    probes = dict(iter_probes(only_container(workload(documents, component))))
    assert set(probes) == {"livenessProbe", "readinessProbe"}
    for probe in probes.values():
        response = await client.get(probe["httpGet"]["path"])
        assert response.status == 200, probe["httpGet"]["path"]


@pytest.mark.parametrize(("component", "port"), [("agent", 9400), ("controller", 9500)])
def test_probes_and_services_reach_the_port_the_component_listens_on(
    documents: list[dict[str, Any]], tmp_path: Path, component: str, port: int
) -> None:
    settings = effective_settings(documents, component, tmp_path)
    listen = settings.agent.listen if component == "agent" else settings.controller.listen
    assert split_listen(listen)[1] == port
    container = only_container(workload(documents, component))
    for _, probe in iter_probes(container):
        assert resolve_port(container, probe["httpGet"]["port"]) == port
    service = find(documents, "Service", f"linescale-{component}")
    assert selects(
        service["spec"]["selector"],
        workload(documents, component)["spec"]["template"]["metadata"]["labels"],
    )
    assert [resolve_port(container, p["targetPort"]) for p in service["spec"]["ports"]] == [port]


def test_the_agent_runs_with_its_node_zone_and_pod_address(
    documents: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = effective_settings(documents, "agent", tmp_path)
    zone = find(documents, "ConfigMap", "linescale-agent-zone")["data"]["zone"]
    assert (settings.agent.node, settings.agent.zone) == (FIELD_VALUES["spec.nodeName"], zone)
    assert advertise_url(settings) == f"http://{FIELD_VALUES['status.podIP']}:9400"
    assert settings.agent.dataplane.listen_host == FIELD_VALUES["status.podIP"]
    assert settings.agent.pod_list.source == "in-cluster"


def test_the_agent_reports_to_the_controller_service(
    documents: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = effective_settings(documents, "agent", tmp_path)
    service = find(documents, "Service", "linescale-controller")
    (port,) = service["spec"]["ports"]
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    expected = f"http://{name}.{namespace}.svc:{port['port']}"
    assert settings.agent.controller_url == expected


def test_the_controller_runs_the_kubernetes_orchestrator_with_a_lease_in_its_namespace(
    documents: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = effective_settings(documents, "controller", tmp_path)
    assert settings.controller.orchestrator == "kubernetes"
    assert settings.controller.leader_election
    (role,) = [d for d in documents if d["kind"] == "Role"]
    assert settings.controller.lease_namespace == role["metadata"]["namespace"]
    assert workload(documents, "controller")["spec"]["replicas"] == 2


@pytest.mark.parametrize("component", ["agent", "controller"])
def test_the_token_file_is_the_mounted_secret(
    documents: list[dict[str, Any]], tmp_path: Path, component: str
) -> None:
    settings = effective_settings(documents, component, tmp_path)
    spec = pod_spec(workload(documents, component))
    (secret,) = [v["secret"] for v in spec["volumes"] if "secret" in v]
    assert secret["secretName"] == "linescale-token"
    assert secret.get("optional") is not True  # no token, no start: fail loudly
    (item,) = secret["items"]
    expected = f"{mounted_path(documents, component, 'Secret')}/{item['path']}"
    assert settings.token_file == expected
    assert not [d for d in documents if d["kind"] == "Secret"]  # never shipped with a value


def test_the_agent_reads_the_hosts_proc_and_cgroups_read_only(
    documents: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = effective_settings(documents, "agent", tmp_path)
    spec = pod_spec(workload(documents, "agent"))
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {
        m["mountPath"]: m for m in only_container(workload(documents, "agent"))["volumeMounts"]
    }
    collector = settings.agent.collector
    for root, host_path in (
        (collector.proc_root, "/proc"),
        (collector.cgroup_root, "/sys/fs/cgroup"),
    ):
        assert host_paths[mounts[root]["name"]] == host_path
        assert mounts[root]["readOnly"] is True
    assert spec["hostPID"] is True


@pytest.mark.parametrize(
    ("component", "added"),
    [
        # py-spy (README "Profiling") needs ptrace access to other processes.
        pytest.param("agent", ["SYS_PTRACE"], id="agent-ptrace-only"),
        pytest.param("controller", [], id="controller-none"),
    ],
)
def test_containers_keep_the_least_privilege(
    documents: list[dict[str, Any]], component: str, added: list[str]
) -> None:
    context = only_container(workload(documents, component))["securityContext"]
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["capabilities"].get("add", []) == added
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context.get("privileged") is not True


def test_the_controller_runs_as_non_root(documents: list[dict[str, Any]]) -> None:
    pod_context = pod_spec(workload(documents, "controller"))["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] != 0


def test_agent_requests_cover_its_measured_overhead_and_a_full_cache(
    documents: list[dict[str, Any]], tmp_path: Path
) -> None:
    settings = effective_settings(documents, "agent", tmp_path)
    resources = only_container(workload(documents, "agent"))["resources"]
    requests, limits = resources["requests"], resources["limits"]
    assert parse_quantity(requests["cpu"]) >= MEASURED_AGENT_CPU_CORES
    needed = MEASURED_AGENT_RSS_BYTES + settings.agent.cache.capacity_bytes
    assert parse_quantity(requests["memory"]) >= needed
    for resource in ("cpu", "memory"):
        assert parse_quantity(limits[resource]) >= parse_quantity(requests[resource])


def test_the_agent_runs_on_every_node_and_rolls_out_a_tenth_at_a_time(
    documents: list[dict[str, Any]],
) -> None:
    daemonset = workload(documents, "agent")
    spec = pod_spec(daemonset)
    # An empty key with operator Exists tolerates every taint (core/v1 Toleration).
    assert {"operator": "Exists"} in spec["tolerations"]
    assert "nodeSelector" not in spec
    assert "affinity" not in spec
    rolling = daemonset["spec"]["updateStrategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == "10%"
    priority = find(documents, "PriorityClass", spec["priorityClassName"])
    # Below system-cluster-critical (2000000000): that range is the cluster's own.
    assert 0 < priority["value"] < 2_000_000_000


def test_the_budget_keeps_one_controller_through_a_drain(documents: list[dict[str, Any]]) -> None:
    budget = find(documents, "PodDisruptionBudget", "linescale-controller")
    deployment = workload(documents, "controller")
    assert selects(
        budget["spec"]["selector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"],
    )
    assert budget["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]


def pod_labels(documents: list[dict[str, Any]], component: str) -> dict[str, str]:
    return dict(workload(documents, component)["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize(
    ("component", "port", "peer", "namespaces"),
    [
        pytest.param(
            "agent", 9400, "controller", {"monitoring"}, id="agent-from-controller-and-prometheus"
        ),
        pytest.param(
            "controller", 9500, "agent", {"monitoring"}, id="controller-from-agents-and-prometheus"
        ),
    ],
)
def test_network_policies_admit_the_peer_and_prometheus_on_the_listen_port(
    documents: list[dict[str, Any]], component: str, port: int, peer: str, namespaces: set[str]
) -> None:
    policy = find(documents, "NetworkPolicy", f"linescale-{component}")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels(documents, component))
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    admitted_pods: list[dict[str, str]] = []
    admitted_namespaces: set[str] = set()
    for rule in policy["spec"]["ingress"]:
        assert [p["port"] for p in rule["ports"]] == [port]
        for source in rule["from"]:
            if "podSelector" in source:
                admitted_pods.append(source["podSelector"]["matchLabels"])
            labels = source.get("namespaceSelector", {}).get("matchLabels", {})
            admitted_namespaces |= {labels.get("kubernetes.io/metadata.name")} - {None}
    assert any(selects(selector, pod_labels(documents, peer)) for selector in admitted_pods)
    assert admitted_namespaces == namespaces


@pytest.mark.parametrize(
    ("kind", "name", "component"),
    [
        pytest.param("PodMonitor", "linescale-agent", "agent", id="agents-by-pod"),
        pytest.param(
            "ServiceMonitor", "linescale-controller", "controller", id="controller-by-service"
        ),
    ],
)
def test_monitors_scrape_the_metrics_port(
    documents: list[dict[str, Any]], kind: str, name: str, component: str
) -> None:
    monitor = find(documents, kind, name)
    container = only_container(workload(documents, component))
    if kind == "PodMonitor":
        labels = pod_labels(documents, component)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    else:
        service = find(documents, "Service", f"linescale-{component}")
        labels = service["metadata"]["labels"]
        ports = {
            p["name"]: resolve_port(container, p["targetPort"]) for p in service["spec"]["ports"]
        }
        (endpoint,) = monitor["spec"]["endpoints"]
    assert selects(monitor["spec"]["selector"]["matchLabels"], labels)
    assert ports[endpoint["port"]] == (9400 if component == "agent" else 9500)
    assert endpoint["path"] == "/metrics"


def test_the_topology_labels_overlay_renders_valid_objects(
    overlay_documents: list[dict[str, Any]],
) -> None:
    for document in overlay_documents:
        if document["kind"].endswith("Monitor"):
            assert monitor_problems(document) == []
            continue
        deserialize(document)
        assert unknown_keys(document, model_name(document)) == [], document["metadata"]["name"]


def test_the_topology_labels_overlay_takes_zone_and_region_from_the_pods_labels(
    overlay_documents: list[dict[str, Any]], tmp_path: Path
) -> None:
    # The PodTopologyLabels admission plugin copies the node's topology.kubernetes.io labels
    # onto the pod; the Downward API reads them from there.
    settings = effective_settings(overlay_documents, "agent", tmp_path)
    zone = FIELD_VALUES["metadata.labels['topology.kubernetes.io/zone']"]
    region = FIELD_VALUES["metadata.labels['topology.kubernetes.io/region']"]
    assert (settings.agent.zone, settings.agent.region) == (zone, region)
    assert settings.agent.node == FIELD_VALUES["spec.nodeName"]


def test_scrape_jobs_are_named_as_the_alerts_expect() -> None:
    alerts = (Path(__file__).resolve().parents[2] / "alerts" / "linescale-alerts.yaml").read_text()
    jobs_in_alerts = set(re.findall(r'job="(linescale-[a-z]+)"', alerts))
    documents = render()
    named = set()
    for kind, name in (
        ("PodMonitor", "linescale-agent"),
        ("ServiceMonitor", "linescale-controller"),
    ):
        spec = find(documents, kind, name)["spec"]
        endpoints = spec.get("podMetricsEndpoints") or spec.get("endpoints")
        for endpoint in endpoints:
            for relabel in endpoint.get("relabelings", []):
                if relabel.get("targetLabel") == "job":
                    named.add(relabel["replacement"])
    assert jobs_in_alerts == named == {"linescale-agent", "linescale-controller"}
