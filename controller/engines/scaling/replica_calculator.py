"""A port of the Kubernetes HPA replica calculator, exact to the integer division.

Follows ``pkg/controller/podautoscaler/replica_calculator.go`` and ``metrics/utilization.go``
(kubernetes/kubernetes master with configurable tolerances and the ``max(100, target)``
fill-in for missing pods). Metric values are integer milli-units, as Kubernetes reads them
with ``Quantity.MilliValue()``, so every truncation lands where it does in Go. Times are
unix seconds; ``now`` is passed in.

Each ``*_replicas`` function raises ``MetricUnavailableError`` where the Go code returns an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
# Go's zero time.Time in unix seconds: what an unset timestamp compares as in the Go tests.
GO_ZERO_TIME = -62135596800.0

CPU = "cpu"


class MetricUnavailableError(Exception):
    """No proposal from this metric (Kubernetes returns an error and sets a Failed* condition)."""


class MissingRequestError(MetricUnavailableError):
    """A pod lacks the request a Utilization target is measured against: a setup error."""


@dataclass(frozen=True, slots=True)
class Tolerances:
    """The band ``(1 - scale_down) <= ratio <= (1 + scale_up)`` in which nothing changes."""

    scale_down: float = 0.1
    scale_up: float = 0.1

    def is_within(self, usage_ratio: float) -> bool:
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)


@dataclass(frozen=True, slots=True)
class Timing:
    """The controller flags that decide when a CPU sample is trusted (Kubernetes defaults)."""

    cpu_initialization_period: float = 300.0
    initial_readiness_delay: float = 30.0


@dataclass(frozen=True, slots=True)
class Container:
    name: str
    requests: Mapping[str, int] = field(default_factory=dict)  # resource -> milli-units
    restartable_init: bool = False  # a sidecar (init container with restartPolicy Always)


@dataclass(frozen=True, slots=True)
class Pod:
    """What the calculator needs of a pod. ``ready=None`` means no Ready condition;
    ``start_time=None`` means no start time (both make a CPU sample untrusted)."""

    name: str
    phase: str = "Running"
    deleted: bool = False
    ready: bool | None = True
    ready_since: float = GO_ZERO_TIME  # lastTransitionTime of the Ready condition
    start_time: float | None = GO_ZERO_TIME
    containers: tuple[Container, ...] = ()
    pod_requests: Mapping[str, int] | None = None  # pod-level requests (KEP-2837), if set


@dataclass(frozen=True, slots=True)
class Sample:
    """One pod's metric sample in milli-units, when it was taken and over which window."""

    value: int
    timestamp: float = GO_ZERO_TIME
    window: float = 60.0


@dataclass(frozen=True, slots=True)
class PodGroups:
    ready_count: int
    unready: frozenset[str]
    missing: frozenset[str]
    ignored: frozenset[str]


@dataclass(frozen=True, slots=True)
class UtilizationProposal:
    replicas: int
    utilization: int  # percent of request, truncated
    raw_average: int  # milli-units per pod, truncated


@dataclass(frozen=True, slots=True)
class UsageProposal:
    replicas: int
    usage: int  # milli-units: average per pod, or the object/external value


