"""Benchmark: reactive vs predictive scaling on every real load trace, and forecast accuracy.

For each trace in ``../shared/data/load-traces`` (at its own resolution) this replays the
default policy (target 70 %, replicas 1..1000, Kubernetes' default behavior, predictive lead
time ``--lead-time-seconds``) through ``controller.engines.scaling.backtest`` twice, reactive and
predictive, with the capacity default (trace P95 / 10 per replica), 120 s start-up and a 15 s
decision loop. The forecaster is refitted every ``--refit-seconds`` on the data so far
(walk-forward); both arms and all errors count from one day after the trace starts.

It also times ``fit_forecaster`` + ``forecast`` on a 14-day, 1-minute slice of the NASA trace.

    .venv/bin/python testing/bench/bench_predictive.py [--traces DIR] [--only NAME ...]

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from controller.engines.scaling.backtest import (
    BacktestConfig,
    default_capacity_per_replica,
    forecast_accuracy,
    forecasts_for,
    grid_of,
    load_policy,
    run_backtest,
)
from controller.engines.scaling.forecast import fit_forecaster
from controller.engines.scaling.load_trace import read_trace

TRACES = (
    "wikipedia_en_2016_01_hourly.csv",
    "azure_vm_2019_cpu_5min.csv",
    "nasa_http_1995_1min.csv.gz",
    "worldcup98_1min.csv.gz",
)
DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "load-traces"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _change(new: float, old: float) -> str:
    return "n/a" if old == 0 else f"{(new / old - 1) * 100:+.0f}%"


def time_fit(directory: Path, repeats: int = 20) -> tuple[float, str]:
    """Mean milliseconds of fit + a 5-step forecast on 14 days of the 1-min NASA trace."""
    trace = read_trace(directory / "nasa_http_1995_1min.csv.gz")
    size = 14 * 1440
    times = np.array(trace.times[:size], dtype=np.float64)
    values = np.array([math.nan if v is None else v for v in trace.values[:size]])
    fit_forecaster(times, values, step_seconds=60.0)  # warm up
    started = time.perf_counter()
    for _ in range(repeats):
        forecaster = fit_forecaster(times, values, step_seconds=60.0)
        forecaster.forecast(5)
    return (time.perf_counter() - started) / repeats * 1000, forecaster.model


def bench(directory: Path, names: list[str], lead: float, refit: float) -> list[str]:
    policy = load_policy(None)
    rows = [
        "| trace | step | arm | SLO-viol. min | overload min | replica-h | over-prov. % | "
        "actions | forecast decisions |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    accuracy_rows = [
        "| trace | h (steps) | points | model MAPE | last-value MAPE | seasonal-naive MAPE d / w |"
        " model WAPE | last-value WAPE | seasonal-naive WAPE d / w | MAPE vs best baseline |"
        " models chosen (top 3) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    summary_rows = [
        "| trace | SLO-violation min, predictive vs reactive | replica-hours | "
        "goal (>= 50 % fewer at <= +10 %) | forecast MAPE vs best baseline | goal (<= -20 %) |"
        " wall time |",
        "|---|---:|---:|---|---:|---|---:|",
    ]
    for name in names:
        started = time.perf_counter()
        trace = read_trace(directory / name)
        step = trace.step_seconds
        grid = grid_of(trace.times, trace.values, step)
        config = BacktestConfig(
            capacity_per_replica=default_capacity_per_replica(trace.values),
            lead_time_seconds=lead,
            refit_every_seconds=refit,
        )
        evaluate_from = trace.times[0] + policy.predictive.min_history_seconds
        forecasts = forecasts_for(grid, policy, lead_time_seconds=lead, refit_every_seconds=refit)
        accuracy = forecast_accuracy(forecasts, lead, evaluate_from)
        results = {
            mode: run_backtest(
                grid, policy, config, mode=mode, forecasts=forecasts, evaluate_from=evaluate_from
            )
            for mode in ("reactive", "predictive")
        }
        elapsed = time.perf_counter() - started
        for mode, result in results.items():
            reasons = ", ".join(
                f"{reason} {count}"
                for reason, count in sorted(result.decisions_by_reason.items())
                if mode == "predictive"
            )
            rows.append(
                f"| {name} | {step:g}s | {mode} | {result.slo_violation_minutes:.0f} | "
                f"{result.overload_minutes:.0f} | {result.replica_hours:.0f} | "
                f"{_fmt(result.over_provisioning_percent)} | {result.scaling_actions} | "
                f"{reasons or 'n/a'} |"
            )
        naive_mape = [v for v in accuracy.seasonal_naive_mape.values() if v is not None]
        baselines = [v for v in (accuracy.last_value_mape, *naive_mape) if v is not None]
        best = min(baselines) if baselines else None
        versus = (
            None
            if best is None or accuracy.model_mape is None
            else (accuracy.model_mape / best - 1) * 100
        )
        models: dict[str, int] = {}
        for fit in forecasts.fits:
            models[fit.model] = models.get(fit.model, 0) + 1
        top = ", ".join(
            f"{model} {count}" for model, count in sorted(models.items(), key=lambda i: -i[1])[:3]
        )
        naive_m = accuracy.seasonal_naive_mape
        naive_w = accuracy.seasonal_naive_wape
        accuracy_rows.append(
            f"| {name} | {accuracy.horizon_steps} | {accuracy.points} | "
            f"{_fmt(accuracy.model_mape)} | {_fmt(accuracy.last_value_mape)} | "
            f"{_fmt(naive_m['daily'])} / {_fmt(naive_m['weekly'])} | "
            f"{_fmt(accuracy.model_wape)} | {_fmt(accuracy.last_value_wape)} | "
            f"{_fmt(naive_w['daily'])} / {_fmt(naive_w['weekly'])} | "
            f"{'n/a' if versus is None else f'{versus:+.0f}%'} | {top} |"
        )
        reactive, predictive = results["reactive"], results["predictive"]
        fewer = (
            reactive.slo_violation_minutes > 0
            and predictive.slo_violation_minutes <= 0.5 * reactive.slo_violation_minutes
        )
        cheap = predictive.replica_hours <= 1.1 * reactive.replica_hours
        violations = _change(predictive.slo_violation_minutes, reactive.slo_violation_minutes)
        summary_rows.append(
            f"| {name} | {violations}"
            f" | {_change(predictive.replica_hours, reactive.replica_hours)} | "
            f"{'met' if fewer and cheap else 'missed'} | "
            f"{'n/a' if versus is None else f'{versus:+.0f}%'} | "
            f"{'met' if versus is not None and versus <= -20 else 'missed'} | {elapsed:.0f} s |"
        )
        print(f"done {name} in {elapsed:.0f} s", flush=True)
    return [*summary_rows, "", *rows, "", *accuracy_rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--only", nargs="*", default=list(TRACES))
    parser.add_argument("--lead-time-seconds", type=float, default=300.0)
    parser.add_argument("--refit-seconds", type=float, default=3600.0)
    args = parser.parse_args()
    milliseconds, model = time_fit(args.traces)
    lines = bench(args.traces, args.only, args.lead_time_seconds, args.refit_seconds)
    print()
    print(
        f"fit_forecaster + forecast on 14 d of 1-min NASA (20,160 points): "
        f"{milliseconds:.0f} ms (model {model})"
    )
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
