"""The backtest on the team's real load traces (``../shared/data/load-traces``).

Hourly Wikipedia and 5-min Azure run whole; the 1-min NASA and WorldCup traces are averaged to
5-min buckets, and decisions are taken every 60 s instead of 15 s, to stay within the time
budget. The forecaster is refitted every 6 h (AWS's refresh period). The assertions are the
properties the predictive arm exists for, with margins well inside what
``testing/bench/predictive_results.md`` measured, so they fail on a regression, not on noise.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.engines.scaling.backtest import (
    BacktestConfig,
    default_capacity_per_replica,
    forecast_accuracy,
    forecasts_for,
    load_policy,
    run_backtest,
)
from controller.engines.scaling.forecast import resample
from controller.engines.scaling.load_trace import read_trace

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "load-traces"
pytestmark = pytest.mark.skipif(
    not TRACES.is_dir(), reason=f"real load traces not present at {TRACES}"
)


@pytest.mark.parametrize(
    ("name", "step", "clearly_seasonal"),
    [
        pytest.param("wikipedia_en_2016_01_hourly.csv", 3600.0, True, id="wikipedia-hourly"),
        pytest.param("azure_vm_2019_cpu_5min.csv", 300.0, True, id="azure-5min"),
        pytest.param("nasa_http_1995_1min.csv.gz", 300.0, False, id="nasa-as-5min"),
        pytest.param("worldcup98_1min.csv.gz", 300.0, False, id="worldcup-as-5min"),
    ],
)
def test_predictive_arm_on_a_real_trace(name: str, step: float, clearly_seasonal: bool) -> None:
    trace = read_trace(TRACES / name)
    grid = resample(trace.times, trace.values, step)
    policy = load_policy(None)
    known = [float(v) for v in grid.values if v == v]
    config = BacktestConfig(
        capacity_per_replica=default_capacity_per_replica(known),
        refit_every_seconds=6 * 3600.0,
        interval_seconds=60.0,
    )
    evaluate_from = trace.times[0] + policy.predictive.min_history_seconds
    forecasts = forecasts_for(grid, policy, lead_time_seconds=300.0, refit_every_seconds=6 * 3600.0)
    accuracy = forecast_accuracy(forecasts, 300.0, evaluate_from)
    reactive, predictive = (
        run_backtest(
            grid, policy, config, mode=mode, forecasts=forecasts, evaluate_from=evaluate_from
        )
        for mode in ("reactive", "predictive")
    )

    assert accuracy.points > 0.5 * grid.values.size  # a forecast existed most of the time
    assert accuracy.model_wape is not None
    # Better than repeating yesterday or last week at the same time.
    for baseline in accuracy.seasonal_naive_wape.values():
        assert baseline is None or accuracy.model_wape < baseline
    # Never worse for the SLO, and not much dearer.
    assert predictive.slo_violation_minutes <= reactive.slo_violation_minutes
    assert predictive.replica_hours <= 1.1 * reactive.replica_hours
    if clearly_seasonal:
        assert predictive.slo_violation_minutes <= 0.7 * reactive.slo_violation_minutes
