"""Replay a load trace through the horizontal scaling rules, reactive or predictive.

The capacity model is the simplest one that shows what lead time buys:

- the trace is a piecewise-constant demand: ``values[i]`` holds over ``[t_i, t_i + step)``, in the
  trace's own unit per trace interval; a replica serves ``capacity_per_replica`` of that unit;
- a replica added at ``t`` serves from ``t + startup_seconds``; a removed one stops at once, and the
  youngest (not-yet-ready first) goes first, as a ReplicaSet scale-down prefers unready pods;
- every ``interval_seconds`` the controller decides. The reactive recommendation is the HPA
  rule on utilisation of the *ready* replicas: ``r = demand / (ready * capacity) / target``;
  inside the tolerance the count holds, else ``ceil(r * ready)`` (the HPA fast path; a scale-up
  that would land below the current count while pods are starting holds instead). A missing
  sample, or no ready replica, holds the count (the HPA does not scale on a missing metric).
  The predictive arm takes ``max(reactive, forecast)`` (``predictive.predictive_replicas``) in
  ``forecastAndScale`` mode. Both go through the real HPA normalisation
  (``normalize.normalize_replicas``: stabilisation, rate limits, min/max).

Measured after each decision, over one interval, from ``evaluate_from`` on (both arms alike):

- SLO-violation minutes: time when demand > ready capacity x target utilisation (the SLO is the
  target the policy asks for); overload minutes: demand > ready capacity (requests would queue);
- replica-hours: all replicas, starting ones included (they are paid for);
- over-provisioning: total ready capacity / total demand - 1, in %, over intervals with a known
  demand (a ratio of sums, so a quiet night does not dominate the way a mean of ratios would);
- scaling actions: decisions that changed the replica count.
A missing demand sample counts neither as a violation nor in the over-provisioning.

The forecaster's accuracy at the lead time is measured walk-forward on the trace grid
(``forecast_accuracy``), against the last-value and seasonal-naive baselines.

Everything is pure and deterministic: the trace, policy and settings in, figures out.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from controller.engines.scaling.forecast import (
    SEASONAL_PERIOD_SECONDS,
    Forecast,
    ForecasterSettings,
    Grid,
    WalkForward,
    mape_percent,
    resample,
    walk_forward,
    wape_percent,
)
from controller.engines.scaling.horizontal import tolerances_for
from controller.engines.scaling.normalize import (
    ScalingHistory,
    normalize_replicas,
    record_scale_event,
)
from controller.engines.scaling.predictive import FORECAST_AND_SCALE, predictive_replicas
from shared.quantities import parse_quantity
from shared.scaling_policy import ScalingPolicy, parse_policy

__all__ = [
    "DEFAULT_POLICY",
    "BacktestConfig",
    "BacktestResult",
    "ForecastAccuracy",
    "Mode",
    "Timeline",
    "default_capacity_per_replica",
    "forecast_accuracy",
    "forecasts_for",
    "grid_of",
    "horizon_steps_for",
    "load_policy",
    "reactive_replicas",
    "run_backtest",
    "target_utilization",
]

Mode: TypeAlias = Literal["reactive", "predictive"]
FloatArray: TypeAlias = npt.NDArray[np.float64]

# The policy when none is given: HPA-like, target 70 %, Kubernetes' default behavior.
DEFAULT_POLICY: dict[str, object] = {
    "minReplicas": 1,
    "maxReplicas": 1000,
    "metrics": [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ],
    "behavior": {},
    "predictive": {"enabled": True, "mode": FORECAST_AND_SCALE},
}


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    capacity_per_replica: float  # trace units per trace interval one ready replica serves
    startup_seconds: float = 120.0
    interval_seconds: float = 15.0
    lead_time_seconds: float | None = None  # None: the policy's predictive.leadTimeSeconds
    refit_every_seconds: float = 3600.0  # how often the forecaster is refitted in the replay

    def __post_init__(self) -> None:
        if not (math.isfinite(self.capacity_per_replica) and self.capacity_per_replica > 0):
            raise ValueError(f"capacity per replica must be > 0, got {self.capacity_per_replica}")
        if not (math.isfinite(self.startup_seconds) and self.startup_seconds >= 0):
            raise ValueError(f"startup seconds must be >= 0, got {self.startup_seconds}")
        if not (math.isfinite(self.interval_seconds) and self.interval_seconds > 0):
            raise ValueError(f"interval seconds must be > 0, got {self.interval_seconds}")
        if self.lead_time_seconds is not None and not self.lead_time_seconds >= 0:
            raise ValueError(f"lead time seconds must be >= 0, got {self.lead_time_seconds}")
        if not self.refit_every_seconds > 0:
            raise ValueError(f"refit seconds must be > 0, got {self.refit_every_seconds}")


@dataclass(frozen=True, slots=True, eq=False)
class Timeline:
    """One point per trace bucket (the first decision in it), for charts."""

    times: FloatArray
    demand: FloatArray
    ready_capacity: FloatArray
    replicas: FloatArray


@dataclass(frozen=True, slots=True)
class BacktestResult:
    mode: Mode
    slo_violation_minutes: float
    overload_minutes: float
    replica_hours: float
    over_provisioning_percent: float | None
    scaling_actions: int
    decisions_by_reason: dict[str, int]
    evaluated_from: float
    evaluated_until: float
    timeline: Timeline = field(repr=False, compare=False)

    def summary(self) -> dict[str, object]:
        return {
            "slo_violation_minutes": round(self.slo_violation_minutes, 2),
            "overload_minutes": round(self.overload_minutes, 2),
            "replica_hours": round(self.replica_hours, 2),
            "over_provisioning_percent": _rounded(self.over_provisioning_percent),
            "scaling_actions": self.scaling_actions,
            "decisions_by_reason": dict(sorted(self.decisions_by_reason.items())),
        }


@dataclass(frozen=True, slots=True)
class ForecastAccuracy:
    """Errors at the lead time over the evaluation window, in %; None: nothing to compare."""

    horizon_steps: int
    points: int
    model_mape: float | None
    model_wape: float | None
    last_value_mape: float | None
    last_value_wape: float | None
    seasonal_naive_mape: dict[str, float | None]
    seasonal_naive_wape: dict[str, float | None]

    def summary(self) -> dict[str, object]:
        return {
            "horizon_steps": self.horizon_steps,
            "points": self.points,
            "mape_percent": _rounded(self.model_mape),
            "wape_percent": _rounded(self.model_wape),
            "last_value_mape_percent": _rounded(self.last_value_mape),
            "last_value_wape_percent": _rounded(self.last_value_wape),
            "seasonal_naive_mape_percent": {
                k: _rounded(v) for k, v in self.seasonal_naive_mape.items()
            },
            "seasonal_naive_wape_percent": {
                k: _rounded(v) for k, v in self.seasonal_naive_wape.items()
            },
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def default_capacity_per_replica(values: Sequence[float | None]) -> float:
    """The trace's P95 / 10, so about ten replicas serve the peak hour."""
    known = np.array([v for v in values if v is not None], dtype=np.float64)
    if known.size == 0:
        raise ValueError("the trace has no observed values")
    p95 = float(np.percentile(known, 95))
    if p95 <= 0:
        raise ValueError("the trace's 95th percentile is 0; give --capacity-per-replica")
    return p95 / 10.0


