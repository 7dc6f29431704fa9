"""Week 10 validation: run every scenario and print one table of the plan's targets.

Each scenario calls a benchmark's ``measure`` function (``testing/bench``), the scale-out on
the in-repo Kubernetes API double, or ``python -m controller.demo`` for the load patterns,
and turns what it measured into figures for the targets in ``week10_targets`` (where each
target's definition is). The table lists every target with its figure, the input it was
measured on and met / not met, then the figures without a target (failover, agent overhead,
one row per demo scenario).

    .venv/bin/python testing/scripts/run_week10_tests.py --quick        # CI: under 5 minutes
    .venv/bin/python testing/scripts/run_week10_tests.py --markdown figures.md --json rows.json
    .venv/bin/python testing/scripts/run_week10_tests.py --only routing,cache

Progress goes to stderr, the table to stdout. Exit status: 0 every selected target met,
1 any not met (a target without a figure counts as not met), 2 usage or setup error.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from week10_targets import (
    TARGET_KEYS,
    TARGETS,
    Figure,
    Info,
    Measured,
    NotMeasured,
    all_met,
    demo_figures,
    demo_info,
    evaluate,
    markdown_table,
    text_table,
)

REPO = Path(__file__).resolve().parents[2]
# The measuring code is in the benchmarks (testing/bench) and the scale-out scenario needs the
# API double and cluster simulator in tests/; neither folder is a package, so both go on the
# path, as they are when a bench or pytest runs.
sys.path[:0] = [str(REPO / "testing" / "bench"), str(REPO / "tests")]


DEMO_PATTERNS = ("shift-change", "slow-replica", "noisy-neighbour")  # the first gives targets
DEMO_KEYS = ("uptime", "normal_latency", "cache_hit_ratio", "peak_degradation")
QUICK_DEMO_SECONDS = 30


@dataclass
class Outcome:
    """What one scenario measured."""

    figures: dict[str, Figure] = field(default_factory=dict)
    infos: list[Info] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    provides: tuple[str, ...]  # target keys
    run: Callable[[bool], Outcome]  # quick -> what it measured
    needs: tuple[str, ...] = ()  # binaries without which it cannot run


def find_binary(name: str) -> str | None:
    """Where ``name`` is, searched as the test fixtures search (sbin included)."""
    from services import find_binary as find

    return find(name)


# --- scenarios -----------------------------------------------------------------------------


def scaling(quick: bool) -> Outcome:
    import bench_scaling_decisions as bench

    rounds = 1 if quick else 5
    figures = bench.measure(10_000, rounds, seed=1)
    shape = (
        f"{figures.pods / figures.workloads:.1f} pods per workload, CPU Utilization + a Pods "
        "metric, default behavior"
    )
    batch_met = "met" if figures.bare_total < bench.GOAL_SECONDS else "NOT met"
    return Outcome(
        {
            "scaling_decision": Measured(
                figures.p99 * 1e3,
                f"p99 of {figures.workloads * rounds:,} HPA-exact decisions of one workload "
                f"each ({shape}); p50 {figures.p50 * 1e3:.3f} ms",
            )
        },
        [
            Info(
                f"all {figures.workloads:,} workloads decided",
                f"{figures.bare_total * 1e3:.0f} ms (batch goal < 100 ms: {batch_met})",
                f"one round without per-call timing, {figures.pods:,} pods",
            )
        ],
    )


def scale_out(quick: bool) -> Outcome:
    import bench_scale_out as bench

    figures = bench.measure()
    start = figures.start_time
    return Outcome(
        {
            "scale_out": Measured(
                figures.pass_to_all_ready,
                f"1 -> {figures.replicas} in one decision through the kubernetes client on the "
                f"API double; from the deciding pass until all pods ready; decide + actuation "
                f"{figures.decide_and_actuate * 1e3:.1f} ms, PATCH -> all ready "
                f"{figures.patch_to_all_ready:.2f} s; pod start N({start.mean_seconds:g} s, "
                f"sd {start.stddev_seconds:g} s), 500-pod creation bursts",
            )
        }
    )


def analysis(quick: bool) -> Outcome:
    import bench_performance_analysis as bench

    passes = 10 if quick else 20
    figures = bench.measure(1000, 1, passes, seed=1)
    return Outcome(
        {
            "analysis": Measured(
                figures.median_pass * 1e3,
                f"median of {passes} PerformanceEngine passes, 1,000 services x 2 endpoints, "
                f"1 agent, {figures.history_passes} passes of history each; worst "
                f"{figures.totals[-1] * 1e3:.1f} ms",
            )
        }
    )


def routing(quick: bool) -> Outcome:
    import bench_routing_decision as bench

    figures = bench.measure(100, 3000, seed=1)
    return Outcome(
        {
            "routing": Measured(
                figures.p99 * 1e3,
                f"p99 of {len(figures.samples):,} compute_routing calls, 100 endpoints, "
                f"3 zones, 2 priorities, slow start on; p50 {figures.p50 * 1e3:.3f} ms",
            )
        }
    )


def forwarding(quick: bool) -> Outcome:
    import bench_dataplane_forwarding as bench

    rate, seconds = (300.0, 5.0) if quick else (1000.0, 20.0)
    with_haproxy = find_binary("haproxy") is not None
    results = bench.measure(rate, seconds, with_haproxy=with_haproxy)
    direct, proxy = results[bench.DIRECT], results[bench.EMBEDDED]
    how = f"steady {rate:g} req/s for {seconds:g} s, one kept-alive connection, 64-byte answers"
    infos = []
    if bench.HAPROXY in results:
        haproxy = results[bench.HAPROXY]
        infos.append(
            Info(
                "forwarding overhead, HAProxy 2.6 (comparison)",
                f"p50 +{(haproxy.p50 - direct.p50) * 1e3:.3f} ms, "
                f"p99 +{(haproxy.p99 - direct.p99) * 1e3:.3f} ms",
                how,
            )
        )
    return Outcome(
        {
            "forwarding": Measured(
                (proxy.p99 - direct.p99) * 1e3,
                f"p99 through the embedded proxy {proxy.p99 * 1e3:.3f} ms minus direct "
                f"{direct.p99 * 1e3:.3f} ms; {how}; p50 added "
                f"{(proxy.p50 - direct.p50) * 1e3:.3f} ms",
            )
        },
        infos,
    )


def failover(quick: bool) -> Outcome:
    import bench_dataplane_failover as bench

    rate, seconds = (300.0, 6.0) if quick else (1000.0, 15.0)
    figures = bench.measure(rate, seconds)
    total = sum(figures.outcomes.values())
    return Outcome(
        infos=[
            Info(
                "failover: a backend SIGKILLed under load",
                f"{figures.success_ratio * 100:.3f} % OK ({figures.outcomes['ok']}/{total})",
                f"3 backends 5-20 ms behind the embedded proxy, p2c_peak_ewma, {rate:g} req/s "
                f"for {seconds:g} s, kill at {figures.killed_at:.1f} s",
            )
        ]
    )


def cache(quick: bool) -> Outcome:
    import bench_cache_latency as bench
    from bench_support import percentile

    rate, seconds, rounds = (300.0, 5.0, 100) if quick else (1000.0, 10.0, 200)
    redis_server = find_binary("redis-server") or ""
    figures = bench.measure(rate, seconds, invalidation_rounds=rounds, redis_server=redis_server)
    http, invalidation = sorted(figures.http), sorted(figures.invalidation)
    return Outcome(
        {
            "cache_lookup": Measured(
                percentile(http, 0.99) * 1e3,
                f"p99 of {len(http):,} L1 hits through the agent's HTTP cache API at a steady "
                f"{rate:g} req/s, one kept-alive connection; p50 "
                f"{percentile(http, 0.5) * 1e3:.3f} ms",
            ),
            "cache_management": Measured(
                percentile(invalidation, 0.99) * 1e3,
                f"p99 of {len(invalidation)} cross-node invalidations (agent A deletes until "
                f"agent B misses), real Redis; p50 {percentile(invalidation, 0.5) * 1e3:.2f} ms",
            ),
        }
    )


def allocation(quick: bool) -> Outcome:
    import bench_binpack as bench

    rounds = 7
    figures = bench.measure(1000, 100, rounds, seed=1)
    best = figures.plan.best
    return Outcome(
        {
            "allocation": Measured(
                figures.median * 1e3,
                f"median of {rounds} pack() calls: 1,000 pods sized to fill 70 % of 100 "
                f"m5.xlarge, 3 node types -> {best.node_count} nodes ({best.strategy}); worst "
                f"{figures.seconds[-1] * 1e3:.1f} ms",
            )
        }
    )


def cycle(quick: bool) -> Outcome:
    import bench_resource_cycle as bench

    containers, nodes, rounds = (2_000, 200, 1) if quick else (10_000, 1_000, 3)
    figures = bench.measure(containers, nodes, rounds, seed=1)
    return Outcome(
        {
            "optimisation_cycle": Measured(
                max(figures.totals),
                f"slowest of {rounds} full ResourceCycle runs: {figures.containers:,} "
                f"containers ({figures.pods:,} pods) on {figures.nodes:,} nodes, 192 hourly "
                f"samples each, 3 pools; best {min(figures.totals):.2f} s",
            )
        }
    )


def efficiency(quick: bool) -> Outcome:
    from controller.engines.resources.rightsizing import RightsizingPolicy

    import bench_rightsizing_replay as bench

    if not bench.TRACES_DIR.is_dir():
        return Outcome({"resource_efficiency": NotMeasured(f"no traces at {bench.TRACES_DIR}")})
    summary = bench.measure(bench.TRACES, 4.0, 256.0, 768.0, RightsizingPolicy())
    if summary is None:
        return Outcome({"resource_efficiency": NotMeasured("none of the load traces present")})
    used = [name for name, replay in summary.replays.items() if replay is not None]
    return Outcome(
        {
            "resource_efficiency": Measured(
                100 * (1 - max(summary.cpu_slack, summary.memory_slack)),
                f"requests used (1 - slack, the worse of CPU "
                f"{100 * (1 - summary.cpu_slack):.1f} % and memory "
                f"{100 * (1 - summary.memory_slack):.1f} %) after daily right-sizing (CPU P90 + "
                f"15 %, memory peak + 15 %) on {len(used)} shared load traces, "
                f"{summary.intervals:,} intervals; memory over request in "
                f"{100 * summary.memory_over:.2f} % of them",
            )
        }
    )


def agent_overhead(quick: bool) -> Outcome:
    import bench_agent_overhead as bench
    from bench_support import percentile

    processes, seconds, warmup, scrapes = (100, 10.0, 5.0, 20) if quick else (400, 60.0, 12.0, 100)
    figures = bench.measure(processes, seconds, warmup, 15.0, scrapes)
    p99 = percentile(figures.scrape_latencies, 0.99)
    return Outcome(
        infos=[
            Info(
                "agent overhead",
                f"CPU {figures.cpu_percent:.2f} % of one core, RSS {figures.rss_bytes / 1e6:.1f} "
                f"MB, /metrics p99 {p99 * 1e3:.1f} ms",
                f"default settings, {figures.node_processes} processes on the node, "
                f"{figures.window_seconds:.0f} s window scraped every 15 s, {scrapes} scrapes",
            )
        ]
    )


def run_demo(pattern: str, duration: float | None, report_dir: Path) -> dict[str, Any]:
    """``python -m controller.demo`` for one pattern; its ``summary.json``."""
    command = [sys.executable, "-m", "controller.demo", "--pattern", pattern, "--no-tty"]
    if duration is not None:
        command += ["--duration", f"{duration:g}"]
    command += ["--report", str(report_dir)]
    log = report_dir / "demo.log"
    report_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        finished = subprocess.run(
            command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, timeout=900, check=False
        )
    summary_path = report_dir / "summary.json"
    if finished.returncode != 0 or not summary_path.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(
            f"demo {pattern} exited {finished.returncode}: {' / '.join(tail) or 'no output'}"
        )
    loaded: dict[str, Any] = json.loads(summary_path.read_text())
    return loaded


def demo(quick: bool) -> Outcome:
    patterns = DEMO_PATTERNS[:1] if quick else DEMO_PATTERNS
    duration = QUICK_DEMO_SECONDS if quick else None
    outcome = Outcome()
    with tempfile.TemporaryDirectory(prefix="linescale-week10-") as workdir:
        for pattern in patterns:
            try:
                summary = run_demo(pattern, duration, Path(workdir) / pattern)
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
                reason = str(error)
                if pattern == DEMO_PATTERNS[0]:
                    for key in DEMO_KEYS:
                        outcome.figures[key] = NotMeasured(reason)
                outcome.infos.append(Info(f"demo {pattern}", f"(not measured: {reason})", ""))
                continue
            if pattern == DEMO_PATTERNS[0]:
                outcome.figures.update(demo_figures(summary))
            outcome.infos.append(demo_info(summary))
    return outcome


SCENARIOS = (
    Scenario("scaling", ("scaling_decision",), scaling),
    Scenario("scale_out", ("scale_out",), scale_out),
    Scenario("analysis", ("analysis",), analysis),
    Scenario("routing", ("routing",), routing),
    Scenario("forwarding", ("forwarding",), forwarding),
    Scenario("failover", (), failover),
    Scenario("cache", ("cache_lookup", "cache_management"), cache, needs=("redis-server",)),
    Scenario("allocation", ("allocation",), allocation),
    Scenario("cycle", ("optimisation_cycle",), cycle),
    Scenario("efficiency", ("resource_efficiency",), efficiency),
    Scenario("agent_overhead", (), agent_overhead),
    Scenario("demo", DEMO_KEYS, demo),
)
SCENARIO_NAMES = frozenset(scenario.name for scenario in SCENARIOS)


# --- running -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    scenario: str
    seconds: float
    error: str


def selection(only: str | None) -> tuple[list[Scenario], set[str]]:
    """The scenarios to run and the target keys to judge for ``--only`` (None: all).

    Raises ValueError naming what is neither a target key nor a scenario name.
    """
    if only is None:
        return list(SCENARIOS), set(TARGET_KEYS)
    names = {name.strip() for name in only.split(",") if name.strip()}
    unknown = names - TARGET_KEYS - SCENARIO_NAMES
    if unknown or not names:
        raise ValueError(f"unknown key(s): {', '.join(sorted(unknown)) or '(none given)'}")
    chosen = [s for s in SCENARIOS if s.name in names or names & set(s.provides)]
    keys = {key for s in chosen for key in s.provides if s.name in names or key in names}
    return chosen, keys


def run_scenarios(
    scenarios: Sequence[Scenario], quick: bool, progress: Callable[[str], None]
) -> tuple[dict[str, Figure], list[Info], list[Run]]:
    figures: dict[str, Figure] = {}
    infos: list[Info] = []
    runs: list[Run] = []
    for index, scenario in enumerate(scenarios, 1):
        progress(f"[{index}/{len(scenarios)}] {scenario.name} ...")
        started = time.monotonic()
        missing = [name for name in scenario.needs if find_binary(name) is None]
        error = ""
        if missing:
            error = f"{', '.join(missing)} not found"
            figures.update({key: NotMeasured(error) for key in scenario.provides})
        else:
            try:
                outcome = scenario.run(quick)
            except (Exception, SystemExit) as failure:  # the benches exit on a dead server
                error = f"{scenario.name} failed: {type(failure).__name__}: {failure}"
                figures.update({key: NotMeasured(error) for key in scenario.provides})
            else:
                figures.update(outcome.figures)
                infos.extend(outcome.infos)
        seconds = time.monotonic() - started
        runs.append(Run(scenario.name, seconds, error))
        progress(f"[{index}/{len(scenarios)}] {scenario.name} {error or 'done'} in {seconds:.1f} s")
    return figures, infos, runs


def machine() -> str:
    import psutil

    os_name = platform.platform(terse=True)
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{os.cpu_count()} CPUs, {memory:.0f} GiB, {os_name}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced set for CI (< 5 min)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the rows as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown table")
    parser.add_argument(
        "--only",
        metavar="KEY[,KEY]",
        help="target keys or scenario names: "
        + ", ".join([t.key for t in TARGETS] + sorted(SCENARIO_NAMES - TARGET_KEYS)),
    )
    args = parser.parse_args(argv)
    try:
        import controller  # noqa: F401  (the scenarios measure the installed project)
    except ImportError as error:
        print(
            f"{parser.prog}: setup error: {error}; run it with the project's venv", file=sys.stderr
        )
        return 2
    try:
        scenarios, keys = selection(args.only)
    except ValueError as error:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started_at = datetime.datetime.now(datetime.UTC)
    started = time.monotonic()
    figures, infos, runs = run_scenarios(scenarios, args.quick, progress)
    wall = time.monotonic() - started
    rows = evaluate(figures, keys)
    met = all_met(rows)
    mode = "quick" if args.quick else "full"
    if args.only:
        mode += f", only {args.only}"
    header = (
        f"Week 10 validation ({mode} run), {started_at:%Y-%m-%d %H:%M} UTC, {wall:.0f} s wall, "
        f"on {machine()}"
    )
    print(header)
    print(text_table(rows, infos), end="")
    print(f"{sum(row.met is True for row in rows)} of {len(rows)} targets met")
    if args.markdown:
        args.markdown.write_text(f"{header}\n\n{markdown_table(rows, infos)}")
    if args.json:
        document = {
            "mode": mode,
            "started_at": started_at.isoformat(timespec="seconds"),
            "wall_seconds": round(wall, 1),
            "machine": machine(),
            "all_met": met,
            "targets": [row.as_json() for row in rows],
            "info": [{"label": i.label, "figure": i.figure, "input": i.input} for i in infos],
            "scenarios": [{"name": r.scenario, "seconds": round(r.seconds, 1), "error": r.error}
                          for r in runs],
        }  # fmt: skip
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
