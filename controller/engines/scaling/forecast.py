"""Forecast a scaling metric (e.g. a workload's total requests/s) from its own history.

The design follows the two anchors in the research notes (section 4): Crane's DSP predictor accepts
only a 1-day or 7-day period, found with the autocorrelation, and keeps whichever estimator had the
lowest error on the held-out last stretch (``bestEstimator``); AWS predictive scaling needs at least
24 h of history and looks back up to 14 days.

The model is a *seasonal profile* times (or plus) a *recent level*:

- the history is put on a fixed grid (``step_seconds``); an empty bucket is a gap (NaN), never a
  zero, so gaps and outages do not pull the forecast down;
- a period (1 d, 7 d) is a candidate when it divides into whole steps, at least 1.5 periods of
  history exist, and the autocorrelation at that lag is above ``acf_threshold`` and a local peak;
  of the candidates only the one with the highest autocorrelation is used (Crane's rule);
- the profile is the per-phase *median* over the past periods, lightly smoothed: one outlier day
  (a spike, an outage) moves a median little, which is the robustness to outliers;
- the level is the median of the last few residuals (``y / profile`` or ``y - profile``), so a
  series that grew since last week is scaled up, and one noisy sample does not swing it;
- or the level is a least-squares regression of the value ``lead`` ahead on the means of the
  last few residuals (an AR model on the deseasonalised series);
- every variant (additive/multiplicative x level window or regression, plus the same without a
  profile: last value, recent median, AR) is scored on the held-out last day at the lead time
  that matters to the caller; the lowest absolute error relative to the load (WAPE) wins, and
  it is refitted on all the history.

Everything here is pure and deterministic: no clock, no randomness. Between refits,
``Forecaster.predict_path`` re-reads the level from newer samples without refitting, which is what
makes a refit every few minutes for hundreds of workloads, or a walk-forward replay, cheap.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

__all__ = [
    "SEASONAL_PERIOD_SECONDS",
    "FitSummary",
    "Forecast",
    "Forecaster",
    "ForecasterSettings",
    "Grid",
    "WalkForward",
    "fit_forecaster",
    "mape_percent",
    "resample",
    "walk_forward",
    "wape_percent",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
SeriesLike: TypeAlias = Sequence[float | None] | FloatArray
Combine: TypeAlias = Literal["multiplicative", "additive", "flat"]

DAY_SECONDS = 86_400.0
SEASONAL_PERIOD_SECONDS: dict[str, float] = {"daily": DAY_SECONDS, "weekly": 7 * DAY_SECONDS}
_NO_MODEL = "none"


@dataclass(frozen=True, slots=True)
class ForecasterSettings:
    """The knobs, with the values used everywhere; one object so a caller can pin them."""

    max_history_seconds: float = 28 * DAY_SECONDS  # four weekly periods to take a median over
    holdout_seconds: float = DAY_SECONDS  # Crane holds out the last period; a day is enough
    acf_threshold: float = 0.3
    # Level windows tried by the holdout (0 = the last sample alone).
    level_windows_seconds: tuple[float, ...] = (0.0, 900.0, 3600.0)
    profile_smoothing_seconds: float = 900.0
    # Means over these windows are the regression's inputs (0 = the last sample alone).
    regression_windows_seconds: tuple[float, ...] = (0.0, 120.0, 300.0, 900.0, 3600.0, 14400.0)
    regression_history_seconds: float = 7 * DAY_SECONDS


@dataclass(frozen=True, slots=True)
class Forecast:
    """Predicted load at ``start + step_seconds * i`` for ``i = 1 .. len(values)``."""

    values: tuple[float, ...]
    step_seconds: float
    start: float
    model: str
    recent_mape: float | None  # this model's MAPE on the most recent held-out window, %
    reason: str

    def time_of(self, index: int) -> float:
        """When ``values[index]`` applies (index 0 is one step after ``start``)."""
        return self.start + self.step_seconds * (index + 1)

    def max_between(self, after: float, until: float) -> float | None:
        """The highest forecast whose time is in ``(after, until]``, or None if none is."""
        chosen = [v for i, v in enumerate(self.values) if after < self.time_of(i) <= until]
        return max(chosen) if chosen else None


@dataclass(frozen=True, slots=True)
class Grid:
    """A series on a fixed grid: ``values[i]`` is the mean load in bucket ``first + i``."""

    first: int  # absolute bucket index: round(time / step)
    step_seconds: float
    values: FloatArray  # NaN = no observation

    @property
    def end_time(self) -> float:
        """Start time of the last bucket."""
        return (self.first + len(self.values) - 1) * self.step_seconds


def _as_array(values: SeriesLike) -> FloatArray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def resample(times: SeriesLike, values: SeriesLike, step_seconds: float) -> Grid:
    """Average the samples into buckets of ``step_seconds`` aligned to multiples of the step.

    Aligning to absolute multiples keeps a bucket's phase in the day the same from one fit to
    the next. A bucket with no finite sample stays NaN (a gap, not a zero).
    """
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be > 0, got {step_seconds}")
    t = _as_array(times)
    y = _as_array(values)
    if t.shape != y.shape:
        raise ValueError(f"times and values differ in length: {t.size} != {y.size}")
    if t.size == 0:
        return Grid(0, step_seconds, np.empty(0))
    buckets = np.rint(t / step_seconds).astype(np.int64)
    first = int(buckets.min())
    index = buckets - first
    finite = np.isfinite(y)
    size = int(index.max()) + 1
    sums = np.bincount(index[finite], weights=y[finite], minlength=size)
    counts = np.bincount(index[finite], minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return Grid(first, step_seconds, grid.astype(np.float64))


def _nanmedian_rows(matrix: FloatArray) -> FloatArray:
    """Row medians ignoring NaN; an all-NaN row gives NaN without numpy's warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(matrix, axis=1), dtype=np.float64)


