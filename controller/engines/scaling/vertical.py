"""Vertical scaling as the VPA does it: usage history, recommendation, update and recreate rules.

Ported from kubernetes/autoscaler ``vertical-pod-autoscaler`` so that its own test cases give the
same answers here:

- ``pkg/recommender/model/aggregate_container_state.go`` and ``container.go``: CPU samples into a
  decaying histogram; one memory peak per container per aggregation interval (24 h), replacing the
  interval's old peak when a higher one arrives; OOM kills as artificial memory samples.
- ``pkg/recommender/logic/estimator.go`` and ``recommender.go``: percentile → safety margin →
  confidence multiplier (bounds only) → pod minimum split across containers.
- ``pkg/utils/vpa/capping.go``: ``minAllowed`` / ``maxAllowed`` capping of target and bounds.
- ``pkg/updater/priority/update_priority_calculator.go`` and ``priority_processor.go``: whether a
  pod's requests are worth updating, and ``pkg/updater/restriction`` (eviction tolerance).

Amounts are integers, as VPA's ``ResourceAmount``: CPU in millicores, memory in bytes. Every
step converts a float result back to an integer by truncation and clamps it to [0, 1e14], as
``resourceAmountFromFloat`` does; that truncation is part of the answers VPA gives.

History objects accumulate samples (bounded: two fixed-size histograms and a few scalars per
container). Every decision here is a pure function of its arguments: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from controller.engines.scaling.histogram import (
    CPU_HISTOGRAM_OPTIONS,
    MEMORY_HISTOGRAM_OPTIONS,
    MIN_SAMPLE_WEIGHT,
    DecayingHistogram,
    HistogramOptions,
)
from controller.ports import ContainerState, Resources

ResourceName = Literal["cpu", "memory"]
ScaleDirection = Literal["up", "down", "none"]
RESOURCES: tuple[ResourceName, ...] = ("cpu", "memory")

# types.go MaxResourceAmount: the largest amount a recommendation can hold.
MAX_RESOURCE_AMOUNT = 10**14
MIB = 1024 * 1024


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class AggregationSettings:
    """How usage is aggregated (``aggregations_config.go`` and ``container.go`` defaults)."""

    memory_aggregation_interval: timedelta = timedelta(hours=24)
    memory_aggregation_interval_count: int = 8
    cpu_half_life: timedelta = timedelta(hours=24)
    memory_half_life: timedelta = timedelta(hours=24)
    oom_bump_up_ratio: float = 1.2
    oom_min_bump_up_bytes: float = 100 * MIB
    cpu_histogram_options: HistogramOptions = CPU_HISTOGRAM_OPTIONS
    memory_histogram_options: HistogramOptions = MEMORY_HISTOGRAM_OPTIONS

    @property
    def memory_aggregation_window(self) -> timedelta:
        """History older than this (8 * 24 h) is garbage-collected by VPA (``isExpired``)."""
        return self.memory_aggregation_interval * self.memory_aggregation_interval_count


@dataclass(frozen=True, slots=True)
class RecommenderSettings:
    """The estimation chain's knobs (``recommender.go`` flags and defaults)."""

    safety_margin_fraction: float = 0.15
    target_percentile: float = 0.9
    lower_bound_percentile: float = 0.5
    upper_bound_percentile: float = 0.95
    pod_min_cpu_millicores: float = 25
    pod_min_memory_mb: float = 250  # MiB in fact: VPA multiplies by 1024 * 1024
    # Upper bound * (1 + 1/conf)^1: no history → ∞, 12 h → *3, 24 h → *2, 1 week → *1.14.
    upper_bound_confidence_multiplier: float = 1.0
    upper_bound_confidence_exponent: float = 1.0
    # Lower bound * (1 + 0.001/conf)^-2: no history → *0, 5 min → *0.6, 1 h → *0.95.
    lower_bound_confidence_multiplier: float = 0.001
    lower_bound_confidence_exponent: float = -2.0


@dataclass(frozen=True, slots=True)
class UpdaterSettings:
    """The VPA updater's defaults (``pkg/updater/config``, ``update_priority_calculator.go``)."""

    min_change_priority: float = 0.1  # --pod-update-threshold
    pod_lifetime_update_threshold: timedelta = timedelta(hours=12)
    evict_after_oom_threshold: timedelta = timedelta(minutes=10)
    eviction_tolerance_fraction: float = 0.5
    min_replicas: int = 2


