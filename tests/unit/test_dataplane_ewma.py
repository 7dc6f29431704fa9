"""Peak-EWMA, against tower's unit-test vectors (tower-rs/tower tower/src/load/peak_ewma.rs
@00329237: ``default_decay`` and ``compound_decay``, decay 1 s) and hand computations."""

from __future__ import annotations

import math

import pytest

from agent.dataplane.ewma import DECAY_SECONDS, PENALTY_SECONDS, PeakEwma

MS = 0.001


def test_tower_default_decay() -> None:
    # tower default_decay: default RTT 10 ms, decay 1 s; reading the load decays it.
    ewma = PeakEwma(0.0, default_rtt_seconds=10 * MS, decay_seconds=1.0)
    assert ewma.cost(0.0, pending=0) == pytest.approx(10 * MS)
    assert 9 * MS < ewma.cost(0.1, pending=0) < 10 * MS
    assert 8 * MS < ewma.cost(0.2, pending=0) < 9 * MS


def test_tower_compound_decay() -> None:
    # tower compound_decay: default 20 ms, decay 1 s; two requests of 200 ms overlap.
    ewma = PeakEwma(0.0, default_rtt_seconds=20 * MS, decay_seconds=1.0)
    assert ewma.cost(0.0, pending=0) == pytest.approx(20 * MS)
    assert ewma.cost(0.1, pending=1) > 20 * MS  # first request sent at 0.1
    assert ewma.cost(0.2, pending=2) > 40 * MS  # second request sent at 0.2
    ewma.observe(0.3 - 0.1, 0.3)  # first answers after 200 ms: the peak replaces the estimate
    assert ewma.cost(0.3, pending=1) == pytest.approx(400 * MS, rel=1e-12)
    ewma.observe(0.4 - 0.2, 0.4)  # second answers after 200 ms too
    assert ewma.cost(0.4, pending=0) == pytest.approx(200 * MS, rel=1e-12)
    assert ewma.cost(1.4, pending=0) < 100 * MS  # 200 ms * e^-1 = 73.6 ms
    assert ewma.cost(11.4, pending=0) < 0.1 * MS  # 73.6 ms * e^-10 = 3.3 us


@pytest.mark.parametrize(
    ("prior", "rtt", "elapsed", "expected"),
    [
        # Below the estimate: est * w + rtt * (1 - w), w = exp(-elapsed / tau).
        pytest.param(
            100 * MS,
            50 * MS,
            10.0,
            100 * MS * math.exp(-1) + 50 * MS * (1 - math.exp(-1)),
            id="one-tau-later",
        ),
        pytest.param(100 * MS, 50 * MS, 0.0, 100 * MS, id="no-time-no-change"),
        # Above the estimate: the peak wins whatever the elapsed time.
        pytest.param(100 * MS, 250 * MS, 0.0, 250 * MS, id="peak-jumps-at-once"),
        pytest.param(100 * MS, 250 * MS, 30.0, 250 * MS, id="peak-jumps-after-idle"),
    ],
)
def test_observe_follows_the_peak_rule(
    prior: float, rtt: float, elapsed: float, expected: float
) -> None:
    ewma = PeakEwma(0.0, default_rtt_seconds=prior, decay_seconds=DECAY_SECONDS)
    assert ewma.observe(rtt, elapsed) == pytest.approx(expected, rel=1e-12)


def test_an_idle_estimate_halves_every_tau_ln2() -> None:
    # Finagle: half-life = tau * ln 2 (6.9 s for tau = 10 s) when decayed by reads alone.
    ewma = PeakEwma(0.0, default_rtt_seconds=80 * MS)
    assert ewma.estimate(DECAY_SECONDS * math.log(2)) == pytest.approx(40 * MS, rel=1e-9)


@pytest.mark.parametrize(
    ("observed", "pending", "expected"),
    [
        pytest.param(False, 0, 30 * MS, id="fresh-idle-costs-the-default-rtt"),
        pytest.param(False, 3, PENALTY_SECONDS + 3, id="fresh-with-pending-is-penalised"),
        pytest.param(True, 3, 4 * 50 * MS, id="measured-costs-estimate-times-pending-plus-one"),
    ],
)
def test_cost_penalises_pending_requests_without_any_rtt(
    observed: bool, pending: int, expected: float
) -> None:
    ewma = PeakEwma(0.0)  # Linkerd's default RTT, 30 ms
    if observed:
        ewma.observe(50 * MS, 0.0)
    assert ewma.cost(0.0, pending) == pytest.approx(expected)


def test_a_clock_going_backwards_does_not_grow_the_estimate() -> None:
    ewma = PeakEwma(10.0, default_rtt_seconds=30 * MS)
    assert ewma.estimate(5.0) == pytest.approx(30 * MS)
