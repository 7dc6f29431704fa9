"""Scale-out 1 -> 1000 end to end: the controller app decides once and patches the scale
subresource once, through the real ``kubernetes`` client and the API double; a cluster
simulator then brings the 1000 pods up with simulated start times.

The requirement: with a policy that allows it, one decision takes a workload from 1 to 1000
replicas, and decision plus actuation take under 5 s; the rest is the cluster's start-up time.
The figures are printed (``pytest -s``).

Expected values are the HPA's arithmetic, by hand. The Pods metric ``requests_per_second``
with an ``AverageValue`` target of 10: one ready pod serving 10,000 requests/s averages 10,000,
a usage ratio of 1,000, so ``ceil(1000 x 1 ready pod) = 1000`` replicas
(``calcPlainMetricReplicas`` in ``replica_calculator.go``); the behavior allows 1 + 1000 pods
within 15 s and ``maxReplicas`` is 1000, so neither limit bites. Once 1000 pods share the same
10,000 requests/s each averages 10, a ratio of 1.0: within the tolerance, nothing changes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client

from controller.sources.workloads import workload_of

from kube_cluster_sim import BURST_REPLICAS, ClusterSim, StartTime
from scale_out_world import (
    BURST,
    MAX_REPLICAS,
    NS,
    PER_POD_TARGET,
    REQUESTS_PER_SECOND,
    SCALE_PATH,
    BurstWorld,
    burst_double,
    burst_world,
    stored_burst,
)
from waiting import eventually_async

pytestmark = pytest.mark.timeout(120)

DECIDE_AND_ACTUATE_BUDGET_SECONDS = 5.0
SCALABILITY = '{engine="scalability"}'
PASS_SECONDS = "linescale_reconcile_duration_seconds"


def sample(metrics: str, name: str) -> float:
    """A sample's value from a Prometheus text exposition (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# --- the simulator itself ------------------------------------------------------------------------


# One sync per row after the scale from 1 to 1000, the start time fixed at 2 s: (seconds after
# the scale, pods created, pods ready, why). The expectations follow replica_set.go: at most
# BurstReplicas (500) creations per sync, so the 999 missing pods take two syncs; each pod is
# ready 2 s after its creation.
SCALE_UP_SYNCS = [
    (0.0, 1 + BURST_REPLICAS, 1, "the first sync creates a burst of 500"),
    (0.1, 1000, 1, "the second sync creates the remaining 499"),
    (1.9, 1000, 1, "no new pod is ready before its start time"),
    (2.0, 1000, 1 + BURST_REPLICAS, "the first burst is ready 2 s after its creation"),
    (2.1, 1000, 1000, "the second burst is ready 2 s after its creation"),
]


def test_cluster_sim_creates_pods_in_bursts_and_starts_them_after_their_start_time() -> None:
    double = burst_double()
    now = [1000.0]
    sim = ClusterSim(
        double, NS, "burst", start_time=StartTime(2.0, 0.0), seed=1, clock=lambda: now[0]
    )
    sim.sync_once()
    (first,) = double.pods
    assert (first["status"]["phase"], sim.ready_count) == ("Pending", 0)
    assert "podIP" not in first["status"]  # no sandbox yet
    # The kubernetes client must read a pending pod as a real kubelet reports it.
    pending = client.ApiClient().deserialize(json.dumps(first), "V1Pod", "application/json")
    assert pending.status.container_statuses[0].image_id == ""
    assert stored_burst(double)["status"]["unavailableReplicas"] == 1
    now[0] += 2.0
    sim.sync_once()
    assert (first["status"]["phase"], first["status"]["podIP"]) == ("Running", "10.2.0.1")
    assert {c["type"]: c["status"] for c in first["status"]["conditions"]}["Ready"] == "True"

    double.write("deployments", NS, "burst", lambda d: d["spec"].update(replicas=1000))
    scaled_at = now[0]
    for offset, created, ready, why in SCALE_UP_SYNCS:
        now[0] = scaled_at + offset
        sim.sync_once()
        status = stored_burst(double)["status"]
        observed = (len(double.pods), status["replicas"], status["readyReplicas"])
        assert observed == (created, created, ready), why
        assert status["unavailableReplicas"] == 1000 - ready, why
    assert stored_burst(double)["status"]["observedGeneration"] == 2  # the scale bumped it
    names = {p["metadata"]["name"] for p in double.pods}
    assert len(names) == 1000
    assert {workload_of(name) for name in names} == {"burst"}  # Deployment pod names
    assert sim.all_ready_at(1000) == scaled_at + 2.1


# --- end to end ----------------------------------------------------------------------------------


async def test_one_decision_scales_1_to_1000_within_5s_and_the_cluster_brings_them_up() -> None:
    start_time = StartTime(mean_seconds=2.0, stddev_seconds=0.5, min_seconds=0.5)
    async with burst_world(start_time, seed=7) as world:
        await scale_out(world)