DEFAULT_AGGREGATION = AggregationSettings()
DEFAULT_RECOMMENDER = RecommenderSettings()
DEFAULT_UPDATER = UpdaterSettings()


# --------------------------------------------------------------------------- amounts


def amount_from_float(amount: float) -> int:
    """``resourceAmountFromFloat``: truncate toward zero, clamp to [0, MAX_RESOURCE_AMOUNT].

    Go turns the NaN of 0 * ∞ (an empty estimate with no confidence) into a negative int64
    on amd64, which the pod minimum then replaces; 0 here ends at the same place.
    """
    if math.isnan(amount) or amount < 0:
        return 0
    if amount > MAX_RESOURCE_AMOUNT:
        return MAX_RESOURCE_AMOUNT
    return int(amount)


def scale_amount(amount: int, factor: float) -> int:
    """``ScaleResource``: amount * factor, truncated and clamped."""
    return amount_from_float(amount * factor)


def cpu_amount_from_cores(cores: float) -> int:
    """``CPUAmountFromCores``: cores → millicores, truncated."""
    return amount_from_float(cores * 1000.0)


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- history


class AggregateUsage:
    """``AggregateContainerState``: the usage histograms of one container name, all replicas.

    Replicas of the same container feed one ``AggregateUsage`` through their own
    ``ContainerUsageHistory``. First/last sample times and the sample count are based on CPU
    samples only, as in VPA; they drive the confidence of the bounds.
    """

    def __init__(self, settings: AggregationSettings = DEFAULT_AGGREGATION) -> None:
        self.settings = settings
        self.cpu_usage = DecayingHistogram(settings.cpu_histogram_options, settings.cpu_half_life)
        self.memory_peaks = DecayingHistogram(
            settings.memory_histogram_options, settings.memory_half_life
        )
        self.first_sample_start: datetime | None = None
        self.last_sample_start: datetime | None = None
        self.total_samples_count = 0
        # VPA stamps CreationTime with the wall clock; we use the first sample of any kind.
        self.created_at: datetime | None = None

    def add_cpu_sample(self, time: datetime, usage_millicores: int) -> None:
        """Every CPU sample weighs ``minSampleWeight`` (0.1) before decay.

        Upstream used max(request cores, 0.1) until the request, always 0 by then, was dropped
        (kubernetes/autoscaler commit ca812b3, Feb 2025, after issue #7818).
        """
        time = _as_utc(time)
        self._touch(time)
        self.cpu_usage.add_sample(usage_millicores / 1000.0, MIN_SAMPLE_WEIGHT, time)
        if self.last_sample_start is None or time > self.last_sample_start:
            self.last_sample_start = time
        if self.first_sample_start is None or time < self.first_sample_start:
            self.first_sample_start = time
        self.total_samples_count += 1

    def add_memory_peak(self, time: datetime, usage_bytes: int) -> None:
        time = _as_utc(time)
        self._touch(time)
        self.memory_peaks.add_sample(float(usage_bytes), 1.0, time)

    def subtract_memory_peak(self, time: datetime, usage_bytes: int) -> None:
        self.memory_peaks.subtract_sample(float(usage_bytes), 1.0, _as_utc(time))

    def merge(self, other: AggregateUsage) -> None:
        """``MergeContainerState``: fold another aggregate (same container name) into this one."""
        self.cpu_usage.merge(other.cpu_usage)
        self.memory_peaks.merge(other.memory_peaks)
        if other.first_sample_start is not None and (
            self.first_sample_start is None or other.first_sample_start < self.first_sample_start
        ):
            self.first_sample_start = other.first_sample_start
        if other.last_sample_start is not None and (
            self.last_sample_start is None or other.last_sample_start > self.last_sample_start
        ):
            self.last_sample_start = other.last_sample_start
        self.total_samples_count += other.total_samples_count
        if other.created_at is not None and (
            self.created_at is None or other.created_at < self.created_at
        ):
            self.created_at = other.created_at

    def has_samples(self) -> bool:
        """Any CPU sample, or any memory peak (an OOM alone counts, kubernetes/autoscaler#5326)."""
        return self.total_samples_count > 0 or not self.memory_peaks.is_empty()

    def is_expired(self, now: datetime) -> bool:
        """``isExpired``: no sample for a whole memory aggregation window (8 days)."""
        window = self.settings.memory_aggregation_window
        now = _as_utc(now)
        if self.total_samples_count == 0:
            return self.created_at is not None and now - self.created_at >= window
        assert self.last_sample_start is not None
        return now - self.last_sample_start >= window

    def _touch(self, time: datetime) -> None:
        if self.created_at is None or time < self.created_at:
            self.created_at = time


