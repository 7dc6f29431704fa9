"""Normalisation against horizontal_test.go: TestNormalizeDesiredReplicas(WithBehavior),
TestScalingWithRules, TestConvertDesiredReplicasWithRules, TestStoreScaleEvents and the
TestCalculate*LimitWith* cases, each id named after the Go test or its case name."""

from __future__ import annotations

from typing import Any

import pytest

from controller.engines.scaling.normalize import (
    ScaleEvent,
    ScalingHistory,
    TimestampedRecommendation,
    calculate_scale_down_limit_with_rules,
    calculate_scale_up_limit_with_rules,
    normalize_replicas,
    record_scale_event,
    replicas_change_per_period,
)
from shared.scaling_policy import HPAScalingRules, ScalingPolicy, parse_policy

NOW = 1_700_000_000.0
EXTERNAL = {
    "type": "External",
    "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "1"}},
}


def policy(
    min_replicas: int = 1,
    max_replicas: int = 1000,
    behavior: dict[str, Any] | None = None,
) -> ScalingPolicy:
    spec: dict[str, Any] = {"minReplicas": min_replicas, "maxReplicas": max_replicas}
    if min_replicas == 0:
        spec["metrics"] = [EXTERNAL]  # scale-to-zero needs an Object or External metric
    if behavior is not None:
        spec["behavior"] = behavior
    return parse_policy(spec)


def rules(
    pods: int, pods_period: int, percent: int, percent_period: int, window: int
) -> dict[str, Any]:
    """generateScalingRules: a Pods and/or Percent policy, selectPolicy Max."""
    policies = []
    if pods:
        policies.append({"type": "Pods", "value": pods, "periodSeconds": pods_period})
    if percent:
        policies.append({"type": "Percent", "value": percent, "periodSeconds": percent_period})
    return {"stabilizationWindowSeconds": window, "selectPolicy": "Max", "policies": policies}


def uniform_events(changes: list[int], period: int) -> tuple[ScaleEvent, ...]:
    """generateEventsUniformDistribution: event i at the centre of the i-th of n segments of
    the last ``period`` seconds, oldest first (whole seconds, as Go truncates the Duration)."""
    segment = period / len(changes)
    return tuple(
        ScaleEvent(change, NOW - int(period - segment * (index + 1) + segment / 2))
        for index, change in enumerate(changes)
    )


def recs(*pairs: tuple[int, float]) -> tuple[TimestampedRecommendation, ...]:
    return tuple(TimestampedRecommendation(replicas, NOW - ago) for replicas, ago in pairs)


# --- legacy path (no behavior) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("recommendations", "raw", "expected"),
    [
        pytest.param((), 5, 5, id="empty-log"),
        pytest.param(recs((4, 120), (5, 60)), 3, 5, id="stabilize"),
        pytest.param(recs((1, 120), (2, 60)), 3, 3, id="no-stabilize"),
        pytest.param(recs((10, 600), (9, 540)), 3, 3, id="no-stabilize-old-recommendations"),
        pytest.param(
            recs((10, 600), (4, 60), (5, 120), (9, 540)), 3, 5, id="stabilize-old-recommendations"
        ),
    ],
)
def test_normalize_desired_replicas_legacy_stabilization(
    recommendations: tuple[TimestampedRecommendation, ...], raw: int, expected: int
) -> None:
    """TestNormalizeDesiredReplicas: the highest recommendation of the last 5 minutes."""
    result = normalize_replicas(policy(), 5, raw, ScalingHistory(recommendations), NOW)
    assert result.replicas == expected
    assert result.reason == ("ScaleDownStabilized" if expected != raw else "DesiredWithinRange")
    # The raw recommendation is stored; entries outside the window are gone.
    assert result.history.recommendations[-1] == TimestampedRecommendation(raw, NOW)
    assert all(rec.time >= NOW - 300 for rec in result.history.recommendations)


