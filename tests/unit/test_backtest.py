"""The replay: the HPA utilisation rule, the capacity model's figures, and the command's errors.

Expected figures are worked out by hand from the rules in ``backtest.py``'s docstring and
Kubernetes' default behavior (scale up by max(4 pods, 100 %) per 15 s).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from controller import backtest as command
from controller.engines.scaling.backtest import (
    BacktestConfig,
    default_capacity_per_replica,
    forecast_accuracy,
    forecasts_for,
    load_policy,
    reactive_replicas,
    run_backtest,
    target_utilization,
)
from controller.engines.scaling.forecast import FitSummary, Grid, WalkForward, resample
from controller.engines.scaling.horizontal import tolerances_for

POLICY = load_policy(None)  # target 70 %, 1..1000 replicas, default behavior
WITHIN = tolerances_for(POLICY).is_within


@pytest.mark.parametrize(
    ("demand", "ready", "current", "expected"),
    [
        pytest.param(700.0, 10, 10, 10, id="at-target-holds"),
        pytest.param(760.0, 10, 10, 10, id="inside-tolerance-holds"),  # ratio 1.086
        pytest.param(1400.0, 10, 10, 20, id="double-load-doubles"),  # ratio 2
        pytest.param(1400.0, 5, 12, 20, id="scale-up-counts-ready-replicas-only"),  # 4 x 5
        pytest.param(700.0, 5, 12, 12, id="starting-replicas-are-not-undone"),  # 2 x 5 < 12
        pytest.param(350.0, 10, 10, 5, id="half-load-halves"),
        pytest.param(math.nan, 10, 7, 7, id="missing-demand-holds"),
        pytest.param(700.0, 0, 3, 3, id="no-ready-replica-holds"),
    ],
)
def test_reactive_replicas_follow_the_hpa_rule(
    demand: float, ready: int, current: int, expected: int
) -> None:
    # capacity 100 per replica, target 0.7: 70 per replica at target.
    assert reactive_replicas(demand, ready, current, 100.0, 0.7, WITHIN) == expected


def _grid(values: Sequence[float | None], step: float = 60.0) -> Grid:
    return resample([i * step for i in range(len(values))], values, step)


def test_constant_load_settles_at_load_over_target_capacity() -> None:
    # 700 / (100 x 0.7) = 10 replicas; after the first hour nothing changes.
    grid = _grid([700.0] * (25 * 60))
    result = run_backtest(
        grid,
        POLICY,
        BacktestConfig(capacity_per_replica=100.0),
        mode="reactive",
        evaluate_from=3600.0,
    )
    assert result.slo_violation_minutes == 0.0
    assert result.replica_hours == pytest.approx(10 * 24)
    assert result.over_provisioning_percent == pytest.approx((1000 / 700 - 1) * 100)
    assert result.scaling_actions == 0


@pytest.mark.parametrize(
    ("startup", "violation_minutes"),
    [
        # Load 70 -> 700 at 1800 s with 1 replica: 5 replicas at 1800, 10 at 1815 (the +4 /
        # +100 % per 15 s limit), ready at 1920 and 1935; the ticks 1800 .. 1920 (9 x 15 s)
        # have too little ready capacity.
        pytest.param(120.0, 9 * 15 / 60, id="start-up-delay-is-paid-in-violations"),
        # Ready at once: only the tick at 1800 (5 replicas, 350 < 700) is short.
        pytest.param(0.0, 15 / 60, id="instant-start-leaves-the-rate-limit"),
    ],
)
def test_a_load_step_violates_until_new_replicas_are_ready(
    startup: float, violation_minutes: float
) -> None:
    grid = _grid([70.0] * 30 + [700.0] * 30)
    config = BacktestConfig(capacity_per_replica=100.0, startup_seconds=startup)
    result = run_backtest(grid, POLICY, config, mode="reactive")
    assert result.slo_violation_minutes == pytest.approx(violation_minutes)
    # Below 100 % of ready capacity too, so overload has the same length.
    assert result.overload_minutes == pytest.approx(violation_minutes)


def test_missing_demand_is_neither_violation_nor_over_provisioning() -> None:
    grid = _grid([70.0] + [None] * 59)
    result = run_backtest(
        grid,
        POLICY,
        BacktestConfig(capacity_per_replica=1.0),
        mode="reactive",
        evaluate_from=60.0,
    )
    assert result.slo_violation_minutes == 0.0
    assert result.over_provisioning_percent is None
    assert result.replica_hours > 0  # the replica is still paid for


def test_predictive_arm_needs_forecasts() -> None:
    with pytest.raises(ValueError, match="needs forecasts"):
        run_backtest(_grid([1.0, 1.0]), POLICY, BacktestConfig(1.0), mode="predictive")


def test_predictive_provisions_before_a_daily_rise() -> None:
    # Three days of a daily sine at 5-min steps: reactive lags every rise by the start-up time,
    # predictive (5-min lead) provisions ahead; both evaluated on the third day only.
    step = 300.0
    values = [100 + 90 * math.sin(2 * math.pi * i * step / 86_400) for i in range(3 * 288)]
    grid = _grid(values, step)
    config = BacktestConfig(capacity_per_replica=10.0)
    forecasts = forecasts_for(grid, POLICY, lead_time_seconds=300.0, refit_every_seconds=3600.0)
    reactive, predictive = (
        run_backtest(
            grid, POLICY, config, mode=mode, forecasts=forecasts, evaluate_from=2 * 86_400.0
        )
        for mode in ("reactive", "predictive")
    )
    assert reactive.slo_violation_minutes > 0
    assert predictive.slo_violation_minutes < 0.5 * reactive.slo_violation_minutes
    assert predictive.replica_hours <= 1.1 * reactive.replica_hours
    assert predictive.decisions_by_reason.get("forecast_ahead", 0) > 0


def test_forecast_accuracy_scores_model_and_baselines_on_the_same_points() -> None:
    grid = Grid(0, 60.0, np.array([10.0, 20.0, 30.0, 40.0]))
    # Row k predicts bucket k + 1.
    predictions = np.array([[21.0], [29.0], [44.0], [np.nan]])
    forecasts = WalkForward(
        grid, predictions, np.zeros(4, dtype=np.int64), (FitSummary(0, "m", None, ""),)
    )
    accuracy = forecast_accuracy(forecasts, 60.0, evaluate_from=0.0)
    assert accuracy.points == 3
    # Model: |21-20|/20, |29-30|/30, |44-40|/40; last value: 10/20, 10/30, 10/40.
    assert accuracy.model_mape == pytest.approx((5 + 10 / 3 + 10) / 3)
    assert accuracy.last_value_mape == pytest.approx((50 + 100 / 3 + 25) / 3)
    assert accuracy.model_wape == pytest.approx(6 / 90 * 100)
    assert accuracy.last_value_wape == pytest.approx(30 / 90 * 100)
    assert accuracy.seasonal_naive_mape["daily"] is None  # a day back is before the trace


def test_default_capacity_is_the_95th_percentile_over_ten() -> None:
    # numpy's linear P95 of 1..100 sits at rank 0.95 x 99 = 94.05: 95.05.
    assert default_capacity_per_replica([*range(1, 101), None]) == pytest.approx(9.505)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param({"type": "Utilization", "averageUtilization": 70}, 0.7, id="utilization"),
        pytest.param({"type": "AverageValue", "averageValue": "35"}, 0.7, id="average-value"),
    ],
)
def test_target_utilization(target: dict[str, object], expected: float) -> None:
    policy = load_policy(
        {
            "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        }
    )
    assert target_utilization(policy, 50.0) == pytest.approx(expected)


def _write_trace(path: Path, rows: int = 200) -> Path:
    lines = ["timestamp,value"] + [f"{i * 300},{100 + (i % 12)}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_command_prints_both_arms(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = _write_trace(tmp_path / "t.csv")
    chart = tmp_path / "c.svg"
    command.main(["--trace", str(trace), "--chart", str(chart), "--capacity-per-replica", "20"])
    output = json.loads(capsys.readouterr().out)
    assert output["capacity_per_replica"] == 20.0
    assert set(output) >= {"reactive", "predictive", "forecast", "predictive_vs_reactive"}
    assert output["reactive"]["scaling_actions"] >= 0
    assert chart.read_text().startswith("<svg")


@pytest.mark.parametrize(
    ("files", "arguments", "message"),
    [
        pytest.param(
            {}, ["--trace", "{tmp}/absent.csv"], "absent.csv: cannot read", id="missing-trace"
        ),
        pytest.param(
            {"bad.csv": "timestamp,value\n0,1\n300,x\n"},
            ["--trace", "{tmp}/bad.csv"],
            "bad.csv:3: value 'x'",
            id="malformed-trace",
        ),
        pytest.param(
            {"p.json": '{"maxReplicas": 0}'},
            ["--trace", "{trace}", "--policy", "{tmp}/p.json"],
            "spec.maxReplicas",
            id="invalid-policy",
        ),
        pytest.param(
            {},
            ["--trace", "{trace}", "--policy", "{tmp}/none.json"],
            "cannot read the policy",
            id="missing-policy",
        ),
        pytest.param(
            {
                "p.json": '{"maxReplicas": 3, "metrics": [{"type": "External", "external": '
                '{"metric": {"name": "q"}, "target": {"type": "Value", "value": "1"}}}]}'
            },
            ["--trace", "{trace}", "--policy", "{tmp}/p.json", "--mode", "reactive"],
            "Utilization or AverageValue",
            id="policy-without-a-usable-target",
        ),
    ],
)
def test_command_exits_2_on_bad_input(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    arguments: list[str],
    message: str,
) -> None:
    trace = _write_trace(tmp_path / "good.csv", rows=20)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    argv = [a.format(tmp=tmp_path, trace=trace) for a in arguments]
    with pytest.raises(SystemExit) as exit_info:
        command.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_command_refuses_a_negative_capacity(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        command.main(["--trace", "x.csv", "--capacity-per-replica", "-1"])
    assert exit_info.value.code == 2
    assert "positive" in capsys.readouterr().err


def test_chart_breaks_lines_at_missing_values_and_checks_lengths() -> None:
    from controller.engines.scaling.svg_chart import Line, line_chart_svg

    svg = line_chart_svg("t", [0.0, 1.0, 2.0, 3.0], [Line("d", [1.0, math.nan, 2.0, 3.0], "#000")])
    path = svg.split('<path d="')[1].split('"')[0]
    assert path.count("M") == 2  # a new segment after the gap
    assert path.count("L") == 1
    with pytest.raises(ValueError, match="has 1 values, not 4"):
        line_chart_svg("t", [0.0, 1.0, 2.0, 3.0], [Line("d", [1.0], "#000")])