@dataclass(frozen=True, slots=True)
class OomRecord:
    """What ``record_oom`` did: the artificial memory sample, or why the OOM was dropped."""

    accepted: bool
    reason: Literal["recorded", "oom_too_old", "not_a_new_peak"]
    memory_needed_bytes: int


class ContainerUsageHistory:
    """``ContainerState``: one running container feeding its ``AggregateUsage``.

    Keeps the current memory aggregation window: one peak per interval goes into the memory
    histogram, stamped with the window's end. A higher sample in the same window replaces the
    old peak (subtract old, add new); the first sample at or after the window end opens a new one.
    """

    def __init__(
        self,
        aggregate: AggregateUsage | None = None,
        settings: AggregationSettings | None = None,
    ) -> None:
        if aggregate is None:
            aggregate = AggregateUsage(settings or DEFAULT_AGGREGATION)
        self.aggregate = aggregate
        self.settings = settings or aggregate.settings
        self._last_cpu_sample_start: datetime | None = None
        self._last_memory_sample_start: datetime | None = None
        self._window_end: datetime | None = None
        self._memory_peak = 0  # max memory usage seen in the current window
        self._oom_peak = 0  # max memory estimated from an OOM in the current window

    @property
    def window_end(self) -> datetime | None:
        """End (exclusive) of the current memory aggregation interval."""
        return self._window_end

    @property
    def memory_peak_bytes(self) -> int:
        return self._memory_peak

    @property
    def oom_peak_bytes(self) -> int:
        return self._oom_peak

    def add_cpu_sample(self, time: datetime, cores: float) -> bool:
        """Aggregate one CPU reading; False for a negative, duplicate or out-of-order sample."""
        time = _as_utc(time)
        if cores < 0:
            return False
        if self._last_cpu_sample_start is not None and not time > self._last_cpu_sample_start:
            return False
        self.aggregate.add_cpu_sample(time, cpu_amount_from_cores(cores))
        self._last_cpu_sample_start = time
        return True

    def add_memory_sample(self, time: datetime, usage_bytes: int) -> bool:
        """Aggregate one memory reading; False for a negative or older-than-last sample."""
        return self._add_memory_sample(_as_utc(time), usage_bytes, is_oom=False)

    def record_oom(self, time: datetime, requested_memory_bytes: int) -> OomRecord:
        """An OOM kill as an artificial memory sample of max(used + 100 MiB, used * 1.2).

        ``used`` is max(request, this window's usage peak); the OOM peak itself is left out so
        repeated OOMs do not run the recommendation away. An OOM more than one aggregation
        interval older than the last memory sample is dropped (anchored on the last sample
        rather than the window end since kubernetes/autoscaler#9725, fixing #8548).
        """
        time = _as_utc(time)
        interval = self.settings.memory_aggregation_interval
        used = max(requested_memory_bytes, self._memory_peak)
        needed = max(
            used + amount_from_float(self.settings.oom_min_bump_up_bytes),
            scale_amount(used, self.settings.oom_bump_up_ratio),
        )
        last = self._last_memory_sample_start
        if last is not None and time < last - interval:
            return OomRecord(accepted=False, reason="oom_too_old", memory_needed_bytes=needed)
        peak_before = (self._window_end, self._oom_peak)
        self._add_memory_sample(time, needed, is_oom=True)
        changed = (self._window_end, self._oom_peak) != peak_before
        return OomRecord(
            accepted=True,
            reason="recorded" if changed else "not_a_new_peak",
            memory_needed_bytes=needed,
        )

    def _add_memory_sample(self, time: datetime, usage: int, *, is_oom: bool) -> bool:
        if usage < 0:
            return False
        last = self._last_memory_sample_start
        if not is_oom and last is not None and time < last:  # OOMs are always processed
            return False
        self._last_memory_sample_start = time
        if self._window_end is None:  # the first sample
            self._window_end = time
        add_new_peak = False
        if time < self._window_end:
            old_peak = max(self._memory_peak, self._oom_peak)
            if old_peak != 0 and usage > old_peak:
                self.aggregate.subtract_memory_peak(self._window_end, old_peak)
                add_new_peak = True
        else:
            interval = self.settings.memory_aggregation_interval
            elapsed = time - self._window_end
            self._window_end += elapsed - elapsed % interval + interval
            self._memory_peak = 0
            self._oom_peak = 0
            add_new_peak = True
        if add_new_peak:
            self.aggregate.add_memory_peak(self._window_end, usage)
            if is_oom:
                self._oom_peak = usage
            else:
                self._memory_peak = usage
        return True