@pytest.mark.parametrize(
    ("current", "desired", "min_replicas", "max_replicas", "expected", "reason"),
    [
        pytest.param(
            5, 7, 3, 8, 7, "DesiredWithinRange", id="prenormalized-desired-replicas-within-range"
        ),
        pytest.param(
            3, 1, 2, 8, 2, "TooFewReplicas", id="prenormalized-desired-replicas-below-minReplicas"
        ),
        pytest.param(
            1,
            0,
            0,
            10,
            0,
            "DesiredWithinRange",
            id="prenormalized-desired-zeroed-replicas-within-range",
        ),
        pytest.param(
            20,
            1000,
            1,
            10,
            10,
            "TooManyReplicas",
            id="maxReplicas-is-the-limit-because-maxReplicas-below-scaleUpLimit",
        ),
        # calculateScaleUpLimit(3) = max(2 x 3, 4) = 6
        pytest.param(
            3,
            1000,
            1,
            2000,
            6,
            "ScaleUpLimit",
            id="scaleUpLimit-is-the-limit-because-scaleUpLimit-below-maxReplicas",
        ),
    ],
)
def test_convert_desired_replicas_with_rules(
    current: int, desired: int, min_replicas: int, max_replicas: int, expected: int, reason: str
) -> None:
    """TestConvertDesiredReplicasWithRules, through the legacy normalisation (empty history)."""
    result = normalize_replicas(
        policy(min_replicas, max_replicas), current, desired, ScalingHistory(), NOW
    )
    assert (result.replicas, result.reason) == (expected, reason)


def test_legacy_window_follows_the_controller_flag() -> None:
    """--horizontal-pod-autoscaler-downscale-stabilization: a 10-minute-old 9 counts under a
    15-minute window, not under the 5-minute default."""
    history = ScalingHistory(recs((9, 600)))
    assert normalize_replicas(policy(), 5, 3, history, NOW).replicas == 3
    held = normalize_replicas(policy(), 5, 3, history, NOW, downscale_stabilization_seconds=900)
    assert (held.replicas, held.reason) == (9, "ScaleDownStabilized")


# --- behavior path: stabilisation ------------------------------------------------------------

GENEROUS = [{"type": "Pods", "value": 1000, "periodSeconds": 1}]


@pytest.mark.parametrize(
    ("recommendations", "current", "raw", "expected", "up_window", "down_window"),
    [
        pytest.param((), 100, 5, 5, 0, 0, id="empty-recommendations-for-scaling-down"),
        pytest.param(
            recs((4, 120), (5, 60)), 100, 3, 5, 0, 180, id="simple-scale-down-stabilization"
        ),
        pytest.param(recs((4, 120), (5, 60)), 1, 7, 4, 300, 0, id="simple-scale-up-stabilization"),
        pytest.param(recs((1, 120), (2, 60)), 100, 3, 3, 300, 0, id="no-scale-down-stabilization"),
        pytest.param(recs((4, 120), (5, 60)), 1, 3, 3, 0, 300, id="no-scale-up-stabilization"),
        pytest.param(
            recs((10, 600), (9, 540)),
            100,
            3,
            3,
            0,
            0,
            id="no-scale-down-stabilization-reuse-recommendation-element",
        ),
        pytest.param(
            recs((10, 600), (9, 540)),
            1,
            100,
            100,
            0,
            0,
            id="no-scale-up-stabilization-reuse-recommendation-element",
        ),
        pytest.param(
            recs((10, 600), (4, 60), (5, 120), (9, 540)),
            100,
            3,
            5,
            0,
            180,
            id="scale-down-stabilization-reuse-one-of-obsolete-recommendation-element",
        ),
        pytest.param(
            recs((10, 6000), (6, 60), (5, 120), (9, 180)),
            1,
            100,
            5,
            300,
            0,
            id="scale-up-stabilization-reuse-one-of-obsolete-recommendation-element",
        ),
        pytest.param(
            recs((2, 6000), (3, 180)),
            2,
            1,
            2,
            300,
            300,
            id="scale-up-and-down-stabilization-do-not-scale-up-when-prenormalized-rec-goes-down",
        ),
        pytest.param(
            recs((2, 6000), (1, 180)),
            2,
            3,
            2,
            300,
            300,
            id="scale-up-and-down-stabilization-do-not-scale-down-when-prenormalized-rec-goes-up",
        ),
    ],
)
def test_normalize_desired_replicas_with_behavior_stabilization(
    recommendations: tuple[TimestampedRecommendation, ...],
    current: int,
    raw: int,
    expected: int,
    up_window: int,
    down_window: int,
) -> None:
    """TestNormalizeDesiredReplicasWithBehavior, with rate policies too generous to bind."""
    behavior = {
        "scaleUp": {"stabilizationWindowSeconds": up_window, "policies": GENEROUS},
        "scaleDown": {"stabilizationWindowSeconds": down_window, "policies": GENEROUS},
    }
    result = normalize_replicas(
        policy(behavior=behavior), current, raw, ScalingHistory(recommendations), NOW
    )
    assert result.replicas == expected
    if expected != raw:
        assert result.reason == ("ScaleUpStabilized" if raw >= current else "ScaleDownStabilized")
    longest = max(up_window, down_window)
    assert result.history.recommendations[-1] == TimestampedRecommendation(raw, NOW)
    assert all(rec.time >= NOW - longest for rec in result.history.recommendations)


