"""Vertical recommendations, update, no-fight and recreate rules, pinned to the VPA source.

Upstream cases come from kubernetes/autoscaler vertical-pod-autoscaler: model/container_test.go,
model/aggregate_container_state.go, logic/estimator_test.go, logic/recommender_test.go,
logic/recommender.go (its confidence table), updater/priority/update_priority_calculator_test.go.
Other expected values are computed by hand in the comments next to them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.engines.scaling.histogram import CPU_HISTOGRAM_OPTIONS
from controller.engines.scaling.vertical import (
    DEFAULT_RECOMMENDER,
    MAX_RESOURCE_AMOUNT,
    MIB,
    AggregateUsage,
    ContainerRecommendation,
    ContainerTermination,
    ContainerUsageHistory,
    HorizontalMetric,
    Percentiles,
    ResourceName,
    ResourceRecommendation,
    ScaleDirection,
    UpdaterSettings,
    cap_to_policy,
    estimate,
    history_confidence,
    pod_minimum,
    recommend,
    recreate_budget,
    resize_direction,
    should_update,
    update_priority,
    with_confidence,
    with_margin,
    with_minimum,
    withheld_resources,
)
from controller.ports import ContainerState, Resources

# container_test.go: testTimestamp 2017-04-18 17:35:05.
T0 = datetime(2017, 4, 18, 17, 35, 5, tzinfo=UTC)
DAY = timedelta(hours=24)


class RecordingAggregate(AggregateUsage):
    """Records what a container feeds its aggregate, like the histogram mocks upstream."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, float, datetime]] = []

    def add_cpu_sample(self, time: datetime, usage_millicores: int) -> None:
        self.calls.append(("add_cpu", usage_millicores, time))
        super().add_cpu_sample(time, usage_millicores)

    def add_memory_peak(self, time: datetime, usage_bytes: int) -> None:
        self.calls.append(("add_memory", usage_bytes, time))
        super().add_memory_peak(time, usage_bytes)

    def subtract_memory_peak(self, time: datetime, usage_bytes: int) -> None:
        self.calls.append(("subtract_memory", usage_bytes, time))
        super().subtract_memory_peak(time, usage_bytes)


def new_container() -> tuple[ContainerUsageHistory, RecordingAggregate]:
    aggregate = RecordingAggregate()
    return ContainerUsageHistory(aggregate), aggregate


# ----------------------------------------------------------------- container.go / aggregation


def test_memory_keeps_one_peak_per_interval() -> None:
    # TestAggregateContainerUsageSamples: the first sample opens a window ending 24 h later;
    # a higher sample in it replaces the peak (subtract 5, add 10); a sample at the window end
    # opens the next window. Samples are stamped with the window end.
    container, aggregate = new_container()
    step = DAY / 2
    assert container.add_cpu_sample(T0, 3.14)
    assert container.add_memory_sample(T0, 5)
    assert container.add_cpu_sample(T0 + step, 6.28)
    assert container.add_memory_sample(T0 + step, 10)
    assert container.add_cpu_sample(T0 + 2 * step, 1.57)
    assert container.add_memory_sample(T0 + 2 * step, 2)
    assert aggregate.calls == [
        ("add_cpu", 3140, T0),
        ("add_memory", 5, T0 + DAY),
        ("add_cpu", 6280, T0 + step),
        ("subtract_memory", 5, T0 + DAY),
        ("add_memory", 10, T0 + DAY),
        ("add_cpu", 1570, T0 + 2 * step),
        ("add_memory", 2, T0 + 2 * DAY),
    ]


@pytest.mark.parametrize(
    ("resource", "time", "value"),
    [
        pytest.param("cpu", T0 + DAY, 1.0, id="cpu-duplicate-timestamp"),
        pytest.param("cpu", T0, 1.0, id="cpu-out-of-order"),
        pytest.param("cpu", T0 + 2 * DAY, -1.0, id="cpu-negative"),
        pytest.param("memory", T0 + 2 * DAY, -1000, id="memory-negative"),
        pytest.param("memory", T0, 1000, id="memory-older-than-last"),
    ],
)
def test_invalid_samples_are_discarded(resource: str, time: datetime, value: float) -> None:
    container, aggregate = new_container()
    assert container.add_cpu_sample(T0 + DAY, 1.0)
    assert container.add_memory_sample(T0 + DAY, 1000)
    calls_before = list(aggregate.calls)
    if resource == "cpu":
        assert not container.add_cpu_sample(time, value)
    else:
        assert not container.add_memory_sample(time, int(value))
    assert aggregate.calls == calls_before


