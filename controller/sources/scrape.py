"""``MetricsSource`` that scrapes the agents' ``/metrics`` itself: the default, no Prometheus.

Why it exists: a small cluster (or the local demo) should autoscale without running a
Prometheus. It answers the same questions as :class:`~controller.sources.prometheus.\
PrometheusSource` and follows the same rules, so engines cannot tell them apart:

* Workloads come from pod names (:func:`~controller.sources.workloads.workload_of`).
* Counters become rates over a window (``rate_window_seconds``, default 4 intervals) from the
  samples kept per series; a drop in a counter is a reset, counted like Prometheus does.
* A series whose newest sample is older than ``staleness_intervals x interval`` is left out,
  and a workload with no fresh series is *missing*, never zero. When a target answers without a
  series it used to expose, the series goes at once (Prometheus' staleness marker); when a
  target fails, its series stay until they age past that bound.
* Memory is bounded: per-series samples cover only the rate window, per-workload values only
  ``window_seconds``, and at most ``max_series`` series and as many workload windows are kept,
  the least recently updated dropped first. Only lines of the configured sample names are
  parsed, so a large exposition costs little.
* ``health()`` is unhealthy when no target answered in the last ``unhealthy_after_intervals``
  intervals; ``current()``/``history()`` then return None.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from controller.ports import MetricFamily, Reading, SourceHealth, WorkloadRef
from controller.sources.workloads import workload_of

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FAMILIES",
    "POD",
    "ScrapeSource",
    "ScrapedFamily",
    "histogram_quantile",
    "rate",
]

POD: Final = "pod"
"""``ScrapedFamily.samples`` value meaning: derive the workload from the ``pod`` label."""

Kind = Literal["rate", "gauge", "p99"]


@dataclass(frozen=True, slots=True)
class ScrapedFamily:
    """How one metric family is computed from scraped samples.

    ``samples`` maps a sample name, as exposed (counters with ``_total``, histogram buckets
    with ``_bucket``), to the label holding the workload; :data:`POD` derives it from the
    pod name. Series are combined per workload by ``aggregate``.
    """

    kind: Kind
    samples: Mapping[str, str]
    aggregate: Literal["sum", "max"] = "sum"


DEFAULT_FAMILIES: Final[Mapping[MetricFamily, ScrapedFamily]] = {
    "cpu_cores": ScrapedFamily("rate", {"linescale_container_cpu_usage_seconds_total": POD}),
    "memory_bytes": ScrapedFamily("gauge", {"linescale_container_memory_usage_bytes": POD}),
    "requests_per_second": ScrapedFamily("rate", {"http_requests_total": POD}),
    "latency_p99_seconds": ScrapedFamily("p99", {"http_request_duration_seconds_bucket": POD}),
    "ready_replicas": ScrapedFamily(
        "gauge",
        {
            "kube_deployment_status_replicas_ready": "deployment",
            "kube_statefulset_status_replicas_ready": "statefulset",
        },
        aggregate="max",
    ),
}
"""Same metric names as the Prometheus adapter's default queries."""

_ACCEPT: Final = "text/plain;version=0.0.4"
_DETAIL_TARGETS: Final = 3  # failing targets named in a health detail

_SeriesKey = tuple[MetricFamily, str, str, tuple[tuple[str, str], ...]]
_WindowKey = tuple[MetricFamily, str, str]  # family, namespace, workload


@dataclass(slots=True)
class _Series:
    family: MetricFamily
    target: str
    namespace: str
    workload: str
    le: float | None  # histogram bucket bound; None otherwise
    points: deque[tuple[float, float]] = field(default_factory=deque)


