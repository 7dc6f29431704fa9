"""Combining the reactive recommendation with a forecast: max of the two, never below reactive."""

from __future__ import annotations

import pytest

from controller.engines.scaling.forecast import Forecast
from controller.engines.scaling.predictive import predictive_replicas


def _forecast(values: tuple[float, ...], mape: float | None = 10.0) -> Forecast:
    # Points at 1060, 1120, 1180, ... (start 1000, step 60).
    return Forecast(values, 60.0, 1000.0, "seasonal_daily*ar", mape, "test")


@pytest.mark.parametrize(
    ("reactive", "forecast", "now", "mode", "replicas", "reason", "forecast_replicas"),
    [
        # Points in (1000, 1300]: 1060..1300 -> values 100..500; peak 500 / 70 = 7.14 -> 8.
        pytest.param(
            3,
            _forecast((100, 200, 300, 400, 500, 9000)),
            1000.0,
            "forecastAndScale",
            8,
            "forecast_ahead",
            8,
            id="forecast-peak-in-lead-window-raises-it",
        ),
        # The 9000 at 1360 is outside (1000, 1300], so it must not count.
        pytest.param(
            9,
            _forecast((100, 200, 300, 400, 500, 9000)),
            1000.0,
            "forecastAndScale",
            9,
            "reactive",
            8,
            id="reactive-above-forecast-wins",
        ),
        # 420 / 70 = 6 exactly: no extra replica from float noise.
        pytest.param(
            2,
            _forecast((420.0,)),
            1000.0,
            "forecastAndScale",
            6,
            "forecast_ahead",
            6,
            id="exact-multiple-needs-no-extra-replica",
        ),
        pytest.param(
            3,
            _forecast((100, 200, 300, 400, 500)),
            1000.0,
            "forecastOnly",
            3,
            "forecast_only",
            8,
            id="forecast-only-reports-but-keeps-reactive",
        ),
        pytest.param(
            3,
            _forecast((1000.0,), mape=45.0),
            1000.0,
            "forecastAndScale",
            3,
            "forecast_error_too_high",
            None,
            id="recent-error-too-high",
        ),
        pytest.param(
            3,
            None,
            1000.0,
            "forecastAndScale",
            3,
            "forecast_unavailable",
            None,
            id="no-forecast",
        ),
        # now = 1070: the window (1070, 1370] starts after the first point (1060).
        pytest.param(
            1,
            _forecast((9000, 140, 70, 0, 0, 0)),
            1070.0,
            "forecastAndScale",
            2,
            "forecast_ahead",
            2,
            id="points-before-now-are-ignored",
        ),
        # An hourly forecast at 10:05 with a 5-min lead: no point in the window.
        pytest.param(
            4,
            Forecast((9000.0,), 3600.0, 0.0, "m", 1.0, ""),
            300.0,
            "forecastAndScale",
            4,
            "reactive",
            None,
            id="no-point-within-lead-keeps-reactive",
        ),
    ],
)
def test_predictive_replicas(
    reactive: int,
    forecast: Forecast | None,
    now: float,
    mode: str,
    replicas: int,
    reason: str,
    forecast_replicas: int | None,
) -> None:
    decision = predictive_replicas(
        reactive_replicas=reactive,
        forecast=forecast,
        now=now,
        lead_time_seconds=300.0,
        per_replica_target=70.0,
        mode=mode,
        max_error_percent=30.0,
    )
    assert (decision.replicas, decision.reason) == (replicas, reason)
    assert decision.forecast_replicas == forecast_replicas
    assert decision.replicas >= reactive


def test_error_too_high_message_states_the_error() -> None:
    decision = predictive_replicas(
        reactive_replicas=1,
        forecast=_forecast((500.0,), mape=45.0),
        now=1000.0,
        lead_time_seconds=300.0,
        per_replica_target=70.0,
        mode="forecastAndScale",
        max_error_percent=30.0,
    )
    assert "45.0%" in decision.message
    assert "30%" in decision.message


@pytest.mark.parametrize(
    ("target", "mode"),
    [
        pytest.param(0.0, "forecastAndScale", id="zero-target"),
        pytest.param(70.0, "sometimes", id="unknown-mode"),
    ],
)
def test_predictive_replicas_refuses_bad_arguments(target: float, mode: str) -> None:
    with pytest.raises(ValueError, match=r"per_replica_target|mode"):
        predictive_replicas(
            reactive_replicas=1,
            forecast=None,
            now=0.0,
            lead_time_seconds=300.0,
            per_replica_target=target,
            mode=mode,
            max_error_percent=30.0,
        )
