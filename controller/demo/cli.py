"""``linescale demo`` options, and the run from start to report."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from controller.demo.fleet import (
    PART_TTL_SIMULATED_SECONDS,
    DemoError,
    DemoOptions,
    Fleet,
    new_result,
    new_token,
    part_ttl_seconds,
    preflight,
    run_demo,
)
from controller.demo.loadgen import ACTIVE_PARTS
from controller.demo.report import build_summary, charts, summary_text, write_report
from controller.demo.scenarios import (
    DEFAULT_PEAK_RPS,
    DEFAULT_SCENARIO,
    FIXTURE_PATTERNS,
    UnknownScenarioError,
    build_timeline,
    default_speed,
    resolve_scenario,
    scenario_names,
)
from shared.load_patterns import LoadPattern, load_patterns

DEFAULT_DURATION = 120.0
DEFAULT_REPORT = "linescale-demo-report"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def build_parser(choices: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linescale demo",
        description=(
            "Run the whole system on this machine: a sample line service, three agents "
            "(zones a, b, c), the controller and a load generator replaying a fixture pattern "
            "in compressed time; a live view, then a summary and a report folder."
        ),
    )
    parser.add_argument(
        "--duration",
        type=_positive,
        default=DEFAULT_DURATION,
        help=f"wall seconds of load (default {DEFAULT_DURATION:g}; Ctrl-C ends early)",
    )
    parser.add_argument(
        "--pattern",
        default=DEFAULT_SCENARIO,
        metavar="NAME",
        help=f"scenario or fixture pattern: {', '.join(choices)} (default {DEFAULT_SCENARIO})",
    )
    parser.add_argument(
        "--speed",
        type=_positive,
        default=None,
        help="simulated seconds per wall second (default: the story fits --duration)",
    )
    parser.add_argument(
        "--peak-rps",
        type=_positive,
        default=DEFAULT_PEAK_RPS,
        help=f"offered rate at the pattern's peak (default {DEFAULT_PEAK_RPS:g} req/s)",
    )
    parser.add_argument("--prometheus", default="", metavar="URL", help="read metrics from here")
    parser.add_argument("--redis", default="", metavar="URL", help="Redis for the cache's L2")
    parser.add_argument(
        "--report",
        default=DEFAULT_REPORT,
        metavar="DIR",
        help=f"report folder (default ./{DEFAULT_REPORT})",
    )
    parser.add_argument(
        "--no-tty",
        "--no-live",
        dest="no_tty",
        action="store_true",
        help="plain progress lines instead of the live view (also when stdout is no terminal)",
    )
    return parser


def _patterns() -> dict[str, LoadPattern]:
    try:
        return load_patterns(FIXTURE_PATTERNS)
    except (OSError, ValueError) as error:
        print(f"linescale demo: cannot read the load patterns: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: Sequence[str] | None = None) -> None:
    patterns = _patterns()
    parser = build_parser(scenario_names(patterns))
    args = parser.parse_args(argv)
    for flag, url, schemes in (
        ("--prometheus", args.prometheus, ("http://", "https://")),
        ("--redis", args.redis, ("redis://", "rediss://", "unix://")),
    ):
        if url and not url.startswith(schemes):
            parser.error(f"{flag}: must start with {' or '.join(schemes)}")
    try:
        scenario = resolve_scenario(args.pattern, patterns)
    except UnknownScenarioError as error:
        parser.error(str(error))
    speed = args.speed or default_speed(scenario, args.duration)
    timeline = build_timeline(
        scenario, patterns[scenario.pattern], args.duration, speed, args.peak_rps
    )
    try:
        asyncio.run(preflight(args.prometheus.rstrip("/"), args.redis))
    except DemoError as error:
        print(f"linescale demo: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    live = sys.stdout.isatty() and not args.no_tty
    console = Console()
    report_dir = Path(args.report)
    targets_path = None
    if args.prometheus:
        report_dir.mkdir(parents=True, exist_ok=True)  # Prometheus reads its targets from here
        targets_path = report_dir.resolve() / "prometheus-targets.json"
    code = 0
    with tempfile.TemporaryDirectory(prefix="linescale-demo-") as workdir:
        fleet = Fleet(Path(workdir), token=new_token())
        options = DemoOptions(
            duration=args.duration,
            timeline=timeline,
            story=scenario.story,
            live=live,
            prometheus_url=args.prometheus.rstrip("/"),
            redis_url=args.redis,
            workdir=Path(workdir),
            targets_path=targets_path,
        )
        result = new_result(timeline)
        try:
            asyncio.run(run_demo(options, fleet, console, result))
        except DemoError as error:
            print(f"linescale demo: {error}", file=sys.stderr)
            result.error = str(error)
            code = 1
        except KeyboardInterrupt:
            result.interrupted = True
        finally:
            killed = fleet.stop()
        summary = build_summary(
            timeline=timeline,
            wall_seconds=result.wall_seconds,
            buckets=result.recorder.ordered(),
            replicas=result.replicas,
            decisions=result.decisions,
            started_epoch=result.started_epoch,
            local_ejections=result.local_ejections,
            interrupted=result.interrupted,
        )
        summary["cache"].update(
            active_parts=ACTIVE_PARTS,
            part_ttl_simulated_seconds=PART_TTL_SIMULATED_SECONDS,
            part_ttl_wall_seconds=round(part_ttl_seconds(timeline.speed), 3),
        )
        summary["processes"] = {"stopped": len(fleet.children), "needed_sigkill": killed}
        summary["harness"] = result.harness
        if result.error:
            summary["error"] = result.error
        write_report(
            report_dir,
            summary,
            scenario.story,
            charts(timeline, result.recorder.ordered(), result.replicas),
        )
        logs = report_dir / "logs"
        logs.mkdir(exist_ok=True)
        for log_file in Path(workdir).rglob("*.log"):
            shutil.copy(log_file, logs / log_file.name)
    print(summary_text(summary, report_dir))
    raise SystemExit(code)
