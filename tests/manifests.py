"""Render the kustomize base and hold its objects up to the Kubernetes API models.

The ``kubernetes`` client's model classes are generated from the API's OpenAPI document: each
knows its fields (``attribute_map``: Python name -> JSON key; ``openapi_types``: Python name ->
type) and refuses a missing required field when deserialized. The client itself ignores keys
it does not know, so :func:`unknown_keys` walks the object against those two maps: a typo such
as ``hostPid`` is an unknown key there, while the API server would drop it silently.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes.client
import yaml
from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parents[1]
BASE = REPO / "deploy" / "daemonset"
TOPOLOGY_LABELS_OVERLAY = REPO / "deploy" / "overlays" / "topology-labels"

# apiVersion/kind -> the client's model class name.
MODELS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("scheduling.k8s.io/v1", "PriorityClass"): "V1PriorityClass",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding",
}

# Container types as the generated models spell them: ``List[X]``/``Dict[str, X]`` in the
# pydantic models of recent clients, ``list[X]``/``dict(str, X)`` in older ones.
_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
_DICT = re.compile(r"^(?:dict\(|Dict\[)[^,]+, (.+)[)\]]$")


def render(base: Path = BASE) -> list[dict[str, Any]]:
    """``kubectl kustomize`` the base; raises CalledProcessError (with kubectl's message)."""
    result = subprocess.run(
        ["kubectl", "kustomize", str(base)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, result.args, result.stdout, result.stderr
        )
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def model_name(document: Mapping[str, Any]) -> str:
    """The model class for a rendered object; KeyError for a kind this table does not know."""
    return MODELS[(document["apiVersion"], document["kind"])]


def deserialize(document: Mapping[str, Any]) -> Any:
    """The object as the client's model; ValueError when a required field is missing."""
    client = ApiClient()
    return client._ApiClient__deserialize(dict(document), model_name(document))  # type: ignore[attr-defined]


def unknown_keys(value: Any, type_name: str, path: str = "") -> list[str]:
    """JSON paths in ``value`` that the model ``type_name`` (recursively) does not define."""
    if match := _LIST.match(type_name):
        if not isinstance(value, list):
            return []
        return [
            found
            for index, item in enumerate(value)
            for found in unknown_keys(item, match.group(1), f"{path}[{index}]")
        ]
    if match := _DICT.match(type_name):
        if not isinstance(value, dict):
            return []
        return [
            found
            for key, item in value.items()
            for found in unknown_keys(item, match.group(1), f"{path}.{key}")
        ]
    model = getattr(kubernetes.client, type_name, None)
    if model is None or not isinstance(value, dict):
        return []  # a primitive, or ``object`` (int-or-string, free-form)
    by_json_key = {json_key: attr for attr, json_key in model.attribute_map.items()}
    found: list[str] = []
    for key, item in value.items():
        if key not in by_json_key:
            found.append(f"{path}.{key}")
            continue
        found += unknown_keys(item, model.openapi_types[by_json_key[key]], f"{path}.{key}")
    return found


# Prometheus Operator objects: no model class in the client, so the fields Linescale uses are
# checked by hand against the CRDs (monitoring.coreos.com/v1; ``selector`` and the endpoint
# list are required by the operator, an endpoint names its port).
MONITOR_SCHEMA: dict[str, dict[str, Any]] = {
    "PodMonitor": {
        "required": ("selector", "podMetricsEndpoints"),
        "endpoints": "podMetricsEndpoints",
        "spec_keys": {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel"},
        "endpoint_keys": {
            "port",
            "portNumber",
            "path",
            "interval",
            "scrapeTimeout",
            "scheme",
            "relabelings",
        },
    },
    "ServiceMonitor": {
        "required": ("selector", "endpoints"),
        "endpoints": "endpoints",
        "spec_keys": {"selector", "endpoints", "namespaceSelector", "jobLabel"},
        "endpoint_keys": {
            "port",
            "targetPort",
            "path",
            "interval",
            "scrapeTimeout",
            "scheme",
            "relabelings",
        },
    },
}


def monitor_problems(document: Mapping[str, Any]) -> list[str]:
    """What a PodMonitor or ServiceMonitor lacks or has that the CRD does not define."""
    schema = MONITOR_SCHEMA[document["kind"]]
    problems: list[str] = []
    if document.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append(f"apiVersion {document.get('apiVersion')!r}")
    if not document.get("metadata", {}).get("name"):
        problems.append("metadata.name missing")
    spec = document.get("spec") or {}
    problems += [f"spec.{key} missing" for key in schema["required"] if not spec.get(key)]
    problems += [f"spec.{key} unknown" for key in sorted(set(spec) - schema["spec_keys"])]
    for index, endpoint in enumerate(spec.get(schema["endpoints"]) or []):
        where = f"spec.{schema['endpoints']}[{index}]"
        if not endpoint.get("port") and not endpoint.get("portNumber"):
            problems.append(f"{where}.port missing")
        unknown = sorted(set(endpoint) - schema["endpoint_keys"])
        problems += [f"{where}.{key} unknown" for key in unknown]
    return problems


def find(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one rendered object of this kind whose name is ``name`` (or ``name-<hash>``)."""
    generated = re.compile(rf"{re.escape(name)}-[a-z0-9]{{10}}")  # configMapGenerator's hash
    matches = [
        d
        for d in documents
        if d["kind"] == kind
        and (d["metadata"]["name"] == name or generated.fullmatch(d["metadata"]["name"]))
    ]
    if len(matches) != 1:
        raise LookupError(f"{len(matches)} {kind} named {name}")
    return matches[0]


def pod_spec(workload: Mapping[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def only_container(workload: Mapping[str, Any]) -> dict[str, Any]:
    (container,) = pod_spec(workload)["containers"]
    return dict(container)


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A ``matchLabels`` selector matches when every pair is among the labels."""
    return all(labels.get(key) == value for key, value in selector.items())


_DEPENDENT = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def container_environment(
    container: Mapping[str, Any],
    *,
    field_values: Mapping[str, str],
    config_maps: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """The environment the kubelet would give the container, in order: ``fieldRef`` from
    ``field_values``, ``configMapKeyRef`` from ``config_maps`` (rendered names), and
    ``$(VAR)`` expanded from variables defined earlier, as the kubelet does."""
    environment: dict[str, str] = {}
    for variable in container.get("env") or []:
        source = variable.get("valueFrom")
        if source is not None and len(source) != 1:
            # The API server's own rule: "may not have more than one field specified".
            raise ValueError(f"{variable['name']}: valueFrom has {sorted(source)}")
        if source is None:
            value = _DEPENDENT.sub(
                lambda m: environment.get(m.group(1), m.group(0)), variable.get("value", "")
            )
        elif "fieldRef" in source:
            value = field_values[source["fieldRef"]["fieldPath"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = config_maps[ref["name"]][ref["key"]]
        else:
            raise ValueError(f"{variable['name']}: unsupported source {sorted(source)}")
        environment[variable["name"]] = value
    return environment


def iter_probes(container: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind in container:
            yield kind, dict(container[kind])


def resolve_port(container: Mapping[str, Any], port: int | str) -> int:
    """A probe or Service target port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)