def target_utilization(policy: ScalingPolicy, capacity_per_replica: float) -> float:
    """The fraction of a replica's capacity the first metric targets.

    A Utilization target is a percentage; an AverageValue target is read in the trace's unit
    per replica. Anything else cannot be mapped onto a single load trace.
    """
    if not policy.metrics:
        raise ValueError("the policy has no metric")
    target = policy.metrics[0].target
    if target.type == "Utilization" and target.average_utilization is not None:
        return target.average_utilization / 100.0
    if target.type == "AverageValue" and target.average_value is not None:
        return float(parse_quantity(target.average_value)) / capacity_per_replica
    raise ValueError(
        "the backtest needs the first metric to have a Utilization or AverageValue target"
    )


def horizon_steps_for(lead_time_seconds: float, step_seconds: float) -> int:
    """Buckets a forecast must cover so every point in ``(now, now + lead]`` has one."""
    return max(1, math.ceil(lead_time_seconds / step_seconds - 1e-9))


def forecasts_for(
    grid: Grid,
    policy: ScalingPolicy,
    *,
    lead_time_seconds: float,
    refit_every_seconds: float,
    settings: ForecasterSettings | None = None,
) -> WalkForward:
    """The walk-forward forecasts the predictive arm uses, with the policy's forecaster knobs."""
    spec = policy.predictive
    base = settings or ForecasterSettings()
    tuned = ForecasterSettings(
        max_history_seconds=float(spec.history_window_seconds),
        holdout_seconds=base.holdout_seconds,
        acf_threshold=base.acf_threshold,
        level_windows_seconds=base.level_windows_seconds,
        profile_smoothing_seconds=base.profile_smoothing_seconds,
        regression_windows_seconds=base.regression_windows_seconds,
        regression_history_seconds=base.regression_history_seconds,
    )
    return walk_forward(
        grid,
        horizon_steps=horizon_steps_for(lead_time_seconds, grid.step_seconds),
        refit_every_seconds=refit_every_seconds,
        lead_time_seconds=lead_time_seconds,
        seasonalities=tuple(spec.seasonalities),
        min_history_seconds=float(spec.min_history_seconds),
        settings=tuned,
    )


