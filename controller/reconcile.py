"""The reconcile framework the engines plug into: errors as values, per-workload backoff,
decisions recorded, and the same four metrics for every engine.

An engine supplies a *step*: one pass over its workloads that returns an ``Outcome`` per
workload. The step receives a ``StepContext`` whose ``backed_off`` set lists the workloads
still waiting out a retry delay: the step must not act on them (``reconcile_each`` skips them
for it). The runner cannot filter for the step, since only the step knows which workloads it
would touch; it reports backed-off workloads the step left out as ``skipped`` ("backoff").

Backoff: an outcome with ``retry_after_seconds`` backs its workload off for that long; any
other outcome for it, except ``skipped``, clears its backoff. A permanent error carries no
delay and is simply reported every pass.

Metrics (one ``ReconcileMetrics`` per registry, shared by all runners):

- ``linescale_reconcile_total{engine,result}``: one per workload per pass, plus one ``error``
  for a pass whose step raised;
- ``linescale_reconcile_duration_seconds{engine}``: one pass;
- ``linescale_decisions_total{engine,reason}``: decisions recorded, by reason code;
- ``linescale_last_success_timestamp_seconds{engine}``: the end of the last pass whose step
  returned (per-workload errors do not make a pass fail; they have their own counter).

Leadership: a runner built with ``may_act`` skips whole passes while it returns False (a standby
controller replica), so only the Lease holder ever decides and acts. Skipped passes change no
metric: a standby's last-success timestamp stays where it was, which alerts read with
``max`` over replicas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from controller.decision_log import DecisionLog
from controller.ports import WorkloadRef
from shared import metric_names
from shared.wire import Decision

log = logging.getLogger(__name__)

# Counter names omit ``_total``: prometheus-client appends it. To move to shared/metric_names.
RECONCILE = metric_names.RECONCILE
RECONCILE_DURATION = metric_names.RECONCILE_DURATION
DECISIONS = metric_names.DECISIONS
LAST_SUCCESS = metric_names.LAST_SUCCESS

Result = Literal["acted", "unchanged", "skipped", "error"]
RESULTS: tuple[Result, ...] = ("acted", "unchanged", "skipped", "error")
BACKOFF_REASON = "backoff"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one pass did to one workload, and when to look at it again if it failed."""

    workload: WorkloadRef
    result: Result
    reason: str
    retry_after_seconds: float | None = None  # transient: skip the workload until then
    decision: Decision | None = None  # recorded in the decision log when present

    def __post_init__(self) -> None:
        if self.result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}, got {self.result!r}")
        if self.retry_after_seconds is not None and not self.retry_after_seconds >= 0:
            raise ValueError("retry_after_seconds must be >= 0")


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a step is told about the pass it runs."""

    now: float  # wall-clock time at the start of the pass (the runner's clock)
    backed_off: frozenset[WorkloadRef]  # do not act on these in this pass


Step = Callable[[StepContext], Awaitable[Sequence[Outcome]]]


class ReconcileMetrics:
    """The reconcile metrics in one app's registry; create once per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.reconciles = Counter(
            RECONCILE,
            "Workload reconciliations, by engine and result (acted, unchanged, skipped, error).",
            ["engine", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            RECONCILE_DURATION,
            "Time one reconcile pass of an engine took.",
            ["engine"],
            registry=registry,
        )
        self.decisions = Counter(
            DECISIONS,
            "Decisions recorded, by engine and reason code.",
            ["engine", "reason"],
            registry=registry,
        )
        self.last_success = Gauge(
            LAST_SUCCESS,
            "Unix time at which an engine's last reconcile pass completed.",
            ["engine"],
            registry=registry,
        )


async def reconcile_each(
    workloads: Iterable[WorkloadRef],
    handle: Callable[[WorkloadRef], Awaitable[Outcome]],
    context: StepContext,
    *,
    error_retry_seconds: float = 30.0,
) -> list[Outcome]:
    """Run ``handle`` for each workload in turn, skipping backed-off ones; an exception from
    one workload becomes its ``error`` outcome (logged once, retried after
    ``error_retry_seconds``) and the others still run. Cancellation propagates."""
    outcomes: list[Outcome] = []
    for ref in workloads:
        if ref in context.backed_off:
            outcomes.append(Outcome(ref, "skipped", BACKOFF_REASON))
            continue
        try:
            outcomes.append(await handle(ref))
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("reconciling %s failed", ref, extra={"workload": str(ref)})
            outcomes.append(
                Outcome(
                    ref,
                    "error",
                    f"{type(error).__name__}: {error}",
                    retry_after_seconds=error_retry_seconds,
                )
            )
    return outcomes


