"""Benchmark: one full ResourceCycle for 10,000 containers on 1,000 nodes, in-process.

Builds (seeded) three node pools (m5.xlarge x 400, c5.2xlarge x 300, r5.xlarge x 300 with
their on-demand prices), ``--containers`` containers as two per workload with 1-3 replicas,
requests sized to fill about 70 % of the pools, and 8 days of hourly usage per container
(192 samples: a daily cycle at 15-60 % of the request, noise, a few OOM and throttling
events), plus 28 days of hourly totals per pool for the capacity forecasts. The timed call
is ``ResourceCycle.run``: right-sizing, efficiency, bin-packing and forecasts.

    .venv/bin/python testing/bench/bench_resource_cycle.py --containers 10000 --nodes 1000
    .venv/bin/python testing/bench/bench_resource_cycle.py --profile   # where the time goes
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from dataclasses import dataclass

import numpy as np

from controller.engines.resources.capacity import INSTANCE_TYPE_LABEL, Node, PoolHistory
from controller.engines.resources.engine import (
    CycleContainer,
    CycleInput,
    CycleResult,
    ResourceCycle,
)
from controller.engines.resources.rightsizing import (
    ContainerUsage,
    OomEvent,
    ThrottleEvent,
    UsageSeries,
)
from controller.ports import Resources

NOW = 1_700_006_400.0  # a midnight UTC
HOUR = 3600.0
DAY = 86_400.0
GIB = 2**30
GOAL_SECONDS = 5.0
SEED_GOAL_SECONDS = 30.0
# (instance type, share of the nodes, allocatable millicores, allocatable bytes, $/hour)
POOLS = (
    ("m5.xlarge", 0.4, 3920, 14 * GIB, 0.192),
    ("c5.2xlarge", 0.3, 7910, 14 * GIB, 0.34),
    ("r5.xlarge", 0.3, 3920, 30 * GIB, 0.252),
)


def make_input(containers: int, nodes: int, seed: int) -> CycleInput:
    rng = np.random.default_rng(seed)
    node_list: list[Node] = []
    pool_capacity: dict[str, tuple[int, int]] = {}
    for name, share, node_cpu, node_memory, _ in POOLS:
        count = round(nodes * share)
        pool_capacity[name] = (count * node_cpu, count * node_memory)
        node_list += [
            Node(f"{name}-{i}", {INSTANCE_TYPE_LABEL: name}, node_cpu, node_memory)
            for i in range(count)
        ]
    prices = {name: price for name, _, _, _, price in POOLS}
    hours = (NOW - 8 * DAY + HOUR * np.arange(192)).astype(np.float64)
    daily = 0.5 + 0.5 * np.sin(2 * np.pi * (hours % DAY) / DAY)
    workloads = containers // 2
    pool_of = rng.choice(len(POOLS), size=workloads, p=[p[1] for p in POOLS])
    replicas = rng.integers(1, 4, size=workloads)
    pods_per_pool = np.bincount(pool_of, weights=replicas, minlength=len(POOLS))
    items: list[CycleContainer] = []
    for w in range(workloads):
        name = POOLS[pool_of[w]][0]
        cpu_total, memory_total = pool_capacity[name]
        pods = pods_per_pool[pool_of[w]]
        for c in range(2):
            share = 0.7 * (0.75 if c == 0 else 0.25) * rng.uniform(0.5, 1.5)
            cpu_request = max(10, int(cpu_total / pods * share))
            memory_request = max(2**24, int(memory_total / pods * share))
            level = rng.uniform(0.15, 0.6)
            cpu = cpu_request / 1000 * level * (0.4 + 0.6 * daily) * rng.uniform(0.9, 1.1, 192)
            memory = memory_request * level * (0.8 + 0.2 * daily) * rng.uniform(0.97, 1.03, 192)
            ooms = (OomEvent(NOW - 2 * DAY, memory_request),) if rng.random() < 0.01 else ()
            throttles = (
                (ThrottleEvent(NOW - DAY, 0.3, float(cpu.max())),) if rng.random() < 0.02 else ()
            )
            usage = ContainerUsage(
                f"ns-{w % 40}",
                f"workload-{w}",
                f"c{c}",
                Resources(cpu_request, memory_request),
                Resources(cpu_request * 2, memory_request),
                UsageSeries(hours.copy(), cpu, memory),
                ooms,
                throttles,
                containers_in_pod=2,
            )
            items.append(CycleContainer(usage, name, int(replicas[w])))
    history_hours = (NOW - 28 * DAY + HOUR * np.arange(28 * 24)).astype(np.float64)
    shape = 1 + 0.1 * np.sin(2 * np.pi * (history_hours % DAY) / DAY)
    growth = 1 + 0.004 * (history_hours - history_hours[0]) / DAY
    histories = []
    for name, _, _, _, _ in POOLS:
        cpu_total, memory_total = pool_capacity[name]
        histories.append(
            PoolHistory(
                name,
                history_hours,
                0.7 * cpu_total * growth,
                0.7 * memory_total * growth,
                0.25 * cpu_total * growth * shape,
                0.3 * memory_total * growth * shape,
            )
        )
    return CycleInput(NOW, tuple(items), tuple(node_list), prices, (), tuple(histories))


def summarise(result: CycleResult) -> None:
    defined = sum(r.defined for r in result.recommendations)
    print(f"recommendations: {defined} of {len(result.recommendations)} defined")
    for plan in result.plans:
        print(
            f"pool {plan.pool:11s} today {plan.nodes_today:4d} nodes {plan.cost_today:7.2f}/h | "
            f"consolidated {plan.consolidated.node_count:4d} "
            f"{plan.consolidated.cost_per_hour:7.2f}/h | right-sized FFD "
            f"{plan.baseline.node_count:4d} {plan.baseline.cost_per_hour:7.2f}/h, best "
            f"{plan.rightsized.node_count:4d} {plan.rightsized.cost_per_hour:7.2f}/h "
            f"({plan.rightsized.strategy})"
        )
    for goal in result.efficiency.goals:
        print(
            f"pool {goal.pool:11s} cost efficiency {goal.cost_efficiency or 0:.1%} "
            f"waste {goal.waste_share or 0:.1%} (goals met: {goal.efficiency_goal_met}, "
            f"{goal.waste_goal_met})"
        )
    for forecast in result.forecasts:
        print(
            f"pool {forecast.pool:11s} runs out {forecast.run_out_date} "
            f"({forecast.run_out_resource}); nodes needed in {forecast.horizon_days:g} d: "
            f"{forecast.nodes_needed} (now {forecast.nodes_now})"
        )


@dataclass(frozen=True, slots=True)
class CycleFigures:
    """Each timed round's seconds, the last result, and the input's size."""

    totals: list[float]
    result: CycleResult
    containers: int
    pods: int
    nodes: int


def measure(containers: int, nodes: int, rounds: int, seed: int) -> CycleFigures:
    """Time ``rounds`` full cycles over one seeded input."""
    inputs = make_input(containers, nodes, seed)
    cycle = ResourceCycle()
    totals: list[float] = []
    result = None
    for _ in range(rounds):
        started = time.perf_counter()
        result = cycle.run(inputs)
        totals.append(time.perf_counter() - started)
    assert result is not None
    pods = sum(item.replicas for item in inputs.containers) // 2
    return CycleFigures(totals, result, len(inputs.containers), pods, len(inputs.nodes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (best is kept)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="print the top of a profile")
    args = parser.parse_args()

    if args.profile:
        inputs = make_input(args.containers, args.nodes, args.seed)
        profiler = cProfile.Profile()
        profiler.enable()
        ResourceCycle().run(inputs)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return
    figures = measure(args.containers, args.nodes, args.rounds, args.seed)
    print(
        f"containers {figures.containers}, pods {figures.pods}, nodes {figures.nodes}, "
        f"192 hourly samples per container, 3 pools, 28 d pool history, 30 d horizon"
    )
    summarise(figures.result)
    best, worst = min(figures.totals), max(figures.totals)
    print(f"cycle: best {best:.2f} s, worst {worst:.2f} s over {args.rounds} rounds")
    verdict = "met" if best < GOAL_SECONDS else "NOT met"
    seed_verdict = "met" if best < SEED_GOAL_SECONDS else "NOT met"
    print(
        f"goal: under {GOAL_SECONDS:g} s -> {verdict}; "
        f"seed goal under {SEED_GOAL_SECONDS:g} s -> {seed_verdict}"
    )


if __name__ == "__main__":
    main()
