"""The sampling loop: collect, detect, publish; every interval, off the event loop.

Interval and thresholds are read on every pass, so a pushed TuningSet takes effect on the next
sample without a restart. A failing pass is counted and logged; the loop keeps going.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent.observe.detector import DetectorState, detect
from agent.observe.exposition import Observation
from agent.observe.model import Sample
from shared import metric_names
from shared.wire import BottleneckThresholds

log = logging.getLogger(__name__)

Health = Literal["ok", "degraded", "failing"]


class SampleSource(Protocol):
    def sample(self) -> Sample: ...


class SamplerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.samples = Counter(
            metric_names.COLLECTOR_SAMPLES, "Collection passes completed.", registry=registry
        )
        self.errors = Counter(
            metric_names.COLLECTOR_ERRORS,
            "Files that could not be read or parsed, and failed passes ('sample'), by source.",
            ["source"],
            registry=registry,
        )
        self.errors.labels("sample")
        self.duration = Histogram(
            metric_names.COLLECTOR_DURATION,
            "Time one collection and detection pass took.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=registry,
        )
        self.last_sample = Gauge(
            metric_names.COLLECTOR_LAST_SAMPLE,
            "Unix time of the last completed collection pass.",
            registry=registry,
        )


class Sampler:
    """Holds the previous sample and the detector state between passes."""

    def __init__(self, source: SampleSource, node_name: str) -> None:
        self._source = source
        self._node_name = node_name
        self._previous: Sample | None = None
        self._state = DetectorState()

    def step(self, thresholds: BottleneckThresholds) -> Observation:
        current = self._source.sample()
        findings, self._state = detect(
            self._previous, current, thresholds, self._state, self._node_name
        )
        self._previous = current
        return Observation(sample=current, findings=findings)


async def sampling_loop(
    sampler: Sampler,
    publish: Callable[[Observation], None],
    interval_seconds: Callable[[], float],
    thresholds: Callable[[], BottleneckThresholds],
    metrics: SamplerMetrics,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Runs until cancelled. Collection reads many small files: it runs in a worker thread."""
    while True:
        started = time.monotonic()
        try:
            observation = await asyncio.to_thread(sampler.step, thresholds())
        except Exception:  # one bad pass must not stop observation
            metrics.errors.labels("sample").inc()
            log.exception("collection pass failed")
        else:
            publish(observation)
            metrics.samples.inc()
            assert observation.sample is not None
            for source, count in observation.sample.errors.items():
                metrics.errors.labels(source).inc(count)
            metrics.last_sample.set(observation.sample.timestamp)
        metrics.duration.observe(time.monotonic() - started)
        await sleep(interval_seconds())


def observation_health(
    observation: Observation, now: float, interval_seconds: float
) -> tuple[Health, list[str]]:
    """The agent's own health as an observer: fresh, complete samples are "ok"; missing
    files or a stalled loop make it "degraded". Bottlenecks on the node are findings, not
    agent health."""
    sample = observation.sample
    if sample is None:
        return "ok", []
    reasons = []
    age = now - sample.timestamp
    if age > 3 * interval_seconds:
        reasons.append(f"last sample is {age:.0f}s old (interval {interval_seconds:g}s)")
    if sample.errors:
        unread = ", ".join(f"{source} x{count}" for source, count in sorted(sample.errors.items()))
        reasons.append(f"unreadable in last sample: {unread}")
    return ("degraded" if reasons else "ok"), reasons
