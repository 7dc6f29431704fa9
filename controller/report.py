"""``linescale report resources``: what every container asks for, uses, and should ask for.

    linescale report resources --prometheus http://prometheus:9090 --namespace shop \\
        --history 14d --chart shop.svg
    linescale report resources --input rightsizing.json --format json

Usage comes from Prometheus (five batched queries, :mod:`controller.sources.usage_history`) or
from a ``decide rightsizing`` input file; recommendations come from
``controller.engines.resources.rightsizing.decide_rightsizing`` on that very input, so this
report and ``linescale decide`` cannot disagree.

Waste is what right-sizing would give back: ``(request - recommended target) x pods`` per
resource, in cores and bytes, priced per core-hour and GiB-hour (a month is 730 h, the cloud
providers' convention). A negative waste is a container asking for less than it needs. Containers
without a request or without a recommendation have no waste figure. With ``--input`` the pod count
is unknown and waste is per pod.

The table goes to stdout; progress to stderr (a bar on a terminal, plain lines otherwise).
Exit codes: 2 for bad flags or a bad input file (the reason on stderr), 1 when Prometheus
cannot answer or has no containers to report on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, NoReturn, Protocol, TextIO

from controller.cli_input import read_json_input, usage_error
from controller.engines.decide_input import DecideInputError
from controller.engines.scaling.svg_chart import Line, line_chart_svg
from controller.sources.usage_history import (
    DEFAULT_WINDOW_SECONDS,
    QUERY_LABELS,
    QUERY_ORDER,
    PrometheusUsageHistory,
    QueryName,
    UsageHistoryError,
    choose_step,
)
from shared.quantities import parse_quantity

__all__ = [
    "DEFAULT_PRICE_PER_CORE_HOUR",
    "DEFAULT_PRICE_PER_GIB_HOUR",
    "HOURS_PER_MONTH",
    "ContainerRow",
    "Prices",
    "ResourceReport",
    "Savings",
    "build_report",
    "main",
    "parse_duration",
    "render_table",
    "report_chart_svg",
    "report_json",
]

DEFAULT_PRICE_PER_CORE_HOUR: Final = 0.031611
DEFAULT_PRICE_PER_GIB_HOUR: Final = 0.004237
"""AWS us-east-1 on-demand m5, per vCPU-hour and per GiB-hour: an m5.xlarge (4 vCPU, 16 GiB)
prices at 4 x 0.031611 + 16 x 0.004237 = $0.194/h, within 1.2 % of its $0.192/h list price."""
HOURS_PER_MONTH: Final = 730
GIB: Final = 2**30
CONFIDENT_HISTORY_SECONDS: Final = 24 * 3600
"""Below one day of history a recommendation misses the daily cycle (VPA wants 8 days, KRR 14)."""
MAX_CHARTED_WORKLOADS: Final = 20
MAX_INPUT_BYTES: Final = 64 * 2**20

Decide = Callable[[Mapping[str, Any]], Mapping[str, Any]]


# ---------------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Prices:
    per_core_hour: float = DEFAULT_PRICE_PER_CORE_HOUR
    per_gib_hour: float = DEFAULT_PRICE_PER_GIB_HOUR

    def per_hour(self, cores: float, bytes_: float) -> float:
        return cores * self.per_core_hour + bytes_ / GIB * self.per_gib_hour


@dataclass(frozen=True, slots=True)
class ContainerRow:
    """One container of one workload; quantities as given (Kubernetes notation) or None."""

    namespace: str
    workload: str
    container: str
    pods: int | None  # None: unknown (an input file), waste is per pod
    cpu_request: str | None
    cpu_limit: str | None
    memory_request: str | None
    memory_limit: str | None
    cpu_target: str | None
    memory_target: str | None
    reason: str  # the engine's code: recommended, insufficient_history, no_samples, ...
    message: str  # the engine's explanation, e.g. why a recommendation is undefined
    floors: tuple[str, ...]  # what lifted or capped a value: oom, throttling, min_allowed, ...
    waste_cores: float | None  # (request - target) x pods; negative: under-provisioned
    waste_bytes: float | None
    waste_per_hour: float | None  # money; None when neither resource has a waste figure


@dataclass(frozen=True, slots=True)
class Savings:
    """Sums over the rows: ``net`` is what applying every recommendation saves (negative parts
    included), ``over`` what over-provisioned containers give back, ``under`` what
    under-provisioned ones need on top (positive numbers)."""

    net_cores: float
    net_bytes: float
    net_per_hour: float
    over_cores: float
    over_bytes: float
    under_cores: float
    under_bytes: float

    @property
    def net_per_month(self) -> float:
        return self.net_per_hour * HOURS_PER_MONTH


@dataclass(frozen=True, slots=True)
class ResourceReport:
    rows: tuple[ContainerRow, ...]
    savings: Savings
    prices: Prices
    warnings: tuple[str, ...] = ()


# ------------------------------------------------------------------------------ building


def _quantity(value: object) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_quantity(value)  # type: ignore[arg-type]  # str, int or float expected
    except (ValueError, TypeError):
        return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _target(recommendation: Mapping[str, Any], resource: str) -> object:
    entry = recommendation.get(resource)
    return entry.get("target") if isinstance(entry, Mapping) else None


def _waste(request: object, target: object, pods: int) -> float | None:
    request_amount, target_amount = _quantity(request), _quantity(target)
    if request_amount is None or target_amount is None:
        return None
    return float((request_amount - target_amount) * pods)


def _key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(entry.get("namespace")), str(entry.get("workload")), str(entry.get("container")))


def build_report(
    decide_input: Mapping[str, Any],
    decision: Mapping[str, Any],
    *,
    prices: Prices = Prices(),
    pods: Mapping[tuple[str, str, str], int] | None = None,
    warnings: Sequence[str] = (),
) -> ResourceReport:
    """Pair each input container with its recommendation and price the difference.

    ``pods`` maps (namespace, workload, container) to the running pod count; without it waste
    is per pod. Rows keep the input's order.
    """
    recommended = {_key(entry): entry for entry in decision.get("containers", ())}
    rows = []
    for entry in decide_input.get("containers", ()):
        key = _key(entry)
        recommendation = recommended.get(key, {})
        requests, limits = entry.get("requests") or {}, entry.get("limits") or {}
        count = None if pods is None else pods.get(key, 0)
        multiplier = 1 if count is None else count
        cpu_target, memory_target = (
            _target(recommendation, "cpu"),
            _target(recommendation, "memory"),
        )
        waste_cores = _waste(requests.get("cpu"), cpu_target, multiplier)
        waste_bytes = _waste(requests.get("memory"), memory_target, multiplier)
        money = (
            None
            if waste_cores is None and waste_bytes is None
            else prices.per_hour(waste_cores or 0.0, waste_bytes or 0.0)
        )
        rows.append(
            ContainerRow(
                namespace=key[0],
                workload=key[1],
                container=key[2],
                pods=count,
                cpu_request=_text(requests.get("cpu")),
                cpu_limit=_text(limits.get("cpu")),
                memory_request=_text(requests.get("memory")),
                memory_limit=_text(limits.get("memory")),
                cpu_target=_text(cpu_target),
                memory_target=_text(memory_target),
                reason=str(recommendation.get("reason", "not_evaluated")),
                message=str(recommendation.get("message", "")),
                floors=tuple(str(floor) for floor in recommendation.get("floors") or ()),
                waste_cores=waste_cores,
                waste_bytes=waste_bytes,
                waste_per_hour=money,
            )
        )
    return ResourceReport(tuple(rows), _savings(rows, prices), prices, tuple(warnings))


def _savings(rows: Iterable[ContainerRow], prices: Prices) -> Savings:
    cores = [row.waste_cores for row in rows if row.waste_cores is not None]
    bytes_ = [row.waste_bytes for row in rows if row.waste_bytes is not None]
    net_cores, net_bytes = math.fsum(cores), math.fsum(bytes_)
    return Savings(
        net_cores=net_cores,
        net_bytes=net_bytes,
        net_per_hour=prices.per_hour(net_cores, net_bytes),
        over_cores=math.fsum(c for c in cores if c > 0),
        over_bytes=math.fsum(b for b in bytes_ if b > 0),
        under_cores=math.fsum(-c for c in cores if c < 0),
        under_bytes=math.fsum(-b for b in bytes_ if b < 0),
    )


# ------------------------------------------------------------------------------- output


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for suffix, factor in (("Gi", GIB), ("Mi", 2**20), ("Ki", 2**10)):
        if abs(value) >= factor:
            return f"{value / factor:+.1f}{suffix}"
    return f"{value:+.0f}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


_COLUMNS: Final = (
    "WORKLOAD",
    "CONTAINER",
    "PODS",
    "CPU REQ",
    "CPU LIM",
    "CPU REC",
    "MEM REQ",
    "MEM LIM",
    "MEM REC",
    "WASTE CPU",
    "WASTE MEM",
    "$/MONTH",
    "REASON",
)
_RIGHT_ALIGNED: Final = frozenset({"PODS", "WASTE CPU", "WASTE MEM", "$/MONTH"})


def _cells(row: ContainerRow) -> tuple[str, ...]:
    monthly = None if row.waste_per_hour is None else row.waste_per_hour * HOURS_PER_MONTH
    return (
        f"{row.namespace}/{row.workload}",
        row.container,
        "?" if row.pods is None else str(row.pods),
        row.cpu_request or "-",
        row.cpu_limit or "-",
        row.cpu_target or "-",
        row.memory_request or "-",
        row.memory_limit or "-",
        row.memory_target or "-",
        _cores(row.waste_cores),
        _bytes(row.waste_bytes),
        _money(monthly),
        _reason(row),
    )


def _reason(row: ContainerRow) -> str:
    if row.cpu_target is None:
        return row.message or row.reason
    return f"{row.reason} ({', '.join(row.floors)} floor)" if row.floors else row.reason


def render_table(report: ResourceReport) -> str:
    """The report as aligned text: one row per container, then the savings and the prices."""
    table = [_COLUMNS, *(_cells(row) for row in report.rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    lines = []
    for line in table:
        cells = [
            cell.rjust(width) if name in _RIGHT_ALIGNED else cell.ljust(width)
            for name, cell, width in zip(_COLUMNS, line, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    savings, prices = report.savings, report.prices
    lines += [
        "",
        f"savings if applied: {savings.net_cores:.3f} cores, {savings.net_bytes / GIB:.2f} GiB"
        f" = ${savings.net_per_hour:.4f}/hour, ${savings.net_per_month:.2f}/month"
        f" ({HOURS_PER_MONTH} h)",
        f"  over-provisioned: {savings.over_cores:.3f} cores, {savings.over_bytes / GIB:.2f} GiB;"
        f" under-provisioned: {savings.under_cores:.3f} cores,"
        f" {savings.under_bytes / GIB:.2f} GiB",
        f"prices: ${prices.per_core_hour:g} per core-hour, ${prices.per_gib_hour:g} per GiB-hour",
    ]
    undefined = Counter(row.reason for row in report.rows if row.cpu_target is None)
    if undefined:
        count = sum(undefined.values())
        lines.append(f"{count} of {len(report.rows)} containers have no recommendation:")
        lines += [f"  {n} x {reason}" for reason, n in undefined.most_common()]
    lines += [f"warning: {warning}" for warning in report.warnings]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ recommending


def undefined_decision(
    containers: Sequence[Mapping[str, Any]], reason: str, error: DecideInputError
) -> dict[str, Any]:
    """A refusal as a decision: every container undefined, with the engine's reason for it
    (a 422 names each container's problem at ``containers.<i>.samples``)."""
    problems = dict(error.fields)
    return {
        "containers": [
            {
                "namespace": entry.get("namespace"),
                "workload": entry.get("workload"),
                "container": entry.get("container"),
                "cpu": None,
                "memory": None,
                "reason": reason,
                "message": problems.get(f"containers.{index}.samples", error.message),
            }
            for index, entry in enumerate(containers)
        ]
    }


def recommend(
    decide: Decide, decide_input: Mapping[str, Any], *, by_workload: bool
) -> tuple[dict[str, Any], list[str]]:
    """The engine's decision on ``decide_input``, and warnings.

    A 422 (no container has enough history) is not a failure of the report: every container
    gets a row saying why. With ``by_workload`` the engine is called once per workload (it
    sizes workloads independently; the pod minimum is split within one), which keeps each call
    under its sample cap on a large cluster; a workload it refuses (400) is reported as not
    evaluated, with a warning. Without it a 400 is raised: the input itself is wrong.
    """
    containers = list(decide_input.get("containers") or ())
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for entry in containers if by_workload else ():
        groups.setdefault(_key(entry)[:2], []).append(entry)
    chunks = list(groups.values()) if by_workload else [containers]
    answers: list[Mapping[str, Any]] = []
    warnings: list[str] = []
    for chunk in chunks:
        try:
            answers += decide({**decide_input, "containers": chunk})["containers"]
        except DecideInputError as error:
            if error.status == 422:
                answers += undefined_decision(chunk, "undefined", error)["containers"]
            elif by_workload:
                workload = "/".join(_key(chunk[0])[:2])
                warnings.append(f"{workload} not evaluated: {error.message}")
                answers += undefined_decision(chunk, "not_evaluated", error)["containers"]
            else:
                raise
    return {"containers": answers}, warnings


def report_json(report: ResourceReport) -> dict[str, Any]:
    """The report as a JSON-able object (camelCase, like the ``decide`` answers)."""

    def camel(name: str) -> str:
        head, *rest = name.split("_")
        return head + "".join(part.title() for part in rest)

    savings = {camel(k): v for k, v in asdict(report.savings).items()}
    savings["netPerMonth"] = report.savings.net_per_month
    return {
        "containers": [{camel(k): v for k, v in asdict(row).items()} for row in report.rows],
        "savings": savings,
        "prices": {
            "perCoreHour": report.prices.per_core_hour,
            "perGibHour": report.prices.per_gib_hour,
            "hoursPerMonth": HOURS_PER_MONTH,
        },
        "warnings": list(report.warnings),
    }


# -------------------------------------------------------------------------------- chart


def _seconds(stamp: object) -> float:
    """A sample time: unix seconds, or RFC3339 text (the two forms the input accepts)."""
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return float(stamp)
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()


def _summed(values: Iterable[object]) -> float:
    """The sum of quantities, NaN (no line) when any is missing."""
    total = 0.0
    for value in values:
        amount = _quantity(value)
        if amount is None:
            return math.nan
        total += float(amount)
    return total


def report_chart_svg(
    decide_input: Mapping[str, Any],
    report: ResourceReport,
    *,
    max_workloads: int = MAX_CHARTED_WORKLOADS,
) -> str:
    """Per workload, a CPU and a memory panel: usage vs requests vs recommendation, per pod.

    Usage at each time is the sum over the workload's containers of the busiest pod's sample
    (the input does not say which pod a sample is from; with one pod it is exact). Requests and
    recommendations are the sums of the containers' values; a line is left out when a container
    lacks one. The workloads wasting most (by absolute money) come first, at most
    ``max_workloads``.
    """
    rows_of: dict[tuple[str, str], list[ContainerRow]] = {}
    for row in report.rows:
        rows_of.setdefault((row.namespace, row.workload), []).append(row)
    entries_of: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for entry in decide_input.get("containers", ()):
        namespace, name, _ = _key(entry)
        entries_of.setdefault((namespace, name), []).append(entry)

    def weight(workload: tuple[str, str]) -> float:
        return -math.fsum(abs(row.waste_per_hour or 0.0) for row in rows_of[workload])

    panels: list[str] = []
    for workload in sorted(rows_of, key=lambda w: (weight(w), w))[:max_workloads]:
        entries, rows = entries_of.get(workload, []), rows_of[workload]
        peaks: dict[float, dict[tuple[str, str], float]] = {}
        for entry in entries:
            name = str(entry.get("container"))
            for sample in entry.get("samples", ()):
                at = peaks.setdefault(_seconds(sample["time"]), {})
                for resource in ("cpu", "memory"):
                    value = float(sample[resource])
                    at[(name, resource)] = max(at.get((name, resource), value), value)
        times = sorted(peaks)
        if not times:
            continue
        names = [str(entry.get("container")) for entry in entries]
        for resource, unit, scale in (("cpu", "cores", 1.0), ("memory", "GiB", float(GIB))):
            usage = [
                math.fsum(peaks[t][(n, resource)] for n in names) / scale
                if all((n, resource) in peaks[t] for n in names)
                else math.nan
                for t in times
            ]
            request = _summed(row.cpu_request if resource == "cpu" else row.memory_request
                              for row in rows) / scale  # fmt: skip
            target = _summed(row.cpu_target if resource == "cpu" else row.memory_target
                             for row in rows) / scale  # fmt: skip
            lines = [Line("usage (busiest pod)", usage, "#1f77b4")]
            lines += [
                Line(label, [value] * len(times), colour)
                for label, value, colour in (
                    ("request", request, "#d62728"),
                    ("recommendation", target, "#2ca02c"),
                )
                if math.isfinite(value)
            ]
            panels.append(
                line_chart_svg(
                    f"{workload[0]}/{workload[1]}: {resource} per pod ({unit})",
                    times,
                    lines,
                    left_label=unit,
                    right_label="",
                )
            )
    return _stack(panels)


def _stack(panels: Sequence[str]) -> str:
    """One SVG holding the panels one under another (each is a complete ``<svg>``)."""
    sizes = [_size(panel) for panel in panels] or [(1000, 40)]
    width, height = max(w for w, _ in sizes), sum(h for _, h in sizes)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">'
    ]
    if not panels:
        parts.append('<text x="20" y="24">no usage samples to chart</text>')
    offset = 0
    for panel, (_, panel_height) in zip(panels, sizes, strict=False):
        parts.append(f'<g transform="translate(0,{offset})">\n{panel.strip()}\n</g>')
        offset += panel_height
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


