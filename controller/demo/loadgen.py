"""Open-loop load for the demo: requests at the timeline's rate, whatever the answers do.

Open loop because callers on a line do not wait for the service to be ready before the next
scan: a closed-loop generator would slow down with the service and hide the latency a spike
causes. Requests go through the three agents' dataplane listeners in turn (callers on three
nodes) for Zipf-distributed part ids (a few hot parts, a long tail), so the cache sees a
realistic hit ratio.

Memory is bounded: each time bucket keeps counters and a log-binned latency histogram
(``LatencyHistogram``, about 4 % wide bins), never the requests themselves.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import aiohttp

from controller.demo.scenarios import Timeline

_MIN_MS = 0.05
_RATIO = 1.04  # bin width: quantiles are within about 2 % of the truth
_LOG_RATIO = math.log(_RATIO)


def _bin(ms: float) -> int:
    return 0 if ms <= _MIN_MS else int(math.log(ms / _MIN_MS) / _LOG_RATIO) + 1


def _bin_value(index: int) -> float:
    """A representative latency of a bin: its geometric middle."""
    return _MIN_MS if index == 0 else _MIN_MS * _RATIO ** (index - 0.5)


@dataclass(slots=True)
class LatencyHistogram:
    """Log-binned latencies in ms: exact count and mean, quantiles within a bin."""

    bins: Counter[int] = field(default_factory=Counter)
    count: int = 0
    total_ms: float = 0.0

    def add(self, ms: float) -> None:
        self.bins[_bin(ms)] += 1
        self.count += 1
        self.total_ms += ms

    def merge(self, other: LatencyHistogram) -> None:
        self.bins.update(other.bins)
        self.count += other.count
        self.total_ms += other.total_ms

    @property
    def mean(self) -> float:
        return self.total_ms / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for index in sorted(self.bins):
            seen += self.bins[index]
            if seen >= rank:
                return _bin_value(index)
        return _bin_value(max(self.bins))

    @classmethod
    def merged(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        result = cls()
        for histogram in histograms:
            result.merge(histogram)
        return result


@dataclass(slots=True)
class Bucket:
    """What happened to the requests sent during one time bucket."""

    start: float  # wall seconds since the run began
    offered_rps: float = 0.0  # the timeline's rate when the bucket began
    sent: int = 0
    ok: int = 0
    errors: int = 0  # answered, but not 2xx
    unanswered: int = 0  # no answer at all (timeout, reset, refused)
    cache: Counter[str] = field(default_factory=Counter)  # X-Cache: L1, L2, MISS
    pods: Counter[str] = field(default_factory=Counter)  # which replica answered
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def failed(self) -> int:
        return self.errors + self.unanswered


@dataclass(frozen=True, slots=True)
class Outcome:
    sent_at: float  # wall seconds since the run began
    status: int | None  # None: no answer
    latency_ms: float
    cache: str = ""
    pod: str = ""


class Recorder:
    """Per-bucket aggregates of every request's outcome; pure bookkeeping."""

    def __init__(self, bucket_seconds: float = 1.0) -> None:
        if bucket_seconds <= 0:
            raise ValueError("bucket_seconds must be positive")
        self.bucket_seconds = bucket_seconds
        self.buckets: dict[int, Bucket] = {}

    def bucket(self, at: float, offered_rps: float | None = None) -> Bucket:
        index = int(at // self.bucket_seconds)
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = Bucket(start=index * self.bucket_seconds)
            if offered_rps is not None:
                bucket.offered_rps = offered_rps
        return bucket

    def sent(self, at: float, offered_rps: float) -> None:
        self.bucket(at, offered_rps).sent += 1

    def record(self, outcome: Outcome) -> None:
        bucket = self.bucket(outcome.sent_at)
        if outcome.status is None:
            bucket.unanswered += 1
            return
        if 200 <= outcome.status < 300:
            bucket.ok += 1
        else:
            bucket.errors += 1
        bucket.latency.add(outcome.latency_ms)
        if outcome.cache:
            bucket.cache[outcome.cache] += 1
        if outcome.pod:
            bucket.pods[outcome.pod] += 1

    def ordered(self) -> list[Bucket]:
        return [self.buckets[index] for index in sorted(self.buckets)]

    def since(self, at: float) -> list[Bucket]:
        return [bucket for bucket in self.ordered() if bucket.start >= at]


class PartPicker:
    """Zipf-distributed part ids: part k is chosen with weight 1 / k**s."""

    def __init__(self, parts: int = 5000, exponent: float = 1.1, seed: int = 7) -> None:
        weights = [1 / (k**exponent) for k in range(1, parts + 1)]
        self._cumulative = list(itertools.accumulate(weights))
        self._random = random.Random(seed)

    def pick(self) -> str:
        point = self._random.random() * self._cumulative[-1]
        return f"P{bisect.bisect_left(self._cumulative, point) + 1:05d}"


def due_requests(rate_rps: float, elapsed: float, carry: float) -> tuple[int, float]:
    """How many requests to send for ``elapsed`` seconds at ``rate_rps``, and the remainder."""
    wanted = carry + max(0.0, rate_rps) * max(0.0, elapsed)
    whole = int(wanted)
    return whole, wanted - whole


class LoadGenerator:
    """Sends the timeline's load to ``targets`` (dataplane base URLs) until told to stop."""

    def __init__(
        self,
        timeline: Timeline,
        targets: Sequence[str],
        recorder: Recorder,
        *,
        picker: PartPicker | None = None,
        timeout_seconds: float = 5.0,
        max_in_flight: int = 2000,
        tick_seconds: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not targets:
            raise ValueError("no targets to send to")
        self.timeline = timeline
        self.targets = list(targets)
        self.recorder = recorder
        self.picker = picker or PartPicker()
        self.timeout_seconds = timeout_seconds
        self.max_in_flight = max_in_flight
        self.tick_seconds = tick_seconds
        self.clock = clock
        self.in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, started_at: float, stop: asyncio.Event) -> None:
        """Send from ``started_at`` (clock time of wall 0) until ``stop`` or the timeline ends."""
        connector = aiohttp.TCPConnector(limit=self.max_in_flight, force_close=False)
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            targets = itertools.cycle(self.targets)
            carry = 0.0
            last = self.clock()
            while not stop.is_set():
                now = self.clock()
                wall = now - started_at
                if wall >= self.timeline.wall_seconds:
                    break
                rate = self.timeline.rate_at(wall)
                count, carry = due_requests(rate, now - last, carry)
                last = now
                for _ in range(count):
                    self.recorder.sent(wall, rate)
                    if self.in_flight >= self.max_in_flight:
                        self.recorder.record(Outcome(wall, None, 0.0))
                        continue
                    url = f"{next(targets)}/parts/{self.picker.pick()}"
                    task = asyncio.create_task(self._one(session, url, wall))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.tick_seconds)
            await self.drain(self.timeout_seconds + 1)

    async def drain(self, within_seconds: float) -> None:
        """Let the requests in flight finish (or time out) so every one is counted."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within_seconds)
        for task in list(self._tasks):
            task.cancel()

    async def _one(self, session: aiohttp.ClientSession, url: str, wall: float) -> None:
        self.in_flight += 1
        started = time.perf_counter()
        try:
            async with session.get(url) as response:
                await response.read()
                outcome = Outcome(
                    wall,
                    response.status,
                    (time.perf_counter() - started) * 1000,
                    response.headers.get("X-Cache", ""),
                    response.headers.get("X-Pod", ""),
                )
        except (aiohttp.ClientError, TimeoutError, OSError):
            outcome = Outcome(wall, None, (time.perf_counter() - started) * 1000)
        except asyncio.CancelledError:
            outcome = Outcome(wall, None, (time.perf_counter() - started) * 1000)
            self.recorder.record(outcome)
            self.in_flight -= 1
            raise
        self.recorder.record(outcome)
        self.in_flight -= 1