def wape_percent(predicted: FloatArray, actual: FloatArray) -> float | None:
    """Sum of absolute errors over the sum of the load, in %; points with NaN are skipped."""
    ok = np.isfinite(predicted) & np.isfinite(actual)
    total = float(np.abs(actual[ok]).sum())
    if not ok.any() or total <= 0:
        return None
    return float(np.abs(predicted[ok] - actual[ok]).sum()) / total * 100.0


def mape_percent(predicted: FloatArray, actual: FloatArray) -> float | None:
    """Mean absolute percentage error over points with a positive actual value, in %."""
    ok = np.isfinite(predicted) & np.isfinite(actual) & (actual > 0)
    if not ok.any():
        return None
    return float(np.mean(np.abs(predicted[ok] - actual[ok]) / actual[ok])) * 100.0


def _autocorrelation(y: FloatArray, lag: int) -> float:
    """Sample ACF at ``lag`` over the pairs where both ends were observed."""
    if lag <= 0 or lag >= y.size:
        return math.nan
    centred = y - np.nanmean(y)
    left, right = centred[:-lag], centred[lag:]
    ok = np.isfinite(left) & np.isfinite(right)
    if ok.sum() < 2:
        return math.nan
    left, right = left[ok], right[ok]
    denominator = math.sqrt(float(np.dot(left, left)) * float(np.dot(right, right)))
    return float(np.dot(left, right)) / denominator if denominator > 0 else math.nan


def _phase(bucket: npt.NDArray[np.int64] | int, period_steps: int) -> npt.NDArray[np.int64]:
    return np.mod(bucket, period_steps).astype(np.int64)


