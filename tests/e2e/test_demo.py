"""``linescale demo`` end to end: real child processes (agents, line-service replicas), load
through the agents' dataplanes, a summary, a report folder, and nothing left behind."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from controller.demo.fleet import scrape_config

from demo_contract import SUMMARY_CONTRACT, conforms
from services import PrometheusFactory, RedisServer, http_json

pytestmark = pytest.mark.timeout(120)

LINESCALE = str(Path(sys.executable).parent / "linescale")
MARKER = "DEMO_TEST_MARKER"  # outside the LINESCALE_ prefix, so never read as configuration
CHARTS = ("load_replicas.svg", "latency.svg", "cache_hit_ratio.svg")
# What the validation runner reads, and what only a real run has: the warm hit ratio and the
# harness health.
CONTRACT = {
    **SUMMARY_CONTRACT,
    "cache": {"hits": int, "misses": int, "hit_ratio": float, "warm_hit_ratio": float},
    "harness": {
        "generator_in_own_process": bool,
        "controller_loop_lag_ms": {"p99": float, "max": float},
        "cpu_percent": {"mean": float},
        "engine_passes": {"scalability": {"passes": int}},
    },
}


def demo_children(marker: str, demo_pid: int = 0) -> list[psutil.Process]:
    """Processes carrying this run's marker in their environment: the demo's children
    inherit it, and nothing else on the machine (other tests, other runs) has it."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.pid != demo_pid and process.environ().get(MARKER) == marker:
                found.append(process)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def demo_env(marker: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LINESCALE_")}
    return {**base, MARKER: marker}


def read_summary(report: Path) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads((report / "summary.json").read_text())
    return summary


def test_shift_change_scales_writes_the_report_and_leaves_no_process(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    report = tmp_path / "report"
    result = subprocess.run(
        [LINESCALE, "demo", "--duration", "25", "--no-tty", "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=100,
        env=demo_env(marker),
        check=False,
    )
    shown = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, shown
    assert "summary: shift-change" in result.stdout, shown
    assert f"report:        {report}/README.md" in result.stdout, shown
    assert "scalability local/line-service" in result.stdout, shown  # decisions as they happen
    for name in ("README.md", "summary.json", *CHARTS):
        assert (report / name).is_file(), name
    summary = read_summary(report)
    assert conforms(summary, CONTRACT), json.dumps(summary, indent=1)
    assert summary["requests"]["total"] > 0, shown
    assert summary["requests"]["success_ratio"] >= 0.99, shown
    assert summary["scaling"]["actions"] >= 1, shown
    assert summary["scaling"]["max_replicas"] > summary["scaling"]["min_replicas"], shown
    assert summary["cache"]["hits"] > 0, shown
    assert any(d["engine"] == "scalability" for d in summary["decisions"]), shown
    assert summary["processes"]["needed_sigkill"] == [], shown
    assert demo_children(marker) == [], shown


def wait_for_line(demo: subprocess.Popen[str], text: str, within: float) -> list[str]:
    """Lines of the demo's stdout up to (and with) the first containing ``text``."""
    assert demo.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(demo.stdout, selectors.EVENT_READ)
    seen: list[str] = []
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = demo.stdout.readline()
            if not line:
                break
            seen.append(line)
            if text in line:
                return seen
    raise AssertionError(f"no {text!r} within {within}s; saw:\n{''.join(seen)}")


def test_ctrl_c_ends_early_with_summary_report_and_no_process(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    report = tmp_path / "report"
    with subprocess.Popen(
        [LINESCALE, "demo", "--duration", "60", "--no-tty", "--report", str(report)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=demo_env(marker),
    ) as demo:
        wait_for_line(demo, "sending load", 40)
        assert len(demo_children(marker, demo.pid)) >= 6  # 3 agents and 3 replicas at least
        time.sleep(4)
        demo.send_signal(signal.SIGINT)  # as Ctrl-C
        out, err = demo.communicate(timeout=40)
    assert demo.returncode == 0, err
    assert "summary: shift-change" in out
    assert "interrupted" in out
    summary = read_summary(report)
    assert summary["interrupted"] is True
    assert summary["requests"]["total"] > 0
    assert summary["wall_seconds"] < 30
    assert demo_children(marker) == []


def test_unknown_pattern_exits_2_naming_the_choices(tmp_path: Path) -> None:
    result = subprocess.run(
        [LINESCALE, "demo", "--pattern", "lunch-break", "--report", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    for name in ("lunch-break", "shift-change", "slow-replica", "noisy-neighbour", "flash-crowd"):
        assert name in result.stderr, name
    assert not (tmp_path / "r").exists()


@pytest.mark.services
def test_with_prometheus_and_redis_it_scales_from_prometheus_and_reads_parts_from_l2(
    tmp_path: Path, prometheus_factory: PrometheusFactory, redis_server: RedisServer
) -> None:
    report = tmp_path / "report"
    report.mkdir()
    targets = report / "prometheus-targets.json"
    prometheus = prometheus_factory({})
    # The snippet the demo prints is what this Prometheus runs: it must be valid config.
    config = yaml.safe_load(prometheus.config_path.read_text())
    config["scrape_configs"] = yaml.safe_load(scrape_config(targets))["scrape_configs"]
    prometheus.config_path.write_text(yaml.safe_dump(config))
    http_json("POST", f"{prometheus.url}/-/reload")
    marker = uuid.uuid4().hex

    result = subprocess.run(
        [
            *(LINESCALE, "demo", "--duration", "30", "--no-tty", "--report", str(report)),
            *("--prometheus", prometheus.url, "--redis", redis_server.url),
        ],
        capture_output=True,
        text=True,
        timeout=100,
        env=demo_env(marker),
        check=False,
    )

    shown = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, shown
    assert "file_sd_configs" in result.stdout, shown
    assert str(targets) in result.stdout, shown
    groups = json.loads(targets.read_text())  # left in place after the run
    assert [group["labels"]["job"] for group in groups] == ["linescale-agents", "line-service"]
    summary = read_summary(report)
    assert summary["requests"]["success_ratio"] >= 0.99, shown
    assert summary["scaling"]["actions"] >= 1, shown  # decided from Prometheus's figures
    assert summary["scaling"]["max_replicas"] > summary["scaling"]["min_replicas"], shown
    # Every replica that ran was scraped, those the scale-out started too; a replica gone
    # from the file is stale now, so look back over the run.
    scraped = prometheus.query('max by (instance) (max_over_time(up{job="line-service"}[10m]))')
    up = sum(1 for series in scraped if series["value"][1] == "1")
    assert up >= summary["scaling"]["max_replicas"], shown
    cache = summary["cache"]
    assert cache["l2_hits"] > 0, shown  # a part one node fetched, another read from Redis
    assert cache["hits"] == cache["l1_hits"] + cache["l2_hits"], shown
    assert demo_children(marker) == [], shown
