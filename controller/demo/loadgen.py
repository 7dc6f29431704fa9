"""Open-loop load for the demo: requests at the timeline's rate, whatever the answers do.

Open loop because callers on a line do not wait for the service to be ready before the next
scan: a closed-loop generator would slow down with the service and hide the latency a spike
causes. Requests go through the three agents' dataplane listeners in turn (callers on three
nodes) for part ids of the line's active production orders.

The part catalogue is what a line actually looks up, not the whole part master: the parts of
its active production orders, ``ACTIVE_PARTS`` = 300 (about 20 orders of 15 bill-of-material
lines), picked Zipf(1.1): the parts of the order being built now and the common ones (fasteners,
labels) on every scan, the rest of the orders' parts now and then. How long a part stays cached
(its TTL, which bounds how stale part master data may be) is the line service's, in
``controller.demo.fleet``.

The generator runs in its own process (see the protocol at the end of this module), so the
latency it measures is the service's, not the demo controller's event loop's.

Memory is bounded: each time bucket keeps counters and a log-binned latency histogram
(``LatencyHistogram``, about 4 % wide bins), never the requests themselves.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import math
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from controller.demo.scenarios import Timeline, timeline_from_json, timeline_to_json

ACTIVE_PARTS = 300
PART_POPULARITY_EXPONENT = 1.1
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
    # How late the generator's own loop woke up, at worst, in this bucket: its requests were
    # sent (and their answers read) that much late, so latency above it is not all the service's.
    generator_lag_ms: float = 0.0

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
        self._changed: set[int] = set()

    def bucket(self, at: float) -> Bucket:
        index = int(at // self.bucket_seconds)
        self._changed.add(index)
        bucket = self.buckets.get(index)
        if bucket is None:
            bucket = self.buckets[index] = Bucket(start=index * self.bucket_seconds)
        return bucket

    def sent(self, at: float, offered_rps: float) -> None:
        bucket = self.bucket(at)
        if bucket.sent == 0:  # the bucket's first request: the rate when the bucket began
            bucket.offered_rps = offered_rps
        bucket.sent += 1

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

    def lag(self, at: float, lag_ms: float) -> None:
        bucket = self.bucket(at)
        bucket.generator_lag_ms = max(bucket.generator_lag_ms, lag_ms)

    def take_changed(self) -> list[tuple[int, Bucket]]:
        """Buckets changed since the last call (the generator's process sends these)."""
        changed, self._changed = self._changed, set()
        return [(index, self.buckets[index]) for index in sorted(changed) if index in self.buckets]

    def put(self, index: int, bucket: Bucket) -> None:
        """A bucket as the generator's process last sent it; replaces the older copy."""
        self.buckets[index] = bucket

    def ordered(self) -> list[Bucket]:
        return [self.buckets[index] for index in sorted(self.buckets)]

    def since(self, at: float) -> list[Bucket]:
        return [bucket for bucket in self.ordered() if bucket.start >= at]


class PartPicker:
    """Zipf-distributed part ids: part k is chosen with weight 1 / k**s."""

    def __init__(
        self, parts: int = ACTIVE_PARTS, exponent: float = PART_POPULARITY_EXPONENT, seed: int = 7
    ) -> None:
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
                slept_from = self.clock()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.tick_seconds)
                late_ms = (self.clock() - slept_from - self.tick_seconds) * 1000
                self.recorder.lag(wall, max(0.0, late_ms))
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


# --- the generator in its own process ----------------------------------------------------------
#
# The controller (engines, scraping, the LocalOrchestrator) runs on the demo's event loop; a
# generator on that loop would time the loop's stalls as the service's latency. So the
# generator runs in a child process (``python -m controller.demo.loadgen``) and sends its
# buckets back as JSON lines on stdout; the demo's recorder replaces each bucket with the
# newest copy. The protocol, one JSON object a line:
#   demo -> generator: {"timeline": ..., "targets": [...], "bucket_seconds": s}
#   generator -> demo: {"ready": true}
#   demo -> generator: {"start": t}  (t: time.monotonic() of wall 0; one clock for all processes)
#   generator -> demo: {"buckets": [...], "in_flight": n}  twice a second, changed buckets only
#   demo -> generator: {"stop": true}, or end of file
#   generator -> demo: the last buckets, then {"done": true}

REPORT_EVERY_SECONDS = 0.5


def bucket_to_json(index: int, bucket: Bucket) -> dict[str, Any]:
    return {
        "index": index,
        "start": bucket.start,
        "offered_rps": bucket.offered_rps,
        "sent": bucket.sent,
        "ok": bucket.ok,
        "errors": bucket.errors,
        "unanswered": bucket.unanswered,
        "cache": dict(bucket.cache),
        "pods": dict(bucket.pods),
        "bins": {str(key): count for key, count in bucket.latency.bins.items()},
        "count": bucket.latency.count,
        "total_ms": bucket.latency.total_ms,
        "generator_lag_ms": bucket.generator_lag_ms,
    }


