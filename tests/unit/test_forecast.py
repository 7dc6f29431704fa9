"""The forecaster on series whose future is known by construction.

A noiseless periodic series repeats exactly, so a correct forecast of it is the series itself;
each test names the property (seasonality found, gap or outlier ignored, level followed) whose
failure would move the forecast away from that known value.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np
import pytest

from controller.engines.scaling.forecast import (
    Forecast,
    Grid,
    fit_forecaster,
    mape_percent,
    resample,
    walk_forward,
    wape_percent,
)

DAY = 86_400.0
STEP = 300.0


def daily(t: float) -> float:
    """100 at dawn and dusk, 150 at 06:00 UTC, 50 at 18:00 UTC."""
    return 100.0 + 50.0 * math.sin(2 * math.pi * t / DAY)


def weekly(t: float) -> float:
    """The daily curve on five days of seven, 40 % of it on the other two."""
    day = int(t // DAY) % 7
    return daily(t) * (0.4 if day in (5, 6) else 1.0)


def series(
    days: float, shape: Callable[[float], float] = daily, step: float = STEP
) -> tuple[list[float], list[float | None]]:
    times = [i * step for i in range(int(days * DAY / step))]
    return times, [shape(t) for t in times]


def test_resample_averages_buckets_and_keeps_gaps_as_nan() -> None:
    # Buckets of 60 s: {0 s, 20 s} -> mean 2; 60 s is missing; 120 s has no row; 180 s -> 5.
    grid = resample([0.0, 20.0, 60.0, 180.0], [1.0, 3.0, None, 5.0], 60.0)
    assert grid.first == 0
    assert grid.values[0] == 2.0
    assert math.isnan(grid.values[1])
    assert math.isnan(grid.values[2])
    assert grid.values[3] == 5.0


def test_error_measures() -> None:
    predicted = np.array([90.0, 130.0, 5.0, 1.0])
    actual = np.array([100.0, 100.0, 0.0, math.nan])
    # WAPE: (10 + 30 + 5) / 200; MAPE skips the zero actual: (10 % + 30 %) / 2.
    assert wape_percent(predicted, actual) == pytest.approx(22.5)
    assert mape_percent(predicted, actual) == pytest.approx(20.0)


def test_forecast_max_between_takes_points_inside_the_window_only() -> None:
    forecast = Forecast((5.0, 9.0, 7.0), 60.0, 1000.0, "m", None, "")
    assert forecast.max_between(1000.0, 1120.0) == 9.0  # points at 1060 and 1120
    assert forecast.max_between(1120.0, 1180.0) == 7.0  # 1120 is excluded, 1180 included
    assert forecast.max_between(1180.0, 2000.0) is None


@pytest.mark.parametrize(
    ("days", "shape", "seasonality"),
    [
        pytest.param(7, daily, "daily", id="daily-cycle-found-after-a-week"),
        pytest.param(27.5, weekly, "weekly", id="weekday-weekend-cycle-found-after-four-weeks"),
    ],
)
def test_periodic_series_is_forecast_to_within_one_percent(
    days: float, shape: Callable[[float], float], seasonality: str
) -> None:
    times, values = series(days, shape)
    forecaster = fit_forecaster(times, values, step_seconds=STEP, lead_time_seconds=3600.0)
    assert seasonality in forecaster.seasonalities
    forecast = forecaster.forecast(12)
    assert forecast is not None
    expected = [shape(forecast.time_of(i)) for i in range(12)]
    assert forecast.values == pytest.approx(expected, rel=0.01)


def test_weekend_is_forecast_from_the_weekly_profile() -> None:
    # 25 days from Thursday 1 Jan 1970 end on a Monday 00:00; fit on 23 days so it ends on a
    # Friday night (day 23 is Saturday): a daily profile would predict a weekday.
    times, values = series(23, weekly)
    forecaster = fit_forecaster(times, values, step_seconds=STEP, lead_time_seconds=3600.0)
    forecast = forecaster.forecast(12)
    assert forecast is not None
    assert "weekly" in forecast.model
    assert forecast.values == pytest.approx(
        [weekly(forecast.time_of(i)) for i in range(12)], rel=0.02
    )


def test_gaps_are_not_read_as_zero_load() -> None:
    times, values = series(7)
    # Six hours missing on day 3, and the last hour before the fit too.
    for index in range(int(3 * DAY / STEP), int(3.25 * DAY / STEP)):
        values[index] = None
    for index in range(len(values) - 12, len(values)):
        values[index] = None
    forecaster = fit_forecaster(times, values, step_seconds=STEP, lead_time_seconds=STEP)
    forecast = forecaster.forecast(3)
    assert forecast is not None
    assert forecast.values == pytest.approx(
        [daily(forecast.time_of(i)) for i in range(3)], rel=0.02
    )


def test_an_outlier_yesterday_does_not_repeat_today() -> None:
    times, values = series(7)
    # The sample one day before the next bucket is 100 x its usual value: seasonal naive would
    # forecast 100 x; the per-phase median of the past days does not move.
    target = len(values) - int(DAY / STEP)
    values[target] = 100 * daily(times[target])
    forecaster = fit_forecaster(times, values, step_seconds=STEP, lead_time_seconds=STEP)
    forecast = forecaster.forecast(1)
    assert forecast is not None
    assert forecast.values[0] == pytest.approx(daily(forecast.time_of(0)), rel=0.02)


def test_a_level_shift_is_followed() -> None:
    times, values = series(8)
    # The last day runs at twice the usual load: the forecast must double too.
    for index in range(len(values) - int(DAY / STEP), len(values)):
        values[index] = 2 * daily(times[index])
    forecaster = fit_forecaster(times, values, step_seconds=STEP, lead_time_seconds=STEP)
    forecast = forecaster.forecast(1)
    assert forecast is not None
    assert forecast.values[0] == pytest.approx(2 * daily(forecast.time_of(0)), rel=0.05)


@pytest.mark.parametrize(
    ("times", "values", "step", "reason"),
    [
        pytest.param(*series(0.5), STEP, "history 12.0h < minimum 24h", id="too-little-history"),
        pytest.param(
            [i * STEP for i in range(2016)],
            [100 + random.Random(1).gauss(0, 10) for _ in range(2016)],
            STEP,
            "no seasonality",
            id="white-noise-has-no-period",
        ),
        pytest.param(
            *series(7, step=420.0), 420.0, "does not divide", id="step-not-dividing-a-day"
        ),
        pytest.param([0.0, 300.0], [None, None], STEP, "no observations", id="all-missing"),
    ],
)
def test_unavailable_when_history_cannot_support_a_forecast(
    times: list[float], values: list[float | None], step: float, reason: str
) -> None:
    forecaster = fit_forecaster(times, values, step_seconds=step)
    assert not forecaster.available
    assert reason in forecaster.reason
    assert forecaster.forecast(5) is None


def test_unknown_seasonality_is_refused() -> None:
    times, values = series(2)
    with pytest.raises(ValueError, match="unknown seasonality 'yearly'"):
        fit_forecaster(times, values, step_seconds=STEP, seasonalities=("yearly",))


def test_fitting_twice_gives_the_same_forecast() -> None:
    rng = random.Random(7)
    times, values = series(9)
    noisy = [None if v is None else v * (1 + rng.gauss(0, 0.05)) for v in values]
    first = fit_forecaster(times, noisy, step_seconds=STEP).forecast(6)
    second = fit_forecaster(times, noisy, step_seconds=STEP).forecast(6)
    assert first == second


def test_walk_forward_never_sees_the_future() -> None:
    rng = random.Random(3)
    times, values = series(4)
    noisy = [None if v is None else v * (1 + rng.gauss(0, 0.05)) for v in values]
    grid = resample(times, noisy, STEP)
    changed = grid.values.copy()
    k = len(changed) - 30
    changed[k] = 10 * changed[k]
    before = walk_forward(
        grid, horizon_steps=3, refit_every_seconds=3600.0, lead_time_seconds=900.0
    ).predictions
    after = walk_forward(
        Grid(grid.first, STEP, changed),
        horizon_steps=3,
        refit_every_seconds=3600.0,
        lead_time_seconds=900.0,
    ).predictions
    # Rows before k were made without bucket k: identical. Row k reads it: it must differ.
    np.testing.assert_array_equal(before[:k], after[:k])
    assert not np.allclose(before[k], after[k])
    assert np.isfinite(before[-100:]).all()
