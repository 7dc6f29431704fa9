"""Adaptive concurrency limits against Netflix concurrency-limits' own tests and formulas
(``AIMDLimitTest``, ``ExpAvgMeasurementTest``, the Gradient2 builder defaults)."""

from __future__ import annotations

import pytest

from controller.engines.performance.concurrency import (
    AimdLimit,
    AimdSettings,
    Gradient2Limit,
    Gradient2Settings,
    aimd_update,
    exp_avg_add,
    gradient2_update,
)

MS = 0.001


@pytest.mark.parametrize(
    ("initial", "settings", "rtt", "in_flight", "dropped", "expected"),
    [
        # AIMDLimitTest.increaseOnSuccess: initial 20, onSample(0, 1 ms, 10, false) -> 21.
        pytest.param(20, AimdSettings(), 1 * MS, 10, False, 21, id="increase-on-success"),
        # AIMDLimitTest.decreaseOnDrops: initial 30, a drop -> (int)(30 * 0.9) = 27.
        pytest.param(30, AimdSettings(), 0.0, 0, True, 27, id="decrease-on-drops"),
        # AIMDLimitTest.successOverflow: max 21, min 0: stays 21.
        pytest.param(
            21,
            AimdSettings(min_limit=0, max_limit=21),
            1 * MS,
            10,
            False,
            21,
            id="success-overflow-capped-at-max",
        ),
        # _update: increase only when inflight * 2 >= limit (9 * 2 = 18 < 20).
        pytest.param(20, AimdSettings(), 1 * MS, 9, False, 20, id="app-limited-holds"),
        # _update: rtt > timeout (5 s) is a drop.
        pytest.param(30, AimdSettings(), 6.0, 30, False, 27, id="timeout-is-a-drop"),
        # (int)(20 * 0.9) = 18, clamped to the default minimum 20.
        pytest.param(20, AimdSettings(), 0.0, 0, True, 20, id="decrease-clamped-at-min"),
        # (int)(10 * 0.9) = 9 with a minimum of 1.
        pytest.param(10, AimdSettings(min_limit=1), 0.0, 0, True, 9, id="truncates-like-java"),
    ],
)
def test_aimd_follows_the_netflix_limit(
    initial: int,
    settings: AimdSettings,
    rtt: float,
    in_flight: int,
    dropped: bool,
    expected: int,
) -> None:
    assert aimd_update(AimdLimit(initial), rtt, in_flight, dropped, settings).limit == expected


def test_aimd_rejects_a_backoff_ratio_outside_the_builder_range() -> None:
    with pytest.raises(ValueError, match="backoff_ratio"):
        AimdSettings(backoff_ratio=0.4)


def test_exp_avg_warms_up_with_a_plain_mean_then_decays() -> None:
    # ExpAvgMeasurementTest.testWarmup: window 100, warmup 10; adding 10..19 gives the running
    # means 10, 10.5, ... 14.5; then 100 -> 14.5 * (1 - 2/101) + 100 * 2/101 = 16.2 (0.1).
    state = Gradient2Limit(20.0)
    means = []
    for sample in range(10, 20):
        state = exp_avg_add(state, float(sample), window=100, warmup=10)
        means.append(state.long_rtt)
    assert means == pytest.approx([10.0, 10.5, 11, 11.5, 12, 12.5, 13, 13.5, 14, 14.5])
    state = exp_avg_add(state, 100.0, window=100, warmup=10)
    assert state.long_rtt == pytest.approx(16.2, abs=0.1)


def test_gradient2_grows_by_the_queue_size_smoothed_when_latency_is_steady() -> None:
    # Gradient2Limit.newBuilder().maxConcurrency(200): onSample(0, 10 s, 5000) -> 20, again
    # -> 21. By hand: gradient min(1, 1.5 * 1) = 1, 20 * 0.8 + (20 + 4) * 0.2 = 20.8 -> 20;
    # 20.8 * 0.8 + 24.8 * 0.2 = 21.6 -> 21.
    state = Gradient2Limit.initial()
    state = gradient2_update(state, 10.0, 5000)
    assert state.limit == 20
    state = gradient2_update(state, 10.0, 5000)
    assert state.limit == 21


def warmed(limit: float, long_rtt: float) -> Gradient2Limit:
    return Gradient2Limit(limit, long_rtt=long_rtt, samples=10, warmup_sum=10 * long_rtt)


@pytest.mark.parametrize(
    ("rtt", "in_flight", "expected_limit"),
    [
        # long 10 ms, a 30 ms sample: long -> 0.010 + 0.020 * 2/601 = 0.0100666; gradient
        # 1.5 * 0.0100666 / 0.030 = 0.5033; 100 * 0.5033 + 4 = 54.33; 100 * 0.8 + 54.33 * 0.2
        # = 90.87 -> 90.
        pytest.param(0.030, 100, 90, id="latency-tripled-cuts-the-limit"),
        # A 1 s sample: the gradient is clamped at 0.5: 100 * 0.8 + (50 + 4) * 0.2 = 90.8.
        pytest.param(1.0, 100, 90, id="gradient-floor-at-one-half"),
        # 12 ms against 10 ms is within the 1.5 tolerance: gradient 1, 80 + 104 * 0.2 = 100.8.
        pytest.param(0.012, 100, 100, id="within-tolerance-no-cut"),
        # In flight 49 < 100 / 2: app limited, the limit does not move.
        pytest.param(1.0, 49, 100, id="app-limited-holds"),
    ],
)
def test_gradient2_follows_the_latency_gradient(
    rtt: float, in_flight: int, expected_limit: int
) -> None:
    state = gradient2_update(warmed(100.0, 0.010), rtt, in_flight)
    assert state.limit == expected_limit


def test_gradient2_is_clamped_to_its_maximum() -> None:
    # gradient 1: 200 * 0.8 + 204 * 0.2 = 200.8, clamped to max 200.
    state = gradient2_update(warmed(200.0, 0.010), 0.010, 200, Gradient2Settings())
    assert state.estimated_limit == 200


def test_gradient2_pulls_the_long_rtt_down_after_an_overload() -> None:
    # long 100 ms, a 10 ms sample: long -> 0.1 * 599/601 + 0.01 * 2/601 = 0.0997005; over
    # twice the sample, so times 0.95 = 0.0947155.
    state = gradient2_update(warmed(100.0, 0.100), 0.010, 0)
    assert state.long_rtt == pytest.approx(0.0947155, rel=1e-6)
    assert state.estimated_limit == 100  # app limited: only the baseline moved
