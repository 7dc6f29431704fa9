"""Combine the reactive (HPA) recommendation with a load forecast.

The rule is AWS predictive scaling's and Crane EffectiveHPA's: provision now for the highest load
forecast over the lead time (the pod start-up time or longer, AWS's ``SchedulingBufferTime``),
and never go below what the reactive rule asks for, so a wrong forecast can only add replicas.
Scale-in on the forecast alone is not decided here: a lower recommendation goes through the
normal HPA scale-down stabilisation and rate limits in the caller, like any other.

The forecast is trusted only while its recent held-out error is within ``max_error_percent``;
``forecastOnly`` mode reports what the forecast would do and changes nothing (AWS's default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeAlias

from controller.engines.scaling.forecast import Forecast

__all__ = ["FORECAST_AND_SCALE", "FORECAST_ONLY", "PredictiveDecision", "predictive_replicas"]

FORECAST_ONLY = "forecastOnly"
FORECAST_AND_SCALE = "forecastAndScale"

Reason: TypeAlias = Literal[
    "forecast_ahead", "reactive", "forecast_error_too_high", "forecast_unavailable", "forecast_only"
]


@dataclass(frozen=True, slots=True)
class PredictiveDecision:
    replicas: int  # the recommendation to normalise (never below the reactive one)
    reason: Reason
    message: str
    forecast_replicas: int | None = None  # what the forecast alone asks for, when it could tell
    forecast_peak: float | None = None  # the highest forecast load over the lead time


def predictive_replicas(
    *,
    reactive_replicas: int,
    forecast: Forecast | None,
    now: float,
    lead_time_seconds: float,
    per_replica_target: float,
    mode: str,
    max_error_percent: float,
) -> PredictiveDecision:
    """``max(reactive, ceil(peak forecast over (now, now + lead] / per-replica target))``."""
    if per_replica_target <= 0 or not math.isfinite(per_replica_target):
        raise ValueError(f"per_replica_target must be a positive number, got {per_replica_target}")
    if mode not in (FORECAST_ONLY, FORECAST_AND_SCALE):
        raise ValueError(f"mode must be {FORECAST_ONLY} or {FORECAST_AND_SCALE}, got {mode!r}")
    if forecast is None:
        return PredictiveDecision(
            reactive_replicas, "forecast_unavailable", "no forecast (too little history?)"
        )
    if forecast.recent_mape is not None and forecast.recent_mape > max_error_percent:
        return PredictiveDecision(
            reactive_replicas,
            "forecast_error_too_high",
            f"forecast {forecast.model} had a recent error of {forecast.recent_mape:.1f}% MAPE, "
            f"above the {max_error_percent:g}% allowed; using the reactive recommendation",
        )
    peak = forecast.max_between(now, now + lead_time_seconds)
    if peak is None:
        # The load that holds now is the observed one, which the reactive rule already serves.
        return PredictiveDecision(
            reactive_replicas,
            "reactive",
            f"no forecast interval starts in the next {lead_time_seconds:g}s "
            f"(forecast step {forecast.step_seconds:g}s); the current load holds",
        )
    if not math.isfinite(peak):
        return PredictiveDecision(
            reactive_replicas, "forecast_unavailable", f"forecast {forecast.model} is not finite"
        )
    wanted = math.ceil(peak / per_replica_target - 1e-9)  # float noise must not add a replica
    if mode == FORECAST_ONLY:
        return PredictiveDecision(
            reactive_replicas,
            "forecast_only",
            f"forecast peak {peak:.4g} in the next {lead_time_seconds:g}s would need {wanted} "
            f"replicas (reactive {reactive_replicas}); forecastOnly mode does not act on it",
            wanted,
            peak,
        )
    if wanted > reactive_replicas:
        return PredictiveDecision(
            wanted,
            "forecast_ahead",
            f"forecast peak {peak:.4g} in the next {lead_time_seconds:g}s needs {wanted} "
            f"replicas, above the reactive {reactive_replicas} ({forecast.model})",
            wanted,
            peak,
        )
    return PredictiveDecision(
        reactive_replicas,
        "reactive",
        f"forecast peak {peak:.4g} in the next {lead_time_seconds:g}s needs {wanted} replicas, "
        f"not above the reactive {reactive_replicas}",
        wanted,
        peak,
    )