def bucket_from_json(data: dict[str, Any]) -> tuple[int, Bucket]:
    latency = LatencyHistogram(
        Counter({int(key): int(count) for key, count in data["bins"].items()}),
        int(data["count"]),
        float(data["total_ms"]),
    )
    bucket = Bucket(
        start=float(data["start"]),
        offered_rps=float(data["offered_rps"]),
        sent=int(data["sent"]),
        ok=int(data["ok"]),
        errors=int(data["errors"]),
        unanswered=int(data["unanswered"]),
        cache=Counter(data["cache"]),
        pods=Counter(data["pods"]),
        latency=latency,
        generator_lag_ms=float(data["generator_lag_ms"]),
    )
    return int(data["index"]), bucket


class LoadProcessError(RuntimeError):
    """The generator's process failed; the message has its log's tail."""


class LoadProcess:
    """The demo's side of the generator's process: starts it, feeds ``recorder`` with its
    buckets, stops it. Same ``in_flight``/``timeout_seconds`` as a ``LoadGenerator``."""

    def __init__(
        self,
        timeline: Timeline,
        targets: Sequence[str],
        recorder: Recorder,
        log_path: Path,
        *,
        timeout_seconds: float = 5.0,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.timeline = timeline
        self.targets = list(targets)
        self.recorder = recorder
        self.log_path = log_path
        self.timeout_seconds = timeout_seconds
        self.preexec_fn = preexec_fn
        self.in_flight = 0
        self.process: asyncio.subprocess.Process | None = None

    async def open(self, within_seconds: float = 30.0) -> None:
        """Start the process and wait until it is ready to send."""
        with self.log_path.open("wb") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "controller.demo.loadgen",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
                preexec_fn=self.preexec_fn,
            )
        self._send(
            {
                "timeline": timeline_to_json(self.timeline),
                "targets": self.targets,
                "bucket_seconds": self.recorder.bucket_seconds,
                "timeout_seconds": self.timeout_seconds,
            }
        )
        try:
            message = await asyncio.wait_for(self._receive(), within_seconds)
        except TimeoutError:
            message = None
        if not message or not message.get("ready"):
            raise LoadProcessError(f"the load generator did not start:\n{self._log_tail()}")

    async def run(self, started_at: float, stop: asyncio.Event) -> None:
        """Send until the timeline ends or ``stop``; every bucket is in ``recorder`` after."""
        self._send({"start": started_at})
        stopper = asyncio.create_task(self._stop_when(stop))
        try:
            while (message := await self._receive()) is not None:
                for data in message.get("buckets", []):
                    self.recorder.put(*bucket_from_json(data))
                self.in_flight = int(message.get("in_flight", self.in_flight))
                if message.get("done"):
                    return
        finally:
            stopper.cancel()
        raise LoadProcessError(f"the load generator died:\n{self._log_tail()}")

    async def close(self) -> None:
        """Make sure the process is gone (it exits by itself after ``done``)."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 2.0)
            return
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

    async def _stop_when(self, stop: asyncio.Event) -> None:
        await stop.wait()
        with contextlib.suppress(OSError):
            self._send({"stop": True})

    def _pipes(self) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
        if self.process is None or self.process.stdin is None or self.process.stdout is None:
            raise LoadProcessError("the load generator is not started")
        return self.process.stdin, self.process.stdout

    def _send(self, message: dict[str, Any]) -> None:
        self._pipes()[0].write(json.dumps(message).encode() + b"\n")

    async def _receive(self) -> dict[str, Any] | None:
        line = await self._pipes()[1].readline()
        if not line:
            return None
        message: dict[str, Any] = json.loads(line)
        return message

    def _log_tail(self, lines: int = 12) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _emit_changed(recorder: Recorder, generator: LoadGenerator, **extra: Any) -> None:
    changed = [bucket_to_json(index, bucket) for index, bucket in recorder.take_changed()]
    _emit({"buckets": changed, "in_flight": generator.in_flight, **extra})


async def _serve_demo() -> None:
    """The generator's process: the protocol above, on stdin and stdout."""
    loop = asyncio.get_running_loop()
    # Ctrl-C reaches the whole process group; the demo tells this process when to stop, so it
    # can still send the buckets of the requests in flight.
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline() or b"null")
    if not config:
        return
    recorder = Recorder(float(config["bucket_seconds"]))
    generator = LoadGenerator(
        timeline_from_json(config["timeline"]),
        config["targets"],
        recorder,
        timeout_seconds=float(config["timeout_seconds"]),
    )
    _emit({"ready": True})
    start = json.loads(await reader.readline() or b"null")
    if not start or "start" not in start:
        return
    stop = asyncio.Event()

    async def stop_on_word() -> None:
        await reader.readline()  # {"stop": true} or end of file: either way, stop
        stop.set()

    async def report() -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_SECONDS)
            _emit_changed(recorder, generator)

    listener = asyncio.create_task(stop_on_word())
    reporter = asyncio.create_task(report())
    try:
        await generator.run(float(start["start"]), stop)
    finally:
        listener.cancel()
        reporter.cancel()
    _emit_changed(recorder, generator, done=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve_demo())


if __name__ == "__main__":
    main()
