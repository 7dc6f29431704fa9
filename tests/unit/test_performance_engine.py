"""The PerformanceEngine in a fake world whose cache hit ratio depends on the L1 size the
held TuningSet gives: a change that makes its metric worse is rolled back by the engine
itself, and the old value is published again."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller.engines.performance.engine import FLEET, PerformanceEngine, PerformanceSettings
from controller.engines.performance.tuning import TuningPolicy
from controller.reconcile import Outcome, StepContext
from shared.wire import AgentReport, TuningSet, parse

from messages import report, tuning

MIB = 2**20
NODES = ("node-1", "node-2")
# Doubling the L1 from 1 MiB to 2 MiB cuts the miss ratio from 0.2 to 0.1 on the curve.
CURVE = [
    {"capacity_bytes": MIB, "miss_ratio": 0.2},
    {"capacity_bytes": 2 * MIB, "miss_ratio": 0.1},
    {"capacity_bytes": 4 * MIB, "miss_ratio": 0.1},
]
SETTINGS = PerformanceSettings(
    interval_seconds=10.0,
    knobs=("cache.capacity_bytes",),
    baseline_seconds=60.0,
    tuning=TuningPolicy(verify_seconds=60.0, cooldown_seconds=600.0),
    cache_min_bytes=1024,
    cache_max_bytes=64 * MIB,
)


@dataclass
class World:
    """Agents whose L1 hit ratio is ``hit_ratio(capacity)`` of the held TuningSet, and who
    report the held version at once (as after a successful push)."""

    hit_ratio: Callable[[int], float]
    held: TuningSet = field(
        default_factory=lambda: parse(
            TuningSet,
            json.dumps(
                tuning(
                    cache={"capacity_bytes": MIB, "default_ttl_seconds": 30, "max_ttl_seconds": 300}
                )
            ),
        )
    )
    published: list[TuningSet] = field(default_factory=list)
    failing: bool = False
    lookups: int = 0

    def reports(self) -> list[AgentReport]:
        self.lookups += 1
        ratio = self.hit_ratio(self.held.cache.capacity_bytes)
        hits = round(1000 * ratio * self.lookups)
        return [
            parse(AgentReport, json.dumps(self._report(node, hits, 1000 * self.lookups - hits)))
            for node in NODES
        ]

    def _report(self, node: str, hits: int, misses: int) -> dict[str, Any]:
        return report(
            node=node,
            cache=[
                {
                    "level": "l1",
                    "namespace": "default",
                    "hits": hits,
                    "misses": misses,
                    "evictions": 0,
                    "entries": 10,
                    "bytes": 1000,
                }
            ],
            cache_mrc=CURVE,
            cache_capacity_bytes=self.held.cache.capacity_bytes,
            tuning_version=self.held.version,
        )

    async def publish(self, tuning_set: TuningSet) -> None:
        if self.failing:
            raise ConnectionError("controller store unavailable")
        self.published.append(tuning_set)
        self.held = tuning_set


def engine_in(world: World) -> PerformanceEngine:
    return PerformanceEngine(
        reports=world.reports,
        held=lambda: world.held,
        publish=world.publish,
        settings=SETTINGS,
        clock=lambda: 1_000.0,
    )


async def run(engine: PerformanceEngine, start: float, passes: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for i in range(passes):
        context = StepContext(now=start + 10.0 * i, backed_off=frozenset())
        outcomes.extend(await engine.step(context))
    return outcomes


def codes(outcomes: list[Outcome]) -> list[str]:
    return [o.decision.reason.code for o in outcomes if o.decision is not None]


async def test_a_change_that_lowers_the_hit_ratio_is_rolled_back_and_republished() -> None:
    world = World(hit_ratio=lambda capacity: 0.8 if capacity == MIB else 0.6)
    engine = engine_in(world)
    outcomes = await run(engine, 0.0, 9)  # t = 0 .. 80
    assert codes(outcomes) == ["tune_proposed", "tune_rolled_back"]
    assert [t.version for t in world.published] == [2, 3]
    assert [t.cache.capacity_bytes for t in world.published] == [2 * MIB, MIB]
    rolled_back = next(o for o in outcomes if o.reason == "tune_rolled_back")
    assert rolled_back.workload == FLEET
    assert rolled_back.result == "acted"
    assert rolled_back.decision is not None
    assert rolled_back.decision.actuation.state == "done"
    inputs = rolled_back.decision.reason.inputs
    assert (inputs["baseline"], inputs["observed"]) == pytest.approx((0.8, 0.6))
    # Cooling down: the curve still says "grow", but nothing is tried again for 600 s.
    later = await run(engine, 90.0, 20)
    assert codes(later) == []
    assert len(world.published) == 2


async def test_a_change_that_raises_the_hit_ratio_is_kept() -> None:
    world = World(hit_ratio=lambda capacity: 0.8 if capacity == MIB else 0.9)
    outcomes = await run(engine_in(world), 0.0, 9)
    assert codes(outcomes) == ["tune_proposed", "tune_kept"]
    assert [t.cache.capacity_bytes for t in world.published] == [2 * MIB]


async def test_observations_wait_until_agents_report_the_new_version_twice() -> None:
    world = World(hit_ratio=lambda capacity: 0.8)
    engine = engine_in(world)

    def observed() -> tuple[float, ...]:
        trial = engine.knob_states["cache.capacity_bytes"].trial
        assert trial is not None
        return trial.observed

    await run(engine, 0.0, 3)  # proposed at t = 20
    assert observed() == ()
    await run(engine, 30.0, 1)  # the first pass reporting v2 measured partly under v1
    assert observed() == ()
    await run(engine, 40.0, 1)
    assert observed() == (0.8,)


async def test_a_failed_publish_is_an_error_outcome_and_the_change_is_not_started() -> None:
    world = World(hit_ratio=lambda capacity: 0.8, failing=True)
    engine = engine_in(world)
    outcomes = await run(engine, 0.0, 3)
    assert outcomes[-1].result == "error"
    assert outcomes[-1].retry_after_seconds == 10.0
    assert engine.knob_states["cache.capacity_bytes"].phase == "idle"
    world.failing = False
    assert codes(await run(engine, 30.0, 1)) == ["tune_proposed"]


async def test_without_a_held_tuning_set_nothing_is_tuned() -> None:
    world = World(hit_ratio=lambda capacity: 0.8)
    engine = PerformanceEngine(
        reports=world.reports, held=lambda: None, publish=world.publish, settings=SETTINGS
    )
    outcomes = await run(engine, 0.0, 5)
    assert {o.reason for o in outcomes} == {"no tuning set held yet"}
    assert world.published == []


async def test_services_are_analysed_each_pass() -> None:
    world = World(hit_ratio=lambda capacity: 0.8)

    def reports() -> list[AgentReport]:
        failing = {
            "service": "orders",
            "address": "10.0.0.1:8080",
            "ewma_latency_ms": 20.0,
            "in_flight": 4,
            "requests": 1000 * world.lookups,
            "errors": 50 * world.lookups,  # 5 % errors: burn 50 against 99.9 %
        }
        world.lookups += 1
        return [parse(AgentReport, json.dumps(report(node="node-1", dataplane=[failing])))]

    engine = PerformanceEngine(
        reports=reports, held=lambda: world.held, publish=world.publish, settings=SETTINGS
    )
    await run(engine, 0.0, 3)
    orders = engine.analysis["orders"]
    assert orders.error_rate == pytest.approx(0.05)
    assert orders.burn.alert == "page"
    assert orders.saturation == pytest.approx(4 / 64)  # the held max_concurrency, one agent