def test_cpu_sample_weighs_min_sample_weight() -> None:
    # aggregate_container_state.go: weight minSampleWeight = 0.1, decay 2^0 at the reference
    # (midnight UTC is a multiple of the 24 h half-life).
    usage = AggregateUsage()
    usage.add_cpu_sample(datetime(2024, 3, 1, tzinfo=UTC), 500)
    assert usage.cpu_usage.bucket_weights() == {CPU_HISTOGRAM_OPTIONS.find_bucket(0.5): 0.1}
    assert usage.total_samples_count == 1


def test_oom_is_bumped_by_twenty_percent() -> None:
    # TestRecordOOMIncreasedByBumpUp: 1000 MiB request -> 1200 MiB sample at the window end.
    container, aggregate = new_container()
    record = container.record_oom(T0, 1000 * MIB)
    assert (record.accepted, record.reason, record.memory_needed_bytes) == (
        True,
        "recorded",
        1200 * MIB,
    )
    assert aggregate.calls == [("add_memory", 1200 * MIB, T0 + DAY)]


def test_oom_is_bumped_by_at_least_100_mib() -> None:
    # TestRecordOOMIncreasedByMin: 1 MiB request -> max(1 + 100, 1.2) = 101 MiB.
    container, aggregate = new_container()
    assert container.record_oom(T0, 1 * MIB).accepted
    assert aggregate.calls == [("add_memory", 101 * MIB, T0 + DAY)]


def test_repeated_smaller_ooms_do_not_run_away() -> None:
    # TestRecordOOMDontRunAway: smaller OOMs leave the 1200 MiB peak; a 2000 MiB request
    # replaces it with 2400 MiB.
    container, aggregate = new_container()
    assert container.record_oom(T0, 1000 * MIB).reason == "recorded"
    assert container.record_oom(T0, 999 * MIB).reason == "not_a_new_peak"
    assert container.record_oom(T0, 999 * MIB).reason == "not_a_new_peak"
    assert container.record_oom(T0, 2000 * MIB).reason == "recorded"
    window_end = T0 + DAY
    assert aggregate.calls == [
        ("add_memory", 1200 * MIB, window_end),
        ("subtract_memory", 1200 * MIB, window_end),
        ("add_memory", 2400 * MIB, window_end),
    ]


def test_oom_uses_known_usage_peak_above_request() -> None:
    # TestRecordOOMMaxedWithKnownSample: peak 3000 MiB > request 1000 MiB -> 3600 MiB.
    container, aggregate = new_container()
    assert container.add_memory_sample(T0, 3000 * MIB)
    assert container.record_oom(T0, 1000 * MIB).memory_needed_bytes == 3600 * MIB
    window_end = T0 + DAY
    assert aggregate.calls == [
        ("add_memory", 3000 * MIB, window_end),
        ("subtract_memory", 3000 * MIB, window_end),
        ("add_memory", 3600 * MIB, window_end),
    ]


def test_oom_older_than_an_interval_before_last_sample_is_dropped() -> None:
    # TestRecordOOMDiscardsOldSample: 30 h before the last memory sample (> 24 h).
    container, aggregate = new_container()
    assert container.add_memory_sample(T0, 1000 * MIB)
    record = container.record_oom(T0 - timedelta(hours=30), 1000 * MIB)
    assert (record.accepted, record.reason) == (False, "oom_too_old")
    assert aggregate.calls == [("add_memory", 1000 * MIB, T0 + DAY)]


def test_fresh_oom_near_window_boundary_is_kept() -> None:
    # kubernetes/autoscaler#8548 fixed by #9725: a sample just past the window end moves the
    # window to T0+48h; an OOM seconds before that boundary is only 11 s older than the last
    # sample, so it counts (the old WindowEnd-24h rule would have dropped it).
    container, aggregate = new_container()
    assert container.add_memory_sample(T0, 100 * MIB)
    assert container.add_memory_sample(T0 + DAY + timedelta(seconds=1), 100 * MIB)
    record = container.record_oom(T0 + DAY - timedelta(seconds=10), 200 * MIB)
    assert record.accepted
    assert aggregate.calls[-1] == ("add_memory", 300 * MIB, T0 + 2 * DAY)


