"""``linescale report resources --prometheus`` against a real Prometheus.

Prometheus scrapes, every second, a synthetic ``/metrics`` holding both metric sets the report
reads: cAdvisor and kube-state-metrics names for a two-pod Deployment (with requests, limits and
an OOM kill), the Linescale agent's names for a StatefulSet pod, and a container in a namespace
the report is not asked about. CPU counters grow at known rates, so the recommendations can be
computed by hand (see ``test_report_recommends_from_prometheus_history``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from demand_exporter import serve_exposition
from services import PrometheusFactory, PrometheusServer

pytestmark = pytest.mark.services

MIB = 2**20
GIB = 2**30
CHECKOUT_PODS = ("checkout-7d9f8b6c5-x2k4q", "checkout-7d9f8b6c5-b7rzm")
# CPU rates sit mid-bucket in VPA's CPU histogram (first bucket 0.01 cores, each 5 % wider:
# bucket n spans 0.2 x (1.05^n - 1) .. 0.2 x (1.05^(n+1) - 1) cores), so scrape jitter of a few
# per cent cannot move the 90th percentile to another bucket.
CHECKOUT_CORES = 0.494  # bucket 25: [0.47727, 0.51114)
LEDGER_CORES = 0.205  # bucket 14: [0.19598, 0.21579)
CHECKOUT_MEMORY = 600 * MIB
LEDGER_MEMORY = 300 * MIB
CHECKOUT_REQUEST_CORES = 1.0
CHECKOUT_REQUEST_MEMORY = GIB
CHECKOUT_LIMIT_MEMORY = GIB
HISTORY_SECONDS = 20  # samples Prometheus must hold before the report runs


def exposition(elapsed: float) -> str:
    lines = ["# TYPE container_cpu_usage_seconds_total counter"]
    for pod in CHECKOUT_PODS:
        labels = f'namespace="shop",pod="{pod}",container="app",id="/kubepods/{pod}"'
        lines.append(f"container_cpu_usage_seconds_total{{{labels}}} {CHECKOUT_CORES * elapsed}")
    # The pod-level cgroup (container="") must not count as a container.
    lines.append(
        f'container_cpu_usage_seconds_total{{namespace="shop",pod="{CHECKOUT_PODS[0]}",'
        f'container="",id="/kubepods/pod"}} {5 * elapsed}'
    )
    lines.append("# TYPE container_memory_working_set_bytes gauge")
    lines += [
        f'container_memory_working_set_bytes{{namespace="shop",pod="{pod}",container="app"}} '
        f"{CHECKOUT_MEMORY}"
        for pod in CHECKOUT_PODS
    ]
    lines.append("# TYPE kube_pod_container_resource_requests gauge")
    lines.append("# TYPE kube_pod_container_resource_limits gauge")
    for pod in CHECKOUT_PODS:
        common = f'namespace="shop",pod="{pod}",container="app",node="n1"'
        lines += [
            f'kube_pod_container_resource_requests{{{common},resource="cpu",unit="core"}} '
            f"{CHECKOUT_REQUEST_CORES}",
            f'kube_pod_container_resource_requests{{{common},resource="memory",unit="byte"}} '
            f"{CHECKOUT_REQUEST_MEMORY}",
            f'kube_pod_container_resource_limits{{{common},resource="memory",unit="byte"}} '
            f"{CHECKOUT_LIMIT_MEMORY}",
        ]
    lines.append("# TYPE kube_pod_container_status_last_terminated_reason gauge")
    lines.append(
        f'kube_pod_container_status_last_terminated_reason{{namespace="shop",'
        f'pod="{CHECKOUT_PODS[0]}",container="app",reason="OOMKilled"}} 1'
    )
    agent = 'namespace="shop",pod="ledger-0",container="app",pod_uid="u",container_id="c"'
    elsewhere = 'namespace="other",pod="batch-0",container="app",pod_uid="v",container_id="d"'
    lines.append("# TYPE linescale_container_cpu_usage_seconds_total counter")
    lines.append(f"linescale_container_cpu_usage_seconds_total{{{agent}}} {LEDGER_CORES * elapsed}")
    lines.append(f"linescale_container_cpu_usage_seconds_total{{{elsewhere}}} {elapsed}")
    lines.append("# TYPE linescale_container_memory_usage_bytes gauge")
    lines.append(f"linescale_container_memory_usage_bytes{{{agent}}} {LEDGER_MEMORY}")
    lines.append(f"linescale_container_memory_usage_bytes{{{elsewhere}}} {GIB}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def synthetic_target() -> Iterator[str]:
    started = time.time()

    exporter = serve_exposition(lambda: exposition(time.time() - started).encode())
    try:
        yield exporter.address
    finally:
        exporter.close()


def wait_for_history(prometheus: PrometheusServer, seconds: int) -> None:
    prometheus.wait_for_targets_up("synthetic")
    series = 'linescale_container_cpu_usage_seconds_total{pod="ledger-0"}'
    promql = f"count_over_time({series}[{seconds + 5}s])"
    deadline = time.monotonic() + seconds + 30
    while True:
        result = prometheus.query(promql)
        if result and float(result[0]["value"][1]) >= seconds:
            return
        assert time.monotonic() < deadline, result
        time.sleep(0.5)


def linescale(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as an operator runs it (stderr is a pipe, not a TTY)."""
    binary = str(Path(sys.executable).parent / "linescale")
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_report_recommends_from_prometheus_history(
    prometheus_factory: PrometheusFactory, synthetic_target: str, tmp_path: Path
) -> None:
    prometheus = prometheus_factory({"synthetic": [synthetic_target]}, scrape_interval="1s")
    wait_for_history(prometheus, HISTORY_SECONDS)
    chart = tmp_path / "resources.svg"

    # 1. Engine defaults: 2 minutes is far below the 24 h it needs. The report still runs,
    #    warns, prints a row per container (none from namespace "other"), and charts them.
    table = linescale(
        "report", "resources", "--prometheus", prometheus.url, "--namespace", "shop",
        "--history", "2m", "--chart", str(chart),
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "warning: history of 120s is shorter than 24h" in table.stderr
    assert "linescale report: [1/7] querying CPU usage" in table.stderr  # plain lines, no TTY
    rows = {tuple(line.split()[:3]) for line in table.stdout.splitlines()[1:] if line}
    assert ("shop/checkout", "app", "2") in rows
    assert ("shop/ledger", "app", "1") in rows
    assert "other/" not in table.stdout
    assert "2 of 2 containers have no recommendation" in table.stdout
    assert "< 24h required" in table.stdout
    svg = ET.parse(chart).getroot()
    titles = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {
        "shop/checkout: cpu per pod (cores)",
        "shop/checkout: memory per pod (GiB)",
        "shop/ledger: cpu per pod (cores)",
        "shop/ledger: memory per pod (GiB)",
    } <= titles

    # 2. A policy that accepts seconds of history: recommendations to check by hand.
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"minHistoryHours": 5 / 3600, "minPoints": 5}))
    answer = linescale(
        "report", "resources", "--prometheus", prometheus.url, "--namespace", "shop",
        "--history", "2m", "--step", "1s", "--rate-window", "4s", "--policy", str(policy),
        "--format", "json",
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    report = json.loads(answer.stdout)
    by_workload = {row["workload"]: row for row in report["containers"]}
    assert by_workload.keys() == {"checkout", "ledger"}
    checkout, ledger = by_workload["checkout"], by_workload["ledger"]
    assert (checkout["pods"], ledger["pods"]) == (2, 1)
    # Requests and limits from kube-state-metrics (the agent knows neither for ledger).
    assert (checkout["cpuRequest"], checkout["memoryRequest"]) == ("1", "1Gi")
    assert checkout["memoryLimit"] == "1Gi"
    assert ledger["cpuRequest"] is None
    # CPU target = P90 (the end of the bucket holding every settled sample) x 1.15, rounded
    # up to 5m: 0.51114 x 1.15 = 0.5878 -> 590m; 0.21579 x 1.15 = 0.2482 -> 250m.
    assert (checkout["cpuTarget"], ledger["cpuTarget"]) == ("590m", "250m")
    # Memory: ledger's peak x 1.15 = 345 MiB. Checkout OOM-killed at its 1 GiB limit: VPA's
    # bump max(1024 + 100, 1024 x 1.2) MiB = 1228.8 MiB wins over 600 x 1.15, rounded up: 1229Mi.
    assert (checkout["memoryTarget"], ledger["memoryTarget"]) == ("1229Mi", "345Mi")
    assert checkout["floors"] == ["oom"]
    # Waste over both checkout pods: (1 - 0.59) x 2 = 0.82 cores; (1024 - 1229) MiB x 2 short.
    assert checkout["wasteCores"] == pytest.approx(0.82)
    assert checkout["wasteBytes"] == -410 * MIB
    hourly = 0.82 * 0.031611 - 410 / 1024 * 0.004237
    assert checkout["wastePerHour"] == pytest.approx(hourly)
    assert report["savings"]["netPerHour"] == pytest.approx(hourly)  # ledger has no request
    assert report["savings"]["underBytes"] == 410 * MIB


def test_report_exits_1_when_prometheus_is_unreachable(tmp_path: Path) -> None:
    result = linescale(
        "report", "resources", "--prometheus", "http://127.0.0.1:9", "--history", "1h",
        "--timeout", "2s",
    )  # fmt: skip
    assert result.returncode == 1
    assert "unreachable or failing" in result.stderr
