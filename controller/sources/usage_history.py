"""Per-container usage history from Prometheus, for right-sizing (``linescale report resources``).

Why these choices:

* KRR-style batching: one query per metric answers for every container of the selected
  namespaces, so a report over 5,000 containers costs five queries, not 25,000. No workload or
  pod name ever appears in the PromQL.
* Two metric sets are accepted in the same query, joined with ``or`` after aggregating to
  ``(namespace, pod, container)``: cAdvisor / kube-state-metrics names first, then the
  Linescale agent's own (``linescale_container_*``, labels from ``agent/observe/exposition.py``).
  ``or`` keeps the left side where both describe the same container, so a cluster running both
  is not counted twice. The agent's memory gauge is cgroup ``memory.current`` (page cache
  included), a little above cAdvisor's working set: a conservative stand-in.
* Usage and OOMs are range queries on one step grid; every sample covers a window of
  ``max(5m, step)`` (CPU ``rate``, memory ``max_over_time``; the 5m is a parameter) so no
  scrape falls between two samples and a memory peak between steps is still seen. The step
  is chosen so a series holds at most ``MAX_POINTS_PER_SERIES`` points (Prometheus refuses
  more than 11,000).
* Requests and limits are instant queries at the end of the history with
  ``last_over_time(...[history])``: pods that ended during the history still say what they asked
  for. Where pods of one workload disagree (a rollout), the running pods win, then the largest.
* prometheus-api-client is synchronous, so each query runs in a worker thread
  (``asyncio.to_thread``) under a per-request timeout; urllib3 retries transient failures
  (connection errors, 408/429/5xx) a bounded number of times, and a refusal (4xx) is final. A
  one-off report can afford urllib3's retries, which the reconcile loop's source cannot.
* Pods map to workloads with :func:`controller.sources.workloads.workload_of`, the rule the
  rest of the controller uses.

The result converts to the ``decide rightsizing`` input (:meth:`UsageHistory.decide_input`),
so a report from Prometheus and ``linescale decide`` on a saved file answer alike.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from controller.sources.workloads import workload_of
from shared.quantities import format_cpu, format_memory

__all__ = [
    "DEFAULT_WINDOW_SECONDS",
    "MAX_POINTS_PER_SERIES",
    "ContainerHistory",
    "ContainerKey",
    "OomEvent",
    "PrometheusUsageHistory",
    "QueryName",
    "UsageHistory",
    "UsageHistoryError",
    "UsageSample",
    "choose_step",
    "histories_from_results",
    "namespace_regex",
    "usage_queries",
]

QueryName = Literal["cpu", "memory", "requests", "limits", "oom"]

MAX_POINTS_PER_SERIES: Final = 2000
"""Points per series and query: 14 days at a 10-minute step (Prometheus' own cap is 11,000)."""
MIN_STEP_SECONDS: Final = 1.0
DEFAULT_WINDOW_SECONDS: Final = 300.0  # the 5-minute rate window of the kubernetes-mixin

_RETRYABLE_STATUS: Final = (408, 429, 500, 502, 503, 504)
_SCOPE: Final = '{namespace=~"$namespaces",pod!="",container!="",container!="POD"$extra}'
_RESOURCE_SCOPE: Final = _SCOPE.replace("$extra", ',resource=~"cpu|memory"')
_OOM_SCOPE: Final = _SCOPE.replace("$extra", ',reason="OOMKilled"')
_BY_CONTAINER: Final = "max by (namespace, pod, container)"
_BY_RESOURCE: Final = "max by (namespace, pod, container, resource)"

# One template per query; ``$namespaces``, ``$window`` and ``$history`` are filled in per call.
_TEMPLATES: Final[Mapping[QueryName, str]] = {
    "cpu": (
        f"{_BY_CONTAINER} (rate(container_cpu_usage_seconds_total{_SCOPE}[$window]))"
        f" or {_BY_CONTAINER} (rate(linescale_container_cpu_usage_seconds_total{_SCOPE}[$window]))"
    ),
    "memory": (
        f"{_BY_CONTAINER} (max_over_time(container_memory_working_set_bytes{_SCOPE}[$window]))"
        f" or {_BY_CONTAINER}"
        f" (max_over_time(linescale_container_memory_usage_bytes{_SCOPE}[$window]))"
    ),
    "requests": (
        f"{_BY_RESOURCE} (last_over_time(kube_pod_container_resource_requests"
        f"{_RESOURCE_SCOPE}[$history]))"
    ),
    "limits": (
        f"{_BY_RESOURCE} (last_over_time(kube_pod_container_resource_limits"
        f"{_RESOURCE_SCOPE}[$history]))"
        f" or label_replace({_BY_CONTAINER} (last_over_time("
        f'linescale_container_memory_limit_bytes{_SCOPE}[$history])), "resource", "memory", "", "")'
    ),
    "oom": (
        f"{_BY_CONTAINER} (kube_pod_container_status_last_terminated_reason"
        f"{_OOM_SCOPE} > 0)"
        f" or {_BY_CONTAINER} (increase(linescale_container_oom_kills_total{_SCOPE}[$window]) > 0)"
    ),
}
_RANGE_QUERIES: Final[tuple[QueryName, ...]] = ("cpu", "memory", "oom")
QUERY_ORDER: Final[tuple[QueryName, ...]] = ("cpu", "memory", "requests", "limits", "oom")
QUERY_LABELS: Final[Mapping[QueryName, str]] = {
    "cpu": "CPU usage",
    "memory": "memory working set",
    "requests": "requests",
    "limits": "limits",
    "oom": "OOM kills",
}


class UsageHistoryError(Exception):
    """Prometheus could not answer (unreachable, or it refused a query); the message says why."""


# -------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True, order=True)
class ContainerKey:
    namespace: str
    workload: str
    container: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.workload}/{self.container}"