def test_oom_in_a_later_window_opens_it() -> None:
    # TestRecordOOMInNewWindow: peak 2000 MiB, OOM two intervals later with 1000 MiB request:
    # used = max(1000, 2000) -> 2400 MiB, stamped with the new window end T0 + 3 days.
    container, aggregate = new_container()
    assert container.add_memory_sample(T0, 2000 * MIB)
    assert container.record_oom(T0 + 2 * DAY, 1000 * MIB).accepted
    assert aggregate.calls[-1] == ("add_memory", 2400 * MIB, T0 + 3 * DAY)
    assert container.window_end == T0 + 3 * DAY
    assert container.oom_peak_bytes == 2400 * MIB


def test_aggregates_of_replicas_merge() -> None:
    first, second = ContainerUsageHistory(), ContainerUsageHistory()
    first.add_cpu_sample(T0, 1.0)
    second.add_cpu_sample(T0 + DAY, 1.0)
    first.aggregate.merge(second.aggregate)
    assert first.aggregate.total_samples_count == 2
    assert first.aggregate.first_sample_start == T0
    assert first.aggregate.last_sample_start == T0 + DAY


# ----------------------------------------------------------------- estimator_test.go


def test_confidence_from_sample_count() -> None:
    # TestConfidenceMultiplier: 9 samples every 2 min -> min(16 min in days, 9/1440) = 0.00625,
    # and 3.14 cores * (1 + 0.1/0.00625)^2 = 3.14 * 17^2 = 907.46 cores.
    container = ContainerUsageHistory()
    for i in range(9):
        assert container.add_cpu_sample(T0 + timedelta(minutes=2 * i), 1.0)
    confidence = history_confidence(container.aggregate)
    assert confidence == 0.00625
    assert with_confidence(3140, 0.1, 2.0, confidence) == 907_460


@pytest.mark.parametrize(
    ("exponent", "expected"),
    [
        pytest.param(1.0, MAX_RESOURCE_AMOUNT, id="positive-exponent-gives-max-amount"),
        pytest.param(-1.0, 0, id="negative-exponent-gives-zero"),
    ],
)
def test_confidence_multiplier_without_history(exponent: float, expected: int) -> None:
    # TestConfidenceMultiplierNoHistory: confidence 0 -> x inf (clamped to 1e14) or x 0.
    assert history_confidence(AggregateUsage()) == 0.0
    assert with_confidence(3140, 1.0, exponent, 0.0) == expected


def test_margin_adds_fraction() -> None:
    # TestMarginEstimator: 10% margin on 3.14 cores and 3.14e9 bytes.
    assert with_margin(3140, 0.1) == 3454
    assert with_margin(3_140_000_000, 0.1) == 3_454_000_000


@pytest.mark.parametrize(
    ("amount", "minimum", "expected"),
    [
        pytest.param(3140, 200, 3140, id="cpu-above-minimum"),
        pytest.param(20_000_000, 400_000_000, 400_000_000, id="memory-raised-to-minimum"),
    ],
)
def test_minimum_is_applied(amount: int, minimum: int, expected: int) -> None:
    # TestMinResourcesEstimator.
    assert with_minimum(amount, minimum) == expected


@pytest.mark.parametrize(
    ("multiplier", "exponent", "confidence_days", "expected"),
    [
        # recommender.go comments: upper bound x3 at 12 h, x2 at 24 h, x1.14 at 1 week.
        pytest.param(1.0, 1.0, 0.5, 3000, id="upper-12h-x3"),
        pytest.param(1.0, 1.0, 1.0, 2000, id="upper-24h-x2"),
        pytest.param(1.0, 1.0, 7.0, 1142, id="upper-1-week-x1.14"),
        # Lower bound (1 + 0.001/c)^-2: 5 min -> 1/1.288^2 = 0.603, 30 min -> 1/1.048^2 =
        # 0.910, 60 min -> 1/1.024^2 = 0.954 (upstream rounds these to 0.6, 0.9, 0.95).
        pytest.param(0.001, -2.0, 5 / 1440, 602, id="lower-5min-x0.6"),
        pytest.param(0.001, -2.0, 30 / 1440, 910, id="lower-30min-x0.9"),
        pytest.param(0.001, -2.0, 60 / 1440, 953, id="lower-60min-x0.95"),
    ],
)
def test_confidence_multiplier_table(
    multiplier: float, exponent: float, confidence_days: float, expected: int
) -> None:
    assert with_confidence(1000, multiplier, exponent, confidence_days) == expected


