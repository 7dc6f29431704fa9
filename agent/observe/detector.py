"""Bottleneck detection: pure functions from two consecutive samples to USE-method findings.

``derive`` turns a pair of samples into rates and ratios (``Signals``); each rule reads one
signal per subject and returns observations; ``detect`` runs those observations through a
hysteresis state machine (Crane's trigger-after-N / restore-after-N), so a value hovering near
a threshold neither flaps nor re-opens. Nothing here reads a clock, a file or a random source:
time is ``Sample.timestamp`` and state is passed in and returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Final, Literal, TypeAlias

from agent.observe.model import (
    CgroupSample,
    ContainerRef,
    DiskCounters,
    NetCounters,
    NodeSample,
    PressureResource,
    ProcessSample,
    Sample,
)
from shared.wire import BottleneckFinding, BottleneckThresholds, Culprit, Evidence, Threshold

Resource = Literal["cpu", "memory", "disk", "network", "fds"]
Kind = Literal["utilization", "saturation", "errors"]
Severity = Literal["warning", "critical"]
Level = Literal["critical", "warning", "hover", "clear", "no_data"]
Key = tuple[str, str]  # (rule, subject)

MAX_FINDINGS: Final = 50  # per sample; well under the wire's MAX_FINDINGS per report
MAX_TRACKS: Final = 1000  # open plus pending keys, so a fork bomb cannot grow the state
MAX_CULPRITS: Final = 5  # top-N processes named for a node-level finding
MIN_CULPRIT_SHARE: Final = 0.05  # below this a process is noise, not a cause
_WIRE_MAX_CULPRITS: Final = 20
# An OOM kill is an event, not a level: any increase is critical and opens at once.
_ANY_INCREASE: Final = Threshold(warning=1.0, critical=1.0)
_BREACH: Final = frozenset({"critical", "warning"})


# --- Signals: what two samples say, in named units ------------------------------------------


@dataclass(frozen=True, slots=True)
class DiskSignals:
    device: str
    utilization_percent: float | None  # Δio_time / Δt
    await_ms: float | None  # Δ(read_time + write_time) / Δ(reads + writes)
    queue_size: float | None  # aqu-sz: Δweighted_io_time / Δt
    io_bytes: int | None  # Δ(read_bytes + written_bytes)


@dataclass(frozen=True, slots=True)
class InterfaceSignals:
    interface: str
    drop_percent: float | None  # Δ(rx + tx drops) / Δ(rx + tx packets)


@dataclass(frozen=True, slots=True)
class ProcessSignals:
    pid: int
    command: str
    container: ContainerRef | None
    cpu_cores: float | None  # the collector's rate
    rss_bytes: int
    fds: int | None
    fd_limit: int | None
    fd_usage_percent: float | None  # fds / soft limit
    io_bytes: int | None  # Δ(read_bytes + write_bytes), same pid and command in both samples


@dataclass(frozen=True, slots=True)
class CgroupSignals:
    path: str
    container: ContainerRef
    throttled_percent: float | None  # Δnr_throttled / Δnr_periods; None without a quota
    oom_kills: int | None  # increase of memory.events oom_kill since the previous sample
    memory_usage_percent: float | None  # memory.current / memory.max; None when unlimited


@dataclass(frozen=True, slots=True)
class Signals:
    """Everything the rules read. ``None`` means "no data" (unreadable, first sample, counter
    reset, zero denominator): a rule never guesses a value it does not have."""

    timestamp: float
    interval_seconds: float | None
    cpu_count: int
    cpu_utilization_percent: float | None
    cpu_busy_cores: float | None
    runqueue_ratio: float | None  # procs_running / cpu_count
    cpu_psi_some_percent: float | None  # avg10
    memory_psi_some_percent: float | None
    memory_psi_full_percent: float | None
    io_psi_some_percent: float | None
    io_psi_full_percent: float | None
    memory_total_bytes: int | None
    memory_available_percent: float | None
    swap_used_percent: float | None  # None when swap is off
    file_handles_allocated: int | None
    file_handles_used_percent: float | None
    tcp_retransmit_percent: float | None  # Δretrans / Δout_segs
    disks: tuple[DiskSignals, ...] = ()
    interfaces: tuple[InterfaceSignals, ...] = ()
    processes: tuple[ProcessSignals, ...] = ()
    cgroups: tuple[CgroupSignals, ...] = ()
    # In the previous sample but gone now: an OOM-killed process is only visible here.
    exited_processes: tuple[ProcessSignals, ...] = ()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _delta(before: float | None, after: float | None) -> float | None:
    """A counter's increase; a decrease is a reset (reboot, recreated cgroup): no data."""
    if before is None or after is None or after < before:
        return None
    return after - before


