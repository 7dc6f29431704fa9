"""Reconcile framework: errors as values, backoff, cancellation, metrics, decisions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from controller.decision_log import DecisionLog
from controller.ports import WorkloadRef
from controller.reconcile import (
    EngineRunner,
    Outcome,
    ReconcileMetrics,
    Reconciler,
    StepContext,
    reconcile_each,
)
from shared.wire import Actuation, Decision, DecisionReason

A = WorkloadRef("line", "orders", "Local")
B = WorkloadRef("line", "telemetry", "Local")
C = WorkloadRef("line", "quality", "Local")


@dataclass
class FakeClock:
    """Wall and monotonic time in one; ``sleep`` advances it and yields to the loop."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def decision(n: int, reason: str = "cpu_above_target", target: str = "line/orders") -> Decision:
    return Decision(
        id=f"d{n}",
        kind="scale",
        target=target,
        from_value=2.0,
        to_value=3.0,
        reason=DecisionReason(code=reason, message="cpu above target"),
        decided_at=1000.0,
        decide_seconds=0.0,
        actuation=Actuation(state="pending"),
    )


class ScriptedStep:
    """Returns the next scripted answer (outcomes, or an exception to raise) each pass."""

    def __init__(self, script: Sequence[list[Outcome] | BaseException]) -> None:
        self.script = list(script)
        self.contexts: list[StepContext] = []

    async def __call__(self, context: StepContext) -> list[Outcome]:
        self.contexts.append(context)
        answer = self.script.pop(0) if self.script else []
        if isinstance(answer, BaseException):
            raise answer
        return answer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def runner(
    step: ScriptedStep | None,
    clock: FakeClock,
    registry: CollectorRegistry,
    *,
    name: str = "scalability",
    decision_log: DecisionLog | None = None,
    interval: float = 10.0,
    metrics: ReconcileMetrics | None = None,
    may_act: Callable[[], bool] = lambda: True,
) -> EngineRunner:
    return EngineRunner(
        name,
        interval,
        step or ScriptedStep([]),
        metrics or ReconcileMetrics(registry),
        clock=clock.time,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        decision_log=decision_log,
        may_act=may_act,
    )


def count(registry: CollectorRegistry, result: str, engine: str = "scalability") -> float:
    value = registry.get_sample_value(
        "linescale_reconcile_total", {"engine": engine, "result": result}
    )
    assert value is not None
    return value


# --- reconcile_each: one workload's failure is its own ---------------------------------------


async def test_one_failing_workload_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled: list[WorkloadRef] = []

    async def handle(ref: WorkloadRef) -> Outcome:
        handled.append(ref)
        if ref == B:
            raise RuntimeError("boom")
        return Outcome(ref, "unchanged", "within tolerance")

    with caplog.at_level(logging.ERROR, logger="controller.reconcile"):
        outcomes = await reconcile_each(
            [A, B, C],
            handle,
            StepContext(now=0.0, backed_off=frozenset()),
            error_retry_seconds=7.0,
        )
    assert handled == [A, B, C]
    assert [(o.workload, o.result, o.retry_after_seconds) for o in outcomes] == [
        (A, "unchanged", None),
        (B, "error", 7.0),
        (C, "unchanged", None),
    ]
    assert outcomes[1].reason == "RuntimeError: boom"
    (record,) = caplog.records
    assert record.exc_info is not None
    assert record.__dict__["workload"] == str(B)


async def test_reconcile_each_skips_backed_off_workloads() -> None:
    handled: list[WorkloadRef] = []

    async def handle(ref: WorkloadRef) -> Outcome:
        handled.append(ref)
        return Outcome(ref, "acted", "scaled")

    outcomes = await reconcile_each([A, B], handle, StepContext(now=0.0, backed_off=frozenset({A})))
    assert handled == [B]
    assert [(o.workload, o.result, o.reason) for o in outcomes] == [
        (A, "skipped", "backoff"),
        (B, "acted", "scaled"),
    ]


async def test_reconcile_each_lets_cancellation_through() -> None:
    async def handle(ref: WorkloadRef) -> Outcome:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await reconcile_each([A, B], handle, StepContext(now=0.0, backed_off=frozenset()))


# --- EngineRunner ----------------------------------------------------------------------------


