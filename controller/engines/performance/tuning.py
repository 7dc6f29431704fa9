"""Automatic tuning with verify and rollback: one knob of the TuningSet at a time, as a pure
state machine.

A change is a hypothesis ("a bigger L1 raises the hit ratio"), so it is tested, not trusted:

1. ``idle`` + a proposal (knob, old -> new, the metric it should move and which way is
   better) + a baseline of that metric measured over the window before -> the change is
   applied (``tune_proposed``) and the knob is ``verifying``.
2. ``verifying``: the metric is observed for ``verify_seconds``. Then the observed mean is
   compared with the baseline: worse by more than the allowed band -> rolled back to the old
   value (``tune_rolled_back``) and the knob cools down; better, equal, or worse only within
   the band (noise) -> kept (``tune_kept``). The band is the larger of ``tolerance`` (5 % of
   the baseline) and ``noise_sigmas`` standard deviations of the baseline samples, so a
   metric that always wobbles by 10 % does not roll back every change.
   No observations in twice the window -> rolled back (``tune_unverified``): an unverified
   change is not kept. Someone else changing the knob meanwhile abandons the trial
   (``tune_abandoned``): their value stands.
3. ``cooldown`` for ``cooldown_seconds`` after a rollback: no proposal for that knob, so a
   proposer that keeps asking for the same bad change cannot flap the fleet.

Only one change per knob is ever in flight (a proposal while ``verifying`` or ``cooldown``
is ignored). Every transition is a ``Decision`` of kind ``tune``, with the baseline and the
observation in its inputs. Proposers are separate pure functions, one per knob.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from shared.wire import Actuation, Decision, DecisionReason, TuningSet

__all__ = [
    "KNOBS",
    "Baseline",
    "Direction",
    "Knob",
    "KnobState",
    "KnobStep",
    "Proposal",
    "Trial",
    "TuningPolicy",
    "Verdict",
    "advance",
    "baseline_of",
    "judge",
    "knob_value",
    "propose_cache_capacity",
    "propose_cache_ttl",
    "propose_collector_interval",
    "propose_max_concurrency",
    "propose_retry_budget",
    "tune_decision",
    "with_values",
]

Knob = Literal[
    "cache.capacity_bytes",
    "cache.default_ttl_seconds",
    "dataplane.max_concurrency",
    "dataplane.retry_budget_percent",
    "collector_interval_seconds",
]
KNOBS: tuple[Knob, ...] = (
    "cache.capacity_bytes",
    "cache.default_ttl_seconds",
    "dataplane.max_concurrency",
    "dataplane.retry_budget_percent",
    "collector_interval_seconds",
)
_INTEGER_KNOBS = frozenset({"cache.capacity_bytes", "dataplane.max_concurrency"})
Direction = Literal["lower_is_better", "higher_is_better"]
Phase = Literal["idle", "verifying", "cooldown"]

# TuningSet bounds (shared/wire.py), so a proposal can always be published.
CACHE_MIN_BYTES = 1024
CACHE_MAX_BYTES = 64 * 2**30
MAX_CONCURRENCY = 100_000


# --- the TuningSet's knobs ---------------------------------------------------------------------


def knob_value(tuning: TuningSet, knob: Knob) -> float:
    """The knob's value in a TuningSet."""
    section, _, name = knob.partition(".")
    holder: Any = getattr(tuning, section) if name else tuning
    return float(getattr(holder, name or section))


def with_values(
    tuning: TuningSet, values: Mapping[Knob, float], *, version: int, generated_at: float
) -> TuningSet:
    """A new TuningSet: ``tuning`` with ``values`` set, validated as the agents will."""
    body = tuning.model_dump()
    for knob, value in values.items():
        section, _, name = knob.partition(".")
        number: float | int = round(value) if knob in _INTEGER_KNOBS else float(value)
        if name:
            body[section][name] = number
        else:
            body[section] = number
    body["version"] = version
    body["generated_at"] = generated_at
    return TuningSet.model_validate(body)


# --- baselines and verdicts --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    mean: float
    stdev: float
    samples: int


