"""Benchmark: one service's routing decision (``compute_routing``), in-process, no servers.

Builds (seeded) ``--endpoints`` endpoints over three zones and two priorities (80 % at
priority 0), about 5 % unhealthy, a few degraded, and ages spread over the slow-start
window; callers in every zone, slow start on (60 s window). The timed call is what the
LoadBalancingEngine runs per service and caller zone each pass: priority load with panic,
zone-aware shares and slow-start weights. Prints p50/p99 per decision.

    .venv/bin/python testing/bench/bench_routing_decision.py --endpoints 100
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

from controller.engines.balancing.routing import Endpoint, RoutingPolicy, compute_routing
from controller.engines.balancing.slow_start import SlowStartSettings

from bench_support import percentile

ZONES = ("a", "b", "c")
GOAL_SECONDS = 0.010  # one decision for 100 endpoints in under 10 ms


@dataclass(frozen=True, slots=True)
class RoutingFigures:
    """Per-decision seconds, sorted."""

    endpoints: int
    samples: list[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 0.99)


def make_endpoints(count: int, seed: int) -> list[Endpoint]:
    rng = random.Random(seed)
    return [
        Endpoint(
            address=f"10.{index // 250}.{index % 250}.1:8080",
            zone=ZONES[index % len(ZONES)],
            region="eu",
            priority=0 if index < count * 0.8 else 1,
            healthy=rng.random() > 0.05,
            weight=rng.choice((1, 1, 2, 3)),
            age_seconds=rng.uniform(0, 120),
            degraded=rng.random() < 0.02,
        )
        for index in range(count)
    ]


def measure(endpoint_count: int, decisions: int, seed: int) -> RoutingFigures:
    """Time ``decisions`` decisions, the caller zone cycling through the three zones."""
    endpoints = make_endpoints(endpoint_count, seed)
    callers = {zone: 10 + 5 * index for index, zone in enumerate(ZONES)}
    policy = RoutingPolicy(slow_start=SlowStartSettings(window_seconds=60))
    clock = time.perf_counter
    samples = []
    for index in range(decisions):
        started = clock()
        compute_routing(endpoints, callers, ZONES[index % len(ZONES)], policy)
        samples.append(clock() - started)
    return RoutingFigures(endpoint_count, sorted(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--decisions", type=int, default=3000, help="timed decisions")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = measure(args.endpoints, args.decisions, args.seed)
    print(
        f"endpoints {args.endpoints}, 3 zones, 2 priorities, slow start on, "
        f"{args.decisions} decisions"
    )
    print(f"per decision   p50 {figures.p50 * 1e3:8.3f} ms   p99 {figures.p99 * 1e3:8.3f} ms")
    verdict = "met" if figures.p99 < GOAL_SECONDS else "NOT met"
    print(f"goal: p99 under {GOAL_SECONDS * 1e3:.0f} ms -> {verdict}")


if __name__ == "__main__":
    main()