# ----------------------------------------------------------------- recommender_test.go


@pytest.mark.parametrize(
    ("resource", "containers", "expected"),
    [
        # TestMinResourcesApplied / TestMinResourcesSplitAcrossContainers: 25m and 250 MiB
        # per pod; halves truncate (12.5m -> 12m).
        pytest.param("cpu", 1, 25, id="cpu-one-container"),
        pytest.param("cpu", 2, 12, id="cpu-split-two"),
        pytest.param("memory", 1, 250 * MIB, id="memory-one-container"),
        pytest.param("memory", 2, 125 * MIB, id="memory-split-two"),
    ],
)
def test_pod_minimum_split_across_containers(
    resource: ResourceName, containers: int, expected: int
) -> None:
    assert pod_minimum(resource, containers, DEFAULT_RECOMMENDER) == expected


def one_week_history(cpu_cores: float, memory_bytes: int) -> ContainerUsageHistory:
    """One sample a minute for 7 days (10080 samples), constant usage."""
    container = ContainerUsageHistory()
    for minute in range(7 * 24 * 60):
        time = T0 + timedelta(minutes=minute)
        container.add_cpu_sample(time, cpu_cores)
        container.add_memory_sample(time, memory_bytes)
    return container


@pytest.fixture(scope="module")
def week_of_half_core() -> ContainerUsageHistory:
    return one_week_history(0.5, 500 * MIB)


def test_recommendation_for_a_week_of_constant_usage(
    week_of_half_core: ContainerUsageHistory,
) -> None:
    # CPU 0.5 core falls in bucket floor(log_1.05(0.5 * 0.05 / 0.01 + 1)) = 25, whose upper
    # edge is 0.01 * (1.05^26 - 1) / 0.05 = 0.51113 -> 511m for P50, P90 and P95.
    # target = 511 + trunc(511 * 0.15) = 587.
    # confidence = min(10079 min / 1440 = 6.99931 days, 10080 / 1440 = 7) = 6.99931;
    # upper = trunc(587 * (1 + 1/6.99931)) = 670; lower = trunc(587 / (1 + 0.001/6.99931)^2) = 586.
    # Memory 500 MiB = 524288000 B: bucket 26, upper edge 1e7 * (1.05^27 - 1) / 0.05 =
    # 546691264.47 -> 546691264; target = 546691264 + trunc(82003689.6) = 628694953.
    recommendation = recommend(week_of_half_core, container="app", now=T0 + 7 * DAY)
    assert recommendation.reason == "recommended"
    assert recommendation.cpu == ResourceRecommendation(587, 586, 670, 587)
    assert recommendation.memory is not None
    assert recommendation.memory.target == 628_694_953


def test_worked_example_from_research() -> None:
    # research/autoscaling.md 2.3: 1-week-old container, P90 = 1.00 core -> target 1.15 cores;
    # P95 = 1.2 cores -> upper 1.2 * 1.15 * (1 + 1/7) = 1.577 cores (~1.58).
    # Lower from P50 = 0.8: 0.92 / (1 + 0.001/7)^2 = 0.91974 -> 919m.
    result = estimate(
        Percentiles(target=1000, lower_bound=800, upper_bound=1200), confidence=7.0, minimum=25
    )
    assert result == ResourceRecommendation(
        target=1150, lower_bound=919, upper_bound=1577, uncapped_target=1150
    )


def test_no_samples_gives_undefined_recommendation() -> None:
    recommendation = recommend(ContainerUsageHistory(), container="app", now=T0)
    assert not recommendation.defined
    assert (recommendation.cpu, recommendation.memory) == (None, None)
    assert recommendation.reason == "no_samples"
    assert "no usage samples" in recommendation.message


def test_history_older_than_eight_days_expires(week_of_half_core: ContainerUsageHistory) -> None:
    # isExpired: last CPU sample at T0 + 10079 min; 8 days (8 x 24 h window) later it expires.
    last = T0 + timedelta(minutes=10079)
    fresh = recommend(week_of_half_core, container="app", now=last + 8 * DAY - timedelta(seconds=1))
    stale = recommend(week_of_half_core, container="app", now=last + 8 * DAY)
    assert fresh.reason == "recommended"
    assert (stale.reason, stale.defined) == ("history_expired", False)