def rate(points: Sequence[tuple[float, float]]) -> float | None:
    """Per-second increase of a counter over ``points`` (time, value); a drop is a reset.

    Like Prometheus' ``rate`` without its extrapolation to the window's edges; None with
    fewer than two points.
    """
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return None
    increase = 0.0
    for (_, before), (_, after) in itertools.pairwise(points):
        increase += after if after < before else after - before
    return increase / (points[-1][0] - points[0][0])


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """``q``-quantile from cumulative (upper bound, count) buckets, as PromQL computes it.

    None where PromQL gives NaN: no ``+Inf`` bucket, fewer than two buckets, no observations.
    """
    ordered = sorted(buckets)
    if len(ordered) < 2 or ordered[-1][0] != math.inf or not 0 <= q <= 1:
        return None
    bounds = [bound for bound, _ in ordered]
    counts: list[float] = []
    for _, count in ordered:  # rates of cumulative buckets can dip by rounding: keep monotonic
        counts.append(max(count, counts[-1]) if counts else count)
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = bisect.bisect_left(counts, rank)
    if index == len(ordered) - 1:
        return bounds[-2]
    if index == 0 and bounds[0] <= 0:
        return bounds[0]
    start, count = 0.0, counts[index]
    if index > 0:
        start = bounds[index - 1]
        count -= counts[index - 1]
        rank -= counts[index - 1]
    return start + (bounds[index] - start) * (rank / count if count else 1.0)


def metrics_url(target: str) -> str:
    """``host:port`` -> ``http://host:port/metrics``; a URL without a path gets ``/metrics``."""
    url = target if "://" in target else f"http://{target}"
    return url if urlsplit(url).path not in ("", "/") else url.rstrip("/") + "/metrics"


