"""A Kubernetes API double for the subset Linescale uses, served over real HTTP so the real
``kubernetes`` client talks to it.

Behaves like the API server where we depend on it:

- bearer-token authentication (401 Status) and RBAC (403 Status naming the verb, the resource
  with its subresource, the API group and the namespace); ``tokens`` maps a token to the
  ``"verb resource"`` pairs it may use (``"patch deployments/scale"``; ``*`` is a wildcard);
- ``core/v1`` pods (list, get; ``pods/resize`` get/patch), nodes (list, get), events (create);
  ``apps/v1`` deployments and statefulsets (list, get, update, patch; ``scale`` get/update/patch);
  ``coordination.k8s.io/v1`` leases (list, get, create, update); ``events.k8s.io/v1`` events
  (create);
- ``labelSelector`` (``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a``,
  ``!a``) on every list, ``fieldSelector`` on the pod fields the API server supports (400 for
  others) and on ``metadata.name``/``metadata.namespace`` elsewhere;
- one global ``resourceVersion``, bumped by every write that changes an object (a no-op write
  changes nothing, as on the real server); every object carries ``metadata.resourceVersion``,
  ``uid``, ``namespace``, ``name``, ``labels`` and ``creationTimestamp``; ``generation`` on
  workloads, bumped when the spec changes;
- optimistic concurrency: a stale ``metadata.resourceVersion`` in a PUT body or a PATCH body is
  a 409 Conflict; a lease PUT without one is 422 (leases do not allow unconditional updates);
- JSON merge patches (RFC 7386) and strategic merge patches (lists of containers, env, ports,
  conditions … merge by their keys; ``$patch: delete`` in such a list); the client's default
  for a dict body is a strategic merge patch;
- Status bodies shaped as the API documents them: ``NotFound`` (``deployments.apps "x" not
  found`` with ``details.name/group/kind``), ``Conflict``, ``AlreadyExists``, ``Invalid``
  (422 with ``details.causes[].field``), ``BadRequest``, ``MethodNotAllowed``, and the generic
  ``the server could not find the requested resource`` 404 for an unknown path;
- ``pods/resize`` changes only cpu/memory of containers (other changes, removing a request or
  limit, changing the QoS class, or requests above limits are 422); the double plays the
  kubelet too and reports the new resources in ``status.containerStatuses[].resources`` at once.
  ``resize_supported=False`` makes the subresource unknown, like an API server before 1.33.

Not simulated: controllers (no rollout or new pods after a template change, no status updates
after a scale: set ``status`` yourself), watches, JSON patch and apply patch (415), deletes.

Faults for tests: ``fail_next(path_regex, status, times)`` answers the next matching requests
with that Status (and ``Retry-After`` for 429) before anything else happens;
``before_next(path_regex, action)`` runs ``action(double)`` just before a matching request is
handled, e.g. ``double.write(...)`` as a concurrent writer, for a genuine 409. Every request is
in ``requests`` (path and query) and ``calls`` (method, path, query, content type, JSON body);
``writes()`` lists the non-GET ones.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from kubernetes import client

MANAGED_LABEL = "linescale.io/managed"

# Pod field selectors the API server accepts (pkg/registry/core/pod/strategy.go ToSelectableFields).
POD_SELECTABLE_FIELDS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)
GENERIC_SELECTABLE_FIELDS = frozenset({"metadata.name", "metadata.namespace"})

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

BODY = web.RequestKey("body", object)  # the decoded JSON body, or the ApiError decoding it
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
# patchMergeKey of the lists a strategic merge patch merges rather than replaces (k8s.io/api).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "conditions": "type",
    "resizePolicy": "resourceName",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "containerStatuses": "name",
}


def status(
    code: int,
    reason: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = dict(details)
    return web.json_response(body, status=code, headers=headers)


class ApiError(Exception):
    """Raised inside a handler; answered as a Status."""

    def __init__(
        self,
        code: int,
        message: str,
        details: Mapping[str, Any] | None = None,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason or REASONS.get(code, "Unknown")
        self.message = message
        self.details = details
        self.headers = headers

    def response(self) -> web.Response:
        return status(self.code, self.reason, self.message, self.details, self.headers)


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str
    version: str
    store: str  # the KubeApiDouble list holding the objects
    verbs: frozenset[str]
    subresources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    namespaced: bool = True
    unconditional_update: bool = True
    has_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def details(self, name: str) -> dict[str, Any]:
        details: dict[str, Any] = {"name": name, "kind": self.plural}
        if self.group:
            details["group"] = self.group
        return details

    def not_found(self, name: str) -> ApiError:
        return ApiError(404, f'{self.group_resource} "{name}" not found', self.details(name))

    def conflict(self, name: str) -> ApiError:
        return ApiError(
            409,
            f'Operation cannot be fulfilled on {self.group_resource} "{name}": the object has '
            "been modified; please apply your changes to the latest version and try again",
            self.details(name),
        )


def _workload(plural: str, kind: str) -> Resource:
    return Resource(
        plural,
        kind,
        "apps",
        "v1",
        plural,
        frozenset({"list", "get", "update", "patch"}),
        {"scale": frozenset({"get", "update", "patch"})},
        has_generation=True,
    )


RESOURCES: dict[tuple[str, str], Resource] = {
    ("", "pods"): Resource(
        "pods",
        "Pod",
        "",
        "v1",
        "pods",
        frozenset({"list", "get"}),
        {"resize": frozenset({"get", "patch"})},
    ),
    ("", "nodes"): Resource(
        "nodes", "Node", "", "v1", "nodes", frozenset({"list", "get"}), namespaced=False
    ),
    ("", "events"): Resource("events", "Event", "", "v1", "events", frozenset({"create"})),
    ("apps", "deployments"): _workload("deployments", "Deployment"),
    ("apps", "statefulsets"): _workload("statefulsets", "StatefulSet"),
    ("coordination.k8s.io", "leases"): Resource(
        "leases",
        "Lease",
        "coordination.k8s.io",
        "v1",
        "leases",
        frozenset({"list", "get", "create", "update"}),
        unconditional_update=False,
    ),
    ("events.k8s.io", "events"): Resource(
        "events", "Event", "events.k8s.io", "v1", "events", frozenset({"create"})
    ),
}


# --- objects ----------------------------------------------------------------------------------


def pod(
    name: str,
    namespace: str,
    node: str,
    uid: str,
    containers: dict[str, str],
    *,
    labels: Mapping[str, str] | None = None,
    resources: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
    ports: Mapping[str, int] | None = None,
    ready: bool = True,
    ip: str = "",
) -> dict[str, Any]:
    """A pod as the API returns it; ``containers`` maps name → runtime URI container ID,
    ``resources`` name → ``{"requests": {...}, "limits": {...}}``, ``ports`` name → port."""
    resources = resources or {}
    ports = ports or {}

    def spec_container(c: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": c, "image": "img"}
        if c in resources:
            spec["resources"] = copy.deepcopy(dict(resources[c]))
        if c in ports:
            spec["ports"] = [{"containerPort": ports[c], "protocol": "TCP"}]
        return spec

    def container_status(c: str, container_id: str) -> dict[str, Any]:
        state: dict[str, Any] = {
            "name": c,
            "containerID": container_id,
            "ready": ready,
            "restartCount": 0,
            "image": "img",
            "imageID": "img@sha256:0",
        }
        if c in resources:
            state["resources"] = copy.deepcopy(dict(resources[c]))
        return state

    status_: dict[str, Any] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [container_status(c, cid) for c, cid in containers.items()],
    }
    if ip:
        status_["podIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "1",
            "labels": dict(labels or {}),
        },
        "spec": {"nodeName": node, "containers": [spec_container(c) for c in containers]},
        "status": status_,
    }


def container(
    name: str,
    requests: Mapping[str, str] | None = None,
    limits: Mapping[str, str] | None = None,
    port: int | None = None,
) -> dict[str, Any]:
    """A pod template container."""
    spec: dict[str, Any] = {"name": name, "image": f"registry.example/{name}:1"}
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    if resources:
        spec["resources"] = resources
    if port is not None:
        spec["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    return spec


def workload(
    kind: str,
    name: str,
    namespace: str,
    *,
    replicas: int = 1,
    ready_replicas: int | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    selector: Mapping[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Deployment or StatefulSet; ``labels`` default to ``linescale.io/managed=true``."""
    match_labels = dict(selector or {"app": name})
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": dict({MANAGED_LABEL: "true"} if labels is None else labels),
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": match_labels},
        "template": {
            "metadata": {"labels": dict(match_labels)},
            "spec": {"containers": containers or [container("app")]},
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    ready = replicas if ready_replicas is None else ready_replicas
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": metadata,
        "spec": spec,
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
        },
    }


