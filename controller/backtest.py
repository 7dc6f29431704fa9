"""``linescale backtest``: replay a load trace through the scaling engine and print the figures.

    linescale backtest --trace ../shared/data/load-traces/wikipedia_en_2016_01_hourly.csv \\
        --mode both --chart wikipedia.svg

Prints one JSON object: the inputs as used (defaults filled in), the forecaster's accuracy at the
lead time against the last-value and seasonal-naive baselines, and per arm the SLO-violation
minutes, overload minutes, replica-hours, over-provisioning and scaling actions. Definitions are in
``controller/engines/scaling/backtest.py``. The decision loop runs every ``--interval-seconds``
(15 s, the HPA sync period) even when the trace is coarser: the load holds within a trace interval.
The predictive arm always acts on the forecast (``forecastAndScale``), whatever the policy's mode;
the other predictive knobs (lead time, history window, seasonalities, maxErrorPercent,
minHistorySeconds) come from the policy. Figures count from ``minHistorySeconds`` after the
trace starts, for both arms, so that they compare like with like.

Bad input (missing or malformed trace, invalid policy, bad numbers) exits 2 with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.engines.scaling.backtest import (
    BacktestConfig,
    BacktestResult,
    Mode,
    default_capacity_per_replica,
    forecast_accuracy,
    forecasts_for,
    grid_of,
    load_policy,
    run_backtest,
    target_utilization,
)
from controller.engines.scaling.load_trace import TraceError, read_trace
from controller.engines.scaling.svg_chart import Line, line_chart_svg
from shared.scaling_policy import PolicyError


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linescale backtest",
        description="Replay a load trace (timestamp,value CSV, optionally .gz) through the "
        "reactive (HPA) and predictive scaling rules and print what they would have done.",
    )
    parser.add_argument("--trace", required=True, help="CSV with header timestamp,value")
    parser.add_argument(
        "--policy",
        help="HPA autoscaling/v2 spec (JSON or YAML), optionally with a predictive section; "
        "default: target 70%% utilisation, replicas 1..1000, default behavior",
    )
    parser.add_argument("--mode", choices=("reactive", "predictive", "both"), default="both")
    parser.add_argument(
        "--capacity-per-replica",
        type=_positive,
        help="trace units per trace interval one replica serves (default: the trace's P95 / 10)",
    )
    parser.add_argument("--startup-seconds", type=_non_negative, default=120.0)
    parser.add_argument("--interval-seconds", type=_positive, default=15.0)
    parser.add_argument(
        "--lead-time-seconds",
        type=_non_negative,
        help="how far ahead the forecast provisions (default: the policy's, 300 s)",
    )
    parser.add_argument(
        "--refit-seconds",
        type=_positive,
        default=3600.0,
        help="how often the forecaster is refitted during the replay (default 3600)",
    )
    parser.add_argument("--chart", help="write an SVG of demand, capacity and replicas here")
    return parser


def _arm_json(result: BacktestResult) -> dict[str, Any]:
    return result.summary()


def _change_percent(new: float, old: float) -> float | None:
    return None if old == 0 else round((new / old - 1.0) * 100.0, 2)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything but printing; raises TraceError / PolicyError / ValueError on bad input."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    trace = read_trace(args.trace)
    step = trace.step_seconds
    policy_text = None
    if args.policy:
        try:
            policy_text = Path(args.policy).read_text(encoding="utf-8")
        except OSError as error:
            raise ValueError(f"cannot read the policy {args.policy}: {error}") from None
    policy = load_policy(policy_text)
    capacity = args.capacity_per_replica or default_capacity_per_replica(trace.values)
    config = BacktestConfig(
        capacity_per_replica=capacity,
        startup_seconds=args.startup_seconds,
        interval_seconds=args.interval_seconds,
        lead_time_seconds=args.lead_time_seconds,
        refit_every_seconds=args.refit_seconds,
    )
    lead = float(
        policy.predictive.lead_time_seconds
        if args.lead_time_seconds is None
        else args.lead_time_seconds
    )
    grid = grid_of(trace.times, trace.values, step)
    evaluate_from = trace.times[0] + policy.predictive.min_history_seconds
    modes: tuple[Mode, ...] = ("reactive", "predictive") if args.mode == "both" else (args.mode,)
    output: dict[str, Any] = {
        "trace": args.trace,
        "step_seconds": step,
        "rows": len(trace.times),
        "missing_rows": trace.missing,
        "capacity_per_replica": capacity,
        "target_utilization": target_utilization(policy, capacity),
        "startup_seconds": config.startup_seconds,
        "interval_seconds": config.interval_seconds,
        "lead_time_seconds": lead,
        "refit_seconds": config.refit_every_seconds,
        "evaluated_from": evaluate_from,
        "evaluated_until": trace.times[-1] + step,
    }
    forecasts = None
    if "predictive" in modes:
        forecasts = forecasts_for(
            grid, policy, lead_time_seconds=lead, refit_every_seconds=config.refit_every_seconds
        )
        accuracy = forecast_accuracy(forecasts, lead, evaluate_from)
        models = Counter(fit.model for fit in forecasts.fits)
        output["forecast"] = {
            **accuracy.summary(),
            "refits": len(forecasts.fits),
            "models": dict(models.most_common()),
            "last_fit_reason": forecasts.fits[-1].reason if forecasts.fits else None,
        }
    results: dict[str, BacktestResult] = {}
    for mode in modes:
        results[mode] = run_backtest(
            grid, policy, config, mode=mode, forecasts=forecasts, evaluate_from=evaluate_from
        )
        output[mode] = _arm_json(results[mode])
    if len(results) == 2:
        reactive, predictive = results["reactive"], results["predictive"]
        output["predictive_vs_reactive"] = {
            "slo_violation_minutes_change_percent": _change_percent(
                predictive.slo_violation_minutes, reactive.slo_violation_minutes
            ),
            "replica_hours_change_percent": _change_percent(
                predictive.replica_hours, reactive.replica_hours
            ),
        }
    if args.chart:
        _write_chart(Path(args.chart), args.trace, results)
        output["chart"] = args.chart
    output["elapsed_seconds"] = round(time.perf_counter() - started, 2)
    return output


def _write_chart(path: Path, trace: str, results: dict[str, BacktestResult]) -> None:
    first = next(iter(results.values())).timeline
    lines = [Line("demand", list(first.demand), "#222222")]
    colours = {"reactive": ("#1f77b4", "#9ecae1"), "predictive": ("#d62728", "#fc9272")}
    for mode, result in results.items():
        capacity_colour, replica_colour = colours[mode]
        lines.append(
            Line(f"{mode} ready capacity", list(result.timeline.ready_capacity), capacity_colour)
        )
        lines.append(
            Line(
                f"{mode} replicas", list(result.timeline.replicas), replica_colour, right_axis=True
            )
        )
    svg = line_chart_svg(f"backtest: {Path(trace).name}", list(first.times), lines)
    try:
        path.write_text(svg, encoding="utf-8")
    except OSError as error:
        raise ValueError(f"cannot write the chart {path}: {error}") from None


def main(argv: Sequence[str] | None = None) -> None:
    try:
        output = run(argv)
    except (TraceError, PolicyError, ValueError) as error:
        print(f"linescale backtest: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
