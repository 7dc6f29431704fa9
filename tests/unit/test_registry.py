"""Agent registry: staleness by the controller's clock, bounded size, reconcile targets."""

from __future__ import annotations

import pytest

from controller.registry import AgentRegistry, agents_to_push, is_stale
from shared.wire import AgentReport, Capacity


def report(node: str, routing_version: int = 0, tuning_version: int = 0) -> AgentReport:
    return AgentReport(
        node=node,
        zone="a",
        endpoint=f"http://{node}:9400",
        sent_at=0.0,
        sequence=0,
        health="ok",
        capacity=Capacity(cpu_cores=2.0, memory_bytes=2**30),
        routing_version=routing_version,
        tuning_version=tuning_version,
    )


@pytest.mark.parametrize(
    ("last_seen", "now", "stale"),
    [
        pytest.param(100.0, 110.0, False, id="recent"),
        pytest.param(100.0, 115.0, False, id="exactly-at-threshold-is-fresh"),
        pytest.param(100.0, 115.1, True, id="past-threshold"),
    ],
)
def test_is_stale(last_seen: float, now: float, stale: bool) -> None:
    assert is_stale(last_seen, now, 15.0) is stale


def test_registry_refuses_new_agents_beyond_its_bound_but_updates_known_ones() -> None:
    registry = AgentRegistry(max_agents=2)
    assert registry.record(report("n1"), 0.0) == "new"
    assert registry.record(report("n2"), 0.0) == "new"
    assert registry.record(report("n3"), 0.0) == "full"
    assert registry.record(report("n1"), 1.0) == "updated"
    assert [r.report.node for r in registry.records()] == ["n1", "n2"]
    n1 = registry.get("n1")
    assert n1 is not None
    assert n1.reports == 2


def test_prune_forgets_only_long_silent_agents() -> None:
    registry = AgentRegistry(max_agents=10)
    registry.record(report("old"), 0.0)
    registry.record(report("new"), 50.0)
    assert registry.prune(now=100.0, forget_after_seconds=60.0) == ["old"]
    assert len(registry) == 1


def test_agents_to_push_skips_current_and_stale_agents() -> None:
    registry = AgentRegistry(max_agents=10)
    registry.record(report("behind", routing_version=1), 100.0)
    registry.record(report("current", routing_version=2), 100.0)
    registry.record(report("silent", routing_version=0), 10.0)
    targets = agents_to_push(registry.records(), "routing", 2, now=105.0, stale_after=15.0)
    assert [r.report.node for r in targets] == ["behind"]


def test_accepted_push_is_remembered_until_the_agent_reports_again() -> None:
    registry = AgentRegistry(max_agents=10)
    registry.record(report("n1", routing_version=1), 100.0)
    registry.note_version("n1", "routing", 2)
    assert agents_to_push(registry.records(), "routing", 2, 101.0, 15.0) == []
    registry.note_version("n1", "routing", 1)  # never steps back
    assert registry.get("n1").routing_version == 2  # type: ignore[union-attr]


def test_nothing_to_push_before_the_controller_holds_a_version() -> None:
    registry = AgentRegistry(max_agents=10)
    registry.record(report("n1"), 100.0)
    assert agents_to_push(registry.records(), "tuning", 0, 100.0, 15.0) == []
