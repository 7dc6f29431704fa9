"""The ``Orchestrator`` port over the Kubernetes API (the ``kubernetes`` client).

- Discovery: Deployments and StatefulSets labelled ``linescale.io/managed=true`` (optionally in
  given namespaces only), their pods through the workload's ``spec.selector``, each container's
  requests and limits, and pod readiness (the ``Ready`` condition). A workload whose labels no
  longer say managed is neither listed nor acted on.
- ``scale`` patches the ``scale`` subresource with the ``resourceVersion`` it read as a
  precondition; a 409 means someone else wrote in between, so it re-reads and tries again (a
  bounded number of times).
- ``resize`` resizes each pod in place through ``pods/resize`` (Kubernetes ≥ 1.33) and records
  the wanted resources in a ``resources.linescale.io/<container>`` annotation on the workload
  (new pods still come from the unchanged template). Where the API server has no ``pods/resize``
  (404 for the subresource while the pod exists), or no pod is running, it patches the pod
  template instead, which rolls the pods; the result's detail says which happened.
- Errors are values: 429, 5xx and transport failures are transient (``retry_after_seconds``,
  honouring ``Retry-After``); other 4xx are permanent; ``CancelledError`` propagates.
- Every action that changed something emits an ``events.k8s.io/v1`` Event regarding the workload
  (reasons ``LinescaleScaled`` and ``LinescaleResized``, the caller's reason in the note).
- ``dry_run=True`` reads but never writes: the result says what it would have done.

The client is synchronous: every call runs in a worker thread (``asyncio.to_thread``) with a
``_request_timeout``, so a slow API server never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from controller.ports import (
    MANAGED_LABEL,
    ActionResult,
    ContainerState,
    PodState,
    Resources,
    WorkloadKind,
    WorkloadRef,
    WorkloadState,
)
from shared.quantities import (
    format_cpu,
    format_memory,
    parse_cpu_millicores,
    parse_memory_bytes,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

REPORTING_CONTROLLER = "linescale.io/controller"
RESOURCES_ANNOTATION_PREFIX = "resources.linescale.io/"
FIELD_MANAGER = "linescale-controller"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
MAX_NOTE_CHARS = 1024  # events.k8s.io/v1 refuses longer notes


# --- pure helpers ------------------------------------------------------------------------------


def selector_string(match_labels: Mapping[str, str] | None, expressions: Sequence[Any] = ()) -> str:
    """A ``LabelSelector`` as the ``labelSelector`` query parameter."""
    terms = [f"{k}={v}" for k, v in sorted((match_labels or {}).items())]
    for expression in expressions:
        key, operator, values = expression.key, expression.operator, expression.values or []
        if operator in ("In", "NotIn"):
            terms.append(f"{key} {operator.lower()} ({','.join(values)})")
        elif operator == "Exists":
            terms.append(key)
        elif operator == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms)


def resources_of(quantities: Mapping[str, str] | None) -> Resources:
    """cpu and memory of a ``requests`` or ``limits`` map; an unparsable value counts as unset."""
    quantities = quantities or {}
    cpu = memory = None
    try:
        if "cpu" in quantities:
            cpu = parse_cpu_millicores(quantities["cpu"])
    except ValueError:
        log.warning("unparsable cpu quantity %r", quantities["cpu"])
    try:
        if "memory" in quantities:
            memory = parse_memory_bytes(quantities["memory"])
    except ValueError:
        log.warning("unparsable memory quantity %r", quantities["memory"])
    return Resources(cpu_millicores=cpu, memory_bytes=memory)


def quantities_of(resources: Resources) -> dict[str, str]:
    """The set fields of ``resources`` as Kubernetes quantities."""
    quantities = {}
    if resources.cpu_millicores is not None:
        quantities["cpu"] = format_cpu(resources.cpu_millicores)
    if resources.memory_bytes is not None:
        quantities["memory"] = format_memory(resources.memory_bytes)
    return quantities


def wanted_resources(requests: Resources, limits: Resources) -> dict[str, dict[str, str]]:
    """The ``resources`` patch for a container: only what is set (None leaves a value alone)."""
    wanted = {}
    if requested := quantities_of(requests):
        wanted["requests"] = requested
    if limited := quantities_of(limits):
        wanted["limits"] = limited
    return wanted


def has_resources(current: Any, wanted: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether a container's ``V1ResourceRequirements`` already holds every wanted value."""
    for kind, quantities in wanted.items():
        have = resources_of(getattr(current, kind, None) if current is not None else None)
        want = resources_of(quantities)
        if want.cpu_millicores is not None and have.cpu_millicores != want.cpu_millicores:
            return False
        if want.memory_bytes is not None and have.memory_bytes != want.memory_bytes:
            return False
    return True


