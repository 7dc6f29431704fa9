"""Adaptive concurrency limits: Netflix concurrency-limits' AIMD and Gradient2, as pure state
machines (state in, sample in, state out).

Both answer one question: how many requests may be in flight towards a service before more of
them only queue. They are ported from ``com.netflix.concurrency.limits.limit.AIMDLimit`` and
``Gradient2Limit`` (Apache-2.0), keeping their defaults and their integer truncation, so the
library's own unit tests hold here unchanged:

- AIMD (loss based): a drop or an RTT over ``timeout`` multiplies the limit by
  ``backoff_ratio`` (0.9), truncated; a success while at least half the limit is in use adds 1;
  below half use the limit stays (an app-limited caller proves nothing about capacity).
- Gradient2 (latency based): ``gradient = clamp(rtt_tolerance * long_rtt / short_rtt, 0.5, 1)``,
  ``new = limit * gradient + queue_size``, smoothed ``limit * (1 - s) + new * s`` and clamped.
  ``long_rtt`` is an exponential average over ``long_window`` samples (a plain mean over the
  first ``warmup`` ones); it is pulled down by 5 % whenever it is over twice the latest RTT,
  so the baseline recovers quickly after a long overload.

The limit the dataplane enforces is the state's ``limit`` (an int, as in Java's ``(int)``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "AimdLimit",
    "AimdSettings",
    "Gradient2Limit",
    "Gradient2Settings",
    "aimd_update",
    "exp_avg_add",
    "gradient2_update",
]


# --- AIMD ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AimdSettings:
    """``AIMDLimit.Builder`` defaults (master): min 20, max 200, backoff 0.9, timeout 5 s."""

    min_limit: int = 20
    max_limit: int = 200
    backoff_ratio: float = 0.9
    timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.backoff_ratio < 1.0:
            raise ValueError("backoff_ratio must be in [0.5, 1.0)")  # the Builder's check
        if not 0 <= self.min_limit <= self.max_limit:
            raise ValueError("need 0 <= min_limit <= max_limit")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")


@dataclass(frozen=True, slots=True)
class AimdLimit:
    limit: int


def aimd_update(
    state: AimdLimit,
    rtt_seconds: float,
    in_flight: int,
    dropped: bool,
    settings: AimdSettings = AimdSettings(),
) -> AimdLimit:
    """One sample: back off on a drop or a timeout, probe up by one when the limit is in use."""
    limit = state.limit
    if dropped or rtt_seconds > settings.timeout_seconds:
        limit = int(limit * settings.backoff_ratio)
    elif in_flight * 2 >= limit:
        limit += 1
    return AimdLimit(min(settings.max_limit, max(settings.min_limit, limit)))


# --- Gradient2 -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gradient2Settings:
    """``Gradient2Limit.Builder`` defaults: initial 20, min 20, max 200, smoothing 0.2, queue
    size 4, RTT tolerance 1.5, long window 600 samples (the first 10 averaged plainly)."""

    initial_limit: int = 20
    min_limit: int = 20
    max_limit: int = 200
    smoothing: float = 0.2
    queue_size: int = 4
    rtt_tolerance: float = 1.5
    long_window: int = 600
    warmup: int = 10
    recovery_decay: float = 0.95  # long_rtt *= this while it is over twice the latest RTT

    def __post_init__(self) -> None:
        if not 0 < self.min_limit <= self.max_limit:
            raise ValueError("need 0 < min_limit <= max_limit")
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError("smoothing must be in (0, 1]")
        if self.rtt_tolerance < 1.0:
            raise ValueError("rtt_tolerance must be >= 1")
        if self.long_window < 1 or self.warmup < 0:
            raise ValueError("long_window must be >= 1 and warmup >= 0")


@dataclass(frozen=True, slots=True)
class Gradient2Limit:
    """The limiter's state: the (fractional) estimate, and the long-RTT average's state."""

    estimated_limit: float
    long_rtt: float = 0.0
    samples: int = 0  # samples averaged so far, counted up to the warmup
    warmup_sum: float = 0.0

    @property
    def limit(self) -> int:
        return int(self.estimated_limit)

    @classmethod
    def initial(cls, settings: Gradient2Settings = Gradient2Settings()) -> Gradient2Limit:
        return cls(float(settings.initial_limit))


def exp_avg_add(state: Gradient2Limit, sample: float, window: int, warmup: int) -> Gradient2Limit:
    """``ExpAvgMeasurement.add``: a plain mean over the first ``warmup`` samples, then an
    exponential average with factor ``2 / (window + 1)``."""
    if state.samples < warmup:
        total = state.warmup_sum + sample
        count = state.samples + 1
        return replace(state, long_rtt=total / count, samples=count, warmup_sum=total)
    factor = 2.0 / (window + 1)
    return replace(state, long_rtt=state.long_rtt * (1 - factor) + sample * factor)


def gradient2_update(
    state: Gradient2Limit,
    rtt_seconds: float,
    in_flight: int,
    settings: Gradient2Settings = Gradient2Settings(),
) -> Gradient2Limit:
    """One sample (``Gradient2Limit._update``); an RTT of zero or less is ignored."""
    if rtt_seconds <= 0:
        return state
    queue_size = settings.queue_size
    state = exp_avg_add(state, rtt_seconds, settings.long_window, settings.warmup)
    short_rtt, long_rtt = rtt_seconds, state.long_rtt
    if long_rtt / short_rtt > 2:
        state = replace(state, long_rtt=state.long_rtt * settings.recovery_decay)
    estimated = state.estimated_limit
    if in_flight < estimated / 2:
        return state  # app limited: no evidence the limit could grow
    gradient = max(0.5, min(1.0, settings.rtt_tolerance * long_rtt / short_rtt))
    new_limit = estimated * gradient + queue_size
    new_limit = estimated * (1 - settings.smoothing) + new_limit * settings.smoothing
    new_limit = max(settings.min_limit, min(settings.max_limit, new_limit))
    return replace(state, estimated_limit=new_limit)