# --------------------------------------------------------------------------- estimation chain


@dataclass(frozen=True, slots=True)
class ResourceRecommendation:
    """One resource's recommendation: millicores for CPU, bytes for memory.

    ``uncapped_target`` is the target before ``minAllowed``/``maxAllowed`` (VPA's
    UncappedTarget), kept for right-sizing reports.
    """

    target: int
    lower_bound: int
    upper_bound: int
    uncapped_target: int


@dataclass(frozen=True, slots=True)
class ContainerRecommendation:
    """A container's recommendation, or an explicit undefined one (both None) with its reason."""

    container: str
    cpu: ResourceRecommendation | None
    memory: ResourceRecommendation | None
    reason: Literal["recommended", "no_samples", "history_expired", "no_controlled_resources"]
    message: str = ""

    @property
    def defined(self) -> bool:
        return self.cpu is not None or self.memory is not None

    def for_resource(self, resource: ResourceName) -> ResourceRecommendation | None:
        return self.cpu if resource == "cpu" else self.memory


def history_confidence(usage: AggregateUsage) -> float:
    """``getConfidence``: min(days between first and last CPU sample, samples / 1440).

    1440 = 60 * 24, so a steady one-sample-per-minute stream over N days gives N.
    """
    if usage.first_sample_start is None or usage.last_sample_start is None:
        lifespan_days = 0.0
    else:
        lifespan_days = (usage.last_sample_start - usage.first_sample_start) / timedelta(days=1)
    samples_amount = usage.total_samples_count / (60 * 24)
    return min(lifespan_days, samples_amount)


def with_margin(amount: int, margin_fraction: float) -> int:
    """``marginEstimator``: amount + trunc(amount * margin)."""
    return amount + scale_amount(amount, margin_fraction)


def with_confidence(amount: int, multiplier: float, exponent: float, confidence: float) -> int:
    """``confidenceMultiplier``: amount * (1 + multiplier/confidence)^exponent.

    No confidence gives *∞ for a positive exponent (clamped to the maximum amount) and *0 for a
    negative one, as Go's float arithmetic does.
    """
    base = math.inf if confidence == 0 else 1.0 + multiplier / confidence
    factor = math.pow(base, exponent)
    return scale_amount(amount, factor)


def with_minimum(amount: int, minimum: int) -> int:
    """``minResourcesEstimator``: at least the minimum."""
    return max(amount, minimum)


def pod_minimum(
    resource: ResourceName, containers_in_pod: int, settings: RecommenderSettings
) -> int:
    """The pod-wide minimum (25 millicores, 250 MiB) split evenly across its containers."""
    fraction = 1.0 / containers_in_pod
    if resource == "cpu":
        whole_pod = cpu_amount_from_cores(settings.pod_min_cpu_millicores * 0.001)
    else:
        whole_pod = amount_from_float(settings.pod_min_memory_mb * 1024 * 1024)
    return scale_amount(whole_pod, fraction)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """The base percentiles of one resource, as amounts (P90 target, P50 lower, P95 upper)."""

    target: int
    lower_bound: int
    upper_bound: int


