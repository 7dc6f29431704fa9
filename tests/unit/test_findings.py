"""Fleet findings: the agents' findings grouped per workload container, with suggestions
computed from the evidence (CFS throttling ratio, VPA's OOM bump) and floors for the
vertical recommendations."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.engines.performance.findings import (
    ResourceFloor,
    aggregate_findings,
    oom_suggestion,
    throttling_suggestion,
)
from controller.ports import Resources
from shared.wire import AgentReport, parse

from messages import finding, report

MIB = 2**20
# Deployment pods: <name>-<template hash>-<suffix>, from Kubernetes' safe alphabet.
CHECKOUT_PODS = ("checkout-5d4f8b7c9-x2k4q", "checkout-5d4f8b7c9-z9m5w", "checkout-5d4f8b7c9-b7n2p")


def throttled(pod: str, percent: float, severity: str = "warning") -> dict[str, Any]:
    return finding(
        resource="cpu",
        kind="saturation",
        severity=severity,
        rule="cpu_throttling",
        subject=f"container/line/{pod}/app",
        evidence=[{"signal": "cgroup.cpu.throttled_periods", "value": percent, "threshold": 25}],
        culprits=[{"namespace": "line", "pod": pod, "container": "app", "share": 1.0}],
        message="CFS throttling",
    )


def oom(pod: str, kills: float) -> dict[str, Any]:
    return finding(
        resource="memory",
        kind="saturation",
        severity="critical",
        rule="oom_kill",
        subject=f"container/line/{pod}/app",
        evidence=[{"signal": "cgroup.memory.events.oom_kill", "value": kills, "threshold": 0}],
        culprits=[{"namespace": "line", "pod": pod, "container": "app", "share": 1.0}],
        message="OOM kills",
    )


def agent(node: str, *findings: dict[str, Any]) -> AgentReport:
    return parse(AgentReport, json.dumps(report(node=node, findings=list(findings))))


@pytest.mark.parametrize(
    ("limit", "share", "expected"),
    [
        # 500m throttled in 1/3 of periods: 500 / (2/3) = 750m.
        pytest.param(500, 1 / 3, 750, id="a-third-throttled"),
        # 500 / 0.6 = 833.3 -> rounded up to 840m.
        pytest.param(500, 0.4, 840, id="rounded-up-to-10m"),
        # Past 75 % the factor is capped at 4: 250 * 4.
        pytest.param(250, 0.9, 1000, id="factor-capped-at-4x"),
        pytest.param(250, 1.0, 1000, id="always-throttled-capped"),
    ],
)
def test_throttling_suggestion(limit: int, share: float, expected: int) -> None:
    assert throttling_suggestion(limit, share) == expected


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        # VPA: max(limit * 1.2, limit + 100 MiB). 256 MiB -> 356 MiB (the +100 MiB wins).
        pytest.param(256 * MIB, 356 * MIB, id="min-bump-wins-for-small"),
        # 1 GiB * 1.2 = 1228.8 MiB -> rounded up to 1229 MiB (the ratio wins).
        pytest.param(1024 * MIB, 1229 * MIB, id="ratio-wins-for-large"),
    ],
)
def test_oom_suggestion_is_vpas_oom_bump(limit: int, expected: int) -> None:
    assert oom_suggestion(limit) == expected


def test_throttled_replicas_on_three_nodes_become_one_item_with_a_floor() -> None:
    reports = [
        agent("node-1", throttled(CHECKOUT_PODS[0], 20.0)),
        agent("node-2", throttled(CHECKOUT_PODS[1], 100 / 3)),
        agent("node-3", throttled(CHECKOUT_PODS[2], 30.0)),
    ]
    limits = {("line", "checkout", "app"): Resources(cpu_millicores=500)}
    [item] = aggregate_findings(reports, limits)
    assert (item.namespace, item.workload, item.container) == ("line", "checkout", "app")
    assert item.nodes == ("node-1", "node-2", "node-3")
    # The worst node (1/3 throttled) decides: 500m / (2/3) = 750m.
    assert item.floor == ResourceFloor("line", "checkout", "app", "cpu", 750)
    assert "raise its CPU limit from 500m to 750m" in item.suggestion
    assert item.message.startswith("line/checkout is CPU-throttled on 3 nodes")


def test_without_a_known_limit_the_suggestion_is_relative_and_has_no_floor() -> None:
    [item] = aggregate_findings([agent("node-1", throttled(CHECKOUT_PODS[0], 50.0))])
    assert item.floor is None
    assert "2.00x" in item.suggestion  # 1 / (1 - 0.5)


def test_oom_kills_suggest_the_bumped_memory_limit() -> None:
    reports = [agent("node-1", oom("cache-0", 2)), agent("node-2", oom("cache-1", 1))]
    limits = {("line", "cache", "app"): Resources(memory_bytes=256 * MIB)}
    [item] = aggregate_findings(reports, limits)
    assert item.workload == "cache"  # StatefulSet ordinals grouped
    assert item.floor == ResourceFloor("line", "cache", "app", "memory", 356 * MIB)
    assert "3 OOM kills" in item.suggestion


def test_node_findings_name_culprits_with_a_real_share_and_no_floor() -> None:
    pressure = finding(
        culprits=[
            {"namespace": "line", "pod": CHECKOUT_PODS[0], "container": "app", "share": 0.6},
            {"namespace": "line", "pod": "batch-7", "container": "job", "share": 0.05},
            {"pid": 1, "command": "systemd", "share": 0.3},  # no pod: not a workload
        ]
    )
    [item] = aggregate_findings([agent("node-1", pressure)])
    assert (item.workload, item.resource, item.kind) == ("checkout", "cpu", "saturation")
    assert item.worst_value == 0.6
    assert item.floor is None


def test_critical_items_come_first_then_the_most_widespread() -> None:
    reports = [
        agent("node-1", throttled(CHECKOUT_PODS[0], 30.0), throttled("pay-0", 30.0)),
        agent("node-2", throttled(CHECKOUT_PODS[1], 30.0)),
        agent("node-3", throttled("audit-0", 60.0, severity="critical")),
    ]
    assert [item.workload for item in aggregate_findings(reports)] == ["audit", "checkout", "pay"]
