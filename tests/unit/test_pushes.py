"""Versioned pushes: only a strictly newer version replaces what is held."""

from __future__ import annotations

import pytest

from shared.pushes import HeldState, decide_push
from shared.wire import RoutingTable


@pytest.mark.parametrize(
    ("held", "incoming", "apply", "reason"),
    [
        pytest.param(None, 1, True, "applied", id="first-push-applies"),
        pytest.param(3, 4, True, "applied", id="newer-applies"),
        pytest.param(3, 3, False, "stale", id="repeat-is-stale"),
        pytest.param(3, 2, False, "stale", id="older-is-stale"),
        pytest.param(None, 7, True, "applied", id="first-push-may-start-anywhere"),
    ],
)
def test_decide_push(held: int | None, incoming: int, apply: bool, reason: str) -> None:
    decision = decide_push(held, incoming)
    assert (decision.apply, decision.reason) == (apply, reason)


def table(version: int) -> RoutingTable:
    return RoutingTable(version=version, generated_at=0.0, services=[])


def test_held_state_keeps_newest_routing_through_reordered_pushes() -> None:
    held = HeldState()
    for version in (2, 5, 3, 5, 4):
        held.offer_routing(table(version))
    assert held.version("routing") == 5
    assert held.version("tuning") == 0
