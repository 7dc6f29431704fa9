"""procfs parsers on the checked-in fixture trees (tests/fixtures/observe) and inline text."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.observe import procfs
from agent.observe.model import (
    CpuTimes,
    DiskCounters,
    FileHandles,
    Memory,
    NetCounters,
    Pressure,
    TcpCounters,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "observe"
NODE_A = FIXTURES / "node-a" / "proc"
NODE_B = FIXTURES / "node-b" / "proc"
TICKS = 100


def fixture_text(root: Path, name: str) -> str:
    return (root / name).read_text()


# --- node files -------------------------------------------------------------------------------


def test_stat_cpu_line_is_converted_from_user_hz_ticks_to_seconds() -> None:
    stat = procfs.parse_stat(fixture_text(NODE_A, "stat"), TICKS)
    assert stat == procfs.StatSummary(
        cpu=CpuTimes(
            user=1234.56,
            nice=7.89,
            system=456.78,
            idle=9876.54,
            iowait=32.10,
            irq=0.0,
            softirq=12.34,
            steal=0.56,
        ),
        cpu_count=4,
        procs_running=3,
        procs_blocked=1,
    )


@pytest.mark.parametrize(
    ("text", "expected_cpu", "expected_count"),
    [
        pytest.param(
            "cpu  1 2 3 4\ncpu0 1 2 3 4\n",
            CpuTimes(0.01, 0.02, 0.03, 0.04, 0, 0, 0, 0),
            1,
            id="old-kernel-four-fields-padded-with-zero",
        ),
        pytest.param(
            "cpu  100 0 0 0 0 0 0 0 50 0\n",
            CpuTimes(1.0, 0, 0, 0, 0, 0, 0, 0),
            1,
            id="guest-not-added-again-and-count-at-least-one",
        ),
    ],
)
def test_stat_edge_cases(text: str, expected_cpu: CpuTimes, expected_count: int) -> None:
    stat = procfs.parse_stat(text, TICKS)
    assert (stat.cpu, stat.cpu_count) == (expected_cpu, expected_count)
    assert stat.procs_running is None


def test_loadavg() -> None:
    assert procfs.parse_loadavg(fixture_text(NODE_A, "loadavg")) == procfs.LoadAvg(1.52, 1.23, 0.97)


def test_meminfo_kilobytes_become_bytes() -> None:
    assert procfs.parse_meminfo(fixture_text(NODE_A, "meminfo")) == Memory(
        total_bytes=16384000 * 1024,
        available_bytes=8192000 * 1024,
        swap_total_bytes=2097148 * 1024,
        swap_free_bytes=1048576 * 1024,
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "pressure/io",
            Pressure(12.30, 8.40, 5.60, 98765432, 10.10, 7.20, 4.80, 87654321),
            id="some-and-full",
        ),
        pytest.param(
            "pressure/cpu",
            Pressure(4.51, 3.20, 2.10, 123456789, 0.0, 0.0, 0.0, 0),
            id="node-cpu-full-reported-as-zeros",
        ),
    ],
)
def test_pressure(name: str, expected: Pressure) -> None:
    assert procfs.parse_pressure(fixture_text(NODE_A, name)) == expected


def test_pressure_without_full_line_leaves_full_none() -> None:
    text = "some avg10=1.00 avg60=0.50 avg300=0.25 total=1000\n"
    assert procfs.parse_pressure(text) == Pressure(1.0, 0.5, 0.25, 1000)


def test_diskstats_keeps_whole_disks_and_dm_and_converts_sectors() -> None:
    disks = procfs.parse_diskstats(fixture_text(NODE_A, "diskstats"))
    assert [d.device for d in disks] == ["sda", "nvme0n1", "dm-0"]
    assert disks[0] == DiskCounters(
        device="sda",
        reads_completed=120000,
        writes_completed=80000,
        read_bytes=9600000 * 512,
        written_bytes=6400000 * 512,
        read_time_ms=45000,
        write_time_ms=120000,
        io_time_ms=150000,
        weighted_io_time_ms=165000,
    )


def test_diskstats_old_kernel_with_eleven_fields() -> None:
    disks = procfs.parse_diskstats(fixture_text(NODE_B, "diskstats"))
    assert [(d.device, d.io_time_ms, d.weighted_io_time_ms) for d in disks] == [
        ("vda", 6000, 8000),
        ("sr0", 3, 2),
    ]


@pytest.mark.parametrize(
    ("name", "whole"),
    [
        pytest.param("sda", True, id="scsi-disk"),
        pytest.param("sda1", False, id="scsi-partition"),
        pytest.param("sdab12", False, id="scsi-partition-two-letter-disk"),
        pytest.param("vdb", True, id="virtio-disk"),
        pytest.param("xvda1", False, id="xen-partition"),
        pytest.param("nvme0n1", True, id="nvme-namespace"),
        pytest.param("nvme0n1p2", False, id="nvme-partition"),
        pytest.param("mmcblk0", True, id="mmc-disk"),
        pytest.param("mmcblk0p1", False, id="mmc-partition"),
        pytest.param("md0", True, id="md-raid"),
        pytest.param("dm-3", True, id="device-mapper-kept"),
        pytest.param("loop7", False, id="loop-skipped"),
        pytest.param("ram0", False, id="ramdisk-skipped"),
        pytest.param("zram0", False, id="zram-skipped"),
    ],
)
def test_is_whole_disk(name: str, whole: bool) -> None:
    assert procfs.is_whole_disk(name) is whole


def test_net_dev_skips_loopback_and_reads_errors_and_drops() -> None:
    nets = procfs.parse_net_dev(fixture_text(NODE_A, "net/dev"))
    assert [n.interface for n in nets] == ["eth0", "cni0"]
    assert nets[0] == NetCounters(
        interface="eth0",
        rx_bytes=123456789012,
        tx_bytes=23456789012,
        rx_packets=98765432,
        tx_packets=45678901,
        rx_errors=12,
        tx_errors=5,
        rx_drops=34,
        tx_drops=6,
    )


def test_net_dev_interface_name_glued_to_counters() -> None:
    text = "Inter-|\n face |\neth1:1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\n"
    (net,) = procfs.parse_net_dev(text)
    assert (net.interface, net.rx_bytes, net.tx_drops) == ("eth1", 1, 8)


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        pytest.param(NODE_A, TcpCounters(out_segs=8765432, retrans_segs=4321), id="with-ip-lines"),
        pytest.param(NODE_B, TcpCounters(out_segs=4000, retrans_segs=12), id="fewer-columns"),
    ],
)
def test_snmp_tcp_columns_by_header_name(root: Path, expected: TcpCounters) -> None:
    assert procfs.parse_snmp_tcp(fixture_text(root, "net/snmp")) == expected


def test_file_nr() -> None:
    assert procfs.parse_file_nr(fixture_text(NODE_A, "sys/fs/file-nr")) == FileHandles(
        allocated=9376, maximum=9223372036854775807
    )


# --- per-process files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        pytest.param(
            4242,
            procfs.PidStat(4242, "java", "S", 4000.0, 87, 5000, 524288),
            id="plain-comm",
        ),
        pytest.param(
            7007,
            procfs.PidStat(7007, "x) R 9 (y z", "S", 1.5, 1, 7000, 512),
            id="comm-with-spaces-and-parens-parsed-from-last-paren",
        ),
        pytest.param(
            31,
            procfs.PidStat(31, "kworker/1:2-events", "I", 15.0, 1, 12, 0),
            id="kernel-thread",
        ),
    ],
)
def test_pid_stat(pid: int, expected: procfs.PidStat) -> None:
    assert procfs.parse_pid_stat(fixture_text(NODE_A, f"{pid}/stat"), TICKS) == expected


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        pytest.param(4242, procfs.PidStatus(2097152 * 1024, 87, 120000, 98000), id="user-process"),
        pytest.param(31, procfs.PidStatus(None, 1, 90000, 12), id="kernel-thread-has-no-vmrss"),
    ],
)
def test_pid_status(pid: int, expected: procfs.PidStatus) -> None:
    assert procfs.parse_pid_status(fixture_text(NODE_A, f"{pid}/status")) == expected


def test_pid_io_uses_storage_bytes_not_rchar() -> None:
    assert procfs.parse_pid_io(fixture_text(NODE_A, "4242/io")) == procfs.PidIo(
        read_bytes=209715200, write_bytes=1048576
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(fixture_text(NODE_A, "4242/limits"), 65536, id="soft-limit"),
        pytest.param(fixture_text(NODE_B, "3300/limits"), 10032, id="soft-below-hard"),
        pytest.param(
            "Max open files            unlimited            unlimited            files\n",
            None,
            id="unlimited-is-none",
        ),
    ],
)
def test_limits_nofile(text: str, expected: int | None) -> None:
    assert procfs.parse_limits_nofile(text) == expected


KUBE_V1 = "/kubepods/burstable/pod1/abc"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "0::/system.slice/kubelet.service\n", "/system.slice/kubelet.service", id="v2"
        ),
        pytest.param(
            fixture_text(NODE_B, "3300/cgroup"),
            "/kubepods/burstable/pod3d6f0a2e-9b1c-4f7e-a5d8-2c4b6e8f0a1c/"
            "f1eea04075846c58e8e504256e23e469fba45b4d8e85b31bc869bafb3ac8b0bd",
            id="hybrid-unified-root-falls-back-to-v1-kubepods",
        ),
        pytest.param(
            f"4:memory:{KUBE_V1}\n1:name=systemd:/system.slice/containerd.service\n"
            "0::/system.slice/containerd.service\n",
            KUBE_V1,
            id="hybrid-kubepods-preferred-over-nonroot-unified",
        ),
        pytest.param(
            "4:memory:/process_api/x\n1:name=systemd:/\n0::/\n",
            "/process_api/x",
            id="hybrid-no-kubepods-first-nonroot-v1",
        ),
        pytest.param("0::/\n", "/", id="v2-root"),
        pytest.param(f"3:cpu,cpuacct:{KUBE_V1}\n", KUBE_V1, id="v1-only-joint-controllers"),
        pytest.param("1:name=systemd:/user.slice\n", "/user.slice", id="v1-systemd-only"),
    ],
)
def test_pid_cgroup_path_selection(text: str, expected: str) -> None:
    assert procfs.parse_pid_cgroup(text) == expected


# --- garbage ----------------------------------------------------------------------------------


def _stat(text: str) -> object:
    return procfs.parse_stat(text, TICKS)


def _pid_stat(text: str) -> object:
    return procfs.parse_pid_stat(text, TICKS)


PARSERS: list[Callable[[str], Any]] = [
    _stat,
    procfs.parse_loadavg,
    procfs.parse_meminfo,
    procfs.parse_pressure,
    procfs.parse_diskstats,
    procfs.parse_net_dev,
    procfs.parse_snmp_tcp,
    procfs.parse_file_nr,
    _pid_stat,
    procfs.parse_pid_status,
    procfs.parse_pid_io,
    procfs.parse_limits_nofile,
    procfs.parse_pid_cgroup,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("\x00\x01garbage \ufffd ) (\n", id="binary-junk"),
        pytest.param("cpu x y\nsome avg10=\nTcp: a\nTcp:\n : : :\n1 2 3 4 5\n", id="near-miss"),
    ],
)
def test_garbage_raises_only_value_or_lookup_error(parser: Callable[[str], Any], text: str) -> None:
    """The collector catches exactly these; anything else would fail the whole pass."""
    with contextlib.suppress(ValueError, LookupError):
        parser(text)


def test_garbled_io_fixture_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        procfs.parse_pid_io(fixture_text(NODE_A, "812/io"))


# --- readers ----------------------------------------------------------------------------------


def test_readers_join_the_injected_root() -> None:
    assert procfs.read_loadavg(NODE_A).load1 == 1.52
    assert procfs.read_pid_stat(NODE_A, 4242, TICKS).comm == "java"
    assert sorted(procfs.list_pids(NODE_A)) == [1, 31, 812, 4242, 5150, 6060, 6061, 7007]


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        pytest.param(6061, 8, id="counts-fd-entries"),
        pytest.param(31, 0, id="kernel-thread-none-placeholder-ignored"),
    ],
)
def test_count_fds(pid: int, expected: int) -> None:
    assert procfs.count_fds(NODE_A, pid) == expected


def test_read_text_replaces_undecodable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "stat"
    path.write_bytes(b"9 (caf\xe9) S 1")
    assert procfs.read_text(path) == "9 (caf\ufffd) S 1"
