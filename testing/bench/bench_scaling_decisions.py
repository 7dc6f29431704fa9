"""Benchmark: HPA-exact horizontal decisions for many workloads, in-process, no servers.

Builds ``--workloads`` workloads (seeded), each with 3-20 pods that report CPU usage against
their requests and a ``requests_per_second`` Pods metric, a policy of CPU Utilization 70 % plus
a Pods AverageValue target, default ``behavior``, and a short recommendation history. Policies
are parsed once (as a controller would on a policy change); the timed loop is the pure
``decide`` over plain dataclasses. Prints p50/p99 per decision and the total for all of them.

    .venv/bin/python testing/bench/bench_scaling_decisions.py --workloads 10000
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

from controller.engines.scaling.horizontal import Observation, decide
from controller.engines.scaling.normalize import ScalingHistory, TimestampedRecommendation
from controller.engines.scaling.replica_calculator import Pod, Sample
from shared.scaling_policy import ScalingPolicy, parse_policy

from bench_support import percentile

NOW = 1_700_000_000.0
GOAL_SECONDS = 0.100  # all 10,000 decisions in under 100 ms


@dataclass(frozen=True, slots=True)
class Workload:
    policy: ScalingPolicy
    current: int
    observation: Observation
    history: ScalingHistory


def make_policy(rps_target: int) -> ScalingPolicy:
    return parse_policy(
        {
            "minReplicas": 2,
            "maxReplicas": 40,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                },
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "requests_per_second"},
                        "target": {"type": "AverageValue", "averageValue": str(rps_target)},
                    },
                },
            ],
            "behavior": {},
        }
    )


def make_workloads(count: int, seed: int) -> list[Workload]:
    rng = random.Random(seed)
    policies = {target: make_policy(target) for target in (50, 100, 200)}
    workloads = []
    for index in range(count):
        pod_count = rng.randint(3, 20)
        target = rng.choice(tuple(policies))
        load = rng.uniform(0.3, 1.8)  # relative to the target: scale down, hold or scale up
        pods = []
        cpu: dict[str, Sample] = {}
        rps: dict[str, Sample] = {}
        for pod_index in range(pod_count):
            name = f"w{index}-p{pod_index}"
            ready = rng.random() > 0.05
            pods.append(
                Pod(
                    name,
                    "Running",
                    False,
                    ready,
                    NOW - 3600,
                    NOW - 3600,
                    (),
                    {"cpu": 500},
                )
            )
            if rng.random() > 0.03:  # a few pods without a sample yet
                cpu[name] = Sample(int(500 * 0.7 * load * rng.uniform(0.8, 1.2)), NOW, 30.0)
                rps[name] = Sample(int(target * 1000 * load * rng.uniform(0.8, 1.2)), NOW, 30.0)
        history = ScalingHistory(
            tuple(
                TimestampedRecommendation(pod_count + rng.randint(-2, 2), NOW - age)
                for age in (240, 180, 120, 60)
            )
        )
        observation = Observation(tuple(pods), {"cpu": cpu, "requests_per_second": rps})
        workloads.append(Workload(policies[target], pod_count, observation, history))
    return workloads


@dataclass(frozen=True, slots=True)
class DecisionFigures:
    """One run's figures, in seconds: per decision (per-call timing on) and for all of them."""

    workloads: int
    pods: int
    rounds: int
    p50: float
    p99: float
    best_total: float
    median_total: float
    bare_total: float  # one round without the per-decision clock reads
    scaled_per_round: float


def measure(workloads_count: int, rounds: int, seed: int) -> DecisionFigures:
    """Time ``decide`` per workload over ``rounds`` rounds, then one round without per-call
    timing."""
    workloads = make_workloads(workloads_count, seed)
    clock = time.perf_counter
    samples: list[float] = []
    totals: list[float] = []
    scaled = 0
    for _ in range(rounds):
        round_started = clock()
        for workload in workloads:
            started = clock()
            decision = decide(
                workload.policy,
                workload.current,
                NOW,
                observation=workload.observation,
                history=workload.history,
            )
            samples.append(clock() - started)
            scaled += decision.desired_replicas != workload.current
        totals.append(clock() - round_started)
    # One untimed-per-call round: the total without the per-decision clock reads.
    bare_started = clock()
    for workload in workloads:
        decide(
            workload.policy,
            workload.current,
            NOW,
            observation=workload.observation,
            history=workload.history,
        )
    bare_total = clock() - bare_started

    ordered = sorted(samples)
    return DecisionFigures(
        workloads=workloads_count,
        pods=sum(len(workload.observation.pods) for workload in workloads),
        rounds=rounds,
        p50=percentile(ordered, 0.5),
        p99=percentile(ordered, 0.99),
        best_total=min(totals),
        median_total=sorted(totals)[len(totals) // 2],
        bare_total=bare_total,
        scaled_per_round=scaled / rounds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=10_000, help="workloads per round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (best total is kept)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated workloads")
    args = parser.parse_args()

    figures = measure(args.workloads, args.rounds, args.seed)
    per_workload = figures.pods / args.workloads
    print(
        f"workloads {args.workloads}, pods {figures.pods} ({per_workload:.1f} per workload), "
        "2 metrics, default behavior"
    )
    print(f"per decision   p50 {figures.p50 * 1e6:8.1f} us   p99 {figures.p99 * 1e6:8.1f} us")
    print(
        f"all decisions  best {figures.best_total * 1e3:8.1f} ms   "
        f"median {figures.median_total * 1e3:8.1f} ms   (per-call timing on)"
    )
    print(f"all decisions  {figures.bare_total * 1e3:8.1f} ms without per-call timing")
    print(f"scaling decisions: {figures.scaled_per_round:.0f} of {args.workloads} per round")
    verdict = "met" if figures.bare_total < GOAL_SECONDS else "NOT met"
    print(f"goal: all {args.workloads} in under {GOAL_SECONDS * 1e3:.0f} ms -> {verdict}")


if __name__ == "__main__":
    main()