def _percent(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole <= 0 or part < 0:
        return None
    return _finite(100.0 * part / whole)


def _clamp_percent(value: float | None) -> float | None:
    """Sampling jitter can push a busy-time ratio a hair past 100 %."""
    return None if value is None else min(100.0, max(0.0, value))


def _interval(previous: Sample | None, current: Sample) -> float | None:
    if previous is None:
        return None
    dt = current.timestamp - previous.timestamp
    return dt if dt > 0 and math.isfinite(dt) else None


def _psi(
    node: NodeSample, resource: PressureResource, line: Literal["some", "full"]
) -> float | None:
    pressure = node.pressure.get(resource)
    if pressure is None:
        return None
    return pressure.some_avg10 if line == "some" else pressure.full_avg10


def _cpu(
    previous: NodeSample | None, current: NodeSample, dt: float | None
) -> tuple[float | None, float | None]:
    """(utilisation %, busy cores) from /proc/stat deltas."""
    if previous is None or previous.cpu is None or current.cpu is None or dt is None:
        return None, None
    total = _delta(previous.cpu.total, current.cpu.total)
    busy = _delta(previous.cpu.busy, current.cpu.busy)
    if total is None or busy is None or busy > total * 1.01:
        return None, None
    return _clamp_percent(_percent(busy, total)), busy / dt


def _disk(previous: DiskCounters | None, current: DiskCounters, dt: float | None) -> DiskSignals:
    if previous is None or dt is None:
        return DiskSignals(current.device, None, None, None, None)
    io_time = _delta(previous.io_time_ms, current.io_time_ms)
    ios = _delta(
        previous.reads_completed + previous.writes_completed,
        current.reads_completed + current.writes_completed,
    )
    wait = _delta(
        previous.read_time_ms + previous.write_time_ms,
        current.read_time_ms + current.write_time_ms,
    )
    weighted = _delta(previous.weighted_io_time_ms, current.weighted_io_time_ms)
    moved = _delta(
        previous.read_bytes + previous.written_bytes, current.read_bytes + current.written_bytes
    )
    return DiskSignals(
        device=current.device,
        utilization_percent=_clamp_percent(_percent(io_time, dt * 1000.0)),
        await_ms=None if wait is None or not ios else _finite(wait / ios),
        queue_size=None if weighted is None else _finite(weighted / (dt * 1000.0)),
        io_bytes=None if moved is None else int(moved),
    )


def _interface(previous: NetCounters | None, current: NetCounters) -> InterfaceSignals:
    if previous is None:
        return InterfaceSignals(current.interface, None)
    drops = _delta(previous.rx_drops + previous.tx_drops, current.rx_drops + current.tx_drops)
    packets = _delta(
        previous.rx_packets + previous.tx_packets, current.rx_packets + current.tx_packets
    )
    return InterfaceSignals(current.interface, _percent(drops, packets))


def _same_process(previous: ProcessSample | None, current: ProcessSample) -> bool:
    """A pid is reused after exit; the command tells a new process from the old one."""
    return previous is not None and previous.comm == current.comm


def _process(previous: ProcessSample | None, current: ProcessSample) -> ProcessSignals:
    io_bytes: int | None = None
    if previous is not None and _same_process(previous, current):
        before = _io_total(previous)
        after = _io_total(current)
        moved = _delta(before, after)
        io_bytes = None if moved is None else int(moved)
    return ProcessSignals(
        pid=current.pid,
        command=current.comm,
        container=current.container,
        cpu_cores=current.cpu_cores,
        rss_bytes=current.rss_bytes,
        fds=current.fds,
        fd_limit=current.fd_limit,
        fd_usage_percent=_percent(current.fds, current.fd_limit),
        io_bytes=io_bytes,
    )


def _io_total(process: ProcessSample) -> int | None:
    if process.read_bytes is None or process.write_bytes is None:
        return None
    return process.read_bytes + process.write_bytes


def _cgroup(previous: CgroupSample | None, current: CgroupSample) -> CgroupSignals:
    throttled: float | None = None
    oom_kills: int | None = None
    if previous is not None:
        periods = _delta(previous.nr_periods, current.nr_periods)
        hits = _delta(previous.nr_throttled, current.nr_throttled)
        throttled = _clamp_percent(_percent(hits, periods))
        kills = _delta(previous.oom_kill, current.oom_kill)
        oom_kills = None if kills is None else int(kills)
    return CgroupSignals(
        path=current.path,
        container=current.container,
        throttled_percent=throttled,
        oom_kills=oom_kills,
        memory_usage_percent=_percent(current.memory_current_bytes, current.memory_max_bytes),
    )


def derive(previous: Sample | None, current: Sample) -> Signals:
    """Rates need the previous sample; gauges (PSI avg10, memory, fds) do not."""
    dt = _interval(previous, current)
    rated = previous if dt is not None else None  # a non-advancing clock gives no rates
    node = current.node
    before = rated.node if rated is not None else None
    utilization, busy_cores = _cpu(before, node, dt)
    memory = node.memory
    handles = node.file_handles
    tcp_before = before.tcp if before is not None else None
    retransmits = (
        _percent(
            _delta(tcp_before.retrans_segs, node.tcp.retrans_segs),
            _delta(tcp_before.out_segs, node.tcp.out_segs),
        )
        if tcp_before is not None and node.tcp is not None
        else None
    )
    disks_before = {d.device: d for d in before.disks} if before is not None else {}
    nets_before = {n.interface: n for n in before.nets} if before is not None else {}
    procs_before = {p.pid: p for p in rated.processes} if rated is not None else {}
    cgroups_before = {c.path: c for c in rated.cgroups} if rated is not None else {}
    current_procs = {p.pid: p for p in current.processes}
    exited = tuple(
        _process(None, p)
        for p in (previous.processes if previous is not None else ())
        if not _same_process(current_procs.get(p.pid), p)
    )
    return Signals(
        timestamp=current.timestamp,
        interval_seconds=dt,
        cpu_count=node.cpu_count,
        cpu_utilization_percent=utilization,
        cpu_busy_cores=busy_cores,
        runqueue_ratio=(
            node.procs_running / node.cpu_count
            if node.procs_running is not None and node.cpu_count > 0
            else None
        ),
        cpu_psi_some_percent=_psi(node, "cpu", "some"),
        memory_psi_some_percent=_psi(node, "memory", "some"),
        memory_psi_full_percent=_psi(node, "memory", "full"),
        io_psi_some_percent=_psi(node, "io", "some"),
        io_psi_full_percent=_psi(node, "io", "full"),
        memory_total_bytes=memory.total_bytes if memory is not None else None,
        memory_available_percent=(
            _percent(memory.available_bytes, memory.total_bytes) if memory is not None else None
        ),
        swap_used_percent=(
            _percent(memory.swap_total_bytes - memory.swap_free_bytes, memory.swap_total_bytes)
            if memory is not None
            else None
        ),
        file_handles_allocated=handles.allocated if handles is not None else None,
        file_handles_used_percent=(
            _percent(handles.allocated, handles.maximum) if handles is not None else None
        ),
        tcp_retransmit_percent=retransmits,
        disks=tuple(_disk(disks_before.get(d.device), d, dt) for d in node.disks),
        interfaces=tuple(_interface(nets_before.get(n.interface), n) for n in node.nets),
        processes=tuple(_process(procs_before.get(p.pid), p) for p in current.processes),
        cgroups=tuple(_cgroup(cgroups_before.get(c.path), c) for c in current.cgroups),
        exited_processes=exited,
    )


# --- Subjects and culprits ----------------------------------------------------------------


def node_subject(node_name: str) -> str:
    return f"node/{node_name}"


def workload_subject(ref: ContainerRef) -> str:
    """``pod/<ns>/<pod>`` for a pod cgroup, ``container/<ns>/<pod>/<container>`` otherwise;
    uids and ids stand in for names the pod list did not supply."""
    namespace = ref.namespace or ref.pod_uid
    pod = ref.pod or ref.pod_uid
    if not ref.container_id:
        return f"pod/{namespace}/{pod}"
    return f"container/{namespace}/{pod}/{ref.container or ref.container_id}"


def _culprit(
    ref: ContainerRef | None, share: float, pid: int | None = None, command: str = ""
) -> Culprit:
    ref = ref or ContainerRef(pod_uid="")
    return Culprit(
        pid=pid,
        command=command[:256],
        namespace=ref.namespace[:253],
        pod=ref.pod[:253],
        pod_uid=ref.pod_uid[:64],
        container=ref.container[:253],
        container_id=ref.container_id[:128],
        share=round(min(1.0, max(0.0, share)), 4),
    )


def _process_culprit(process: ProcessSignals, share: float) -> Culprit:
    return _culprit(process.container, share, process.pid, process.command)


def _top(
    processes: Iterable[ProcessSignals],
    weight: Callable[[ProcessSignals], float | None],
    total: float | None,
    limit: int = MAX_CULPRITS,
    min_share: float = MIN_CULPRIT_SHARE,
) -> list[Culprit]:
    """The heaviest processes by ``weight``, as a share of ``total`` (or, unknown, of the
    listed processes' sum), so a culprit list says how much of the resource is theirs."""
    weighted = [(w, p) for p in processes if (w := weight(p)) is not None and w > 0]
    denominator = total if total is not None and total > 0 else sum(w for w, _ in weighted)
    if denominator <= 0:
        return []
    ranked = sorted(weighted, key=lambda item: (-item[0], item[1].pid))
    shares = ((w / denominator, p) for w, p in ranked)
    return [_process_culprit(p, share) for share, p in shares if share >= min_share][:limit]


def _cpu_culprits(signals: Signals) -> list[Culprit]:
    return _top(signals.processes, lambda p: p.cpu_cores, signals.cpu_busy_cores)


def _memory_culprits(signals: Signals) -> list[Culprit]:
    return _top(signals.processes, lambda p: float(p.rss_bytes), signals.memory_total_bytes)


def _io_culprits(signals: Signals) -> list[Culprit]:
    known = [d.io_bytes for d in signals.disks if d.io_bytes is not None]
    total = float(sum(known)) if known else None
    return _top(signals.processes, lambda p: p.io_bytes, total)


def _fd_culprits(signals: Signals) -> list[Culprit]:
    return _top(
        signals.processes,
        lambda p: None if p.fds is None else float(p.fds),
        signals.file_handles_allocated,
    )


def _belongs(process: ProcessSignals, ref: ContainerRef) -> bool:
    own = process.container
    if own is None or own.pod_uid != ref.pod_uid:
        return False
    return not ref.container_id or own.container_id == ref.container_id


def _workload_culprits(
    ref: ContainerRef,
    processes: Iterable[ProcessSignals],
    weight: Callable[[ProcessSignals], float | None],
) -> list[Culprit]:
    """The cgroup's own pod or container first, then its processes by ``weight``."""
    unique: dict[int, ProcessSignals] = {}
    for process in processes:
        if _belongs(process, ref):
            unique.setdefault(process.pid, process)
    members = list(unique.values())
    ranked = _top(members, weight, None, limit=_WIRE_MAX_CULPRITS - 1, min_share=0.0)
    listed = {c.pid for c in ranked}
    rest = [_process_culprit(p, 0.0) for p in members if p.pid not in listed]
    return [_culprit(ref, 1.0), *ranked, *rest][:_WIRE_MAX_CULPRITS]


def _throttling_culprits(signals: Signals, ref: ContainerRef) -> list[Culprit]:
    return _workload_culprits(ref, signals.processes, lambda p: p.cpu_cores)


def _oom_culprits(signals: Signals, ref: ContainerRef) -> list[Culprit]:
    """Killed processes are gone from the current sample: take them (with their last RSS)
    from the previous one, beside the survivors and any restarted container."""
    return _workload_culprits(
        ref, (*signals.exited_processes, *signals.processes), lambda p: float(p.rss_bytes)
    )


def _no_culprits() -> list[Culprit]:
    return []


# --- Rules: each reads one signal per subject -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """One signal of one subject in this sample, with what a finding about it would say."""

    resource: Resource
    kind: Kind
    subject: str
    value: float | None
    threshold: Threshold
    signal: str
    unit: str
    what: str
    lower_is_worse: bool = False
    event: bool = False  # opens at once, always critical (OOM kills)
    context: tuple[Evidence, ...] = ()
    culprits: Callable[[], list[Culprit]] = _no_culprits


@dataclass(frozen=True, slots=True)
class RuleContext:
    signals: Signals
    thresholds: BottleneckThresholds
    node: str  # "node/<name>"


# None: the rule had no data at all this sample, so its open findings are held, not cleared.
Observations: TypeAlias = list[Observation] | None


def _node_rule(
    ctx: RuleContext,
    value: float | None,
    resource: Resource,
    kind: Kind,
    threshold: Threshold,
    signal: str,
    unit: str,
    what: str,
    culprits: Callable[[Signals], list[Culprit]] | None = None,
    lower_is_worse: bool = False,
) -> Observations:
    if value is None:
        return None
    return [
        Observation(
            resource=resource,
            kind=kind,
            subject=ctx.node,
            value=value,
            threshold=threshold,
            signal=signal,
            unit=unit,
            what=what,
            lower_is_worse=lower_is_worse,
            culprits=partial(culprits, ctx.signals) if culprits else _no_culprits,
        )
    ]


def cpu_pressure(ctx: RuleContext) -> Observations:
    """PSI cpu some: tasks waited for a CPU (the system-level ``full`` line is always 0)."""
    return _node_rule(
        ctx,
        ctx.signals.cpu_psi_some_percent,
        "cpu",
        "saturation",
        ctx.thresholds.cpu_psi_some_percent,
        "node.psi.cpu.some.avg10",
        "%",
        "CPU pressure",
        _cpu_culprits,
    )


def cpu_runqueue(ctx: RuleContext) -> Observations:
    """Gregg's USE check: more runnable tasks than CPUs means work queues for a CPU."""
    return _node_rule(
        ctx,
        ctx.signals.runqueue_ratio,
        "cpu",
        "saturation",
        ctx.thresholds.cpu_runqueue_ratio,
        "node.cpu.runqueue_ratio",
        "tasks/cpu",
        "Run queue per CPU",
        _cpu_culprits,
    )


def cpu_utilization(ctx: RuleContext) -> Observations:
    return _node_rule(
        ctx,
        ctx.signals.cpu_utilization_percent,
        "cpu",
        "utilization",
        ctx.thresholds.cpu_utilization_percent,
        "node.cpu.utilization",
        "%",
        "CPU utilisation",
        _cpu_culprits,
    )


def memory_pressure(ctx: RuleContext) -> Observations:
    """PSI memory full: every non-idle task stalled on reclaim at once."""
    return _node_rule(
        ctx,
        ctx.signals.memory_psi_full_percent,
        "memory",
        "saturation",
        ctx.thresholds.memory_psi_full_percent,
        "node.psi.memory.full.avg10",
        "%",
        "Memory pressure",
        _memory_culprits,
    )


def memory_available(ctx: RuleContext) -> Observations:
    """MemAvailable, not MemFree: page cache the kernel can drop is not a shortage."""
    return _node_rule(
        ctx,
        ctx.signals.memory_available_percent,
        "memory",
        "utilization",
        ctx.thresholds.memory_available_percent,
        "node.memory.available",
        "%",
        "Available memory",
        _memory_culprits,
        lower_is_worse=True,
    )


def io_pressure(ctx: RuleContext) -> Observations:
    """PSI io full is node-wide; name the busiest disk as the subject when one is nearly
    saturated (the USE resource that queues), else the node."""
    value = ctx.signals.io_psi_full_percent
    if value is None:
        return None
    limits = ctx.thresholds
    busy = [d for d in ctx.signals.disks if d.utilization_percent is not None]
    busiest = max(busy, key=lambda d: (d.utilization_percent or 0.0, d.device), default=None)
    near = limits.disk_utilization_percent.warning * limits.clear_fraction
    context: tuple[Evidence, ...] = ()
    subject = ctx.node
    if busiest is not None and (busiest.utilization_percent or 0.0) >= near:
        subject = f"disk/{busiest.device}"
        context = (
            Evidence(
                signal=f"disk.{busiest.device}.utilization"[:128],
                value=float(busiest.utilization_percent or 0.0),
                threshold=limits.disk_utilization_percent.warning,
                unit="%",
            ),
        )
    return [
        Observation(
            resource="disk",
            kind="saturation",
            subject=subject,
            value=value,
            threshold=limits.io_psi_full_percent,
            signal="node.psi.io.full.avg10",
            unit="%",
            what="I/O pressure",
            context=context,
            culprits=partial(_io_culprits, ctx.signals),
        )
    ]


def disk_utilization(ctx: RuleContext) -> Observations:
    if not ctx.signals.disks:
        return None
    return [
        Observation(
            resource="disk",
            kind="utilization",
            subject=f"disk/{disk.device}",
            value=disk.utilization_percent,
            threshold=ctx.thresholds.disk_utilization_percent,
            signal="disk.utilization",
            unit="%",
            what="Disk busy time",
            culprits=partial(_io_culprits, ctx.signals),
        )
        for disk in ctx.signals.disks
    ]


def fd_usage(ctx: RuleContext) -> Observations:
    """file-nr against fs.file-max (LONG_MAX under systemd >= 240, so rarely near)."""
    return _node_rule(
        ctx,
        ctx.signals.file_handles_used_percent,
        "fds",
        "utilization",
        ctx.thresholds.fd_usage_percent,
        "node.file_handles.used",
        "%",
        "File handles in use",
        _fd_culprits,
    )


def process_fd_usage(ctx: RuleContext) -> Observations:
    """The soft RLIMIT_NOFILE is what makes accept() and open() fail with EMFILE."""
    if not ctx.signals.processes:
        return None
    return [
        Observation(
            resource="fds",
            kind="utilization",
            subject=f"process/{process.pid}",
            value=process.fd_usage_percent,
            threshold=ctx.thresholds.fd_usage_percent,
            signal="process.fds.used",
            unit="%",
            what=f"Open files of {process.command or process.pid}",
            culprits=partial(lambda p: [_process_culprit(p, 1.0)], process),
        )
        for process in ctx.signals.processes
    ]


def network_drops(ctx: RuleContext) -> Observations:
    if not ctx.signals.interfaces:
        return None
    return [
        Observation(
            resource="network",
            kind="errors",
            subject=f"interface/{interface.interface}",
            value=interface.drop_percent,
            threshold=ctx.thresholds.network_drop_percent,
            signal="net.drops",
            unit="%",
            what="Dropped packets",
        )
        for interface in ctx.signals.interfaces
    ]


def tcp_retransmits(ctx: RuleContext) -> Observations:
    return _node_rule(
        ctx,
        ctx.signals.tcp_retransmit_percent,
        "network",
        "errors",
        ctx.thresholds.tcp_retransmit_percent,
        "node.tcp.retransmits",
        "%",
        "TCP retransmissions",
    )


def _workload_cgroups(
    cgroups: Iterable[CgroupSignals], pods_reported: set[str]
) -> list[CgroupSignals]:
    """Container cgroups, plus pod cgroups whose pod is not already reported by a container:
    cgroup counters are hierarchical, so the pod slice repeats what its containers show."""
    return [
        c for c in cgroups if c.container.container_id or c.container.pod_uid not in pods_reported
    ]


def cpu_throttling(ctx: RuleContext) -> Observations:
    """CFS quota throttling: a container starved by its own limit while the node may idle."""
    cgroups = ctx.signals.cgroups
    if not cgroups:
        return None
    with_containers = {c.container.pod_uid for c in cgroups if c.container.container_id}
    return [
        Observation(
            resource="cpu",
            kind="saturation",
            subject=workload_subject(cgroup.container),
            value=cgroup.throttled_percent,
            threshold=ctx.thresholds.cpu_throttled_percent,
            signal="cgroup.cpu.throttled_periods",
            unit="%",
            what="CFS throttling",
            culprits=partial(_throttling_culprits, ctx.signals, cgroup.container),
        )
        for cgroup in _workload_cgroups(cgroups, with_containers)
    ]


def oom_kill(ctx: RuleContext) -> Observations:
    """Any OOM kill since the previous sample. Kind "saturation" as in Gregg's USE checklist
    (the OOM killer is memory saturation) and the seed scenarios; the kernel did not fail."""
    cgroups = ctx.signals.cgroups
    if not cgroups:
        return None
    killed = {c.container.pod_uid for c in cgroups if c.container.container_id and c.oom_kills}
    return [
        Observation(
            resource="memory",
            kind="saturation",
            subject=workload_subject(cgroup.container),
            value=None if cgroup.oom_kills is None else float(cgroup.oom_kills),
            threshold=_ANY_INCREASE,
            signal="cgroup.memory.events.oom_kill",
            unit="kills",
            what="OOM kills",
            event=True,
            culprits=partial(_oom_culprits, ctx.signals, cgroup.container),
        )
        for cgroup in _workload_cgroups(cgroups, killed)
    ]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    check: Callable[[RuleContext], Observations]


RULES: Final[tuple[Rule, ...]] = (
    Rule("cpu_pressure", cpu_pressure),
    Rule("cpu_runqueue", cpu_runqueue),
    Rule("cpu_utilization", cpu_utilization),
    Rule("cpu_throttling", cpu_throttling),
    Rule("memory_pressure", memory_pressure),
    Rule("memory_available", memory_available),
    Rule("oom_kill", oom_kill),
    Rule("io_pressure", io_pressure),
    Rule("disk_utilization", disk_utilization),
    Rule("fd_usage", fd_usage),
    Rule("process_fd_usage", process_fd_usage),
    Rule("network_drops", network_drops),
    Rule("tcp_retransmits", tcp_retransmits),
)


# --- Hysteresis ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Track:
    """One (rule, subject) that is open, or breaching but not yet for ``trigger_samples``."""

    since: float  # first breaching sample of this run
    breaches: int = 1
    cleans: int = 0  # consecutive samples below the clear level while open
    is_open: bool = False
    finding: BottleneckFinding | None = None  # last emitted; re-sent while data is missing


@dataclass(frozen=True, slots=True)
class DetectorState:
    """Only open and pending keys, so its size follows current trouble, not history."""

    tracks: Mapping[Key, Track] = field(default_factory=dict)


def classify(
    value: float, threshold: Threshold, clear_fraction: float, lower_is_worse: bool = False
) -> Level:
    """Where a value sits: breaching (critical/warning), in the hold band between the clear
    level and the warning threshold ("hover"), or clean."""
    if lower_is_worse:
        if value <= threshold.critical:
            return "critical"
        if value <= threshold.warning:
            return "warning"
        return "hover" if value <= threshold.warning / clear_fraction else "clear"
    if value >= threshold.critical:
        return "critical"
    if value >= threshold.warning:
        return "warning"
    return "hover" if value >= threshold.warning * clear_fraction else "clear"


def _advance(
    track: Track | None,
    level: Level,
    event: bool,
    timestamp: float,
    thresholds: BottleneckThresholds,
) -> Track | None:
    """Trigger after N consecutive breaches, clear after N consecutive clean samples; a
    sample without data neither breaches nor clears."""
    breach = level in _BREACH
    if track is None:
        if not breach:
            return None
        return Track(since=timestamp, is_open=event or thresholds.trigger_samples <= 1)
    if level == "no_data":
        return track
    if not track.is_open:
        if not breach:
            return None
        breaches = track.breaches + 1
        return replace(
            track, breaches=breaches, is_open=event or breaches >= thresholds.trigger_samples
        )
    if breach or level == "hover":
        return replace(track, cleans=0)
    cleans = track.cleans + 1
    return None if cleans >= thresholds.clear_samples else replace(track, cleans=cleans)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _finding(
    rule: str, obs: Observation, value: float, level: Level, since: float
) -> BottleneckFinding:
    severity: Severity = "critical" if obs.event or level == "critical" else "warning"
    crossed = obs.threshold.critical if severity == "critical" else obs.threshold.warning
    side = "<=" if obs.lower_is_worse else ">="
    if obs.event:
        message = f"{obs.what} in {obs.subject}: {_fmt(value)} since the previous sample"
    else:
        message = (
            f"{obs.what} on {obs.subject}: {_fmt(value)} {obs.unit} "
            f"(warning {side} {_fmt(obs.threshold.warning)}, "
            f"critical {side} {_fmt(obs.threshold.critical)})"
        )
    return BottleneckFinding(
        resource=obs.resource,
        kind=obs.kind,
        severity=severity,
        rule=rule,
        subject=obs.subject[:300],
        since=max(0.0, since),
        evidence=[
            Evidence(signal=obs.signal, value=float(value), threshold=crossed, unit=obs.unit),
            *obs.context,
        ][:16],
        culprits=obs.culprits()[:_WIRE_MAX_CULPRITS],
        message=message[:1024],
    )


def _level(obs: Observation | None, rule_silent: bool, clear_fraction: float) -> Level:
    if obs is None:  # the subject is gone (process exited, disk removed): that is clean
        return "no_data" if rule_silent else "clear"
    if obs.value is None:
        return "no_data"
    return classify(obs.value, obs.threshold, clear_fraction, obs.lower_is_worse)


def _bounded(tracks: dict[Key, Track]) -> dict[Key, Track]:
    if len(tracks) <= MAX_TRACKS:
        return tracks
    keep = sorted(tracks.items(), key=lambda item: (not item[1].is_open, item[1].since, item[0]))
    return dict(keep[:MAX_TRACKS])


def _observe(ctx: RuleContext) -> tuple[dict[Key, Observation], set[str]]:
    observed: dict[Key, Observation] = {}
    silent: set[str] = set()
    for rule in RULES:
        result = rule.check(ctx)
        if result is None:
            silent.add(rule.id)
            continue
        for obs in result:
            observed.setdefault((rule.id, obs.subject), obs)
    return observed, silent


def finding_key(finding: BottleneckFinding) -> Key:
    return finding.rule, finding.subject


def _order(finding: BottleneckFinding) -> tuple[bool, str, str]:
    return finding.severity != "critical", finding.rule, finding.subject


def detect(
    previous: Sample | None,
    current: Sample,
    thresholds: BottleneckThresholds,
    state: DetectorState,
    node_name: str,
) -> tuple[list[BottleneckFinding], DetectorState]:
    """Findings open in ``current`` (critical first, then rule, subject; at most
    ``MAX_FINDINGS``) and the state to pass with the next sample."""
    ctx = RuleContext(derive(previous, current), thresholds, node_subject(node_name))
    observed, silent = _observe(ctx)
    tracks: dict[Key, Track] = {}
    findings: list[BottleneckFinding] = []
    for key in sorted(observed.keys() | state.tracks.keys()):
        obs = observed.get(key)
        level = _level(obs, key[0] in silent, thresholds.clear_fraction)
        event = obs.event if obs is not None else False
        track = _advance(state.tracks.get(key), level, event, current.timestamp, thresholds)
        if track is None:
            continue
        if track.is_open:
            if obs is not None and obs.value is not None:
                finding = _finding(key[0], obs, obs.value, level, track.since)
                track = replace(track, finding=finding)
            if track.finding is not None:
                findings.append(track.finding)
        tracks[key] = track
    findings.sort(key=_order)
    return findings[:MAX_FINDINGS], DetectorState(tracks=_bounded(tracks))
