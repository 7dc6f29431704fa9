"""What one collection pass sees, as plain frozen values.

The collector fills these from procfs and the cgroup tree; the detector and the exposition
only read them. Any group whose file could not be read is ``None`` (or absent from a mapping),
so one unreadable file yields a partial sample, never a failed one.
Units are in the names: ``*_seconds`` cumulative CPU time, ``*_bytes``, ``*_usec``, ``*_ms``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

PressureResource = Literal["cpu", "memory", "io"]
Runtime = Literal["containerd", "cri-o", "docker", ""]


@dataclass(frozen=True, slots=True)
class Pressure:
    """One PSI file: ``some`` and (where the kernel reports it) ``full``; avg in %, total in µs."""

    some_avg10: float
    some_avg60: float
    some_avg300: float
    some_total_usec: int
    full_avg10: float | None = None
    full_avg60: float | None = None
    full_avg300: float | None = None
    full_total_usec: int | None = None


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Node CPU time by mode, summed over all CPUs, cumulative since boot (``/proc/stat``)."""

    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    irq: float
    softirq: float
    steal: float

    @property
    def total(self) -> float:
        return (
            self.user
            + self.nice
            + self.system
            + self.idle
            + self.iowait
            + self.irq
            + self.softirq
            + self.steal
        )

    @property
    def busy(self) -> float:
        return self.total - self.idle - self.iowait


@dataclass(frozen=True, slots=True)
class Memory:
    total_bytes: int
    available_bytes: int
    swap_total_bytes: int
    swap_free_bytes: int


@dataclass(frozen=True, slots=True)
class DiskCounters:
    """One block device from ``/proc/diskstats`` (whole disks only, not partitions)."""

    device: str
    reads_completed: int
    writes_completed: int
    read_bytes: int
    written_bytes: int
    read_time_ms: int
    write_time_ms: int
    io_time_ms: int  # time the device had I/O in flight: Δ/Δt is utilisation
    weighted_io_time_ms: int  # Δ/Δt is the average queue size (aqu-sz)


@dataclass(frozen=True, slots=True)
class NetCounters:
    """One interface from ``/proc/net/dev`` (loopback excluded)."""

    interface: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    rx_errors: int
    tx_errors: int
    rx_drops: int
    tx_drops: int


@dataclass(frozen=True, slots=True)
class TcpCounters:
    """``/proc/net/snmp`` ``Tcp:`` line."""

    out_segs: int
    retrans_segs: int


@dataclass(frozen=True, slots=True)
class FileHandles:
    """``/proc/sys/fs/file-nr``: allocated handles and the system maximum."""

    allocated: int
    maximum: int


@dataclass(frozen=True, slots=True)
class NodeSample:
    cpu_count: int
    cpu: CpuTimes | None = None
    load1: float | None = None
    load5: float | None = None
    load15: float | None = None
    procs_running: int | None = None
    procs_blocked: int | None = None
    memory: Memory | None = None
    pressure: Mapping[PressureResource, Pressure] = field(default_factory=dict)
    disks: tuple[DiskCounters, ...] = ()
    nets: tuple[NetCounters, ...] = ()
    tcp: TcpCounters | None = None
    file_handles: FileHandles | None = None


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """Who a process or cgroup belongs to, from its cgroup path (and the pod list, if known)."""

    pod_uid: str
    container_id: str = ""  # empty for a pod-level cgroup
    runtime: Runtime = ""
    qos: str = ""  # guaranteed | burstable | besteffort
    namespace: str = ""  # from the node's pod list, when reachable
    pod: str = ""
    container: str = ""


@dataclass(frozen=True, slots=True)
class ProcessSample:
    pid: int
    comm: str
    cpu_seconds: float  # utime + stime, cumulative
    cpu_cores: float | None  # CPU rate since the collector's previous pass (1.0 = one core)
    rss_bytes: int
    threads: int
    voluntary_ctxt_switches: int
    nonvoluntary_ctxt_switches: int
    read_bytes: int | None = None  # /proc/PID/io, unreadable without privilege
    write_bytes: int | None = None
    fds: int | None = None
    fd_limit: int | None = None
    cgroup: str = ""  # unified (v2) cgroup path, relative to the cgroup root
    container: ContainerRef | None = None


@dataclass(frozen=True, slots=True)
class CgroupSample:
    """A pod or container cgroup (v2): throttling, memory, OOM events, pressure."""

    path: str
    container: ContainerRef
    usage_usec: int | None = None
    nr_periods: int | None = None
    nr_throttled: int | None = None
    throttled_usec: int | None = None
    memory_current_bytes: int | None = None
    memory_max_bytes: int | None = None  # None: unlimited ("max") or unreadable
    oom: int | None = None
    oom_kill: int | None = None
    pressure: Mapping[PressureResource, Pressure] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sample:
    timestamp: float
    node: NodeSample
    processes: tuple[ProcessSample, ...] = ()
    cgroups: tuple[CgroupSample, ...] = ()
    # source -> files that could not be read or parsed in this pass (e.g. "pressure": 1)
    errors: Mapping[str, int] = field(default_factory=dict)
