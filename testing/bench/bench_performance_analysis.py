"""Benchmark: the PerformanceEngine's per-service analysis for many services, no servers.

Builds ``--services`` services (seeded) seen by ``--agents`` agents, each service on two
endpoints per agent, and SLO histories already holding six hours of 10 s passes (the longest
burn-rate window full). One timed pass is what the engine does each cycle: difference the
agents' cumulative counters (``service_snapshots``), then rate, error ratio, latency,
saturation and the four burn-rate windows with the alert rule (``analyse``). Reports are
parsed once, outside the timing, as the controller's registry holds them already parsed.

    .venv/bin/python testing/bench/bench_performance_analysis.py --services 1000
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

from controller.engines.performance.analysis import (
    CounterHistory,
    SloPolicy,
    analyse,
    service_snapshots,
)
from shared.wire import AgentReport, Capacity, EndpointStats

from bench_support import percentile

NOW = 1_700_000_000.0
INTERVAL = 10.0
GOAL_SECONDS = 0.050  # 1,000 services in under 50 ms


def make_reports(services: int, agents: int, seed: int, step: int) -> list[AgentReport]:
    rng = random.Random(seed)
    reports = []
    for agent in range(agents):
        stats = [
            EndpointStats(
                service=f"svc-{index}",
                address=f"10.{index // 250}.{index % 250}.{endpoint + 1}:8080",
                ewma_latency_ms=rng.uniform(1, 80),
                in_flight=rng.randint(0, 20),
                requests=1000 * step + rng.randint(0, 50),
                errors=step * rng.choice((0, 0, 0, 1, 5)),
            )
            for index in range(services)
            for endpoint in range(2)
        ]
        reports.append(
            AgentReport(
                node=f"node-{agent}",
                zone="a",
                endpoint=f"http://10.9.0.{agent + 1}:9400",
                sent_at=NOW,
                sequence=step,
                health="ok",
                capacity=Capacity(cpu_cores=8, memory_bytes=2**34),
                dataplane=stats,
            )
        )
    return reports


@dataclass(frozen=True, slots=True)
class AnalysisFigures:
    """Per timed pass, in seconds, sorted: the counter deltas, the analysis, and both."""

    services: int
    agents: int
    history_passes: int
    snapshots: list[float]
    analyse: list[float]
    totals: list[float]
    paging: int

    @property
    def median_pass(self) -> float:
        return percentile(self.totals, 0.5)


def measure(services: int, agents: int, rounds: int, seed: int) -> AnalysisFigures:
    """Time ``rounds`` engine passes over ``services`` services with six hours of history."""
    histories: dict[str, CounterHistory] = {}
    passes = int(21600 / INTERVAL)
    for index in range(services):
        history = histories[f"svc-{index}"] = CounterHistory()
        for i in range(passes):
            history.record(NOW - (passes - i) * INTERVAL, 2000, i % 3)
    reports_by_step = [make_reports(services, agents, seed, step) for step in (1, 2)]
    counters: dict[tuple[str, str, str], tuple[int, int]] = {}
    snapshots_s: list[float] = []
    analyse_s: list[float] = []
    paging = 0
    clock = time.perf_counter
    for round_index in range(rounds):
        reports = reports_by_step[round_index % 2]
        now = NOW + round_index * INTERVAL
        started = clock()
        snapshots, counters = service_snapshots(counters, reports, INTERVAL, limit_per_agent=64)
        middle = clock()
        results = analyse(snapshots, histories, now, SloPolicy())
        ended = clock()
        snapshots_s.append(middle - started)
        analyse_s.append(ended - middle)
        paging = sum(1 for r in results.values() if r.burn.alert == "page")
    return AnalysisFigures(
        services=services,
        agents=agents,
        history_passes=passes,
        snapshots=sorted(snapshots_s),
        analyse=sorted(analyse_s),
        totals=sorted(s + a for s, a in zip(snapshots_s, analyse_s, strict=True)),
        paging=paging,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=1, help="agents reporting every service")
    parser.add_argument("--rounds", type=int, default=20, help="timed passes")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    figures = measure(args.services, args.agents, args.rounds, args.seed)
    endpoints = args.services * 2 * args.agents
    totals = figures.totals
    print(
        f"services {args.services}, agents {args.agents}, endpoint stats {endpoints}, "
        f"history {figures.history_passes} passes per service"
    )
    print(f"snapshots (counter deltas)  median {percentile(figures.snapshots, 0.5) * 1e3:7.2f} ms")
    print(f"analyse (rates, burn, alert) median {percentile(figures.analyse, 0.5) * 1e3:7.2f} ms")
    print(
        f"one pass                    median {figures.median_pass * 1e3:7.2f} ms   "
        f"worst {totals[-1] * 1e3:7.2f} ms   ({figures.paging} services paging)"
    )
    verdict = "met" if figures.median_pass < GOAL_SECONDS else "NOT met"
    print(f"goal: {args.services} services in under {GOAL_SECONDS * 1e3:.0f} ms -> {verdict}")


if __name__ == "__main__":
    main()
