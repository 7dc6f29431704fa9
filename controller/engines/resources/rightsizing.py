"""Right-sizing: CPU and memory requests per container from what it really used.

The chain, each step a small pure function tested on its own:

1. **Window**: only samples in ``(now - history, now]`` count (8 days, VPA's memory window).
2. **Enough data?** Fewer than ``min_points`` samples (100, KRR's ``points_required``) or a
   span shorter than ``min_history_seconds`` (24 h) gives an explicit *undefined* result with
   its reason, never a guess.
3. **CPU** as the VPA recommender does it (``vertical.estimate``): P90 / P50 / P95 of a decaying
   histogram (24 h half-life, every sample weight 0.1), + 15 % margin, confidence on the bounds,
   the pod minimum (25m split over the pod's containers).
4. **Memory** as KRR does it for the target: max working set x 1.15; the bounds as VPA does
   (P50 / P95 of one peak per 24 h window, + margin, confidence), then widened to contain
   the target. The pod minimum (250 MiB split) applies.
5. **Floors** that win over the estimate: the last OOM kill (its memory x 1.2, at least
   +100 MiB, VPA's bump) and CPU throttling (see ``throttle_floor_millicores``).
6. **Policy caps** (``minAllowed`` / ``maxAllowed``, ``vertical.cap_to_policy``: max wins).
7. **Rounding** up to sane units: CPU to 5m steps, memory to whole MiB. Rounding up never
   takes a value under a floor; a rounded value above ``maxAllowed`` falls back to it.
8. **Limits** by policy: ``cpuLimit`` ``none`` (KRR: no CPU limit), ``keep`` (the current one,
   raised to the new target if below it) or ``ratio`` (VPA: keep limit/request). The memory
   limit is the memory target (KRR: request = limit), or none with ``memoryLimit: none``.

Deviations from VPA, on purpose: the histograms are built in one batch from the sample arrays
(``decayed_percentiles``, identical percentiles to feeding ``vertical.AggregateUsage`` one
sample at a time, tested) so a cycle over 10,000 containers stays fast; the confidence counts
samples by the time they cover (``n x median spacing / 24 h``, which is VPA's ``n / 1440`` at
VPA's one sample a minute) so that hourly Prometheus history is not penalised 60 times; and
the memory peaks are one per window over all replicas, the highest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from controller.engines.decide_input import DecideInputError, as_quantity
from controller.engines.decide_input import as_list as _list
from controller.engines.decide_input import as_mapping as _mapping
from controller.engines.decide_input import as_number as _number
from controller.engines.decide_input import as_time as _time
from controller.engines.decide_input import bad as _bad
from controller.engines.decide_input import check_keys as _check_keys
from controller.engines.scaling.histogram import (
    CPU_HISTOGRAM_OPTIONS,
    MEMORY_HISTOGRAM_OPTIONS,
    MIN_SAMPLE_WEIGHT,
    HistogramOptions,
)
from controller.engines.scaling.vertical import (
    MIB,
    Percentiles,
    RecommenderSettings,
    ResourceRecommendation,
    amount_from_float,
    cap_to_policy,
    cpu_amount_from_cores,
    estimate,
    pod_minimum,
    scale_amount,
)
from controller.ports import Resources
from shared.quantities import format_cpu, format_memory

__all__ = [
    "ContainerUsage",
    "OomEvent",
    "ResourceRange",
    "Rightsizing",
    "RightsizingPolicy",
    "ThrottleEvent",
    "UsageSeries",
    "confidence_days",
    "cpu_limit_millicores",
    "decayed_percentiles",
    "decide_rightsizing",
    "history_problem",
    "memory_peaks",
    "oom_floor_bytes",
    "recommend_container",
    "round_up",
    "throttle_floor_millicores",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
CpuLimitPolicy = Literal["none", "keep", "ratio"]
MemoryLimitPolicy = Literal["request", "none"]
RightsizingReason = Literal["recommended", "no_samples", "insufficient_history"]

DAY_SECONDS = 86_400.0
# Seconds from Go's zero time (0001-01-01 UTC) to the Unix epoch: Go's Time.Round counts from
# there, so the decaying histograms' reference instants land where VPA's would.
_GO_ZERO_TO_UNIX_SECONDS = 62_135_596_800.0


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class RightsizingPolicy:
    """Every knob of the chain, defaults from VPA (percentiles, margin, minimums, OOM bump)
    and KRR (memory buffer, points required)."""

    target_percentile: float = 0.9
    lower_bound_percentile: float = 0.5
    upper_bound_percentile: float = 0.95
    cpu_margin_fraction: float = 0.15
    memory_buffer_fraction: float = 0.15  # KRR memory_buffer_percentage
    half_life_seconds: float = DAY_SECONDS
    history_seconds: float = 8 * DAY_SECONDS  # VPA: 8 x 24 h memory aggregation window
    memory_aggregation_seconds: float = DAY_SECONDS
    min_history_seconds: float = DAY_SECONDS
    min_points: int = 100  # KRR points_required
    pod_min_cpu_millicores: int = 25
    pod_min_memory_bytes: int = 250 * MIB
    oom_bump_ratio: float = 1.2
    oom_min_bump_bytes: int = 100 * MIB
    throttle_threshold: float = 0.10  # throttled share of CFS periods that counts as an event
    throttle_bump_ratio: float = 1.2
    cpu_limit: CpuLimitPolicy = "none"
    memory_limit: MemoryLimitPolicy = "request"
    cpu_step_millicores: int = 5
    memory_step_bytes: int = MIB
    min_allowed: Resources | None = None
    max_allowed: Resources | None = None

    def __post_init__(self) -> None:
        for name in ("target_percentile", "lower_bound_percentile", "upper_bound_percentile"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if self.half_life_seconds <= 0 or self.memory_aggregation_seconds <= 0:
            raise ValueError("half life and aggregation interval must be positive")
        if self.cpu_step_millicores < 1 or self.memory_step_bytes < 1:
            raise ValueError("rounding steps must be at least 1")

    def recommender_settings(self) -> RecommenderSettings:
        """The VPA estimator's settings for the CPU chain and the memory bounds."""
        return RecommenderSettings(
            safety_margin_fraction=self.cpu_margin_fraction,
            target_percentile=self.target_percentile,
            lower_bound_percentile=self.lower_bound_percentile,
            upper_bound_percentile=self.upper_bound_percentile,
            pod_min_cpu_millicores=self.pod_min_cpu_millicores,
            pod_min_memory_mb=self.pod_min_memory_bytes / MIB,
        )


