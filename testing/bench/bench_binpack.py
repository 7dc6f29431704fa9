"""Benchmark: bin-packing ``--pods`` pods onto about ``--nodes`` nodes (``binpack.pack``).

Builds (seeded) pods whose requests together fill about 70 % of ``--nodes`` m5.xlarge nodes
(CPU and memory each 0.3-1.7x the mean, drawn independently, so shapes differ), and the three
node types of ``bench_resource_cycle`` with their prices. The timed call is ``pack``: FFD and
BFD + consolidation + downsizing on every node type, keeping the cheapest plan: the placement
the ResourceEngine computes per pool. Prints the median and worst of ``--rounds`` calls.

    .venv/bin/python testing/bench/bench_binpack.py --pods 1000 --nodes 100
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

from controller.engines.resources.binpack import PackPlan, PodRequest, pack
from controller.engines.resources.capacity import NodeType

from bench_resource_cycle import POOLS
from bench_support import percentile

GOAL_SECONDS = 0.200  # 1,000 containers on 100 nodes in under 200 ms
FILL = 0.7


@dataclass(frozen=True, slots=True)
class PackFigures:
    """Each round's seconds (sorted) and the plan it chose."""

    pods: int
    seconds: list[float]
    plan: PackPlan

    @property
    def median(self) -> float:
        return percentile(self.seconds, 0.5)


def node_types() -> list[NodeType]:
    return [NodeType(name, cpu, memory, price) for name, _, cpu, memory, price in POOLS]


def make_pods(count: int, nodes: int, seed: int) -> list[PodRequest]:
    rng = random.Random(seed)
    first = node_types()[0]
    mean_cpu = FILL * first.cpu_millicores * nodes / count
    mean_memory = FILL * first.memory_bytes * nodes / count
    return [
        PodRequest(
            f"pod-{index}",
            f"ns-{index % 20}",
            max(10, int(mean_cpu * rng.uniform(0.3, 1.7))),
            max(2**24, int(mean_memory * rng.uniform(0.3, 1.7))),
        )
        for index in range(count)
    ]


def measure(pod_count: int, nodes: int, rounds: int, seed: int) -> PackFigures:
    pods = make_pods(pod_count, nodes, seed)
    types = node_types()
    seconds = []
    plan = None
    for _ in range(rounds):
        started = time.perf_counter()
        plan = pack(pods, types)
        seconds.append(time.perf_counter() - started)
    assert plan is not None
    return PackFigures(pod_count, sorted(seconds), plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100, help="nodes the pods fill to 70 %%")
    parser.add_argument("--rounds", type=int, default=7, help="timed calls")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = measure(args.pods, args.nodes, args.rounds, args.seed)
    best = figures.plan.best
    print(
        f"pods {args.pods} filling ~{FILL:.0%} of {args.nodes} m5.xlarge, 3 node types; "
        f"plan {best.strategy}: {best.node_count} nodes, {best.cost_per_hour:.2f}/h"
    )
    print(
        f"pack: median {figures.median * 1e3:.1f} ms, worst {figures.seconds[-1] * 1e3:.1f} ms "
        f"over {args.rounds} rounds"
    )
    verdict = "met" if figures.median < GOAL_SECONDS else "NOT met"
    print(f"goal: under {GOAL_SECONDS * 1e3:.0f} ms -> {verdict}")


if __name__ == "__main__":
    main()