def _filled_forward(values: FloatArray) -> FloatArray:
    known = np.isfinite(values)
    last = np.maximum.accumulate(np.where(known, np.arange(values.size), -1))
    return np.where(last >= 0, values[np.maximum(last, 0)], np.nan)


def forecast_accuracy(
    forecasts: WalkForward, lead_time_seconds: float, evaluate_from: float
) -> ForecastAccuracy:
    """Errors of the prediction made at bucket k for bucket k + h (h: the lead in buckets).

    Only targets at or after ``evaluate_from`` and only where the model produced a forecast are
    scored, and the baselines are scored on exactly the same points: last value (the latest
    known sample at k) and seasonal naive (the sample one day / one week before the target).
    """
    grid = forecasts.grid
    y = grid.values
    size = y.size
    h = horizon_steps_for(lead_time_seconds, grid.step_seconds)
    h = min(h, forecasts.predictions.shape[1])
    predicted = np.full(size, np.nan)
    if size > h:
        predicted[h:] = forecasts.predictions[: size - h, h - 1]
    last_value = np.full(size, np.nan)
    if size > h:
        last_value[h:] = _filled_forward(y)[: size - h]
    first_target = math.ceil((evaluate_from - grid.first * grid.step_seconds) / grid.step_seconds)
    scored = np.isfinite(predicted) & np.isfinite(y)
    scored[: max(0, first_target)] = False
    naive: dict[str, FloatArray] = {}
    for name, period_seconds in SEASONAL_PERIOD_SECONDS.items():
        lag = round(period_seconds / grid.step_seconds)
        series = np.full(size, np.nan)
        if size > lag:
            series[lag:] = y[: size - lag]
        naive[name] = series

    def masked(values: FloatArray) -> FloatArray:
        return np.where(scored, values, np.nan)

    actual = masked(y)
    return ForecastAccuracy(
        horizon_steps=h,
        points=int(scored.sum()),
        model_mape=mape_percent(masked(predicted), actual),
        model_wape=wape_percent(masked(predicted), actual),
        last_value_mape=mape_percent(masked(last_value), actual),
        last_value_wape=wape_percent(masked(last_value), actual),
        seasonal_naive_mape={k: mape_percent(masked(v), actual) for k, v in naive.items()},
        seasonal_naive_wape={k: wape_percent(masked(v), actual) for k, v in naive.items()},
    )


def reactive_replicas(
    demand: float,
    ready: int,
    current: int,
    capacity_per_replica: float,
    target: float,
    within_tolerance: Callable[[float], bool],
) -> int:
    """The HPA utilisation rule over the ready replicas (see the module docstring)."""
    if not math.isfinite(demand) or ready <= 0:
        return current
    ratio = demand / (ready * capacity_per_replica) / target
    if within_tolerance(ratio):
        return current
    raw = math.ceil(ratio * ready - 1e-9)
    if ratio > 1.0 and raw < current:
        return current  # replicas are still starting: do not undo the scale-up
    return raw


