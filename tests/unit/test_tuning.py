"""The tuning state machine: propose -> verify -> keep or roll back -> cool down, one change
per knob at a time; the verdict table; the proposers; TuningSet knob access."""

from __future__ import annotations

import json

import pytest

from controller.engines.performance.tuning import (
    Baseline,
    Direction,
    KnobState,
    Proposal,
    TuningPolicy,
    advance,
    baseline_of,
    judge,
    knob_value,
    propose_cache_capacity,
    propose_cache_ttl,
    propose_collector_interval,
    propose_max_concurrency,
    propose_retry_budget,
    with_values,
)
from shared.wire import TuningSet, parse

from messages import tuning

MIB = 2**20
POLICY = TuningPolicy(verify_seconds=60.0, cooldown_seconds=600.0, min_verify_samples=3)
STEADY = Baseline(mean=100.0, stdev=0.0, samples=5)


@pytest.mark.parametrize(
    ("baseline", "observed", "direction", "keep"),
    [
        pytest.param(STEADY, [90.0, 92.0, 88.0], "lower_is_better", True, id="better-kept"),
        pytest.param(STEADY, [100.0, 100.0], "lower_is_better", True, id="equal-kept"),
        # 5 % of 100 is the band: 104 is within it.
        pytest.param(STEADY, [104.0, 104.0], "lower_is_better", True, id="within-tolerance"),
        pytest.param(STEADY, [110.0, 112.0], "lower_is_better", False, id="worse-rolled-back"),
        # A baseline that wobbles (stdev 10): 2 sigmas = 20 > 15 worse: noise, kept.
        pytest.param(
            Baseline(100.0, 10.0, 8), [115.0], "lower_is_better", True, id="noise-band-kept"
        ),
        pytest.param(
            Baseline(100.0, 10.0, 8), [125.0], "lower_is_better", False, id="beyond-noise"
        ),
        # Hit ratio 0.8 -> 0.7 is 0.1 worse, band 0.04.
        pytest.param(
            Baseline(0.8, 0.0, 5), [0.7], "higher_is_better", False, id="higher-is-better-worse"
        ),
        pytest.param(
            Baseline(0.8, 0.0, 5), [0.9], "higher_is_better", True, id="higher-is-better-better"
        ),
    ],
)
def test_verdict(
    baseline: Baseline, observed: list[float], direction: Direction, keep: bool
) -> None:
    assert judge(baseline, observed, direction, TuningPolicy()).keep is keep


def test_baseline_is_mean_and_sample_stdev() -> None:
    # Values 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample variance 32 / 7.
    assert baseline_of([2, 4, 4, 4, 5, 5, 7, 9]) == Baseline(5.0, (32 / 7) ** 0.5, 8)
    assert baseline_of([]) is None


LATENCY_DOWN = Proposal(
    "dataplane.max_concurrency", 64.0, 48.0, "latency_ms", "lower_is_better", "limiter"
)


def start(now: float = 0.0) -> KnobState:
    step = advance(
        KnobState("dataplane.max_concurrency"),
        now=now,
        current_value=64.0,
        policy=POLICY,
        proposal=LATENCY_DOWN,
        baseline=STEADY,
        version=7,
    )
    assert step.decision is not None
    assert step.decision.reason.code == "tune_proposed"
    assert step.publish == 48.0
    return step.state


def observe(state: KnobState, values: list[float], start_at: float = 10.0) -> KnobState:
    for i, value in enumerate(values):
        step = advance(
            state, now=start_at + 10.0 * i, current_value=48.0, policy=POLICY, observation=value
        )
        assert step.decision is None
        state = step.state
    return state


def test_a_proposal_starts_a_trial_with_its_baseline() -> None:
    state = start()
    assert state.phase == "verifying"
    assert state.trial is not None
    assert (state.trial.baseline, state.trial.version) == (STEADY, 7)


