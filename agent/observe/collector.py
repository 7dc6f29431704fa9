"""One collection pass over procfs and the cgroup tree, producing a :class:`Sample`.

Every pid's ``/proc/PID/stat`` is read each pass (one small read each) to rank processes by
CPU rate and RSS; the more expensive per-process files are read only for the top K of each.
The only state kept between passes is each live pid's cumulative CPU time, so memory stays
bounded by the number of processes. A bad file never fails the pass: its group is left out
and counted in ``Sample.errors``; a process exiting mid-read is simply skipped.
"""

from __future__ import annotations

import errno
import heapq
import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from agent.observe import procfs
from agent.observe.cgroups import container_ref, read_kube_cgroups
from agent.observe.model import (
    CgroupSample,
    ContainerRef,
    NodeSample,
    Pressure,
    PressureResource,
    ProcessSample,
    Sample,
)

_T = TypeVar("_T")
PRESSURE_RESOURCES: tuple[PressureResource, ...] = ("cpu", "memory", "io")
# The file is not there because the process is: it exited between listing and reading.
_VANISHED = (FileNotFoundError, ProcessLookupError)
_BAD = (OSError, ValueError, LookupError)


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the node's pod list says about one pod UID (dashed form)."""

    namespace: str
    name: str
    containers: Mapping[str, str] = field(default_factory=dict)  # bare container ID -> name


PodDirectory = Callable[[], Mapping[str, PodInfo]]


class _VanishedError(Exception):
    """The process exited while its files were being read."""


@dataclass(slots=True)
class _Scanned:
    stat: procfs.PidStat
    cpu_cores: float | None


def _guard(errors: Counter[str], source: str, read: Callable[[], _T]) -> _T | None:
    try:
        return read()
    except _BAD:
        errors[source] += 1
        return None


