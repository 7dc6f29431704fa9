"""Passive health: take an endpoint out locally after repeated failures, before the
controller's outlier detection (which sees every agent, but seconds later) reacts.

An endpoint is ejected after ``consecutive_failures`` failures in a row, all within
``window_seconds``, for ``ejection_seconds``. A success resets the run. The last endpoint that
can take traffic is never ejected: with nothing left the service would answer 503 to everyone,
which is worse than sending to a doubtful endpoint (the same safety as Envoy's panic mode and
its "at least one host is always ejectable" rule turned around).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from shared.wire import PassiveHealth

EjectionReason = Literal[
    "below_threshold", "failures_spread_out", "last_available", "already_ejected", "ejected"
]


@dataclass(frozen=True)
class EjectionDecision:
    eject: bool
    reason: EjectionReason
    until: float | None = None  # when the ejection ends (seconds, the caller's clock)


def decide_ejection(
    failure_times: tuple[float, ...],
    now: float,
    policy: PassiveHealth,
    *,
    others_available: int,
    ejected_until: float | None = None,
) -> EjectionDecision:
    """Whether the run of consecutive failures (oldest first, the newest at ``now``) ejects
    the endpoint; ``others_available`` counts the *other* endpoints that can take traffic."""
    if ejected_until is not None and ejected_until > now:
        return EjectionDecision(False, "already_ejected", ejected_until)
    needed = policy.consecutive_failures
    if len(failure_times) < needed:
        return EjectionDecision(False, "below_threshold")
    if now - failure_times[-needed] > policy.window_seconds:
        return EjectionDecision(False, "failures_spread_out")
    if others_available <= 0:
        return EjectionDecision(False, "last_available")
    return EjectionDecision(True, "ejected", now + policy.ejection_seconds)


@dataclass
class EndpointHealth:
    """The failure run of one endpoint; bounded to the last ``consecutive_failures`` times."""

    failures: deque[float] = field(default_factory=deque)
    consecutive_errors: int = 0
    ejected_until: float | None = None

    def ejected(self, now: float) -> bool:
        return self.ejected_until is not None and self.ejected_until > now


class PassiveHealthTracker:
    """Failure runs per endpoint address for one service."""

    def __init__(self, policy: PassiveHealth) -> None:
        self.policy = policy
        self._endpoints: dict[str, EndpointHealth] = {}

    def set_policy(self, policy: PassiveHealth) -> None:
        self.policy = policy

    def of(self, address: str) -> EndpointHealth:
        health = self._endpoints.get(address)
        if health is None:
            health = self._endpoints[address] = EndpointHealth()
        return health

    def forget(self, address: str) -> None:
        self._endpoints.pop(address, None)

    def record_success(self, address: str) -> None:
        health = self.of(address)
        health.failures.clear()
        health.consecutive_errors = 0

    def record_failure(self, address: str, now: float, others_available: int) -> EjectionDecision:
        """Count one failure; returns whether it ejects the endpoint now."""
        health = self.of(address)
        health.consecutive_errors += 1
        health.failures.append(now)
        while len(health.failures) > self.policy.consecutive_failures:
            health.failures.popleft()
        decision = decide_ejection(
            tuple(health.failures),
            now,
            self.policy,
            others_available=others_available,
            ejected_until=health.ejected_until,
        )
        if decision.eject:
            health.ejected_until = decision.until
            health.failures.clear()
        return decision

    def expire(self, now: float) -> list[str]:
        """End the ejections that are over; returns their addresses."""
        ended = []
        for address, health in self._endpoints.items():
            if health.ejected_until is not None and health.ejected_until <= now:
                health.ejected_until = None
                ended.append(address)
        return ended

    def next_expiry(self) -> float | None:
        times = [h.ejected_until for h in self._endpoints.values() if h.ejected_until is not None]
        return min(times) if times else None
