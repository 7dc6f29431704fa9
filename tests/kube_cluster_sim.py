"""A cluster simulator for tests: what makes pods appear after a Deployment is scaled.

The API double (``kube_api_double``) only stores objects; nothing reacts to a scale. For one
Deployment, ``ClusterSim`` plays the controllers that would:

- the Deployment and ReplicaSet controllers: while ``spec.replicas`` exceeds the pods made so
  far, each sync creates the missing ones from the pod template, at most ``burst_replicas``
  (500, ``BurstReplicas`` in ``pkg/controller/replicaset/replica_set.go``) per sync, named as
  ``generateName`` names them (``<deployment>-<pod-template-hash>-<5 safe characters>``),
  labelled with the template's labels plus ``pod-template-hash`` and owned by the ReplicaSet.
  After every sync it writes the Deployment's status as ``calculateStatus``
  (``pkg/controller/deployment/sync.go``) sums it: ``replicas`` and ``updatedReplicas`` (the
  pods), ``readyReplicas``, ``availableReplicas`` (``minReadySeconds`` 0: ready is available),
  ``unavailableReplicas`` (``spec.replicas`` minus available, never below 0) and
  ``observedGeneration``;
- the scheduler and the kubelet: a new pod is bound to a node at once, ``Pending`` and not
  ready; once its start time has passed (drawn from ``StartTime`` by a seeded RNG, so a run's
  start times are reproducible) it is ``Running`` with ``Ready`` true.

Syncs run every ``sync_seconds`` on a thread (the real controllers react to watch events
within milliseconds); ``sync_once`` runs one by hand. Every change goes through the double
(``add``/``write``), so resourceVersions move as on a real API server.

Not simulated: scale-down (the double has no deletes), rollouts (one ReplicaSet, the template
is never re-read), pods that fail or restart, readiness flapping, node capacity, the latency of
the controllers' own API calls, and pods the simulator did not create: start it on a
Deployment that has none.
"""

from __future__ import annotations

import copy
import functools
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from controller.sources.workloads import SAFE_ALPHABET

from kube_api_double import KubeApiDouble, pod

BURST_REPLICAS = 500  # pkg/controller/replicaset/replica_set.go
POD_TEMPLATE_HASH = "6c9b8d7f5"  # the ReplicaSet name pods_for gives its pods' owner
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"


@dataclass(frozen=True, slots=True)
class StartTime:
    """How long a new pod takes from creation to ready: normal(mean, stddev), never below
    ``min_seconds``; ``stddev_seconds=0`` is a fixed delay."""

    mean_seconds: float = 2.0
    stddev_seconds: float = 0.5
    min_seconds: float = 0.1

    def draw(self, rng: random.Random) -> float:
        if self.stddev_seconds == 0:
            return max(self.min_seconds, self.mean_seconds)
        return max(self.min_seconds, rng.gauss(self.mean_seconds, self.stddev_seconds))


def _timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _start(pod_obj: dict[str, Any], at: float, ip: str) -> None:
    """The kubelet's report once the sandbox has its IP and the containers run and pass their
    readiness probes."""
    status = pod_obj["status"]
    status.update(phase="Running", podIP=ip, podIPs=[{"ip": ip}])
    stamp = _timestamp(at)
    for condition in status["conditions"]:
        if condition["status"] != "True":
            condition.update(status="True", lastTransitionTime=stamp)
    uid = pod_obj["metadata"]["uid"]
    for container_status in status["containerStatuses"]:
        container_id = uuid.uuid5(uuid.NAMESPACE_URL, f"container/{uid}/{container_status['name']}")
        container_status.update(
            containerID=f"containerd://{container_id.hex}",
            imageID=f"{container_status['image']}@sha256:{container_id.hex}",
            ready=True,
            started=True,
            state={"running": {"startedAt": stamp}},
        )