def test_a_change_that_makes_its_metric_worse_is_rolled_back_then_cools_down() -> None:
    state = observe(start(), [120.0, 118.0, 125.0])
    step = advance(state, now=60.0, current_value=48.0, policy=POLICY, observation=121.0)
    assert step.decision is not None
    assert step.decision.reason.code == "tune_rolled_back"
    assert (step.decision.from_value, step.decision.to_value, step.publish) == (48.0, 64.0, 64.0)
    assert step.decision.reason.inputs["baseline"] == 100.0
    assert step.decision.reason.inputs["observed"] == pytest.approx(121.0)
    assert step.state.phase == "cooldown"
    assert step.state.cooldown_until == 660.0


def test_a_change_that_helps_is_kept_and_nothing_is_republished() -> None:
    state = observe(start(), [80.0, 82.0, 79.0])
    step = advance(state, now=60.0, current_value=48.0, policy=POLICY, observation=81.0)
    assert step.decision is not None
    assert step.decision.reason.code == "tune_kept"
    assert step.publish is None
    assert step.state.phase == "idle"


def test_a_change_within_the_noise_is_kept() -> None:
    state = observe(start(), [103.0, 104.0, 102.0])
    step = advance(state, now=60.0, current_value=48.0, policy=POLICY, observation=104.0)
    assert step.decision is not None
    assert step.decision.reason.code == "tune_kept"


def test_only_one_change_per_knob_is_in_flight() -> None:
    state = start()
    other = Proposal(
        "dataplane.max_concurrency", 48.0, 30.0, "latency_ms", "lower_is_better", "again"
    )
    step = advance(
        state, now=10.0, current_value=48.0, policy=POLICY, proposal=other, baseline=STEADY
    )
    assert (step.decision, step.publish) == (None, None)
    assert step.state.trial == state.trial


@pytest.mark.parametrize(
    ("now", "accepted"),
    [
        pytest.param(659.0, False, id="during-cooldown-ignored"),
        pytest.param(660.0, True, id="after-cooldown-accepted"),
    ],
)
def test_cooldown_after_a_rollback_is_respected(now: float, accepted: bool) -> None:
    cooling = KnobState("dataplane.max_concurrency", "cooldown", None, cooldown_until=660.0)
    step = advance(
        cooling, now=now, current_value=64.0, policy=POLICY, proposal=LATENCY_DOWN, baseline=STEADY
    )
    assert (step.publish == 48.0) is accepted
    assert step.state.phase == ("verifying" if accepted else "cooldown")


def test_a_proposal_without_enough_baseline_waits() -> None:
    step = advance(
        KnobState("dataplane.max_concurrency"),
        now=0.0,
        current_value=64.0,
        policy=POLICY,
        proposal=LATENCY_DOWN,
        baseline=Baseline(100.0, 0.0, 2),
    )
    assert (step.state.phase, step.decision, step.publish) == ("idle", None, None)


def test_an_unverifiable_change_is_rolled_back_after_twice_the_window() -> None:
    state = start()
    waiting = advance(state, now=60.0, current_value=48.0, policy=POLICY)
    assert waiting.decision is None  # still inside twice the window
    step = advance(waiting.state, now=120.0, current_value=48.0, policy=POLICY)
    assert step.decision is not None
    assert step.decision.reason.code == "tune_unverified"
    assert step.publish == 64.0


def test_someone_elses_change_abandons_the_trial() -> None:
    step = advance(start(), now=10.0, current_value=100.0, policy=POLICY, observation=1.0)
    assert step.decision is not None
    assert step.decision.reason.code == "tune_abandoned"
    assert (step.publish, step.state.phase) == (None, "idle")


@pytest.mark.parametrize(
    ("hit_ratio_at", "current", "expected"),
    [
        # Doubling 64 -> 128 MiB gains 2 points (>= 1): grow.
        pytest.param({32: 0.70, 64: 0.78, 128: 0.80}, 64, 128, id="grow-when-doubling-pays"),
        # Doubling gains 0.5 point, halving loses 0.5 point: shrink.
        pytest.param({32: 0.775, 64: 0.78, 128: 0.785}, 64, 32, id="shrink-when-flat"),
        # Doubling gains 0.5 point but halving loses 8: at the knee, keep.
        pytest.param({32: 0.70, 64: 0.78, 128: 0.785}, 64, None, id="keep-at-the-knee"),
    ],
)
def test_cache_capacity_from_the_miss_ratio_curve(
    hit_ratio_at: dict[int, float], current: int, expected: int | None
) -> None:
    proposal = propose_cache_capacity(
        {size * MIB: ratio for size, ratio in hit_ratio_at.items()},
        current * MIB,
        min_bytes=16 * MIB,
        max_bytes=1024 * MIB,
    )
    assert (None if proposal is None else proposal.new) == (
        None if expected is None else expected * MIB
    )