def test_oom_alone_gives_memory_recommendation() -> None:
    # kubernetes/autoscaler#5326: an aggregate with only OOM samples still gets a
    # recommendation. No CPU samples: confidence 0 -> memory upper x inf = 1e14, lower x 0 ->
    # pod minimum 250 MiB; CPU target, lower and upper all fall back to the 25m minimum.
    container = ContainerUsageHistory()
    container.record_oom(T0, 1000 * MIB)
    recommendation = recommend(container, container="app", now=T0)
    assert recommendation.reason == "recommended"
    assert recommendation.cpu == ResourceRecommendation(25, 25, 25, 25)
    assert recommendation.memory is not None
    assert recommendation.memory.upper_bound == MAX_RESOURCE_AMOUNT
    assert recommendation.memory.lower_bound == 250 * MIB
    # P90 is the upper edge of the 1200 MiB bucket, plus 15%.
    assert recommendation.memory.target >= 1200 * MIB * 1.15


@pytest.mark.parametrize(
    ("controlled", "has_cpu", "has_memory"),
    [
        pytest.param(("memory",), False, True, id="memory-only"),
        pytest.param(("cpu", "memory"), True, True, id="default-both"),
        pytest.param(("cpu",), True, False, id="cpu-only"),
    ],
)
def test_only_controlled_resources_are_recommended(
    week_of_half_core: ContainerUsageHistory,
    controlled: tuple[ResourceName, ...],
    has_cpu: bool,
    has_memory: bool,
) -> None:
    # TestControlledResourcesFiltered / TestControlledResourcesFilteredDefault.
    recommendation = recommend(
        week_of_half_core, container="app", now=T0 + 7 * DAY, controlled_resources=controlled
    )
    assert (recommendation.cpu is not None, recommendation.memory is not None) == (
        has_cpu,
        has_memory,
    )


def test_no_controlled_resources_is_undefined(week_of_half_core: ContainerUsageHistory) -> None:
    recommendation = recommend(
        week_of_half_core, container="app", now=T0 + 7 * DAY, controlled_resources=()
    )
    assert (recommendation.reason, recommendation.defined) == ("no_controlled_resources", False)


@pytest.mark.parametrize(
    ("min_allowed", "max_allowed", "expected"),
    [
        # capping.go: each of target, lower, upper raised to minAllowed, then lowered to max.
        pytest.param(None, None, (500, 400, 900), id="no-policy"),
        pytest.param(600, None, (600, 600, 900), id="min-raises-target-and-lower"),
        pytest.param(None, 450, (450, 400, 450), id="max-lowers-target-and-upper"),
        pytest.param(1000, 800, (800, 800, 800), id="max-wins-over-min"),
    ],
)
def test_policy_caps_target_and_bounds(
    min_allowed: int | None, max_allowed: int | None, expected: tuple[int, int, int]
) -> None:
    capped = cap_to_policy(ResourceRecommendation(500, 400, 900, 500), min_allowed, max_allowed)
    assert (capped.target, capped.lower_bound, capped.upper_bound) == expected
    assert capped.uncapped_target == 500


def test_recommend_applies_min_and_max_allowed(week_of_half_core: ContainerUsageHistory) -> None:
    # Uncapped CPU is (587, 586, 670) as above; maxAllowed 600m lowers the upper bound only,
    # minAllowed 1 GiB raises all memory values.
    recommendation = recommend(
        week_of_half_core,
        container="app",
        now=T0 + 7 * DAY,
        min_allowed=Resources(memory_bytes=1024 * MIB),
        max_allowed=Resources(cpu_millicores=600),
    )
    assert recommendation.cpu == ResourceRecommendation(587, 586, 600, 587)
    assert recommendation.memory is not None
    assert recommendation.memory.target == recommendation.memory.lower_bound == 1024 * MIB


# ----------------------------------------------------------------- update_priority_calculator


def rec(
    container: str = "container1",
    cpu: tuple[int, int, int] | None = None,
    memory: tuple[int, int, int] | None = None,
) -> ContainerRecommendation:
    """(target, lower, upper); "no bounds" upstream is (target, 0, max)."""

    def to(values: tuple[int, int, int] | None) -> ResourceRecommendation | None:
        return (
            None if values is None else ResourceRecommendation(*values, uncapped_target=values[0])
        )

    return ContainerRecommendation(container, to(cpu), to(memory), "recommended")


