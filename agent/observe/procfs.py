"""Parsers for the procfs files the collector reads, plus thin readers over an injected root.

Parsers take the file's text and return values (no I/O), so they are tested on fixture text
and the same code runs against ``/proc`` or a ``/host/proc`` mount. They raise ``ValueError``
(or ``LookupError``) on text they cannot make sense of; readers add only ``OSError``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from agent.observe.model import (
    CpuTimes,
    DiskCounters,
    FileHandles,
    Memory,
    NetCounters,
    Pressure,
    TcpCounters,
)

SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's block size

# Partitions are named after their disk: sda1, vdb2, xvda1, nvme0n1p1, mmcblk0p2, md0p1, nbd0p1.
_PARTITION = re.compile(r"^(?:(?:[shv]d|xvd)[a-z]+\d+|(?:nvme\d+n\d+|mmcblk\d+|[a-z]+\d+)p\d+)$")
_VIRTUAL_DISK_PREFIXES = ("loop", "ram", "zram")


@dataclass(frozen=True, slots=True)
class StatSummary:
    """The parts of ``/proc/stat`` the collector uses."""

    cpu: CpuTimes
    cpu_count: int  # cpuN lines: online CPUs of the node, not the agent's cpuset
    procs_running: int | None
    procs_blocked: int | None


@dataclass(frozen=True, slots=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float


@dataclass(frozen=True, slots=True)
class PidStat:
    """``/proc/PID/stat``: what the cheap all-pids scan needs."""

    pid: int
    comm: str
    state: str
    cpu_seconds: float  # utime + stime
    num_threads: int
    start_ticks: int  # starttime: tells a reused pid from the process seen last pass
    rss_pages: int


@dataclass(frozen=True, slots=True)
class PidStatus:
    """``/proc/PID/status``; kernel threads have no ``VmRSS``."""

    rss_bytes: int | None
    threads: int | None
    voluntary_ctxt_switches: int
    nonvoluntary_ctxt_switches: int


@dataclass(frozen=True, slots=True)
class PidIo:
    read_bytes: int
    write_bytes: int


# ---------------------------------------------------------------------------------------------
# Node files


def parse_stat(text: str, clock_ticks: int) -> StatSummary:
    """``/proc/stat``: the aggregate ``cpu`` line in seconds (it counts USER_HZ ticks)."""
    cpu: CpuTimes | None = None
    cpu_count = 0
    running: int | None = None
    blocked: int | None = None
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key == "cpu":
            ticks = [int(v) for v in rest.split()]
            if len(ticks) < 4:
                raise ValueError(f"short cpu line: {line!r}")
            ticks += [0] * (8 - len(ticks))
            # guest/guest_nice (fields 9, 10) are already included in user/nice.
            cpu = CpuTimes(*(t / clock_ticks for t in ticks[:8]))
        elif key.startswith("cpu"):
            cpu_count += 1
        elif key == "procs_running":
            running = int(rest)
        elif key == "procs_blocked":
            blocked = int(rest)
    if cpu is None:
        raise ValueError("no cpu line in /proc/stat")
    return StatSummary(cpu, max(cpu_count, 1), running, blocked)


def parse_loadavg(text: str) -> LoadAvg:
    fields = text.split()
    return LoadAvg(float(fields[0]), float(fields[1]), float(fields[2]))


def parse_meminfo(text: str) -> Memory:
    """The four lines the USE checks need, kB converted to bytes."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree"):
            values[key] = int(rest.split()[0]) * 1024
    try:
        return Memory(
            total_bytes=values["MemTotal"],
            available_bytes=values["MemAvailable"],
            swap_total_bytes=values["SwapTotal"],
            swap_free_bytes=values["SwapFree"],
        )
    except KeyError as exc:
        raise ValueError(f"meminfo lacks {exc}") from None


def _psi_line(line: str) -> tuple[float, float, float, int]:
    _kind, avg10, avg60, avg300, total = line.split()
    if not (
        avg10.startswith("avg10=")
        and avg60.startswith("avg60=")
        and avg300.startswith("avg300=")
        and total.startswith("total=")
    ):
        raise ValueError(f"not a PSI line: {line!r}")
    return float(avg10[6:]), float(avg60[6:]), float(avg300[7:]), int(total[6:])


