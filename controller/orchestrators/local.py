"""The local orchestrator: a workload is one command run as N child processes on loopback.

It behaves like a small ReplicaSet so the engines can run unchanged on one machine (the demo,
the tests, a replayed trace):

- A replica is a slot ``<name>-<index>`` holding one process on a free loopback port; the
  command's ``{port}`` placeholder is replaced by that port. Scale-up fills the lowest free
  indices; a replica that dies is restarted in its slot (on a fresh port) after a backoff that
  doubles with each quick crash, like CrashLoopBackOff.
- Readiness is an HTTP GET of ``readiness_path`` (2xx/3xx is ready), probed by a supervisor
  task every ``probe_interval_seconds`` and, while a scale waits for new replicas, more often.
  ``PodState.ready`` is the last probe's answer; ``ready_endpoints`` lists ready replicas that
  are not draining, for load balancing.
- Scale-down picks not-ready replicas first, then the newest (highest index); each is removed
  from the endpoints at once, given ``drain_seconds`` to finish in-flight requests, then sent
  SIGTERM, and SIGKILL after ``stop_timeout_seconds``.
- ``scale`` returns once the workload has the replicas asked for and every one of them has been
  ready for ``min_ready_seconds``; if that takes longer than ``ready_timeout_seconds`` it
  returns a transient failure (the replicas stay and keep being supervised).
- ``dry_run`` logs the would-be scale and changes nothing; ``register`` still starts the
  initial replicas (it defines what exists, it is not an engine's action).
- ``close`` stops every process; children also get SIGTERM from the kernel if the controller
  dies (PR_SET_PDEATHSIG on Linux), and each runs in its own process group so a stop reaches
  its children too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import aiohttp

from controller.ports import (
    MANAGED_LABEL,
    ActionResult,
    ContainerState,
    PodState,
    Resources,
    WorkloadRef,
    WorkloadState,
)
from controller.processes import die_with_parent_preexec, free_port, stop_process

if TYPE_CHECKING:
    from controller.ports import Orchestrator

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
NODE = "local"
PORT_PLACEHOLDER = "{port}"
SCALE_REASON_ANNOTATION = "linescale.io/last-scale-reason"
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SCALE_PROBE_INTERVAL = 0.05


@dataclass(frozen=True, slots=True)
class LocalWorkloadSpec:
    """What to run. ``command`` must contain ``{port}`` in at least one argument."""

    name: str
    _: KW_ONLY
    namespace: str = "local"
    command: Sequence[str]
    readiness_path: str = "/healthz"
    env: Mapping[str, str] = field(default_factory=dict)
    min_ready_seconds: float = 0.0
    drain_seconds: float = 1.0
    stop_timeout_seconds: float = 5.0
    ready_timeout_seconds: float = 15.0
    # Workload annotations (e.g. linescale.io/route-port, a scaling policy), as on Kubernetes.
    annotations: Mapping[str, str] = field(default_factory=dict)
    # Nodes the replicas are reported on, in turn (replica i on nodes[i % len]); the demo
    # spreads a workload over its agents' zones this way.
    nodes: Sequence[str] = (NODE,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "env", dict(self.env))
        object.__setattr__(self, "annotations", dict(self.annotations))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        if not self.nodes:
            raise ValueError("nodes must name at least one node")
        for label, value in (("name", self.name), ("namespace", self.namespace)):
            if not _NAME_RE.match(value):
                raise ValueError(f"{label} {value!r} is not a DNS label")
        if not any(PORT_PLACEHOLDER in arg for arg in self.command):
            raise ValueError(f"command must contain {PORT_PLACEHOLDER} in an argument")
        if not self.readiness_path.startswith("/"):
            raise ValueError("readiness_path must start with /")
        for label, number in (
            ("min_ready_seconds", self.min_ready_seconds),
            ("drain_seconds", self.drain_seconds),
            ("stop_timeout_seconds", self.stop_timeout_seconds),
            ("ready_timeout_seconds", self.ready_timeout_seconds),
        ):
            if not number >= 0:
                raise ValueError(f"{label} must be >= 0")

    @property
    def ref(self) -> WorkloadRef:
        return WorkloadRef(self.namespace, self.name, "Local")

    def argv(self, port: int) -> list[str]:
        return [arg.replace(PORT_PLACEHOLDER, str(port)) for arg in self.command]


@dataclass(eq=False)
class _Replica:
    index: int
    port: int
    process: subprocess.Popen[bytes] | None
    started_at: float
    ready: bool = False
    ready_since: float | None = None
    draining: bool = False
    restarts: int = 0
    crash_streak: int = 0
    restart_at: float | None = None  # set while dead, waiting out its backoff

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def mark(self, ready: bool, now: float) -> None:
        if ready and not self.ready:
            self.ready_since = now
        elif not ready:
            self.ready_since = None
        self.ready = ready


@dataclass(eq=False)
class _Workload:
    spec: LocalWorkloadSpec
    desired: int = 0
    replicas: dict[int, _Replica] = field(default_factory=dict)  # by index, not draining
    draining: list[_Replica] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    version: int = 0
    last_reason: str = ""

    def pod_name(self, replica: _Replica) -> str:
        return f"{self.spec.name}-{replica.index}"

    def state(self) -> WorkloadState:
        members = sorted(self.replicas.values(), key=lambda r: r.index)
        pods = [
            PodState(
                name=self.pod_name(replica),
                ready=replica.ready and not replica.draining,
                node=self.spec.nodes[replica.index % len(self.spec.nodes)],
                address=replica.address,
                containers=(ContainerState(name=self.spec.name),),
            )
            for replica in [*members, *self.draining]
        ]
        return WorkloadState(
            ref=self.spec.ref,
            desired_replicas=self.desired,
            ready_replicas=sum(1 for replica in members if replica.ready),
            pods=tuple(pods),
            labels={MANAGED_LABEL: "true"},
            annotations={
                **self.spec.annotations,
                **({SCALE_REASON_ANNOTATION: self.last_reason} if self.last_reason else {}),
            },
            resource_version=str(self.version),
        )


class LocalOrchestrator:
    """Workloads as local child processes; see the module docstring for the semantics."""

    def __init__(
        self,
        *,
        dry_run: bool = False,
        probe_interval_seconds: float = 0.5,
        probe_timeout_seconds: float = 1.0,
        restart_backoff_seconds: float = 0.5,
        restart_backoff_max_seconds: float = 30.0,
        backoff_reset_seconds: float = 10.0,
        max_replicas: int = 32,
        log_dir: Path | None = None,
    ) -> None:
        self.dry_run = dry_run
        self._probe_interval = probe_interval_seconds
        self._probe_timeout = probe_timeout_seconds
        self._backoff = restart_backoff_seconds
        self._backoff_max = restart_backoff_max_seconds
        self._backoff_reset = backoff_reset_seconds
        self._max_replicas = max_replicas
        self._log_dir = log_dir
        self._workloads: dict[WorkloadRef, _Workload] = {}
        self._session: aiohttp.ClientSession | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._preexec = die_with_parent_preexec()
        self._closing = asyncio.Event()
        self._closed = False

    # --- the Orchestrator port -------------------------------------------------------------

    async def list_workloads(self) -> Sequence[WorkloadState]:
        return [self._workloads[ref].state() for ref in sorted(self._workloads)]

    async def get_workload(self, ref: WorkloadRef) -> WorkloadState | None:
        workload = self._workloads.get(ref)
        return workload.state() if workload is not None else None

    async def scale(self, ref: WorkloadRef, replicas: int, reason: str) -> ActionResult:
        workload = self._workloads.get(ref)
        if workload is None:
            return ActionResult(ok=False, permanent=True, detail=f"no local workload {ref}")
        if not 0 <= replicas <= self._max_replicas:
            return ActionResult(
                ok=False,
                permanent=True,
                detail=f"replicas must be in 0..{self._max_replicas}, got {replicas}",
            )
        if self._closed:
            return ActionResult(ok=False, permanent=True, detail="orchestrator is closed")
        extra = {"workload": str(ref), "replicas": replicas, "reason": reason}
        if self.dry_run and replicas == workload.desired:
            return ActionResult(ok=True, dry_run=True, detail=f"already {replicas} replicas")
        if self.dry_run:
            log.info(
                "dry run: would scale %s from %d to %d (%s)",
                ref,
                workload.desired,
                replicas,
                reason,
                extra=extra,
            )
            return ActionResult(
                ok=True, dry_run=True, detail=f"would scale {workload.desired} -> {replicas}"
            )
        async with workload.lock:
            return await self._scale_locked(workload, replicas, reason, extra)

    async def resize(
        self,
        ref: WorkloadRef,
        container: str,
        requests: Resources,
        limits: Resources,
        reason: str,
    ) -> ActionResult:
        return ActionResult(
            ok=False, permanent=True, detail="local processes have no resource requests"
        )

    async def close(self) -> None:
        """Stop every replica (SIGTERM, then SIGKILL after its stop timeout). Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        stops: list[Coroutine[object, object, None]] = []
        for workload in self._workloads.values():
            async with workload.lock:  # in-flight scales notice the close and return
                victims = [*workload.replicas.values(), *workload.draining]
                workload.replicas.clear()
                workload.draining.clear()
            stops.extend(
                self._stop(victim, workload.spec.stop_timeout_seconds) for victim in victims
            )
        await asyncio.gather(*stops)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- local extras ----------------------------------------------------------------------

    async def register(self, spec: LocalWorkloadSpec, replicas: int) -> ActionResult:
        """Add a workload and start ``replicas`` of it (also under dry run); ``spec.ref`` is its
        reference. A name already registered is refused (permanent)."""
        if self._closed:
            return ActionResult(ok=False, permanent=True, detail="orchestrator is closed")
        if spec.ref in self._workloads:
            return ActionResult(ok=False, permanent=True, detail=f"{spec.ref} already registered")
        if not 0 <= replicas <= self._max_replicas:
            return ActionResult(
                ok=False,
                permanent=True,
                detail=f"replicas must be in 0..{self._max_replicas}, got {replicas}",
            )
        workload = _Workload(spec)
        self._workloads[spec.ref] = workload
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="local-orchestrator")
        extra = {"workload": str(spec.ref), "replicas": replicas, "reason": "register"}
        async with workload.lock:
            return await self._scale_locked(workload, replicas, "register", extra)

    def ready_endpoints(self, ref: WorkloadRef) -> list[str]:
        """``host:port`` of the replicas that passed their last probe and are not draining."""
        workload = self._workloads.get(ref)
        if workload is None:
            return []
        return [
            replica.address
            for _, replica in sorted(workload.replicas.items())
            if replica.ready and not replica.draining and replica.alive()
        ]

    def pids(self, ref: WorkloadRef) -> dict[str, int]:
        """Pod name to pid of every live process of the workload, draining ones included."""
        workload = self._workloads.get(ref)
        if workload is None:
            return {}
        return {
            workload.pod_name(replica): replica.process.pid
            for replica in [*workload.replicas.values(), *workload.draining]
            if replica.process is not None and replica.alive()
        }

    # --- scaling ---------------------------------------------------------------------------

    async def _scale_locked(
        self, workload: _Workload, replicas: int, reason: str, extra: Mapping[str, object]
    ) -> ActionResult:
        if self._closed:
            return ActionResult(ok=False, permanent=True, detail="orchestrator is closed")
        before = workload.desired
        if replicas != before:
            workload.desired = replicas
            workload.version += 1
            workload.last_reason = reason
            log.info(
                "scaling %s from %d to %d (%s)",
                workload.spec.ref,
                before,
                replicas,
                reason,
                extra=dict(extra),
            )
        current = len(workload.replicas)
        if replicas > current:
            failure = self._add(workload, replicas - current)
            if failure is not None:
                return failure
        elif replicas < current:
            await self._remove(workload, current - replicas)
        return await self._wait_ready(workload, before)

    def _add(self, workload: _Workload, count: int) -> ActionResult | None:
        free = (index for index in range(self._max_replicas) if index not in workload.replicas)
        for index in [next(free) for _ in range(count)]:
            replica = _Replica(index=index, port=0, process=None, started_at=time.monotonic())
            try:
                self._start(workload, replica)
            except FileNotFoundError as error:
                workload.desired = len(workload.replicas)
                return ActionResult(ok=False, permanent=True, detail=f"cannot start: {error}")
            except OSError as error:
                workload.desired = len(workload.replicas)
                return ActionResult(
                    ok=False, retry_after_seconds=self._backoff, detail=f"cannot start: {error}"
                )
            workload.replicas[index] = replica
            workload.version += 1
        return None

    async def _remove(self, workload: _Workload, count: int) -> None:
        order = sorted(workload.replicas.values(), key=lambda r: (r.ready and r.alive(), -r.index))
        victims = order[:count]
        for victim in victims:  # out of the endpoints before anything is awaited
            victim.draining = True
            del workload.replicas[victim.index]
            workload.draining.append(victim)
        workload.version += 1
        drain = workload.spec.drain_seconds
        if drain > 0 and any(victim.alive() for victim in victims):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=drain)
        await asyncio.gather(
            *(self._stop(victim, workload.spec.stop_timeout_seconds) for victim in victims)
        )
        for victim in victims:
            with contextlib.suppress(ValueError):
                workload.draining.remove(victim)

    async def _wait_ready(self, workload: _Workload, before: int) -> ActionResult:
        spec = workload.spec
        loop = asyncio.get_running_loop()
        deadline = loop.time() + spec.ready_timeout_seconds
        while True:
            members = list(workload.replicas.values())
            now = time.monotonic()
            waiting = [
                replica
                for replica in members
                if not replica.ready
                or replica.ready_since is None
                or now - replica.ready_since < spec.min_ready_seconds
            ]
            if not waiting:
                return ActionResult(
                    ok=True, detail=f"{before} -> {workload.desired} replicas, all ready"
                )
            if self._closed:
                return ActionResult(ok=False, permanent=True, detail="orchestrator is closed")
            if loop.time() >= deadline:
                names = ", ".join(workload.pod_name(replica) for replica in waiting)
                return ActionResult(
                    ok=False,
                    retry_after_seconds=max(self._probe_interval, 1.0),
                    detail=f"not ready after {spec.ready_timeout_seconds:g}s: {names}",
                )
            await asyncio.gather(
                *(self._probe(workload, replica) for replica in waiting if replica.alive())
            )
            await asyncio.sleep(_SCALE_PROBE_INTERVAL)

    # --- processes -------------------------------------------------------------------------

    def _start(self, workload: _Workload, replica: _Replica) -> None:
        """Spawn the replica's process on a fresh port. Runs in the loop's thread (see
        ``controller.processes`` on why that matters for PR_SET_PDEATHSIG)."""
        spec = workload.spec
        port = free_port(HOST)
        output: IO[bytes] | int = subprocess.DEVNULL
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            output = (self._log_dir / f"{workload.pod_name(replica)}.log").open("ab")
        try:
            process = subprocess.Popen(
                spec.argv(port),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **spec.env, "PORT": str(port)},
                preexec_fn=self._preexec,
                process_group=0,
            )
        finally:
            if not isinstance(output, int):
                output.close()
        replica.port = port
        replica.process = process
        replica.started_at = time.monotonic()
        replica.mark(False, replica.started_at)
        replica.restart_at = None
        log.debug(
            "started %s pid %d on port %d",
            workload.pod_name(replica),
            process.pid,
            port,
            extra={"workload": str(spec.ref)},
        )

    async def _stop(self, replica: _Replica, timeout_seconds: float) -> None:
        replica.mark(False, time.monotonic())
        if replica.process is not None:
            await stop_process(replica.process, timeout_seconds, group=True)

    async def _probe(self, workload: _Workload, replica: _Replica) -> None:
        """One readiness check; the answer is kept only if the replica still runs that
        process and is not draining."""
        process = replica.process
        ready = False
        url = f"http://{replica.address}{workload.spec.readiness_path}"
        try:
            async with self._client().get(url, allow_redirects=False) as response:
                ready = 200 <= response.status < 400
        except (aiohttp.ClientError, TimeoutError, OSError):
            ready = False
        if replica.process is process and not replica.draining:
            replica.mark(ready and replica.alive(), time.monotonic())

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._probe_timeout),
                connector=aiohttp.TCPConnector(force_close=True),
            )
        return self._session

    # --- supervision -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        """Notice exits, restart after backoff, probe readiness; never stops on an error."""
        while True:
            try:
                await self._supervise_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("local orchestrator supervision pass failed")
            await asyncio.sleep(self._probe_interval)

    async def _supervise_once(self) -> None:
        probes: list[Coroutine[object, object, None]] = []
        now = time.monotonic()
        for workload in list(self._workloads.values()):
            for replica in list(workload.replicas.values()):
                if self._closed or replica.draining:
                    continue
                if replica.alive():
                    probes.append(self._probe(workload, replica))
                elif replica.restart_at is None:
                    self._note_exit(workload, replica, now)
                elif now >= replica.restart_at:
                    self._restart(workload, replica, now)
        await asyncio.gather(*probes)

    def _note_exit(self, workload: _Workload, replica: _Replica, now: float) -> None:
        code = replica.process.returncode if replica.process is not None else None
        if now - replica.started_at >= self._backoff_reset:
            replica.crash_streak = 0
        replica.crash_streak += 1
        delay = min(self._backoff_max, self._backoff * 2 ** (replica.crash_streak - 1))
        replica.restart_at = now + delay
        replica.mark(False, now)
        workload.version += 1
        log.warning(
            "%s exited with code %s; restarting in %.1fs",
            workload.pod_name(replica),
            code,
            delay,
            extra={"workload": str(workload.spec.ref)},
        )

    def _restart(self, workload: _Workload, replica: _Replica, now: float) -> None:
        try:
            self._start(workload, replica)
        except OSError as error:
            replica.process = None
            replica.started_at = now
            replica.restart_at = None  # the next pass counts this as another quick crash
            log.warning(
                "cannot restart %s: %s",
                workload.pod_name(replica),
                error,
                extra={"workload": str(workload.spec.ref)},
            )
            return
        replica.restarts += 1
        workload.version += 1


if TYPE_CHECKING:

    def _conforms(orchestrator: LocalOrchestrator) -> Orchestrator:
        return orchestrator