def pod(cpu_cores: float | None, memory_bytes: int | None = None) -> list[ContainerState]:
    cpu = None if cpu_cores is None else round(cpu_cores * 1000)
    return [ContainerState("container1", requests=Resources(cpu, memory_bytes))]


START = datetime(2024, 1, 1, tzinfo=UTC)
STRICT = UpdaterSettings(min_change_priority=0.5)
NO_BOUNDS = (0, MAX_RESOURCE_AMOUNT)


@pytest.mark.parametrize(
    ("request_cores", "recommendation", "age", "settings", "update", "reason"),
    [
        # TestUpdateNotRequired: request equals target, no diff.
        pytest.param(
            4,
            (4000, *NO_BOUNDS),
            24,
            None,
            False,
            "resource_diff_below_threshold",
            id="not-required",
        ),
        # TestUpdateRequiredOnMilliQuantities: 10m -> 900m.
        pytest.param(
            0.01,
            (900, *NO_BOUNDS),
            24,
            None,
            True,
            "long_lived_resource_diff",
            id="milli-quantities",
        ),
        # TestUpdateLonglivedPods (threshold 0.5, target 5, bounds [1, 6], 13 h old).
        pytest.param(
            4,
            (5000, 1000, 6000),
            13,
            STRICT,
            False,
            "resource_diff_below_threshold",
            id="long-lived-diff-0.25-below-0.5",
        ),
        pytest.param(
            1,
            (5000, 1000, 6000),
            13,
            STRICT,
            True,
            "long_lived_resource_diff",
            id="long-lived-diff-4-at-lower-bound",
        ),
        pytest.param(
            7,
            (5000, 1000, 6000),
            13,
            STRICT,
            True,
            "outside_recommended_range",
            id="long-lived-above-upper-bound",
        ),
        # TestUpdateShortlivedPods: 11 h old, only the pod outside the range.
        pytest.param(
            4,
            (5000, 1000, 6000),
            11,
            STRICT,
            False,
            "short_lived_within_range",
            id="short-lived-within",
        ),
        pytest.param(
            1,
            (5000, 1000, 6000),
            11,
            STRICT,
            False,
            "short_lived_within_range",
            id="short-lived-big-diff-within",
        ),
        pytest.param(
            7,
            (5000, 1000, 6000),
            11,
            STRICT,
            True,
            "outside_recommended_range",
            id="short-lived-outside",
        ),
        # Exactly 12 h: now is not before start + 12 h, so the diff rule applies.
        pytest.param(
            1, (5000, 1000, 6000), 12, STRICT, True, "long_lived_resource_diff", id="exactly-12h"
        ),
    ],
)
def test_update_decision(
    request_cores: float,
    recommendation: tuple[int, int, int],
    age: int,
    settings: UpdaterSettings | None,
    update: bool,
    reason: str,
) -> None:
    decision = should_update(
        containers=pod(request_cores),
        recommendations={"container1": rec(cpu=recommendation)},
        pod_started_at=START,
        now=START + timedelta(hours=age),
        settings=settings or UpdaterSettings(),
    )
    assert (decision.update, decision.reason) == (update, reason)


def oom(run_minutes: int, now: datetime) -> ContainerTermination:
    finished = now - timedelta(minutes=3)
    return ContainerTermination(
        "container1", "OOMKilled", finished - timedelta(minutes=run_minutes), finished
    )


@pytest.mark.parametrize(
    ("run_minutes", "target", "update", "reason"),
    [
        # TestUpdatePodWithQuickOOM: ran 2 min, 11 h old pod within range -> update.
        pytest.param(2, 5000, True, "quick_oom", id="quick-oom"),
        # TestDontUpdatePodWithOOMAfterLongRun: ran 57 min -> not quick.
        pytest.param(57, 5000, False, "short_lived_within_range", id="oom-after-long-run"),
        # update_priority_calculator.go: a quick OOM updates only if resources would change.
        pytest.param(2, 4000, False, "quick_oom_resources_unchanged", id="quick-oom-no-change"),
    ],
)
def test_quick_oom(run_minutes: int, target: int, update: bool, reason: str) -> None:
    now = START + timedelta(hours=11)
    decision = should_update(
        containers=pod(4),
        recommendations={"container1": rec(cpu=(target, 1000, 6000))},
        pod_started_at=START,
        now=now,
        last_terminations=[oom(run_minutes, now)],
        settings=STRICT,
    )
    assert (decision.update, decision.reason) == (update, reason)