DEFAULT_POLICY = RightsizingPolicy()


@dataclass(frozen=True, slots=True, eq=False)
class UsageSeries:
    """Usage samples as arrays: unix seconds, CPU cores, memory bytes (one row per sample)."""

    times: FloatArray
    cpu_cores: FloatArray
    memory_bytes: FloatArray

    def __post_init__(self) -> None:
        if not self.times.shape == self.cpu_cores.shape == self.memory_bytes.shape:
            raise ValueError("times, cpu and memory must have the same length")

    @classmethod
    def of(cls, samples: Iterable[tuple[float, float, float]]) -> UsageSeries:
        """From ``(time, cores, bytes)`` rows, in any order (sorted by time here)."""
        rows = np.array(list(samples), dtype=np.float64).reshape(-1, 3)
        rows = rows[np.argsort(rows[:, 0], kind="stable")]
        return cls(rows[:, 0].copy(), rows[:, 1].copy(), rows[:, 2].copy())

    def __len__(self) -> int:
        return int(self.times.size)

    def within(self, start: float, end: float) -> UsageSeries:
        """The samples with ``start < time <= end``."""
        keep = (self.times > start) & (self.times <= end)
        if bool(keep.all()):
            return self
        return UsageSeries(self.times[keep], self.cpu_cores[keep], self.memory_bytes[keep])


@dataclass(frozen=True, slots=True)
class OomEvent:
    """An OOM kill; ``memory_bytes`` is the usage (or limit) at the kill, if known."""

    time: float
    memory_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class ThrottleEvent:
    """A stretch where ``throttled_share`` of the CFS periods were throttled; ``cpu_cores`` is
    the usage seen meanwhile."""

    time: float
    throttled_share: float
    cpu_cores: float


@dataclass(frozen=True, slots=True, eq=False)
class ContainerUsage:
    """One container (all replicas) with its requests, limits, usage history and events."""

    namespace: str
    workload: str
    container: str
    requests: Resources
    limits: Resources
    usage: UsageSeries
    oom_events: tuple[OomEvent, ...] = ()
    throttle_events: tuple[ThrottleEvent, ...] = ()
    containers_in_pod: int = 1


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class ResourceRange:
    """Target and bounds of one resource: millicores for CPU, bytes for memory."""

    target: int
    lower_bound: int
    upper_bound: int