async def scale_out(world: BurstWorld) -> None:
    test_client, double, sim = world.client, world.double, world.sim
    orchestrator, patch_arrived = world.orchestrator, world.patch_arrived
    await world.wait_rate_seen()

    async def decisions() -> list[dict[str, Any]]:
        answer = await test_client.get(
            "/v1/decisions", params={"target": str(BURST), "limit": "100"}
        )
        assert answer.status == 200, await answer.text()
        found: list[dict[str, Any]] = (await answer.json())["decisions"]
        return found

    async def metrics() -> str:
        return await (await test_client.get("/metrics")).text()

    await world.put_policy()

    async def scaled() -> bool:
        return any(d["to_value"] != d["from_value"] for d in await decisions())

    await eventually_async(scaled, 30, "the scale-out decision")
    (decision,) = [d for d in await decisions() if d["to_value"] != d["from_value"]]
    assert (decision["from_value"], decision["to_value"]) == (1, MAX_REPLICAS)
    assert decision["actuation"]["state"] == "done", decision["actuation"]
    inputs = decision["reason"]["inputs"]
    assert inputs["requests_per_second_average"] == pytest.approx(REQUESTS_PER_SECOND)
    assert inputs["raw_recommendation"] == MAX_REPLICAS  # ceil(10,000 / 10 x 1 ready pod)

    patches = [c for c in double.writes() if c.path == SCALE_PATH]
    assert [(c.method, c.body["spec"]["replicas"]) for c in patches] == [("PATCH", MAX_REPLICAS)]
    assert stored_burst(double)["spec"]["replicas"] == MAX_REPLICAS

    decided_at, decide_seconds = decision["decided_at"], decision["decide_seconds"]
    actuated_seconds = decision["actuation"]["finished_at"] - decided_at
    assert decide_seconds + actuated_seconds < DECIDE_AND_ACTUATE_BUDGET_SECONDS

    async def all_ready() -> bool:
        status = stored_burst(double)["status"]
        return sim.ready_count == MAX_REPLICAS and status.get("readyReplicas") == MAX_REPLICAS

    await eventually_async(all_ready, 60, "1000 pods ready")
    all_ready_at = sim.all_ready_at(MAX_REPLICAS)
    assert all_ready_at is not None

    # The passes that follow see 1000 ready pods at 10 requests/s each: nothing to change.
    unchanged = 'linescale_reconcile_total{engine="scalability",result="unchanged"}'
    exposition = await metrics()
    before = sample(exposition, unchanged)
    passes_before = sample(exposition, f"{PASS_SECONDS}_count{SCALABILITY}")
    pass_seconds_before = sample(exposition, f"{PASS_SECONDS}_sum{SCALABILITY}")

    async def three_more_passes() -> bool:
        return sample(await metrics(), unchanged) >= before + 3

    await eventually_async(three_more_passes, 60, "three engine passes after the pods are ready")
    exposition = await metrics()
    assert sample(exposition, 'linescale_reconcile_total{engine="scalability",result="acted"}') == 1
    assert sample(exposition, 'linescale_reconcile_total{engine="scalability",result="error"}') == 0
    assert [c for c in double.writes() if c.path == SCALE_PATH] == patches
    assert stored_burst(double)["spec"]["replicas"] == MAX_REPLICAS
    later = [d for d in await decisions() if d["id"] != decision["id"]]
    assert all(d["from_value"] == d["to_value"] == MAX_REPLICAS for d in later), later

    listing = []
    for _ in range(3):
        started = time.perf_counter()
        state = await orchestrator.get_workload(BURST)
        listing.append(time.perf_counter() - started)
        assert state is not None
        assert (len(state.pods), state.ready_replicas) == (MAX_REPLICAS, MAX_REPLICAS)
    passes = sample(exposition, f"{PASS_SECONDS}_count{SCALABILITY}") - passes_before
    pass_seconds = sample(exposition, f"{PASS_SECONDS}_sum{SCALABILITY}") - pass_seconds_before
    (patched_at,) = patch_arrived
    start = sim.start_time
    budget = DECIDE_AND_ACTUATE_BUDGET_SECONDS
    figures = {
        "decide (decide_seconds)": f"{decide_seconds * 1000:.1f} ms",
        "pass start -> PATCH at the API": f"{(patched_at - decided_at) * 1000:.1f} ms",
        "pass start -> actuation finished": f"{actuated_seconds * 1000:.1f} ms",
        f"decide + actuation (budget {budget:g} s)": (
            f"{(decide_seconds + actuated_seconds) * 1000:.1f} ms"
        ),
        f"PATCH -> all {MAX_REPLICAS} pods ready": f"{all_ready_at - patched_at:.2f} s",
        f"pass start -> all {MAX_REPLICAS} pods ready": f"{all_ready_at - decided_at:.2f} s",
        f"get_workload with {MAX_REPLICAS} pods, 3 reads": ", ".join(
            f"{seconds * 1000:.0f} ms" for seconds in listing
        ),
        f"engine pass with {MAX_REPLICAS} pods, mean": (
            f"{pass_seconds / passes * 1000:.1f} ms over {passes:.0f} passes"
        ),
        "held decisions after the scale": str([d["reason"]["code"] for d in later]),
    }
    print(
        f"\nscale-out 1 -> {MAX_REPLICAS}: {REQUESTS_PER_SECOND:.0f} requests/s, target "
        f"{PER_POD_TARGET}/pod; pod start N({start.mean_seconds:g} s, sd "
        f"{start.stddev_seconds:g} s, min {start.min_seconds:g} s)"
    )
    for label, value in figures.items():
        print(f"  {label:<42} {value}")