def _profile(
    y: FloatArray, first: int, period_steps: int, smoothing_steps: int
) -> FloatArray | None:
    """Median per phase over the past periods, gaps filled from neighbours, circularly smoothed."""
    phases = _phase(np.arange(first, first + y.size), period_steps)
    # Place every sample in a (period, phase) table; unfilled cells stay NaN.
    offset = int(phases[0])
    cycles = (offset + y.size + period_steps - 1) // period_steps
    table = np.full(cycles * period_steps, np.nan)
    table[offset : offset + y.size] = y
    profile = _nanmedian_rows(table.reshape(cycles, period_steps).T)
    known = np.isfinite(profile)
    if known.sum() < max(2, period_steps // 2):
        return None
    if not known.all():
        where = np.arange(period_steps)
        profile = np.interp(where, where[known], profile[known], period=period_steps)
    if smoothing_steps > 1:
        kernel = np.ones(smoothing_steps) / smoothing_steps
        half = smoothing_steps // 2
        wrapped = np.concatenate([profile[-half:], profile, profile[:half]])
        profile = np.convolve(wrapped, kernel, mode="valid")
    return np.asarray(profile, dtype=np.float64)


def _fill_forward(level: FloatArray, neutral: float) -> FloatArray:
    """A gap keeps the last known value; before any observation the value is ``neutral``."""
    known = np.isfinite(level)
    if known.all():
        return level
    last_known = np.maximum.accumulate(np.where(known, np.arange(level.size), -1))
    return np.where(last_known >= 0, level[np.maximum(last_known, 0)], neutral)


def _rolling_median(series: FloatArray, window: int) -> FloatArray:
    """Median of the last ``window`` values at each point, ignoring NaN."""
    if window <= 1:
        return series.copy()
    padded = np.concatenate([np.full(window - 1, np.nan), series])
    return _nanmedian_rows(np.lib.stride_tricks.sliding_window_view(padded, window))


def _rolling_mean(series: FloatArray, window: int) -> FloatArray:
    """Mean of the last ``window`` values at each point, ignoring NaN (NaN if all are)."""
    finite = np.isfinite(series)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, series, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    upper = np.arange(1, series.size + 1)
    lower = np.maximum(upper - window, 0)
    total, count = sums[upper] - sums[lower], counts[upper] - counts[lower]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass(frozen=True, slots=True)
class _Variant:
    """One candidate model: which profile, how the level combines with it, how it is read.

    ``level`` is either the median of the last ``window_steps`` deseasonalised samples, or a
    least-squares regression of the future deseasonalised value on the means of the last 1, 2,
    4, ... samples (an AR model on the ratio to the profile): it learns how much of a deviation
    from the profile persists over the lead time, and how much is noise.
    """

    period_name: str | None
    combine: Combine
    level: Literal["median", "regression"]
    window_steps: int

    def name(self, step_seconds: float) -> str:
        if self.level == "regression":
            level = "ar"
        else:
            level = "level_" + _duration(self.window_steps * step_seconds)
        if self.combine == "flat":
            return "last_value" if level == "level_" + _duration(step_seconds) else level
        sign = "*" if self.combine == "multiplicative" else "+"
        return f"seasonal_{self.period_name}{sign}{level}"


@dataclass(frozen=True, slots=True, eq=False)
class _Fitted:
    variant: _Variant
    profile: FloatArray | None
    coefficients: FloatArray | None  # regression only: (features, horizons)
    feature_windows: tuple[int, ...]

    @property
    def lead_in(self) -> int:
        """How many samples before a row the level needs."""
        if self.variant.level == "regression":
            return max(self.feature_windows) - 1
        return self.variant.window_steps - 1


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def _seasonal(profile: FloatArray | None, buckets: npt.NDArray[np.int64]) -> FloatArray:
    if profile is None:
        return np.zeros(buckets.shape)
    return np.asarray(profile[_phase(buckets, profile.size)], dtype=np.float64)


def _deseasonalise(series: FloatArray, seasonal: FloatArray, combine: Combine) -> FloatArray:
    if combine == "multiplicative":
        floor = max(float(np.mean(seasonal)) * 0.01, 1e-12) if seasonal.size else 1e-12
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(series / np.maximum(seasonal, floor), dtype=np.float64)
    if combine == "additive":
        return series - seasonal
    return series.copy()


def _features(z: FloatArray, windows: Sequence[int], neutral: float) -> FloatArray:
    """Design matrix: a constant, then the mean of the last ``w`` values for each window."""
    columns = [np.ones(z.size)]
    columns += [_fill_forward(_rolling_mean(z, w), neutral) for w in windows]
    return np.column_stack(columns)


def _neutral(combine: Combine) -> float:
    return 1.0 if combine == "multiplicative" else (0.0 if combine == "additive" else math.nan)


def _fit_regression(
    z: FloatArray, windows: Sequence[int], horizon_steps: int, rows: int, neutral: float
) -> FloatArray | None:
    """Least squares of z[k + j] (j = 1..horizon) on the features at k, over the last ``rows``.

    Targets are clipped to the median +- 6 MAD first, so a flash crowd does not set the
    coefficients for every ordinary day after it.
    """
    # Only the last ``rows`` rows are fitted: build features over them and their lead-in only.
    z = z[-(rows + horizon_steps + max(windows)) :]
    features = _features(z, windows, neutral)
    usable = z.size - horizon_steps
    if usable <= 0:
        return None
    first = max(0, usable - rows)
    x = features[first:usable]
    targets = np.column_stack([z[first + j : usable + j] for j in range(1, horizon_steps + 1)])
    ok = np.isfinite(x).all(axis=1) & np.isfinite(targets).all(axis=1)
    if ok.sum() < 20 * x.shape[1]:
        return None
    x, targets = x[ok], targets[ok]
    centre = float(np.median(targets))
    spread = float(np.median(np.abs(targets - centre))) * 6.0
    if spread > 0:
        targets = np.clip(targets, centre - spread, centre + spread)
    coefficients, *_ = np.linalg.lstsq(x, targets, rcond=None)
    return np.asarray(coefficients, dtype=np.float64)


def _predict(
    y: FloatArray,
    first: int,
    fitted: _Fitted,
    horizon_steps: int,
    history_before: FloatArray,
) -> FloatArray:
    """Forecast matrix: row k, column j-1 predicts bucket ``first + k + j`` from data up to k.

    ``history_before`` holds the samples just before ``y`` so the first rows have a full level
    window. Beyond the horizons the regression was fitted for, its last horizon is reused.
    """
    variant = fitted.variant
    lead_in = history_before[-fitted.lead_in :] if fitted.lead_in > 0 else np.empty(0)
    series = np.concatenate([lead_in, y])
    series_first = first - lead_in.size
    seasonal_now = _seasonal(fitted.profile, np.arange(series_first, series_first + series.size))
    z = _deseasonalise(series, seasonal_now, variant.combine)
    neutral = _neutral(variant.combine)
    if fitted.coefficients is not None:
        features = _features(z, fitted.feature_windows, neutral)[lead_in.size :]
        fitted_horizons = features @ fitted.coefficients
        columns = np.minimum(np.arange(horizon_steps), fitted_horizons.shape[1] - 1)
        level = fitted_horizons[:, columns]
    else:
        median = _rolling_median(z, variant.window_steps)
        level = np.repeat(_fill_forward(median, neutral)[lead_in.size :, None], horizon_steps, 1)
    ahead = np.arange(first, first + y.size)[:, None] + np.arange(1, horizon_steps + 1)[None, :]
    seasonal_ahead = _seasonal(fitted.profile, ahead)
    if variant.combine == "multiplicative":
        predicted = seasonal_ahead * level
    elif variant.combine == "additive":
        predicted = seasonal_ahead + level
    else:
        predicted = level
    return np.asarray(np.maximum(predicted, 0.0), dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class Forecaster:
    """A fitted model. ``available`` is False when the history cannot support a forecast."""

    step_seconds: float
    model: str
    reason: str
    recent_mape: float | None  # the chosen model's MAPE on the held-out last window, %
    recent_wape: float | None  # and its WAPE, the error the choice was made on, %
    fitted_until: float  # start time of the last bucket of the fitted history
    seasonalities: tuple[str, ...]  # the periods that passed the autocorrelation check
    _fitted: _Fitted | None = field(repr=False)
    _tail: Grid = field(repr=False)  # the last samples, enough for the level window

    @property
    def available(self) -> bool:
        return self._fitted is not None

    def predict_path(self, grid: Grid, horizon_steps: int) -> FloatArray:
        """Forecasts made after each bucket of ``grid`` (newer than the fit), without refitting.

        Row k predicts buckets ``grid.first + k + 1 .. + horizon_steps`` with the profile and
        coefficients fitted earlier and the level read from the samples up to bucket k. The fitted
        tail supplies the samples before ``grid.first`` when the two touch or overlap.
        """
        if self._fitted is None:
            return np.full((grid.values.size, horizon_steps), np.nan)
        if grid.step_seconds != self.step_seconds:
            raise ValueError(
                f"grid step {grid.step_seconds:g}s differs from the fitted {self.step_seconds:g}s"
            )
        offset = grid.first - self._tail.first
        contiguous = 0 <= offset <= self._tail.values.size
        before = self._tail.values[:offset] if contiguous else np.empty(0)
        return _predict(grid.values, grid.first, self._fitted, horizon_steps, before)

    def forecast(self, horizon_steps: int, recent: Grid | None = None) -> Forecast | None:
        """Forecast ``horizon_steps`` buckets after the last fitted bucket (or after ``recent``)."""
        if self._fitted is None or horizon_steps < 1:
            return None
        grid = recent if recent is not None else self._tail
        if grid.values.size == 0:
            return None
        row = self.predict_path(grid, horizon_steps)[-1]
        return Forecast(
            values=tuple(float(v) for v in row),
            step_seconds=self.step_seconds,
            start=grid.end_time,
            model=self.model,
            recent_mape=self.recent_mape,
            reason=self.reason,
        )


def _unavailable(grid: Grid, step_seconds: float, reason: str) -> Forecaster:
    return Forecaster(step_seconds, _NO_MODEL, reason, None, None, grid.end_time, (), None, grid)


def _candidate_periods(
    y: FloatArray, step_seconds: float, seasonalities: Sequence[str], threshold: float
) -> tuple[list[tuple[str, int]], list[str]]:
    """The period the series shows most clearly (Crane: the highest ACF peak wins), if any.

    The ACF is computed on a copy clipped to [P1, P99] (Crane replaces samples outside
    [P0.1, P99.9]; a wider clip suits the short hourly series), so one flash crowd cannot hide
    the cycle. Keeping only the dominant period matters at a weekend: a daily profile with a
    level held from Sunday would forecast Monday at Sunday's level.
    """
    accepted: list[tuple[float, str, int]] = []
    notes: list[str] = []
    finite = y[np.isfinite(y)]
    low, high = np.percentile(finite, [1.0, 99.0]) if finite.size else (0.0, 0.0)
    clipped = np.clip(y, low, high)
    for name in seasonalities:
        if name not in SEASONAL_PERIOD_SECONDS:
            raise ValueError(f"unknown seasonality {name!r}; expected one of daily, weekly")
        period_seconds = SEASONAL_PERIOD_SECONDS[name]
        steps = period_seconds / step_seconds
        if abs(steps - round(steps)) > 1e-9:
            notes.append(f"{name}: step {step_seconds:g}s does not divide the period")
            continue
        period = round(steps)
        if y.size < 1.5 * period:
            notes.append(f"{name}: {y.size * step_seconds / 3600:.0f}h of history < 1.5 periods")
            continue
        acf = _autocorrelation(clipped, period)
        # Crane's peak test: the ACF falls away on both sides, over min(4 h, period / 2).
        side = max(1, round(min(4 * 3600, period_seconds / 2) / step_seconds))
        left = _autocorrelation(clipped, period - side)
        right = _autocorrelation(clipped, period + side)
        peak = all(not math.isfinite(v) or acf > v for v in (left, right))
        if not math.isfinite(acf) or acf < threshold or not peak:
            notes.append(f"{name}: ACF {acf:.2f} (needs >= {threshold:g} at a peak)")
            continue
        accepted.append((acf, name, period))
        notes.append(f"{name}: ACF {acf:.2f}")
    if not accepted:
        return [], notes
    _, name, period = max(accepted, key=lambda item: item[0])
    return [(name, period)], notes


def _steps(seconds: Sequence[float], step_seconds: float) -> list[int]:
    return sorted({max(1, round(s / step_seconds)) for s in seconds})


def _fit_variant(
    variant: _Variant,
    profile: FloatArray | None,
    y: FloatArray,
    first: int,
    horizon_steps: int,
    feature_windows: tuple[int, ...],
    regression_rows: int,
) -> _Fitted | None:
    if variant.level == "median":
        return _Fitted(variant, profile, None, feature_windows)
    seasonal = _seasonal(profile, np.arange(first, first + y.size))
    z = _deseasonalise(y, seasonal, variant.combine)
    coefficients = _fit_regression(
        z, feature_windows, horizon_steps, regression_rows, _neutral(variant.combine)
    )
    return (
        None if coefficients is None else _Fitted(variant, profile, coefficients, feature_windows)
    )


def fit_forecaster(
    times: SeriesLike,
    values: SeriesLike,
    *,
    step_seconds: float,
    seasonalities: Sequence[str] = ("daily", "weekly"),
    min_history_seconds: float = DAY_SECONDS,
    lead_time_seconds: float = 300.0,
    settings: ForecasterSettings | None = None,
) -> Forecaster:
    """Fit on the history; variants are ranked by their error ``lead_time_seconds`` ahead."""
    settings = settings or ForecasterSettings()
    grid = resample(times, values, step_seconds)
    keep = max(1, int(settings.max_history_seconds // step_seconds))
    if grid.values.size > keep:
        grid = Grid(grid.first + grid.values.size - keep, step_seconds, grid.values[-keep:])
    observed = np.flatnonzero(np.isfinite(grid.values))
    if observed.size == 0:
        return _unavailable(grid, step_seconds, "no observations")
    # Leading gaps carry no information; trailing ones do (the level is stale), so keep those.
    grid = Grid(grid.first + int(observed[0]), step_seconds, grid.values[observed[0] :])
    y = grid.values
    history_seconds = y.size * step_seconds
    if history_seconds < min_history_seconds:
        return _unavailable(
            grid,
            step_seconds,
            f"history {history_seconds / 3600:.1f}h < minimum {min_history_seconds / 3600:g}h",
        )
    periods, notes = _candidate_periods(y, step_seconds, seasonalities, settings.acf_threshold)
    if not periods:
        return _unavailable(grid, step_seconds, "no seasonality: " + "; ".join(notes))

    horizon = max(1, math.ceil(lead_time_seconds / step_seconds - 1e-9))
    smoothing = max(1, round(settings.profile_smoothing_seconds / step_seconds)) | 1
    windows = _steps(settings.level_windows_seconds, step_seconds)
    feature_windows = tuple(_steps(settings.regression_windows_seconds, step_seconds))
    regression_rows = round(settings.regression_history_seconds / step_seconds)
    shortest_period = min(period for _, period in periods)
    holdout = min(round(settings.holdout_seconds / step_seconds), y.size - shortest_period)
    train, test = y[:-holdout], y[-holdout:]
    test_first = grid.first + train.size

    profiles: dict[str | None, FloatArray | None] = {None: None}
    for name, period in periods:
        profiles[name] = _profile(train, grid.first, period, smoothing)
    variants: list[_Variant] = []
    for period_name, profile in profiles.items():
        if period_name is not None and profile is None:
            continue
        combines: tuple[Combine, ...] = (
            ("flat",) if period_name is None else ("multiplicative", "additive")
        )
        for combine in combines:
            variants += [_Variant(period_name, combine, "median", w) for w in windows]
            variants.append(_Variant(period_name, combine, "regression", max(feature_windows)))

    # Row k of a prediction predicts bucket k + horizon; score only targets inside the holdout.
    actual = test[horizon:]
    scored: list[tuple[float, int, _Variant, float | None]] = []
    for order, variant in enumerate(variants):
        fitted = _fit_variant(
            variant,
            profiles[variant.period_name],
            train,
            grid.first,
            horizon,
            feature_windows,
            regression_rows,
        )
        if fitted is None:
            continue
        predicted = _predict(test, test_first, fitted, horizon, train)[:, horizon - 1]
        error = wape_percent(predicted[: test.size - horizon], actual)
        if error is not None:
            mape = mape_percent(predicted[: test.size - horizon], actual)
            scored.append((error, order, variant, mape))
    if not scored:
        return _unavailable(grid, step_seconds, "no observed load in the held-out window")
    best_error, _, best, best_mape = min(scored, key=lambda item: (item[0], item[1]))
    final_profile = (
        None
        if best.period_name is None
        else _profile(y, grid.first, dict(periods)[best.period_name], smoothing)
    )
    final = _fit_variant(
        best, final_profile, y, grid.first, horizon, feature_windows, regression_rows
    )
    if final is None:  # cannot happen with more data than the holdout fit had; stay safe
        return _unavailable(grid, step_seconds, f"{best.name(step_seconds)}: refit failed")
    model = best.name(step_seconds)
    tail_size = min(y.size, final.lead_in + 1)
    tail = Grid(grid.first + y.size - tail_size, step_seconds, y[-tail_size:])
    reason = (
        f"{model}: lowest held-out error of {len(scored)} variants {horizon} step(s) ahead "
        f"(WAPE {best_error:.1f}%); " + "; ".join(notes)
    )
    return Forecaster(
        step_seconds=step_seconds,
        model=model,
        reason=reason,
        recent_mape=best_mape,
        recent_wape=best_error,
        fitted_until=grid.end_time,
        seasonalities=tuple(name for name, _ in periods),
        _fitted=final,
        _tail=tail,
    )


@dataclass(frozen=True, slots=True)
class FitSummary:
    """One refit of a walk-forward replay."""

    fitted_until: float
    model: str
    recent_mape: float | None
    reason: str


@dataclass(frozen=True, slots=True, eq=False)
class WalkForward:
    """Forecasts replayed over a series, each made only from the data before it."""

    grid: Grid
    predictions: FloatArray  # row k: buckets k+1 .. k+horizon, made after bucket k (NaN: none)
    fit_of_row: npt.NDArray[np.int64]  # row k was predicted by fits[fit_of_row[k]]
    fits: tuple[FitSummary, ...]


def walk_forward(
    grid: Grid,
    *,
    horizon_steps: int,
    refit_every_seconds: float,
    lead_time_seconds: float,
    seasonalities: Sequence[str] = ("daily", "weekly"),
    min_history_seconds: float = DAY_SECONDS,
    settings: ForecasterSettings | None = None,
) -> WalkForward:
    """Refit every ``refit_every_seconds`` on the data so far and forecast until the next refit.

    This is how a controller would have used the forecaster over the trace: no forecast ever sees
    a sample from the bucket it predicts or later.
    """
    settings = settings or ForecasterSettings()
    size = grid.values.size
    predictions = np.full((size, horizon_steps), np.nan)
    fit_of_row = np.zeros(size, dtype=np.int64)
    every = max(1, round(refit_every_seconds / grid.step_seconds))
    keep = max(1, int(settings.max_history_seconds // grid.step_seconds))
    fits: list[FitSummary] = []
    for start in range(0, size, every):
        stop = min(size, start + every)
        history_from = max(0, start + 1 - keep)
        buckets = np.arange(grid.first + history_from, grid.first + start + 1)
        forecaster = fit_forecaster(
            buckets.astype(np.float64) * grid.step_seconds,
            grid.values[history_from : start + 1],
            step_seconds=grid.step_seconds,
            seasonalities=seasonalities,
            min_history_seconds=min_history_seconds,
            lead_time_seconds=lead_time_seconds,
            settings=settings,
        )
        fit_of_row[start:stop] = len(fits)
        fits.append(
            FitSummary(
                forecaster.fitted_until,
                forecaster.model,
                forecaster.recent_mape,
                forecaster.reason,
            )
        )
        if forecaster.available:
            segment = Grid(grid.first + start, grid.step_seconds, grid.values[start:stop])
            predictions[start:stop] = forecaster.predict_path(segment, horizon_steps)
    return WalkForward(grid, predictions, fit_of_row, tuple(fits))