def go_div(numerator: int, denominator: int) -> int:
    """Integer division truncating toward zero, as Go's ``/`` on int64."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator >= 0) else -quotient


def _go_int32_ceil(value: float) -> int:
    return math.ceil(value)


def group_pods(
    pods: Sequence[Pod],
    samples: Mapping[str, Sample],
    resource: str | None,
    now: float,
    timing: Timing,
) -> PodGroups:
    """``groupPods``: ignored (deleted, Failed), unready (Pending, or an untrusted CPU sample),
    missing (no sample), ready (counted)."""
    ready_count = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    is_cpu = resource == CPU
    for pod in pods:
        if pod.deleted or pod.phase == "Failed":
            ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            unready.add(pod.name)
            continue
        sample = samples.get(pod.name)
        if sample is None:
            missing.add(pod.name)
            continue
        if is_cpu:
            if pod.ready is None or pod.start_time is None:
                is_unready = True
            elif pod.start_time + timing.cpu_initialization_period > now:
                # Within the init period: distrust a sample not taken a full window after
                # the last readiness change (the CPU burst of a starting process).
                is_unready = (not pod.ready) or sample.timestamp < pod.ready_since + sample.window
            else:
                # Afterwards only a pod that has never become ready is left out.
                is_unready = (not pod.ready) and (
                    pod.start_time + timing.initial_readiness_delay > pod.ready_since
                )
            if is_unready:
                unready.add(pod.name)
                continue
        ready_count += 1
    return PodGroups(ready_count, frozenset(unready), frozenset(missing), frozenset(ignored))


def calculate_requests(pods: Sequence[Pod], container: str, resource: str) -> dict[str, int]:
    """``calculateRequests``: per pod, the named container's request, else the pod-level
    request, else the sum over containers and sidecars. A missing request is an error."""
    requests: dict[str, int] = {}
    for pod in pods:
        if not container and pod.pod_requests is not None:
            if resource not in pod.pod_requests:
                raise MissingRequestError(
                    f"missing pod-level request for {resource} in Pod {pod.name}"
                )
            requests[pod.name] = pod.pod_requests[resource]
            continue
        total = 0
        found = False
        # Regular containers first, then sidecars, as Kubernetes appends them.
        ordered = sorted(pod.containers, key=lambda each: each.restartable_init)
        for candidate in ordered:
            if not container or container == candidate.name:
                if resource not in candidate.requests:
                    raise MissingRequestError(
                        f"missing request for {resource} in container {candidate.name} "
                        f"of Pod {pod.name}"
                    )
                total += candidate.requests[resource]
            if container == candidate.name:
                found = True
                break
        if container and not found:
            raise MissingRequestError(f"container {container} not found in Pod {pod.name}")
        requests[pod.name] = total
    return requests


def resource_utilization_ratio(
    values: Mapping[str, int], requests: Mapping[str, int], target_utilization: int
) -> tuple[float, int, int]:
    """``GetResourceUtilizationRatio``: (ratio, utilization %, raw average), all truncated as Go."""
    metrics_total = 0
    requests_total = 0
    entries = 0
    for name, value in values.items():
        request = requests.get(name)
        if request is None:
            continue  # a metric for a pod we do not know
        metrics_total += value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricUnavailableError("no metrics returned matched known pods")
    utilization = go_div(metrics_total * 100, requests_total)
    return utilization / target_utilization, utilization, go_div(metrics_total, entries)


def metric_usage_ratio(values: Mapping[str, int], target_usage: int) -> tuple[float, int]:
    """``GetMetricUsageRatio``: (ratio, average), the average truncated as Go."""
    usage = go_div(sum(values.values()), len(values))
    return usage / target_usage, usage


def _sample_values(samples: Mapping[str, Sample], drop: Iterable[str]) -> dict[str, int]:
    values = {name: sample.value for name, sample in samples.items()}
    for name in drop:
        values.pop(name, None)
    return values


def resource_utilization_replicas(
    current_replicas: int,
    target_utilization: int,
    resource: str,
    pods: Sequence[Pod],
    samples: Mapping[str, Sample],
    tolerances: Tolerances,
    now: float,
    timing: Timing,
    container: str = "",
) -> UtilizationProposal:
    """``GetResourceReplicas``: a Utilization target on a (container) resource."""
    if not samples:
        raise MetricUnavailableError(
            f"unable to get metrics for resource {resource}: no metrics returned from resource "
            "metrics API"
        )
    if not pods:
        raise MetricUnavailableError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, samples, resource, now, timing)
    values = _sample_values(samples, (*groups.ignored, *groups.unready))
    if not values:
        raise MetricUnavailableError(
            "did not receive metrics for targeted pods (pods might be unready)"
        )
    requests = calculate_requests(pods, container, resource)
    ratio, utilization, raw_average = resource_utilization_ratio(
        values, requests, target_utilization
    )

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.is_within(ratio):
            return UtilizationProposal(current_replicas, utilization, raw_average)
        return UtilizationProposal(
            _go_int32_ceil(ratio * groups.ready_count), utilization, raw_average
        )

    if groups.missing:
        if ratio < 1.0:
            # Scale-down: a pod without a sample counts as using its full request, or the
            # target when the target is above 100 %.
            fallback = max(100, target_utilization)
            for name in groups.missing:
                values[name] = go_div(requests[name] * fallback, 100)
        elif ratio > 1.0:
            for name in groups.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0

    new_ratio, _, _ = resource_utilization_ratio(values, requests, target_utilization)
    if tolerances.is_within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return UtilizationProposal(current_replicas, utilization, raw_average)
    new_replicas = _go_int32_ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return UtilizationProposal(current_replicas, utilization, raw_average)
    return UtilizationProposal(new_replicas, utilization, raw_average)


def plain_metric_replicas(
    current_replicas: int,
    target_usage: int,
    resource: str | None,
    pods: Sequence[Pod],
    samples: Mapping[str, Sample],
    tolerances: Tolerances,
    now: float,
    timing: Timing,
) -> UsageProposal:
    """``calcPlainMetricReplicas``: Pods metrics and Resource AverageValue targets."""
    if not samples:
        source = "resource" if resource else "custom"
        raise MetricUnavailableError(f"no metrics returned from {source} metrics API")
    if not pods:
        raise MetricUnavailableError("no pods returned by selector while calculating replica count")
    groups = group_pods(pods, samples, resource, now, timing)
    values = _sample_values(samples, (*groups.ignored, *groups.unready))
    if not values:
        raise MetricUnavailableError(
            "did not receive metrics for targeted pods (pods might be unready)"
        )
    ratio, usage = metric_usage_ratio(values, target_usage)

    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.is_within(ratio):
            return UsageProposal(current_replicas, usage)
        return UsageProposal(_go_int32_ceil(ratio * groups.ready_count), usage)

    if groups.missing:
        if ratio < 1.0:
            for name in groups.missing:
                values[name] = target_usage  # exactly on target
        elif ratio > 1.0:
            for name in groups.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0

    new_ratio, _ = metric_usage_ratio(values, target_usage)
    if tolerances.is_within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return UsageProposal(current_replicas, usage)
    new_replicas = _go_int32_ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return UsageProposal(current_replicas, usage)
    return UsageProposal(new_replicas, usage)


def ready_pod_count(pods: Sequence[Pod]) -> int:
    """``getReadyPodsCount``: Running and Ready, the multiplier for Object/External values."""
    if not pods:
        raise MetricUnavailableError(
            "unable to calculate ready pods: no pods returned by selector while calculating "
            "replica count"
        )
    return sum(1 for pod in pods if pod.phase == "Running" and pod.ready is True)


def usage_ratio_replicas(
    current_replicas: int, usage_ratio: float, tolerances: Tolerances, pods: Sequence[Pod]
) -> int:
    """``getUsageRatioReplicaCount``: from zero replicas it is ``ceil(ratio)`` (scale from zero)."""
    if current_replicas == 0:
        return _go_int32_ceil(usage_ratio)
    if tolerances.is_within(usage_ratio):
        return current_replicas
    proposal = usage_ratio * ready_pod_count(pods)
    return MAX_INT32 if proposal > MAX_INT32 else _go_int32_ceil(proposal)


def object_value_replicas(
    current_replicas: int,
    target_value: int,
    value: int,
    tolerances: Tolerances,
    pods: Sequence[Pod],
) -> UsageProposal:
    """``GetObjectMetricReplicas``: an Object metric with a Value target."""
    replicas = usage_ratio_replicas(current_replicas, value / target_value, tolerances, pods)
    return UsageProposal(replicas, value)


def object_average_value_replicas(
    status_replicas: int, target_average: int, value: int, tolerances: Tolerances
) -> UsageProposal:
    """``GetObjectPerPodMetricReplicas``: an Object metric with an AverageValue target."""
    replicas = status_replicas
    usage_ratio = value / (target_average * replicas) if replicas else math.inf
    if not tolerances.is_within(usage_ratio):
        replicas = _go_int32_ceil(value / target_average)
    average = _go_int32_ceil(value / status_replicas) if status_replicas else value
    return UsageProposal(replicas, average)


def _capped_sum(values: Iterable[int]) -> int:
    total = 0
    for value in values:
        if value > 0 and total > MAX_INT64 - value:
            return MAX_INT64
        total += value
    return total


def external_value_replicas(
    current_replicas: int,
    target_value: int,
    values: Sequence[int],
    tolerances: Tolerances,
    pods: Sequence[Pod],
) -> UsageProposal:
    """``GetExternalMetricReplicas``: the sum of all series against a Value target."""
    if not values:
        raise MetricUnavailableError("no metrics returned from external metrics API")
    usage = _capped_sum(values)
    replicas = usage_ratio_replicas(current_replicas, usage / target_value, tolerances, pods)
    return UsageProposal(replicas, usage)


def external_average_value_replicas(
    status_replicas: int, target_average: int, values: Sequence[int], tolerances: Tolerances
) -> UsageProposal:
    """``GetExternalPerPodMetricReplicas``: the sum of all series per replica."""
    if not values:
        raise MetricUnavailableError("no metrics returned from external metrics API")
    usage = _capped_sum(values)
    replicas = status_replicas
    usage_ratio = usage / (target_average * replicas) if replicas else math.inf
    if not tolerances.is_within(usage_ratio):
        proposal = math.ceil(usage / target_average)
        replicas = MAX_INT32 if proposal > MAX_INT32 else proposal
    if float(usage) >= float(MAX_INT64):
        average = MAX_INT64
    else:
        average = _go_int32_ceil(usage / status_replicas) if status_replicas else usage
    return UsageProposal(replicas, average)


# --- Kubernetes quantity notation -------------------------------------------------------------

_DECIMAL_SUFFIXES = ((18, "E"), (15, "P"), (12, "T"), (9, "G"), (6, "M"), (3, "k"), (0, ""))


def format_milli_quantity(milli: int) -> str:
    """``resource.NewMilliQuantity(milli, DecimalSI).String()``: the largest decimal SI suffix
    that keeps an integer mantissa ("1500m", "2", "12k")."""
    if milli == 0:
        return "0"
    sign = "-" if milli < 0 else ""
    magnitude = abs(milli)
    if magnitude % 1000:
        return f"{sign}{magnitude}m"
    base = magnitude // 1000
    for exponent, suffix in _DECIMAL_SUFFIXES:
        factor = 10**exponent
        if base % factor == 0:
            return f"{sign}{base // factor}{suffix}"
    return f"{sign}{base}"  # pragma: no cover - exponent 0 always divides