def usage_percentiles(
    usage: AggregateUsage, resource: ResourceName, settings: RecommenderSettings
) -> Percentiles:
    """``percentileEstimator``: percentiles of the CPU histogram or of the memory peaks."""
    if resource == "cpu":
        cpu = usage.cpu_usage
        return Percentiles(
            target=cpu_amount_from_cores(cpu.percentile(settings.target_percentile)),
            lower_bound=cpu_amount_from_cores(cpu.percentile(settings.lower_bound_percentile)),
            upper_bound=cpu_amount_from_cores(cpu.percentile(settings.upper_bound_percentile)),
        )
    memory = usage.memory_peaks
    return Percentiles(
        target=amount_from_float(memory.percentile(settings.target_percentile)),
        lower_bound=amount_from_float(memory.percentile(settings.lower_bound_percentile)),
        upper_bound=amount_from_float(memory.percentile(settings.upper_bound_percentile)),
    )


def estimate(
    percentiles: Percentiles,
    *,
    confidence: float,
    minimum: int,
    settings: RecommenderSettings = DEFAULT_RECOMMENDER,
) -> ResourceRecommendation:
    """The chain of ``CreatePodResourceRecommender``, in its order, for one resource.

    target = max(P90 + margin, min); lower = max((P50 + margin) * (1 + 0.001/c)^-2, min);
    upper = max((P95 + margin) * (1 + 1/c), min).
    """
    margin = settings.safety_margin_fraction
    target = with_minimum(with_margin(percentiles.target, margin), minimum)
    lower = with_confidence(
        with_margin(percentiles.lower_bound, margin),
        settings.lower_bound_confidence_multiplier,
        settings.lower_bound_confidence_exponent,
        confidence,
    )
    upper = with_confidence(
        with_margin(percentiles.upper_bound, margin),
        settings.upper_bound_confidence_multiplier,
        settings.upper_bound_confidence_exponent,
        confidence,
    )
    return ResourceRecommendation(
        target=target,
        lower_bound=with_minimum(lower, minimum),
        upper_bound=with_minimum(upper, minimum),
        uncapped_target=target,
    )


def cap_to_policy(
    recommendation: ResourceRecommendation, min_allowed: int | None, max_allowed: int | None
) -> ResourceRecommendation:
    """``applyVPAPolicyForContainer``: raise to minAllowed, then lower to maxAllowed.

    Target and both bounds are capped; max wins when the two conflict. The uncapped target
    is kept as it was.
    """

    def cap(amount: int) -> int:
        if min_allowed is not None and amount < min_allowed:
            amount = min_allowed
        if max_allowed is not None and amount > max_allowed:
            amount = max_allowed
        return amount

    return ResourceRecommendation(
        target=cap(recommendation.target),
        lower_bound=cap(recommendation.lower_bound),
        upper_bound=cap(recommendation.upper_bound),
        uncapped_target=recommendation.uncapped_target,
    )


def _policy_value(resources: Resources | None, resource: ResourceName) -> int | None:
    if resources is None:
        return None
    return resources.cpu_millicores if resource == "cpu" else resources.memory_bytes


def recommend(
    usage: AggregateUsage | ContainerUsageHistory,
    *,
    container: str,
    now: datetime,
    containers_in_pod: int = 1,
    min_allowed: Resources | None = None,
    max_allowed: Resources | None = None,
    controlled_resources: Collection[ResourceName] = RESOURCES,
    settings: RecommenderSettings = DEFAULT_RECOMMENDER,
) -> ContainerRecommendation:
    """VPA's recommendation for one container, or an undefined one that says why.

    Undefined when there is no sample at all (neither CPU nor memory nor OOM), or when the
    history expired (no sample for 8 days; VPA garbage-collects such state). ``now`` is used
    only for that expiry. ``containers_in_pod`` splits the pod minimum.
    """
    if containers_in_pod < 1:
        raise ValueError("containers_in_pod must be at least 1")
    aggregate = usage.aggregate if isinstance(usage, ContainerUsageHistory) else usage
    if not aggregate.has_samples():
        return ContainerRecommendation(
            container, None, None, "no_samples", "no usage samples yet: nothing to recommend"
        )
    if aggregate.is_expired(now):
        window = aggregate.settings.memory_aggregation_window
        return ContainerRecommendation(
            container, None, None, "history_expired", f"no usage sample in the last {window}"
        )
    controlled = [resource for resource in RESOURCES if resource in controlled_resources]
    if not controlled:
        return ContainerRecommendation(
            container, None, None, "no_controlled_resources", "no resource is controlled"
        )
    confidence = history_confidence(aggregate)
    results: dict[ResourceName, ResourceRecommendation] = {}
    for resource in controlled:
        uncapped = estimate(
            usage_percentiles(aggregate, resource, settings),
            confidence=confidence,
            minimum=pod_minimum(resource, containers_in_pod, settings),
            settings=settings,
        )
        results[resource] = cap_to_policy(
            uncapped, _policy_value(min_allowed, resource), _policy_value(max_allowed, resource)
        )
    return ContainerRecommendation(
        container,
        results.get("cpu"),
        results.get("memory"),
        "recommended",
        f"confidence {confidence:.3f} days of history",
    )