@dataclass(frozen=True, slots=True)
class UsageSample:
    """One pod's usage at one step: CPU in cores, memory in bytes (None where not observed)."""

    time: float
    pod: str
    cpu_cores: float | None
    memory_bytes: float | None


@dataclass(frozen=True, slots=True)
class OomEvent:
    """An OOM kill: when it was first seen, and the memory the container had then (its limit),
    None when nothing says."""

    time: float
    pod: str
    memory_bytes: float | None


@dataclass(frozen=True, slots=True)
class ContainerHistory:
    """Everything known about one container of one workload, over all its pods."""

    key: ContainerKey
    requests: Mapping[str, float] = field(default_factory=dict)  # "cpu" cores, "memory" bytes
    limits: Mapping[str, float] = field(default_factory=dict)
    samples: tuple[UsageSample, ...] = ()
    oom_events: tuple[OomEvent, ...] = ()
    replicas: int = 0  # pods with a sample at the newest step seen for this container

    def decide_entry(self) -> dict[str, Any]:
        """This container as one entry of the ``decide rightsizing`` input.

        Only samples with both CPU and memory are kept: the input pairs them, and the first
        step of a pod has memory but no CPU rate yet.
        """
        return {
            "namespace": self.key.namespace,
            "workload": self.key.workload,
            "container": self.key.container,
            "requests": _quantities(self.requests),
            "limits": _quantities(self.limits),
            "samples": [
                {"time": s.time, "cpu": s.cpu_cores, "memory": s.memory_bytes}
                for s in self.samples
                if s.cpu_cores is not None and s.memory_bytes is not None
            ],
            "oomEvents": [
                {"time": e.time}
                if e.memory_bytes is None
                else {"time": e.time, "memory": math.ceil(e.memory_bytes)}
                for e in self.oom_events
            ],
        }