def deployment(name: str, namespace: str, **kwargs: Any) -> dict[str, Any]:
    return workload("Deployment", name, namespace, **kwargs)


def statefulset(name: str, namespace: str, **kwargs: Any) -> dict[str, Any]:
    return workload("StatefulSet", name, namespace, **kwargs)


def pods_for(
    owner: dict[str, Any],
    count: int | None = None,
    *,
    nodes: tuple[str, ...] = ("node-1",),
    ready: bool | list[bool] = True,
) -> list[dict[str, Any]]:
    """The pods a workload's controller would have made from its template (``count`` defaults
    to ``spec.replicas``), each with a Ready condition, a pod IP and the template's resources."""
    meta, spec = owner["metadata"], owner["spec"]
    count = spec.get("replicas", 1) if count is None else count
    template = spec["template"]
    pods = []
    for i in range(count):
        is_ready = ready[i] if isinstance(ready, list) else ready
        name = (
            f"{meta['name']}-{i}"
            if owner["kind"] == "StatefulSet"
            else f"{meta['name']}-6c9b8d7f5-{i:05d}"
        )
        containers = template["spec"]["containers"]
        made = pod(
            name,
            meta["namespace"],
            nodes[i % len(nodes)],
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{meta['namespace']}/{name}")),
            {c["name"]: f"containerd://{i:02d}{c['name']}" for c in containers},
            labels=template["metadata"].get("labels", {}),
            ready=is_ready,
            ip=f"10.1.{i // 250}.{i % 250 + 1}",
        )
        made["spec"]["containers"] = copy.deepcopy(containers)
        for container_status, c in zip(
            made["status"]["containerStatuses"], containers, strict=True
        ):
            if "resources" in c:
                container_status["resources"] = copy.deepcopy(c["resources"])
        made["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner["kind"] if owner["kind"] == "StatefulSet" else "ReplicaSet",
                "name": meta["name"]
                if owner["kind"] == "StatefulSet"
                else f"{meta['name']}-6c9b8d7f5",
                "uid": str(
                    uuid.uuid5(uuid.NAMESPACE_URL, f"owner/{meta['namespace']}/{meta['name']}")
                ),
                "controller": True,
            }
        ]
        pods.append(made)
    return pods


