"""Exposition: the latest sample becomes well-named metrics, read without touching /proc."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.observe.exposition import Observation, ObservationCollector
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
    ProcessSample,
    Sample,
    TcpCounters,
)
from shared.wire import BottleneckFinding

from messages import finding

POD = ContainerRef(
    pod_uid="259c626d-b908-4b6a-bef7-22a42bc0cf63",
    container_id="9aa1f3e4c42a5ba39614e99148727351fa00ae39bc1fb4400a840b1ddcda31d6",
    runtime="containerd",
    qos="burstable",
    namespace="quality",
    pod="vision-0",
    container="inference",
)


def sample(processes: int = 3) -> Sample:
    node = NodeSample(
        cpu_count=4,
        cpu=CpuTimes(100.0, 1.0, 50.0, 1000.0, 5.0, 1.0, 2.0, 0.0),
        load1=4.5,
        load5=3.0,
        load15=2.0,
        procs_running=9,
        procs_blocked=1,
        memory=Memory(8 * 2**30, 2 * 2**30, 0, 0),
        pressure={
            "cpu": Pressure(42.0, 30.0, 10.0, 5_000_000, 0.0, 0.0, 0.0, 0),
            "io": Pressure(3.0, 2.0, 1.0, 1_000_000, 1.5, 1.0, 0.5, 500_000),
        },
        disks=(DiskCounters("nvme0n1", 10, 20, 4096, 8192, 1500, 2500, 3000, 9000),),
        nets=(NetCounters("eth0", 1000, 2000, 10, 20, 0, 1, 2, 3),),
        tcp=TcpCounters(out_segs=1000, retrans_segs=7),
        file_handles=FileHandles(allocated=3000, maximum=100000),
    )
    procs = tuple(
        ProcessSample(
            pid=100 + index,
            comm=f"worker {index}",
            cpu_seconds=12.5,
            cpu_cores=0.9,
            rss_bytes=2**20,
            threads=4,
            voluntary_ctxt_switches=10,
            nonvoluntary_ctxt_switches=3,
            read_bytes=None,
            write_bytes=5,
            fds=12,
            fd_limit=1024,
            container=POD if index == 0 else None,
        )
        for index in range(processes)
    )
    cgroup = CgroupSample(
        path="/kubepods.slice/x",
        container=POD,
        usage_usec=2_000_000,
        nr_periods=100,
        nr_throttled=30,
        throttled_usec=1_500_000,
        memory_current_bytes=2**29,
        memory_max_bytes=2**30,
        oom=1,
        oom_kill=1,
        pressure={"memory": Pressure(1.0, 1.0, 1.0, 10, 0.5, 0.5, 0.5, 5)},
    )
    return Sample(timestamp=1000.0, node=node, processes=procs, cgroups=(cgroup,))


def scrape(observation: Observation) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    registry = CollectorRegistry()
    registry.register(ObservationCollector(observation))
    text = generate_latest(registry).decode()
    series: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            series.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return series


def test_node_metrics_carry_units_and_counters_end_in_total() -> None:
    series = scrape(Observation(sample=sample()))
    assert series["linescale_node_cpu_seconds_total"][(("mode", "user"),)] == 100.0
    assert series["linescale_node_procs_running"][()] == 9
    assert series["linescale_node_memory_available_bytes"][()] == 2 * 2**30
    assert series["linescale_node_pressure_waiting_seconds_total"][(("resource", "cpu"),)] == 5.0
    assert series["linescale_node_pressure_stalled_seconds_total"][(("resource", "io"),)] == 0.5
    avg10 = series["linescale_node_pressure_avg10_percent"]
    assert avg10[(("degree", "some"), ("resource", "cpu"))] == 42.0
    assert series["linescale_node_disk_io_time_seconds_total"][(("device", "nvme0n1"),)] == 3.0
    assert series["linescale_node_network_transmit_drops_total"][(("interface", "eth0"),)] == 3
    assert series["linescale_node_tcp_retransmitted_segments_total"][()] == 7
    assert series["linescale_node_file_handles_maximum"][()] == 100000


def test_process_series_are_labelled_with_their_pod_and_bounded_by_the_sample() -> None:
    series = scrape(Observation(sample=sample(processes=3)))
    rss = series["linescale_process_resident_memory_bytes"]
    assert len(rss) == 3
    labels = dict(next(key for key in rss if ("pid", "100") in key))
    assert (labels["namespace"], labels["pod"], labels["container"]) == (
        "quality",
        "vision-0",
        "inference",
    )
    assert labels["container_id"] == POD.container_id[:12]
    assert "linescale_process_read_bytes_total" not in series  # unreadable: no series
    assert len(series["linescale_process_write_bytes_total"]) == 3


def test_container_throttling_and_oom_counters() -> None:
    series = scrape(Observation(sample=sample()))
    (key,) = series["linescale_container_cpu_cfs_throttled_periods_total"]
    assert dict(key)["pod"] == "vision-0"
    assert series["linescale_container_cpu_cfs_throttled_periods_total"][key] == 30
    assert series["linescale_container_cpu_cfs_throttled_seconds_total"][key] == 1.5
    assert series["linescale_container_oom_kills_total"][key] == 1


def test_bottleneck_active_has_every_combination_with_zeros() -> None:
    findings = [
        BottleneckFinding.model_validate_json(json.dumps(finding())),
        BottleneckFinding.model_validate_json(json.dumps(finding(subject="node/other"))),
    ]
    series = scrape(Observation(sample=None, findings=findings))["linescale_bottleneck_active"]
    assert len(series) == 5 * 3 * 2
    assert series[(("kind", "saturation"), ("resource", "cpu"), ("severity", "warning"))] == 2
    assert sum(series.values()) == 2


def test_before_the_first_sample_only_bottleneck_metrics_are_served() -> None:
    series = scrape(Observation())
    assert set(series) == {"linescale_bottleneck_active"}


def test_publish_replaces_what_scrapes_see() -> None:
    collector = ObservationCollector(Observation())
    registry = CollectorRegistry()
    registry.register(collector)
    collector.publish(Observation(sample=sample()))
    assert b"linescale_node_load1 4.5" in generate_latest(registry)