class ClusterSim:
    """The ReplicaSet controller and kubelet for Deployment ``namespace/name`` in ``double``."""

    def __init__(
        self,
        double: KubeApiDouble,
        namespace: str,
        name: str,
        *,
        start_time: StartTime | None = None,
        seed: int = 0,
        nodes: tuple[str, ...] = ("node-1", "node-2", "node-3"),
        sync_seconds: float = 0.05,
        burst_replicas: int = BURST_REPLICAS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._double = double
        self.namespace = namespace
        self.name = name
        self.start_time = start_time or StartTime()
        self._rng = random.Random(seed)
        self._nodes = nodes
        self._sync_seconds = sync_seconds
        self._burst = burst_replicas
        self._clock = clock
        self.created_at: dict[str, float] = {}  # pod name -> when the simulator created it
        self.ready_at: dict[str, float] = {}  # pod name -> when it became ready
        self._starting: dict[str, tuple[float, str]] = {}  # pod name -> (ready at, its IP)
        self._lock = threading.Lock()  # the bookkeeping above, read by tests meanwhile
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # what ended the background syncs, if anything

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cluster-sim", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop syncing; a failure of the background syncs is raised here, not swallowed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.error is not None:
            raise RuntimeError("the cluster simulator failed") from self.error

    def __enter__(self) -> ClusterSim:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception as error:  # surfaced by stop()
                self.error = error
                return
            self._stop.wait(self._sync_seconds)

    # -- what tests read -----------------------------------------------------------------------

    @property
    def pod_names(self) -> list[str]:
        """The pods created so far, oldest first."""
        with self._lock:
            return list(self.created_at)

    @property
    def ready_count(self) -> int:
        with self._lock:
            return len(self.ready_at)

    def all_ready_at(self, count: int) -> float | None:
        """When the ``count``-th pod became ready (so ``count`` were), or None if not yet."""
        with self._lock:
            times = sorted(self.ready_at.values())
        return times[count - 1] if 0 < count <= len(times) else None

    # -- one sync ------------------------------------------------------------------------------

    def sync_once(self) -> None:
        """Start the pods whose time has come, create missing ones, write the status."""
        now = self._clock()
        due = [(name, ip) for name, (at, ip) in self._starting.items() if at <= now]
        for pod_name, ip in due:
            self._double.write(
                "pods", self.namespace, pod_name, functools.partial(_start, at=now, ip=ip)
            )
            del self._starting[pod_name]
            with self._lock:
                self.ready_at[pod_name] = now
        deployment = self._snapshot()
        wanted = deployment["spec"].get("replicas", 1)
        missing = min(wanted - len(self.created_at), self._burst)
        for _ in range(max(0, missing)):
            self._create(deployment, self._clock())
        ready = len(self.ready_at)
        status = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": len(self.created_at),
            "updatedReplicas": len(self.created_at),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, wanted - ready),
        }
        self._double.write(
            "deployments",
            self.namespace,
            self.name,
            lambda obj: obj.setdefault("status", {}).update(status),
        )

    def _snapshot(self) -> dict[str, Any]:
        """The Deployment as stored, read under the double's lock (a no-op write)."""
        seen: list[dict[str, Any]] = []
        self._double.write("deployments", self.namespace, self.name, seen.append)
        return seen[0]

    def _pod_name(self) -> str:
        while True:
            suffix = "".join(self._rng.choice(SAFE_ALPHABET) for _ in range(5))
            candidate = f"{self.name}-{POD_TEMPLATE_HASH}-{suffix}"
            if candidate not in self.created_at:
                return candidate

    def _create(self, deployment: dict[str, Any], now: float) -> None:
        index = len(self.created_at)
        template = deployment["spec"]["template"]
        containers = template["spec"]["containers"]
        pod_name = self._pod_name()
        labels = {
            **template["metadata"].get("labels", {}),
            POD_TEMPLATE_HASH_LABEL: POD_TEMPLATE_HASH,
        }
        made = pod(
            pod_name,
            self.namespace,
            self._nodes[index % len(self._nodes)],
            str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            {c["name"]: "" for c in containers},  # no container runs yet
            labels=labels,
            ready=False,
        )
        stamp = _timestamp(now)
        made["metadata"]["creationTimestamp"] = stamp
        made["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": f"{self.name}-{POD_TEMPLATE_HASH}",
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"owner/{self.namespace}/{self.name}")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        made["spec"]["containers"] = copy.deepcopy(containers)
        status = made["status"]
        status.update(phase="Pending", startTime=stamp)
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
            {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": "False", "lastTransitionTime": stamp},
            {"type": "Ready", "status": "False", "lastTransitionTime": stamp},
        ]
        for container_status, c in zip(status["containerStatuses"], containers, strict=True):
            # A waiting container has no containerID (omitempty) but an empty imageID: the
            # field is required, and the kubernetes client refuses a status without it.
            del container_status["containerID"]
            container_status.update(
                image=c.get("image", "img"),
                imageID="",
                started=False,
                state={"waiting": {"reason": "ContainerCreating"}},
            )
            if "resources" in c:
                container_status["resources"] = copy.deepcopy(c["resources"])
        self._double.add(made)
        with self._lock:
            self.created_at[pod_name] = now
        ip = f"10.2.{index // 250}.{index % 250 + 1}"
        self._starting[pod_name] = (now + self.start_time.draw(self._rng), ip)
