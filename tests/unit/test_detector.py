"""Bottleneck detector: derived signals, every rule at its thresholds, culprits, hysteresis,
and the seed scenarios end to end. All pure: samples in, findings and state out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from agent.observe.detector import (
    MAX_FINDINGS,
    MAX_TRACKS,
    RULES,
    DetectorState,
    Level,
    Signals,
    classify,
    derive,
    detect,
    finding_key,
    workload_subject,
)
from agent.observe.model import CgroupSample, ProcessSample, Sample
from shared.wire import BottleneckFinding, BottleneckThresholds, Threshold

from observe_samples import (
    cgroup,
    cpu_times,
    disk,
    handles,
    later,
    load_scenarios,
    memory,
    net,
    pressure,
    process,
    ref,
    sample,
    tcp,
)

NODE = "worker-1"
NODE_SUBJECT = f"node/{NODE}"
DEFAULTS = BottleneckThresholds()
T0 = 1000.0
Pair = tuple[Sample | None, Sample]

NAMED = ref("uid-a", "c1", namespace="shop", pod="web-0", container="app")
UNNAMED = ref("uid-b", "c2")


def run(
    samples: Sequence[Sample | None],
    thresholds: BottleneckThresholds = DEFAULTS,
    state: DetectorState | None = None,
    node_name: str = NODE,
) -> tuple[list[list[BottleneckFinding]], DetectorState]:
    """``detect`` over a series, the previous sample threaded through; findings per step."""
    state = state or DetectorState()
    previous: Sample | None = None
    steps: list[list[BottleneckFinding]] = []
    for current in samples:
        assert current is not None
        findings, state = detect(previous, current, thresholds, state, node_name)
        steps.append(findings)
        previous = current
    return steps, state


def detect_pair(pair: Pair, thresholds: BottleneckThresholds = DEFAULTS) -> list[BottleneckFinding]:
    previous, current = pair
    return detect(previous, current, thresholds, DetectorState(), NODE)[0]


def of_rule(findings: list[BottleneckFinding], rule: str) -> list[BottleneckFinding]:
    return [f for f in findings if f.rule == rule]


# --- one builder per rule: value -> (previous, current) that shows exactly that value ------------


def psi_cpu(value: float) -> Pair:
    return None, sample(pressure={"cpu": pressure(some=value)})


def psi_memory(value: float) -> Pair:
    return None, sample(pressure={"memory": pressure(some=value, full=value)})


def psi_io(value: float) -> Pair:
    return None, sample(pressure={"io": pressure(some=value, full=value)})


def runqueue(value: float) -> Pair:
    return None, sample(cpu_count=4, procs_running=int(value * 4))


def cpu_util(value: float) -> Pair:
    before = sample(cpu=cpu_times())
    return before, later(before, cpu=cpu_times(busy=value, idle=100.0 - value))


def throttled(value: float) -> Pair:
    before = sample(cgroups=(cgroup(NAMED, nr_periods=0, nr_throttled=0),))
    after = sample(T0 + 10, cgroups=(cgroup(NAMED, nr_periods=200, nr_throttled=int(2 * value)),))
    return before, after


def available(value: float) -> Pair:
    return None, sample(memory=memory(total=200, available=int(2 * value)))


def disk_util(value: float) -> Pair:
    before = sample(disks=(disk("sdb"),))
    return before, later(before, disks=(disk("sdb", io_time_ms=int(100 * value)),))


def node_fds(value: float) -> Pair:
    return None, sample(file_handles=handles(int(2 * value), 200))


def process_fds(value: float) -> Pair:
    return None, sample(processes=(process(7, fds=int(2 * value), fd_limit=200),))


def drops(value: float) -> Pair:
    before = sample(nets=(net("eth0"),))
    return before, later(before, nets=(net("eth0", packets=1000, drops=int(10 * value)),))


def retransmits(value: float) -> Pair:
    before = sample(tcp=tcp(0, 0))
    return before, later(before, tcp=tcp(1000, int(10 * value)))


# rule, builder, subject, (just outside warning, at warning, between, at critical, beyond critical)
RULE_TABLE: list[tuple[str, Callable[[float], Pair], str, tuple[float, ...]]] = [
    ("cpu_pressure", psi_cpu, NODE_SUBJECT, (24.5, 25.0, 40.0, 60.0, 60.5)),
    ("cpu_runqueue", runqueue, NODE_SUBJECT, (1.25, 1.5, 2.0, 3.0, 3.25)),
    ("cpu_utilization", cpu_util, NODE_SUBJECT, (89.5, 90.0, 95.0, 98.0, 98.5)),
    ("cpu_throttling", throttled, "container/shop/web-0/app", (24.5, 25.0, 40.0, 50.0, 50.5)),
    ("memory_pressure", psi_memory, NODE_SUBJECT, (4.5, 5.0, 10.0, 20.0, 20.5)),
    ("memory_available", available, NODE_SUBJECT, (10.5, 10.0, 7.5, 5.0, 4.5)),
    ("io_pressure", psi_io, NODE_SUBJECT, (19.5, 20.0, 30.0, 50.0, 50.5)),
    ("disk_utilization", disk_util, "disk/sdb", (89.5, 90.0, 95.0, 98.0, 98.5)),
    ("fd_usage", node_fds, NODE_SUBJECT, (69.5, 70.0, 80.0, 90.0, 90.5)),
    ("process_fd_usage", process_fds, "process/7", (69.5, 70.0, 80.0, 90.0, 90.5)),
    ("network_drops", drops, "interface/eth0", (0.5, 1.0, 2.0, 5.0, 5.5)),
    ("tcp_retransmits", retransmits, NODE_SUBJECT, (0.5, 1.0, 2.0, 5.0, 5.5)),
]
POSITIONS = (
    ("just-short-of-warning-stays-quiet", None),
    ("at-warning-is-warning", "warning"),
    ("between-thresholds-is-warning", "warning"),
    ("at-critical-is-critical", "critical"),
    ("beyond-critical-is-critical", "critical"),
)


def boundary_params() -> list[Any]:
    return [
        pytest.param(rule, build(value), subject, value, severity, id=f"{rule}-{label}")
        for rule, build, subject, values in RULE_TABLE
        for value, (label, severity) in zip(values, POSITIONS, strict=True)
    ]


@pytest.mark.parametrize(("rule", "pair", "subject", "value", "severity"), boundary_params())
def test_rule_fires_at_its_thresholds(
    rule: str, pair: Pair, subject: str, value: float, severity: str | None
) -> None:
    findings = detect_pair(pair)
    if severity is None:
        assert findings == []
        return
    assert [(f.rule, f.subject, f.severity) for f in findings] == [(rule, subject, severity)]
    assert findings[0].evidence[0].value == pytest.approx(value)


@pytest.mark.parametrize(
    ("pair", "resource", "kind", "signal", "unit", "threshold"),
    [
        pytest.param(psi_cpu(70), "cpu", "saturation", "node.psi.cpu.some.avg10", "%", 60.0,
                     id="cpu_pressure-is-cpu-saturation"),
        pytest.param(runqueue(4), "cpu", "saturation", "node.cpu.runqueue_ratio", "tasks/cpu",
                     3.0, id="cpu_runqueue-is-cpu-saturation"),
        pytest.param(cpu_util(99), "cpu", "utilization", "node.cpu.utilization", "%", 98.0,
                     id="cpu_utilization-is-cpu-utilization"),
        pytest.param(throttled(60), "cpu", "saturation", "cgroup.cpu.throttled_periods", "%",
                     50.0, id="cpu_throttling-is-cpu-saturation"),
        pytest.param(psi_memory(30), "memory", "saturation", "node.psi.memory.full.avg10", "%",
                     20.0, id="memory_pressure-is-memory-saturation"),
        pytest.param(available(2), "memory", "utilization", "node.memory.available", "%", 5.0,
                     id="memory_available-is-memory-utilization"),
        pytest.param(psi_io(60), "disk", "saturation", "node.psi.io.full.avg10", "%", 50.0,
                     id="io_pressure-is-disk-saturation"),
        pytest.param(disk_util(99), "disk", "utilization", "disk.utilization", "%", 98.0,
                     id="disk_utilization-is-disk-utilization"),
        pytest.param(node_fds(95), "fds", "utilization", "node.file_handles.used", "%", 90.0,
                     id="fd_usage-is-fds-utilization"),
        pytest.param(process_fds(95), "fds", "utilization", "process.fds.used", "%", 90.0,
                     id="process_fd_usage-is-fds-utilization"),
        pytest.param(drops(6), "network", "errors", "net.drops", "%", 5.0,
                     id="network_drops-is-network-errors"),
        pytest.param(retransmits(6), "network", "errors", "node.tcp.retransmits", "%", 5.0,
                     id="tcp_retransmits-is-network-errors"),
    ],
)  # fmt: skip
def test_rule_reports_resource_kind_and_evidence(
    pair: Pair, resource: str, kind: str, signal: str, unit: str, threshold: float
) -> None:
    (finding,) = detect_pair(pair)
    assert (finding.resource, finding.kind, finding.severity) == (resource, kind, "critical")
    evidence = finding.evidence[0]
    assert (evidence.signal, evidence.unit, evidence.threshold) == (signal, unit, threshold)
    assert finding.since == pair[1].timestamp
    assert finding.subject in finding.message


def test_every_rule_is_covered_by_the_boundary_table() -> None:
    assert {rule.id for rule in RULES} == {row[0] for row in RULE_TABLE} | {"oom_kill"}


# --- OOM kills and workload subjects ---------------------------------------------------------

POD = ref("uid-a", "", namespace="shop", pod="web-0")


def oom_pair(before: tuple[CgroupSample, ...], after: tuple[CgroupSample, ...]) -> Pair:
    return sample(cgroups=before), sample(T0 + 10, cgroups=after)


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        pytest.param(
            oom_pair((cgroup(NAMED, oom_kill=0),), (cgroup(NAMED, oom_kill=1),)),
            [("critical", "container/shop/web-0/app")],
            id="one-kill-is-critical-on-the-container",
        ),
        pytest.param(
            oom_pair((cgroup(NAMED, oom_kill=2),), (cgroup(NAMED, oom_kill=5),)),
            [("critical", "container/shop/web-0/app")],
            id="several-kills-are-one-finding",
        ),
        pytest.param(
            oom_pair((cgroup(NAMED, oom_kill=3),), (cgroup(NAMED, oom_kill=3),)),
            [],
            id="old-kills-without-increase-stay-quiet",
        ),
        pytest.param(
            oom_pair((cgroup(NAMED, oom_kill=3),), (cgroup(NAMED, oom_kill=0),)),
            [],
            id="counter-reset-is-no-data",
        ),
        pytest.param(
            oom_pair((), (cgroup(NAMED, oom_kill=4),)),
            [],
            id="cgroup-new-since-previous-is-no-data",
        ),
        pytest.param(
            (None, sample(cgroups=(cgroup(NAMED, oom_kill=4),))),
            [],
            id="first-sample-is-no-data",
        ),
        pytest.param(
            oom_pair((cgroup(POD, oom_kill=0),), (cgroup(POD, oom_kill=1),)),
            [("critical", "pod/shop/web-0")],
            id="pod-slice-kill-is-reported-on-the-pod",
        ),
        pytest.param(
            oom_pair(
                (cgroup(POD, oom_kill=0), cgroup(NAMED, oom_kill=0)),
                (cgroup(POD, oom_kill=1), cgroup(NAMED, oom_kill=1)),
            ),
            [("critical", "container/shop/web-0/app")],
            id="hierarchical-pod-count-is-not-reported-twice",
        ),
        pytest.param(
            oom_pair((cgroup(UNNAMED, oom_kill=0),), (cgroup(UNNAMED, oom_kill=1),)),
            [("critical", "container/uid-b/uid-b/c2")],
            id="uids-stand-in-for-unknown-names",
        ),
    ],
)
def test_oom_kill_reports_any_increase(pair: Pair, expected: list[tuple[str, str]]) -> None:
    findings = of_rule(detect_pair(pair), "oom_kill")
    assert [(f.severity, f.subject) for f in findings] == expected
    assert all((f.resource, f.kind) == ("memory", "saturation") for f in findings)


def test_oom_kill_opens_at_once_even_with_trigger_samples() -> None:
    """An OOM kill is an event: waiting for a second increase would miss it."""
    before, after = oom_pair((cgroup(NAMED, oom_kill=0),), (cgroup(NAMED, oom_kill=1),))
    steps, _ = run([before, after], BottleneckThresholds(trigger_samples=3))
    assert [f.rule for f in steps[1]] == ["oom_kill"]


def test_oom_kill_closes_after_clear_samples_without_kills() -> None:
    series = [sample(T0 + 10 * i, cgroups=(cgroup(NAMED, oom_kill=k),)) for i, k in
              enumerate([0, 1, 1, 1, 1])]  # fmt: skip
    steps, state = run(series)
    assert [len(step) for step in steps] == [0, 1, 1, 0, 0]
    assert state.tracks == {}


@pytest.mark.parametrize(
    ("cgroups", "subjects"),
    [
        pytest.param(
            (cgroup(NAMED, 0, 0), cgroup(POD, 0, 0)),
            ["container/shop/web-0/app"],
            id="container-cgroup-speaks-for-its-pod",
        ),
        pytest.param((cgroup(POD, 0, 0),), ["pod/shop/web-0"], id="pod-only-cgroup-is-the-pod"),
        pytest.param((cgroup(UNNAMED, 0, 0),), ["container/uid-b/uid-b/c2"], id="unnamed-uses-ids"),
    ],
)
def test_throttling_subject_is_the_workload(
    cgroups: tuple[CgroupSample, ...], subjects: list[str]
) -> None:
    def bump(c: CgroupSample) -> CgroupSample:
        return cgroup(c.container, nr_periods=100, nr_throttled=60, path=c.path)

    pair = sample(cgroups=cgroups), sample(T0 + 10, cgroups=tuple(bump(c) for c in cgroups))
    assert [f.subject for f in of_rule(detect_pair(pair), "cpu_throttling")] == subjects


@pytest.mark.parametrize(
    ("ref_", "subject"),
    [
        pytest.param(NAMED, "container/shop/web-0/app", id="container-with-names"),
        pytest.param(POD, "pod/shop/web-0", id="pod-with-names"),
        pytest.param(ref("uid-c", ""), "pod/uid-c/uid-c", id="pod-without-names"),
        pytest.param(UNNAMED, "container/uid-b/uid-b/c2", id="container-without-names"),
    ],
)
def test_workload_subject_format(ref_: Any, subject: str) -> None:
    assert workload_subject(ref_) == subject


@pytest.mark.parametrize(
    ("disks", "subject", "context"),
    [
        pytest.param((), NODE_SUBJECT, [], id="no-disk-data-names-the-node"),
        pytest.param((("sda", 50.0),), NODE_SUBJECT, [], id="quiet-disk-names-the-node"),
        pytest.param(
            (("sda", 72.0),), "disk/sda", ["disk.sda.utilization"], id="near-busy-disk-is-named"
        ),
        pytest.param(
            (("sda", 80.0), ("sdb", 99.0)),
            "disk/sdb",
            ["disk.sdb.utilization"],
            id="busiest-of-several-disks-is-named",
        ),
    ],
)
def test_io_pressure_names_the_saturated_disk(
    disks: tuple[tuple[str, float], ...], subject: str, context: list[str]
) -> None:
    before = sample(pressure={"io": pressure(full=30.0)}, disks=tuple(disk(d) for d, _ in disks))
    after = later(before, disks=tuple(disk(d, io_time_ms=int(100 * util)) for d, util in disks))
    (finding,) = of_rule(detect_pair((before, after)), "io_pressure")
    assert finding.subject == subject
    assert [e.signal for e in finding.evidence[1:]] == context


# --- derive: rates, ratios and their guards ----------------------------------------------------


def cpu_pair(busy: float, idle: float, seconds: float = 10.0) -> Pair:
    before = sample(cpu=cpu_times(busy=1000.0, idle=1000.0))
    return before, later(before, seconds, cpu=cpu_times(busy=1000.0 + busy, idle=1000.0 + idle))


def disk_pair(**after: int) -> Pair:
    before = sample(disks=(disk("sda", reads=10, writes=10, read_time_ms=5, write_time_ms=5),))
    return before, later(before, disks=(disk("sda", **after),))


def proc_pair(before: ProcessSample, after: ProcessSample) -> Pair:
    return sample(processes=(before,)), sample(T0 + 10, processes=(after,))


def cg_pair(before: CgroupSample, after: CgroupSample) -> Pair:
    return sample(cgroups=(before,)), sample(T0 + 10, cgroups=(after,))


def first_disk(s: Signals) -> Any:
    return s.disks[0]


@pytest.mark.parametrize(
    ("pair", "read", "expected"),
    [
        pytest.param(cpu_pair(30, 10), lambda s: s.cpu_utilization_percent, 75.0,
                     id="cpu-utilisation-is-busy-over-total"),
        pytest.param(cpu_pair(30, 10), lambda s: s.cpu_busy_cores, 3.0,
                     id="cpu-busy-cores-is-busy-over-interval"),
        pytest.param(cpu_pair(30, 10, seconds=0), lambda s: s.cpu_utilization_percent, None,
                     id="zero-interval-gives-no-rates"),
        pytest.param(cpu_pair(30, 10, seconds=-5), lambda s: s.cpu_busy_cores, None,
                     id="clock-going-back-gives-no-rates"),
        pytest.param(cpu_pair(-30, 10), lambda s: s.cpu_utilization_percent, None,
                     id="cpu-counter-reset-is-no-data"),
        pytest.param(cpu_pair(0, 0), lambda s: s.cpu_utilization_percent, None,
                     id="cpu-counters-not-advancing-is-no-data"),
        pytest.param((None, sample(cpu=cpu_times(5, 5))), lambda s: s.cpu_utilization_percent,
                     None, id="first-sample-has-no-cpu-rate"),
        pytest.param((None, sample(cpu_count=8, procs_running=12)), lambda s: s.runqueue_ratio,
                     1.5, id="runqueue-is-running-over-cpus"),
        pytest.param((None, sample(cpu_count=0, procs_running=12)), lambda s: s.runqueue_ratio,
                     None, id="zero-cpus-is-no-data"),
        pytest.param((None, sample(pressure={"cpu": pressure(7.5)})),
                     lambda s: s.cpu_psi_some_percent, 7.5, id="psi-avg10-is-read-as-is"),
        pytest.param((None, sample(pressure={"memory": pressure(7.5)})),
                     lambda s: s.memory_psi_full_percent, None,
                     id="psi-without-full-line-is-no-data"),
        pytest.param((None, sample(pressure={})), lambda s: s.io_psi_full_percent, None,
                     id="unreadable-psi-is-no-data"),
        pytest.param((None, sample(memory=memory(400, 100))),
                     lambda s: s.memory_available_percent, 25.0, id="memory-available-percent"),
        pytest.param((None, sample(memory=memory(0, 0))), lambda s: s.memory_available_percent,
                     None, id="zero-memory-total-is-no-data"),
        pytest.param((None, sample(memory=memory(400, 100, 200, 150))),
                     lambda s: s.swap_used_percent, 25.0, id="swap-used-percent"),
        pytest.param((None, sample(memory=memory(400, 100))), lambda s: s.swap_used_percent,
                     None, id="swap-off-is-no-data"),
        pytest.param((None, sample(file_handles=handles(50, 200))),
                     lambda s: s.file_handles_used_percent, 25.0, id="file-handles-percent"),
        pytest.param((sample(tcp=tcp(100, 10)), sample(T0 + 10, tcp=tcp(300, 15))),
                     lambda s: s.tcp_retransmit_percent, 2.5, id="retransmits-over-out-segments"),
        pytest.param((sample(tcp=tcp(100, 10)), sample(T0 + 10, tcp=tcp(100, 10))),
                     lambda s: s.tcp_retransmit_percent, None, id="no-segments-sent-is-no-data"),
        pytest.param((sample(tcp=tcp(100, 10)), sample(T0 + 10, tcp=tcp(50, 1))),
                     lambda s: s.tcp_retransmit_percent, None, id="tcp-counter-reset-is-no-data"),
        pytest.param((sample(tcp=None), sample(T0 + 10, tcp=tcp(50, 1))),
                     lambda s: s.tcp_retransmit_percent, None, id="tcp-missing-before-is-no-data"),
        pytest.param(disk_pair(io_time_ms=2500), lambda s: first_disk(s).utilization_percent,
                     25.0, id="disk-util-is-io-time-over-interval"),
        pytest.param(disk_pair(io_time_ms=10100), lambda s: first_disk(s).utilization_percent,
                     100.0, id="disk-util-jitter-is-capped-at-100"),
        pytest.param(disk_pair(reads=20, writes=30, read_time_ms=105, write_time_ms=205),
                     lambda s: first_disk(s).await_ms, 10.0, id="disk-await-is-wait-per-io"),
        pytest.param(disk_pair(reads=10, writes=10, read_time_ms=5, write_time_ms=5),
                     lambda s: first_disk(s).await_ms, None, id="disk-without-ios-has-no-await"),
        pytest.param(disk_pair(weighted_io_time_ms=20000), lambda s: first_disk(s).queue_size,
                     2.0, id="disk-queue-size-is-weighted-time-over-interval"),
        pytest.param(disk_pair(reads=1), lambda s: first_disk(s).await_ms, None,
                     id="disk-counter-reset-is-no-data"),
        pytest.param((sample(disks=(disk("sda"),)), sample(T0 + 10, disks=(disk("sdb", 5),))),
                     lambda s: first_disk(s).utilization_percent, None,
                     id="new-disk-has-no-rate"),
        pytest.param((sample(nets=(net(packets=100, drops=1),)),
                      sample(T0 + 10, nets=(net(packets=300, drops=5, tx_packets=200),))),
                     lambda s: s.interfaces[0].drop_percent, 1.0, id="drops-over-packets"),
        pytest.param((sample(nets=(net(packets=100),)), sample(T0 + 10, nets=(net(packets=100),))),
                     lambda s: s.interfaces[0].drop_percent, None, id="idle-interface-is-no-data"),
        pytest.param((None, sample(processes=(process(1, fds=50, fd_limit=200),))),
                     lambda s: s.processes[0].fd_usage_percent, 25.0, id="process-fds-over-limit"),
        pytest.param((None, sample(processes=(process(1, fds=50, fd_limit=0),))),
                     lambda s: s.processes[0].fd_usage_percent, None,
                     id="zero-fd-limit-is-no-data"),
        pytest.param((None, sample(processes=(process(1, fds=None, fd_limit=10),))),
                     lambda s: s.processes[0].fd_usage_percent, None,
                     id="unreadable-fds-is-no-data"),
        pytest.param(proc_pair(process(1, read_bytes=10, write_bytes=10),
                               process(1, read_bytes=30, write_bytes=40)),
                     lambda s: s.processes[0].io_bytes, 50, id="process-io-is-byte-delta"),
        pytest.param(proc_pair(process(1, "old", read_bytes=10, write_bytes=10),
                               process(1, "new", read_bytes=30, write_bytes=40)),
                     lambda s: s.processes[0].io_bytes, None, id="reused-pid-has-no-io-delta"),
        pytest.param(proc_pair(process(1, read_bytes=10, write_bytes=10),
                               process(1, read_bytes=1, write_bytes=1)),
                     lambda s: s.processes[0].io_bytes, None, id="process-io-reset-is-no-data"),
        pytest.param(proc_pair(process(1, read_bytes=None, write_bytes=10),
                               process(1, read_bytes=30, write_bytes=40)),
                     lambda s: s.processes[0].io_bytes, None, id="unreadable-io-is-no-data"),
        pytest.param(proc_pair(process(1, "gone"), process(2, "new")),
                     lambda s: [p.pid for p in s.exited_processes], [1],
                     id="exited-processes-are-kept-for-culprits"),
        pytest.param(cg_pair(cgroup(NAMED, 100, 10), cgroup(NAMED, 300, 60)),
                     lambda s: s.cgroups[0].throttled_percent, 25.0,
                     id="throttled-periods-over-periods"),
        pytest.param(cg_pair(cgroup(NAMED, 100, 10), cgroup(NAMED, 100, 10)),
                     lambda s: s.cgroups[0].throttled_percent, None,
                     id="no-quota-no-periods-is-no-data"),
        pytest.param(cg_pair(cgroup(NAMED, 100, 10), cgroup(NAMED, 50, 5)),
                     lambda s: s.cgroups[0].throttled_percent, None,
                     id="throttle-counter-reset-is-no-data"),
        pytest.param(cg_pair(cgroup(NAMED, oom_kill=1), cgroup(NAMED, oom_kill=3)),
                     lambda s: s.cgroups[0].oom_kills, 2, id="oom-kill-increase"),
        pytest.param((None, sample(cgroups=(cgroup(NAMED, memory_current=75, memory_max=100),))),
                     lambda s: s.cgroups[0].memory_usage_percent, 75.0,
                     id="cgroup-memory-current-over-max"),
        pytest.param((None, sample(cgroups=(cgroup(NAMED, memory_current=75),))),
                     lambda s: s.cgroups[0].memory_usage_percent, None,
                     id="unlimited-cgroup-memory-is-no-data"),
    ],
)  # fmt: skip
def test_derive(pair: Pair, read: Callable[[Signals], Any], expected: Any) -> None:
    value = read(derive(*pair))
    if isinstance(expected, float):
        assert value == pytest.approx(expected)
    else:
        assert value == expected


@pytest.mark.parametrize(
    "pair",
    [
        pytest.param((None, sample()), id="empty-sample"),
        pytest.param((sample(tcp=tcp(500, 400)), sample(T0 + 10, tcp=tcp(10, 9))),
                     id="every-counter-reset"),
        pytest.param((sample(tcp=tcp(500, 400)), sample(T0, tcp=tcp(510, 409))),
                     id="same-timestamp-twice"),
        pytest.param((None, sample(tcp=tcp(100, 90), disks=(disk(io_time_ms=99999),))),
                     id="first-sample-only-counters"),
    ],
)  # fmt: skip
def test_no_data_yields_no_finding_and_no_state(pair: Pair) -> None:
    previous, current = pair
    findings, state = detect(previous, current, DEFAULTS, DetectorState(), NODE)
    assert findings == []
    assert state.tracks == {}


# --- culprits ---------------------------------------------------------------------------------


def cpu_with(*procs: ProcessSample, busy_cores: float | None = 4.0) -> Pair:
    """CPU pressure 70 %, ``busy_cores`` over 10 s (None: node CPU times unknown)."""
    if busy_cores is None:
        return None, sample(pressure={"cpu": pressure(70.0)}, processes=procs)
    before = sample(cpu=cpu_times(), pressure={"cpu": pressure(70.0)})
    after = sample(
        T0 + 10,
        cpu=cpu_times(busy=10 * busy_cores, idle=80.0 - 10 * busy_cores),
        pressure={"cpu": pressure(70.0)},
        processes=procs,
    )
    return before, after


def io_with(before: tuple[ProcessSample, ...], after: tuple[ProcessSample, ...]) -> Pair:
    return (
        sample(disks=(disk("sda"),), processes=before),
        sample(T0 + 10, disks=(disk("sda", io_time_ms=9900, read_bytes=1000),), processes=after),
    )


def io_proc(pid: int, moved: int, comm: str = "app") -> ProcessSample:
    return process(pid, comm, read_bytes=moved, write_bytes=0)


@pytest.mark.parametrize(
    ("pair", "rule", "expected"),
    [
        pytest.param(
            cpu_with(process(1, cpu_cores=2.0), process(2, cpu_cores=1.0),
                     process(3, cpu_cores=0.5), process(4, cpu_cores=0.1)),
            "cpu_pressure", [(1, 0.5), (2, 0.25), (3, 0.125)],
            id="cpu-share-of-busy-cores-without-the-noise-below-5-percent",
        ),
        pytest.param(
            cpu_with(process(1, cpu_cores=3.0), process(2, cpu_cores=1.0), busy_cores=None),
            "cpu_pressure", [(1, 0.75), (2, 0.25)],
            id="cpu-share-of-listed-processes-when-node-busy-unknown",
        ),
        pytest.param(
            cpu_with(*(process(p, cpu_cores=0.5) for p in range(10, 17))),
            "cpu_pressure", [(p, 0.125) for p in range(10, 15)],
            id="cpu-at-most-five-culprits",
        ),
        pytest.param(
            cpu_with(process(1, cpu_cores=None), process(2, cpu_cores=0.0),
                     process(3, cpu_cores=1.0)),
            "cpu_pressure", [(3, 0.25)],
            id="cpu-unknown-or-idle-processes-are-not-culprits",
        ),
        pytest.param(
            cpu_with(process(1, cpu_cores=5.0)),
            "cpu_pressure", [(1, 1.0)],
            id="cpu-share-is-capped-at-one",
        ),
        pytest.param(
            (None, sample(memory=memory(1000, 50),
                          processes=(process(1, rss_bytes=500), process(2, rss_bytes=300),
                                     process(3, rss_bytes=40)))),
            "memory_available", [(1, 0.5), (2, 0.3)],
            id="memory-share-of-total-memory",
        ),
        pytest.param(
            io_with((io_proc(1, 0), io_proc(2, 0), io_proc(3, 0, "old")),
                    (io_proc(1, 600), io_proc(2, 200), io_proc(3, 900, "new"), io_proc(4, 999))),
            "disk_utilization", [(1, 0.6), (2, 0.2)],
            id="io-share-of-disk-bytes-same-process-in-both-samples",
        ),
        pytest.param(
            (None, sample(file_handles=handles(190, 200),
                          processes=(process(1, fds=95), process(2, fds=38),
                                     process(3, fds=5)))),
            "fd_usage", [(1, 0.5), (2, 0.2)],
            id="node-fds-share-of-allocated-handles",
        ),
        pytest.param(
            (None, sample(processes=(process(9, fds=190, fd_limit=200, container=NAMED),
                                     process(8, fds=500, fd_limit=10_000)))),
            "process_fd_usage", [(9, 1.0)],
            id="process-fds-culprit-is-the-process-itself",
        ),
        pytest.param(
            (sample(cgroups=(cgroup(NAMED, 0, 0),)),
             sample(T0 + 10, cgroups=(cgroup(NAMED, 100, 60),),
                    processes=(process(1, cpu_cores=0.75, container=NAMED),
                               process(2, cpu_cores=0.25, container=NAMED),
                               process(3, cpu_cores=3.0, container=UNNAMED)))),
            "cpu_throttling", [(None, 1.0), (1, 0.75), (2, 0.25)],
            id="throttling-names-the-container-then-its-processes",
        ),
        pytest.param(
            (sample(cgroups=(cgroup(POD, oom_kill=0),),
                    processes=(process(1, "java", rss_bytes=900, container=NAMED),)),
             sample(T0 + 10, cgroups=(cgroup(POD, oom_kill=1),),
                    processes=(process(2, "java", rss_bytes=100, container=NAMED),
                               process(3, "other", rss_bytes=5000, container=UNNAMED)))),
            "oom_kill", [(None, 1.0), (1, 0.9), (2, 0.1)],
            id="oom-names-the-pod-and-the-killed-process-from-the-previous-sample",
        ),
    ],
)  # fmt: skip
def test_culprits(pair: Pair, rule: str, expected: list[tuple[int | None, float]]) -> None:
    (finding,) = of_rule(detect_pair(pair), rule)
    assert [c.pid for c in finding.culprits] == [pid for pid, _ in expected]
    assert [c.share for c in finding.culprits] == pytest.approx([share for _, share in expected])


def test_culprit_carries_names_when_known_and_ids_always() -> None:
    pair = None, sample(processes=(process(9, "bridge", fds=190, fd_limit=200, container=NAMED),))
    (finding,) = detect_pair(pair)
    (culprit,) = finding.culprits
    assert (culprit.pid, culprit.command, culprit.namespace, culprit.pod, culprit.container) == (
        9, "bridge", "shop", "web-0", "app"
    )  # fmt: skip
    assert (culprit.pod_uid, culprit.container_id) == ("uid-a", "c1")


# --- hysteresis -----------------------------------------------------------------------------


def psi_series(values: Sequence[float | None]) -> list[Sample]:
    """CPU pressure some avg10 per step, 10 s apart; None: the PSI file was unreadable."""
    return [
        sample(T0 + 10 * i, pressure={} if v is None else {"cpu": pressure(v)})
        for i, v in enumerate(values)
    ]


W, C = "warning", "critical"


@pytest.mark.parametrize(
    ("overrides", "values", "expected"),
    [
        pytest.param({}, [24.5, 24.0, 22.0, 24.9], [None] * 4,
                     id="hovering-below-warning-never-opens"),
        pytest.param({}, [25.0, 20.0, 24.0, 21.0, 20.0], [W] * 5,
                     id="open-stays-open-while-at-or-above-the-clear-level"),
        pytest.param({}, [30.0, 19.9, 19.9, 19.9], [W, W, None, None],
                     id="closes-after-two-clean-samples"),
        pytest.param({}, [30.0, 10.0, 22.0, 10.0, 10.0], [W, W, W, W, None],
                     id="hover-between-clean-samples-restarts-the-clear-count"),
        pytest.param({}, [30.0, 10.0, 30.0, 10.0, 10.0], [W, W, W, W, None],
                     id="breach-between-clean-samples-restarts-the-clear-count"),
        pytest.param({}, [30.0, 10.0, 10.0, 24.0, 22.0, 24.9], [W, W, None, None, None, None],
                     id="closed-stays-closed-while-hovering"),
        pytest.param({}, [30.0, 60.0, 40.0, 70.0, 22.0], [W, C, W, C, W],
                     id="severity-follows-the-value-while-open"),
        pytest.param({}, [30.0, None, None, 10.0, 10.0], [W, W, W, W, None],
                     id="no-data-holds-an-open-finding"),
        pytest.param({}, [30.0, 10.0, None, 10.0], [W, W, W, None],
                     id="no-data-does-not-count-as-clean"),
        pytest.param({}, [None, None, 24.0], [None, None, None],
                     id="no-data-does-not-open"),
        pytest.param({"trigger_samples": 2}, [30.0, 10.0, 30.0, 30.0], [None, None, None, W],
                     id="trigger-two-needs-two-breaches-in-a-row"),
        pytest.param({"trigger_samples": 2}, [30.0, 22.0, 30.0], [None, None, None],
                     id="trigger-two-hover-breaks-the-run"),
        pytest.param({"trigger_samples": 2}, [30.0, None, 30.0], [None, None, W],
                     id="trigger-two-no-data-neither-breaks-nor-counts"),
        pytest.param({"trigger_samples": 2}, [65.0, 65.0], [None, C],
                     id="trigger-two-opens-straight-at-critical"),
        pytest.param({"clear_samples": 1}, [30.0, 19.9], [W, None],
                     id="clear-one-closes-on-the-first-clean-sample"),
        pytest.param({"clear_samples": 3}, [30.0, 10.0, 10.0, 10.0], [W, W, W, None],
                     id="clear-three-needs-three-clean-samples"),
        pytest.param({"clear_fraction": 0.5}, [30.0, 13.0, 12.4, 12.4], [W, W, W, None],
                     id="clear-fraction-sets-the-clear-level"),
    ],
)  # fmt: skip
def test_hysteresis(
    overrides: dict[str, Any], values: list[float | None], expected: list[str | None]
) -> None:
    steps, _ = run(psi_series(values), BottleneckThresholds(**overrides))
    got = [findings[0].severity if findings else None for findings in steps]
    assert got == expected
    assert all(len(findings) <= 1 for findings in steps)


@pytest.mark.parametrize(
    ("overrides", "values", "since_steps"),
    [
        pytest.param({}, [30.0, 70.0, 30.0, 22.0, 70.0], [0, 0, 0, 0, 0],
                     id="since-survives-severity-changes-and-hover"),
        pytest.param({}, [30.0, None, 30.0], [0, 0, 0], id="since-survives-missing-data"),
        pytest.param({}, [30.0, 10.0, 10.0, 30.0], [0, 0, None, 3],
                     id="reopening-starts-a-new-since"),
        pytest.param({"trigger_samples": 3}, [10.0, 30.0, 30.0, 30.0], [None, None, None, 1],
                     id="since-is-the-first-breach-of-the-triggering-run"),
    ],
)  # fmt: skip
def test_since(
    overrides: dict[str, Any], values: list[float | None], since_steps: list[int | None]
) -> None:
    steps, _ = run(psi_series(values), BottleneckThresholds(**overrides))
    got = [findings[0].since if findings else None for findings in steps]
    assert got == [None if s is None else T0 + 10 * s for s in since_steps]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([9.0, 12.0, 12.5, 11.0], [W, W, W, W],
                     id="open-stays-open-up-to-warning-over-clear-fraction"),
        pytest.param([9.0, 13.0, 13.0], [W, W, None], id="closes-after-two-samples-above-it"),
        pytest.param([11.0, 12.0, 10.5], [None, None, None], id="above-warning-never-opens"),
        pytest.param([9.0, 4.5, 7.0], [W, C, W], id="lower-values-are-worse"),
    ],
)  # fmt: skip
def test_hysteresis_when_lower_is_worse(values: list[float], expected: list[str | None]) -> None:
    series = [
        sample(T0 + 10 * i, memory=memory(total=200, available=int(2 * v)))
        for i, v in enumerate(values)
    ]
    steps, _ = run(series)
    assert [s[0].severity if s else None for s in steps] == expected


def test_open_finding_without_data_repeats_its_last_evidence() -> None:
    steps, _ = run(psi_series([30.0, 70.0, None]))
    assert steps[2] == steps[1]


@pytest.mark.parametrize(
    ("value", "lower_is_worse", "level"),
    [
        pytest.param(19.9, False, "clear", id="below-clear-level-is-clear"),
        pytest.param(20.0, False, "hover", id="at-clear-level-is-hover"),
        pytest.param(25.0, False, "warning", id="at-warning-is-warning"),
        pytest.param(60.0, False, "critical", id="at-critical-is-critical"),
        pytest.param(12.6, True, "clear", id="lower-above-clear-level-is-clear"),
        pytest.param(12.5, True, "hover", id="lower-at-clear-level-is-hover"),
        pytest.param(10.0, True, "warning", id="lower-at-warning-is-warning"),
        pytest.param(5.0, True, "critical", id="lower-at-critical-is-critical"),
    ],
)
def test_classify(value: float, lower_is_worse: bool, level: Level) -> None:
    threshold = Threshold(warning=10.0, critical=5.0) if lower_is_worse else (
        Threshold(warning=25.0, critical=60.0)
    )  # fmt: skip
    assert classify(value, threshold, 0.8, lower_is_worse) == level


# --- bounded state and output -----------------------------------------------------------------


def fds_sample(step: int, pids: Sequence[int], percent: float = 95.0) -> Sample:
    """Processes at ``percent`` of their fd limit, plus a quiet pid 1 so the rule has data."""
    quiet = process(1, "init", fds=1, fd_limit=100)
    busy = (process(pid, fds=int(percent * 10), fd_limit=1000) for pid in pids)
    return sample(T0 + 10 * step, processes=(quiet, *busy))


def test_state_holds_only_open_keys_and_forgets_closed_ones() -> None:
    many = range(100, 200)
    steps, state = run([fds_sample(0, many), fds_sample(1, []), fds_sample(2, [])])
    assert [len(s) for s in steps] == [MAX_FINDINGS, MAX_FINDINGS, 0]
    assert state.tracks == {}


def test_state_stays_bounded_while_subjects_come_and_go() -> None:
    state, previous, sizes = DetectorState(), None, []
    for step in range(300):
        current = fds_sample(step, [1000 + step])  # a new breaching process every sample
        _, state = detect(previous, current, DEFAULTS, state, NODE)
        sizes.append(len(state.tracks))
        previous = current
    assert max(sizes) <= DEFAULTS.clear_samples + 1


def test_pending_keys_are_dropped_when_their_breach_run_ends() -> None:
    thresholds = BottleneckThresholds(trigger_samples=3)
    steps, state = run([fds_sample(0, range(100, 150)), fds_sample(1, [])], thresholds)
    assert steps == [[], []]
    assert state.tracks == {}


def test_state_is_capped_even_under_a_flood_of_pending_keys() -> None:
    thresholds = BottleneckThresholds(trigger_samples=5)
    _, state = run([fds_sample(0, range(100, 100 + MAX_TRACKS + 200))], thresholds)
    assert len(state.tracks) == MAX_TRACKS


def test_findings_are_sorted_critical_first_then_rule_and_subject() -> None:
    current = sample(
        pressure={"cpu": pressure(30.0), "memory": pressure(25.0, 25.0)},
        memory=memory(200, 8),
        processes=(process(5, fds=95, fd_limit=100), process(40, fds=75, fd_limit=100)),
    )
    findings = detect_pair((None, current))
    assert [(f.severity, *finding_key(f)) for f in findings] == [
        (C, "memory_available", NODE_SUBJECT),
        (C, "memory_pressure", NODE_SUBJECT),
        (C, "process_fd_usage", "process/5"),
        (W, "cpu_pressure", NODE_SUBJECT),
        (W, "process_fd_usage", "process/40"),
    ]


def test_detect_is_pure() -> None:
    previous, current = psi_series([30.0, 70.0])
    _, state = detect(None, previous, DEFAULTS, DetectorState(), NODE)
    snapshot = dict(state.tracks)
    once = detect(previous, current, DEFAULTS, state, NODE)
    twice = detect(previous, current, DEFAULTS, state, NODE)
    assert once == twice
    assert dict(state.tracks) == snapshot


# --- seed scenarios -----------------------------------------------------------------------------

SCENARIOS = load_scenarios()


@pytest.mark.parametrize("trigger_samples", [1, 2])
@pytest.mark.parametrize("scenario", [pytest.param(s, id=s.name) for s in SCENARIOS])
def test_seed_scenario_shows_its_expected_finding(scenario: Any, trigger_samples: int) -> None:
    thresholds = BottleneckThresholds(trigger_samples=trigger_samples)
    steps, _ = run(scenario.samples, thresholds, node_name=scenario.node_name)
    for findings in steps:  # every finding is valid on the wire, as sent
        for finding in findings:
            assert BottleneckFinding.model_validate_json(finding.model_dump_json()) == finding
    expected = scenario.expected
    if expected is None:
        assert steps == [[] for _ in steps]
        return
    matches = [
        f
        for f in steps[-1]
        if (f.resource, f.kind, f.subject)
        == (expected["resource"], expected["kind"], expected["subject"])
    ]
    assert matches, [(f.rule, f.resource, f.kind, f.subject) for f in steps[-1]]
    if expected["culprit"] is not None:
        culprit_ids = {c.container_id for f in matches for c in f.culprits}
        assert expected["culprit"]["container_id"] in culprit_ids


def test_seed_fixture_has_a_healthy_scenario_and_bottlenecks() -> None:
    """Guards the scenario test above against a fixture that lost its cases."""
    assert sum(s.expected is None for s in SCENARIOS) == 1
    assert len(SCENARIOS) >= 7
