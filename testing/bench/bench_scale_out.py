"""Benchmark: scale-out 1 -> 1000 in one decision, through the real ``kubernetes`` client.

The set-up of ``tests/integration/test_scale_out_1000.py`` (``tests/scale_out_world.py``, shared
by both, so the two cannot drift): the controller app with a ScrapeSource and the
KubernetesOrchestrator against the in-repo API double (``tests/kube_api_double.py``); one pod
reports 10,000 requests/s against a Pods AverageValue target of 10, so one decision asks for
1000 replicas; ``tests/kube_cluster_sim.py`` creates the pods in bursts of 500 and makes each
ready after a start time drawn from N(``--start-mean``, ``--start-sd``) s (seeded). Prints
decide + actuation (from the decision record) and the time from the engine pass that decided
until all 1000 pods are ready. Goal: all ready within one HPA sync period (15 s).

    .venv/bin/python testing/bench/bench_scale_out.py
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The API double, the cluster simulator and the scale-out test's setup live with the tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from kube_cluster_sim import StartTime
from scale_out_world import (
    BURST,
    MAX_REPLICAS,
    REQUESTS_PER_SECOND,
    SCALE_PATH,
    burst_world,
    stored_burst,
)
from waiting import eventually_async

GOAL_SECONDS = 15.0  # one HPA sync period


@dataclass(frozen=True, slots=True)
class ScaleOutFigures:
    """Seconds, from the decision record and the simulator."""

    replicas: int
    decide: float
    decide_and_actuate: float
    patch_to_all_ready: float
    pass_to_all_ready: float
    start_time: StartTime


async def _scale_out(start_time: StartTime, seed: int) -> ScaleOutFigures:
    async with burst_world(start_time, seed) as world:
        await world.wait_rate_seen()
        await world.put_policy()

        async def scale_decision() -> dict[str, Any] | None:
            answer = await world.client.get("/v1/decisions", params={"target": str(BURST)})
            decisions = (await answer.json())["decisions"]
            moved = [d for d in decisions if d["to_value"] != d["from_value"]]
            return moved[0] if moved else None

        async def scaled() -> bool:
            return await scale_decision() is not None

        await eventually_async(scaled, 30, "the scale-out decision")
        decision = await scale_decision()
        assert decision is not None
        assert decision["to_value"] == MAX_REPLICAS, decision
        assert decision["actuation"]["state"] == "done", decision["actuation"]

        async def all_ready() -> bool:
            ready = stored_burst(world.double)["status"].get("readyReplicas")
            return world.sim.ready_count == MAX_REPLICAS and ready == MAX_REPLICAS

        await eventually_async(all_ready, 60, f"{MAX_REPLICAS} pods ready")
    patches = [c for c in world.double.writes() if c.path == SCALE_PATH]
    assert len(patches) == 1, patches
    all_ready_at = world.sim.all_ready_at(MAX_REPLICAS)
    assert all_ready_at is not None
    decided_at = decision["decided_at"]
    return ScaleOutFigures(
        replicas=MAX_REPLICAS,
        decide=decision["decide_seconds"],
        decide_and_actuate=decision["decide_seconds"]
        + decision["actuation"]["finished_at"]
        - decided_at,
        patch_to_all_ready=all_ready_at - world.patch_arrived[0],
        pass_to_all_ready=all_ready_at - decided_at,
        start_time=start_time,
    )


def measure(start_mean: float = 2.0, start_sd: float = 0.5, seed: int = 7) -> ScaleOutFigures:
    """One scale-out from 1 to 1000 replicas, timed."""
    start_time = StartTime(mean_seconds=start_mean, stddev_seconds=start_sd, min_seconds=0.5)
    return asyncio.run(_scale_out(start_time, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-mean", type=float, default=2.0, help="pod start time, mean s")
    parser.add_argument("--start-sd", type=float, default=0.5, help="pod start time, stddev s")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    figures = measure(args.start_mean, args.start_sd, args.seed)
    print(
        f"scale-out 1 -> {figures.replicas}: {REQUESTS_PER_SECOND:.0f} requests/s against 10 "
        f"per pod; pod start N({args.start_mean:g} s, sd {args.start_sd:g} s, min 0.5 s)"
    )
    print(f"decide                       {figures.decide * 1e3:8.1f} ms")
    print(f"decide + actuation           {figures.decide_and_actuate * 1e3:8.1f} ms")
    print(f"PATCH -> all ready           {figures.patch_to_all_ready:8.2f} s")
    print(f"decision pass -> all ready   {figures.pass_to_all_ready:8.2f} s")
    verdict = "met" if figures.pass_to_all_ready < GOAL_SECONDS else "NOT met"
    print(f"goal: all {figures.replicas} ready within {GOAL_SECONDS:g} s -> {verdict}")


if __name__ == "__main__":
    main()
