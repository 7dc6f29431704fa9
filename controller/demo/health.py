"""How healthy the demo's own harness was: is a latency figure the service's, or the machine's?

The controller runs on the demo's event loop, so the demo watches that loop while it runs:

- ``LoopWatch`` (a task) wakes every ``PERIOD_SECONDS`` and notes how late it woke: the loop's
  lag, per wall second, with the machine's CPU use (``psutil.cpu_percent``) in that second;
- ``BlockSampler`` (a thread) samples the loop thread's stack whenever the loop has not woken
  for ``BLOCKED_AFTER_SECONDS``: where the loop was stuck, by the innermost project frames.

The load generator reports its own lag per bucket (``Bucket.generator_lag_ms``); the
controller's engines report each pass's duration on ``/metrics``
(``linescale_reconcile_duration_seconds``). ``harness_summary`` folds all of it into
``summary.json``'s ``harness`` section; pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from controller.demo.loadgen import Bucket
from shared.metric_names import RECONCILE_DURATION

PERIOD_SECONDS = 0.05
BLOCKED_AFTER_SECONDS = 0.1
_PROJECT_PARTS = ("/controller/", "/shared/", "/agent/")


@dataclass(frozen=True, slots=True)
class LoopSecond:
    at: float  # wall seconds since the load began
    max_lag_ms: float
    cpu_percent: float  # the whole machine, 100 = every CPU busy


@dataclass
class LoopWatch:
    """Per-second loop lag and machine CPU of this process's event loop."""

    started_at: float  # time.monotonic() of wall 0
    seconds: list[LoopSecond] = field(default_factory=list)
    heartbeat: float = field(default_factory=time.monotonic)

    async def run(self, stop: asyncio.Event) -> None:
        psutil.cpu_percent()  # the first call only starts the measurement
        second_began = time.monotonic()
        worst = 0.0
        while not stop.is_set():
            before = time.monotonic()
            await asyncio.sleep(PERIOD_SECONDS)
            self.heartbeat = now = time.monotonic()
            worst = max(worst, now - before - PERIOD_SECONDS)
            if now - second_began >= 1.0:
                self.seconds.append(
                    LoopSecond(
                        round(second_began - self.started_at, 2),
                        round(worst * 1000, 1),
                        psutil.cpu_percent(),
                    )
                )
                second_began, worst = now, 0.0


class BlockSampler:
    """A thread that records where the loop's thread is while the loop is stuck."""

    def __init__(self, watch: LoopWatch, loop_thread: int | None = None) -> None:
        self.watch = watch
        self.loop_thread = loop_thread or threading.get_ident()
        self.samples: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-block-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(PERIOD_SECONDS):
            if time.monotonic() - self.watch.heartbeat < BLOCKED_AFTER_SECONDS:
                continue
            frame = sys._current_frames().get(self.loop_thread)
            if frame is not None:
                self.samples[where(traceback.extract_stack(frame))] += 1


IDLE = "(in select: the loop had nothing to run; this process was waiting for a CPU)"


def where(stack: Sequence[traceback.FrameSummary], depth: int = 3) -> str:
    """The innermost ``depth`` project frames of a stack, outermost first, and the frame
    the thread is actually in (library code such as json or hashlib) when it is not ours.
    A loop late while it sits in ``select`` was not blocked by code: the CPU was busy."""
    if stack and stack[-1].filename.endswith("selectors.py"):
        return IDLE
    ours = [frame for frame in stack if any(part in frame.filename for part in _PROJECT_PARTS)]
    named = [f"{_module(frame.filename)}:{frame.name}:{frame.lineno}" for frame in ours[-depth:]]
    if stack and (not ours or stack[-1] is not ours[-1]):
        named.append(f"[{_module(stack[-1].filename)}:{stack[-1].name}]")
    return " > ".join(named) or "(no frame)"


def _module(filename: str) -> str:
    for part in _PROJECT_PARTS:
        if part in filename:
            return part.strip("/") + "/" + filename.split(part, 1)[1]
    return filename.rsplit("/", 1)[-1]


def engine_passes(metrics_text: str) -> dict[str, dict[str, float]]:
    """Per engine, from the controller's ``/metrics``: passes, mean and slow-pass counts."""
    found: dict[str, dict[str, float]] = {}
    with contextlib.suppress(ValueError):  # a half-read page: whatever parsed so far
        for family in text_string_to_metric_families(metrics_text):
            if family.name != RECONCILE_DURATION:
                continue
            for sample in family.samples:
                series = found.setdefault(sample.labels.get("engine", "?"), {})
                kind = sample.name.rsplit("_", 1)[-1]  # bucket, count, sum (or created)
                key = f"le_{sample.labels.get('le', '')}" if kind == "bucket" else kind
                series[key] = sample.value
    passes: dict[str, dict[str, float]] = {}
    for engine, values in sorted(found.items()):
        count = values.get("count", 0.0)
        over = {
            f"over_{le[3:]}s": count - values[le]
            for le in values
            if le.startswith("le_") and le[3:] in ("0.1", "0.25", "0.5", "1.0", "1")
        }
        passes[engine] = {
            "passes": int(count),
            "mean_ms": round(values.get("sum", 0.0) / count * 1000, 2) if count else 0.0,
            **{key: int(value) for key, value in over.items()},
        }
    return passes


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def harness_summary(
    loop_seconds: Sequence[LoopSecond],
    buckets: Sequence[Bucket],
    blocked_in: Mapping[str, int],
    passes: Mapping[str, Mapping[str, float]],
    *,
    generator_process: bool = True,
) -> dict[str, Any]:
    """``summary.json``'s ``harness`` section: the demo's own loop, the generator's, the CPU."""
    lags = [second.max_lag_ms for second in loop_seconds]
    cpu = [second.cpu_percent for second in loop_seconds]
    generator = [bucket.generator_lag_ms for bucket in buckets]
    return {
        "generator_in_own_process": generator_process,
        "controller_loop_lag_ms": {
            "p50": round(_quantile(lags, 0.5), 1),
            "p99": round(_quantile(lags, 0.99), 1),
            "max": round(max(lags, default=0.0), 1),
            "seconds_over_100ms": sum(1 for lag in lags if lag > 100),
        },
        "generator_loop_lag_ms": {
            "p99": round(_quantile(generator, 0.99), 1),
            "max": round(max(generator, default=0.0), 1),
            "buckets_over_50ms": sum(1 for lag in generator if lag > 50),
        },
        "cpu_percent": {
            "mean": round(sum(cpu) / len(cpu), 1) if cpu else 0.0,
            "max": round(max(cpu, default=0.0), 1),
            "seconds_at_or_over_95": sum(1 for value in cpu if value >= 95),
        },
        "loop_blocked_in": [
            {"where": place, "samples": count, "approx_ms": round(count * PERIOD_SECONDS * 1000)}
            for place, count in Counter(blocked_in).most_common(8)
        ],
        "engine_passes": dict(passes),
    }
