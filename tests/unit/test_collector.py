"""The collector on fixture trees (exact values), with a fake clock for CPU rates, and once on
the live host for sanity."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from agent.observe import procfs
from agent.observe.collector import Collector, PodInfo
from agent.observe.model import (
    ContainerRef,
    CpuTimes,
    FileHandles,
    Memory,
    ProcessSample,
    Sample,
    TcpCounters,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "observe"
TICKS = 100
PAGE = 4096

UID_A = "8a3b2c1d-4e5f-4a6b-9c7d-0e1f2a3b4c5d"  # burstable, containerd, throttled
UID_B = "c0ffee00-1111-4222-8333-444455556666"  # guaranteed, containerd, OOM-killed
UID_C = "5e7a9d10-2b3c-4d5e-8f60-718293a4b5c6"  # besteffort, CRI-O
ID_A = "52c6070f3f7035310a27bda65a416b771881023d317c41dfb9ebf79f446b7b5f"
ID_B = "01b25cf55f0da34883df1b7379015a085c23aafa9a50f908ad46ad819ce566ad"
ID_C = "2774b8ce4c802d7917867006c1de93fda2b9ab82c65ad20df796fc07eddb388d"
PATH_A = (
    "/kubepods.slice/kubepods-burstable.slice/"
    f"kubepods-burstable-pod{UID_A.replace('-', '_')}.slice/cri-containerd-{ID_A}.scope"
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def collector(
    root: Path,
    clock: FakeClock | None = None,
    top_k: int = 100,
    pods: Mapping[str, PodInfo] | None = None,
) -> Collector:
    return Collector(
        root / "proc",
        root / "sys" / "fs" / "cgroup",
        clock or FakeClock(),
        top_k=top_k,
        pod_directory=(lambda: pods) if pods is not None else None,
        clock_ticks=TICKS,
        page_size=PAGE,
    )


@pytest.fixture
def node_a(tmp_path: Path) -> Path:
    """A writable copy of node-a, for tests that change it between passes."""
    return Path(shutil.copytree(FIXTURES / "node-a", tmp_path / "node-a"))


def rewrite_stat(
    root: Path, pid: int, *, add_utime: int = 0, start_ticks: int | None = None
) -> None:
    path = root / "proc" / str(pid) / "stat"
    text = path.read_text()
    head, rest = text[: text.rindex(")") + 2], text[text.rindex(")") + 2 :].split()
    rest[11] = str(int(rest[11]) + add_utime)  # field 14: utime
    if start_ticks is not None:
        rest[19] = str(start_ticks)  # field 22: starttime
    path.write_text(head + " ".join(rest) + "\n")


def by_pid(sample: Sample) -> dict[int, ProcessSample]:
    return {p.pid: p for p in sample.processes}


# --- node -------------------------------------------------------------------------------------


def test_node_a_node_sample() -> None:
    node = collector(FIXTURES / "node-a").sample().node
    assert node.cpu_count == 4
    assert node.cpu == CpuTimes(1234.56, 7.89, 456.78, 9876.54, 32.10, 0.0, 12.34, 0.56)
    assert (node.load1, node.load5, node.load15) == (1.52, 1.23, 0.97)
    assert (node.procs_running, node.procs_blocked) == (3, 1)
    assert node.memory == Memory(16777216000, 8388608000, 2147479552, 1073741824)
    assert {r: p.some_avg10 for r, p in node.pressure.items()} == {
        "cpu": 4.51,
        "memory": 0.5,
        "io": 12.3,
    }
    assert [d.device for d in node.disks] == ["sda", "nvme0n1", "dm-0"]
    assert [n.interface for n in node.nets] == ["eth0", "cni0"]
    assert node.tcp == TcpCounters(out_segs=8765432, retrans_segs=4321)
    assert node.file_handles == FileHandles(9376, 9223372036854775807)


def test_sample_is_stamped_with_the_clock() -> None:
    assert collector(FIXTURES / "node-a", FakeClock(1234.5)).sample().timestamp == 1234.5


# --- processes --------------------------------------------------------------------------------


def test_first_pass_reads_every_file_of_a_container_process() -> None:
    sample = collector(FIXTURES / "node-a").sample()
    assert by_pid(sample)[4242] == ProcessSample(
        pid=4242,
        comm="java",
        cpu_seconds=4000.0,
        cpu_cores=None,
        rss_bytes=2 * 1024**3,
        threads=87,
        voluntary_ctxt_switches=120000,
        nonvoluntary_ctxt_switches=98000,
        read_bytes=209715200,
        write_bytes=1048576,
        fds=6,
        fd_limit=65536,
        cgroup=PATH_A,
        container=ContainerRef(UID_A, ID_A, "containerd", "burstable"),
    )


@pytest.mark.parametrize(
    ("pid", "comm", "rss_bytes", "read_bytes", "fds", "container"),
    [
        pytest.param(1, "systemd", 12 * 1024**2, 104857600, 3, None, id="host-service"),
        pytest.param(812, "kubelet", 100 * 1024**2, None, 5, None, id="garbled-io-is-none"),
        pytest.param(
            5150,
            "postgres",
            512 * 1024**2,
            4096000,
            4,
            ContainerRef(UID_B, ID_B, "containerd", "guaranteed"),
            id="guaranteed-pod",
        ),
        pytest.param(
            6060,
            "conmon",
            1024**2,
            0,
            3,
            ContainerRef(UID_C, "", "cri-o", "besteffort"),
            id="crio-conmon-maps-to-pod-only",
        ),
        pytest.param(
            6061,
            "nginx",
            10 * 1024**2,
            0,
            8,
            ContainerRef(UID_C, ID_C, "cri-o", "besteffort"),
            id="crio-container",
        ),
        pytest.param(7007, "x) R 9 (y z", 2 * 1024**2, 0, 3, None, id="comm-with-parens"),
    ],
)
def test_first_pass_processes(
    pid: int,
    comm: str,
    rss_bytes: int,
    read_bytes: int | None,
    fds: int,
    container: ContainerRef | None,
) -> None:
    process = by_pid(collector(FIXTURES / "node-a").sample())[pid]
    assert (process.comm, process.rss_bytes, process.read_bytes, process.fds) == (
        comm,
        rss_bytes,
        read_bytes,
        fds,
    )
    assert process.container == container
    assert process.cpu_cores is None


def test_first_pass_selects_by_rss_only_and_counts_the_garbled_io() -> None:
    """No rates yet; the idle kernel thread (no RSS) is not a candidate."""
    sample = collector(FIXTURES / "node-a").sample()
    assert [p.pid for p in sample.processes] == [1, 812, 4242, 5150, 6060, 6061, 7007]
    assert sample.errors == {"process_io": 1}


def test_cpu_rates_from_the_previous_pass_and_the_clock(node_a: Path) -> None:
    clock = FakeClock(1000.0)
    c = collector(node_a, clock)
    c.sample()
    rewrite_stat(node_a, 6061, add_utime=250)  # 2.5 s of CPU in 5 s
    rewrite_stat(node_a, 31, add_utime=500)  # a busy kernel thread: 1 core
    rewrite_stat(node_a, 4242, add_utime=50)
    clock.now = 1005.0
    processes = by_pid(c.sample())
    assert {pid: p.cpu_cores for pid, p in processes.items()} == {
        1: 0.0,
        31: pytest.approx(1.0),
        812: 0.0,
        4242: pytest.approx(0.1),
        5150: 0.0,
        6060: 0.0,
        6061: pytest.approx(0.5),
        7007: 0.0,
    }
    assert processes[6061].cpu_seconds == pytest.approx(32.5)


def test_no_rate_when_the_clock_did_not_advance(node_a: Path) -> None:
    c = collector(node_a, FakeClock(1000.0))
    c.sample()
    rewrite_stat(node_a, 6061, add_utime=250)
    assert by_pid(c.sample())[6061].cpu_cores is None


def test_reused_pid_is_a_new_process_without_a_rate(node_a: Path) -> None:
    clock = FakeClock()
    c = collector(node_a, clock)
    c.sample()
    rewrite_stat(node_a, 6061, add_utime=250, start_ticks=99999)
    clock.now += 5
    assert by_pid(c.sample())[6061].cpu_cores is None


@pytest.mark.parametrize(
    ("top_k", "first", "second"),
    [
        pytest.param(1, [4242], [31, 4242], id="k1-top-rss-plus-top-cpu"),
        pytest.param(2, [4242, 5150], [31, 4242, 5150, 6061], id="k2-union-of-both-rankings"),
        pytest.param(0, [], [], id="k0-nothing"),
    ],
)
def test_top_k_by_cpu_rate_union_top_k_by_rss(
    node_a: Path, top_k: int, first: list[int], second: list[int]
) -> None:
    clock = FakeClock()
    c = collector(node_a, clock, top_k=top_k)
    assert [p.pid for p in c.sample().processes] == first
    rewrite_stat(node_a, 6061, add_utime=250)
    rewrite_stat(node_a, 31, add_utime=500)
    rewrite_stat(node_a, 4242, add_utime=50)  # third by CPU: not in the top 2
    clock.now += 5
    assert [p.pid for p in c.sample().processes] == second


def test_previous_state_drops_gone_pids_and_starts_new_ones_without_rate(node_a: Path) -> None:
    clock = FakeClock()
    c = collector(node_a, clock)
    c.sample()
    assert c.tracked_pids == {1, 31, 812, 4242, 5150, 6060, 6061, 7007}
    shutil.rmtree(node_a / "proc" / "7007")
    shutil.copytree(node_a / "proc" / "6061", node_a / "proc" / "9999")
    stat = node_a / "proc" / "9999" / "stat"
    stat.write_text(stat.read_text().replace("6061 (nginx)", "9999 (nginx)", 1))
    clock.now += 5
    processes = by_pid(c.sample())
    assert c.tracked_pids == {1, 31, 812, 4242, 5150, 6060, 6061, 9999}
    assert 7007 not in processes
    assert processes[9999].cpu_cores is None
    assert processes[6061].cpu_cores == 0.0


# --- robustness -------------------------------------------------------------------------------


def test_partial_tree_gives_a_partial_sample_and_counts_each_bad_file() -> None:
    sample = collector(FIXTURES / "partial").sample()
    node = sample.node
    assert node.cpu == CpuTimes(1.0, 0.0, 1.0, 8.0, 0.0, 0.0, 0.0, 0.0)
    assert (node.memory, node.tcp, node.file_handles) == (None, None, None)
    assert sorted(node.pressure) == ["cpu", "memory"]  # io missing: absent, not an error
    assert node.pressure["cpu"].full_avg10 is None
    # 200: garbled stat (counted); 300: exited after its stat was read (silent)
    assert [p.pid for p in sample.processes] == [100, 400]
    assert by_pid(sample)[400].fd_limit is None
    assert by_pid(sample)[100].container == ContainerRef(
        "0a1b2c3d-4e5f-4061-8273-94a5b6c7d8e9",
        "3089770a847912f2417852b6d0bb7a78eff18401b31a81a3f88d2a670ad3453c",
        "containerd",
        "guaranteed",
    )
    assert [s.memory_max_bytes for s in sample.cgroups] == [None, None]
    assert sample.errors == {
        "meminfo": 1,
        "snmp": 1,
        "file_nr": 1,
        "process_stat": 1,
        "process_limits": 1,
        "cgroup": 1,
    }


def test_unreadable_node_file_does_not_raise(node_a: Path) -> None:
    (node_a / "proc" / "stat").unlink()
    (node_a / "proc" / "stat").mkdir()  # reading it fails with IsADirectoryError
    sample = collector(node_a).sample()
    assert (sample.node.cpu, sample.node.procs_running) == (None, None)
    assert sample.node.cpu_count == (os.cpu_count() or 1)
    assert sample.errors == {"stat": 1, "process_io": 1}


def test_node_without_psi_and_hybrid_cgroupfs_docker() -> None:
    sample = collector(FIXTURES / "node-b").sample()
    assert sample.node.pressure == {}
    assert sample.errors == {}
    assert by_pid(sample)[3300].container == ContainerRef(
        "3d6f0a2e-9b1c-4f7e-a5d8-2c4b6e8f0a1c",
        "f1eea04075846c58e8e504256e23e469fba45b4d8e85b31bc869bafb3ac8b0bd",
        "",  # cgroupfs containerd/Docker: bare ID, runtime not in the path
        "burstable",
    )
    assert [s.container.qos for s in sample.cgroups] == [
        "burstable",
        "burstable",
        "guaranteed",
        "guaranteed",
    ]


def test_permission_denied_on_io_and_fds_is_normal_not_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def denied(proc_root: Path, pid: int) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(procfs, "read_pid_io", denied)
    monkeypatch.setattr(procfs, "count_fds", denied)
    sample = collector(FIXTURES / "node-a").sample()
    assert all(p.read_bytes is None and p.fds is None for p in sample.processes)
    assert sample.errors == {}


def test_failing_pod_directory_is_counted_and_refs_stay_bare() -> None:
    def broken() -> Mapping[str, PodInfo]:
        raise RuntimeError("kubelet unreachable")

    c = Collector(
        FIXTURES / "node-a" / "proc",
        FIXTURES / "node-a" / "sys" / "fs" / "cgroup",
        FakeClock(),
        pod_directory=broken,
        clock_ticks=TICKS,
    )
    sample = c.sample()
    assert sample.errors == {"process_io": 1, "pod_directory": 1}
    assert by_pid(sample)[4242].container == ContainerRef(UID_A, ID_A, "containerd", "burstable")


# --- pod directory ----------------------------------------------------------------------------


def test_pod_directory_names_processes_and_cgroups() -> None:
    pods = {
        UID_A: PodInfo("shop", "checkout-7d9f8-x2x4q", {ID_A: "app"}),
        UID_B: PodInfo("db", "postgres-0"),
    }
    sample = collector(FIXTURES / "node-a", pods=pods).sample()
    named = {
        pid: (p.container.namespace, p.container.pod, p.container.container)
        for pid, p in by_pid(sample).items()
        if p.container
    }
    assert named == {
        4242: ("shop", "checkout-7d9f8-x2x4q", "app"),
        5150: ("db", "postgres-0", ""),  # container not (yet) in the pod's status
        6060: ("", "", ""),  # pod C not in the directory
        6061: ("", "", ""),
    }
    cgroups = [
        (s.container.pod, s.container.container)
        for s in sample.cgroups
        if s.container.pod_uid == UID_A
    ]
    assert cgroups == [("checkout-7d9f8-x2x4q", ""), ("checkout-7d9f8-x2x4q", "app")]


# --- live host --------------------------------------------------------------------------------


def test_live_host_sanity() -> None:
    c = Collector(Path("/proc"), Path("/sys/fs/cgroup"), time.time, top_k=100_000)
    c.sample()
    sample = c.sample()
    assert sample.node.cpu_count >= 1
    assert sample.node.memory is not None
    assert sample.node.memory.total_bytes > 0
    me = by_pid(sample)[os.getpid()]
    assert me.rss_bytes > 0
    assert me.cpu_seconds > 0
    assert me.cpu_cores is not None
    assert me.voluntary_ctxt_switches + me.nonvoluntary_ctxt_switches > 0