class Collector:
    """Reads ``proc_root`` and ``cgroup_root`` (``/proc`` and ``/sys/fs/cgroup``, or host
    mounts, or fixture trees); ``clock`` stamps samples and times CPU rates."""

    def __init__(
        self,
        proc_root: Path,
        cgroup_root: Path,
        clock: Callable[[], float],
        top_k: int = 20,
        pod_directory: PodDirectory | None = None,
        clock_ticks: int | None = None,
        page_size: int | None = None,
    ) -> None:
        self._proc_root = proc_root
        self._proc = str(proc_root)
        self._cgroup_root = cgroup_root
        self._clock = clock
        self._top_k = top_k
        self._pod_directory = pod_directory
        self._clock_ticks = clock_ticks or os.sysconf("SC_CLK_TCK")
        self._page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        # pid -> (start ticks, cumulative CPU seconds) from the previous pass only.
        self._previous: dict[int, tuple[int, float]] = {}
        self._previous_time: float | None = None

    @property
    def tracked_pids(self) -> frozenset[int]:
        """Pids whose CPU time is remembered for the next pass: exactly those seen last pass."""
        return frozenset(self._previous)

    def sample(self) -> Sample:
        now = self._clock()
        errors: Counter[str] = Counter()
        node = self._node(errors)
        pods = self._pods(errors)
        processes = self._processes(now, errors, pods)
        cgroups = self._cgroups(errors, pods)
        return Sample(
            timestamp=now,
            node=node,
            processes=tuple(processes),
            cgroups=tuple(cgroups),
            errors=dict(errors),
        )

    # -- node -------------------------------------------------------------------------------

    def _node(self, errors: Counter[str]) -> NodeSample:
        root = self._proc_root
        stat = _guard(errors, "stat", lambda: procfs.read_stat(root, self._clock_ticks))
        load = _guard(errors, "loadavg", lambda: procfs.read_loadavg(root))
        return NodeSample(
            # Without /proc/stat, the agent's own view is better than a zero to divide by.
            cpu_count=stat.cpu_count if stat else os.cpu_count() or 1,
            cpu=stat.cpu if stat else None,
            load1=load.load1 if load else None,
            load5=load.load5 if load else None,
            load15=load.load15 if load else None,
            procs_running=stat.procs_running if stat else None,
            procs_blocked=stat.procs_blocked if stat else None,
            memory=_guard(errors, "meminfo", lambda: procfs.read_meminfo(root)),
            pressure=self._pressure(errors),
            disks=_guard(errors, "diskstats", lambda: procfs.read_diskstats(root)) or (),
            nets=_guard(errors, "net_dev", lambda: procfs.read_net_dev(root)) or (),
            tcp=_guard(errors, "snmp", lambda: procfs.read_snmp_tcp(root)),
            file_handles=_guard(errors, "file_nr", lambda: procfs.read_file_nr(root)),
        )

    def _pressure(self, errors: Counter[str]) -> dict[PressureResource, Pressure]:
        """A kernel without PSI (no files) or booted with ``psi=0`` (EOPNOTSUPP) is not an
        error: the resources are just absent."""
        pressure: dict[PressureResource, Pressure] = {}
        for resource in PRESSURE_RESOURCES:
            try:
                pressure[resource] = procfs.read_pressure(self._proc_root, resource)
            except FileNotFoundError:
                continue
            except OSError as exc:
                if exc.errno != errno.EOPNOTSUPP:
                    errors["pressure"] += 1
            except (ValueError, LookupError):
                errors["pressure"] += 1
        return pressure

    def _pods(self, errors: Counter[str]) -> Mapping[str, PodInfo] | None:
        if self._pod_directory is None:
            return None
        try:
            return self._pod_directory()
        except Exception:  # foreign code (a pod-list cache): never let it fail the pass
            errors["pod_directory"] += 1
            return None

    # -- processes --------------------------------------------------------------------------

    def _processes(
        self, now: float, errors: Counter[str], pods: Mapping[str, PodInfo] | None
    ) -> list[ProcessSample]:
        scanned = self._scan(now, errors)
        samples = []
        for item in self._select(scanned):
            try:
                sample = self._detail(item, errors, pods)
            except _VanishedError:
                continue
            if sample is not None:
                samples.append(sample)
        return samples

    def _scan(self, now: float, errors: Counter[str]) -> list[_Scanned]:
        """The cheap pass: one ``stat`` read per pid, and its CPU rate since the last pass."""
        previous = self._previous
        elapsed = now - self._previous_time if self._previous_time is not None else 0.0
        current: dict[int, tuple[int, float]] = {}
        scanned: list[_Scanned] = []
        self._previous, self._previous_time = current, now
        try:
            names = os.listdir(self._proc)
        except OSError:
            errors["processes"] += 1
            return scanned
        ticks = self._clock_ticks
        for name in names:
            if not name.isdigit():
                continue
            try:
                text = procfs.read_text(f"{self._proc}/{name}/stat")
            except _VANISHED:
                continue
            except OSError:
                errors["process_stat"] += 1
                continue
            if not text:  # reaped between open and read
                continue
            try:
                stat = procfs.parse_pid_stat(text, ticks)
            except (ValueError, LookupError):
                errors["process_stat"] += 1
                continue
            current[stat.pid] = (stat.start_ticks, stat.cpu_seconds)
            cores = None
            before = previous.get(stat.pid)
            # A different start time is a reused pid: a new process, no rate yet.
            if before is not None and before[0] == stat.start_ticks and elapsed > 0:
                cores = max(stat.cpu_seconds - before[1], 0.0) / elapsed
            scanned.append(_Scanned(stat, cores))
        return scanned

    def _select(self, scanned: list[_Scanned]) -> list[_Scanned]:
        """Top K by CPU rate plus top K by RSS, in pid order. A process with no rate yet, or
        using neither CPU nor memory (idle kernel threads), is not a candidate on that axis."""
        k = self._top_k
        by_cpu = heapq.nlargest(
            k,
            (s for s in scanned if s.cpu_cores),
            key=lambda s: (s.cpu_cores or 0.0, -s.stat.pid),
        )
        by_rss = heapq.nlargest(
            k,
            (s for s in scanned if s.stat.rss_pages > 0),
            key=lambda s: (s.stat.rss_pages, -s.stat.pid),
        )
        chosen = {s.stat.pid: s for s in (*by_cpu, *by_rss)}
        return [chosen[pid] for pid in sorted(chosen)]

    def _detail(
        self, item: _Scanned, errors: Counter[str], pods: Mapping[str, PodInfo] | None
    ) -> ProcessSample | None:
        """The expensive files, for a selected process. Raises ``_VanishedError`` if it exited."""
        stat = item.stat
        pid = stat.pid
        root = self._proc_root

        status = self._pid_file(errors, "process_status", lambda: procfs.read_pid_status(root, pid))
        if status is None:  # counted; without context switches the process is left out
            return None
        io = self._pid_file(
            errors, "process_io", lambda: procfs.read_pid_io(root, pid), denied_is_normal=True
        )
        fds = self._pid_file(
            errors, "process_fd", lambda: procfs.count_fds(root, pid), denied_is_normal=True
        )
        fd_limit = self._pid_file(
            errors, "process_limits", lambda: procfs.read_pid_limits_nofile(root, pid)
        )
        cgroup = self._pid_file(errors, "process_cgroup", lambda: procfs.read_pid_cgroup(root, pid))
        ref = container_ref(cgroup) if cgroup else None
        return ProcessSample(
            pid=pid,
            comm=stat.comm,
            cpu_seconds=stat.cpu_seconds,
            cpu_cores=item.cpu_cores,
            rss_bytes=(
                status.rss_bytes
                if status.rss_bytes is not None
                else stat.rss_pages * self._page_size
            ),
            threads=status.threads if status.threads is not None else stat.num_threads,
            voluntary_ctxt_switches=status.voluntary_ctxt_switches,
            nonvoluntary_ctxt_switches=status.nonvoluntary_ctxt_switches,
            read_bytes=io.read_bytes if io else None,
            write_bytes=io.write_bytes if io else None,
            fds=fds,
            fd_limit=fd_limit,
            cgroup=cgroup or "",
            container=_enrich(ref, pods) if ref else None,
        )

    @staticmethod
    def _pid_file(
        errors: Counter[str],
        source: str,
        read: Callable[[], _T],
        *,
        denied_is_normal: bool = False,
    ) -> _T | None:
        """``/proc/PID/io`` and ``fd`` need ptrace rights over the process: EACCES there is
        the normal unprivileged case, not an error."""
        try:
            return read()
        except _VANISHED:
            raise _VanishedError from None
        except PermissionError:
            if not denied_is_normal:
                errors[source] += 1
            return None
        except _BAD:
            errors[source] += 1
            return None

    # -- cgroups ----------------------------------------------------------------------------

    def _cgroups(
        self, errors: Counter[str], pods: Mapping[str, PodInfo] | None
    ) -> list[CgroupSample]:
        samples = read_kube_cgroups(self._cgroup_root, errors)
        if not pods:
            return samples
        return [replace(s, container=_enrich(s.container, pods)) for s in samples]


def _enrich(ref: ContainerRef, pods: Mapping[str, PodInfo] | None) -> ContainerRef:
    """Names from the pod list; a pod not (yet) in it keeps just its UID and IDs."""
    info = pods.get(ref.pod_uid) if pods else None
    if info is None:
        return ref
    return replace(
        ref,
        namespace=info.namespace,
        pod=info.name,
        container=info.containers.get(ref.container_id, "") if ref.container_id else "",
    )