class ScrapeSource:
    """Scrapes targets concurrently on an interval and answers from a bounded window."""

    def __init__(
        self,
        targets: Callable[[], Sequence[str]],
        *,
        interval_seconds: float = 5,
        window_seconds: float = 600,
        max_series: int = 20_000,
        timeout_seconds: float = 2,
        staleness_intervals: float = 3,
        unhealthy_after_intervals: float = 3,
        rate_window_seconds: float | None = None,
        max_concurrency: int = 64,
        max_body_bytes: int = 16 * 2**20,
        families: Mapping[MetricFamily, ScrapedFamily] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval_seconds <= 0 or timeout_seconds <= 0 or max_series < 1:
            raise ValueError("interval_seconds, timeout_seconds and max_series must be positive")
        self._targets = targets
        self.interval_seconds = interval_seconds
        self.window_seconds = window_seconds
        self.max_series = max_series
        self._timeout = timeout_seconds
        self.max_age_seconds = staleness_intervals * interval_seconds
        self._unhealthy_after = unhealthy_after_intervals * interval_seconds
        self.rate_window_seconds = rate_window_seconds or 4 * interval_seconds
        self._max_concurrency = max_concurrency
        self._max_body = max_body_bytes
        self.families: Mapping[MetricFamily, ScrapedFamily] = {
            **DEFAULT_FAMILIES,
            **(families or {}),
        }
        self._clock = clock
        # sample name -> [(family, workload label)]
        self._wanted: dict[str, list[tuple[MetricFamily, str]]] = {}
        for family, spec in self.families.items():
            for sample, label in spec.samples.items():
                self._wanted.setdefault(sample, []).append((family, label))
        self._prefixes = tuple(self._wanted)
        self._series: OrderedDict[_SeriesKey, _Series] = OrderedDict()  # oldest update first
        self._by_target: dict[str, set[_SeriesKey]] = {}
        self._windows: OrderedDict[_WindowKey, deque[tuple[float, float]]] = OrderedDict()
        self._window_points = max(2, math.ceil(window_seconds / interval_seconds) + 1)
        self._rounds: deque[float] = deque(maxlen=self._window_points)
        self._last_answer: float | None = None
        self._failures: dict[str, str] = {}  # target -> error, last round
        self._target_count = 0
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Run the scrape loop in the background until ``close()``."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="linescale-scrape-source")

    async def close(self) -> None:
        """Stop the loop and close the HTTP session (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.scrape_once()
            except Exception:  # never let one bad round end the loop
                log.exception("scrape round failed")
            await asyncio.sleep(max(0.0, self.interval_seconds - (loop.time() - started)))

    # -------------------------------------------------------------------------- scraping

    async def scrape_once(self) -> None:
        """Scrape every target once, concurrently, and record the round."""
        targets = list(dict.fromkeys(self._targets()))
        at = self._clock()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"Accept": _ACCEPT},
            )
        limit = asyncio.Semaphore(self._max_concurrency)
        bodies = await asyncio.gather(*(self._fetch(self._session, limit, t) for t in targets))
        self.record(dict(zip(targets, bodies, strict=True)), at)

    async def _fetch(
        self, session: aiohttp.ClientSession, limit: asyncio.Semaphore, target: str
    ) -> str | Exception:
        async with limit:
            try:
                async with asyncio.timeout(self._timeout):
                    async with session.get(metrics_url(target)) as response:
                        response.raise_for_status()
                        body = bytearray()
                        async for chunk in response.content.iter_chunked(65536):
                            body += chunk
                            if len(body) > self._max_body:
                                raise ValueError(f"body larger than {self._max_body} bytes")
                        return body.decode()
            except Exception as error:  # errors are this target's outcome, not the round's
                return error

    def record(self, bodies: Mapping[str, str | Exception], at: float) -> None:
        """Take one round: each current target's exposition text, or the error it gave.

        What ``scrape_once`` does after fetching; tests and replays call it directly. Series of
        targets not in ``bodies`` are dropped: those targets are gone.
        """
        failures: dict[str, str] = {}
        for target, body in bodies.items():
            if isinstance(body, Exception):
                failures[target] = f"{type(body).__name__}: {body}"[:200]
                continue
            try:
                samples = list(self._parse(target, body, at))
            except Exception as error:  # a malformed exposition fails this target only
                failures[target] = f"unparsable exposition: {error}"[:200]
                continue
            self._ingest(target, samples)
        for target in [target for target in self._by_target if target not in bodies]:
            for key in self._by_target.pop(target):
                self._series.pop(key, None)
        if len(failures) < len(bodies):
            self._last_answer = at
        if failures.keys() - self._failures.keys():
            named = "; ".join(f"{t}: {e}" for t, e in list(failures.items())[:_DETAIL_TARGETS])
            log.warning("scrape failed for %d of %d targets: %s", len(failures), len(bodies), named)
        self._failures = failures
        self._target_count = len(bodies)
        self._rounds.append(at)
        self._aggregate(at)

    def _parse(
        self, target: str, body: str, at: float
    ) -> Iterable[tuple[_SeriesKey, _Series, float, float]]:
        lines = "\n".join(line for line in body.splitlines() if line.startswith(self._prefixes))
        for metric in text_string_to_metric_families(lines):
            for sample in metric.samples:
                for family, label in self._wanted.get(sample.name, ()):
                    namespace = sample.labels.get("namespace", "")
                    owner = sample.labels.get(label, "")
                    workload = workload_of(owner) if label == POD else owner
                    if not namespace or not workload:
                        continue
                    le: float | None = None
                    if self.families[family].kind == "p99":
                        le = float(sample.labels.get("le", "nan"))
                        if math.isnan(le):
                            continue
                    key = (family, target, sample.name, tuple(sorted(sample.labels.items())))
                    series = _Series(family, target, namespace, workload, le)
                    stamp = at if sample.timestamp is None else float(sample.timestamp)
                    yield key, series, stamp, float(sample.value)

    def _ingest(self, target: str, samples: list[tuple[_SeriesKey, _Series, float, float]]) -> None:
        seen: set[_SeriesKey] = set()
        for key, new_series, stamp, value in samples:
            seen.add(key)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = new_series
            else:
                self._series.move_to_end(key)
            if series.points and stamp <= series.points[-1][0]:
                continue  # a repeated explicit timestamp, or out of order: Prometheus drops it
            series.points.append((stamp, value))
            while series.points[0][0] < stamp - self.rate_window_seconds:
                series.points.popleft()
        for key in self._by_target.get(target, set()) - seen:
            # Answered without it: stale at once, like Prometheus' staleness marker.
            self._series.pop(key, None)
        self._by_target[target] = seen
        while len(self._series) > self.max_series:
            key, evicted = self._series.popitem(last=False)
            self._by_target.get(evicted.target, set()).discard(key)

    def _aggregate(self, at: float) -> None:
        """Append this round's value per (family, workload) from the series still fresh."""
        sums: dict[_WindowKey, float] = {}
        buckets: dict[_WindowKey, dict[float, float]] = {}
        for series in self._series.values():
            if not series.points or at - series.points[-1][0] > self.max_age_seconds:
                continue
            spec = self.families[series.family]
            value = series.points[-1][1] if spec.kind == "gauge" else rate(series.points)
            if value is None:
                continue
            key = (series.family, series.namespace, series.workload)
            if spec.kind == "p99" and series.le is not None:
                per_le = buckets.setdefault(key, {})
                per_le[series.le] = per_le.get(series.le, 0.0) + value
            elif key not in sums:
                sums[key] = value
            else:
                sums[key] = max(sums[key], value) if spec.aggregate == "max" else sums[key] + value
        for key, per_le in buckets.items():
            quantile = histogram_quantile(0.99, per_le.items())
            if quantile is not None:
                sums[key] = quantile
        for key, value in sums.items():
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = deque(maxlen=self._window_points)
            else:
                self._windows.move_to_end(key)
            window.append((at, value))
        for key in [k for k, w in self._windows.items() if w[-1][0] < at - self.window_seconds]:
            del self._windows[key]
        while len(self._windows) > self.max_series:
            self._windows.popitem(last=False)
        for window in self._windows.values():
            while window[0][0] < at - self.window_seconds:
                window.popleft()

    # --------------------------------------------------------------------------- answers

    async def current(
        self, family: MetricFamily, workloads: Sequence[WorkloadRef], now: float
    ) -> Reading | None:
        """Each workload's value from the latest round, if that round is fresh at ``now``."""
        if not self.health().healthy:
            return None
        refs = list(dict.fromkeys(workloads))
        latest = self._rounds[-1] if self._rounds else None
        values: dict[WorkloadRef, float] = {}
        if latest is not None and now - latest <= self.max_age_seconds:
            for ref in refs:
                value = self._value_at(family, ref, latest)
                if value is not None:
                    values[ref] = value
        missing = tuple(ref for ref in refs if ref not in values)
        return Reading(family=family, values=values, missing=missing, at=now)

    async def history(
        self,
        family: MetricFamily,
        workloads: Sequence[WorkloadRef],
        start: float,
        end: float,
        step_seconds: float,
    ) -> Mapping[WorkloadRef, Sequence[tuple[float, float]]] | None:
        """At each step, the value of the latest round before it (if fresh), like query_range."""
        if not self.health().healthy:
            return None
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        refs = list(dict.fromkeys(workloads))
        rounds = list(self._rounds)
        result: dict[WorkloadRef, list[tuple[float, float]]] = {ref: [] for ref in refs}
        steps = int((end - start) // step_seconds) + 1 if end >= start else 0
        for index in range(steps):
            at = start + index * step_seconds
            position = bisect.bisect_right(rounds, at) - 1
            if position < 0 or at - rounds[position] > self.max_age_seconds:
                continue
            for ref in refs:
                value = self._value_at(family, ref, rounds[position])
                if value is not None:
                    result[ref].append((at, value))
        return result

    def _value_at(self, family: MetricFamily, ref: WorkloadRef, at: float) -> float | None:
        window = self._windows.get((family, ref.namespace, ref.name))
        if not window:
            return None
        position = bisect.bisect_left(window, (at, -math.inf))
        if position < len(window) and window[position][0] == at:
            return window[position][1]
        return None

    def health(self) -> SourceHealth:
        """Unhealthy when no target answered in the last ``unhealthy_after_intervals``."""
        now = self._clock()
        if self._last_answer is None or now - self._last_answer > self._unhealthy_after:
            if not self._rounds:
                reason = "no scrape yet"
            elif self._target_count == 0:
                reason = "no targets to scrape"
            else:
                reason = f"no target answered in the last {self._unhealthy_after:g}s"
            return SourceHealth(False, self._with_failures(reason), self._last_answer)
        detail = ""
        if self._failures:
            detail = self._with_failures(
                f"{len(self._failures)} of {self._target_count} targets failed"
            )
        return SourceHealth(True, detail, self._last_answer)

    def _with_failures(self, reason: str) -> str:
        if not self._failures:
            return reason
        named = "; ".join(f"{t}: {e}" for t, e in list(self._failures.items())[:_DETAIL_TARGETS])
        more = len(self._failures) - _DETAIL_TARGETS
        return f"{reason} ({named}{f'; {more} more' if more > 0 else ''})"

    @property
    def series_count(self) -> int:
        """Series held now (at most ``max_series``)."""
        return len(self._series)

    @property
    def window_count(self) -> int:
        """(family, workload) windows held now (at most ``max_series``)."""
        return len(self._windows)