def test_unset_scale_down_window_uses_the_controller_default() -> None:
    """maybeInitScaleDownStabilizationWindow: behavior without scaleDown window -> 300 s."""
    history = ScalingHistory(recs((8, 240)))
    with_behavior = policy(behavior={})
    assert normalize_replicas(with_behavior, 10, 2, history, NOW).replicas == 8
    shorter = normalize_replicas(
        with_behavior, 10, 2, history, NOW, downscale_stabilization_seconds=120
    )
    assert shorter.replicas == 2


# --- behavior path: rate limits (TestScalingWithRules) ----------------------------------------

SCALING_WITH_RULES = [
    # name, up events, down events, min, max, up rules, down rules, current, desired,
    # expected, reason
    (
        "prenormalized desired replicas within range",
        (),
        (),
        3,
        8,
        None,
        None,
        5,
        7,
        7,
        "DesiredWithinRange",
    ),
    (
        "prenormalized desired replicas < minReplicas",
        (),
        (),
        2,
        8,
        None,
        None,
        3,
        1,
        2,
        "TooFewReplicas",
    ),
    (
        "prenormalized desired replicas within range when minReplicas is 0",
        (),
        (),
        0,
        10,
        None,
        None,
        1,
        0,
        0,
        "DesiredWithinRange",
    ),
    (
        "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        (),
        (),
        1,
        10,
        None,
        None,
        20,
        1000,
        10,
        "TooManyReplicas",
    ),
    (
        "desired replica count is more than the maximum replica count",
        (),
        (),
        100,
        150,
        None,
        None,
        100,
        1000,
        150,
        "TooManyReplicas",
    ),
    (
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        (),
        (),
        1,
        2000,
        rules(0, 0, 1, 60, 0),
        None,
        3,
        1000,
        4,
        "ScaleUpLimit",
    ),
    (
        "scaleDownLimit is the limit because scaleDownLimit >"
        " minReplicas with user defined policies",
        (),
        (),
        3,
        2000,
        None,
        rules(20, 60, 0, 0, 0),
        1000,
        3,
        980,
        "ScaleDownLimit",
    ),
    ("scaleUp with default behavior", (), (), 1, 1000, None, None, 10, 50, 20, "ScaleUpLimit"),
    (
        "scaleUp with pods policy larger than percent policy",
        (),
        (),
        1,
        1000,
        rules(100, 60, 100, 60, 0),
        None,
        10,
        500,
        110,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy larger than pods policy",
        (),
        (),
        1,
        1000,
        rules(2, 60, 100, 60, 0),
        None,
        10,
        500,
        20,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large pod policy",
        (),
        (),
        1,
        1000,
        rules(100, 60, 0, 0, 0),
        None,
        10,
        50,
        50,
        "DesiredWithinRange",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large percent policy",
        (),
        (),
        1,
        1000,
        rules(10000, 60, 0, 0, 0),
        None,
        10,
        50,
        50,
        "DesiredWithinRange",
    ),
    (
        "scaleUp with pod policy limitation",
        (),
        (),
        1,
        1000,
        rules(30, 60, 0, 0, 0),
        None,
        10,
        50,
        40,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy limitation",
        (),
        (),
        1,
        1000,
        rules(0, 0, 200, 60, 0),
        None,
        10,
        50,
        30,
        "ScaleUpLimit",
    ),
    (
        "scaleDown with percent policy larger than pod policy",
        (),
        (),
        1,
        1000,
        None,
        rules(20, 60, 1, 60, 300),
        100,
        2,
        80,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with pod policy larger than percent policy",
        (),
        (),
        1,
        1000,
        None,
        rules(2, 60, 1, 60, 300),
        100,
        2,
        98,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with spec MinReplicas=nil limitation with large pod policy",
        (),
        (),
        1,
        1000,
        None,
        rules(100, 60, 0, 0, 300),
        10,
        0,
        1,
        "TooFewReplicas",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large percent policy",
        (),
        (),
        5,
        1000,
        None,
        rules(0, 0, 100, 60, 300),
        10,
        2,
        5,
        "TooFewReplicas",
    ),
    (
        "scaleDown with pod policy limitation",
        (),
        (),
        1,
        1000,
        None,
        rules(5, 60, 0, 0, 300),
        10,
        2,
        5,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy limitation",
        (),
        (),
        1,
        1000,
        None,
        rules(0, 0, 50, 60, 300),
        10,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large pod policy and events",
        uniform_events([1, 5, 9], 120),
        (),
        1,
        200,
        rules(300, 60, 0, 0, 0),
        None,
        100,
        500,
        200,
        "TooManyReplicas",
    ),
    (
        "scaleUp with spec MaxReplicas limitation with large percent policy and events",
        uniform_events([1, 5, 9], 120),
        (),
        1,
        200,
        rules(0, 0, 10000, 60, 0),
        None,
        100,
        500,
        200,
        "TooManyReplicas",
    ),
    (
        "scaleUp with currentReplicas limitation with"
        " rate.PeriodSeconds with a lot of recent scale up events",
        uniform_events([1, 5, 9], 120),
        (),
        1,
        1000,
        rules(5, 120, 0, 0, 0),
        None,
        100,
        500,
        100,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with pod policy and previous scale up events",
        uniform_events([1, 5, 9], 120),
        (),
        1,
        1000,
        rules(150, 120, 0, 0, 0),
        None,
        100,
        500,
        235,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy and previous scale up events",
        uniform_events([1, 5, 9], 120),
        (),
        1,
        1000,
        rules(0, 0, 200, 120, 0),
        None,
        100,
        500,
        255,
        "ScaleUpLimit",
    ),
    (
        "scaleUp with percent policy and previous scale up and down events",
        uniform_events([4], 120),
        uniform_events([2], 120),
        1,
        1000,
        rules(0, 0, 300, 300, 0),
        None,
        6,
        24,
        16,
        "ScaleUpLimit",
    ),
    (
        "scaleDown with default policy and previous events",
        (),
        uniform_events([1, 5, 9], 120),
        1,
        1000,
        None,
        None,
        10,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
        (),
        uniform_events([1, 5, 9], 120),
        1,
        1000,
        None,
        rules(115, 120, 0, 0, 300),
        100,
        0,
        1,
        "TooFewReplicas",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
        (),
        uniform_events([1, 5, 9], 120),
        5,
        1000,
        None,
        rules(130, 120, 0, 0, 300),
        100,
        0,
        5,
        "TooFewReplicas",
    ),
    (
        "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
        (),
        uniform_events([1, 5, 9], 120),
        5,
        1000,
        None,
        rules(0, 0, 100, 120, 300),
        100,
        2,
        5,
        "TooFewReplicas",
    ),
    (
        "scaleDown with pod policy limitation and previous events",
        (),
        uniform_events([1, 5, 9], 120),
        1,
        1000,
        None,
        rules(5, 120, 0, 0, 300),
        100,
        2,
        100,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy limitation and previous events",
        (),
        uniform_events([2, 4, 6], 120),
        1,
        1000,
        None,
        rules(0, 0, 50, 120, 300),
        100,
        0,
        56,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with percent policy and previous scale up and down events",
        uniform_events([2], 120),
        uniform_events([4], 120),
        1,
        1000,
        None,
        rules(0, 0, 50, 180, 0),
        10,
        1,
        6,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with previous events preventing further scale down",
        (),
        uniform_events([10, 10, 10], 120),
        1,
        1000,
        None,
        rules(0, 0, 10, 120, 300),
        100,
        0,
        100,
        "ScaleDownLimit",
    ),
    (
        "scaleDown with with previous events still allowing more scale down",
        (),
        uniform_events([10, 10, 10], 120),
        1,
        1000,
        None,
        rules(0, 0, 1000, 120, 300),
        10,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "check 'outdated' flag for events for one behavior for up",
        uniform_events([8, 12, 9, 11], 120),
        (),
        1,
        1000,
        rules(1000, 60, 0, 0, 0),
        None,
        100,
        200,
        200,
        "DesiredWithinRange",
    ),
    (
        "check that events were not marked 'outdated' for two"
        " different policies in the behavior for up",
        uniform_events([8, 12, 9, 11], 120),
        (),
        1,
        1000,
        rules(1000, 120, 100, 60, 0),
        None,
        100,
        200,
        200,
        "DesiredWithinRange",
    ),
    (
        "check that events were marked 'outdated' for two different"
        " policies in the behavior for up",
        uniform_events([8, 12, 9, 11], 120),
        (),
        1,
        1000,
        rules(1000, 30, 100, 60, 0),
        None,
        100,
        200,
        200,
        "DesiredWithinRange",
    ),
    (
        "check 'outdated' flag for events for one behavior for down",
        (),
        uniform_events([8, 12, 9, 11], 120),
        1,
        1000,
        None,
        rules(1000, 60, 0, 0, 300),
        100,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "check that events were not marked 'outdated' for two"
        " different policies in the behavior for down",
        (),
        uniform_events([8, 12, 9, 11], 120),
        1,
        1000,
        None,
        rules(1000, 120, 100, 60, 300),
        100,
        5,
        5,
        "DesiredWithinRange",
    ),
    (
        "check that events were marked 'outdated' for two different"
        " policies in the behavior for down",
        (),
        uniform_events([8, 12, 9, 11], 120),
        1,
        1000,
        None,
        rules(1000, 30, 100, 60, 300),
        100,
        5,
        5,
        "DesiredWithinRange",
    ),
]