def baseline_of(values: Sequence[float]) -> Baseline | None:
    """Mean and sample standard deviation; None without a value."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    stdev = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return Baseline(statistics.fmean(finite), stdev, len(finite))


@dataclass(frozen=True, slots=True)
class TuningPolicy:
    verify_seconds: float = 300.0
    cooldown_seconds: float = 1800.0
    tolerance: float = 0.05  # of the baseline mean
    noise_sigmas: float = 2.0  # baseline standard deviations
    min_baseline_samples: int = 3
    min_verify_samples: int = 3

    def __post_init__(self) -> None:
        if self.verify_seconds <= 0 or self.cooldown_seconds < 0:
            raise ValueError("verify_seconds must be > 0 and cooldown_seconds >= 0")
        if self.tolerance < 0 or self.noise_sigmas < 0:
            raise ValueError("tolerance and noise_sigmas must be >= 0")
        if self.min_baseline_samples < 1 or self.min_verify_samples < 1:
            raise ValueError("sample minimums must be >= 1")


@dataclass(frozen=True, slots=True)
class Verdict:
    keep: bool
    observed: float
    worse_by: float  # positive: worse than the baseline, in the metric's unit
    band: float  # how much worse still counts as noise


def judge(
    baseline: Baseline, observed: Sequence[float], direction: Direction, policy: TuningPolicy
) -> Verdict:
    """Keep unless the observed mean is worse than the baseline by more than the band."""
    mean = statistics.fmean(observed)
    worse_by = mean - baseline.mean if direction == "lower_is_better" else baseline.mean - mean
    band = max(policy.tolerance * abs(baseline.mean), policy.noise_sigmas * baseline.stdev)
    return Verdict(keep=worse_by <= band, observed=mean, worse_by=worse_by, band=band)


# --- the state machine -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proposal:
    knob: Knob
    old: float
    new: float
    metric: str
    direction: Direction
    why: str


@dataclass(frozen=True, slots=True)
class Trial:
    proposal: Proposal
    baseline: Baseline
    applied_at: float
    version: int = 0  # the TuningSet version that carried the change
    observed: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class KnobState:
    knob: Knob
    phase: Phase = "idle"
    trial: Trial | None = None
    cooldown_until: float = 0.0

    @property
    def accepts_proposal(self) -> bool:
        return self.phase == "idle"


@dataclass(frozen=True, slots=True)
class KnobStep:
    """The knob's next state, the decision of the transition (if any), and the value to
    publish (if the knob changes)."""

    state: KnobState
    decision: Decision | None = None
    publish: float | None = None


def advance(
    state: KnobState,
    *,
    now: float,
    current_value: float,
    policy: TuningPolicy,
    observation: float | None = None,
    proposal: Proposal | None = None,
    baseline: Baseline | None = None,
    version: int = 0,
) -> KnobStep:
    """One pass for one knob.

    ``current_value``: the knob in the held TuningSet; ``observation``: the trial metric this
    pass, None when unknown or not yet measured under the change; ``proposal`` and
    ``baseline``: a change to start (only taken when idle, and with a baseline of at least
    ``min_baseline_samples``); ``version``: the TuningSet version that will carry it.
    """
    if state.phase == "cooldown":
        if now < state.cooldown_until:
            return KnobStep(state)
        state = KnobState(state.knob)
    if state.phase == "verifying":
        return _verify(state, now, current_value, observation, policy)
    if (
        proposal is None
        or proposal.knob != state.knob
        or proposal.new == current_value
        or baseline is None
        or baseline.samples < policy.min_baseline_samples
    ):
        return KnobStep(state)
    proposal = replace(proposal, old=current_value)
    trial = Trial(proposal, baseline, applied_at=now, version=version)
    decision = tune_decision(
        proposal,
        "tune_proposed",
        proposal.old,
        proposal.new,
        f"{proposal.knob} {_fmt(proposal.old)} -> {_fmt(proposal.new)}: {proposal.why}; "
        f"verifying {proposal.metric} ({_direction(proposal.direction)}) against its baseline "
        f"{_fmt(baseline.mean)} for {policy.verify_seconds:g}s",
        _inputs(trial, None, policy),
        now,
    )
    return KnobStep(KnobState(state.knob, "verifying", trial), decision, proposal.new)


def _verify(
    state: KnobState,
    now: float,
    current_value: float,
    observation: float | None,
    policy: TuningPolicy,
) -> KnobStep:
    trial = state.trial
    assert trial is not None
    proposal = trial.proposal
    if current_value != proposal.new:
        decision = tune_decision(
            proposal,
            "tune_abandoned",
            proposal.new,
            current_value,
            f"{proposal.knob} was set to {_fmt(current_value)} by someone else during the "
            "verification; that value stands",
            _inputs(trial, None, policy),
            now,
            pending=False,
        )
        return KnobStep(KnobState(state.knob), decision)
    if observation is not None and math.isfinite(observation):
        trial = replace(trial, observed=(*trial.observed, observation))
        state = replace(state, trial=trial)
    elapsed = now - trial.applied_at
    if elapsed < policy.verify_seconds:
        return KnobStep(state)
    if len(trial.observed) < policy.min_verify_samples:
        if elapsed < 2 * policy.verify_seconds:
            return KnobStep(state)
        decision = tune_decision(
            proposal,
            "tune_unverified",
            proposal.new,
            proposal.old,
            f"{proposal.knob} back to {_fmt(proposal.old)}: only {len(trial.observed)} "
            f"observations of {proposal.metric} in {elapsed:g}s, an unverified change is "
            "not kept",
            _inputs(trial, None, policy),
            now,
        )
        return KnobStep(_cooling(state, now, policy), decision, proposal.old)
    verdict = judge(trial.baseline, trial.observed, proposal.direction, policy)
    if verdict.keep:
        decision = tune_decision(
            proposal,
            "tune_kept",
            proposal.old,
            proposal.new,
            f"{proposal.knob} stays {_fmt(proposal.new)}: {proposal.metric} "
            f"{_fmt(trial.baseline.mean)} -> {_fmt(verdict.observed)} "
            f"({_direction(proposal.direction)}; allowed worse by {_fmt(verdict.band)})",
            _inputs(trial, verdict, policy),
            now,
            pending=False,
        )
        return KnobStep(KnobState(state.knob), decision)
    decision = tune_decision(
        proposal,
        "tune_rolled_back",
        proposal.new,
        proposal.old,
        f"{proposal.knob} back to {_fmt(proposal.old)}: {proposal.metric} got worse, "
        f"{_fmt(trial.baseline.mean)} -> {_fmt(verdict.observed)} "
        f"({_direction(proposal.direction)}; worse by {_fmt(verdict.worse_by)} > allowed "
        f"{_fmt(verdict.band)}); cooling down {policy.cooldown_seconds:g}s",
        _inputs(trial, verdict, policy),
        now,
    )
    return KnobStep(_cooling(state, now, policy), decision, proposal.old)


def _cooling(state: KnobState, now: float, policy: TuningPolicy) -> KnobState:
    return KnobState(state.knob, "cooldown", None, now + policy.cooldown_seconds)


def _inputs(trial: Trial, verdict: Verdict | None, policy: TuningPolicy) -> dict[str, float]:
    inputs = {
        "baseline": trial.baseline.mean,
        "baseline_stdev": trial.baseline.stdev,
        "baseline_samples": float(trial.baseline.samples),
        "tolerance": policy.tolerance,
    }
    if trial.observed:
        inputs["observed"] = statistics.fmean(trial.observed)
        inputs["observed_samples"] = float(len(trial.observed))
    if verdict is not None:
        inputs["worse_by"] = verdict.worse_by
        inputs["band"] = verdict.band
    return inputs


def tune_decision(
    proposal: Proposal,
    code: str,
    from_value: float,
    to_value: float,
    message: str,
    inputs: dict[str, float],
    now: float,
    *,
    pending: bool = True,
) -> Decision:
    """A ``tune`` Decision; ``pending`` when a TuningSet must still be published for it."""
    return Decision(
        id=f"tune-{proposal.knob}-{code}-{round(now * 1000)}"[:64],
        kind="tune",
        target=f"tuning/{proposal.knob}",
        from_value=from_value,
        to_value=to_value,
        reason=DecisionReason(
            code=code,
            message=message[:1024],
            inputs=inputs,
            policy=f"metric {proposal.metric}, {_direction(proposal.direction)}",
        ),
        decided_at=now,
        decide_seconds=0.0,
        actuation=Actuation(state="pending" if pending else "skipped"),
    )


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _direction(direction: Direction) -> str:
    return direction.replace("_", " ")


# --- proposers: one pure function per knob -------------------------------------------------------


def propose_cache_capacity(
    hit_ratio_at: Mapping[int, float],
    current_bytes: int,
    *,
    min_bytes: int = 16 * 2**20,
    max_bytes: int = 4 * 2**30,
    min_gain_per_doubling: float = 0.01,
) -> Proposal | None:
    """Grow the L1 to twice its size when the miss-ratio curve says a doubling buys at least
    1 point of hit ratio; else halve it when halving costs less than that; else keep.

    ``hit_ratio_at`` maps capacities (including ``current_bytes``, twice and half of it) to
    the hit ratio the fleet's merged curve predicts there.
    """
    here = hit_ratio_at.get(current_bytes)
    double, half = min(current_bytes * 2, max_bytes), max(current_bytes // 2, min_bytes)
    if here is None:
        return None
    grow = hit_ratio_at.get(double)
    if double > current_bytes and grow is not None and grow - here >= min_gain_per_doubling:
        return Proposal(
            "cache.capacity_bytes",
            float(current_bytes),
            float(double),
            "cache_hit_ratio",
            "higher_is_better",
            f"the miss-ratio curve gives {100 * (grow - here):.1f} points of hit ratio for "
            "the doubling",
        )
    shrink = hit_ratio_at.get(half)
    if half < current_bytes and shrink is not None and here - shrink < min_gain_per_doubling:
        return Proposal(
            "cache.capacity_bytes",
            float(current_bytes),
            float(half),
            "cache_hit_ratio",
            "higher_is_better",
            f"the miss-ratio curve loses only {100 * (here - shrink):.1f} points of hit ratio "
            "at half the size",
        )
    return None


def propose_cache_ttl(
    hit_ratio: float | None,
    fill_ratio: float | None,
    current_ttl_seconds: float,
    max_ttl_seconds: float,
    *,
    target_hit_ratio: float = 0.9,
    max_fill: float = 0.8,
) -> Proposal | None:
    """Double the default TTL (up to the max TTL) when the hit ratio is under target while
    the L1 has room: misses then come from entries expiring, not from eviction. TTLs are
    never shortened automatically; freshness is the application's call."""
    if hit_ratio is None or fill_ratio is None:
        return None
    if hit_ratio >= target_hit_ratio or fill_ratio >= max_fill:
        return None
    longer = min(current_ttl_seconds * 2, max_ttl_seconds)
    if longer <= current_ttl_seconds:
        return None
    return Proposal(
        "cache.default_ttl_seconds",
        current_ttl_seconds,
        longer,
        "cache_hit_ratio",
        "higher_is_better",
        f"hit ratio {100 * hit_ratio:.1f} % under {100 * target_hit_ratio:.0f} % with the "
        f"L1 {100 * fill_ratio:.0f} % full: entries expire before they are read again",
    )