def node(name: str, labels: Mapping[str, str] | None = None, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": dict(labels or {"kubernetes.io/hostname": name})},
        "spec": {},
        "status": {
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return str(value).lower() if isinstance(value, bool) else str(value)


# --- label selectors ----------------------------------------------------------------------------

_LABEL_TERM = re.compile(
    r"^\s*(?:(?P<absent>!)\s*(?P<akey>[\w./-]+)"
    r"|(?P<skey>[\w./-]+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)"
    r"|(?P<ekey>[\w./-]+)\s*(?P<eop>==|!=|=)\s*(?P<value>[\w.-]*)"
    r"|(?P<key>[\w./-]+))\s*$"
)


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip()]


def label_matcher(selector: str) -> Any:
    """A predicate over label maps for a ``labelSelector``; ``ApiError`` 400 if it cannot parse."""
    checks = []
    for term in _split_terms(selector):
        match = _LABEL_TERM.match(term)
        if match is None:
            raise ApiError(
                400, f"unable to parse requirement: found '{term.strip()}', expected: key"
            )
        groups = match.groupdict()
        if groups["akey"]:
            key = groups["akey"]
            checks.append(lambda labels, key=key: key not in labels)
        elif groups["skey"]:
            key, values = groups["skey"], {v.strip() for v in groups["values"].split(",")}
            if groups["op"] == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif groups["ekey"]:
            key, value = groups["ekey"], groups["value"]
            if groups["eop"] == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        else:
            key = groups["key"]
            checks.append(lambda labels, key=key: key in labels)

    def matches(labels: Mapping[str, str]) -> bool:
        return all(check(labels) for check in checks)

    return matches


def selector_string(selector: Mapping[str, Any]) -> str:
    """A ``LabelSelector`` (matchLabels, matchExpressions) as a selector string."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values", [])
        if op in ("In", "NotIn"):
            terms.append(f"{key} {op.lower()} ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        else:
            terms.append(f"!{key}")
    return ",".join(terms)


# --- patches ----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch over the lists in ``MERGE_KEYS``; other lists are replaced."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif key in MERGE_KEYS and isinstance(value, list):
            result[key] = _merge_list(result.get(key) or [], value, MERGE_KEYS[key])
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _merge_list(items: list[Any], patch: list[Any], key: str) -> list[Any]:
    merged = copy.deepcopy(items)
    for element in patch:
        if not isinstance(element, dict) or key not in element:
            raise ApiError(400, f"map: {element!r} does not contain declared merge key: {key}")
        index = next((i for i, item in enumerate(merged) if item.get(key) == element[key]), None)
        if element.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(strategic_merge_patch({}, element))
        else:
            merged[index] = strategic_merge_patch(merged[index], element)
    return merged


# --- quantities (independent of shared.quantities on purpose) -----------

_SUFFIXES = {
    **{s: Decimal(2) ** (10 * (i + 1)) for i, s in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])},
    **{s: Decimal(10) ** e for s, e in [("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3)]},
    **{s: Decimal(10) ** e for s, e in [("M", 6), ("G", 9), ("T", 12), ("P", 15), ("E", 18)]},
}


def quantity(value: Any) -> Decimal:
    text = str(value)
    match = re.fullmatch(r"([+-]?(?:\d+\.?\d*|\.\d+))([eE][+-]?\d+|[a-zA-Z]*)", text)
    if match is None:
        raise ValueError(text)
    number, suffix = match.groups()
    if suffix[:1] in ("e", "E") and suffix[1:]:
        return Decimal(number).scaleb(int(suffix[1:]))
    if suffix not in _SUFFIXES:
        raise ValueError(text)
    try:
        return Decimal(number) * _SUFFIXES[suffix]
    except InvalidOperation as error:  # pragma: no cover
        raise ValueError(text) from error


def qos_class(spec: Mapping[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' cpu and memory (as the API)."""
    requests_seen = limits_seen = False
    guaranteed = True
    for c in spec.get("containers", []):
        resources = c.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        requests_seen |= any(r in requests for r in ("cpu", "memory"))
        limits_seen |= any(r in limits for r in ("cpu", "memory"))
        for name in ("cpu", "memory"):
            if name not in limits or (
                name in requests and quantity(requests[name]) != quantity(limits[name])
            ):
                guaranteed = False
    if not requests_seen and not limits_seen:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


# --- the double -------------------------------------------------------------------------------


@dataclass
class Fault:
    pattern: re.Pattern[str]
    status: int
    times: int
    method: str | None = None
    retry_after: int | None = None
    message: str = ""


@dataclass
class Hook:
    pattern: re.Pattern[str]
    action: Callable[[KubeApiDouble], None]
    times: int
    method: str | None = None


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: Mapping[str, str]
    content_type: str
    body: Any


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time(value: Any, path: str) -> str:
    """A ``MicroTime`` as the API server writes it (``...T12:00:00.123456Z``)."""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as error:
        raise ApiError(400, f"parsing time {value!r} for {path}: {error}") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _field_error(kind: str, name: str, group: str, causes: list[dict[str, str]]) -> ApiError:
    def sentence(cause: dict[str, str]) -> str:
        return f"{cause['field']}: {cause['message']}"

    message = ", ".join(sentence(c) for c in causes)
    if len(causes) > 1:
        message = f"[{message}]"
    qualified = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name, "group": group, "kind": kind}
    details = {k: v for k, v in details.items() if v}  # Go's omitempty
    details["causes"] = causes
    return ApiError(422, f'{qualified} "{name}" is invalid: {message}', details)


