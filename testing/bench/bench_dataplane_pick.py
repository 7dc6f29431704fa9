"""Benchmark: cost of one endpoint pick over 100 endpoints, for each policy.

In-process, no I/O: ``Balancer.pick`` over 100 endpoints in 3 zones, with and without the
caller zone's ``zone_shares`` and with equal or unequal weights. Goal: < 20 us per pick.

    .venv/bin/python testing/bench/bench_dataplane_pick.py --picks 200000
"""

from __future__ import annotations

import argparse
import random
import time
from typing import get_args

from agent.dataplane.balancer import Balancer, Policy, RouteShape, Upstream
from agent.dataplane.ewma import PeakEwma

from bench_support import percentile

ZONE_SHARES = {"a": {"a": 0.6, "b": 0.3, "c": 0.1}}


def endpoints(count: int, equal_weights: bool, rng: random.Random) -> list[Upstream]:
    built = []
    for index in range(count):
        ewma = PeakEwma(0.0)
        ewma.observe(rng.uniform(0.001, 0.050), 0.0)
        upstream = Upstream(
            f"10.0.{index // 250}.{index % 250}:8080",
            ewma,
            zone="abc"[index % 3],
            weight=100 if equal_weights else rng.randint(1, 1000),
        )
        upstream.in_flight = rng.randint(0, 5)
        built.append(upstream)
    return built


def bench(policy: Policy, zoned: bool, equal: bool, picks: int, count: int) -> list[float]:
    rng = random.Random(42)
    shape = RouteShape(policy=policy, own_zone="a", zone_shares=ZONE_SHARES if zoned else None)
    balancer = Balancer(shape, endpoints(count, equal, rng), rng)
    clock = time.perf_counter
    samples = []
    now = 0.0
    for _ in range(picks):
        now += 0.001  # decays run as in real traffic
        started = clock()
        balancer.pick(now)
        samples.append(clock() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--picks", type=int, default=200_000, help="picks per case")
    parser.add_argument("--endpoints", type=int, default=100)
    args = parser.parse_args()
    print(f"{args.endpoints} endpoints, {args.picks} picks per case (goal: < 20 us per pick)")
    for policy in get_args(Policy):
        for zoned in (False, True):
            for equal in (True, False):
                samples = bench(policy, zoned, equal, args.picks, args.endpoints)
                ordered = sorted(samples)
                mean = sum(samples) / len(samples)
                label = f"{policy:14s} {'zone shares' if zoned else 'whole level':11s} "
                label += "equal weights  " if equal else "mixed weights  "
                p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
                print(
                    f"{label} mean {mean * 1e6:6.2f} us   p50 {p50 * 1e6:6.2f} us"
                    f"   p99 {p99 * 1e6:6.2f} us"
                )


if __name__ == "__main__":
    main()