@dataclass(frozen=True, slots=True)
class Rightsizing:
    """A container's recommendation, or an undefined one (``cpu`` and ``memory`` None) saying why.

    ``floors`` names what lifted or capped a value: ``oom``, ``throttling``, ``min_allowed``,
    ``max_allowed``. Limits are None when the container should have none.
    """

    namespace: str
    workload: str
    container: str
    cpu: ResourceRange | None
    memory: ResourceRange | None
    cpu_limit: int | None
    memory_limit: int | None
    reason: RightsizingReason
    message: str
    floors: tuple[str, ...] = field(default=())

    @property
    def defined(self) -> bool:
        return self.cpu is not None


# --------------------------------------------------------------------------- steps


def history_problem(series: UsageSeries, policy: RightsizingPolicy) -> str | None:
    """Why the history cannot support a recommendation (KRR's "Not enough data"), or None."""
    if len(series) == 0:
        return "no usage samples in the history window"
    span = float(series.times[-1] - series.times[0])
    if span < policy.min_history_seconds:
        return f"history spans {span / 3600:.1f}h < {policy.min_history_seconds / 3600:g}h required"
    if len(series) < policy.min_points:
        return f"{len(series)} samples < {policy.min_points} required"
    return None


def confidence_days(times: FloatArray) -> float:
    """VPA ``getConfidence`` = min(lifespan days, samples / 1440), the sample count taken as
    the time it covers (n x median spacing) so any sampling rate gives the same confidence
    (at one sample a minute this is exactly VPA's formula)."""
    if times.size < 2:
        return 0.0
    lifespan_days = float(times[-1] - times[0]) / DAY_SECONDS
    gaps = np.sort(np.diff(times))
    spacing = float(gaps[gaps.size // 2])  # the (upper) median spacing; a gap does not count
    return min(lifespan_days, times.size * spacing / DAY_SECONDS)


_BUCKET_STARTS: dict[int, tuple[HistogramOptions, FloatArray]] = {}


def _bucket_starts(options: HistogramOptions) -> FloatArray:
    """Every bucket's start, computed once per options object (a fixed array)."""
    cached = _BUCKET_STARTS.get(id(options))
    if cached is None or cached[0] is not options:
        starts = np.array([options.bucket_start(b) for b in range(options.num_buckets)])
        cached = _BUCKET_STARTS[id(options)] = (options, starts)
    return cached[1]


def _go_round_unix(seconds: float, unit: float) -> float:
    """Go ``Time.Round`` of a unix time to a multiple of ``unit`` counted from Go's zero time."""
    since_zero = seconds + _GO_ZERO_TO_UNIX_SECONDS
    return math.floor(since_zero / unit + 0.5) * unit - _GO_ZERO_TO_UNIX_SECONDS


def decayed_percentiles(
    values: FloatArray,
    times: FloatArray,
    *,
    options: HistogramOptions,
    half_life_seconds: float,
    sample_weight: float,
    percentiles: Sequence[float],
) -> tuple[float, ...]:
    """Percentiles of a VPA decaying histogram built from all samples at once.

    Same buckets, weights ``w * 2^((t - ref)/halfLife)`` with ``ref`` the half-life-rounded
    first time (as ``DecayingHistogram`` sets it), same epsilon rule and the same percentile
    walk (upper edge of the bucket reaching p x total) as ``histogram.Histogram``; a fixed
    176-float array per call whatever the number of samples.
    """
    starts = _bucket_starts(options)
    count = starts.size
    if values.size == 0:
        return tuple(0.0 for _ in percentiles)
    # starts[0] is 0, so a non-negative value lands in 0..count-1; negatives go to bucket 0.
    buckets = np.searchsorted(starts, values, side="right") - 1
    np.maximum(buckets, 0, out=buckets)
    reference = _go_round_unix(float(times[0]), half_life_seconds)
    weights = sample_weight * np.exp2((times - reference) / half_life_seconds)
    bucket_weight = np.bincount(buckets, weights=weights, minlength=count)
    non_empty = np.flatnonzero(bucket_weight >= options.epsilon)
    if non_empty.size == 0:
        return tuple(0.0 for _ in percentiles)
    low, high = int(non_empty[0]), int(non_empty[-1])
    total = float(bucket_weight.sum())
    partial = np.cumsum(bucket_weight[low:high])
    results: list[float] = []
    for percentile in percentiles:
        bucket = low + int(np.searchsorted(partial, percentile * total, side="left"))
        results.append(float(starts[bucket + 1] if bucket < count - 1 else starts[bucket]))
    return tuple(results)


def memory_peaks(
    times: FloatArray, memory_bytes: FloatArray, interval_seconds: float
) -> tuple[FloatArray, FloatArray]:
    """One peak per aggregation window (VPA ``ContainerState``): windows start at the first
    sample and last ``interval``; each peak is stamped with its window's end."""
    if times.size == 0:
        return np.empty(0), np.empty(0)
    window = np.floor((times - times[0]) / interval_seconds).astype(np.int64)
    peaks = np.full(int(window[-1]) + 1, -np.inf)
    np.maximum.at(peaks, window, memory_bytes)
    present = np.flatnonzero(np.isfinite(peaks))
    stamps = times[0] + (present + 1) * interval_seconds
    return stamps.astype(np.float64), peaks[present]


def _percentiles(values: tuple[float, ...], *, cores: bool) -> Percentiles:
    convert = cpu_amount_from_cores if cores else amount_from_float
    return Percentiles(convert(values[0]), convert(values[1]), convert(values[2]))


def oom_floor_bytes(
    events: Sequence[OomEvent],
    *,
    fallback_bytes: int,
    since: float,
    policy: RightsizingPolicy,
) -> int | None:
    """The memory the last OOM says is needed: max(used x 1.2, used + 100 MiB) (VPA
    ``RecordOOM``), ``used`` being the memory at the kill, else ``fallback_bytes`` (the limit,
    request or peak). Kills older than ``since`` (the history window) are forgotten."""
    recent = [event for event in events if event.time > since]
    if not recent:
        return None
    last = max(recent, key=lambda event: event.time)
    used = last.memory_bytes if last.memory_bytes is not None else fallback_bytes
    return max(
        used + policy.oom_min_bump_bytes,
        scale_amount(used, policy.oom_bump_ratio),
    )


def throttle_floor_millicores(
    events: Sequence[ThrottleEvent], *, since: float, policy: RightsizingPolicy
) -> int | None:
    """The CPU that throttling says is needed, or None.

    Rule: an event counts when more than ``throttle_threshold`` (10 %) of its CFS periods were
    throttled. While throttled, usage is capped by the quota, so the real demand is above what
    was seen: the floor is the highest usage seen while throttled x ``throttle_bump_ratio``
    (1.2, the same bump VPA gives memory after an OOM). Events older than ``since`` are
    forgotten.
    """
    seen = [
        event.cpu_cores
        for event in events
        if event.time > since and event.throttled_share > policy.throttle_threshold
    ]
    if not seen:
        return None
    return cpu_amount_from_cores(max(seen) * policy.throttle_bump_ratio)


def round_up(amount: int, step: int) -> int:
    """Up to the next multiple of ``step`` (5m for CPU, 1 MiB for memory)."""
    return -(-amount // step) * step


def _floor(value: ResourceRange, floor: int) -> ResourceRange:
    return ResourceRange(
        max(value.target, floor), max(value.lower_bound, floor), max(value.upper_bound, floor)
    )


def _capped(
    value: ResourceRange, low: int | None, high: int | None, floors: list[str]
) -> ResourceRange:
    capped = cap_to_policy(
        ResourceRecommendation(value.target, value.lower_bound, value.upper_bound, value.target),
        low,
        high,
    )
    if low is not None and value.target < low <= capped.target:
        floors.append("min_allowed")
    if high is not None and value.target > high:
        floors.append("max_allowed")
    return ResourceRange(capped.target, capped.lower_bound, capped.upper_bound)


def _rounded(value: ResourceRange, step: int, high: int | None) -> ResourceRange:
    def one(amount: int) -> int:
        rounded = round_up(amount, step)
        return high if high is not None and rounded > high else rounded

    return ResourceRange(one(value.target), one(value.lower_bound), one(value.upper_bound))


def cpu_limit_millicores(
    policy: CpuLimitPolicy, *, target: int, requests: Resources, limits: Resources
) -> int | None:
    """The CPU limit to set: none; the current one (raised to the target, a limit can't be
    below the request); or the current limit/request ratio applied to the target (VPA)."""
    current_limit = limits.cpu_millicores
    if policy == "none" or current_limit is None:
        return None
    if policy == "keep":
        return max(current_limit, target)
    current_request = requests.cpu_millicores
    if not current_request:
        return max(current_limit, target)
    return max(target, math.ceil(target * current_limit / current_request))


def _resource(resources: Resources | None, cpu: bool) -> int | None:
    if resources is None:
        return None
    return resources.cpu_millicores if cpu else resources.memory_bytes


def recommend_container(
    container: ContainerUsage, *, now: float, policy: RightsizingPolicy = DEFAULT_POLICY
) -> Rightsizing:
    """The whole chain for one container (see the module docstring)."""
    since = now - policy.history_seconds
    series = container.usage.within(since, now)
    problem = history_problem(series, policy)
    if problem is not None:
        reason: RightsizingReason = "no_samples" if len(series) == 0 else "insufficient_history"
        return Rightsizing(
            container.namespace,
            container.workload,
            container.container,
            None,
            None,
            None,
            None,
            reason,
            f"undefined: {problem}",
        )
    settings = policy.recommender_settings()
    confidence = confidence_days(series.times)
    wanted = (
        policy.target_percentile,
        policy.lower_bound_percentile,
        policy.upper_bound_percentile,
    )
    cpu_base = decayed_percentiles(
        series.cpu_cores,
        series.times,
        options=CPU_HISTOGRAM_OPTIONS,
        half_life_seconds=policy.half_life_seconds,
        sample_weight=MIN_SAMPLE_WEIGHT,
        percentiles=wanted,
    )
    cpu_estimate = estimate(
        _percentiles(cpu_base, cores=True),
        confidence=confidence,
        minimum=pod_minimum("cpu", container.containers_in_pod, settings),
        settings=settings,
    )
    peak_times, peaks = memory_peaks(
        series.times, series.memory_bytes, policy.memory_aggregation_seconds
    )
    memory_base = decayed_percentiles(
        peaks,
        peak_times,
        options=MEMORY_HISTOGRAM_OPTIONS,
        half_life_seconds=policy.half_life_seconds,
        sample_weight=1.0,
        percentiles=wanted,
    )
    memory_minimum = pod_minimum("memory", container.containers_in_pod, settings)
    memory_bounds = estimate(
        _percentiles(memory_base, cores=False),
        confidence=confidence,
        minimum=memory_minimum,
        settings=RecommenderSettings(
            safety_margin_fraction=policy.memory_buffer_fraction,
            target_percentile=policy.target_percentile,
            lower_bound_percentile=policy.lower_bound_percentile,
            upper_bound_percentile=policy.upper_bound_percentile,
        ),
    )
    peak_bytes = float(series.memory_bytes.max())
    memory_target = max(
        amount_from_float(peak_bytes * (1.0 + policy.memory_buffer_fraction)), memory_minimum
    )
    cpu = ResourceRange(cpu_estimate.target, cpu_estimate.lower_bound, cpu_estimate.upper_bound)
    memory = ResourceRange(
        memory_target,
        min(memory_bounds.lower_bound, memory_target),
        max(memory_bounds.upper_bound, memory_target),
    )
    floors: list[str] = []
    notes: list[str] = []
    fallback = max(
        container.limits.memory_bytes or 0,
        container.requests.memory_bytes or 0,
        amount_from_float(peak_bytes),
    )
    oom = oom_floor_bytes(container.oom_events, fallback_bytes=fallback, since=since, policy=policy)
    if oom is not None and oom > memory.target:
        floors.append("oom")
        notes.append(f"memory floored at {format_memory(oom)} by the last OOM kill")
    if oom is not None:
        memory = _floor(memory, oom)
    throttle = throttle_floor_millicores(container.throttle_events, since=since, policy=policy)
    if throttle is not None and throttle > cpu.target:
        floors.append("throttling")
        notes.append(f"CPU floored at {format_cpu(throttle)} by throttling")
    if throttle is not None:
        cpu = _floor(cpu, throttle)
    cpu_max = _resource(policy.max_allowed, True)
    memory_max = _resource(policy.max_allowed, False)
    cpu = _capped(cpu, _resource(policy.min_allowed, True), cpu_max, floors)
    memory = _capped(memory, _resource(policy.min_allowed, False), memory_max, floors)
    cpu = _rounded(cpu, policy.cpu_step_millicores, cpu_max)
    memory = _rounded(memory, policy.memory_step_bytes, memory_max)
    cpu_limit = cpu_limit_millicores(
        policy.cpu_limit, target=cpu.target, requests=container.requests, limits=container.limits
    )
    memory_limit = memory.target if policy.memory_limit == "request" else None
    message = (
        f"{len(series)} samples over {(series.times[-1] - series.times[0]) / 3600:.1f}h, "
        f"confidence {confidence:.2f} days; CPU P{policy.target_percentile * 100:g} "
        f"+{policy.cpu_margin_fraction:.0%}, memory peak +{policy.memory_buffer_fraction:.0%}"
    )
    if notes:
        message += "; " + "; ".join(notes)
    return Rightsizing(
        container.namespace,
        container.workload,
        container.container,
        cpu,
        memory,
        cpu_limit,
        memory_limit,
        "recommended",
        message,
        tuple(floors),
    )


# --------------------------------------------------------------------------- decide JSON

MAX_CONTAINERS = 1000
MAX_SAMPLES = 200_000  # over all containers
MAX_EVENTS = 1000  # per container and kind


def _string(value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(path, "must be a non-empty string")
    return value


def _quantity(value: object, path: str) -> Decimal:
    """A Kubernetes quantity (string) or a plain number, in base units (cores, bytes)."""
    amount = as_quantity(value, path)
    if amount < 0:
        raise _bad(path, "must not be negative")
    return amount


def _fast_amount(value: object, path: str) -> float:
    """Sample values: numbers pass straight through (the common, bulk case)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        if value < 0:
            raise _bad(path, "must not be negative")
        return float(value)
    return float(_quantity(value, path))


def _ceil(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _resources(raw: object, path: str) -> Resources:
    values = _mapping(raw, path)
    _check_keys(values, frozenset({"cpu", "memory"}), path)
    cpu = values.get("cpu")
    memory = values.get("memory")
    return Resources(
        cpu_millicores=None if cpu is None else _ceil(_quantity(cpu, f"{path}.cpu") * 1000),
        memory_bytes=None if memory is None else _ceil(_quantity(memory, f"{path}.memory")),
    )


_TOP_KEYS = frozenset({"kind", "now", "containers", "policy"})
_CONTAINER_KEYS = frozenset(
    {
        "namespace",
        "workload",
        "container",
        "requests",
        "limits",
        "samples",
        "oomEvents",
        "throttleEvents",
    }
)
_POLICY_FLOATS = {
    "targetPercentile": "target_percentile",
    "lowerBoundPercentile": "lower_bound_percentile",
    "upperBoundPercentile": "upper_bound_percentile",
    "cpuMarginFraction": "cpu_margin_fraction",
    "memoryBufferFraction": "memory_buffer_fraction",
    "oomBumpRatio": "oom_bump_ratio",
    "throttleThreshold": "throttle_threshold",
    "throttleBumpRatio": "throttle_bump_ratio",
}
_POLICY_HOURS = {
    "halfLifeHours": "half_life_seconds",
    "historyHours": "history_seconds",
    "memoryAggregationHours": "memory_aggregation_seconds",
    "minHistoryHours": "min_history_seconds",
}
_POLICY_KEYS = frozenset(
    {
        *_POLICY_FLOATS,
        *_POLICY_HOURS,
        "minPoints",
        "podMinCpu",
        "podMinMemory",
        "oomMinBump",
        "cpuLimit",
        "memoryLimit",
        "cpuStep",
        "memoryStep",
        "minAllowed",
        "maxAllowed",
    }
)


def _policy(raw: object) -> RightsizingPolicy:
    body = _mapping(raw, "policy")
    _check_keys(body, _POLICY_KEYS, "policy")
    values: dict[str, Any] = {}
    for key, name in _POLICY_FLOATS.items():
        if key in body:
            values[name] = _number(body[key], f"policy.{key}")
    for key, name in _POLICY_HOURS.items():
        if key in body:
            values[name] = _number(body[key], f"policy.{key}") * 3600
    if "minPoints" in body:
        points = body["minPoints"]
        if isinstance(points, bool) or not isinstance(points, int) or points < 0:
            raise _bad("policy.minPoints", "must be a non-negative integer")
        values["min_points"] = points
    cpu_amounts = {"podMinCpu": "pod_min_cpu_millicores", "cpuStep": "cpu_step_millicores"}
    for key, name in cpu_amounts.items():
        if key in body:
            values[name] = _ceil(_quantity(body[key], f"policy.{key}") * 1000)
    memory_amounts = {
        "podMinMemory": "pod_min_memory_bytes",
        "oomMinBump": "oom_min_bump_bytes",
        "memoryStep": "memory_step_bytes",
    }
    for key, name in memory_amounts.items():
        if key in body:
            values[name] = _ceil(_quantity(body[key], f"policy.{key}"))
    if "cpuLimit" in body:
        if body["cpuLimit"] not in ("none", "keep", "ratio"):
            raise _bad("policy.cpuLimit", "must be one of none, keep, ratio")
        values["cpu_limit"] = body["cpuLimit"]
    if "memoryLimit" in body:
        if body["memoryLimit"] not in ("request", "none"):
            raise _bad("policy.memoryLimit", "must be one of request, none")
        values["memory_limit"] = body["memoryLimit"]
    for key, name in (("minAllowed", "min_allowed"), ("maxAllowed", "max_allowed")):
        if key in body:
            values[name] = _resources(body[key], f"policy.{key}")
    try:
        return RightsizingPolicy(**values)
    except ValueError as error:
        raise DecideInputError(400, f"policy: {error}", [("policy", str(error))]) from None


def _samples(raw: object, path: str) -> UsageSeries:
    rows: list[tuple[float, float, float]] = []
    for index, item in enumerate(_list(raw, path, MAX_SAMPLES)):
        where = f"{path}.{index}"
        sample = _mapping(item, where)
        _check_keys(sample, frozenset({"time", "cpu", "memory"}), where)
        for key in ("time", "cpu", "memory"):
            if key not in sample:
                raise _bad(f"{where}.{key}", "required")
        rows.append(
            (
                _time(sample["time"], f"{where}.time"),
                _fast_amount(sample["cpu"], f"{where}.cpu"),
                _fast_amount(sample["memory"], f"{where}.memory"),
            )
        )
    return UsageSeries.of(rows)


def _oom_events(raw: object, path: str) -> tuple[OomEvent, ...]:
    events: list[OomEvent] = []
    for index, item in enumerate(_list(raw, path, MAX_EVENTS)):
        where = f"{path}.{index}"
        event = _mapping(item, where)
        _check_keys(event, frozenset({"time", "memory"}), where)
        if "time" not in event:
            raise _bad(f"{where}.time", "required")
        memory = event.get("memory")
        events.append(
            OomEvent(
                _time(event["time"], f"{where}.time"),
                None if memory is None else _ceil(_quantity(memory, f"{where}.memory")),
            )
        )
    return tuple(events)


def _throttle_events(raw: object, path: str) -> tuple[ThrottleEvent, ...]:
    events: list[ThrottleEvent] = []
    for index, item in enumerate(_list(raw, path, MAX_EVENTS)):
        where = f"{path}.{index}"
        event = _mapping(item, where)
        _check_keys(event, frozenset({"time", "throttledShare", "cpu"}), where)
        for key in ("time", "throttledShare", "cpu"):
            if key not in event:
                raise _bad(f"{where}.{key}", "required")
        share = _number(event["throttledShare"], f"{where}.throttledShare")
        if share > 1:
            raise _bad(f"{where}.throttledShare", "must be a fraction within [0, 1]")
        events.append(
            ThrottleEvent(
                _time(event["time"], f"{where}.time"),
                share,
                float(_quantity(event["cpu"], f"{where}.cpu")),
            )
        )
    return tuple(events)


def _containers(raw: object) -> list[ContainerUsage]:
    entries = _list(raw, "containers", MAX_CONTAINERS)
    if not entries:
        raise _bad("containers", "at least one container is required")
    parsed: list[tuple[str, str, str, Resources, Resources, UsageSeries, Any, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    total_samples = 0
    for index, item in enumerate(entries):
        path = f"containers.{index}"
        entry = _mapping(item, path)
        _check_keys(entry, _CONTAINER_KEYS, path)
        names = tuple(_string(entry.get(key), f"{path}.{key}") for key in _CONTAINER_KEYS_ID)
        namespace, workload, name = names
        if (namespace, workload, name) in seen:
            raise _bad(f"{path}.container", f"duplicate container {namespace}/{workload}/{name}")
        seen.add((namespace, workload, name))
        if "samples" not in entry:
            raise _bad(f"{path}.samples", "required")
        samples = _samples(entry["samples"], f"{path}.samples")
        total_samples += len(samples)
        if total_samples > MAX_SAMPLES:
            raise _bad(f"{path}.samples", f"at most {MAX_SAMPLES} samples in all")
        parsed.append(
            (
                namespace,
                workload,
                name,
                _resources(entry.get("requests", {}), f"{path}.requests"),
                _resources(entry.get("limits", {}), f"{path}.limits"),
                samples,
                _oom_events(entry.get("oomEvents", []), f"{path}.oomEvents"),
                _throttle_events(entry.get("throttleEvents", []), f"{path}.throttleEvents"),
            )
        )
    per_pod: dict[tuple[str, str], int] = {}
    for namespace, workload, *_ in parsed:
        per_pod[(namespace, workload)] = per_pod.get((namespace, workload), 0) + 1
    return [
        ContainerUsage(
            namespace,
            workload,
            name,
            requests,
            limits,
            samples,
            ooms,
            throttles,
            containers_in_pod=per_pod[(namespace, workload)],
        )
        for namespace, workload, name, requests, limits, samples, ooms, throttles in parsed
    ]


_CONTAINER_KEYS_ID = ("namespace", "workload", "container")


def _range_json(value: ResourceRange | None, cpu: bool) -> dict[str, str] | None:
    if value is None:
        return None
    fmt = format_cpu if cpu else format_memory
    return {
        "target": fmt(value.target),
        "lowerBound": fmt(value.lower_bound),
        "upperBound": fmt(value.upper_bound),
    }


def rightsizing_json(result: Rightsizing) -> dict[str, Any]:
    """One container's answer with quantities in Kubernetes notation ("250m", "512Mi")."""
    return {
        "namespace": result.namespace,
        "workload": result.workload,
        "container": result.container,
        "cpu": _range_json(result.cpu, True),
        "memory": _range_json(result.memory, False),
        "limits": {
            "cpu": None if result.cpu_limit is None else format_cpu(result.cpu_limit),
            "memory": None if result.memory_limit is None else format_memory(result.memory_limit),
        },
        "reason": result.reason,
        "message": result.message,
        "floors": list(result.floors),
    }


def decide_rightsizing(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Right-size containers from a JSON request (already parsed).

    Input::

        {"kind": "rightsizing", "now": <unix s | RFC 3339>,
         "containers": [{"namespace", "workload", "container",
                         "requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {...},
                         "samples": [{"time", "cpu" (cores or "250m"),
                                      "memory" (bytes or "300Mi")}],
                         "oomEvents": [{"time", "memory"?}],
                         "throttleEvents": [{"time", "throttledShare" (0..1), "cpu"}]}],
         "policy": {"targetPercentile" (0.9), "cpuMarginFraction" (0.15),
                    "memoryBufferFraction" (0.15), "historyHours" (192), "minHistoryHours" (24),
                    "minPoints" (100), "cpuLimit" ("none"|"keep"|"ratio"), "memoryLimit",
                    "podMinCpu" ("25m"), "podMinMemory" ("250Mi"), "oomBumpRatio" (1.2),
                    "oomMinBump" ("100Mi"), "throttleThreshold" (0.1), "throttleBumpRatio" (1.2),
                    "cpuStep" ("5m"), "memoryStep" ("1Mi"), "minAllowed", "maxAllowed", ...}}

    Containers of the same namespace/workload are one pod's containers (the pod minimum is
    split over them). Raises ``DecideInputError``: 400 naming the malformed field, 422 when no
    container has enough history for a recommendation.
    """
    body = _mapping(raw, "(body)")
    _check_keys(body, _TOP_KEYS, "")
    if body.get("kind") != "rightsizing":
        raise _bad("kind", "must be 'rightsizing'")
    if "now" not in body:
        raise _bad("now", "required")
    now = _time(body["now"], "now")
    policy = _policy(body.get("policy", {}))
    if "containers" not in body:
        raise _bad("containers", "required")
    containers = _containers(body["containers"])
    results = [recommend_container(container, now=now, policy=policy) for container in containers]
    if not any(result.defined for result in results):
        problems = [
            (f"containers.{index}.samples", result.message) for index, result in enumerate(results)
        ]
        summary = "; ".join(f"{path}: {message}" for path, message in problems)
        raise DecideInputError(422, f"no container can be right-sized: {summary}", problems)
    return {"containers": [rightsizing_json(result) for result in results]}
