"""Prometheus exposition of the latest sample and findings.

Scrapes read what the sampling loop last stored: no ``/proc`` walk happens at scrape time,
so a scrape costs the same on a busy node as on an idle one. Label cardinality is bounded by
the collector's top-K processes and the node's containers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import product
from typing import get_args

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.observe.model import ContainerRef, Pressure, Sample
from shared import metric_names
from shared.wire import BottleneckFinding

RESOURCES = get_args(BottleneckFinding.model_fields["resource"].annotation)
KINDS = get_args(BottleneckFinding.model_fields["kind"].annotation)
SEVERITIES = get_args(BottleneckFinding.model_fields["severity"].annotation)

USEC = 1e-6
MS = 1e-3
SHORT_ID = 12  # container IDs shortened as the runtimes print them


@dataclass
class Observation:
    """What the sampling loop publishes; replaced as a whole, read by scrapes and handlers."""

    sample: Sample | None = None
    findings: list[BottleneckFinding] = field(default_factory=list)


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def bottleneck_metrics(findings: Iterable[BottleneckFinding]) -> GaugeMetricFamily:
    """``linescale_bottleneck_active`` for every (resource, kind, severity), zeros included,
    so an alert can compare against 0 instead of relying on absence."""
    counts = dict.fromkeys(product(RESOURCES, KINDS, SEVERITIES), 0)
    for finding in findings:
        counts[(finding.resource, finding.kind, finding.severity)] += 1
    family = _gauge(
        metric_names.BOTTLENECK_ACTIVE,
        "Open bottleneck findings on this node.",
        ["resource", "kind", "severity"],
    )
    for labels, count in counts.items():
        family.add_metric(list(labels), count)
    return family


def _pressure_metrics(
    prefix: str, labels: list[str], rows: Iterable[tuple[list[str], str, Pressure]]
) -> Iterator[Metric]:
    waiting = _counter(
        f"{prefix}_pressure_waiting_seconds_total",
        "PSI 'some': time at least one task stalled on the resource.",
        [*labels, "resource"],
    )
    stalled = _counter(
        f"{prefix}_pressure_stalled_seconds_total",
        "PSI 'full': time all non-idle tasks stalled on the resource.",
        [*labels, "resource"],
    )
    avg10 = _gauge(
        f"{prefix}_pressure_avg10_percent",
        "PSI 10-second average share of time stalled.",
        [*labels, "resource", "degree"],
    )
    for values, resource, pressure in rows:
        waiting.add_metric([*values, resource], pressure.some_total_usec * USEC)
        avg10.add_metric([*values, resource, "some"], pressure.some_avg10)
        if pressure.full_total_usec is not None:
            stalled.add_metric([*values, resource], pressure.full_total_usec * USEC)
        if pressure.full_avg10 is not None:
            avg10.add_metric([*values, resource, "full"], pressure.full_avg10)
    yield from (waiting, stalled, avg10)


def node_metrics(sample: Sample) -> Iterator[Metric]:
    node = sample.node
    cpus = _gauge("linescale_node_cpus", "Online CPUs.")
    cpus.add_metric([], node.cpu_count)
    yield cpus
    if node.cpu is not None:
        cpu = _counter("linescale_node_cpu_seconds_total", "CPU time by mode, all CPUs.", ["mode"])
        for mode in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"):
            cpu.add_metric([mode], getattr(node.cpu, mode))
        yield cpu
    for name, value, doc in (
        ("load1", node.load1, "1-minute load average."),
        ("load5", node.load5, "5-minute load average."),
        ("load15", node.load15, "15-minute load average."),
        ("procs_running", node.procs_running, "Runnable tasks (the run queue)."),
        ("procs_blocked", node.procs_blocked, "Tasks blocked on I/O."),
    ):
        if value is not None:
            gauge = _gauge(f"linescale_node_{name}", doc)
            gauge.add_metric([], value)
            yield gauge
    if node.memory is not None:
        memory = node.memory
        for name, value in (
            ("memory_total_bytes", memory.total_bytes),
            ("memory_available_bytes", memory.available_bytes),
            ("swap_total_bytes", memory.swap_total_bytes),
            ("swap_free_bytes", memory.swap_free_bytes),
        ):
            gauge = _gauge(f"linescale_node_{name}", f"Node {name.replace('_', ' ')}.")
            gauge.add_metric([], value)
            yield gauge
    yield from _pressure_metrics(
        "linescale_node", [], (([], resource, p) for resource, p in node.pressure.items())
    )
    yield from _disk_metrics(sample)
    yield from _network_metrics(sample)
    if node.file_handles is not None:
        allocated = _gauge("linescale_node_file_handles_allocated", "Allocated file handles.")
        allocated.add_metric([], node.file_handles.allocated)
        maximum = _gauge("linescale_node_file_handles_maximum", "System file handle limit.")
        maximum.add_metric([], node.file_handles.maximum)
        yield from (allocated, maximum)


def _disk_metrics(sample: Sample) -> Iterator[Metric]:
    fields = (
        ("reads_completed_total", "Reads completed.", "reads_completed", 1.0),
        ("writes_completed_total", "Writes completed.", "writes_completed", 1.0),
        ("read_bytes_total", "Bytes read.", "read_bytes", 1.0),
        ("written_bytes_total", "Bytes written.", "written_bytes", 1.0),
        ("read_time_seconds_total", "Time spent reading.", "read_time_ms", MS),
        ("write_time_seconds_total", "Time spent writing.", "write_time_ms", MS),
        ("io_time_seconds_total", "Time with I/O in flight (utilisation).", "io_time_ms", MS),
        (
            "io_time_weighted_seconds_total",
            "Weighted time with I/O in flight (queue).",
            "weighted_io_time_ms",
            MS,
        ),
    )
    for suffix, doc, attribute, scale in fields:
        family = _counter(f"linescale_node_disk_{suffix}", doc, ["device"])
        for disk in sample.node.disks:
            family.add_metric([disk.device], getattr(disk, attribute) * scale)
        yield family


def _network_metrics(sample: Sample) -> Iterator[Metric]:
    fields = (
        ("receive_bytes_total", "rx_bytes"),
        ("transmit_bytes_total", "tx_bytes"),
        ("receive_packets_total", "rx_packets"),
        ("transmit_packets_total", "tx_packets"),
        ("receive_errors_total", "rx_errors"),
        ("transmit_errors_total", "tx_errors"),
        ("receive_drops_total", "rx_drops"),
        ("transmit_drops_total", "tx_drops"),
    )
    for suffix, attribute in fields:
        family = _counter(
            f"linescale_node_network_{suffix}", f"Interface {attribute.replace('_', ' ')}.",
            ["interface"],
        )  # fmt: skip
        for net in sample.node.nets:
            family.add_metric([net.interface], getattr(net, attribute))
        yield family
    tcp = sample.node.tcp
    if tcp is not None:
        out = _counter("linescale_node_tcp_out_segments_total", "TCP segments sent.")
        out.add_metric([], tcp.out_segs)
        retrans = _counter(
            "linescale_node_tcp_retransmitted_segments_total", "TCP segments retransmitted."
        )
        retrans.add_metric([], tcp.retrans_segs)
        yield from (out, retrans)


def _workload_labels(ref: ContainerRef | None) -> list[str]:
    if ref is None:
        return ["", "", "", "", ""]
    return [
        ref.namespace,
        ref.pod or ref.pod_uid,
        ref.container,
        ref.pod_uid,
        ref.container_id[:SHORT_ID],
    ]


WORKLOAD_LABELS = ["namespace", "pod", "container", "pod_uid", "container_id"]


def process_metrics(sample: Sample) -> Iterator[Metric]:
    labels = ["pid", "command", *WORKLOAD_LABELS]
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
        "cpu": _counter("linescale_process_cpu_seconds_total", "CPU time (user+system).", labels),
        "cores": _gauge("linescale_process_cpu_cores", "CPU rate over the last sample.", labels),
        "rss": _gauge("linescale_process_resident_memory_bytes", "Resident memory.", labels),
        "read": _counter("linescale_process_read_bytes_total", "Bytes read from storage.", labels),
        "write": _counter("linescale_process_write_bytes_total", "Bytes written.", labels),
        "threads": _gauge("linescale_process_threads", "Threads.", labels),
        "fds": _gauge("linescale_process_open_fds", "Open file descriptors.", labels),
        "max_fds": _gauge("linescale_process_max_fds", "Soft limit on open fds.", labels),
        "ctx": _counter(
            "linescale_process_context_switches_total",
            "Context switches by type.",
            [*labels, "type"],
        ),
    }
    for process in sample.processes:
        values = [str(process.pid), process.comm, *_workload_labels(process.container)]
        families["cpu"].add_metric(values, process.cpu_seconds)
        families["rss"].add_metric(values, process.rss_bytes)
        families["threads"].add_metric(values, process.threads)
        families["ctx"].add_metric([*values, "voluntary"], process.voluntary_ctxt_switches)
        families["ctx"].add_metric([*values, "nonvoluntary"], process.nonvoluntary_ctxt_switches)
        for key, value in (
            ("cores", process.cpu_cores),
            ("read", process.read_bytes),
            ("write", process.write_bytes),
            ("fds", process.fds),
            ("max_fds", process.fd_limit),
        ):
            if value is not None:
                families[key].add_metric(values, value)
    yield from families.values()


def cgroup_metrics(sample: Sample) -> Iterator[Metric]:
    labels = WORKLOAD_LABELS
    families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
        "usage": _counter("linescale_container_cpu_usage_seconds_total", "CPU used.", labels),
        "periods": _counter(
            "linescale_container_cpu_cfs_periods_total", "Enforcement periods.", labels
        ),
        "throttled": _counter(
            "linescale_container_cpu_cfs_throttled_periods_total", "Throttled periods.", labels
        ),
        "throttled_seconds": _counter(
            "linescale_container_cpu_cfs_throttled_seconds_total", "Time throttled.", labels
        ),
        "memory": _gauge("linescale_container_memory_usage_bytes", "memory.current.", labels),
        "limit": _gauge("linescale_container_memory_limit_bytes", "memory.max if set.", labels),
        "oom": _counter("linescale_container_oom_events_total", "memory.events oom.", labels),
        "oom_kill": _counter(
            "linescale_container_oom_kills_total", "memory.events oom_kill.", labels
        ),
    }
    pressure_rows = []
    for cgroup in sample.cgroups:
        values = _workload_labels(cgroup.container)
        for key, value, scale in (
            ("usage", cgroup.usage_usec, USEC),
            ("periods", cgroup.nr_periods, 1.0),
            ("throttled", cgroup.nr_throttled, 1.0),
            ("throttled_seconds", cgroup.throttled_usec, USEC),
            ("memory", cgroup.memory_current_bytes, 1.0),
            ("limit", cgroup.memory_max_bytes, 1.0),
            ("oom", cgroup.oom, 1.0),
            ("oom_kill", cgroup.oom_kill, 1.0),
        ):
            if value is not None:
                families[key].add_metric(values, value * scale)
        pressure_rows += [(values, res, p) for res, p in cgroup.pressure.items()]
    yield from families.values()
    yield from _pressure_metrics("linescale_container", labels, pressure_rows)


class ObservationCollector(Collector):
    """Registered once per agent registry; reads the current ``Observation`` at scrape time."""

    def __init__(self, current: Observation) -> None:
        self._current = current

    def publish(self, observation: Observation) -> None:
        self._current = observation

    def collect(self) -> Iterator[Metric]:
        observation = self._current  # one reference: a consistent view even mid-update
        yield bottleneck_metrics(observation.findings)
        if observation.sample is None:
            return
        yield from node_metrics(observation.sample)
        yield from process_metrics(observation.sample)
        yield from cgroup_metrics(observation.sample)
