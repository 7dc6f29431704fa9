"""HPA normalisation: from a raw recommendation to the replica count actually set.

A port of ``pkg/controller/podautoscaler/horizontal.go``: ``normalizeDesiredReplicas``
(no ``behavior``: max-stabilisation over the downscale window, then ``max(2x, 4)`` and
min/max clamping) and ``normalizeDesiredReplicasWithBehaviors`` (up/down stabilisation
windows, then per-policy rate limits over recorded scale events). The controller keeps
recommendations and scale events in memory; here they travel in ``ScalingHistory`` so the
decision stays a pure function of its inputs and ``now``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.scaling_policy import HPAScalingRules, ScalingPolicy

SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
_MIN_INT32 = -(2**31)
_MAX_INT32 = 2**31 - 1


@dataclass(frozen=True, slots=True)
class TimestampedRecommendation:
    replicas: int
    time: float  # unix seconds


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    change: int  # absolute number of replicas added (or removed)
    time: float


@dataclass(frozen=True, slots=True)
class ScalingHistory:
    recommendations: tuple[TimestampedRecommendation, ...] = ()
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Normalized:
    replicas: int
    reason: str  # ScalingLimited / AbleToScale reason of the step that decided
    message: str
    history: ScalingHistory  # with this raw recommendation stored, outdated entries dropped


@dataclass(frozen=True, slots=True)
class _Limit:
    replicas: int
    reason: str
    message: str


_WITHIN_RANGE = _Limit(0, "DesiredWithinRange", "the desired count is within the acceptable range")


def calculate_scale_up_limit(current_replicas: int) -> int:
    """``calculateScaleUpLimit``: without a behavior, at most double (or 4) per step."""
    return int(max(SCALE_UP_LIMIT_FACTOR * current_replicas, SCALE_UP_LIMIT_MINIMUM))


def convert_desired_replicas_with_rules(
    current_replicas: int, desired_replicas: int, min_replicas: int, max_replicas: int
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithRules``: the legacy clamp, with its condition reason."""
    scale_up_limit = calculate_scale_up_limit(current_replicas)
    if max_replicas > scale_up_limit:
        maximum = scale_up_limit
        reason = "ScaleUpLimit"
        message = "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum = max_replicas
        reason = "TooManyReplicas"
        message = "the desired replica count is more than the maximum replica count"
    if desired_replicas < min_replicas:
        return (
            min_replicas,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )
    if desired_replicas > maximum:
        return maximum, reason, message
    return desired_replicas, _WITHIN_RANGE.reason, _WITHIN_RANGE.message


def replicas_change_per_period(
    period_seconds: int, events: tuple[ScaleEvent, ...], now: float
) -> int:
    """``getReplicasChangePerPeriod``: events strictly newer than ``now - period``."""
    cutoff = now - period_seconds
    return sum(event.change for event in events if event.time > cutoff)