# --------------------------------------------------------------------------- updater


@dataclass(frozen=True, slots=True)
class ContainerTermination:
    """A container's last termination (``lastState.terminated``)."""

    container: str
    reason: str  # "OOMKilled", "Error", ...
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class UpdatePriority:
    """``PodPriority``: how much a pod's requests differ from the recommendation."""

    outside_recommended_range: bool
    scale_up: bool
    resource_diff: float  # Σ over resources of |total request - total target| / total request

    @property
    def sort_key(self) -> tuple[bool, float]:
        """Sort descending on this: pods that grow first, then by larger diff (``Less``)."""
        return (self.scale_up, self.resource_diff)


def _milli_value(resource: ResourceName, amount: int) -> int:
    """``Quantity.MilliValue``: CPU amounts are already millicores, bytes become millibytes."""
    return amount if resource == "cpu" else amount * 1000


def _request(requests: Resources, resource: ResourceName) -> int | None:
    return requests.cpu_millicores if resource == "cpu" else requests.memory_bytes


def update_priority(
    containers: Sequence[ContainerState], recommendations: Mapping[str, ContainerRecommendation]
) -> UpdatePriority:
    """``GetUpdatePriority`` over the pod's containers that have a recommendation.

    A container without a request for a recommended resource counts as outside the range and
    growing, as VPA does.
    """
    outside = False
    scale_up = False
    total_request: dict[ResourceName, int] = {}
    total_recommended: dict[ResourceName, int] = {}
    for container in containers:
        recommendation = recommendations.get(container.name)
        if recommendation is None:
            continue
        for resource in RESOURCES:
            recommended = recommendation.for_resource(resource)
            if recommended is None:
                continue
            target = _milli_value(resource, recommended.target)
            total_recommended[resource] = total_recommended.get(resource, 0) + target
            request = _request(container.requests, resource)
            if request is None:
                scale_up = True
                outside = True
                continue
            request_milli = _milli_value(resource, request)
            total_request[resource] = total_request.get(resource, 0) + request_milli
            if target > request_milli:
                scale_up = True
            if request < recommended.lower_bound or request > recommended.upper_bound:
                outside = True
    resource_diff = 0.0
    for resource, recommended_total in total_recommended.items():
        request_total = max(float(total_request.get(resource, 0)), 1.0)
        resource_diff += abs(request_total - recommended_total) / request_total
    return UpdatePriority(outside, scale_up, resource_diff)


@dataclass(frozen=True, slots=True)
class UpdateDecision:
    update: bool
    reason: Literal[
        "outside_recommended_range",
        "quick_oom",
        "long_lived_resource_diff",
        "missing_start_time",
        "short_lived_within_range",
        "resource_diff_below_threshold",
        "quick_oom_resources_unchanged",
    ]
    priority: UpdatePriority
    message: str = ""


def is_quick_oom(termination: ContainerTermination, threshold: timedelta) -> bool:
    """OOM-killed less than ``threshold`` (10 min) after the container started."""
    return (
        termination.reason == "OOMKilled"
        and termination.finished_at - termination.started_at < threshold
    )