def parse_pressure(text: str) -> Pressure:
    """A PSI file (node or cgroup): ``some`` is required, ``full`` is absent for node CPU on
    kernels before 5.13. Fixed-position parsing: a pass reads one per resource per cgroup."""
    some: tuple[float, float, float, int] | None = None
    full: tuple[float, float, float, int] | None = None
    for line in text.splitlines():
        if line.startswith("some "):
            some = _psi_line(line)
        elif line.startswith("full "):
            full = _psi_line(line)
    if some is None:
        raise ValueError("no 'some' line")
    if full is None:
        return Pressure(*some)
    return Pressure(*some, *full)


def is_whole_disk(name: str) -> bool:
    """Partitions double-count their disk's I/O; loop and RAM disks are not real devices.
    Device-mapper volumes (``dm-*``) are kept: LVM and dm-crypt I/O shows there."""
    return not (name.startswith(_VIRTUAL_DISK_PREFIXES) or _PARTITION.match(name))


def parse_diskstats(text: str) -> tuple[DiskCounters, ...]:
    disks = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        name = fields[2]
        if not is_whole_disk(name):
            continue
        # Columns (1-based): 4 reads, 6 sectors read, 7 ms reading, 8 writes, 10 sectors
        # written, 11 ms writing, 13 ms with I/O in flight, 14 weighted ms.
        v = [int(f) for f in fields[3:14]]
        disks.append(
            DiskCounters(
                device=name,
                reads_completed=v[0],
                writes_completed=v[4],
                read_bytes=v[2] * SECTOR_BYTES,
                written_bytes=v[6] * SECTOR_BYTES,
                read_time_ms=v[3],
                write_time_ms=v[7],
                io_time_ms=v[9],
                weighted_io_time_ms=v[10],
            )
        )
    return tuple(disks)


def parse_net_dev(text: str) -> tuple[NetCounters, ...]:
    """``/proc/net/dev`` of the agent's network namespace (the node's, with hostNetwork)."""
    nets = []
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or "|" in name or name == "lo":
            continue
        v = [int(f) for f in rest.split()]
        nets.append(
            NetCounters(
                interface=name,
                rx_bytes=v[0],
                rx_packets=v[1],
                rx_errors=v[2],
                rx_drops=v[3],
                tx_bytes=v[8],
                tx_packets=v[9],
                tx_errors=v[10],
                tx_drops=v[11],
            )
        )
    return tuple(nets)


def parse_snmp_tcp(text: str) -> TcpCounters:
    """``/proc/net/snmp`` has a header line and a value line per protocol; columns are taken
    by name because kernels append new ones."""
    rows = [line.split() for line in text.splitlines() if line.startswith("Tcp:")]
    if len(rows) < 2:
        raise ValueError("no Tcp header and value lines")
    values = dict(zip(rows[0][1:], rows[1][1:], strict=True))
    return TcpCounters(out_segs=int(values["OutSegs"]), retrans_segs=int(values["RetransSegs"]))


def parse_file_nr(text: str) -> FileHandles:
    allocated, _unused, maximum = text.split()
    return FileHandles(allocated=int(allocated), maximum=int(maximum))


# ---------------------------------------------------------------------------------------------
# Per-process files


def parse_pid_stat(text: str, clock_ticks: int) -> PidStat:
    """``comm`` may hold spaces and parentheses, so the fields start after the LAST ')'."""
    open_paren = text.index("(")
    close_paren = text.rindex(")")
    rest = text[close_paren + 2 :].split()
    # rest[0] is field 3 (state): utime 14, stime 15, num_threads 20, starttime 22, rss 24.
    return PidStat(
        pid=int(text[:open_paren]),
        comm=text[open_paren + 1 : close_paren],
        state=rest[0],
        cpu_seconds=(int(rest[11]) + int(rest[12])) / clock_ticks,
        num_threads=int(rest[17]),
        start_ticks=int(rest[19]),
        rss_pages=int(rest[21]),
    )


def parse_pid_status(text: str) -> PidStatus:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "Threads", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
            values[key] = rest
    rss = values.get("VmRSS")
    threads = values.get("Threads")
    try:
        return PidStatus(
            rss_bytes=int(rss.split()[0]) * 1024 if rss is not None else None,
            threads=int(threads) if threads is not None else None,
            voluntary_ctxt_switches=int(values["voluntary_ctxt_switches"]),
            nonvoluntary_ctxt_switches=int(values["nonvoluntary_ctxt_switches"]),
        )
    except KeyError as exc:
        raise ValueError(f"status lacks {exc}") from None


