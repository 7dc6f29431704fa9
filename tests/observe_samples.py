"""Small ``Sample`` builders for detector tests, and the seed-scenario converter.

The builders leave every group unset unless asked, so a test states only the signal it is
about. ``load_scenarios`` turns ``sample_performance_metrics.json`` into ``Sample`` series the
way the collector would see them: process CPU rates from consecutive process samples, and pod
names on cgroups from the node's pod list (here: the processes' metadata).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.observe.model import (
    CgroupSample,
    ContainerRef,
    CpuTimes,
    DiskCounters,
    FileHandles,
    Memory,
    NetCounters,
    NodeSample,
    Pressure,
    PressureResource,
    ProcessSample,
    Runtime,
    Sample,
    TcpCounters,
)

FIXTURE = (
    Path(__file__).resolve().parents[1]
    / "testing/fixtures/scalability_data/sample_performance_metrics.json"
)

# --- builders --------------------------------------------------------------------------------


def cpu_times(busy: float = 0.0, idle: float = 0.0) -> CpuTimes:
    """All busy time as ``user``: the detector only reads busy and total."""
    return CpuTimes(
        user=busy, nice=0.0, system=0.0, idle=idle, iowait=0.0, irq=0.0, softirq=0.0, steal=0.0
    )


def pressure(some: float = 0.0, full: float | None = None) -> Pressure:
    return Pressure(
        some_avg10=some, some_avg60=some, some_avg300=some, some_total_usec=0, full_avg10=full
    )


def memory(total: int, available: int, swap_total: int = 0, swap_free: int = 0) -> Memory:
    return Memory(
        total_bytes=total,
        available_bytes=available,
        swap_total_bytes=swap_total,
        swap_free_bytes=swap_free,
    )


def disk(
    device: str = "sda",
    io_time_ms: int = 0,
    reads: int = 0,
    writes: int = 0,
    read_time_ms: int = 0,
    write_time_ms: int = 0,
    read_bytes: int = 0,
    written_bytes: int = 0,
    weighted_io_time_ms: int = 0,
) -> DiskCounters:
    return DiskCounters(
        device=device,
        reads_completed=reads,
        writes_completed=writes,
        read_bytes=read_bytes,
        written_bytes=written_bytes,
        read_time_ms=read_time_ms,
        write_time_ms=write_time_ms,
        io_time_ms=io_time_ms,
        weighted_io_time_ms=weighted_io_time_ms,
    )


def net(
    interface: str = "eth0", packets: int = 0, drops: int = 0, tx_packets: int = 0
) -> NetCounters:
    return NetCounters(
        interface=interface,
        rx_bytes=0,
        tx_bytes=0,
        rx_packets=packets,
        tx_packets=tx_packets,
        rx_errors=0,
        tx_errors=0,
        rx_drops=drops,
        tx_drops=0,
    )


def tcp(out_segs: int, retrans_segs: int) -> TcpCounters:
    return TcpCounters(out_segs=out_segs, retrans_segs=retrans_segs)


def handles(allocated: int, maximum: int) -> FileHandles:
    return FileHandles(allocated=allocated, maximum=maximum)


def ref(
    pod_uid: str = "uid-a",
    container_id: str = "c1",
    namespace: str = "",
    pod: str = "",
    container: str = "",
) -> ContainerRef:
    return ContainerRef(
        pod_uid=pod_uid,
        container_id=container_id,
        namespace=namespace,
        pod=pod,
        container=container,
    )


def process(
    pid: int,
    comm: str = "app",
    cpu_cores: float | None = None,
    rss_bytes: int = 0,
    read_bytes: int | None = None,
    write_bytes: int | None = None,
    fds: int | None = None,
    fd_limit: int | None = None,
    container: ContainerRef | None = None,
) -> ProcessSample:
    return ProcessSample(
        pid=pid,
        comm=comm,
        cpu_seconds=0.0,
        cpu_cores=cpu_cores,
        rss_bytes=rss_bytes,
        threads=1,
        voluntary_ctxt_switches=0,
        nonvoluntary_ctxt_switches=0,
        read_bytes=read_bytes,
        write_bytes=write_bytes,
        fds=fds,
        fd_limit=fd_limit,
        container=container,
    )


def cgroup(
    container: ContainerRef,
    nr_periods: int | None = None,
    nr_throttled: int | None = None,
    oom_kill: int | None = None,
    memory_current: int | None = None,
    memory_max: int | None = None,
    path: str = "",
) -> CgroupSample:
    return CgroupSample(
        path=path or f"/kubepods/{container.pod_uid}/{container.container_id}",
        container=container,
        nr_periods=nr_periods,
        nr_throttled=nr_throttled,
        memory_current_bytes=memory_current,
        memory_max_bytes=memory_max,
        oom_kill=oom_kill,
    )


def sample(
    timestamp: float = 1000.0,
    cpu_count: int = 4,
    processes: tuple[ProcessSample, ...] = (),
    cgroups: tuple[CgroupSample, ...] = (),
    **node: Any,
) -> Sample:
    """``node`` takes ``NodeSample`` fields (``pressure``, ``memory``, ``disks``, ...)."""
    return Sample(
        timestamp=timestamp,
        node=NodeSample(cpu_count=cpu_count, **node),
        processes=processes,
        cgroups=cgroups,
    )


def later(base: Sample, seconds: float = 10.0, **node: Any) -> Sample:
    """The same sample ``seconds`` later, with some node fields changed."""
    return replace(base, timestamp=base.timestamp + seconds, node=replace(base.node, **node))


# --- seed scenarios ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    node_name: str
    samples: tuple[Sample, ...]
    expected: Mapping[str, Any] | None


def _pressures(psi: Mapping[str, Any]) -> dict[PressureResource, Pressure]:
    out: dict[PressureResource, Pressure] = {}
    resources: tuple[PressureResource, ...] = ("cpu", "memory", "io")
    for resource in resources:
        lines = psi.get(resource)
        if lines is None:
            continue
        some, full = lines["some"], lines.get("full")
        out[resource] = Pressure(
            some_avg10=some["avg10"],
            some_avg60=some["avg60"],
            some_avg300=some["avg300"],
            some_total_usec=some["total"],
            full_avg10=full["avg10"] if full else None,
            full_avg60=full["avg60"] if full else None,
            full_avg300=full["avg300"] if full else None,
            full_total_usec=full["total"] if full else None,
        )
    return out


def _node(cpu_count: int, raw: Mapping[str, Any]) -> NodeSample:
    return NodeSample(
        cpu_count=cpu_count,
        cpu=CpuTimes(**raw["cpu_seconds"]),
        load1=raw["load1"],
        load5=raw["load5"],
        load15=raw["load15"],
        procs_running=raw["procs_running"],
        procs_blocked=raw["procs_blocked"],
        memory=Memory(**raw["memory"]),
        pressure=_pressures(raw["psi"]),
        disks=tuple(
            DiskCounters(**{k: v for k, v in d.items() if k not in ("util_percent", "await_ms")})
            for d in raw["disks"]
        ),
        nets=tuple(
            NetCounters(
                interface=i["name"],
                rx_bytes=i["rx_bytes"],
                tx_bytes=i["tx_bytes"],
                rx_packets=i["rx_packets"],
                tx_packets=i["tx_packets"],
                rx_errors=0,
                tx_errors=0,
                rx_drops=i["rx_dropped"],
                tx_drops=i["tx_dropped"],
            )
            for i in raw["interfaces"]
        ),
        tcp=TcpCounters(out_segs=raw["tcp"]["out_segs"], retrans_segs=raw["tcp"]["retrans_segs"]),
        file_handles=FileHandles(allocated=raw["fds"]["allocated"], maximum=raw["fds"]["max"]),
    )


def _qos(path: str) -> str:
    for qos in ("burstable", "besteffort"):
        if f"kubepods-{qos}" in path:
            return qos
    return "guaranteed" if path.startswith("/kubepods") else ""


def _runtime(path: str) -> Runtime:
    return "containerd" if "cri-containerd-" in path else ""


def _names(processes: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """pod_uid -> (namespace, pod), as the kubelet's pod list would give."""
    return {p["pod_uid"]: (p["namespace"], p["pod"]) for p in processes if p["pod_uid"] is not None}


