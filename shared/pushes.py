"""Which push wins: routing tables and tuning sets carry a monotonic ``version``.

A push whose version is not newer than what is held is ignored, so repeated and reordered
pushes are harmless (idempotent) and an agent never steps back to an older table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.wire import RoutingTable, TuningSet

PushKind = Literal["routing", "tuning"]


@dataclass(frozen=True)
class PushDecision:
    apply: bool
    reason: Literal["applied", "stale"]
    message: str


def decide_push(held_version: int | None, incoming_version: int) -> PushDecision:
    """Apply only a strictly newer version; ``held_version`` is None when nothing is held yet."""
    if held_version is None:
        return PushDecision(True, "applied", f"first version {incoming_version}")
    if incoming_version > held_version:
        return PushDecision(True, "applied", f"version {held_version} -> {incoming_version}")
    return PushDecision(
        False, "stale", f"version {incoming_version} is not newer than held {held_version}"
    )


@dataclass
class HeldState:
    """The newest routing table and tuning set a component holds.

    An agent keeps them while the controller is away (static stability); the controller keeps
    the ones it fans out. Either is replaced only by a newer version.
    """

    routing: RoutingTable | None = None
    tuning: TuningSet | None = None

    def offer_routing(self, table: RoutingTable) -> PushDecision:
        decision = decide_push(self.routing.version if self.routing else None, table.version)
        if decision.apply:
            self.routing = table
        return decision

    def offer_tuning(self, tuning: TuningSet) -> PushDecision:
        decision = decide_push(self.tuning.version if self.tuning else None, tuning.version)
        if decision.apply:
            self.tuning = tuning
        return decision

    def version(self, kind: PushKind) -> int:
        held = self.routing if kind == "routing" else self.tuning
        return held.version if held is not None else 0