@pytest.mark.parametrize(
    (
        "up_events",
        "down_events",
        "min_replicas",
        "max_replicas",
        "up",
        "down",
        "current",
        "desired",
        "expected",
        "reason",
    ),
    [pytest.param(*case[1:], id=f"TestScalingWithRules/{case[0]}") for case in SCALING_WITH_RULES],
)
def test_scaling_with_rules(
    up_events: tuple[ScaleEvent, ...],
    down_events: tuple[ScaleEvent, ...],
    min_replicas: int,
    max_replicas: int,
    up: dict[str, Any] | None,
    down: dict[str, Any] | None,
    current: int,
    desired: int,
    expected: int,
    reason: str,
) -> None:
    """With no recommendations stored, stabilisation returns the raw value, so the result is
    convertDesiredReplicasWithBehaviorRate's, as in the Go test."""
    behavior: dict[str, Any] = {}
    if up is not None:
        behavior["scaleUp"] = up
    if down is not None:
        behavior["scaleDown"] = down
    history = ScalingHistory((), up_events, down_events)
    result = normalize_replicas(
        policy(min_replicas, max_replicas, behavior), current, desired, history, NOW
    )
    assert (result.replicas, result.reason) == (expected, reason)


def _rules(raw: dict[str, Any]) -> HPAScalingRules:
    return HPAScalingRules.model_validate(raw, by_alias=True)


