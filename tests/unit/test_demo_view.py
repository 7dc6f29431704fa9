"""The demo's view: a snapshot renders as plain progress lines and as rich panels, and each
decision as one line with its reason."""

from __future__ import annotations

import dataclasses

import pytest
from rich.console import Console

from controller.demo.view import (
    Snapshot,
    clock_of,
    decision_line,
    endpoint_rows,
    finding_line,
    plain_line,
    render,
)

PODS = [
    {"name": "line-service-0", "node": "line-node-a", "address": "127.0.0.1:1001"},
    {"name": "line-service-1", "node": "line-node-b", "address": "127.0.0.1:1002"},
]
ZONES = {"line-node-a": "a", "line-node-b": "b"}


def snapshot(**changes: object) -> Snapshot:
    base = Snapshot(
        scenario="slow-replica",
        wall=12.5,
        duration=60,
        speed=60,
        sim_clock="06:12",
        offered_rps=90,
        served_rps=88,
        failed_rps=0.5,
        p50_ms=8.2,
        p99_ms=120.0,
        desired=4,
        ready=3,
        running=4,
        endpoints=endpoint_rows(
            PODS,
            {"127.0.0.1:1001": "ejected", "127.0.0.1:1002": "active"},
            ZONES,
            {"line-service-1": 30, "line-service-0": 10},
            slow_pods=["line-service-0"],
        ),
        zone_shares={"a": {"a": 0.25, "b": 0.75}},
        ejections=1,
        hit_ratio=0.62,
        bottlenecks=("line-node-b: cpu saturation (critical): run queue 3/cpu",),
        faults=("slow replica on line-node-a",),
        decisions=("[  5.0s] scalability local/line-service: 3 -> 4 (why)",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "00:00"), (21600 + 125, "06:02"), (86400 + 3600, "d1 01:00")]
)
def test_clock_of_reads_as_time_of_day(seconds: float, shown: str) -> None:
    assert clock_of(seconds) == shown


def test_plain_line_carries_every_figure() -> None:
    line = plain_line(snapshot())
    for part in (
        "12.5s/60s",
        "06:12",
        "offered 90/s",
        "served 88/s",
        "p99 120.0ms",
        "replicas 3/4",
        "cache hit 62%",
        "ejections 1",
        "bottlenecks 1",
        "fault: slow replica on line-node-a",
    ):
        assert part in line, part


def test_plain_line_without_cache_data_says_so() -> None:
    assert "cache hit -" in plain_line(snapshot(hit_ratio=None, bottlenecks=(), faults=()))


def test_decision_line_shows_engine_change_and_reason() -> None:
    decision = {
        "kind": "scale",
        "target": "local/line-service",
        "from_value": 3.0,
        "to_value": 5.0,
        "reason": {"code": "desired_within_range", "message": "the desired count is in range"},
    }
    assert decision_line(decision, 7.25) == (
        "[   7.2s] scalability local/line-service: 3 -> 5 "
        "(desired_within_range: the desired count is in range)"
    )


def test_finding_line_names_node_resource_and_message() -> None:
    finding = {
        "resource": "cpu",
        "kind": "saturation",
        "severity": "critical",
        "subject": "node/line-node-b",
        "message": "run queue 3/cpu",
    }
    line = finding_line("line-node-b", finding, 3.0, opened=True)
    assert "line-node-b: cpu saturation (critical) on node/line-node-b: run queue 3/cpu" in line
    assert line.endswith("cleared") is False
    assert finding_line("line-node-b", finding, 4.0, opened=False).endswith("cleared")


def test_endpoint_rows_carry_zone_state_and_share_of_answers() -> None:
    rows = snapshot().endpoints
    assert [(r.pod, r.zone, r.state, r.share, r.slow) for r in rows] == [
        ("line-service-0", "a", "ejected", 0.25, True),
        ("line-service-1", "b", "active", 0.75, False),
    ]


def test_rich_view_renders_every_panel() -> None:
    console = Console(width=160, record=True, color_system=None)
    console.print(render(snapshot()))
    text = console.export_text()
    for part in (
        "linescale demo: slow-replica",
        "load",
        "replicas",
        "cache",
        "routing",
        "bottlenecks",
        "decisions",
        "line-service-0 (slow)",
        "ejected",
        "a->a:25%,b:75%",
        "62.0 %",
        "L2: off",
        "3 -> 4",
        "run queue 3/cpu",
    ):
        assert part in text, part
