"""``MetricsSource`` backed by a Prometheus server, for clusters that already run one.

Why these choices:

* One PromQL query per metric family answers for every workload at once (grouped
  ``by (namespace, workload)``): the cost of a reconcile does not grow with the workload count.
* prometheus-api-client is synchronous (requests), so each call runs in a worker thread via
  ``asyncio.to_thread``; each thread borrows its own ``PrometheusConnect`` from a small pool,
  because a ``requests.Session`` is not documented as thread-safe.
* The library's own urllib3 retries (3, with 1 s backoff) are turned off: they would blow any
  timeout budget. We retry here, bounded, with exponential backoff, and only on errors that can
  heal (connection errors, timeouts, 408/429/5xx); a 4xx query error is final.
* Staleness: an instant query's result timestamp is the *evaluation* time, not the sample's, so
  it cannot tell a fresh series from one Prometheus still returns inside its 5-minute lookback.
  The default queries therefore keep only series whose newest sample (``timestamp()``) is at
  most ``staleness_intervals x scrape_interval`` old, per pod, before summing — in the same
  query, so batching is kept. A workload with no fresh series is *missing*, never zero.
* Failures are values: ``current()``/``history()`` return None after the retries, and
  ``health()`` says why, until Prometheus answers again.

Query templates (``queries=``) are PromQL returning one series per workload labelled
``namespace`` and ``workload``. They may use these tokens, substituted per call:

``$namespaces``  a regex alternation of the requested namespaces (inside a ``"..."`` string)
``$window``      the rate window, e.g. ``60s`` (default 4 x the scrape interval)
``$max_age``     the staleness bound in seconds
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from controller.ports import MetricFamily, Reading, SourceHealth, WorkloadRef
from controller.sources.workloads import promql_workload

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_QUERIES",
    "LATENCY_HISTOGRAM",
    "READY_REPLICAS_METRICS",
    "REQUESTS_COUNTER",
    "PrometheusSource",
    "fresh",
]

REQUESTS_COUNTER: Final = "http_requests_total"
"""Conventional request counter of the scaled apps (labels ``namespace``, ``pod``)."""
LATENCY_HISTOGRAM: Final = "http_request_duration_seconds"
"""Conventional request-latency histogram (``<name>_bucket`` with ``le``)."""
READY_REPLICAS_METRICS: Final = (
    ("kube_deployment_status_replicas_ready", "deployment"),
    ("kube_statefulset_status_replicas_ready", "statefulset"),
)
"""kube-state-metrics gauges and the label naming the workload in each."""

_POD_SCOPE: Final = '{namespace=~"$namespaces",pod!=""}'
_NS_SCOPE: Final = '{namespace=~"$namespaces"}'


def fresh(expr: str, selector: str) -> str:
    """Keep the series of ``expr`` whose newest raw sample in ``selector`` is at most $max_age old.

    ``and`` matches on all labels but the metric name, so ``expr`` must keep the selector's
    labels (a bare selector or ``rate(...)`` does; do this before any aggregation).
    """
    return f"({expr} and (time() - timestamp({selector})) <= $max_age)"


def _summed_rate(counter: str) -> str:
    selector = counter + _POD_SCOPE
    rate = fresh(f"rate({selector}[$window])", selector)
    return f"sum by (namespace, workload) ({promql_workload(rate)})"


def _summed_gauge(gauge: str) -> str:
    selector = gauge + _POD_SCOPE
    return f"sum by (namespace, workload) ({promql_workload(fresh(selector, selector))})"


def _p99(histogram: str) -> str:
    selector = f"{histogram}_bucket{_POD_SCOPE}"
    rate = fresh(f"rate({selector}[$window])", selector)
    return f"histogram_quantile(0.99, sum by (namespace, workload, le) ({promql_workload(rate)}))"


def _ready_replicas() -> str:
    parts = [
        f'label_replace({fresh(name + _NS_SCOPE, name + _NS_SCOPE)}, "workload", "$1", '
        f'"{label}", "(.+)")'
        for name, label in READY_REPLICAS_METRICS
    ]
    return f"max by (namespace, workload) ({' or '.join(parts)})"


DEFAULT_QUERIES: Final[Mapping[MetricFamily, str]] = {
    "cpu_cores": _summed_rate("linescale_container_cpu_usage_seconds_total"),
    "memory_bytes": _summed_gauge("linescale_container_memory_usage_bytes"),
    "requests_per_second": _summed_rate(REQUESTS_COUNTER),
    "latency_p99_seconds": _p99(LATENCY_HISTOGRAM),
    "ready_replicas": _ready_replicas(),
}

_RETRYABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})
_STATUS_RE: Final = re.compile(r"HTTP Status Code (\d{3})")


class _FinalError(Exception):
    """Prometheus answered and refused the query: retrying cannot help."""


@dataclass(frozen=True, slots=True)
class _Failure:
    at: float
    detail: str


class PrometheusSource:
    """Reads metric families from Prometheus with batched, bounded, retried queries."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 5,
        retries: int = 2,
        backoff_seconds: float = 0.5,
        scrape_interval_seconds: float = 15,
        staleness_intervals: float = 3,
        rate_window_seconds: float | None = None,
        queries: Mapping[MetricFamily, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if timeout_seconds <= 0 or retries < 0 or backoff_seconds < 0:
            raise ValueError("timeout_seconds must be > 0, retries and backoff_seconds >= 0")
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._retries = retries
        self._backoff = backoff_seconds
        self.max_age_seconds = staleness_intervals * scrape_interval_seconds
        self.rate_window_seconds = rate_window_seconds or 4 * scrape_interval_seconds
        self.queries: Mapping[MetricFamily, str] = {**DEFAULT_QUERIES, **(queries or {})}
        self._clock = clock
        self._idle: list[PrometheusConnect] = []
        self._clients: list[PrometheusConnect] = []
        self._last_success: float | None = None
        self._last_failure: _Failure | None = None
        self._closed = False

    @property
    def budget_seconds(self) -> float:
        """Worst-case time one ``current()``/``history()`` call takes before giving up."""
        attempts = self._retries + 1
        backoff = sum(self._backoff * 2.0**i for i in range(self._retries))
        # requests' timeout bounds the connect and each read; allow one of each per attempt.
        return attempts * 2 * self._timeout + backoff

    # ---------------------------------------------------------------------------- queries

    def render(self, family: MetricFamily, namespaces: Sequence[str]) -> str:
        """The PromQL sent for ``family``: its template with the tokens filled in."""
        alternation = "|".join(re.escape(ns) for ns in sorted(set(namespaces)))
        return (
            self.queries[family]
            .replace("$namespaces", alternation.replace("\\", "\\\\").replace('"', '\\"'))
            .replace("$window", f"{round(self.rate_window_seconds * 1000)}ms")
            .replace("$max_age", f"{self.max_age_seconds:.3f}")
        )

    async def current(
        self, family: MetricFamily, workloads: Sequence[WorkloadRef], now: float
    ) -> Reading | None:
        """One instant query for all ``workloads``; None when Prometheus cannot answer."""
        refs = list(dict.fromkeys(workloads))
        if not refs:
            return Reading(family=family, values={}, at=now)
        query = self.render(family, [ref.namespace for ref in refs])
        params = {"time": f"{now:.3f}", "timeout": f"{self._timeout}s"}
        result = await self._call(
            family,
            lambda prom: prom.custom_query(query, params=params, timeout=self._timeout),
        )
        if result is None:
            return None
        by_workload: dict[tuple[str, str], float] = {}
        for series in result:
            key = _workload_key(series)
            value = _number(series.get("value", (None, None))[1])
            if key is not None and value is not None:
                by_workload[key] = value
        values = {
            ref: by_workload[(ref.namespace, ref.name)]
            for ref in refs
            if (ref.namespace, ref.name) in by_workload
        }
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
        """One range query for all ``workloads``; stale or absent steps are left out."""
        refs = list(dict.fromkeys(workloads))
        if not refs:
            return {}
        query = self.render(family, [ref.namespace for ref in refs])
        start_time = datetime.fromtimestamp(start, tz=UTC)
        end_time = datetime.fromtimestamp(end, tz=UTC)
        params = {"timeout": f"{self._timeout}s"}
        result = await self._call(
            family,
            lambda prom: prom.custom_query_range(
                query,
                start_time=start_time,
                end_time=end_time,
                step=f"{step_seconds:g}",
                params=params,
                timeout=self._timeout,
            ),
        )
        if result is None:
            return None
        by_workload: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for series in result:
            key = _workload_key(series)
            if key is None:
                continue
            points = by_workload.setdefault(key, [])
            for stamp, raw in series.get("values", ()):
                value = _number(raw)
                if value is not None:
                    points.append((float(stamp), value))
        return {ref: by_workload.get((ref.namespace, ref.name), []) for ref in refs}

    async def probe(self) -> SourceHealth:
        """Ask Prometheus a trivial query, so health is known before the first real one."""
        await self._call(
            "probe", lambda prom: prom.custom_query("vector(1)", timeout=self._timeout)
        )
        return self.health()

    # ----------------------------------------------------------------------------- health

    def health(self) -> SourceHealth:
        """Healthy iff the most recent call got an answer; the detail says what failed last."""
        failure = self._last_failure
        if failure is not None and (self._last_success is None or failure.at >= self._last_success):
            return SourceHealth(False, failure.detail, self._last_success)
        if self._last_success is None:
            return SourceHealth(False, f"no answer from {self.url} yet", None)
        return SourceHealth(True, "", self._last_success)

    async def close(self) -> None:
        """Close every pooled HTTP session (idempotent)."""
        self._closed = True
        clients, self._clients, self._idle = self._clients, [], []
        for client in clients:
            client.close()

    # --------------------------------------------------------------------------- plumbing

    def _acquire(self) -> PrometheusConnect:
        if self._closed:
            raise RuntimeError("PrometheusSource is closed")
        if self._idle:
            return self._idle.pop()
        client = PrometheusConnect(
            url=self.url,
            retry=Retry(total=0, raise_on_status=False),
            timeout=self._timeout,
        )
        self._clients.append(client)
        return client

    async def _call(self, what: str, call: Callable[[PrometheusConnect], Any]) -> Any | None:
        """Run ``call`` in a thread with bounded retries; record the outcome for ``health()``."""
        detail = ""
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff * 2.0 ** (attempt - 1))
            client = self._acquire()
            try:
                result = await asyncio.to_thread(_checked, call, client)
            except _FinalError as error:
                self._release(client)
                detail = f"{what}: Prometheus refused the query: {error}"
                break
            except Exception as error:  # connection, timeout, 5xx, malformed body
                self._release(client)
                detail = f"{what}: {self.url} unreachable or failing: {_describe(error)}"
                log.debug("prometheus %s attempt %d failed: %s", what, attempt + 1, detail)
                continue
            # A cancelled call leaves its client to the thread; close() still closes it.
            self._release(client)
            self._last_success = self._clock()
            return result
        was_healthy = self.health().healthy
        self._last_failure = _Failure(self._clock(), f"{detail} (after {attempt + 1} attempts)")
        if was_healthy:
            log.warning("metrics source unhealthy: %s", self._last_failure.detail)
        return None

    def _release(self, client: PrometheusConnect) -> None:
        if self._closed:
            client.close()
        else:
            self._idle.append(client)


def _checked(call: Callable[[PrometheusConnect], Any], client: PrometheusConnect) -> Any:
    """Runs in the worker thread: classify a refusal as final, anything else as retryable."""
    try:
        result = call(client)
    except PrometheusApiClientException as error:
        match = _STATUS_RE.search(str(error))
        status = int(match.group(1)) if match else None
        if status is not None and status not in _RETRYABLE_STATUS:
            raise _FinalError(_short(str(error))) from error
        raise
    if not isinstance(result, list):
        raise TypeError(f"unexpected result type {type(result).__name__}")
    return result


def _workload_key(series: Mapping[str, Any]) -> tuple[str, str] | None:
    labels = series.get("metric", {})
    namespace, workload = labels.get("namespace"), labels.get("workload")
    if not namespace or not workload:
        return None
    return str(namespace), str(workload)


def _number(raw: object) -> float | None:
    """A finite sample value, else None (histogram_quantile yields NaN without traffic)."""
    try:
        value = float(str(raw))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {_short(str(error))}"


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