@pytest.mark.parametrize(
    ("hit_ratio", "fill", "expected"),
    [
        pytest.param(0.6, 0.3, 60.0, id="low-hits-with-room-doubles"),
        pytest.param(0.6, 0.95, None, id="full-cache-evicts-ttl-not-the-cause"),
        pytest.param(0.95, 0.3, None, id="hit-target-met"),
    ],
)
def test_cache_ttl(hit_ratio: float, fill: float, expected: float | None) -> None:
    proposal = propose_cache_ttl(hit_ratio, fill, 30.0, 300.0)
    assert (None if proposal is None else proposal.new) == expected


@pytest.mark.parametrize(
    ("current", "limit", "expected"),
    [
        pytest.param(100, 95, None, id="under-10-percent-drift-ignored"),
        pytest.param(100, 80, 80.0, id="limiter-moved-down"),
        pytest.param(100, 120, 120.0, id="limiter-moved-up"),
    ],
)
def test_max_concurrency_follows_the_limiter(
    current: int, limit: int, expected: float | None
) -> None:
    proposal = propose_max_concurrency(current, limit)
    assert (None if proposal is None else proposal.new) == expected


@pytest.mark.parametrize(
    ("error_rate", "current", "expected"),
    [
        pytest.param(0.10, 20.0, 10.0, id="sick-upstream-halves"),
        pytest.param(0.10, 5.0, None, id="already-at-floor"),
        pytest.param(0.0005, 10.0, 20.0, id="healthy-restores"),
        pytest.param(0.01, 10.0, None, id="in-between-holds"),
        pytest.param(None, 10.0, None, id="no-traffic"),
    ],
)
def test_retry_budget(error_rate: float | None, current: float, expected: float | None) -> None:
    proposal = propose_retry_budget(error_rate, current)
    assert (None if proposal is None else proposal.new) == expected


@pytest.mark.parametrize(
    ("overhead", "findings", "flaps", "expected", "metric"),
    [
        pytest.param(0.01, 2, 3.0, 5.0, "finding_flaps", id="flapping-samples-faster"),
        pytest.param(0.2, 0, 0.0, 20.0, "agent_overhead_cores", id="costly-and-idle-slower"),
        pytest.param(0.2, 1, 0.0, None, None, id="costly-but-finding-keeps"),
        pytest.param(None, 0, 0.0, None, None, id="overhead-unknown-keeps"),
    ],
)
def test_collector_interval(
    overhead: float | None, findings: int, flaps: float, expected: float | None, metric: str | None
) -> None:
    proposal = propose_collector_interval(10.0, overhead, findings, flaps)
    assert (None if proposal is None else (proposal.new, proposal.metric)) == (
        None if expected is None else (expected, metric)
    )


def test_knob_values_are_read_and_written_through_the_wire_model() -> None:
    held = parse(TuningSet, json.dumps(tuning()))
    assert knob_value(held, "dataplane.max_concurrency") == 64
    assert knob_value(held, "collector_interval_seconds") == 5
    changed = with_values(
        held,
        {"dataplane.max_concurrency": 48.0, "cache.capacity_bytes": 2 * MIB + 0.4},
        version=2,
        generated_at=9.0,
    )
    assert (changed.version, changed.generated_at) == (2, 9.0)
    assert changed.dataplane.max_concurrency == 48
    assert changed.cache.capacity_bytes == 2 * MIB  # integer knobs are rounded
    assert changed.dataplane.retry_budget_percent == held.dataplane.retry_budget_percent