def test_calculate_scale_up_limit_with_scaling_rules_min_policy() -> None:
    """TestCalculateScaleUpLimitWithScalingRules: Min of (1+2, ceil(1 x 1.5)) = 2."""
    min_rules = _rules({**rules(2, 60, 50, 60, 300), "selectPolicy": "Min"})
    assert calculate_scale_up_limit_with_rules(1, ScalingHistory(), min_rules, NOW) == 2


def test_calculate_scale_down_limit_with_behaviors_min_policy() -> None:
    """TestCalculateScaleDownLimitWithBehaviors: Min change of (5-2, int(5 x 0.5)) = 3."""
    min_rules = _rules({**rules(2, 60, 50, 60, 300), "selectPolicy": "Min"})
    assert calculate_scale_down_limit_with_rules(5, ScalingHistory(), min_rules, NOW) == 3


@pytest.mark.parametrize(
    ("direction", "current", "desired"),
    [
        pytest.param("scaleUp", 10, 20, id="scale-up-disabled"),
        pytest.param("scaleDown", 10, 2, id="scale-down-disabled"),
    ],
)
def test_disabled_select_policy_holds_current(direction: str, current: int, desired: int) -> None:
    behavior = {direction: {"selectPolicy": "Disabled"}}
    result = normalize_replicas(policy(behavior=behavior), current, desired, ScalingHistory(), NOW)
    assert result.replicas == current
    assert result.reason == ("ScaleUpLimit" if direction == "scaleUp" else "ScaleDownLimit")