def test_missing_start_time_blocks_update_within_range() -> None:
    decision = should_update(
        containers=pod(4),
        recommendations={"container1": rec(cpu=(5000, 1000, 6000))},
        pod_started_at=None,
        now=START,
    )
    assert (decision.update, decision.reason) == (False, "missing_start_time")


def test_missing_request_counts_as_outside_and_scale_up() -> None:
    # priority_processor.go: a container without a request is treated as request 0.
    priority = update_priority(pod(None), {"container1": rec(cpu=(500, 100, 900))})
    assert (priority.outside_recommended_range, priority.scale_up) == (True, True)
    assert priority.resource_diff == 499.0  # |max(0, 1 milli) - 500| / 1


def test_container_without_recommendation_is_ignored() -> None:
    # TestNoRecommendationForContainer: no crash, nothing to change.
    priority = update_priority(pod(5, 10), {})
    assert (priority.outside_recommended_range, priority.scale_up, priority.resource_diff) == (
        False,
        False,
        0.0,
    )


def test_resource_diff_sums_relative_change_per_resource() -> None:
    # TestSortPriorityMultiContainers. POD1: cpu 3 -> 6 (100%), memory 10M -> 20M (100%) = 2.0.
    # POD2: cpu 4+2 -> 6+4 (4/6), memory 10M+20M -> 20M+20M (10/30) = 1.0.
    recommendations = {
        "container1": rec("container1", cpu=(6000, *NO_BOUNDS), memory=(20_000_000, *NO_BOUNDS)),
        "container2": rec("container2", cpu=(4000, *NO_BOUNDS), memory=(20_000_000, *NO_BOUNDS)),
    }
    pod1 = [ContainerState("container1", requests=Resources(3000, 10_000_000))]
    pod2 = [
        ContainerState("container1", requests=Resources(4000, 10_000_000)),
        ContainerState("container2", requests=Resources(2000, 20_000_000)),
    ]
    assert update_priority(pod1, recommendations).resource_diff == 2.0
    assert update_priority(pod2, recommendations).resource_diff == 1.0


@pytest.mark.parametrize(
    ("requests", "target", "expected_order"),
    [
        # TestSortPriority: all grow; larger relative diff first.
        pytest.param([2, 4, 1, 3], 10, [2, 0, 3, 1], id="all-scale-up"),
        # TestSortPriorityResourcesDecrease: growth first, then bigger reclaim (5/10 > 2/7).
        pytest.param([4, 7, 10], 5, [0, 2, 1], id="scale-up-before-reclaim"),
    ],
)
def test_pods_sort_by_update_priority(
    requests: list[int], target: int, expected_order: list[int]
) -> None:
    recommendations = {"container1": rec(cpu=(target * 1000, *NO_BOUNDS))}
    priorities = [update_priority(pod(r), recommendations) for r in requests]
    order = sorted(range(len(requests)), key=lambda i: priorities[i].sort_key, reverse=True)
    assert order == expected_order


# ----------------------------------------------------------------- no-fight rule


@pytest.mark.parametrize(
    ("metrics", "directions", "horizontal", "allowed", "actuate", "withheld"),
    [
        pytest.param(
            [HorizontalMetric("cpu", "Utilization")],
            {"cpu": "up", "memory": "up"},
            "none",
            (),
            ("memory",),
            {"cpu": "hpa_drives_resource"},
            id="cpu-utilization-withholds-cpu",
        ),
        pytest.param(
            [HorizontalMetric("cpu", "AverageValue")],
            {"cpu": "up"},
            "none",
            (),
            ("cpu",),
            {},
            id="average-value-does-not-conflict",
        ),
        pytest.param(
            [HorizontalMetric("cpu", "Utilization")],
            {"cpu": "down"},
            "none",
            ("cpu",),
            ("cpu",),
            {},
            id="policy-allows-hpa-resource",
        ),
        pytest.param(
            [HorizontalMetric("requests_per_second", "AverageValue")],
            {"cpu": "up", "memory": "down"},
            "up",
            (),
            ("memory",),
            {"cpu": "horizontal_scaling_in_progress"},
            id="same-direction-as-horizontal-withheld",
        ),
        pytest.param(
            [HorizontalMetric("memory", "Utilization", container="sidecar")],
            {"memory": "up"},
            "none",
            (),
            ("memory",),
            {},
            id="container-metric-of-other-container",
        ),
        pytest.param(
            [HorizontalMetric("cpu", "Utilization")],
            {"cpu": "none", "memory": "none"},
            "up",
            (),
            (),
            {},
            id="nothing-to-resize",
        ),
    ],
)
def test_vertical_does_not_fight_horizontal(
    metrics: list[HorizontalMetric],
    directions: dict[ResourceName, ScaleDirection],
    horizontal: ScaleDirection,
    allowed: tuple[ResourceName, ...],
    actuate: tuple[ResourceName, ...],
    withheld: dict[str, str],
) -> None:
    decision = withheld_resources(
        hpa_metrics=metrics,
        resize_directions=directions,
        horizontal_direction=horizontal,
        container="app",
        allow_resources_driven_by_hpa=allowed,
    )
    assert decision.actuate == actuate
    assert {w.resource: w.reason for w in decision.withheld} == withheld