def should_update(
    *,
    containers: Sequence[ContainerState],
    recommendations: Mapping[str, ContainerRecommendation],
    pod_started_at: datetime | None,
    now: datetime,
    last_terminations: Sequence[ContainerTermination] = (),
    settings: UpdaterSettings = DEFAULT_UPDATER,
) -> UpdateDecision:
    """``UpdatePriorityCalculator.AddPod``: should this pod get the recommended requests?

    Yes when (a) some request is outside [lower, upper]; (b) the pod has lived at least 12 h
    and the relative diff is ≥ 0.1; or (c) a container was OOM-killed < 10 min after starting,
    provided the requests would change at all. Pass only the terminations of containers under
    vertical control (VPA skips containers with scaling mode Off).
    """
    priority = update_priority(containers, recommendations)
    quick_oom = any(
        is_quick_oom(termination, settings.evict_after_oom_threshold)
        for termination in last_terminations
    )
    if not priority.outside_recommended_range and not quick_oom:
        if pod_started_at is None:
            return UpdateDecision(False, "missing_start_time", priority, "pod has no start time")
        if _as_utc(now) < _as_utc(pod_started_at) + settings.pod_lifetime_update_threshold:
            return UpdateDecision(
                False,
                "short_lived_within_range",
                priority,
                f"pod younger than {settings.pod_lifetime_update_threshold} and within bounds",
            )
        if priority.resource_diff < settings.min_change_priority:
            return UpdateDecision(
                False,
                "resource_diff_below_threshold",
                priority,
                f"diff {priority.resource_diff:.3f} < {settings.min_change_priority}",
            )
    if quick_oom and priority.resource_diff == 0:
        return UpdateDecision(
            False, "quick_oom_resources_unchanged", priority, "quick OOM but nothing would change"
        )
    if priority.outside_recommended_range:
        return UpdateDecision(True, "outside_recommended_range", priority)
    if quick_oom:
        return UpdateDecision(True, "quick_oom", priority)
    return UpdateDecision(
        True, "long_lived_resource_diff", priority, f"diff {priority.resource_diff:.3f}"
    )


# --------------------------------------------------------------------------- no-fight rule


@dataclass(frozen=True, slots=True)
class HorizontalMetric:
    """One metric of the workload's horizontal autoscaler.

    ``resource`` is the resource name for Resource/ContainerResource metrics (or the metric's
    name otherwise); ``container`` is set for ContainerResource metrics only.
    """

    resource: str
    target_type: Literal["Utilization", "AverageValue", "Value"]
    container: str | None = None


@dataclass(frozen=True, slots=True)
class WithheldResource:
    resource: ResourceName
    reason: Literal["hpa_drives_resource", "horizontal_scaling_in_progress"]
    message: str


@dataclass(frozen=True, slots=True)
class VerticalActuation:
    """Which resizes may be applied now; the rest stay recommendations, each with its reason."""

    actuate: tuple[ResourceName, ...]
    withheld: tuple[WithheldResource, ...] = ()


def resize_direction(current_request: int | None, target: int) -> ScaleDirection:
    """Which way applying ``target`` moves the request (no request → up)."""
    if current_request is None or target > current_request:
        return "up"
    if target < current_request:
        return "down"
    return "none"


def withheld_resources(
    *,
    hpa_metrics: Sequence[HorizontalMetric],
    resize_directions: Mapping[ResourceName, ScaleDirection],
    horizontal_direction: ScaleDirection = "none",
    container: str | None = None,
    allow_resources_driven_by_hpa: Collection[ResourceName] = (),
) -> VerticalActuation:
    """Keep vertical and horizontal scaling from fighting over the same signal.

    - A resource the HPA targets by Utilization is not resized (reason
      ``hpa_drives_resource``): utilization is usage / request, so changing the request moves
      the HPA's input and the two loops feed each other (kubernetes/autoscaler#6060, #6247).
      AverageValue and Value targets do not depend on requests and do not conflict. The policy
      may allow it per resource.
    - While the horizontal decision of this cycle scales up or down, no resource is resized in
      the same direction (``horizontal_scaling_in_progress``): both would answer the same load.
    Resources whose resize direction is "none" need nothing and appear in neither list.
    """
    utilization_driven = {
        metric.resource
        for metric in hpa_metrics
        if metric.target_type == "Utilization"
        and (metric.container is None or container is None or metric.container == container)
    }
    actuate: list[ResourceName] = []
    withheld: list[WithheldResource] = []
    for resource in RESOURCES:
        direction = resize_directions.get(resource, "none")
        if direction == "none":
            continue
        if resource in utilization_driven and resource not in allow_resources_driven_by_hpa:
            withheld.append(
                WithheldResource(
                    resource,
                    "hpa_drives_resource",
                    f"HPA scales on {resource} utilization; resizing its request would move "
                    "the HPA's input, so recommend only",
                )
            )
        elif horizontal_direction != "none" and direction == horizontal_direction:
            withheld.append(
                WithheldResource(
                    resource,
                    "horizontal_scaling_in_progress",
                    f"horizontal scaling {horizontal_direction} this cycle; not resizing "
                    f"{resource} {direction} at the same time",
                )
            )
        else:
            actuate.append(resource)
    return VerticalActuation(tuple(actuate), tuple(withheld))


