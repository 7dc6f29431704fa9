"""Names for the pod UIDs and container IDs the collector finds, from the Kubernetes API.

Lists only this node's pods (``fieldSelector=spec.nodeName=<node>``, which needs RBAC
``list pods`` and nothing more), at most once per refresh period, from the collector's worker
thread. When the API is unreachable the last good map is kept, so metrics keep their labels;
each failed refresh is counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from agent.observe.collector import PodInfo

log = logging.getLogger(__name__)


class PodLister(Protocol):
    """The one call we need from ``kubernetes.client.CoreV1Api``."""

    def list_pod_for_all_namespaces(
        self,
        *,
        field_selector: str | None = ...,
        _request_timeout: float | int | tuple[float | int, float | int] | None = ...,
    ) -> Any: ...


def bare_container_id(container_id: str | None) -> str:
    """``containerd://abc`` → ``abc`` (the form found in cgroup paths)."""
    if not container_id:
        return ""
    return container_id.split("://", 1)[-1]


def pod_infos(pods: Any) -> dict[str, PodInfo]:
    """UID → names, from a ``V1PodList``'s items (containers, init and ephemeral alike)."""
    infos: dict[str, PodInfo] = {}
    for pod in pods.items or []:
        metadata, status = pod.metadata, pod.status
        if metadata is None or not metadata.uid:
            continue
        containers: dict[str, str] = {}
        if status is not None:
            for statuses in (
                status.container_statuses,
                status.init_container_statuses,
                status.ephemeral_container_statuses,
            ):
                for container in statuses or []:
                    if bare := bare_container_id(container.container_id):
                        containers[bare] = container.name
        infos[metadata.uid] = PodInfo(
            namespace=metadata.namespace or "", name=metadata.name or "", containers=containers
        )
    return infos


class KubePodDirectory:
    """A ``PodDirectory`` for the collector: ``directory()`` returns UID → ``PodInfo``."""

    def __init__(
        self,
        api: PodLister,
        node: str,
        refresh_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float],
        on_failure: Callable[[], None] = lambda: None,
    ) -> None:
        self._api = api
        self._node = node
        self._refresh_seconds = refresh_seconds
        self._timeout_seconds = timeout_seconds
        self._clock = clock
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._pods: dict[str, PodInfo] = {}
        self._next_refresh = float("-inf")

    def __call__(self) -> Mapping[str, PodInfo]:
        with self._lock:
            now = self._clock()
            if now >= self._next_refresh:
                # A failed refresh waits a full period too: no hammering a struggling API.
                self._next_refresh = now + self._refresh_seconds
                self._refresh()
            return self._pods

    def _refresh(self) -> None:
        try:
            pods = self._api.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={self._node}",
                _request_timeout=self._timeout_seconds,
            )
        except Exception as error:  # the API client raises many kinds; all mean "try later"
            self._on_failure()
            log.warning(
                "pod list unavailable, keeping %d known pods: %s",
                len(self._pods),
                str(error).splitlines()[0] if str(error) else type(error).__name__,
            )
            return
        self._pods = pod_infos(pods)


def kubernetes_pod_lister(source: str, kubeconfig: str) -> PodLister:
    """A ``CoreV1Api`` from the pod's service account or a kubeconfig file."""
    from kubernetes import client, config  # imported only when a pod list is configured

    if source == "in-cluster":
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.CoreV1Api()
    api_client = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return client.CoreV1Api(api_client)