def _containers(processes: list[dict[str, Any]]) -> dict[str, str]:
    return {p["container_id"]: p["container"] for p in processes if p["container_id"]}


def _ref(
    path: str,
    pod_uid: str | None,
    container_id: str | None,
    pods: Mapping[str, tuple[str, str]],
    containers: Mapping[str, str],
) -> ContainerRef | None:
    if pod_uid is None:
        return None
    namespace, pod = pods.get(pod_uid, ("", ""))
    return ContainerRef(
        pod_uid=pod_uid,
        container_id=container_id or "",
        runtime=_runtime(path),
        qos=_qos(path),
        namespace=namespace,
        pod=pod,
        container=containers.get(container_id or "", ""),
    )


def _processes(scenario: Mapping[str, Any], timestamp: float) -> tuple[ProcessSample, ...]:
    pods, containers = _names(scenario["processes"]), _containers(scenario["processes"])
    out: list[ProcessSample] = []
    for raw in scenario["processes"]:
        series = raw["samples"]
        for index, point in enumerate(series):
            if point["timestamp"] != timestamp:
                continue
            before = series[index - 1] if index > 0 else None
            cores = (
                (point["cpu_seconds"] - before["cpu_seconds"])
                / (point["timestamp"] - before["timestamp"])
                if before is not None
                else None
            )
            out.append(
                ProcessSample(
                    pid=raw["pid"],
                    comm=raw["comm"],
                    cpu_seconds=point["cpu_seconds"],
                    cpu_cores=cores,
                    rss_bytes=point["rss_bytes"],
                    threads=point["threads"],
                    voluntary_ctxt_switches=point["voluntary_ctxt_switches"],
                    nonvoluntary_ctxt_switches=point["nonvoluntary_ctxt_switches"],
                    read_bytes=point["read_bytes"],
                    write_bytes=point["write_bytes"],
                    fds=point["fds"],
                    fd_limit=raw["fd_limit"],
                    cgroup=raw["cgroup"],
                    container=_ref(
                        raw["cgroup"], raw["pod_uid"], raw["container_id"], pods, containers
                    ),
                )
            )
    return tuple(out)


