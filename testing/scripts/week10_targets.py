"""The Week 10 targets, and how measured figures are judged against them (pure, no I/O).

Each target is measured as follows (the runner, ``run_week10_tests.py``, does the measuring;
the same definition stands in every row's input column):

| key | target | measured as |
|---|---|---|
| scaling_decision | < 100 ms | p99 of one workload's horizontal decision |
| scale_out | < 15 s | 1 -> 1000 on the API double: decision pass until all 1000 pods ready |
| analysis | < 50 ms | median PerformanceEngine pass for 1,000 services |
| routing | < 10 ms | p99 of one routing decision for 100 endpoints (compute_routing) |
| forwarding | < 1 ms | p99 the embedded proxy adds over direct calls at a steady rate |
| allocation | < 200 ms | median ``pack`` of 1,000 pods sized to fill 70 % of 100 nodes |
| optimisation_cycle | < 30 s | slowest full ResourceCycle, 10,000 containers / 1,000 nodes |
| cache_lookup | < 1 ms | p99 of an L1 hit through the agent's HTTP cache API |
| cache_management | < 100 ms | p99 of a cross-node invalidation (agent A deletes, B misses) |
| uptime | > 99.9 % | success ratio of the demo's ``shift-change`` (it scales out and in) |
| normal_latency | < 5 ms | the demo's ``normal.mean_ms`` (``shift-change``) |
| resource_efficiency | > 85 % | 1 - slack (worse of CPU, memory), daily right-sizing, load traces |
| cache_hit_ratio | > 95 % | the demo's ``cache.hit_ratio`` (``shift-change``) |
| peak_degradation | < 10 % | the demo's ``degradation_at_peak`` (``shift-change``), in % |

Comparisons are strict: a figure exactly at the threshold does not meet it. A target without
a figure (its scenario failed, a server binary is missing, the shared data is absent) counts as
not met, with the reason in place of the figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Comparison = Literal["<", ">"]


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    label: str
    comparison: Comparison
    threshold: float
    unit: str

    def met_by(self, value: float) -> bool:
        return value < self.threshold if self.comparison == "<" else value > self.threshold

    @property
    def goal(self) -> str:
        return f"{self.comparison} {self.threshold:g} {self.unit}"


TARGETS: tuple[Target, ...] = (
    Target("scaling_decision", "scaling decision", "<", 100, "ms"),
    Target("scale_out", "scale-out 1 -> 1000, all ready", "<", 15, "s"),
    Target("analysis", "performance analysis", "<", 50, "ms"),
    Target("routing", "routing decision", "<", 10, "ms"),
    Target("forwarding", "forwarding overhead", "<", 1, "ms"),
    Target("allocation", "resource allocation", "<", 200, "ms"),
    Target("optimisation_cycle", "optimisation cycle", "<", 30, "s"),
    Target("cache_lookup", "cache lookup", "<", 1, "ms"),
    Target("cache_management", "cache management", "<", 100, "ms"),
    Target("uptime", "uptime during scaling", ">", 99.9, "%"),
    Target("normal_latency", "average latency, normal load", "<", 5, "ms"),
    Target("resource_efficiency", "resource efficiency", ">", 85, "%"),
    Target("cache_hit_ratio", "cache hit ratio", ">", 95, "%"),
    Target("peak_degradation", "degradation at peak", "<", 10, "%"),
)
TARGET_KEYS = frozenset(target.key for target in TARGETS)


@dataclass(frozen=True, slots=True)
class Measured:
    """A figure in the target's unit, and what it was measured on."""

    value: float
    input: str


@dataclass(frozen=True, slots=True)
class NotMeasured:
    """Why there is no figure (the scenario failed, a binary or data set is missing)."""

    reason: str
    input: str = ""


Figure = Measured | NotMeasured


@dataclass(frozen=True, slots=True)
class Row:
    target: Target
    measured: float | None
    input: str
    met: bool | None  # None: not measured, which counts as not met
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.target.key,
            "target": self.target.label,
            "goal": self.target.goal,
            "comparison": self.target.comparison,
            "threshold": self.target.threshold,
            "unit": self.target.unit,
            "measured": self.measured,
            "input": self.input,
            "met": self.met,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Info:
    """A figure without a target (failover, agent overhead, one demo scenario)."""

    label: str
    figure: str
    input: str