def describe_resources(wanted: Mapping[str, Mapping[str, str]]) -> str:
    return "; ".join(
        f"{kind} " + ", ".join(f"{name}={value}" for name, value in sorted(quantities.items()))
        for kind, quantities in sorted(wanted.items())
    )


def is_ready(pod: Any) -> bool:
    conditions = pod.status.conditions if pod.status is not None else None
    return any(c.type == "Ready" and c.status == "True" for c in conditions or [])


def is_running(pod: Any) -> bool:
    """Not terminating and not finished: a pod that serves, or will."""
    phase = pod.status.phase if pod.status is not None else None
    return pod.metadata.deletion_timestamp is None and phase not in ("Succeeded", "Failed")


def pod_state(pod: Any) -> PodState:
    spec, status = pod.spec, pod.status
    containers = spec.containers if spec is not None else []
    port = next((c.ports[0].container_port for c in containers if c.ports), None)
    ip = status.pod_ip if status is not None else None
    return PodState(
        name=pod.metadata.name,
        ready=is_ready(pod),
        node=(spec.node_name if spec is not None else None) or "",
        address=f"{ip}:{port}" if ip and port else "",
        containers=tuple(
            ContainerState(
                name=c.name,
                requests=resources_of(c.resources.requests if c.resources else None),
                limits=resources_of(c.resources.limits if c.resources else None),
            )
            for c in containers
        ),
    )


def is_managed(obj: Any) -> bool:
    return bool((obj.metadata.labels or {}).get(MANAGED_LABEL) == "true")


@dataclass(frozen=True, slots=True)
class ApiFailure:
    """An API call's failure, classified (``status`` 0: no HTTP answer at all)."""

    status: int
    message: str
    retry_after_seconds: float | None = None

    @property
    def transient(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def classify(error: BaseException, now: float) -> ApiFailure:
    if not isinstance(error, ApiException):
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return ApiFailure(0, text)
    status = int(error.status or 0)
    message, retry_after = str(error.reason or ""), None
    try:
        body = json.loads(error.body) if error.body else {}
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict):
        message = str(body.get("message") or message)
        details = body.get("details")
        if isinstance(details, dict) and details.get("retryAfterSeconds") is not None:
            retry_after = float(details["retryAfterSeconds"])
    headers = error.headers
    header = headers.get("Retry-After") if headers is not None else None
    retry_after = retry_after_seconds(header, now) if header else retry_after
    return ApiFailure(status if status else 0, message, retry_after)


# --- the adapter -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KindCalls:
    """The apps/v1 calls for one workload kind."""

    list_all: Callable[..., Any]
    list_namespaced: Callable[..., Any]
    read: Callable[..., Any]
    patch: Callable[..., Any]
    patch_scale: Callable[..., Any]