def propose_max_concurrency(
    current: int, limit: int, *, min_change: float = 0.1, algorithm: str = "gradient2"
) -> Proposal | None:
    """Follow the adaptive limiter once it moved at least ``min_change`` (10 %) away from
    the limit in force, so the fleet is not re-pushed for every unit of drift."""
    limit = max(1, min(limit, MAX_CONCURRENCY))
    if abs(limit - current) < max(1.0, min_change * current):
        return None
    return Proposal(
        "dataplane.max_concurrency",
        float(current),
        float(limit),
        "latency_ms",
        "lower_is_better",
        f"the {algorithm} limiter settled at {limit} requests in flight",
    )


def propose_retry_budget(
    error_rate: float | None,
    current_percent: float,
    *,
    default_percent: float = 20.0,
    floor_percent: float = 5.0,
    sick_error_rate: float = 0.05,
    healthy_error_rate: float = 0.001,
) -> Proposal | None:
    """Halve the retry budget (down to 5 %) while upstreams fail more than 5 % of tries, so
    retries cannot pile onto a sick service; restore it (doubling, up to the default) once
    they fail less than 0.1 %."""
    if error_rate is None:
        return None
    if error_rate > sick_error_rate and current_percent > floor_percent:
        new = max(floor_percent, current_percent / 2)
        why = f"upstream tries fail at {100 * error_rate:.1f} %: fewer retries on a sick service"
    elif error_rate < healthy_error_rate and current_percent < default_percent:
        new = min(default_percent, max(current_percent * 2, floor_percent))
        why = f"upstream tries fail at {100 * error_rate:.2f} %: the budget can come back"
    else:
        return None
    return Proposal(
        "dataplane.retry_budget_percent",
        current_percent,
        new,
        "error_rate",
        "lower_is_better",
        why,
    )


