"""Right-sizing chain: each step on constant or hand-made inputs, pinned to VPA and KRR.

VPA anchors: kubernetes/autoscaler vertical-pod-autoscaler (histogram buckets: first 0.01 core,
+5 % per bucket, percentile = upper edge of the bucket; margin 15 %; pod minimum 25m / 250 MiB
split over containers; OOM bump max(x1.2, +100 MiB); getConfidence = min(days, samples/1440)).
KRR anchor: robusta-dev/krr simple strategy (memory = max x 1.15, points_required 100).
The batch histogram is checked against the streaming VPA port in ``scaling.vertical``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from controller.engines.resources.rightsizing import (
    ContainerUsage,
    OomEvent,
    RightsizingPolicy,
    ThrottleEvent,
    UsageSeries,
    confidence_days,
    cpu_limit_millicores,
    decayed_percentiles,
    history_problem,
    memory_peaks,
    oom_floor_bytes,
    recommend_container,
    round_up,
    throttle_floor_millicores,
)
from controller.engines.scaling.histogram import (
    CPU_HISTOGRAM_OPTIONS,
    MEMORY_HISTOGRAM_OPTIONS,
    MIN_SAMPLE_WEIGHT,
)
from controller.engines.scaling.vertical import ContainerUsageHistory
from controller.ports import Resources

MIB = 2**20
GIB = 2**30
DAY = 86_400.0
NOW = 1_700_006_400.0  # 2023-11-15T00:00:00Z
POLICY = RightsizingPolicy()


def series(
    cpu: float | np.ndarray, memory: float | np.ndarray, *, days: float = 8, step: float = 60
) -> UsageSeries:
    times = NOW - days * DAY + step * np.arange(1, round(days * DAY / step) + 1)
    return UsageSeries(
        times.astype(np.float64),
        np.broadcast_to(np.asarray(cpu, dtype=float), times.shape).copy(),
        np.broadcast_to(np.asarray(memory, dtype=float), times.shape).copy(),
    )


def container(
    usage: UsageSeries,
    *,
    requests: Resources | None = None,
    limits: Resources | None = None,
    ooms: tuple[OomEvent, ...] = (),
    throttles: tuple[ThrottleEvent, ...] = (),
    containers_in_pod: int = 1,
) -> ContainerUsage:
    return ContainerUsage(
        "shop",
        "cart",
        "app",
        requests or Resources(),
        limits or Resources(),
        usage,
        ooms,
        throttles,
        containers_in_pod,
    )


def cpu_upper_edge(cores: float) -> float:
    """VPA's percentile of a histogram holding only ``cores``: the next bucket's start."""
    return CPU_HISTOGRAM_OPTIONS.bucket_start(CPU_HISTOGRAM_OPTIONS.find_bucket(cores) + 1)


# --------------------------------------------------------------------------- batch histogram


@pytest.mark.parametrize("seed", [1, 2, 3], ids=["seed-1", "seed-2", "seed-3"])
def test_batch_histogram_matches_the_streaming_vpa_port(seed: int) -> None:
    rng = np.random.default_rng(seed)
    usage = series(rng.gamma(2, 0.3, 8 * 1440), 2e8 + rng.gamma(2, 5e7, 8 * 1440))
    history = ContainerUsageHistory()
    for t, cores, memory in zip(usage.times, usage.cpu_cores, usage.memory_bytes, strict=True):
        moment = datetime.fromtimestamp(float(t), UTC)
        history.add_cpu_sample(moment, float(cores))
        history.add_memory_sample(moment, int(memory))
    wanted = (0.5, 0.9, 0.95)
    cpu = decayed_percentiles(
        usage.cpu_cores,
        usage.times,
        options=CPU_HISTOGRAM_OPTIONS,
        half_life_seconds=DAY,
        sample_weight=MIN_SAMPLE_WEIGHT,
        percentiles=wanted,
    )
    stamps, peaks = memory_peaks(usage.times, np.floor(usage.memory_bytes), DAY)
    memory = decayed_percentiles(
        peaks,
        stamps,
        options=MEMORY_HISTOGRAM_OPTIONS,
        half_life_seconds=DAY,
        sample_weight=1.0,
        percentiles=wanted,
    )
    assert cpu == tuple(history.aggregate.cpu_usage.percentile(p) for p in wanted)
    assert memory == tuple(history.aggregate.memory_peaks.percentile(p) for p in wanted)


def test_empty_histogram_percentile_is_zero() -> None:
    empty = np.empty(0)
    assert decayed_percentiles(
        empty,
        empty,
        options=CPU_HISTOGRAM_OPTIONS,
        half_life_seconds=DAY,
        sample_weight=MIN_SAMPLE_WEIGHT,
        percentiles=(0.9,),
    ) == (0.0,)


def test_memory_peaks_one_per_window_stamped_with_its_end() -> None:
    # Windows start at the first sample: [0, 10), [10, 20), [20, 30) → peaks 5, 7, 1.
    times = np.array([0.0, 4.0, 9.0, 10.0, 15.0, 25.0])
    memory = np.array([1.0, 5.0, 2.0, 7.0, 3.0, 1.0])
    stamps, peaks = memory_peaks(times, memory, 10.0)
    assert stamps.tolist() == [10.0, 20.0, 30.0]
    assert peaks.tolist() == [5.0, 7.0, 1.0]


# --------------------------------------------------------------------------- steps


@pytest.mark.parametrize(
    ("usage", "problem"),
    [
        pytest.param(series(0.1, 1e8, days=0), "no usage samples", id="no-samples"),
        pytest.param(series(0.1, 1e8, days=23 / 24), "history spans 23.0h < 24h", id="23h"),
        pytest.param(series(0.1, 1e8, days=2, step=1800), "96 samples < 100", id="96-points"),
        # 1441 samples a minute apart span exactly 24 h: enough.
        pytest.param(series(0.1, 1e8, days=1 + 1 / 1440), None, id="exactly-24h-ok"),
        pytest.param(series(0.1, 1e8, days=1, step=600), "23.8h", id="144-points-span-23.8h"),
    ],
)
def test_history_problem(usage: UsageSeries, problem: str | None) -> None:
    found = history_problem(usage, POLICY)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


@pytest.mark.parametrize(
    ("days", "step", "expected"),
    [
        # One sample a minute: VPA's min(lifespan days, n / 1440). 2 days: lifespan 2 - 1/1440
        # (first sample one step after the start), n / 1440 = 2.
        pytest.param(2, 60, 2 - 1 / 1440, id="per-minute-is-vpa"),
        # Hourly over 8 days: lifespan 191 h = 7.958 d, coverage 192 h = 8 d.
        pytest.param(8, 3600, 191 / 24, id="hourly-not-penalised"),
    ],
)
def test_confidence_days(days: float, step: float, expected: float) -> None:
    assert confidence_days(series(0.1, 1e8, days=days, step=step).times) == pytest.approx(expected)


def test_confidence_of_a_sparse_history_counts_its_samples() -> None:
    # 10 samples, one a minute, then one sample 2 days later: lifespan ~2 d, but the samples
    # cover 11 minutes (median spacing 60 s) → 11 * 60 / 86400 days, as VPA's n / 1440.
    times = np.concatenate([60.0 * np.arange(10), [2 * DAY]])
    assert confidence_days(times) == pytest.approx(11 / 1440)


@pytest.mark.parametrize(
    ("events", "fallback", "expected"),
    [
        pytest.param([OomEvent(NOW - 10, GIB)], 0, int(1.2 * GIB), id="ratio-wins-1Gi"),
        pytest.param([OomEvent(NOW - 10, 300 * MIB)], 0, 400 * MIB, id="plus-100Mi-wins"),
        pytest.param([OomEvent(NOW - 10)], 500 * MIB, 600 * MIB, id="no-memory-uses-fallback"),
        pytest.param(
            [OomEvent(NOW - 100, 2 * GIB), OomEvent(NOW - 10, GIB)],
            0,
            int(1.2 * GIB),
            id="last-oom-counts",
        ),
        pytest.param([OomEvent(NOW - 9 * DAY, GIB)], 0, None, id="older-than-window-forgotten"),
        pytest.param([], 0, None, id="none"),
    ],
)
def test_oom_floor(events: list[OomEvent], fallback: int, expected: int | None) -> None:
    assert (
        oom_floor_bytes(events, fallback_bytes=fallback, since=NOW - 8 * DAY, policy=POLICY)
        == expected
    )


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([ThrottleEvent(NOW - 10, 0.05, 0.8)], None, id="5pct-not-an-event"),
        pytest.param([ThrottleEvent(NOW - 10, 0.10, 0.8)], None, id="10pct-not-above"),
        pytest.param([ThrottleEvent(NOW - 10, 0.3, 0.8)], 960, id="0.8-cores-x1.2"),
        pytest.param(
            [ThrottleEvent(NOW - 10, 0.3, 0.5), ThrottleEvent(NOW - 20, 0.5, 1.0)],
            1200,
            id="highest-throttled-usage",
        ),
        pytest.param([ThrottleEvent(NOW - 9 * DAY, 0.9, 2.0)], None, id="too-old"),
    ],
)
def test_throttle_floor(events: list[ThrottleEvent], expected: int | None) -> None:
    assert throttle_floor_millicores(events, since=NOW - 8 * DAY, policy=POLICY) == expected


@pytest.mark.parametrize(
    ("amount", "step", "expected"),
    [
        pytest.param(1168, 5, 1170, id="cpu-up-to-5m"),
        pytest.param(1170, 5, 1170, id="cpu-already-on-step"),
        pytest.param(1, 5, 5, id="cpu-1m-to-5m"),
        pytest.param(MIB + 1, MIB, 2 * MIB, id="memory-up-to-MiB"),
        pytest.param(0, MIB, 0, id="zero-stays"),
    ],
)
def test_round_up(amount: int, step: int, expected: int) -> None:
    assert round_up(amount, step) == expected


@pytest.mark.parametrize(
    ("policy", "requests", "limits", "expected"),
    [
        pytest.param("none", Resources(500), Resources(1000), None, id="none-drops-limit"),
        pytest.param("keep", Resources(500), Resources(1000), 1000, id="keep"),
        pytest.param("keep", Resources(500), Resources(600), 800, id="keep-raised-to-target"),
        pytest.param("ratio", Resources(500), Resources(1000), 1600, id="ratio-2x"),
        pytest.param("ratio", Resources(), Resources(1000), 1000, id="ratio-no-request"),
        pytest.param("ratio", Resources(500), Resources(), None, id="no-limit-stays-none"),
    ],
)
def test_cpu_limit(
    policy: str, requests: Resources, limits: Resources, expected: int | None
) -> None:
    assert (
        cpu_limit_millicores(policy, target=800, requests=requests, limits=limits)  # type: ignore[arg-type]
        == expected
    )


# --------------------------------------------------------------------------- whole chain


def test_constant_usage_gives_vpa_cpu_and_krr_memory() -> None:
    result = recommend_container(container(series(1.0, 400 * MIB)), now=NOW, policy=POLICY)
    # CPU: P90 = upper edge of 1.0's bucket (≈1.0163 cores) → 1016m; + trunc(15 %) = 1168m;
    # rounded up to 5m → 1170m. Memory: KRR max x 1.15 = 460 MiB exactly.
    edge_millicores = math.floor(cpu_upper_edge(1.0) * 1000)
    target = edge_millicores + math.floor(edge_millicores * 0.15)
    assert (edge_millicores, target) == (1016, 1168)
    assert result.reason == "recommended"
    assert result.cpu is not None
    assert result.memory is not None
    assert result.cpu.target == 1170
    assert result.memory.target == 460 * MIB
    assert result.memory.lower_bound <= result.memory.target <= result.memory.upper_bound
    assert result.cpu_limit is None  # cpuLimit: none (KRR)
    assert result.memory_limit == 460 * MIB  # KRR: memory limit = request


@pytest.mark.parametrize(
    ("usage", "reason"),
    [
        pytest.param(series(1.0, 1e8, days=0), "no_samples", id="no-samples"),
        pytest.param(series(1.0, 1e8, days=0.5), "insufficient_history", id="12h"),
        pytest.param(series(1.0, 1e8, days=3, step=3600), "insufficient_history", id="72-points"),
    ],
)
def test_undefined_when_history_is_too_short(usage: UsageSeries, reason: str) -> None:
    result = recommend_container(container(usage), now=NOW, policy=POLICY)
    assert (result.reason, result.cpu, result.memory) == (reason, None, None)
    assert result.message.startswith("undefined: ")


def test_thresholds_are_policy_fields() -> None:
    usage = series(1.0, 1e8, days=3, step=3600)  # 72 points over 71 h
    result = recommend_container(container(usage), now=NOW, policy=RightsizingPolicy(min_points=50))
    assert result.reason == "recommended"


def test_samples_outside_the_window_do_not_count() -> None:
    old = series(4.0, 1e9, days=8)
    old = UsageSeries(old.times - 8 * DAY, old.cpu_cores, old.memory_bytes)  # all > 8 d ago
    result = recommend_container(container(old), now=NOW, policy=POLICY)
    assert result.reason == "no_samples"


def test_oom_floor_wins_over_the_estimate() -> None:
    # Usage 400 MiB → 460 MiB; an OOM at 1 GiB says 1.2 GiB is needed (rounded up to MiB).
    usage = container(series(0.5, 400 * MIB), ooms=(OomEvent(NOW - DAY, GIB),))
    result = recommend_container(usage, now=NOW, policy=POLICY)
    assert result.memory is not None
    assert result.memory.target == round_up(int(1.2 * GIB), MIB)
    assert result.memory.lower_bound == result.memory.target  # never below the floor
    assert "oom" in result.floors


def test_throttling_floor_wins_over_the_estimate() -> None:
    # Seen using 2 cores while 40 % throttled → at least 2.4 cores, above P90 + 15 % of 0.5.
    usage = container(series(0.5, 400 * MIB), throttles=(ThrottleEvent(NOW - DAY, 0.4, 2.0),))
    result = recommend_container(usage, now=NOW, policy=POLICY)
    assert result.cpu is not None
    assert (result.cpu.target, result.cpu.lower_bound) == (2400, 2400)
    assert "throttling" in result.floors


@pytest.mark.parametrize(
    ("containers_in_pod", "cpu", "memory"),
    [
        # 25m and 250 MiB per pod (VPA), split evenly; CPU rounded up to 5m.
        pytest.param(1, 25, 250 * MIB, id="one-container"),
        pytest.param(2, 15, 125 * MIB, id="two-containers-12m-to-15m"),
    ],
)
def test_pod_minimum_split_over_containers(containers_in_pod: int, cpu: int, memory: int) -> None:
    usage = container(series(0.001, 10 * MIB), containers_in_pod=containers_in_pod)
    result = recommend_container(usage, now=NOW, policy=POLICY)
    assert result.cpu is not None
    assert result.memory is not None
    assert (result.cpu.target, result.memory.target) == (cpu, memory)


def test_max_allowed_caps_even_a_floor() -> None:
    policy = RightsizingPolicy(max_allowed=Resources(cpu_millicores=1000, memory_bytes=GIB))
    usage = container(series(0.5, 400 * MIB), ooms=(OomEvent(NOW - DAY, 2 * GIB),))
    result = recommend_container(usage, now=NOW, policy=policy)
    assert result.memory is not None
    assert result.memory.target == GIB
    assert "max_allowed" in result.floors


def test_min_allowed_raises() -> None:
    policy = RightsizingPolicy(min_allowed=Resources(cpu_millicores=2000))
    result = recommend_container(container(series(0.5, 400 * MIB)), now=NOW, policy=policy)
    assert result.cpu is not None
    assert result.cpu.target == 2000
    assert "min_allowed" in result.floors