class KubernetesOrchestrator:
    """``Orchestrator`` for Deployments and StatefulSets. Takes ownership of ``api_client``
    (``close()`` closes it) unless ``owns_client=False``."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespaces: Sequence[str] = (),
        dry_run: bool = False,
        timeout_seconds: float = 10.0,
        conflict_attempts: int = 5,
        backoff_seconds: float = 5.0,
        instance: str | None = None,
        clock: Callable[[], float] = time.time,
        owns_client: bool = True,
    ) -> None:
        self._api_client = api_client
        self._namespaces = tuple(namespaces)
        self._dry_run = dry_run
        self._timeout = timeout_seconds
        self._conflict_attempts = max(1, conflict_attempts)
        self._backoff = backoff_seconds
        self._instance = instance or socket.gethostname()
        self._clock = clock
        self._owns_client = owns_client
        self._core = client.CoreV1Api(api_client)
        self._events = client.EventsV1Api(api_client)
        apps = client.AppsV1Api(api_client)
        self._kinds: dict[str, _KindCalls] = {
            "Deployment": _KindCalls(
                apps.list_deployment_for_all_namespaces,
                apps.list_namespaced_deployment,
                apps.read_namespaced_deployment,
                apps.patch_namespaced_deployment,
                apps.patch_namespaced_deployment_scale,
            ),
            "StatefulSet": _KindCalls(
                apps.list_stateful_set_for_all_namespaces,
                apps.list_namespaced_stateful_set,
                apps.read_namespaced_stateful_set,
                apps.patch_namespaced_stateful_set,
                apps.patch_namespaced_stateful_set_scale,
            ),
        }
        # Why the latest list_workloads (or a get_workload since) left something out.
        self.last_error: str | None = None

    @property
    def api_client(self) -> client.ApiClient:
        """The client this orchestrator talks through (leader election shares it)."""
        return self._api_client

    @classmethod
    def in_cluster(cls, **options: Any) -> KubernetesOrchestrator:
        """From the pod's service account (``KUBERNETES_SERVICE_HOST`` and the mounted token)."""
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return cls(client.ApiClient(configuration), **options)

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, **options: Any
    ) -> KubernetesOrchestrator:
        """From a kubeconfig file (``None``: ``$KUBECONFIG`` or ``~/.kube/config``)."""
        api_client = config.new_client_from_config(config_file=path, context=context)  # type: ignore[no-untyped-call]
        return cls(api_client, **options)

    async def close(self) -> None:
        if self._owns_client:
            await asyncio.to_thread(self._api_client.close)

    # -- plumbing ------------------------------------------------------------------------------

    async def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(call, *args, _request_timeout=self._timeout, **kwargs)

    def _in_scope(self, ref: WorkloadRef) -> bool:
        return ref.kind in self._kinds and (
            not self._namespaces or ref.namespace in self._namespaces
        )

    def _out_of_scope(self, ref: WorkloadRef) -> ActionResult:
        if ref.kind not in self._kinds:
            detail = f"{ref.kind} {ref} is not a Kubernetes workload kind this adapter manages"
        else:
            detail = f"{ref.kind} {ref} is outside the watched namespaces {list(self._namespaces)}"
        return ActionResult(ok=False, detail=detail, permanent=True)

    def _failed(self, what: str, error: Exception, done: str = "") -> ActionResult:
        failure = classify(error, self._clock())
        if failure.status == 0 and not isinstance(error, OSError | HTTPError | ApiException):
            log.exception("unexpected error while trying to %s", what)
        code = f"HTTP {failure.status}" if failure.status else "no answer"
        detail = f"{what}: {code}: {failure.message}" + (f" ({done})" if done else "")
        if failure.transient:
            retry = failure.retry_after_seconds
            return ActionResult(
                ok=False,
                detail=detail,
                retry_after_seconds=self._backoff if retry is None else retry,
            )
        return ActionResult(ok=False, detail=detail, permanent=True)

    def _conflicts(self, what: str) -> ActionResult:
        return ActionResult(
            ok=False,
            detail=f"{what}: still conflicting after {self._conflict_attempts} attempts",
            retry_after_seconds=self._backoff,
        )

    async def _read(self, ref: WorkloadRef) -> tuple[Any, ActionResult | None]:
        """The workload, or why not: 404 and unmanaged are permanent."""
        try:
            obj = await self._call(self._kinds[ref.kind].read, ref.name, ref.namespace)
        except Exception as error:
            return None, self._failed(f"read {ref.kind} {ref}", error)
        if not is_managed(obj):
            detail = f"{ref.kind} {ref} is not labelled {MANAGED_LABEL}=true"
            return None, ActionResult(ok=False, detail=detail, permanent=True)
        return obj, None

    async def _pods(self, namespace: str, selector: Any) -> list[Any]:
        if selector is None:
            return []
        labels = selector_string(selector.match_labels, selector.match_expressions or ())
        if not labels:  # an empty selector selects everything: never act on that
            return []
        listed = await self._call(self._core.list_namespaced_pod, namespace, label_selector=labels)
        return [p for p in listed.items or [] if is_running(p)]

    async def _event(self, obj: Any, kind: str, action: str, reason: str, note: str) -> None:
        """Best effort: an Event that cannot be written never fails the action."""
        meta = obj.metadata
        event = client.EventsV1Event(
            metadata=client.V1ObjectMeta(
                name=f"{meta.name}.{time.time_ns():x}", namespace=meta.namespace
            ),
            event_time=datetime.fromtimestamp(self._clock(), UTC),
            reporting_controller=REPORTING_CONTROLLER,
            reporting_instance=self._instance,
            action=action,
            reason=reason,
            note=note[:MAX_NOTE_CHARS],
            type="Normal",
            regarding=client.V1ObjectReference(
                api_version="apps/v1",
                kind=kind,
                name=meta.name,
                namespace=meta.namespace,
                uid=meta.uid,
                resource_version=meta.resource_version,
            ),
        )
        try:
            await self._call(self._events.create_namespaced_event, meta.namespace, event)
        except Exception as error:
            failure = classify(error, self._clock())
            log.warning(
                "could not record event %s: %s",
                reason,
                failure.message,
                extra={"namespace": meta.namespace, "workload": meta.name},
            )

    # -- reads ---------------------------------------------------------------------------------

    async def _state(self, kind: WorkloadKind, obj: Any) -> WorkloadState | None:
        meta, spec, status = obj.metadata, obj.spec, obj.status
        try:
            pods = await self._pods(meta.namespace, spec.selector if spec is not None else None)
        except Exception as error:
            self.last_error = classify(error, self._clock()).message
            log.warning(
                "pods of %s %s/%s unavailable: %s",
                kind,
                meta.namespace,
                meta.name,
                self.last_error,
                extra={"namespace": meta.namespace, "workload": meta.name},
            )
            return None
        replicas = spec.replicas if spec is not None and spec.replicas is not None else 1
        return WorkloadState(
            ref=WorkloadRef(meta.namespace, meta.name, kind),
            desired_replicas=replicas,
            ready_replicas=(status.ready_replicas if status is not None else None) or 0,
            pods=tuple(pod_state(p) for p in sorted(pods, key=lambda p: p.metadata.name)),
            labels=dict(meta.labels or {}),
            annotations=dict(meta.annotations or {}),
            resource_version=meta.resource_version or "",
        )

    async def list_workloads(self) -> Sequence[WorkloadState]:
        """Managed workloads; a kind or namespace that cannot be listed is left out (and
        ``last_error`` says why), as is a workload whose pods cannot be listed."""
        self.last_error = None
        selector = f"{MANAGED_LABEL}=true"
        found: list[WorkloadState] = []
        kinds: tuple[WorkloadKind, ...] = ("Deployment", "StatefulSet")
        for kind in kinds:
            calls = self._kinds[kind]
            for namespace in self._namespaces or (None,):
                try:
                    if namespace is None:
                        listed = await self._call(calls.list_all, label_selector=selector)
                    else:
                        listed = await self._call(
                            calls.list_namespaced, namespace, label_selector=selector
                        )
                except Exception as error:
                    self.last_error = classify(error, self._clock()).message
                    log.warning(
                        "cannot list %ss in %s: %s",
                        kind,
                        namespace or "all namespaces",
                        self.last_error,
                    )
                    continue
                for obj in listed.items or []:
                    if state := await self._state(kind, obj):
                        found.append(state)
        return sorted(found, key=lambda state: state.ref)

    async def get_workload(self, ref: WorkloadRef) -> WorkloadState | None:
        """The workload, or None when it is absent, unmanaged, out of scope or unreadable."""
        if not self._in_scope(ref):
            return None
        try:
            obj = await self._call(self._kinds[ref.kind].read, ref.name, ref.namespace)
        except Exception as error:
            failure = classify(error, self._clock())
            if failure.status != 404:
                self.last_error = failure.message
                log.warning("cannot read %s %s: %s", ref.kind, ref, failure.message)
            return None
        return await self._state(ref.kind, obj) if is_managed(obj) else None

    # -- scale ---------------------------------------------------------------------------------

    async def scale(self, ref: WorkloadRef, replicas: int, reason: str) -> ActionResult:
        if not self._in_scope(ref):
            return self._out_of_scope(ref)
        what = f"scale {ref.kind} {ref} to {replicas} replicas"
        for _attempt in range(self._conflict_attempts):
            obj, refused = await self._read(ref)
            if refused is not None:
                return refused
            current = obj.spec.replicas if obj.spec.replicas is not None else 1
            if current == replicas:
                return ActionResult(
                    ok=True, detail=f"{ref.kind} {ref} already has {replicas} replicas"
                )
            change = f"{ref.kind} {ref} from {current} to {replicas} replicas"
            if self._dry_run:
                return ActionResult(ok=True, dry_run=True, detail=f"would scale {change}: {reason}")
            body = {
                "metadata": {"resourceVersion": obj.metadata.resource_version},
                "spec": {"replicas": replicas},
            }
            try:
                await self._call(
                    self._kinds[ref.kind].patch_scale,
                    ref.name,
                    ref.namespace,
                    body,
                    field_manager=FIELD_MANAGER,
                    _content_type=MERGE_PATCH,
                )
            except ApiException as error:
                if error.status == 409:
                    log.info("conflict scaling %s, re-reading", ref, extra=_extra(ref))
                    continue
                return self._failed(what, error)
            except Exception as error:
                return self._failed(what, error)
            log.info("scaled %s: %s", change, reason, extra=_extra(ref))
            await self._event(
                obj, ref.kind, "Scale", "LinescaleScaled", f"Scaled {change}: {reason}"
            )
            return ActionResult(ok=True, detail=f"scaled {change}")
        return self._conflicts(what)

    # -- resize --------------------------------------------------------------------------------

    async def resize(
        self,
        ref: WorkloadRef,
        container: str,
        requests: Resources,
        limits: Resources,
        reason: str,
    ) -> ActionResult:
        """Set ``container``'s requests and limits on every pod; None fields stay as they are."""
        if not self._in_scope(ref):
            return self._out_of_scope(ref)
        wanted = wanted_resources(requests, limits)
        what = f"resize container {container} of {ref.kind} {ref}"
        if not wanted:
            return ActionResult(ok=True, detail=f"{what}: nothing to change")
        obj, refused = await self._read(ref)
        if refused is not None:
            return refused
        template = obj.spec.template.spec
        if not any(c.name == container for c in template.containers):
            detail = f"{what}: the pod template has no container {container}"
            return ActionResult(ok=False, detail=detail, permanent=True)
        try:
            pods = await self._pods(ref.namespace, obj.spec.selector)
        except Exception as error:
            return self._failed(f"{what}: list pods", error)
        pods = [p for p in pods if _has_container(p.spec, container)]  # not pods of an old shape
        stale = [p for p in pods if not has_resources(_container(p.spec, container), wanted)]
        change = describe_resources(wanted)
        if not pods:
            if has_resources(_container(template, container), wanted):
                return ActionResult(ok=True, detail=f"{what}: already {change}")
            return await self._patch_template(ref, container, wanted, reason, "no pod is running")
        if not stale:
            return ActionResult(ok=True, detail=f"{what}: every pod already has {change}")
        if self._dry_run:
            detail = (
                f"would {what} to {change} in place on {len(stale)} of {len(pods)} pods "
                f"(or by patching the pod template where pods/resize is unavailable): {reason}"
            )
            return ActionResult(ok=True, dry_run=True, detail=detail)
        resized = 0
        for pod in stale:
            outcome = await self._resize_pod(ref, pod.metadata.name, container, wanted)
            if outcome == "absent":
                return await self._patch_template(
                    ref,
                    container,
                    wanted,
                    reason,
                    "pods/resize is not available on this API server",
                )
            if isinstance(outcome, ActionResult):
                return _with_progress(outcome, f"{resized} of {len(stale)} pods resized before")
            resized += outcome == "resized"
        await self._record_wanted(ref, container, wanted)
        note = f"Resized container {container} in place on {resized} pods to {change}: {reason}"
        log.info("%s", note, extra=_extra(ref))
        await self._event(obj, ref.kind, "Resize", "LinescaleResized", note)
        return ActionResult(
            ok=True,
            detail=f"resized container {container} of {ref.kind} {ref} in place on "
            f"{resized} of {len(pods)} pods to {change}",
        )

    async def _resize_pod(
        self, ref: WorkloadRef, pod: str, container: str, wanted: Mapping[str, Mapping[str, str]]
    ) -> Literal["resized", "gone", "absent"] | ActionResult:
        """Resized, the pod has gone, the API server has no pods/resize, or the failure."""
        body = {"spec": {"containers": [{"name": container, "resources": wanted}]}}
        what = f"resize pod {ref.namespace}/{pod}"
        for _attempt in range(self._conflict_attempts):
            try:
                await self._call(
                    self._core.patch_namespaced_pod_resize,
                    pod,
                    ref.namespace,
                    body,
                    field_manager=FIELD_MANAGER,
                    _content_type=STRATEGIC_MERGE_PATCH,
                )
                return "resized"
            except ApiException as error:
                if error.status == 409:
                    continue
                if error.status != 404:
                    return self._failed(what, error)
            except Exception as error:
                return self._failed(what, error)
            # 404: the pod has gone, or the API server does not know pods/resize.
            try:
                await self._call(self._core.read_namespaced_pod, pod, ref.namespace)
            except Exception as error:
                if isinstance(error, ApiException) and error.status == 404:
                    return "gone"
                return self._failed(f"read pod {ref.namespace}/{pod}", error)
            return "absent"
        return self._conflicts(what)

    async def _patch_template(
        self,
        ref: WorkloadRef,
        container: str,
        wanted: Mapping[str, Mapping[str, str]],
        reason: str,
        why: str,
    ) -> ActionResult:
        """The fallback: patch the pod template (a rolling update), guarded by resourceVersion."""
        what = f"resize container {container} of {ref.kind} {ref}"
        change = describe_resources(wanted)
        for _attempt in range(self._conflict_attempts):
            obj, refused = await self._read(ref)
            if refused is not None:
                return refused
            if has_resources(_container(obj.spec.template.spec, container), wanted):
                return ActionResult(
                    ok=True, detail=f"{what}: the pod template already has {change}"
                )
            if self._dry_run:
                detail = f"would {what} to {change} by patching the pod template ({why}): {reason}"
                return ActionResult(ok=True, dry_run=True, detail=detail)
            body = {
                "metadata": {
                    "resourceVersion": obj.metadata.resource_version,
                    "annotations": {_annotation(container): json.dumps(wanted, sort_keys=True)},
                },
                "spec": {
                    "template": {"spec": {"containers": [{"name": container, "resources": wanted}]}}
                },
            }
            try:
                await self._call(
                    self._kinds[ref.kind].patch,
                    ref.name,
                    ref.namespace,
                    body,
                    field_manager=FIELD_MANAGER,
                    _content_type=STRATEGIC_MERGE_PATCH,
                )
            except ApiException as error:
                if error.status == 409:
                    continue
                return self._failed(f"{what} by patching the pod template", error)
            except Exception as error:
                return self._failed(f"{what} by patching the pod template", error)
            note = (
                f"Resized container {container} to {change} by patching the pod template "
                f"(rolling update; {why}): {reason}"
            )
            log.info("%s", note, extra=_extra(ref))
            await self._event(obj, ref.kind, "Resize", "LinescaleResized", note)
            return ActionResult(
                ok=True,
                detail=f"{what} to {change} by patching the pod template, a rolling update: {why}",
            )
        return self._conflicts(f"{what} by patching the pod template")

    async def _record_wanted(
        self, ref: WorkloadRef, container: str, wanted: Mapping[str, Mapping[str, str]]
    ) -> None:
        """Remember in-place resources on the workload, where they survive a restart (new pods
        come from the template). Metadata only: no rollout. Best effort."""
        body = {
            "metadata": {
                "annotations": {_annotation(container): json.dumps(wanted, sort_keys=True)}
            }
        }
        try:
            await self._call(
                self._kinds[ref.kind].patch,
                ref.name,
                ref.namespace,
                body,
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
            )
        except Exception as error:
            log.warning(
                "could not record resources of %s on %s: %s",
                container,
                ref,
                classify(error, self._clock()).message,
                extra=_extra(ref),
            )


def _annotation(container: str) -> str:
    return f"{RESOURCES_ANNOTATION_PREFIX}{container}"


def _has_container(pod_spec: Any, name: str) -> bool:
    return any(c.name == name for c in (pod_spec.containers if pod_spec is not None else []))


def _container(pod_spec: Any, name: str) -> Any:
    """The named container's ``resources``, or None."""
    for c in pod_spec.containers if pod_spec is not None else []:
        if c.name == name:
            return c.resources
    return None


def _with_progress(result: ActionResult, progress: str) -> ActionResult:
    return ActionResult(
        ok=result.ok,
        detail=f"{result.detail} ({progress})",
        retry_after_seconds=result.retry_after_seconds,
        permanent=result.permanent,
        dry_run=result.dry_run,
    )


def _extra(ref: WorkloadRef) -> dict[str, str]:
    return {"namespace": ref.namespace, "workload": ref.name, "kind": ref.kind}
