"""Benchmark: the agent's own cost on this machine, at its default collection interval.

Starts ``--processes`` idle processes (so the node has several hundred), then the agent
(``python -m agent``, default settings: 5 s interval, top 20 processes), lets it warm up,
then measures the agent's CPU as % of one core and its RSS over ``--seconds`` while it is
scraped every ``--scrape-interval`` seconds (as Prometheus would), and finally the latency
of ``GET /metrics`` over ``--scrapes`` scrapes 0.2 s apart (p50/p99).

    .venv/bin/python testing/bench/bench_agent_overhead.py --processes 400 --seconds 60
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import psutil

from controller.processes import free_port

from bench_support import percentile, wait_healthy

GOALS = "goals: CPU < 1% of one core, RSS < 80 MB, scrape p99 < 50 ms"


@dataclass(frozen=True, slots=True)
class OverheadFigures:
    """The agent's CPU (% of one core) and RSS over the window, then ``/metrics`` latencies
    (seconds, sorted) and the last exposition's size."""

    node_processes: int
    window_seconds: float
    cpu_percent: float
    rss_bytes: int
    scrape_latencies: list[float]
    exposition_bytes: int


def measure(
    processes: int, seconds: float, warmup: float, scrape_interval: float, scrapes: int
) -> OverheadFigures:
    """Start ``processes`` idle processes and an agent, then measure the agent."""
    idle = [subprocess.Popen(["sleep", str(warmup + seconds + 60)]) for _ in range(processes)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LINESCALE_TOKEN": secrets.token_urlsafe(24),
        "LINESCALE_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "agent", "--listen", f"127.0.0.1:{port}"]
    agent = subprocess.Popen([*command, "--node", "bench", "--zone", "a"], env=env)
    try:
        wait_healthy(url)
        time.sleep(warmup)
        process = psutil.Process(agent.pid)
        node_processes = len(psutil.pids())

        def scrape() -> tuple[float, int]:
            begin = time.perf_counter()
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
                size = len(response.read())
            return time.perf_counter() - begin, size

        cpu_before = process.cpu_times()
        started = time.monotonic()
        next_scrape = started
        while time.monotonic() - started < seconds:
            if time.monotonic() >= next_scrape:
                scrape()
                next_scrape += scrape_interval
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu_after = process.cpu_times()
        rss = process.memory_info().rss
        busy = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)

        latencies = []
        size = 0
        for _ in range(scrapes):
            latency, size = scrape()
            latencies.append(latency)
            time.sleep(0.2)
        return OverheadFigures(
            node_processes, elapsed, 100 * busy / elapsed, rss, sorted(latencies), size
        )
    finally:
        agent.terminate()
        agent.wait(timeout=15)
        for sleeper in idle:
            sleeper.kill()
        for sleeper in idle:
            sleeper.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=400, help="idle processes to add")
    parser.add_argument("--seconds", type=float, default=60.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds before measuring")
    parser.add_argument("--scrape-interval", type=float, default=15.0)
    parser.add_argument("--scrapes", type=int, default=100, help="for the latency figure")
    args = parser.parse_args()

    figures = measure(args.processes, args.seconds, args.warmup, args.scrape_interval, args.scrapes)
    latencies = figures.scrape_latencies
    print(f"node processes: {figures.node_processes}; CPU window {figures.window_seconds:.0f}s")
    print(
        f"agent CPU: {figures.cpu_percent:.2f}% of one core "
        f"(sampling every 5 s, scraped every {args.scrape_interval:g} s)"
    )
    print(f"agent RSS: {figures.rss_bytes / 1e6:.1f} MB")
    print(
        f"/metrics over {args.scrapes} scrapes: p50 {percentile(latencies, 0.5) * 1e3:.1f} ms,"
        f" p99 {percentile(latencies, 0.99) * 1e3:.1f} ms, {figures.exposition_bytes / 1e3:.0f} kB"
    )
    print(GOALS)


if __name__ == "__main__":
    main()