def _invalid(path: str, value: Any, detail: str) -> dict[str, str]:
    shown = json.dumps(value) if isinstance(value, str) else value
    return {
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {shown}: {detail}",
        "field": path,
    }


def _forbidden(path: str, detail: str) -> dict[str, str]:
    return {"reason": "FieldValueForbidden", "message": f"Forbidden: {detail}", "field": path}


def _required(path: str, detail: str) -> dict[str, str]:
    return {"reason": "FieldValueRequired", "message": f"Required value: {detail}", "field": path}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "object" if isinstance(value, dict) else "array"


@dataclass
class KubeApiDouble:
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> allowed "verb resource"
    pods: list[dict[str, Any]] = field(default_factory=list)
    resource_version: int = 100
    requests: list[str] = field(default_factory=list)  # path and query of every request
    deployments: list[dict[str, Any]] = field(default_factory=list)
    statefulsets: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    leases: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # core/v1 and events.k8s.io/v1
    users: dict[str, str] = field(default_factory=dict)  # token -> user name in 403 messages
    resize_supported: bool = True  # False: no pods/resize subresource (API server < 1.33)
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        for resource in RESOURCES.values():
            for obj in self._store(resource):
                if obj.get("apiVersion", resource.api_version) == resource.api_version:
                    self._stamp(resource, obj, fresh=False)

    # -- test helpers --------------------------------------------------------------------------

    def fail_next(
        self,
        path_regex: str,
        status_code: int,
        times: int = 1,
        *,
        method: str | None = None,
        retry_after: int | None = None,
        message: str = "",
    ) -> None:
        """Answer the next ``times`` requests whose path matches (``re.search``) with a
        ``status_code`` Status, before authentication or any change."""
        with self._lock:
            self.faults.append(
                Fault(re.compile(path_regex), status_code, times, method, retry_after, message)
            )

    def before_next(
        self,
        path_regex: str,
        action: Callable[[KubeApiDouble], None],
        times: int = 1,
        *,
        method: str | None = None,
    ) -> None:
        """Run ``action(double)`` just before handling the next ``times`` matching requests:
        a concurrent writer, say (see ``write``)."""
        with self._lock:
            self.hooks.append(Hook(re.compile(path_regex), action, times, method))

    def write(
        self, plural: str, namespace: str, name: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """Change a stored object as another client's write would (resourceVersion, generation)."""
        resource = self._resource(plural, None)
        with self._lock:
            current = self._get(resource, namespace, name)
            new = copy.deepcopy(current)
            change(new)
            self._commit(resource, current, new)
            return current

    def find(
        self, plural: str, namespace: str, name: str, group: str | None = None
    ) -> dict[str, Any] | None:
        """The stored object (live: do not mutate while requests run)."""
        resource = self._resource(plural, group)
        with self._lock:
            return self._find(resource, namespace, name)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object as if created through the API (bumps the resourceVersion)."""
        group, _, _ = obj["apiVersion"].rpartition("/")
        plural = {"Pod": "pods", "Node": "nodes", "Deployment": "deployments"}.get(
            obj["kind"], obj["kind"].lower() + "s"
        )
        resource = RESOURCES[(group, plural)]
        with self._lock:
            self._stamp(resource, obj, fresh=True)
            self._store(resource).append(obj)
        return obj

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method not in ("GET", "HEAD")]

    # -- machinery -----------------------------------------------------------------------------

    def _resource(self, plural: str, group: str | None) -> Resource:
        matches = [r for (g, p), r in RESOURCES.items() if p == plural and group in (None, g)]
        if not matches:
            raise KeyError(plural)
        return matches[0]

    def _store(self, resource: Resource) -> list[dict[str, Any]]:
        store: list[dict[str, Any]] = getattr(self, resource.store)
        return store

    def _objects(self, resource: Resource) -> list[dict[str, Any]]:
        return [
            o
            for o in self._store(resource)
            if o.get("apiVersion", resource.api_version) == resource.api_version
        ]

    def _find(self, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
        for obj in self._objects(resource):
            meta = obj["metadata"]
            if meta.get("name") == name and (
                not resource.namespaced or meta.get("namespace") == namespace
            ):
                return obj
        return None

    def _bump(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def _stamp(self, resource: Resource, obj: dict[str, Any], *, fresh: bool) -> None:
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})
        meta.setdefault("creationTimestamp", _now())
        if fresh or "resourceVersion" not in meta:
            meta["resourceVersion"] = self._bump() if fresh else str(self.resource_version)
        if "uid" not in meta:
            key = f"{resource.group_resource}/{meta.get('namespace', '')}/{meta['name']}"
            meta["uid"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{key}/{meta['resourceVersion']}"))
        if resource.has_generation:
            meta.setdefault("generation", 1)

    def authorize(
        self,
        request: web.Request,
        verb: str,
        resource: str,
        *,
        group: str = "",
        namespace: str = "",
        name: str = "",
    ) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            return status(401, "Unauthorized", "Unauthorized")
        allowed = self.tokens[token]
        if not {f"{verb} {resource}", f"* {resource}", f"{verb} *", "* *"} & allowed:
            user = self.users.get(token, "system:serviceaccount:linescale:agent")
            base = resource.partition("/")[0]
            subject = f"{base}.{group}" if group else base
            if name:
                subject += f' "{name}"'
            scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
            details: dict[str, Any] = {"kind": base}
            if name:
                details["name"] = name
            if group:
                details["group"] = group
            return status(
                403,
                "Forbidden",
                f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
                f'in API group "{group}" {scope}',
                details,
            )
        return None

    def select(self, selector: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``fieldSelector`` over pods."""
        return self._select_fields(selector, items, POD_SELECTABLE_FIELDS)

    def _select_fields(
        self, selector: str, items: list[dict[str, Any]], supported: frozenset[str]
    ) -> list[dict[str, Any]]:
        for term in filter(None, selector.split(",")):
            negate = "!=" in term
            key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
            if key not in supported:
                raise ApiError(400, f"field label not supported: {key}")
            items = [p for p in items if (field_value(p, key) == value) != negate]
        return items

    def _take_fault(self, request: web.Request) -> web.Response | None:
        for fault in self.faults:
            if fault.times <= 0 or (fault.method and fault.method != request.method):
                continue
            if not fault.pattern.search(request.path):
                continue
            fault.times -= 1
            headers: dict[str, str] = {}
            details: dict[str, Any] = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
                details["retryAfterSeconds"] = fault.retry_after
            messages = {
                409: "Operation cannot be fulfilled: the object has been modified; please apply "
                "your changes to the latest version and try again",
                429: "Too many requests, please try again later.",
                500: "Internal error occurred: injected fault",
                503: "the server is currently unable to handle the request",
            }
            message = fault.message or messages.get(fault.status, "injected fault")
            return status(
                fault.status, REASONS.get(fault.status, "Unknown"), message, details, headers
            )
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = ApiError(400, "the body of the request could not be decoded as JSON")
        request[BODY] = body
        # Handlers never suspend: everything below runs under the lock, in one go.
        with self._lock:
            self.requests.append(request.path_qs)
            self.calls.append(
                Call(
                    request.method,
                    request.path,
                    dict(request.query),
                    request.content_type,
                    None if isinstance(body, ApiError) else body,
                )
            )
            if fault := self._take_fault(request):
                return fault
            for hook in self.hooks:
                if (
                    hook.times > 0
                    and hook.method in (None, request.method)
                    and hook.pattern.search(request.path)
                ):
                    hook.times -= 1
                    hook.action(self)
            try:
                if isinstance(body, ApiError):
                    raise body
                return await handler(request)
            except ApiError as error:
                return error.response()
            except web.HTTPNotFound:
                return status(404, "NotFound", "the server could not find the requested resource")
            except web.HTTPMethodNotAllowed:
                return status(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):
            app.router.add_route("*", prefix + "/{plural}", self._dispatch)
            app.router.add_route("*", prefix + "/{plural}/{name}", self._dispatch)
            app.router.add_route("*", prefix + "/namespaces/{namespace}/{plural}", self._dispatch)
            app.router.add_route(
                "*", prefix + "/namespaces/{namespace}/{plural}/{name}", self._dispatch
            )
            app.router.add_route(
                "*",
                prefix + "/namespaces/{namespace}/{plural}/{name}/{subresource}",
                self._dispatch,
            )
        return app

    # -- dispatch ------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.Response:
        info = request.match_info
        group, version, plural = info.get("group", ""), info["version"], info["plural"]
        namespace, name = info.get("namespace", ""), info.get("name", "")
        subresource = info.get("subresource", "")
        resource = RESOURCES.get((group, plural))
        if (
            resource is None
            or resource.version != version
            or (bool(namespace) and not resource.namespaced)
            or (subresource and subresource not in resource.subresources)
            or (subresource == "resize" and not self.resize_supported)
            or (not resource.namespaced and subresource)
        ):
            raise web.HTTPNotFound()
        if resource.namespaced and name and not namespace:
            raise web.HTTPNotFound()
        verb = {
            "GET": "get" if name else "list",
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete",
        }.get(request.method, "")
        allowed = resource.subresources[subresource] if subresource else resource.verbs
        if verb not in allowed or (verb == "create" and name):
            raise web.HTTPMethodNotAllowed(request.method, [])
        rbac_resource = f"{plural}/{subresource}" if subresource else plural
        if refused := self.authorize(
            request, verb, rbac_resource, group=group, namespace=namespace, name=name
        ):
            return refused
        body = request[BODY]
        if subresource == "scale":
            return self._scale(resource, request, verb, namespace, name, body)
        if subresource == "resize":
            return self._resize(resource, request, verb, namespace, name, body)
        if verb == "list":
            return self._list(resource, request, namespace)
        if verb == "get":
            return web.json_response(self._get(resource, namespace, name))
        if verb == "create":
            return self._create(resource, namespace, body)
        if verb == "update":
            return self._update(resource, namespace, name, body)
        return self._patch(resource, request, namespace, name, body)

    def _get(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        obj = self._find(resource, namespace, name)
        if obj is None:
            raise resource.not_found(name)
        return obj

    def _list(self, resource: Resource, request: web.Request, namespace: str) -> web.Response:
        items = self._objects(resource)
        if namespace:
            items = [o for o in items if o["metadata"].get("namespace") == namespace]
        if selector := request.query.get("labelSelector", ""):
            matches = label_matcher(selector)
            items = [o for o in items if matches(o["metadata"].get("labels") or {})]
        supported = (
            POD_SELECTABLE_FIELDS if resource.plural == "pods" else GENERIC_SELECTABLE_FIELDS
        )
        items = self._select_fields(request.query.get("fieldSelector", ""), items, supported)
        return web.json_response(
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(self.resource_version)},
                "items": items,
            }
        )

    def _decoded(self, resource: Resource, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format")
        api_version = body.get("apiVersion", resource.api_version)
        kind = body.get("kind", resource.kind)
        if (api_version, kind) != (resource.api_version, resource.kind):
            raise ApiError(
                400,
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({resource.api_version})",
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        obj.setdefault("metadata", {})
        return obj

    def _create(self, resource: Resource, namespace: str, body: Any) -> web.Response:
        obj = self._decoded(resource, body)
        meta = obj["metadata"]
        if meta.get("namespace", namespace) != namespace:
            raise ApiError(
                400,
                "the namespace of the provided object does not match the namespace sent on the "
                "request",
            )
        if resource.namespaced:
            meta["namespace"] = namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise _field_error(
                    resource.kind,
                    "",
                    resource.group,
                    [_required("metadata.name", "name or generateName is required")],
                )
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        if self._find(resource, namespace, meta["name"]) is not None:
            raise ApiError(
                409,
                f'{resource.group_resource} "{meta["name"]}" already exists',
                resource.details(meta["name"]),
                reason="AlreadyExists",
            )
        for server_field in ("resourceVersion", "uid", "creationTimestamp", "generation"):
            meta.pop(server_field, None)
        self._validate(resource, obj, None)
        self._stamp(resource, obj, fresh=True)
        self._store(resource).append(obj)
        return web.json_response(obj, status=201)

    def _check_precondition(
        self, resource: Resource, current: dict[str, Any], wanted: Any, name: str
    ) -> None:
        if wanted and str(wanted) != current["metadata"]["resourceVersion"]:
            raise resource.conflict(name)

    def _update(self, resource: Resource, namespace: str, name: str, body: Any) -> web.Response:
        obj = self._decoded(resource, body)
        current = self._get(resource, namespace, name)
        meta = obj["metadata"]
        if meta.get("name", name) != name:
            raise ApiError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})",
            )
        wanted = meta.get("resourceVersion", "")
        if not wanted and not resource.unconditional_update:
            raise _field_error(
                resource.kind,
                name,
                resource.group,
                [_invalid("metadata.resourceVersion", "0x0", "must be specified for an update")],
            )
        self._check_precondition(resource, current, wanted, name)
        if resource.has_generation:
            obj["status"] = copy.deepcopy(current.get("status", {}))
        return self._commit(resource, current, obj)

    def _apply_patch(self, request: web.Request, current: Any, body: Any) -> Any:
        content_type = request.content_type
        if content_type == MERGE_PATCH:
            patcher = merge_patch
        elif content_type == STRATEGIC_MERGE_PATCH:
            patcher = strategic_merge_patch
        else:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH} (not {content_type})",
            )
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request was in an unknown format")
        return patcher(current, body)

    def _patch(
        self, resource: Resource, request: web.Request, namespace: str, name: str, body: Any
    ) -> web.Response:
        current = self._get(resource, namespace, name)
        patched = self._apply_patch(request, current, body)
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        self._check_precondition(resource, current, wanted, name)
        for immutable in ("name", "namespace", "uid"):
            patched["metadata"][immutable] = current["metadata"].get(immutable)
        if resource.has_generation:
            patched["status"] = copy.deepcopy(current.get("status", {}))
        self._check_types(resource, patched, body)
        return self._commit(resource, current, patched)

    def _commit(
        self, resource: Resource, current: dict[str, Any], new: dict[str, Any]
    ) -> web.Response:
        """Validate and store ``new`` in place of ``current``; a no-op write changes nothing."""
        meta, old_meta = new["metadata"], current["metadata"]
        for server_field in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            if server_field in old_meta:
                meta[server_field] = old_meta[server_field]
            else:
                meta.pop(server_field, None)
        if resource.namespaced:
            meta["namespace"] = old_meta.get("namespace")
        meta.setdefault("labels", {})
        self._validate(resource, new, current)
        if new == current:
            return web.json_response(current)
        if resource.has_generation and new.get("spec") != current.get("spec"):
            meta["generation"] = old_meta.get("generation", 1) + 1
        meta["resourceVersion"] = self._bump()
        current.clear()
        current.update(new)
        return web.json_response(current)

    # -- validation ----------------------------------------------------------------------------

    def _check_types(self, resource: Resource, patched: dict[str, Any], patch: Any) -> None:
        """What decoding the patched object into Go structs would refuse (422 on ``patch``)."""
        replicas = (patched.get("spec") or {}).get("replicas")
        if resource.has_generation and replicas is not None and not _is_int(replicas):
            raise _field_error(
                "",
                "",
                "",
                [
                    _invalid(
                        "patch",
                        json.dumps(patch),
                        f"json: cannot unmarshal {_go_type(replicas)} into Go struct field "
                        f"{resource.kind}Spec.spec.replicas of type int32",
                    )
                ],
            )

    def _validate(
        self, resource: Resource, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        name = obj["metadata"].get("name", "")
        causes: list[dict[str, str]] = []
        spec = obj.get("spec") or {}
        if resource.has_generation:
            replicas = spec.get("replicas", 1)
            if not _is_int(replicas):
                raise ApiError(
                    400,
                    f"json: cannot unmarshal {_go_type(replicas)} into Go struct field "
                    f"{resource.kind}Spec.spec.replicas of type int32",
                )
            if replicas < 0:
                causes.append(
                    _invalid("spec.replicas", replicas, "must be greater than or equal to 0")
                )
            if old is not None and spec.get("selector") != old["spec"].get("selector"):
                causes.append(_invalid("spec.selector", spec.get("selector"), "field is immutable"))
            template_spec = (spec.get("template") or {}).get("spec") or {}
            causes += _container_causes(template_spec, "spec.template.spec")
        if resource.plural == "leases":
            causes += self._lease_causes(obj)
        if resource.plural == "events":
            causes += _event_causes(resource, obj)
        if causes:
            raise _field_error(resource.kind, name, resource.group, causes)

    def _lease_causes(self, obj: dict[str, Any]) -> list[dict[str, str]]:
        spec = obj.setdefault("spec", {})
        causes = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not _is_int(duration) or duration <= 0):
            causes.append(_invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and (not _is_int(transitions) or transitions < 0):
            causes.append(
                _invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0")
            )
        for time_field in ("acquireTime", "renewTime"):
            if spec.get(time_field) is not None:
                spec[time_field] = micro_time(spec[time_field], f"spec.{time_field}")
        return causes

    # -- subresources --------------------------------------------------------------------------

    def _scale_of(self, resource: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": selector_string(obj["spec"].get("selector") or {}),
            },
        }

    def _scale(
        self,
        resource: Resource,
        request: web.Request,
        verb: str,
        namespace: str,
        name: str,
        body: Any,
    ) -> web.Response:
        current = self._get(resource, namespace, name)
        scale = self._scale_of(resource, current)
        if verb == "get":
            return web.json_response(scale)
        if verb == "update":
            if not isinstance(body, dict):
                raise ApiError(400, "the body of the request was in an unknown format")
            if (body.get("metadata") or {}).get("name", name) != name:
                raise ApiError(
                    400,
                    f"the name of the object ({body['metadata']['name']}) does not match the "
                    f"name on the URL ({name})",
                )
            replicas = (body.get("spec") or {}).get("replicas", 0)
            if not _is_int(replicas):
                raise ApiError(
                    400,
                    f"json: cannot unmarshal {_go_type(replicas)} into Go struct field "
                    "ScaleSpec.spec.replicas of type int32",
                )
            wanted = (body.get("metadata") or {}).get("resourceVersion")
        else:
            patched = self._apply_patch(request, scale, body)
            replicas = (patched.get("spec") or {}).get("replicas")
            if not _is_int(replicas):
                raise _field_error(
                    "",
                    "",
                    "",
                    [
                        _invalid(
                            "patch",
                            json.dumps(body),
                            f"json: cannot unmarshal {_go_type(replicas)} into Go struct field "
                            "ScaleSpec.spec.replicas of type int32",
                        )
                    ],
                )
            wanted = (body.get("metadata") or {}).get("resourceVersion")
        self._check_precondition(resource, current, wanted, name)
        if replicas < 0:
            raise _field_error(
                "Scale",
                name,
                "autoscaling",
                [_invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
            )
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = replicas
        self._commit(resource, current, new)
        return web.json_response(self._scale_of(resource, current))

    def _resize(
        self,
        resource: Resource,
        request: web.Request,
        verb: str,
        namespace: str,
        name: str,
        body: Any,
    ) -> web.Response:
        current = self._get(resource, namespace, name)
        if verb == "get":
            return web.json_response(current)
        patched = self._apply_patch(request, current, body)
        self._check_precondition(
            resource, current, (body.get("metadata") or {}).get("resourceVersion"), name
        )
        causes = _resize_causes(current["spec"], patched.get("spec") or {})
        if causes:
            raise _field_error("Pod", name, "", causes)
        new = copy.deepcopy(current)
        new["spec"] = patched["spec"]
        # The kubelet's part: actuate at once and report it.
        resources = {c["name"]: c.get("resources") for c in new["spec"]["containers"]}
        for container_status in new.get("status", {}).get("containerStatuses", []):
            if resources.get(container_status["name"]) is not None:
                container_status["resources"] = copy.deepcopy(resources[container_status["name"]])
        return self._commit(resource, current, new)


def _container_causes(pod_spec: Mapping[str, Any], path: str) -> list[dict[str, str]]:
    causes = []
    for i, c in enumerate(pod_spec.get("containers") or []):
        resources = c.get("resources") or {}
        malformed = False
        for kind in ("requests", "limits"):
            for resource_name, value in (resources.get(kind) or {}).items():
                try:
                    quantity(value)
                except ValueError:
                    malformed = True
                    causes.append(
                        _invalid(
                            f"{path}.containers[{i}].resources.{kind}[{resource_name}]",
                            value,
                            "quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                        )
                    )
        if malformed:
            continue
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        for resource_name, value in requests.items():
            if resource_name in limits and quantity(value) > quantity(limits[resource_name]):
                causes.append(
                    _invalid(
                        f"{path}.containers[{i}].resources.requests",
                        value,
                        f"must be less than or equal to {resource_name} limit of "
                        f"{limits[resource_name]}",
                    )
                )
    return causes


def _resize_causes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, str]]:
    def without_resources(spec: Mapping[str, Any]) -> Any:
        stripped = copy.deepcopy(dict(spec))
        for c in stripped.get("containers") or []:
            c.pop("resources", None)
        return stripped

    if without_resources(old) != without_resources(new):
        return [_forbidden("spec", "only cpu and memory resources are mutable")]
    causes: list[dict[str, str]] = []
    for i, (before, after) in enumerate(zip(old["containers"], new["containers"], strict=True)):
        path = f"spec.containers[{i}].resources"
        old_resources, new_resources = before.get("resources") or {}, after.get("resources") or {}
        for kind in ("requests", "limits"):
            old_values = old_resources.get(kind) or {}
            new_values = new_resources.get(kind) or {}
            for resource_name in set(old_values) | set(new_values):
                if resource_name not in ("cpu", "memory") and old_values.get(
                    resource_name
                ) != new_values.get(resource_name):
                    causes.append(_forbidden("spec", "only cpu and memory resources are mutable"))
                elif resource_name in old_values and resource_name not in new_values:
                    causes.append(
                        _forbidden(
                            f"{path}.{kind}[{resource_name}]", "resource removal is not supported"
                        )
                    )
    causes += _container_causes(new, "spec")
    if not causes and qos_class(old) != qos_class(new):
        causes.append(
            _invalid("spec", qos_class(new), "Pod QOS Class may not change as a result of resizing")
        )
    return causes