def run_backtest(
    grid: Grid,
    policy: ScalingPolicy,
    config: BacktestConfig,
    *,
    mode: Mode,
    forecasts: WalkForward | None = None,
    evaluate_from: float | None = None,
) -> BacktestResult:
    """Simulate one arm over the trace; ``forecasts`` is required for the predictive arm."""
    if mode == "predictive" and forecasts is None:
        raise ValueError("the predictive arm needs forecasts (see forecasts_for)")
    step = grid.step_seconds
    start = grid.first * step
    end = start + grid.values.size * step
    evaluate_from = start if evaluate_from is None else evaluate_from
    interval = config.interval_seconds
    capacity = config.capacity_per_replica
    target = target_utilization(policy, capacity)
    within = tolerances_for(policy).is_within
    spec = policy.predictive
    lead = float(
        spec.lead_time_seconds if config.lead_time_seconds is None else config.lead_time_seconds
    )
    per_replica_target = capacity * target
    y = grid.values

    current = max(policy.min_replicas, 1)
    ready_at: list[float] = [start - config.startup_seconds] * current  # ready at the start
    history = ScalingHistory()
    reasons: Counter[str] = Counter()
    violation_seconds = overload_seconds = replica_seconds = 0.0
    capacity_total = demand_total = 0.0
    actions = 0
    timeline: list[tuple[float, float, float, float]] = []
    last_bucket = -1

    ticks = max(1, math.ceil((end - start) / interval - 1e-9))
    for tick in range(ticks):
        now = start + tick * interval
        bucket = min(int((now - start) // step), y.size - 1)
        demand = float(y[bucket])
        ready = bisect.bisect_right(ready_at, now)
        raw = reactive_replicas(demand, ready, current, capacity, target, within)
        reason = "reactive"
        if mode == "predictive" and forecasts is not None:
            row = forecasts.predictions[bucket]
            fit = forecasts.fits[int(forecasts.fit_of_row[bucket])]
            forecast = None
            if np.isfinite(row).all():
                forecast = Forecast(
                    values=tuple(float(v) for v in row),
                    step_seconds=step,
                    start=start + bucket * step,
                    model=fit.model,
                    recent_mape=fit.recent_mape,
                    reason=fit.reason,
                )
            decision = predictive_replicas(
                reactive_replicas=raw,
                forecast=forecast,
                now=now,
                lead_time_seconds=lead,
                per_replica_target=per_replica_target,
                mode=FORECAST_AND_SCALE,
                max_error_percent=spec.max_error_percent,
            )
            raw, reason = decision.replicas, decision.reason
        reasons[reason] += 1
        normalized = normalize_replicas(policy, current, raw, history, now)
        history = normalized.history
        if normalized.replicas != current:
            history = record_scale_event(policy, history, current, normalized.replicas, now)
            actions += int(now >= evaluate_from)
            if normalized.replicas > current:
                ready_at.extend([now + config.startup_seconds] * (normalized.replicas - current))
            else:
                del ready_at[normalized.replicas :]  # youngest (latest ready) first
            current = normalized.replicas
            ready = bisect.bisect_right(ready_at, now)

        seconds = min(interval, end - now)
        ready_capacity = ready * capacity
        if bucket != last_bucket:
            timeline.append((now, demand, ready_capacity, float(current)))
            last_bucket = bucket
        if now < evaluate_from:
            continue
        replica_seconds += current * seconds
        if math.isfinite(demand):
            violation_seconds += seconds * (demand > ready_capacity * target)
            overload_seconds += seconds * (demand > ready_capacity)
            capacity_total += ready_capacity * seconds
            demand_total += demand * seconds

    columns = np.array(timeline, dtype=np.float64).reshape(-1, 4)
    return BacktestResult(
        mode=mode,
        slo_violation_minutes=violation_seconds / 60.0,
        overload_minutes=overload_seconds / 60.0,
        replica_hours=replica_seconds / 3600.0,
        over_provisioning_percent=(
            (capacity_total / demand_total - 1.0) * 100.0 if demand_total > 0 else None
        ),
        scaling_actions=actions,
        decisions_by_reason=dict(reasons),
        evaluated_from=evaluate_from,
        evaluated_until=end,
        timeline=Timeline(columns[:, 0], columns[:, 1], columns[:, 2], columns[:, 3]),
    )


def load_policy(raw: object | None) -> ScalingPolicy:
    """The given policy (mapping or JSON/YAML text), else ``DEFAULT_POLICY``."""
    if raw is None:
        return parse_policy(DEFAULT_POLICY)
    if isinstance(raw, str | bytes):
        return parse_policy(raw)
    if isinstance(raw, dict):
        return parse_policy(raw)
    raise ValueError("a policy must be a mapping or JSON/YAML text")


def grid_of(times: Sequence[float], values: Sequence[float | None], step: float) -> Grid:
    """The trace on its own grid (the loader guarantees sorted rows)."""
    return resample(list(times), list(values), step)
