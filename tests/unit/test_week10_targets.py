"""The Week 10 targets table: strict thresholds, missing figures count as not met, the demo's
summary maps onto its four targets, and ``--only`` picks scenarios and targets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The runner and its targets module are scripts in testing/scripts, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "testing" / "scripts"))

from run_week10_tests import SCENARIOS, selection
from week10_targets import (
    TARGET_KEYS,
    TARGETS,
    Info,
    Measured,
    NotMeasured,
    Row,
    all_met,
    demo_figures,
    evaluate,
    format_figure,
    markdown_table,
    verdict,
)

BY_KEY = {target.key: target for target in TARGETS}


@pytest.mark.parametrize(
    ("key", "value", "met"),
    [
        ("scaling_decision", 99.999, True),
        ("scaling_decision", 100.0, False),  # "< 100 ms": exactly 100 is not under it
        ("scaling_decision", 100.001, False),
        ("forwarding", 0.999, True),
        ("forwarding", 1.0, False),
        ("optimisation_cycle", 29.9, True),
        ("optimisation_cycle", 30.0, False),
        ("uptime", 99.901, True),
        ("uptime", 99.9, False),  # "> 99.9 %": exactly 99.9 is not above it
        ("uptime", 99.0, False),
        ("cache_hit_ratio", 95.0, False),
        ("cache_hit_ratio", 95.1, True),
        ("resource_efficiency", 85.0, False),
        ("peak_degradation", -3.0, True),  # faster at peak than normal: no degradation
        ("peak_degradation", 10.0, False),
    ],
)
def test_a_figure_exactly_at_the_threshold_does_not_meet_it(
    key: str, value: float, met: bool
) -> None:
    assert BY_KEY[key].met_by(value) is met


def test_the_table_holds_every_target_of_the_plan_once() -> None:
    assert [t.key for t in TARGETS] == [
        "scaling_decision",
        "scale_out",
        "analysis",
        "routing",
        "forwarding",
        "allocation",
        "optimisation_cycle",
        "cache_lookup",
        "cache_management",
        "uptime",
        "normal_latency",
        "resource_efficiency",
        "cache_hit_ratio",
        "peak_degradation",
    ]
    assert [(t.comparison, t.threshold, t.unit) for t in TARGETS] == [
        ("<", 100, "ms"),
        ("<", 15, "s"),
        ("<", 50, "ms"),
        ("<", 10, "ms"),
        ("<", 1, "ms"),
        ("<", 200, "ms"),
        ("<", 30, "s"),
        ("<", 1, "ms"),
        ("<", 100, "ms"),
        (">", 99.9, "%"),
        ("<", 5, "ms"),
        (">", 85, "%"),
        (">", 95, "%"),
        ("<", 10, "%"),
    ]


@pytest.mark.parametrize(
    ("figures", "expected", "every_one_met"),
    [
        pytest.param(
            {"routing": Measured(0.2, "100 endpoints")},
            {"routing": (0.2, "100 endpoints", True, "")},
            True,
            id="measured-and-met",
        ),
        pytest.param(
            {"routing": Measured(12.0, "100 endpoints")},
            {"routing": (12.0, "100 endpoints", False, "")},
            False,
            id="measured-not-met",
        ),
        pytest.param(
            {"routing": NotMeasured("routing failed: boom", "100 endpoints")},
            {"routing": (None, "100 endpoints", None, "routing failed: boom")},
            False,
            id="scenario-failed-counts-as-not-met",
        ),
        pytest.param(
            {},
            {"routing": (None, "", None, "not run")},
            False,
            id="missing-figure-counts-as-not-met",
        ),
    ],
)
def test_evaluate_judges_each_selected_target(
    figures: dict[str, Measured | NotMeasured],
    expected: dict[str, tuple[float | None, str, bool | None, str]],
    every_one_met: bool,
) -> None:
    rows = evaluate(figures, keys=expected)
    assert {r.target.key: (r.measured, r.input, r.met, r.reason) for r in rows} == expected
    assert all_met(rows) is every_one_met


def test_evaluate_without_keys_gives_every_target_in_the_table_order() -> None:
    rows = evaluate({"uptime": Measured(100.0, "demo")})
    assert [r.target.key for r in rows] == [t.key for t in TARGETS]
    assert [verdict(r) for r in rows if r.target.key == "uptime"] == ["met"]
    assert {verdict(r) for r in rows if r.target.key != "uptime"} == {"not measured"}


SUMMARY: dict[str, Any] = {
    "pattern": "shift-change",
    "speed": 60.0,
    "wall_seconds": 30.2,
    "simulated_seconds": 1800,
    "requests": {"total": 2000, "ok": 1999, "errors": 1, "success_ratio": 0.9995},
    "latency_ms": {"mean": 4.1, "p50": 3.0, "p99": 20.0},
    "normal": {"requests": 1500, "mean_ms": 3.5, "p99_ms": 9.0},
    "peak": {"requests": 500, "mean_ms": 3.71, "p99_ms": 30.0},
    "degradation_at_peak": 0.06,
    "scaling": {"actions": 4, "min_replicas": 2, "max_replicas": 6, "replica_seconds": 1.0},
    "cache": {"hits": 970, "misses": 30, "hit_ratio": 0.97},
    "routing": {"ejections": 0},
    "cost": {"replica_hours": 1.0, "cost": 1.0, "static_peak_cost": 2.0},
    "decisions": [],
}


def test_the_demo_summary_gives_its_four_targets_in_their_units() -> None:
    figures = demo_figures(SUMMARY)
    values = {key: figure.value for key, figure in figures.items()}
    assert values == pytest.approx(
        {"uptime": 99.95, "normal_latency": 3.5, "cache_hit_ratio": 97.0, "peak_degradation": 6.0}
    )
    assert "1999 of 2000" in figures["uptime"].input
    assert all(figure.input.startswith("demo shift-change") for figure in figures.values())
    assert all_met(evaluate(figures, keys=figures))


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.0549, "ms", "0.055 ms"),
        (3.14159, "ms", "3.14 ms"),
        (18.84, "ms", "18.8 ms"),
        (100.0, "%", "100 %"),
        (0.0, "s", "0 s"),
    ],
)
def test_figures_keep_three_significant_digits_without_exponents(
    value: float, unit: str, text: str
) -> None:
    assert format_figure(value, unit) == text


def test_markdown_rows_escape_pipes_and_show_why_a_figure_is_missing() -> None:
    row = Row(BY_KEY["cache_lookup"], None, "a | b", None, "redis-server not found")
    table = markdown_table([row], [Info("agent overhead", "CPU 0.2 %", "10 s")])
    assert table.splitlines()[2] == (
        "| cache lookup | < 1 ms | (redis-server not found) | not measured | a \\| b |"
    )
    assert table.splitlines()[3] == "| agent overhead | - | CPU 0.2 % | - | 10 s |"


@pytest.mark.parametrize(
    ("only", "scenarios", "keys"),
    [
        pytest.param(None, [s.name for s in SCENARIOS], set(TARGET_KEYS), id="everything"),
        pytest.param("routing", ["routing"], {"routing"}, id="a-target-key"),
        pytest.param("cache_lookup", ["cache"], {"cache_lookup"}, id="one-of-a-scenarios-targets"),
        pytest.param(
            "cache", ["cache"], {"cache_lookup", "cache_management"}, id="a-scenario-name"
        ),
        pytest.param("failover", ["failover"], set(), id="a-scenario-without-targets"),
        pytest.param(
            "uptime, scale_out", ["scale_out", "demo"], {"uptime", "scale_out"}, id="two-keys"
        ),
    ],
)
def test_only_runs_the_scenarios_of_the_named_keys_and_judges_those_keys(
    only: str | None, scenarios: list[str], keys: set[str]
) -> None:
    chosen, judged = selection(only)
    assert ([s.name for s in chosen], judged) == (scenarios, keys)


@pytest.mark.parametrize("only", ["routng", "", "routing,nope"])
def test_only_rejects_what_is_neither_a_target_nor_a_scenario(only: str) -> None:
    with pytest.raises(ValueError, match="unknown key"):
        selection(only)