def _event_causes(resource: Resource, obj: dict[str, Any]) -> list[dict[str, str]]:
    causes = []
    if obj.get("type") not in (None, "Normal", "Warning"):
        causes.append(_invalid("type", obj.get("type"), "has invalid value"))
    if resource.group == "events.k8s.io":
        for required in (
            "eventTime",
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
        ):
            if not obj.get(required):
                causes.append(_required(required, ""))
        if obj.get("eventTime"):
            obj["eventTime"] = micro_time(obj["eventTime"], "eventTime")
        if len(obj.get("note") or "") > 1024:
            causes.append(_invalid("note", "...", "can have at most 1024 characters"))
    else:
        involved = obj.get("involvedObject") or {}
        if involved.get("namespace", obj["metadata"].get("namespace")) != obj["metadata"].get(
            "namespace"
        ):
            causes.append(
                _invalid(
                    "involvedObject.namespace",
                    involved.get("namespace"),
                    "does not match event.namespace",
                )
            )
    return causes


@contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on a free loopback port from its own thread, so synchronous clients (the
    ``kubernetes`` client) can call it; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()
    url: list[str] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        url.append(f"http://127.0.0.1:{port}")
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="kube-api-double", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("API double did not start")
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def api_client(url: str, token: str | None) -> client.ApiClient:
    """The real ``kubernetes`` client, pointed at a served double with a bearer token (none:
    unauthenticated)."""
    configuration = client.Configuration(host=url)
    if token:
        configuration.api_key = {"BearerToken": token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return client.ApiClient(configuration)


def write_kubeconfig(path: Path, url: str, token: str, user: str = "controller") -> Path:
    """A kubeconfig file pointing at a served double with a bearer token, for the code paths
    that read one (``from_kubeconfig``, the agent's pod list, controller processes)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": url}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": user}}],
        "current-context": "double",
    }
    path.write_text(yaml.safe_dump(config))
    return path
