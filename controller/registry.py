"""Known agents: their last report, when it arrived, and whether they have gone quiet.

Pure bookkeeping: time is passed in, so staleness is decided the same way in tests and live.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from shared.pushes import PushKind
from shared.wire import AgentReport

RecordOutcome = Literal["new", "updated", "full"]


def is_stale(last_seen: float, now: float, stale_after_seconds: float) -> bool:
    return now - last_seen > stale_after_seconds


@dataclass(frozen=True)
class AgentRecord:
    report: AgentReport
    last_seen: float  # controller clock when the last report arrived
    reports: int
    # Versions the agent is known to hold: from its report, or raised by an accepted push.
    routing_version: int
    tuning_version: int

    def held_version(self, kind: PushKind) -> int:
        return self.routing_version if kind == "routing" else self.tuning_version

    def status(self, now: float, stale_after_seconds: float) -> dict[str, Any]:
        report = self.report
        return {
            "node": report.node,
            "zone": report.zone,
            "region": report.region,
            "endpoint": report.endpoint,
            "health": report.health,
            "health_reasons": list(report.health_reasons),
            "last_seen": self.last_seen,
            "age_seconds": round(max(0.0, now - self.last_seen), 3),
            "stale": is_stale(self.last_seen, now, stale_after_seconds),
            "reports": self.reports,
            "routing_version": self.routing_version,
            "tuning_version": self.tuning_version,
        }


class AgentRegistry:
    """Bounded: at most ``max_agents`` nodes; long-silent ones are forgotten by ``prune``."""

    def __init__(self, max_agents: int) -> None:
        self._max_agents = max_agents
        self._records: dict[str, AgentRecord] = {}

    def __len__(self) -> int:
        return len(self._records)

    def get(self, node: str) -> AgentRecord | None:
        return self._records.get(node)

    def records(self) -> list[AgentRecord]:
        return [self._records[node] for node in sorted(self._records)]

    def record(self, report: AgentReport, now: float) -> RecordOutcome:
        previous = self._records.get(report.node)
        if previous is None and len(self._records) >= self._max_agents:
            return "full"
        self._records[report.node] = AgentRecord(
            report=report,
            last_seen=now,
            reports=(previous.reports if previous else 0) + 1,
            routing_version=report.routing_version,
            tuning_version=report.tuning_version,
        )
        return "new" if previous is None else "updated"

    def note_version(self, node: str, kind: PushKind, version: int) -> None:
        """An agent accepted (or already held) ``version``: don't push it again."""
        record = self._records.get(node)
        if record is None or record.held_version(kind) >= version:
            return
        if kind == "routing":
            self._records[node] = replace(record, routing_version=version)
        else:
            self._records[node] = replace(record, tuning_version=version)

    def prune(self, now: float, forget_after_seconds: float) -> list[str]:
        gone = [
            n for n, r in self._records.items() if is_stale(r.last_seen, now, forget_after_seconds)
        ]
        for node in gone:
            del self._records[node]
        return gone


def agents_to_push(
    records: list[AgentRecord], kind: PushKind, desired_version: int, now: float, stale_after: float
) -> list[AgentRecord]:
    """Fresh agents that hold an older version than the controller's: the reconcile targets.

    Stale agents are skipped; they get the current version once they report again.
    """
    if desired_version <= 0:
        return []
    return [
        record
        for record in records
        if record.held_version(kind) < desired_version
        and not is_stale(record.last_seen, now, stale_after)
    ]