def propose_collector_interval(
    current_seconds: float,
    overhead_cores: float | None,
    open_findings: int,
    flaps: float,
    *,
    overhead_budget_cores: float = 0.05,
    flap_threshold: float = 2.0,
    min_seconds: float = 1.0,
    max_seconds: float = 60.0,
) -> Proposal | None:
    """Sample twice as often while findings flap (open and close between passes: the
    interval is too coarse to see the episode); sample half as often while the agents cost
    more than their budget and nothing is found."""
    if flaps >= flap_threshold and current_seconds > min_seconds:
        return Proposal(
            "collector_interval_seconds",
            current_seconds,
            max(min_seconds, current_seconds / 2),
            "finding_flaps",
            "lower_is_better",
            f"{flaps:g} findings opened or closed per pass: sample more often",
        )
    if (
        overhead_cores is not None
        and overhead_cores > overhead_budget_cores
        and open_findings == 0
        and current_seconds < max_seconds
    ):
        return Proposal(
            "collector_interval_seconds",
            current_seconds,
            min(max_seconds, current_seconds * 2),
            "agent_overhead_cores",
            "lower_is_better",
            f"agents use {overhead_cores:.3f} cores (budget {overhead_budget_cores:g}) and "
            "find nothing: sample less often",
        )
    return None