# --------------------------------------------------------------------------- recreate budget


@dataclass(frozen=True, slots=True)
class RecreateBudget:
    """How many pods may be recreated (evicted) now, and why not when none."""

    allowed: int
    reason: Literal[
        "within_budget",
        "too_few_replicas",
        "eviction_tolerance_exhausted",
        "disruption_budget_exhausted",
    ]
    message: str = ""


def _scaled_int_or_percent(value: int | str, total: int) -> int:
    """``GetScaledValueFromIntOrPercent`` with roundUp, as the disruption controller uses it."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%"):
        raise ValueError(f"not an int or a percentage: {value!r}")
    return math.ceil(total * int(text[:-1]) / 100)


def recreate_budget(
    *,
    replicas: int,
    ready: int,
    live_pods: int | None = None,
    already_disrupted: int = 0,
    min_available: int | str | None = None,
    max_unavailable: int | str | None = None,
    settings: UpdaterSettings = DEFAULT_UPDATER,
) -> RecreateBudget:
    """The VPA updater's eviction restriction, further limited by a PodDisruptionBudget.

    VPA (``CanEvict``): no eviction when fewer than ``min_replicas`` (2) pods exist; otherwise
    evict while ready - disrupted > replicas - int(replicas * tolerance 0.5), and when that
    tolerance rounds to 0 still allow exactly one if every replica is ready and none is being
    disrupted. A PDB (min-available or max-unavailable, int or "N%", rounded up) allows
    ready - disrupted - desired-healthy more. ``replicas`` is the configured count,
    ``ready`` the pods running and ready, ``live_pods`` all existing pods (default: replicas).
    """
    if min_available is not None and max_unavailable is not None:
        raise ValueError("a disruption budget sets min_available or max_unavailable, not both")
    live = replicas if live_pods is None else live_pods
    if live < settings.min_replicas:
        return RecreateBudget(
            0, "too_few_replicas", f"{live} pods < min-replicas {settings.min_replicas}"
        )
    tolerance = int(replicas * settings.eviction_tolerance_fraction)
    should_be_alive = replicas - tolerance
    alive = ready - already_disrupted
    vpa_allowed = max(0, alive - should_be_alive)
    if tolerance == 0 and ready == replicas and already_disrupted == 0:
        vpa_allowed = max(vpa_allowed, 1)
    allowed = vpa_allowed
    pdb_allowed: int | None = None
    if min_available is not None:
        pdb_allowed = max(0, alive - _scaled_int_or_percent(min_available, replicas))
    elif max_unavailable is not None:
        desired_healthy = max(0, replicas - _scaled_int_or_percent(max_unavailable, replicas))
        pdb_allowed = max(0, alive - desired_healthy)
    if pdb_allowed is not None:
        allowed = min(allowed, pdb_allowed)
    if allowed > 0:
        return RecreateBudget(allowed, "within_budget")
    if vpa_allowed == 0:
        return RecreateBudget(
            0,
            "eviction_tolerance_exhausted",
            f"{alive} alive, {should_be_alive} must stay (tolerance "
            f"{settings.eviction_tolerance_fraction} of {replicas})",
        )
    return RecreateBudget(
        0, "disruption_budget_exhausted", "the disruption budget allows no more disruptions"
    )
