"""Passive health: consecutive failures within a window eject for a while, never the last."""

from __future__ import annotations

import pytest

from agent.dataplane.health import (
    EjectionDecision,
    PassiveHealthTracker,
    decide_ejection,
)
from shared.wire import PassiveHealth

POLICY = PassiveHealth(consecutive_failures=3, window_seconds=1.0, ejection_seconds=10.0)


@pytest.mark.parametrize(
    ("failures", "now", "others", "ejected_until", "expected"),
    [
        pytest.param(
            (5.0, 5.1), 5.1, 2, None, EjectionDecision(False, "below_threshold"), id="two-of-three"
        ),
        pytest.param(
            (5.0, 5.5, 6.0),
            6.0,
            2,
            None,
            EjectionDecision(True, "ejected", 16.0),
            id="three-in-one-second",
        ),
        pytest.param(
            (4.9, 5.5, 6.0),
            6.0,
            2,
            None,
            EjectionDecision(False, "failures_spread_out"),
            id="three-in-over-a-second",
        ),
        pytest.param(
            (5.0, 5.5, 6.0),
            6.0,
            0,
            None,
            EjectionDecision(False, "last_available"),
            id="never-the-last",
        ),
        pytest.param(
            (5.0, 5.5, 6.0),
            6.0,
            2,
            9.0,
            EjectionDecision(False, "already_ejected", 9.0),
            id="already-out",
        ),
        pytest.param(
            (5.0, 5.5, 6.0),
            6.0,
            2,
            6.0,
            EjectionDecision(True, "ejected", 16.0),
            id="ejection-just-ended",
        ),
    ],
)
def test_decide_ejection(
    failures: tuple[float, ...],
    now: float,
    others: int,
    ejected_until: float | None,
    expected: EjectionDecision,
) -> None:
    decision = decide_ejection(
        failures, now, POLICY, others_available=others, ejected_until=ejected_until
    )
    assert decision == expected


def test_a_success_resets_the_run() -> None:
    tracker = PassiveHealthTracker(POLICY)
    tracker.record_failure("h:1", 1.0, others_available=1)
    tracker.record_failure("h:1", 1.1, others_available=1)
    tracker.record_success("h:1")
    assert not tracker.record_failure("h:1", 1.2, others_available=1).eject
    assert tracker.of("h:1").consecutive_errors == 1


def test_the_third_failure_ejects_until_the_ejection_time_passes() -> None:
    tracker = PassiveHealthTracker(POLICY)
    decisions = [tracker.record_failure("h:1", t, others_available=1) for t in (1.0, 1.2, 1.4)]
    assert [d.eject for d in decisions] == [False, False, True]
    assert tracker.of("h:1").ejected(11.3)
    assert tracker.next_expiry() == pytest.approx(11.4)
    assert tracker.expire(11.3) == []
    assert tracker.expire(11.4) == ["h:1"]
    assert not tracker.of("h:1").ejected(11.4)
    assert tracker.next_expiry() is None


def test_the_failure_run_is_bounded_by_the_threshold() -> None:
    tracker = PassiveHealthTracker(POLICY)
    for index in range(100):
        tracker.record_failure("h:1", float(index) * 5, others_available=0)  # spread: no ejection
    assert len(tracker.of("h:1").failures) == POLICY.consecutive_failures
    assert tracker.of("h:1").consecutive_errors == 100


def test_forgetting_an_endpoint_drops_its_state() -> None:
    tracker = PassiveHealthTracker(POLICY)
    for t in (1.0, 1.1, 1.2):
        tracker.record_failure("h:1", t, others_available=1)
    tracker.forget("h:1")
    assert tracker.next_expiry() is None
    assert not tracker.of("h:1").ejected(2.0)