@pytest.mark.parametrize(
    ("request_amount", "target", "expected"),
    [(None, 100, "up"), (100, 200, "up"), (200, 100, "down"), (100, 100, "none")],
)
def test_resize_direction(request_amount: int | None, target: int, expected: str) -> None:
    assert resize_direction(request_amount, target) == expected


# ----------------------------------------------------------------- recreate budget


@pytest.mark.parametrize(
    ("kwargs", "allowed", "reason"),
    [
        # min-replicas 2: a single replica is never evicted.
        pytest.param({"replicas": 1, "ready": 1}, 0, "too_few_replicas", id="single-replica"),
        pytest.param(
            {"replicas": 3, "ready": 3, "live_pods": 1}, 0, "too_few_replicas", id="few-live-pods"
        ),
        # tolerance int(n * 0.5); evict while ready - disrupted > n - tolerance.
        pytest.param({"replicas": 2, "ready": 2}, 1, "within_budget", id="two-replicas-one"),
        pytest.param({"replicas": 3, "ready": 3}, 1, "within_budget", id="three-replicas-one"),
        pytest.param({"replicas": 5, "ready": 5}, 2, "within_budget", id="five-replicas-two"),
        pytest.param({"replicas": 10, "ready": 10}, 5, "within_budget", id="ten-replicas-five"),
        pytest.param({"replicas": 10, "ready": 7}, 2, "within_budget", id="three-not-ready"),
        pytest.param(
            {"replicas": 10, "ready": 10, "already_disrupted": 5},
            0,
            "eviction_tolerance_exhausted",
            id="tolerance-used-up",
        ),
        pytest.param(
            {"replicas": 10, "ready": 5}, 0, "eviction_tolerance_exhausted", id="half-not-ready"
        ),
        # A PodDisruptionBudget limits further.
        pytest.param(
            {"replicas": 10, "ready": 10, "min_available": 9},
            1,
            "within_budget",
            id="pdb-min-available-9",
        ),
        pytest.param(
            {"replicas": 10, "ready": 10, "min_available": "100%"},
            0,
            "disruption_budget_exhausted",
            id="pdb-min-available-100-percent",
        ),
        # max-unavailable 25% of 10 rounds up to 3.
        pytest.param(
            {"replicas": 10, "ready": 10, "max_unavailable": "25%"},
            3,
            "within_budget",
            id="pdb-max-unavailable-25-percent",
        ),
    ],
)
def test_recreate_budget(kwargs: dict[str, Any], allowed: int, reason: str) -> None:
    budget = recreate_budget(**kwargs)
    assert (budget.allowed, budget.reason) == (allowed, reason)


@pytest.mark.parametrize(
    ("ready", "already_disrupted", "allowed"),
    [
        # Tolerance 0.1 of 5 rounds to 0: one pod may still go if all are ready and none is
        # being disrupted (pods_eviction_restriction CanEvict), otherwise none.
        pytest.param(5, 0, 1, id="all-ready-one-allowed"),
        pytest.param(4, 0, 0, id="one-not-ready"),
        pytest.param(5, 1, 0, id="one-already-disrupted"),
    ],
)
def test_zero_tolerance_still_allows_one(ready: int, already_disrupted: int, allowed: int) -> None:
    budget = recreate_budget(
        replicas=5,
        ready=ready,
        already_disrupted=already_disrupted,
        settings=UpdaterSettings(eviction_tolerance_fraction=0.1),
    )
    assert budget.allowed == allowed


def test_both_pdb_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        recreate_budget(replicas=3, ready=3, min_available=1, max_unavailable=1)