async def test_a_raising_step_is_counted_as_error_and_logged_once(
    clock: FakeClock, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    step = ScriptedStep([RuntimeError("source down"), [Outcome(A, "unchanged", "ok")]])
    engine = runner(step, clock, registry)
    with caplog.at_level(logging.INFO, logger="controller.reconcile"):
        assert await engine.run_once() == []
    (record,) = caplog.records
    assert (record.levelno, record.__dict__["engine"]) == (logging.ERROR, "scalability")
    assert record.exc_info is not None
    assert count(registry, "error") == 1
    assert (
        registry.get_sample_value(
            "linescale_last_success_timestamp_seconds", {"engine": "scalability"}
        )
        is None
    )
    assert await engine.run_once() == [Outcome(A, "unchanged", "ok")]
    assert count(registry, "unchanged") == 1


async def test_the_loop_survives_a_raising_step(
    clock: FakeClock, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    passes = asyncio.Event()

    class Step(ScriptedStep):
        async def __call__(self, context: StepContext) -> list[Outcome]:
            if len(self.contexts) >= 3:
                passes.set()
            return await super().__call__(context)

    step = Step([RuntimeError("one"), ValueError("two"), [Outcome(A, "acted", "scaled")]])
    engine = runner(step, clock, registry, interval=10.0)
    with caplog.at_level(logging.CRITICAL, logger="controller.reconcile"):
        task = asyncio.create_task(engine.run())
        await asyncio.wait_for(passes.wait(), timeout=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert count(registry, "error") == 2
    assert count(registry, "acted") == 1
    assert clock.sleeps[:3] == [10.0, 10.0, 10.0]  # fake time: no pass takes any


async def test_cancellation_inside_a_step_propagates(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    engine = runner(ScriptedStep([asyncio.CancelledError()]), clock, registry)
    with pytest.raises(asyncio.CancelledError):
        await engine.run_once()
    assert count(registry, "error") == 0


async def test_retry_delays_are_honoured(clock: FakeClock, registry: CollectorRegistry) -> None:
    step = ScriptedStep(
        [
            [
                Outcome(A, "error", "429 from the API", retry_after_seconds=30.0),
                Outcome(B, "error", "422: permanent"),
                Outcome(C, "acted", "scaled"),
            ],
            [Outcome(B, "error", "422: permanent"), Outcome(C, "unchanged", "ok")],
            [Outcome(A, "acted", "scaled"), Outcome(B, "unchanged", "ok")],
        ]
    )
    engine = runner(step, clock, registry)
    await engine.run_once()
    assert dict(engine.backoff) == {A: 1030.0}

    clock.now += 10
    second = await engine.run_once()
    assert step.contexts[1].backed_off == frozenset({A})
    # The step left A out: the runner reports it skipped, without clearing its backoff.
    assert (second[-1].workload, second[-1].result, second[-1].reason) == (A, "skipped", "backoff")
    assert dict(engine.backoff) == {A: 1030.0}

    clock.now += 20  # exactly at the retry time: due again
    await engine.run_once()
    assert step.contexts[2].backed_off == frozenset()
    assert dict(engine.backoff) == {}
    assert [count(registry, r) for r in ("acted", "unchanged", "skipped", "error")] == [
        2.0,
        2.0,
        1.0,
        3.0,
    ]


async def test_a_later_success_clears_a_backoff_but_a_skip_does_not(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    step = ScriptedStep(
        [
            [Outcome(A, "error", "timeout", retry_after_seconds=5.0)],
            [Outcome(A, "skipped", "backoff")],
            [Outcome(A, "unchanged", "ok")],
        ]
    )
    engine = runner(step, clock, registry)
    await engine.run_once()
    await engine.run_once()
    assert A in engine.backoff
    await engine.run_once()  # the step acted on A anyway (its call): A is no longer backed off
    assert A not in engine.backoff


async def test_decisions_are_logged_and_counted_by_reason(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    log = DecisionLog(None, clock=clock.time)
    step = ScriptedStep(
        [
            [
                Outcome(A, "acted", "scaled", decision=decision(1)),
                Outcome(B, "unchanged", "ok", decision=decision(2, "within_tolerance")),
                Outcome(C, "unchanged", "ok"),
            ],
            [Outcome(A, "acted", "scaled", decision=decision(3))],
        ]
    )
    engine = runner(step, clock, registry, decision_log=log)
    await engine.run_once()
    await engine.run_once()
    assert [d.id for d in log.query()[0]] == ["d3", "d2", "d1"]

    def decisions(reason: str) -> float | None:
        return registry.get_sample_value(
            "linescale_decisions_total", {"engine": "scalability", "reason": reason}
        )

    assert (decisions("cpu_above_target"), decisions("within_tolerance")) == (2.0, 1.0)


async def test_acted_outcomes_are_logged_with_workload_and_engine(
    clock: FakeClock, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    step = ScriptedStep([[Outcome(A, "acted", "scaled 2 -> 3"), Outcome(B, "unchanged", "ok")]])
    with caplog.at_level(logging.INFO, logger="controller.reconcile"):
        await runner(step, clock, registry).run_once()
    (record,) = caplog.records
    assert (record.__dict__["workload"], record.__dict__["engine"]) == (
        "line/orders",
        "scalability",
    )
    assert "scaled 2 -> 3" in record.getMessage()


async def test_metrics_values(clock: FakeClock, registry: CollectorRegistry) -> None:
    class SlowStep(ScriptedStep):
        async def __call__(self, context: StepContext) -> list[Outcome]:
            clock.now += 0.25  # the pass takes 250 ms of fake time
            return await super().__call__(context)

    metrics = ReconcileMetrics(registry)
    step = SlowStep([[Outcome(A, "acted", "x"), Outcome(B, "error", "y")]])
    engine = runner(step, clock, registry, metrics=metrics)
    other = runner(None, clock, registry, name="resource", metrics=metrics)
    await engine.run_once()
    await other.run_once()
    sample = registry.get_sample_value
    labels = {"engine": "scalability"}
    assert sample("linescale_reconcile_duration_seconds_count", labels) == 1
    assert sample("linescale_reconcile_duration_seconds_sum", labels) == pytest.approx(0.25)
    assert sample("linescale_last_success_timestamp_seconds", labels) == 1000.25
    assert [count(registry, r) for r in ("acted", "unchanged", "skipped", "error")] == [
        1.0,
        0.0,
        0.0,
        1.0,
    ]
    # Every result exists from the start for each engine, so rates never see a missing series.
    assert count(registry, "acted", engine="resource") == 0
    assert sample("linescale_last_success_timestamp_seconds", {"engine": "resource"}) == 1000.25


async def test_a_standby_replica_neither_decides_nor_acts_until_it_leads(
    clock: FakeClock, registry: CollectorRegistry
) -> None:
    leading = False
    step = ScriptedStep([[Outcome(A, "acted", "scaled", decision=decision(1))]])
    engine = runner(step, clock, registry, may_act=lambda: leading)
    assert await engine.run_once() == []
    assert step.contexts == []  # the step never ran: no decision, no action
    assert count(registry, "acted") == 0
    assert (
        registry.get_sample_value(
            "linescale_last_success_timestamp_seconds", {"engine": "scalability"}
        )
        is None
    )
    leading = True
    outcomes = await engine.run_once()
    assert [outcome.result for outcome in outcomes] == ["acted"]
    assert count(registry, "acted") == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"result": "done"}, "result", id="unknown-result"),
        pytest.param({"result": "error", "retry_after_seconds": -1.0}, "retry", id="negative"),
    ],
)
def test_outcome_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outcome(A, reason="r", **kwargs)  # type: ignore[arg-type]


# --- Reconciler --------------------------------------------------------------------------------


async def test_reconciler_runs_each_engine_at_its_interval_and_stops(
    registry: CollectorRegistry,
) -> None:
    metrics = ReconcileMetrics(registry)
    fast_clock, slow_clock = FakeClock(), FakeClock()
    fast_step, slow_step = ScriptedStep([]), ScriptedStep([])
    fast = EngineRunner(
        "fast",
        1.0,
        fast_step,
        metrics,
        clock=fast_clock.time,
        monotonic=fast_clock.monotonic,
        sleep=fast_clock.sleep,
    )
    slow = EngineRunner(
        "slow",
        5.0,
        slow_step,
        metrics,
        clock=slow_clock.time,
        monotonic=slow_clock.monotonic,
        sleep=slow_clock.sleep,
    )
    reconciler = Reconciler([fast, slow])
    async with reconciler:
        assert reconciler.running
        for _ in range(20):
            await asyncio.sleep(0)
    assert not reconciler.running
    assert len(fast_step.contexts) >= 2
    assert len(slow_step.contexts) >= 2
    assert set(fast_clock.sleeps) == {1.0}
    assert set(slow_clock.sleeps) == {5.0}
    await reconciler.stop()  # idempotent


async def test_reconciler_stop_waits_for_a_pass_in_progress(
    registry: CollectorRegistry,
) -> None:
    entered, finished = asyncio.Event(), asyncio.Event()

    async def slow_step(context: StepContext) -> list[Outcome]:
        entered.set()
        try:
            await asyncio.sleep(60)
        finally:
            finished.set()
        return []

    reconciler = Reconciler([EngineRunner("slow", 1.0, slow_step, ReconcileMetrics(registry))])
    reconciler.start()
    with pytest.raises(RuntimeError, match="already"):
        reconciler.start()
    await asyncio.wait_for(entered.wait(), timeout=5)
    await asyncio.wait_for(reconciler.stop(), timeout=5)
    assert finished.is_set()


def test_reconciler_refuses_duplicate_engine_names(registry: CollectorRegistry) -> None:
    metrics = ReconcileMetrics(registry)
    step = ScriptedStep([])
    with pytest.raises(ValueError, match="unique"):
        Reconciler([EngineRunner("a", 1.0, step, metrics), EngineRunner("a", 2.0, step, metrics)])