@dataclass(frozen=True, slots=True)
class UsageHistory:
    start: float
    end: float
    step_seconds: float
    containers: tuple[ContainerHistory, ...]

    def decide_input(self, policy: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``decide rightsizing`` input for these containers, evaluated at ``end``."""
        return {
            "kind": "rightsizing",
            "now": self.end,
            "containers": [history.decide_entry() for history in self.containers],
            "policy": dict(policy or {}),
        }


def _quantities(amounts: Mapping[str, float]) -> dict[str, str]:
    """Kubernetes notation: CPU to the millicore (requests are millicore quantities, so the
    float from Prometheus is rounded, not truncated), memory to the byte, rounded up."""
    out: dict[str, str] = {}
    if "cpu" in amounts:
        out["cpu"] = format_cpu(round(amounts["cpu"] * 1000))
    if "memory" in amounts:
        out["memory"] = format_memory(math.ceil(amounts["memory"]))
    return out


# ------------------------------------------------------------------------------ queries


def namespace_regex(namespaces: Sequence[str]) -> str:
    """A PromQL-string-safe regex matching exactly ``namespaces``; every namespace when empty."""
    if not namespaces:
        return ".+"
    alternation = "|".join(re.escape(ns) for ns in sorted(set(namespaces)))
    return alternation.replace("\\", "\\\\").replace('"', '\\"')


def choose_step(history_seconds: float, requested: float | None = None) -> float:
    """The query step: ``requested`` if given, else the history over ``MAX_POINTS_PER_SERIES``
    (at least 1 s); never so small that a series would exceed that many points."""
    if history_seconds <= 0:
        raise ValueError(f"history must be positive, got {history_seconds}")
    floor = max(MIN_STEP_SECONDS, history_seconds / MAX_POINTS_PER_SERIES)
    return max(floor, requested) if requested is not None else floor


def _duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def usage_queries(
    namespaces: Sequence[str],
    *,
    history_seconds: float,
    step_seconds: float,
    window_seconds: float = DEFAULT_WINDOW_SECONDS,
) -> dict[QueryName, str]:
    """The PromQL sent for each query, tokens filled in (pure, so tests can read it).

    Each usage sample covers ``max(window_seconds, step_seconds)``: a shorter window than the
    step would leave usage between samples unseen."""
    window = _duration(max(window_seconds, step_seconds))
    regex = namespace_regex(namespaces)
    return {
        name: template.replace("$extra", "")
        .replace("$namespaces", regex)
        .replace("$window", window)
        .replace("$history", _duration(history_seconds))
        for name, template in _TEMPLATES.items()
    }


# ------------------------------------------------------------------------------ parsing


def _labels(series: Mapping[str, Any]) -> tuple[str, str, str] | None:
    metric = series.get("metric", {})
    namespace, pod, container = metric.get("namespace"), metric.get("pod"), metric.get("container")
    if not namespace or not pod or not container:
        return None
    return str(namespace), str(pod), str(container)


def _finite(raw: object) -> float | None:
    try:
        value = float(str(raw))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _points(series: Mapping[str, Any]) -> Iterable[tuple[float, float]]:
    for stamp, raw in series.get("values", ()):
        value = _finite(raw)
        if value is not None:
            yield float(stamp), value


PodContainer = tuple[str, str, str]  # (namespace, pod, container)


def _range_by_pod(result: Sequence[Mapping[str, Any]]) -> dict[PodContainer, dict[float, float]]:
    out: dict[PodContainer, dict[float, float]] = {}
    for series in result:
        labels = _labels(series)
        if labels is not None:
            out.setdefault(labels, {}).update(_points(series))
    return out


def _instant_by_pod(
    result: Sequence[Mapping[str, Any]],
) -> dict[PodContainer, dict[str, float]]:
    out: dict[PodContainer, dict[str, float]] = {}
    for series in result:
        labels = _labels(series)
        resource = series.get("metric", {}).get("resource")
        value = _finite(series.get("value", (None, None))[1])
        if labels is not None and resource in ("cpu", "memory") and value is not None:
            out.setdefault(labels, {})[str(resource)] = value
    return out


def _first_of_each_run(times: Iterable[float], step: float) -> list[float]:
    """The start of every run of consecutive steps: one OOM keeps its series up for a while
    (the kube-state-metrics gauge until the next termination, ``increase`` for a window)."""
    starts: list[float] = []
    previous: float | None = None
    for time in sorted(times):
        if previous is None or time - previous > step * 1.5:
            starts.append(time)
        previous = time
    return starts


def _merge(
    pods: Iterable[str],
    running: set[str],
    by_pod: Mapping[PodContainer, Mapping[str, float]],
    namespace: str,
    container: str,
) -> dict[str, float]:
    """Requests (or limits) for a workload's container: the running pods' values win, then the
    largest, resource by resource."""
    merged: dict[str, tuple[bool, float]] = {}
    for pod in pods:
        for resource, value in by_pod.get((namespace, pod, container), {}).items():
            candidate = (pod in running, value)
            if resource not in merged or candidate > merged[resource]:
                merged[resource] = candidate
    return {resource: value for resource, (_, value) in merged.items()}


def histories_from_results(
    results: Mapping[QueryName, Sequence[Mapping[str, Any]]],
    *,
    step_seconds: float,
    workload_of_pod: Callable[[str], str] = workload_of,
) -> tuple[ContainerHistory, ...]:
    """Group the raw query results (``data.result`` of each query) by (namespace, workload,
    container), sorted. Containers with neither usage nor requests are left out.

    An OOM's memory is the container's memory limit in that pod (the kill happens there); with
    no limit, the highest memory seen in that pod up to the kill, then the request, else
    unknown (the engine then uses the limit, request or peak, as VPA's ``RecordOOM``).
    """
    cpu = _range_by_pod(results.get("cpu", ()))
    memory = _range_by_pod(results.get("memory", ()))
    oom = _range_by_pod(results.get("oom", ()))
    requests = _instant_by_pod(results.get("requests", ()))
    limits = _instant_by_pod(results.get("limits", ()))

    pods_of: dict[ContainerKey, set[str]] = {}
    for namespace, pod, container in {*cpu, *memory, *requests, *oom}:
        key = ContainerKey(namespace, workload_of_pod(pod), container)
        pods_of.setdefault(key, set()).add(pod)

    histories = []
    for key, pods in sorted(pods_of.items()):
        samples: list[UsageSample] = []
        ooms: list[OomEvent] = []
        for pod in sorted(pods):
            ident = (key.namespace, pod, key.container)
            pod_cpu, pod_memory = cpu.get(ident, {}), memory.get(ident, {})
            samples += [
                UsageSample(t, pod, pod_cpu.get(t), pod_memory.get(t))
                for t in sorted(pod_cpu.keys() | pod_memory.keys())
            ]
            for at in _first_of_each_run(oom.get(ident, {}), step_seconds):
                seen = [m for t, m in pod_memory.items() if t <= at]
                memory_then = (
                    limits.get(ident, {}).get("memory")
                    or max(seen, default=None)
                    or requests.get(ident, {}).get("memory")
                )
                ooms.append(OomEvent(at, pod, memory_then or None))
        newest = max((s.time for s in samples), default=None)
        running = {s.pod for s in samples if s.time == newest}
        if not samples and not any((key.namespace, p, key.container) in requests for p in pods):
            continue
        histories.append(
            ContainerHistory(
                key=key,
                requests=_merge(pods, running, requests, key.namespace, key.container),
                limits=_merge(pods, running, limits, key.namespace, key.container),
                samples=tuple(sorted(samples, key=lambda s: (s.time, s.pod))),
                oom_events=tuple(sorted(ooms, key=lambda e: (e.time, e.pod))),
                replicas=len(running),
            )
        )
    return tuple(histories)


# ------------------------------------------------------------------------------ adapter


class PrometheusUsageHistory:
    """Fetches :class:`UsageHistory` with five batched queries (three range, two instant)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 30,
        retries: int = 2,
        backoff_seconds: float = 0.5,
    ) -> None:
        if timeout_seconds <= 0 or retries < 0 or backoff_seconds < 0:
            raise ValueError("timeout_seconds must be > 0, retries and backoff_seconds >= 0")
        self.url = url.rstrip("/")
        self._timeout = timeout_seconds
        self._retry = Retry(
            total=retries,
            backoff_factor=backoff_seconds,
            status_forcelist=_RETRYABLE_STATUS,
            allowed_methods=("GET",),
            raise_on_status=False,  # the last answer goes back to the library, which names it
        )

    async def fetch(
        self,
        namespaces: Sequence[str],
        *,
        start: float,
        end: float,
        step_seconds: float,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        on_query: Callable[[QueryName], None] = lambda name: None,
    ) -> UsageHistory:
        """Run the queries one after another (``on_query`` is told before each, for progress),
        then group the answers. ``UsageHistoryError`` if any query fails."""
        if not end > start:
            raise ValueError("end must be after start")
        queries = usage_queries(
            namespaces,
            history_seconds=end - start,
            step_seconds=step_seconds,
            window_seconds=window_seconds,
        )
        client = PrometheusConnect(url=self.url, retry=self._retry, timeout=self._timeout)
        try:
            results: dict[QueryName, Sequence[Mapping[str, Any]]] = {}
            for name in QUERY_ORDER:
                on_query(name)
                results[name] = await asyncio.to_thread(
                    self._query, client, name, queries[name], start, end, step_seconds
                )
        finally:
            client.close()
        containers = histories_from_results(results, step_seconds=step_seconds)
        return UsageHistory(start, end, step_seconds, containers)

    def _query(
        self,
        client: PrometheusConnect,
        name: QueryName,
        query: str,
        start: float,
        end: float,
        step_seconds: float,
    ) -> Sequence[Mapping[str, Any]]:
        """Runs in a worker thread."""
        params = {"timeout": f"{self._timeout:g}s"}
        try:
            if name in _RANGE_QUERIES:
                result = client.custom_query_range(
                    query,
                    start_time=datetime.fromtimestamp(start, tz=UTC),
                    end_time=datetime.fromtimestamp(end, tz=UTC),
                    step=f"{step_seconds:g}",
                    params=params,
                    timeout=self._timeout,
                )
            else:
                params["time"] = f"{end:.3f}"
                result = client.custom_query(query, params=params, timeout=self._timeout)
        except PrometheusApiClientException as error:
            raise UsageHistoryError(
                f"{QUERY_LABELS[name]}: Prometheus refused the query: {_short(error)}"
            ) from None
        except Exception as error:  # connection refused, timeout, malformed body
            raise UsageHistoryError(
                f"{QUERY_LABELS[name]}: {self.url} unreachable or failing: "
                f"{type(error).__name__}: {_short(error)}"
            ) from None
        if not isinstance(result, list):
            raise UsageHistoryError(
                f"{QUERY_LABELS[name]}: unexpected answer of type {type(result).__name__}"
            )
        return result


def _short(error: BaseException, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