# --- scale events (TestStoreScaleEvents) ---------------------------------------------------------

STORE_CASES = [
    pytest.param((), 0, None, (), id="empty-entries-with-default-behavior"),
    pytest.param(
        (), 0, rules(10, 60, 100, 60, 0), (5,), id="empty-entries-with-two-policy-behavior"
    ),
    pytest.param(
        ((7, 61),), 0, None, (7,), id="one-outdated-entry-to-be-kept-untouched-without-behavior"
    ),
    pytest.param(
        ((7, 61),),
        0,
        rules(10, 60, 100, 60, 0),
        (5,),
        id="one-outdated-entry-to-be-replaced-with-behavior",
    ),
    pytest.param(
        ((7, 58),),
        7,
        rules(10, 60, 100, 60, 0),
        (7, 5),
        id="one-actual-entry-to-be-not-touched-with-behavior",
    ),
    pytest.param(
        ((7, 61), (6, 59)),
        6,
        rules(10, 60, 0, 0, 0),
        (6, 5),
        id="two-entries-one-of-them-to-be-replaced",
    ),
    pytest.param(
        ((8, 29), (6, 59), (7, 61), (9, 61)),
        14,
        rules(10, 60, 100, 30, 0),
        (8, 6, 5),
        id="replace-one-entry-use-policies-with-different-periods",
    ),
    pytest.param(
        ((7, 58), (6, 59)), 13, rules(10, 120, 100, 30, 0), (7, 6, 5), id="two-entries-both-actual"
    ),
]


@pytest.mark.parametrize(
    ("previous", "change_in_60s", "scaling_rules", "kept_changes"), STORE_CASES
)
@pytest.mark.parametrize("direction", ["scaleUp", "scaleDown"])
def test_store_scale_events(
    previous: tuple[tuple[int, int], ...],
    change_in_60s: int,
    scaling_rules: dict[str, Any] | None,
    kept_changes: tuple[int, ...],
    direction: str,
) -> None:
    """TestStoreScaleEvents: the 60 s change before storing, then what is kept. Where the Go
    controller marks an outdated event and later reuses its slot, we drop it at once."""
    events = tuple(ScaleEvent(change, NOW - ago) for change, ago in previous)
    assert replicas_change_per_period(60, events, NOW) == change_in_60s
    behavior = None if scaling_rules is None else {direction: scaling_rules}
    up = direction == "scaleUp"
    history = ScalingHistory((), events if up else (), () if up else events)
    stored = record_scale_event(policy(behavior=behavior), history, 10, 15 if up else 5, NOW)
    kept = stored.scale_up_events if up else stored.scale_down_events
    if scaling_rules is None:
        assert kept == events
    else:
        assert tuple(event.change for event in kept) == kept_changes
        assert kept[-1] == ScaleEvent(5, NOW)