class EngineRunner:
    """Runs one engine's step every ``interval_seconds``; one pass never stops the loop.

    ``clock`` is wall time (decisions, the last-success gauge); ``monotonic`` times passes and
    backoffs; ``sleep`` waits between passes. All three are injectable for tests.
    """

    def __init__(
        self,
        name: str,
        interval_seconds: float,
        step: Step,
        metrics: ReconcileMetrics,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        decision_log: DecisionLog | None = None,
        may_act: Callable[[], bool] = lambda: True,
    ) -> None:
        if not interval_seconds > 0:
            raise ValueError("interval_seconds must be > 0")
        self.name = name
        self.interval_seconds = interval_seconds
        self._step = step
        self._metrics = metrics
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._decision_log = decision_log
        self._may_act = may_act
        self._retry_at: dict[WorkloadRef, float] = {}  # monotonic time
        for result in RESULTS:
            metrics.reconciles.labels(name, result)
        metrics.duration.labels(name)

    @property
    def backoff(self) -> Mapping[WorkloadRef, float]:
        """Workloads backed off, to the monotonic time they may be reconciled again."""
        return MappingProxyType(self._retry_at)

    def backed_off(self) -> frozenset[WorkloadRef]:
        now = self._monotonic()
        for ref in [ref for ref, at in self._retry_at.items() if at <= now]:
            del self._retry_at[ref]
        return frozenset(self._retry_at)

    async def run(self) -> None:
        """Pass after pass until cancelled, one every ``interval_seconds`` (start to start)."""
        while True:
            started = self._monotonic()
            await self.run_once()
            elapsed = self._monotonic() - started
            await self._sleep(max(0.0, self.interval_seconds - elapsed))

    async def run_once(self) -> list[Outcome]:
        """One pass: the step's outcomes plus ``skipped`` ones for backed-off workloads it left
        out; empty when the step raised (logged, counted as one ``error``) or when this replica
        may not act (not the leader)."""
        if not self._may_act():
            log.debug("engine %s: not the leader, pass skipped", self.name, extra=self._extra())
            return []
        context = StepContext(now=self._clock(), backed_off=self.backed_off())
        started = self._monotonic()
        try:
            outcomes = list(await self._step(context))
        except asyncio.CancelledError:
            raise
        except Exception:
            self._metrics.duration.labels(self.name).observe(self._monotonic() - started)
            self._metrics.reconciles.labels(self.name, "error").inc()
            log.exception("engine %s: reconcile pass failed", self.name, extra=self._extra())
            return []
        finished = self._monotonic()
        self._metrics.duration.labels(self.name).observe(finished - started)
        seen = {outcome.workload for outcome in outcomes}
        outcomes.extend(
            Outcome(ref, "skipped", BACKOFF_REASON) for ref in sorted(context.backed_off - seen)
        )
        for outcome in outcomes:
            self._record(outcome, finished)
        self._metrics.last_success.labels(self.name).set(self._clock())
        return outcomes

    def _record(self, outcome: Outcome, now: float) -> None:
        ref = outcome.workload
        self._metrics.reconciles.labels(self.name, outcome.result).inc()
        if outcome.retry_after_seconds is not None:
            self._retry_at[ref] = now + outcome.retry_after_seconds
        elif outcome.result != "skipped":
            self._retry_at.pop(ref, None)
        if outcome.decision is not None:
            if self._decision_log is not None:
                self._decision_log.append(outcome.decision)
            self._metrics.decisions.labels(self.name, outcome.decision.reason.code).inc()
        if outcome.result == "acted":
            log.info(
                "engine %s acted on %s: %s",
                self.name,
                ref,
                outcome.reason,
                extra=self._extra(ref),
            )
        elif outcome.result == "error":
            log.warning(
                "engine %s: %s failed: %s%s",
                self.name,
                ref,
                outcome.reason,
                ""
                if outcome.retry_after_seconds is None
                else f" (retry in {outcome.retry_after_seconds:g}s)",
                extra=self._extra(ref),
            )

    def _extra(self, ref: WorkloadRef | None = None) -> dict[str, str]:
        extra = {"engine": self.name}
        if ref is not None:
            extra["workload"] = str(ref)
        return extra


class Reconciler:
    """The engines' runners, each in its own task at its own interval."""

    def __init__(self, runners: Iterable[EngineRunner]) -> None:
        self.runners = tuple(runners)
        names = [runner.name for runner in self.runners]
        if len(set(names)) != len(names):
            raise ValueError(f"engine names must be unique: {names}")
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self) -> None:
        """Start every runner; needs a running event loop."""
        if self._tasks:
            raise RuntimeError("reconciler already started")
        for runner in self.runners:
            task = asyncio.create_task(runner.run(), name=f"reconcile-{runner.name}")
            task.add_done_callback(_report_crash)
            self._tasks.append(task)

    async def stop(self) -> None:
        """Cancel every runner and wait for it to end. Idempotent."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Reconciler:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("%s stopped unexpectedly", task.get_name(), exc_info=error)