def evaluate(figures: Mapping[str, Figure], keys: Iterable[str] | None = None) -> list[Row]:
    """One row per target (or per target in ``keys``), in the table's order."""
    wanted = TARGET_KEYS if keys is None else frozenset(keys)
    rows = []
    for target in TARGETS:
        if target.key not in wanted:
            continue
        figure = figures.get(target.key, NotMeasured("not run"))
        if isinstance(figure, Measured):
            rows.append(Row(target, figure.value, figure.input, target.met_by(figure.value)))
        else:
            rows.append(Row(target, None, figure.input, None, figure.reason))
    return rows


def all_met(rows: Sequence[Row]) -> bool:
    return all(row.met is True for row in rows)


def verdict(row: Row) -> str:
    if row.met is None:
        return "not measured"
    return "met" if row.met else "NOT met"


def format_figure(value: float, unit: str) -> str:
    """Three significant digits at most, but never in exponent form."""
    if value == 0 or abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}"


def measured_text(row: Row) -> str:
    if row.measured is None:
        return f"({row.reason})"
    return format_figure(row.measured, row.target.unit)


def demo_figures(summary: Mapping[str, Any]) -> dict[str, Measured]:
    """The four demo-measured targets from one ``shift-change`` ``summary.json``."""
    pattern = summary.get("pattern", "?")
    speed = summary.get("speed")
    run = f"demo {pattern}, {summary.get('wall_seconds', 0):.0f} s wall" + (
        f" at {speed:g}x" if isinstance(speed, int | float) else ""
    )
    requests = summary["requests"]
    normal, peak = summary["normal"], summary["peak"]
    cache = summary["cache"]
    scaling = summary.get("scaling", {})
    replicas = f"{scaling.get('min_replicas', '?')}-{scaling.get('max_replicas', '?')} replicas"
    return {
        "uptime": Measured(
            100 * requests["success_ratio"],
            f"{run}: {requests['ok']} of {requests['total']} requests answered OK while "
            f"scaling ({replicas}, {scaling.get('actions', '?')} scaling actions)",
        ),
        "normal_latency": Measured(
            normal["mean_ms"], f"{run}: mean of {normal['requests']} normal-load requests"
        ),
        "cache_hit_ratio": Measured(
            100 * cache["hit_ratio"],
            f"{run}: {cache['hits']} hits, {cache['misses']} misses",
        ),
        "peak_degradation": Measured(
            100 * summary["degradation_at_peak"],
            f"{run}: peak mean {peak['mean_ms']:.2f} ms vs normal {normal['mean_ms']:.2f} ms",
        ),
    }


def demo_info(summary: Mapping[str, Any]) -> Info:
    """One info row per demo scenario: requests, success, p50/p99."""
    requests, latency = summary["requests"], summary["latency_ms"]
    return Info(
        f"demo {summary.get('pattern', '?')}",
        f"{requests['total']} requests, {100 * requests['success_ratio']:.3f} % OK, "
        f"p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms",
        f"{summary.get('simulated_seconds', 0):g} s simulated in "
        f"{summary.get('wall_seconds', 0):.0f} s wall",
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(rows: Sequence[Row], infos: Sequence[Info]) -> str:
    lines = [
        "| target | goal | measured | met | input / how |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.target.label} | {_cell(row.target.goal)} | {_cell(measured_text(row))} | "
            f"{verdict(row)} | {_cell(row.input)} |"
        )
    for info in infos:
        lines.append(f"| {info.label} | - | {_cell(info.figure)} | - | {_cell(info.input)} |")
    return "\n".join(lines) + "\n"


def text_table(rows: Sequence[Row], infos: Sequence[Info]) -> str:
    """The terminal table: target, goal, figure, verdict, then the input on its own line."""
    lines = [f"{'target':32s} {'goal':>10s} {'measured':>14s}  verdict"]
    for row in rows:
        lines.append(
            f"{row.target.label:32s} {row.target.goal:>10s} {measured_text(row):>14s}  "
            f"{verdict(row)}"
        )
        if row.input:
            lines.append(f"    {row.input}")
    if infos:
        lines.append("")
        lines.append("without a target:")
        for info in infos:
            lines.append(f"{info.label:32s} {info.figure}")
            if info.input:
                lines.append(f"    {info.input}")
    return "\n".join(lines) + "\n"