_SIZE_RE: Final = re.compile(r'<svg[^>]*\bwidth="(\d+)"[^>]*\bheight="(\d+)"')


def _size(panel: str) -> tuple[int, int]:
    match = _SIZE_RE.search(panel)
    if match is None:  # pragma: no cover - line_chart_svg always sets both
        raise ValueError("panel without width and height")
    return int(match.group(1)), int(match.group(2))


# ------------------------------------------------------------------------------ progress


class Progress(Protocol):
    def advance(self, label: str) -> None: ...

    def close(self) -> None: ...


class PlainProgress:
    """One line per step, for logs and pipes."""

    def __init__(self, total: int, out: TextIO) -> None:
        self._total, self._done, self._out = total, 0, out

    def advance(self, label: str) -> None:
        self._done += 1
        print(f"linescale report: [{self._done}/{self._total}] {label}", file=self._out)

    def close(self) -> None:
        pass


class _RichProgress:
    """A bar on a terminal (rich), redrawn in place."""

    def __init__(self, total: int, out: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("{task.description:<32}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=Console(file=out),
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=total)
        self._progress.start()
        self._started = False

    def advance(self, label: str) -> None:
        self._progress.update(self._task, description=label, advance=1 if self._started else 0)
        self._started = True

    def close(self) -> None:
        self._progress.update(self._task, completed=self._progress.tasks[0].total)
        self._progress.stop()


def progress_for(out: TextIO, total: int) -> Progress:
    """A bar when ``out`` is a terminal and rich is importable, plain lines otherwise."""
    if out.isatty():
        try:
            return _RichProgress(total, out)
        except ImportError:
            pass
    return PlainProgress(total, out)


# --------------------------------------------------------------------------------- flags

_DURATION_RE: Final = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS: Final = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration ("14d", "1h30m", "90s"); ``ValueError`` otherwise."""
    if not text or _DURATION_RE.sub("", text):
        raise ValueError(f"not a duration: {text!r} (use e.g. 14d, 12h, 1h30m, 90s)")
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_RE.findall(text))


def _duration_arg(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0, got {text!r}")
    return seconds


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linescale report",
        description="Operator reports. 'resources': per-container requests, usage and "
        "right-sizing recommendations, with the waste they would remove.",
    )
    commands = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
    resources = commands.add_parser(
        "resources",
        help="right-sizing recommendations and waste per container",
        description="Right-sizing report: current request/limit, recommended target, and the "
        "waste (request - target, per resource, in cores, bytes and money) per container. "
        "Recommendations are those of 'linescale decide' on a rightsizing input.",
    )
    source = resources.add_mutually_exclusive_group(required=True)
    source.add_argument("--prometheus", metavar="URL", help="Prometheus base URL to query")
    source.add_argument(
        "--input", metavar="FILE", help="a 'decide rightsizing' input JSON file (- for stdin)"
    )
    resources.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="only this namespace (repeat for more); default: all",
    )
    resources.add_argument(
        "--history",
        type=_duration_arg,
        default=None,
        metavar="DURATION",
        help="usage history to query, e.g. 14d (the default, as KRR), 8d (VPA), 12h; "
        "below 24h the recommendations are undefined or low-confidence",
    )
    resources.add_argument(
        "--step",
        type=_duration_arg,
        default=None,
        metavar="DURATION",
        help="query resolution (default: the history / 2000, at least 1s)",
    )
    resources.add_argument(
        "--rate-window",
        type=_duration_arg,
        default=DEFAULT_WINDOW_SECONDS,
        metavar="DURATION",
        help="window of each CPU rate and memory peak (default 5m; at least the step)",
    )
    resources.add_argument(
        "--policy",
        metavar="FILE",
        help="rightsizing policy JSON, as in a decide input (with --prometheus; historyHours "
        "defaults to --history)",
    )
    resources.add_argument("--chart", metavar="FILE.svg", help="write usage charts (SVG) here")
    resources.add_argument("--format", choices=("table", "json"), default="table")
    resources.add_argument(
        "--price-per-core-hour",
        type=_price,
        default=DEFAULT_PRICE_PER_CORE_HOUR,
        metavar="USD",
        help="price of one CPU core for an hour (default %(default)s: AWS us-east-1 "
        "on-demand vCPU-hour of m5)",
    )
    resources.add_argument(
        "--price-per-gib-hour",
        type=_price,
        default=DEFAULT_PRICE_PER_GIB_HOUR,
        metavar="USD",
        help="price of one GiB of memory for an hour (default %(default)s: AWS us-east-1 "
        "on-demand m5)",
    )
    resources.add_argument(
        "--timeout", type=_duration_arg, default=30.0, metavar="DURATION",
        help="per-query timeout (default 30s)",
    )  # fmt: skip
    return parser


# ---------------------------------------------------------------------------------- main


def _usage_error(message: str) -> NoReturn:
    usage_error("report", message)


def _failure(message: str) -> NoReturn:
    print(f"linescale report: {message}", file=sys.stderr)
    raise SystemExit(1)


def _read_json(path: str) -> object:
    return read_json_input(path, command="report", max_bytes=MAX_INPUT_BYTES)


def _default_decide() -> Decide:
    from controller.engines.resources.rightsizing import decide_rightsizing

    return decide_rightsizing


def _history_warning(seconds: float) -> str | None:
    if seconds >= CONFIDENT_HISTORY_SECONDS:
        return None
    return (
        f"history of {seconds:g}s is shorter than 24h: recommendations are undefined or "
        "low-confidence (VPA wants 8 days of history, KRR 14)"
    )


def main(argv: Sequence[str] | None = None, *, decide: Decide | None = None) -> None:
    args = build_parser().parse_args(argv)
    prices = Prices(args.price_per_core_hour, args.price_per_gib_hour)
    warnings: list[str] = []
    progress_steps = 1 + (1 if args.chart else 0)
    pods: dict[tuple[str, str, str], int] | None = None
    if args.input is not None:
        if args.history is not None or args.step is not None or args.policy is not None:
            _usage_error("--history, --step and --policy go with --prometheus, not --input")
        raw = _read_json(args.input)
        if not isinstance(raw, dict) or raw.get("kind") != "rightsizing":
            _usage_error(f'{args.input}: expected a JSON object with "kind": "rightsizing"')
        decide_input: dict[str, Any] = raw
        if args.namespace:
            containers = raw.get("containers")
            if isinstance(containers, list):
                wanted = set(args.namespace)
                decide_input = {
                    **raw,
                    "containers": [
                        c for c in containers
                        if isinstance(c, dict) and c.get("namespace") in wanted
                    ],
                }  # fmt: skip
        progress = progress_for(sys.stderr, progress_steps)
    else:
        policy: dict[str, Any] = {}
        if args.policy is not None:
            read = _read_json(args.policy)
            if not isinstance(read, dict):
                _usage_error(f"{args.policy}: the policy must be a JSON object")
            policy = read
        history_seconds = args.history or 14 * 86400.0
        if (warning := _history_warning(history_seconds)) is not None:
            warnings.append(warning)
            print(f"linescale report: warning: {warning}", file=sys.stderr)
        step = choose_step(history_seconds, args.step)
        progress = progress_for(sys.stderr, len(QUERY_ORDER) + progress_steps)
        source = PrometheusUsageHistory(args.prometheus, timeout_seconds=args.timeout)
        end = time.time()

        def on_query(name: QueryName) -> None:
            progress.advance(f"querying {QUERY_LABELS[name]}")

        try:
            history = asyncio.run(
                source.fetch(
                    args.namespace,
                    start=end - history_seconds,
                    end=end,
                    step_seconds=step,
                    window_seconds=args.rate_window,
                    on_query=on_query,
                )
            )
        except UsageHistoryError as error:
            progress.close()
            _failure(str(error))
        if not history.containers:
            progress.close()
            scope = ", ".join(args.namespace) or "any namespace"
            _failure(f"{args.prometheus} has no container usage in {scope} over the history")
        # The engine looks back historyHours (8 days by default): make it the whole --history.
        decide_input = history.decide_input({"historyHours": history_seconds / 3600, **policy})
        pods = {
            (h.key.namespace, h.key.workload, h.key.container): h.replicas
            for h in history.containers
        }
    progress.advance("computing recommendations")
    try:
        decision, refused = recommend(
            decide or _default_decide(), decide_input, by_workload=pods is not None
        )
    except DecideInputError as error:
        progress.close()
        _usage_error(f"cannot compute recommendations: {error.message}")
    warnings += refused
    report = build_report(decide_input, decision, prices=prices, pods=pods, warnings=warnings)
    if args.chart:
        progress.advance(f"writing {args.chart}")
        try:
            Path(args.chart).write_text(report_chart_svg(decide_input, report), encoding="utf-8")
        except OSError as error:
            progress.close()
            _usage_error(f"cannot write {args.chart}: {error.strerror}")
    progress.close()
    if args.format == "json":
        print(json.dumps(report_json(report), indent=2))
    else:
        sys.stdout.write(render_table(report))


if __name__ == "__main__":
    main()