def parse_pid_io(text: str) -> PidIo:
    """Storage-layer bytes (``read_bytes``), not ``rchar``, which counts page-cache hits too."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("read_bytes", "write_bytes"):
            values[key] = int(rest)
    try:
        return PidIo(read_bytes=values["read_bytes"], write_bytes=values["write_bytes"])
    except KeyError as exc:
        raise ValueError(f"io lacks {exc}") from None


def parse_limits_nofile(text: str) -> int | None:
    """Soft ``Max open files``: the one the process hits first. ``unlimited`` gives None."""
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files") :].split()[0]
            return None if soft == "unlimited" else int(soft)
    raise ValueError("no 'Max open files' line")


def parse_pid_cgroup(text: str) -> str:
    """The process's cgroup path, preferring the unified (v2) ``0::`` line.

    On a v1/hybrid host the unified line is often just ``/`` while the kubelet's hierarchy
    lives in the v1 controllers, so: the first of v2, ``cpu``, ``memory``, ``name=systemd`` that
    is under kubepods; else a non-root v2 path; else the first non-root of those v1 lines.
    """
    unified: str | None = None
    legacy: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            unified = path
            continue
        for controller in controllers.split(","):
            if controller in ("cpu", "memory", "name=systemd"):
                legacy.setdefault(controller, path)
    candidates = [unified] if unified is not None else []
    candidates += [legacy[c] for c in ("cpu", "memory", "name=systemd") if c in legacy]
    if not candidates:
        raise ValueError("no cgroup line")
    for path in candidates:
        if "kubepods" in path:
            return path
    if unified is not None and unified != "/":
        return unified
    return next((p for p in candidates if p != "/"), candidates[0])


# ---------------------------------------------------------------------------------------------
# Readers


def read_text(path: str | Path) -> str:
    """Raw ``os.read`` until EOF: procfs renders the file on read, and skipping the file
    object saves about a fifth of each small read in the all-pids scan. Undecodable bytes
    (a comm can hold any) are replaced, not fatal."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def read_stat(proc_root: Path, clock_ticks: int) -> StatSummary:
    return parse_stat(read_text(proc_root / "stat"), clock_ticks)


def read_loadavg(proc_root: Path) -> LoadAvg:
    return parse_loadavg(read_text(proc_root / "loadavg"))


def read_meminfo(proc_root: Path) -> Memory:
    return parse_meminfo(read_text(proc_root / "meminfo"))


def read_pressure(proc_root: Path, resource: str) -> Pressure:
    return parse_pressure(read_text(proc_root / "pressure" / resource))


def read_diskstats(proc_root: Path) -> tuple[DiskCounters, ...]:
    return parse_diskstats(read_text(proc_root / "diskstats"))


def read_net_dev(proc_root: Path) -> tuple[NetCounters, ...]:
    return parse_net_dev(read_text(proc_root / "net" / "dev"))


def read_snmp_tcp(proc_root: Path) -> TcpCounters:
    return parse_snmp_tcp(read_text(proc_root / "net" / "snmp"))


def read_file_nr(proc_root: Path) -> FileHandles:
    return parse_file_nr(read_text(proc_root / "sys" / "fs" / "file-nr"))


def read_pid_stat(proc_root: Path, pid: int, clock_ticks: int) -> PidStat:
    return parse_pid_stat(read_text(f"{proc_root}/{pid}/stat"), clock_ticks)


def read_pid_status(proc_root: Path, pid: int) -> PidStatus:
    return parse_pid_status(read_text(f"{proc_root}/{pid}/status"))


def read_pid_io(proc_root: Path, pid: int) -> PidIo:
    return parse_pid_io(read_text(f"{proc_root}/{pid}/io"))


def read_pid_limits_nofile(proc_root: Path, pid: int) -> int | None:
    return parse_limits_nofile(read_text(f"{proc_root}/{pid}/limits"))


def read_pid_cgroup(proc_root: Path, pid: int) -> str:
    return parse_pid_cgroup(read_text(f"{proc_root}/{pid}/cgroup"))


def count_fds(proc_root: Path, pid: int) -> int:
    """Open descriptors: one directory listing, no readlink of each entry. Entries are fd
    numbers; a dot-name can only be a placeholder in a fixture tree (git keeps no empty dirs)."""
    return sum(not name.startswith(".") for name in os.listdir(f"{proc_root}/{pid}/fd"))


def list_pids(proc_root: Path) -> list[int]:
    return [int(name) for name in os.listdir(proc_root) if name.isdigit()]