def calculate_scale_up_limit_with_rules(
    current_replicas: int, history: ScalingHistory, rules: HPAScalingRules, now: float
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the highest count the up policies allow."""
    if rules.select_policy == "Disabled":
        return current_replicas
    use_min = rules.select_policy == "Min"
    result = _MAX_INT32 if use_min else _MIN_INT32
    for policy in rules.policies or ():
        added = replicas_change_per_period(policy.period_seconds, history.scale_up_events, now)
        removed = replicas_change_per_period(policy.period_seconds, history.scale_down_events, now)
        period_start = current_replicas - added + removed
        if policy.type == "Pods":
            proposed = period_start + policy.value
        else:  # rounded up so that a small Percent still adds a pod
            proposed = math.ceil(period_start * (1 + policy.value / 100))
        result = min(result, proposed) if use_min else max(result, proposed)
    return result


def calculate_scale_down_limit_with_rules(
    current_replicas: int, history: ScalingHistory, rules: HPAScalingRules, now: float
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the lowest count the down policies allow."""
    if rules.select_policy == "Disabled":
        return current_replicas
    use_min = rules.select_policy == "Min"
    result = _MIN_INT32 if use_min else _MAX_INT32
    for policy in rules.policies or ():
        added = replicas_change_per_period(policy.period_seconds, history.scale_up_events, now)
        removed = replicas_change_per_period(policy.period_seconds, history.scale_down_events, now)
        period_start = current_replicas - added + removed
        if policy.type == "Pods":
            proposed = period_start - policy.value
        else:  # truncated toward zero, as Go's int32(float64)
            proposed = int(period_start * (1 - policy.value / 100))
        result = max(result, proposed) if use_min else min(result, proposed)
    return result


def _rate_limited(
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    up: HPAScalingRules,
    down: HPAScalingRules,
    history: ScalingHistory,
    now: float,
) -> _Limit:
    """``convertDesiredReplicasWithBehaviorRate``: an exhausted budget holds, never reverses."""
    if desired > current:
        scale_up_limit = max(
            calculate_scale_up_limit_with_rules(current, history, up, now), current
        )
        if max_replicas > scale_up_limit:
            limit = _Limit(
                scale_up_limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        else:
            limit = _Limit(
                max_replicas,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        if desired > limit.replicas:
            return limit
    elif desired < current:
        scale_down_limit = min(
            calculate_scale_down_limit_with_rules(current, history, down, now), current
        )
        if min_replicas < scale_down_limit:
            limit = _Limit(
                scale_down_limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        else:
            limit = _Limit(
                min_replicas,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        if desired < limit.replicas:
            return limit
    return _Limit(desired, _WITHIN_RANGE.reason, _WITHIN_RANGE.message)


def _longest_period(rules: HPAScalingRules | None) -> int:
    return (
        max((policy.period_seconds for policy in (rules.policies or ())), default=0) if rules else 0
    )


def _stabilize_legacy(
    raw_replicas: int, history: ScalingHistory, now: float, window: float
) -> tuple[int, ScalingHistory]:
    """``stabilizeRecommendation``: the highest recommendation of the downscale window."""
    cutoff = now - window
    kept = tuple(rec for rec in history.recommendations if rec.time >= cutoff)
    stabilized = max((rec.replicas for rec in kept), default=raw_replicas)
    stabilized = max(stabilized, raw_replicas)
    recommendations = (*kept, TimestampedRecommendation(raw_replicas, now))
    return stabilized, ScalingHistory(
        recommendations, history.scale_up_events, history.scale_down_events
    )


def _stabilize_with_behavior(
    current: int,
    raw_replicas: int,
    history: ScalingHistory,
    now: float,
    up_window: float,
    down_window: float,
) -> tuple[int, ScalingHistory]:
    """``stabilizeRecommendationWithBehaviors``: a scale-up needs the whole up window above
    current, a scale-down the whole down window below it; otherwise current holds."""
    up_cutoff = now - up_window
    down_cutoff = now - down_window
    up_recommendation = raw_replicas
    down_recommendation = raw_replicas
    kept: list[TimestampedRecommendation] = []
    for rec in history.recommendations:
        if rec.time > up_cutoff:
            up_recommendation = min(rec.replicas, up_recommendation)
        if rec.time > down_cutoff:
            down_recommendation = max(rec.replicas, down_recommendation)
        if not (rec.time < up_cutoff and rec.time < down_cutoff):
            kept.append(rec)  # still inside one of the windows
    stabilized = min(max(current, up_recommendation), down_recommendation)
    kept.append(TimestampedRecommendation(raw_replicas, now))
    return stabilized, ScalingHistory(
        tuple(kept), history.scale_up_events, history.scale_down_events
    )


def normalize_replicas(
    policy: ScalingPolicy,
    current_replicas: int,
    raw_replicas: int,
    history: ScalingHistory,
    now: float,
    *,
    downscale_stabilization_seconds: float = 300.0,
) -> Normalized:
    """Stabilise, rate-limit and bound a raw recommendation the way the HPA controller does."""
    min_replicas = policy.min_replicas
    max_replicas = policy.max_replicas
    behavior = policy.behavior
    if behavior is None:
        stabilized, stored = _stabilize_legacy(
            raw_replicas, history, now, downscale_stabilization_seconds
        )
        replicas, reason, message = convert_desired_replicas_with_rules(
            current_replicas, stabilized, min_replicas, max_replicas
        )
        if replicas == stabilized and stabilized != raw_replicas:
            reason = "ScaleDownStabilized"
            message = (
                "recent recommendations were higher than current one, applying the highest "
                "recent recommendation"
            )
        return Normalized(replicas, reason, message, stored)

    up = behavior.scale_up
    down = behavior.scale_down
    assert up is not None
    assert down is not None
    up_window = float(up.stabilization_window_seconds or 0)
    down_window = (
        downscale_stabilization_seconds
        if down.stabilization_window_seconds is None
        else float(down.stabilization_window_seconds)
    )
    stabilized, stored = _stabilize_with_behavior(
        current_replicas, raw_replicas, history, now, up_window, down_window
    )
    limit = _rate_limited(
        current_replicas, stabilized, min_replicas, max_replicas, up, down, stored, now
    )
    if limit.replicas == stabilized and stabilized != raw_replicas:
        if raw_replicas >= current_replicas:
            return Normalized(
                stabilized,
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest "
                "recent recommendation",
                stored,
            )
        return Normalized(
            stabilized,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent "
            "recommendation",
            stored,
        )
    return Normalized(limit.replicas, limit.reason, limit.message, stored)


def record_scale_event(
    policy: ScalingPolicy,
    history: ScalingHistory,
    previous_replicas: int,
    new_replicas: int,
    now: float,
) -> ScalingHistory:
    """``storeScaleEvent``: remember a rescale for the rate limits (only with a behavior);
    events older than the direction's longest policy period are dropped."""
    if policy.behavior is None or new_replicas == previous_replicas:
        return history
    if new_replicas > previous_replicas:
        cutoff = now - _longest_period(policy.behavior.scale_up)
        events = tuple(event for event in history.scale_up_events if event.time >= cutoff)
        return ScalingHistory(
            history.recommendations,
            (*events, ScaleEvent(new_replicas - previous_replicas, now)),
            history.scale_down_events,
        )
    cutoff = now - _longest_period(policy.behavior.scale_down)
    events = tuple(event for event in history.scale_down_events if event.time >= cutoff)
    return ScalingHistory(
        history.recommendations,
        history.scale_up_events,
        (*events, ScaleEvent(previous_replicas - new_replicas, now)),
    )