def _cgroups(scenario: Mapping[str, Any], timestamp: float) -> tuple[CgroupSample, ...]:
    pods, containers = _names(scenario["processes"]), _containers(scenario["processes"])
    out: list[CgroupSample] = []
    for raw in scenario["cgroups"]:
        container = _ref(raw["path"], raw["pod_uid"], raw["container_id"], pods, containers)
        assert container is not None
        for point in raw["samples"]:
            if point["timestamp"] != timestamp:
                continue
            stat, events = point["cpu_stat"], point["memory_events"]
            out.append(
                CgroupSample(
                    path=raw["path"],
                    container=container,
                    usage_usec=stat["usage_usec"],
                    nr_periods=stat["nr_periods"],
                    nr_throttled=stat["nr_throttled"],
                    throttled_usec=stat["throttled_usec"],
                    memory_current_bytes=point["memory_current_bytes"],
                    memory_max_bytes=raw["memory_max_bytes"],
                    oom=events["oom"],
                    oom_kill=events["oom_kill"],
                )
            )
    return tuple(out)


def scenario_samples(scenario: Mapping[str, Any]) -> tuple[Sample, ...]:
    node = scenario["node"]
    return tuple(
        Sample(
            timestamp=float(raw["timestamp"]),
            node=_node(node["cpu_count"], raw),
            processes=_processes(scenario, raw["timestamp"]),
            cgroups=_cgroups(scenario, raw["timestamp"]),
        )
        for raw in node["samples"]
    )


def load_scenarios(path: Path = FIXTURE) -> list[Scenario]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [
        Scenario(
            name=entry["name"],
            node_name=entry["node"]["name"],
            samples=scenario_samples(entry),
            expected=entry["expected"],
        )
        for entry in data
    ]
