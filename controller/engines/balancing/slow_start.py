"""Slow start: the weight of an endpoint that has only just turned healthy.

Ports ``EdfLoadBalancerBase::applySlowStartFactor`` (envoyproxy/envoy
source/extensions/load_balancing_policies/common/load_balancer_impl.cc): a new endpoint gets
``weight * max(min_weight_percent, time_factor ** (1 / aggression))`` with
``time_factor = max(t, 1 ms) / window``, so it warms up instead of taking a full share cold.
Envoy measures both durations in whole milliseconds (``duration_cast`` truncates), and so do we.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_AGGRESSION = 1.0
DEFAULT_MIN_WEIGHT_PCT = 10.0


@dataclass(frozen=True, slots=True)
class SlowStartSettings:
    """Envoy's ``SlowStartConfig``: a window of 0 disables slow start."""

    window_seconds: float
    aggression: float = DEFAULT_AGGRESSION
    min_weight_pct: float = DEFAULT_MIN_WEIGHT_PCT


def _milliseconds(seconds: float) -> int:
    """Whole milliseconds, truncated as ``std::chrono::duration_cast`` does."""
    return math.floor(seconds * 1000)


def _apply_aggression(time_factor: float, aggression: float) -> float:
    # Envoy skips pow() for the linear case and at the end of the window.
    if aggression == 1.0 or time_factor == 1.0:
        return time_factor
    return float(time_factor ** (1.0 / aggression))


def slow_start_factor(age_seconds: float | None, settings: SlowStartSettings | None) -> float:
    """The multiplier for an endpoint healthy for ``age_seconds`` (None: since long ago).

    Outside the window (or with slow start off) the factor is 1. An invalid aggression
    (<= 0 or NaN) falls back to 1.0 as Envoy does at runtime.
    """
    if settings is None or age_seconds is None:
        return 1.0
    window_ms = _milliseconds(settings.window_seconds)
    if window_ms <= 0:
        return 1.0
    in_healthy_ms = _milliseconds(age_seconds)
    if in_healthy_ms >= window_ms:
        return 1.0
    aggression = settings.aggression
    if aggression <= 0.0 or math.isnan(aggression):
        aggression = 1.0
    time_factor = max(1, in_healthy_ms) / window_ms
    return max(_apply_aggression(time_factor, aggression), settings.min_weight_pct / 100.0)


def slow_start_weight(
    weight: float, age_seconds: float | None, settings: SlowStartSettings | None
) -> float:
    """``weight`` scaled by the slow-start factor (Envoy's ``hostWeight`` for a healthy host)."""
    return weight * slow_start_factor(age_seconds, settings)
