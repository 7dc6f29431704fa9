"""Benchmark: right-sizing replayed on real load traces, re-sized once a day.

Each trace in ``../shared/data/load-traces`` drives one container: CPU = ``--peak-cores`` x
load / max load, memory = ``--base-mib`` + ``--load-mib`` x load / max load (a fixed heap
plus a part that grows with the work in flight). Every midnight (counted from the trace's
first sample) the container is right-sized with the default policy from the history before
it (``recommend_container``: VPA-style CPU P90 + 15 %, memory peak + 15 %, 8-day window), and
the new requests hold for the next 24 h. Days without enough history are skipped.

Reported per trace and overall, for CPU and memory:
- slack = Σ(request - usage) / Σ request over the intervals (Autopilot's measure);
- the share of intervals where usage exceeds the request.
Goal: slack <= 15 % with memory over request in under 0.5 % of intervals.

    .venv/bin/python testing/bench/bench_rightsizing_replay.py
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.engines.resources.rightsizing import (
    ContainerUsage,
    RightsizingPolicy,
    UsageSeries,
    recommend_container,
)
from controller.engines.scaling.load_trace import read_trace
from controller.ports import Resources

TRACES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "load-traces"
TRACES = (
    "nasa_http_1995_1min.csv.gz",
    "worldcup98_1min.csv.gz",
    "wikipedia_en_2016_01_hourly.csv",
    "azure_vm_2019_cpu_5min.csv",
)
DAY = 86_400.0
MIB = 2**20
SLACK_GOAL = 0.15
MEMORY_OVER_GOAL = 0.005


@dataclass(frozen=True, slots=True)
class Replay:
    trace: str
    days: int
    skipped_days: int
    intervals: int
    cpu_slack: float
    memory_slack: float
    cpu_over: float
    memory_over: float
    sums: tuple[float, float, float, float, int, int]  # cpu req, cpu use, mem req, mem use, over


def replay(
    name: str, peak_cores: float, base_mib: float, load_mib: float, policy: RightsizingPolicy
) -> Replay:
    trace = read_trace(TRACES_DIR / name)
    times = np.array(trace.times)
    load = np.array([np.nan if v is None else v for v in trace.values])
    seen = np.isfinite(load)
    times, load = times[seen], load[seen]
    relative = load / load.max()
    cpu = peak_cores * relative
    memory = (base_mib + load_mib * relative) * MIB
    series = UsageSeries(times, cpu, memory)
    totals = [0.0, 0.0, 0.0, 0.0]
    over = [0, 0]
    intervals = days = skipped = 0
    day_start = times[0] + DAY
    while day_start < times[-1]:
        history = series.within(-np.inf, day_start - 1e-6)
        container = ContainerUsage(name, name, "app", Resources(), Resources(), history)
        result = recommend_container(container, now=day_start - 1e-6, policy=policy)
        in_day = (times >= day_start) & (times < day_start + DAY)
        day_start += DAY
        if result.cpu is None or result.memory is None:
            skipped += 1
            continue
        days += 1
        cpu_request = result.cpu.target / 1000
        memory_request = float(result.memory.target)
        cpu_used, memory_used = cpu[in_day], memory[in_day]
        totals[0] += cpu_request * cpu_used.size
        totals[1] += float(cpu_used.sum())
        totals[2] += memory_request * memory_used.size
        totals[3] += float(memory_used.sum())
        over[0] += int((cpu_used > cpu_request).sum())
        over[1] += int((memory_used > memory_request).sum())
        intervals += int(cpu_used.size)
    return Replay(
        name,
        days,
        skipped,
        intervals,
        (totals[0] - totals[1]) / totals[0],
        (totals[2] - totals[3]) / totals[2],
        over[0] / max(1, intervals),
        over[1] / max(1, intervals),
        (totals[0], totals[1], totals[2], totals[3], over[0], over[1]),
    )


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """Every trace's replay (None: the file is absent) and the interval-weighted totals."""

    replays: dict[str, Replay | None]
    intervals: int
    cpu_slack: float
    memory_slack: float
    cpu_over: float
    memory_over: float


def measure(
    traces: tuple[str, ...],
    peak_cores: float,
    base_mib: float,
    load_mib: float,
    policy: RightsizingPolicy,
) -> ReplaySummary | None:
    """Replay each trace; None when no trace was there to replay."""
    replays: dict[str, Replay | None] = {}
    sums = np.zeros(6)
    intervals = 0
    for name in traces:
        if not (TRACES_DIR / name).exists():
            replays[name] = None
            continue
        result = replays[name] = replay(name, peak_cores, base_mib, load_mib, policy)
        sums += np.array(result.sums)
        intervals += result.intervals
    if intervals == 0:
        return None
    return ReplaySummary(
        replays,
        intervals,
        cpu_slack=float((sums[0] - sums[1]) / sums[0]),
        memory_slack=float((sums[2] - sums[3]) / sums[2]),
        cpu_over=float(sums[4] / intervals),
        memory_over=float(sums[5] / intervals),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peak-cores", type=float, default=4.0)
    parser.add_argument("--base-mib", type=float, default=256.0)
    parser.add_argument("--load-mib", type=float, default=768.0)
    parser.add_argument(
        "--target-percentile", type=float, default=0.9, help="CPU target percentile"
    )
    args = parser.parse_args()
    if not TRACES_DIR.is_dir():
        print(f"skipped: no load traces at {TRACES_DIR}", file=sys.stderr)
        return
    policy = RightsizingPolicy(target_percentile=args.target_percentile)
    print(
        f"CPU = {args.peak_cores:g} cores x load/max; memory = {args.base_mib:g} MiB + "
        f"{args.load_mib:g} MiB x load/max; re-sized daily, CPU P"
        f"{args.target_percentile * 100:g} + 15 %, memory peak + 15 %, 8-day window"
    )
    print(
        f"{'trace':34s} {'days':>4s} {'skip':>4s} {'intervals':>9s} {'cpu slack':>9s} "
        f"{'mem slack':>9s} {'cpu over':>8s} {'mem over':>8s}"
    )
    summary = measure(TRACES, args.peak_cores, args.base_mib, args.load_mib, policy)
    if summary is None:
        for name in TRACES:
            print(f"{name:34s} skipped: file absent")
        return
    for name, result in summary.replays.items():
        if result is None:
            print(f"{name:34s} skipped: file absent")
            continue
        print(
            f"{name:34s} {result.days:4d} {result.skipped_days:4d} {result.intervals:9d} "
            f"{result.cpu_slack:9.1%} {result.memory_slack:9.1%} {result.cpu_over:8.2%} "
            f"{result.memory_over:8.2%}"
        )
    print(
        f"{'all (interval-weighted)':34s} {'':4s} {'':4s} {summary.intervals:9d} "
        f"{summary.cpu_slack:9.1%} {summary.memory_slack:9.1%} {summary.cpu_over:8.2%} "
        f"{summary.memory_over:8.2%}"
    )
    met = (
        max(summary.cpu_slack, summary.memory_slack) <= SLACK_GOAL
        and summary.memory_over < MEMORY_OVER_GOAL
    )
    print(
        f"goal: slack <= {SLACK_GOAL:.0%} and memory over request < {MEMORY_OVER_GOAL:.1%} "
        f"of intervals -> {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
