"""The VPA histograms, pinned by the cases of kubernetes/autoscaler's own tests.

Sources (vertical-pod-autoscaler/pkg/recommender/util/): histogram_options_test.go,
histogram_test.go, decaying_histogram_test.go; and logic/estimator_test.go for the VPA
CPU/memory bucketing. ``valueEpsilon`` upstream is 1e-15 (relative), kept here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from controller.engines.scaling.histogram import (
    CPU_HISTOGRAM_OPTIONS,
    HISTOGRAM_EPSILON,
    MEMORY_HISTOGRAM_OPTIONS,
    DecayingHistogram,
    ExponentialHistogramOptions,
    Histogram,
    LinearHistogramOptions,
)

VALUE_EPSILON = 1e-15
WEIGHT_EPSILON = 1e-15
# histogram_test.go: NewLinearHistogramOptions(10.0, 1.0, weightEpsilon)
TEST_OPTIONS = LinearHistogramOptions(max_value=10.0, bucket_size=1.0, epsilon=WEIGHT_EPSILON)
# decaying_histogram_test.go: time.Unix(1234567890, 0)
START = datetime.fromtimestamp(1234567890, tz=UTC)
HOUR = timedelta(hours=1)


def close(expected: float) -> object:
    return pytest.approx(expected, rel=VALUE_EPSILON)


# ----------------------------------------------------------------- histogram_options_test.go


def test_linear_options_match_upstream_bucketing() -> None:
    options = LinearHistogramOptions(max_value=5.0, bucket_size=0.3, epsilon=0.001)
    assert options.epsilon == 0.001
    assert options.num_buckets == 18
    assert options.bucket_start(0) == 0.0
    assert options.bucket_start(17) == 5.1
    assert [options.find_bucket(v) for v in (-1.0, 0.0, 1.3, 100.0)] == [0, 0, 4, 17]


def test_exponential_options_match_upstream_bucketing() -> None:
    options = ExponentialHistogramOptions(
        max_value=500.0, first_bucket_size=40.0, ratio=1.5, epsilon=0.001
    )
    assert options.num_buckets == 6
    assert [options.bucket_start(b) for b in range(6)] == [0.0, 40.0, 100.0, 190.0, 325.0, 527.5]
    assert [options.find_bucket(v) for v in (-1.0, 39.99, 40.0, 100.0, 900.0)] == [0, 0, 1, 2, 5]


@pytest.mark.parametrize(
    ("options", "first_bucket_size"),
    [
        pytest.param(CPU_HISTOGRAM_OPTIONS, 0.01, id="cpu-first-bucket-10-millicores"),
        pytest.param(MEMORY_HISTOGRAM_OPTIONS, 1e7, id="memory-first-bucket-10-megabytes"),
    ],
)
def test_vpa_options_use_176_buckets_growing_five_percent(
    options: ExponentialHistogramOptions, first_bucket_size: float
) -> None:
    # aggregations_config.go: max 1000 cores / 1e12 bytes, ratio 1.05, epsilon 0.001 * 0.1.
    # num_buckets = ceil(log_1.05(max * 0.05 / first + 1)) + 1 = ceil(log_1.05(5001)) + 1
    #             = ceil(174.57) + 1 = 176 for both.
    assert options.num_buckets == 176
    assert options.epsilon == HISTOGRAM_EPSILON == pytest.approx(1e-4)
    assert options.bucket_start(1) == pytest.approx(first_bucket_size)
    # The second bucket is 5% wider than the first: starts at first * (1 + 1.05).
    assert options.bucket_start(2) == pytest.approx(first_bucket_size * 2.05)
    assert options.find_bucket(first_bucket_size * 0.99) == 0
    assert options.find_bucket(first_bucket_size) == 1
    assert options.find_bucket(first_bucket_size * 1e9) == 175


def test_bucket_start_out_of_range_is_refused() -> None:
    with pytest.raises(IndexError):
        TEST_OPTIONS.bucket_start(TEST_OPTIONS.num_buckets)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_value": 0.0, "first_bucket_size": 1.0, "ratio": 1.5}, id="max-zero"),
        pytest.param({"max_value": 1.0, "first_bucket_size": 0.0, "ratio": 1.5}, id="first-zero"),
        pytest.param({"max_value": 1.0, "first_bucket_size": 1.0, "ratio": 1.0}, id="ratio-one"),
    ],
)
def test_invalid_exponential_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ExponentialHistogramOptions(epsilon=0.001, **kwargs)


# ----------------------------------------------------------------- histogram_test.go


@pytest.mark.parametrize("percentile", [-0.5, 0.0, 0.5, 1.0, 1.5])
def test_empty_histogram_percentile_is_zero(percentile: float) -> None:
    assert Histogram(TEST_OPTIONS).percentile(percentile) == 0.0
    assert DecayingHistogram(TEST_OPTIONS, HOUR).percentile(percentile) == 0.0


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [
        # Samples {1: 1, 2: 2, 3: 3, 4: 4}; the answer is the upper edge of the bucket.
        pytest.param(0.0, 2, id="p0"),
        pytest.param(0.1, 2, id="p10"),
        pytest.param(0.2, 3, id="p20"),
        pytest.param(0.3, 3, id="p30"),
        pytest.param(0.4, 4, id="p40"),
        pytest.param(0.5, 4, id="p50"),
        pytest.param(0.6, 4, id="p60"),
        pytest.param(0.7, 5, id="p70"),
        pytest.param(0.8, 5, id="p80"),
        pytest.param(0.9, 5, id="p90"),
        pytest.param(1.0, 5, id="p100"),
    ],
)
def test_percentile_is_upper_edge_of_bucket(percentile: float, expected: float) -> None:
    histogram = Histogram(TEST_OPTIONS)
    for i in range(1, 5):
        histogram.add_sample(float(i), float(i))
    assert histogram.percentile(percentile) == close(expected)


def test_percentile_out_of_bounds_returns_min_and_max() -> None:
    options = LinearHistogramOptions(max_value=1.0, bucket_size=0.1, epsilon=WEIGHT_EPSILON)
    histogram = Histogram(options)
    histogram.add_sample(0.1, 0.1)
    histogram.add_sample(0.2, 0.2)
    assert histogram.percentile(-0.1) == close(0.2)
    assert histogram.percentile(1.1) == close(0.3)
    # Fill the boundary buckets: the last bucket has no upper edge, so its start is returned.
    histogram.add_sample(0.0, 0.1)
    histogram.add_sample(1.0, 0.2)
    assert histogram.percentile(-0.1) == close(0.1)
    assert histogram.percentile(1.1) == close(1.0)


def test_bucket_under_epsilon_counts_as_empty() -> None:
    options = LinearHistogramOptions(max_value=1.0, bucket_size=0.1, epsilon=WEIGHT_EPSILON)
    histogram = Histogram(options)
    assert histogram.is_empty()
    histogram.add_sample(0.1, WEIGHT_EPSILON * 2.5)
    assert not histogram.is_empty()
    histogram.subtract_sample(0.1, WEIGHT_EPSILON)  # 1.5 epsilon left
    assert not histogram.is_empty()
    histogram.subtract_sample(0.1, WEIGHT_EPSILON)  # 0.5 epsilon left: zeroed
    assert histogram.is_empty()
    assert histogram.total_weight == 0.0


def test_epsilon_weight_sample_does_not_empty_histogram() -> None:
    # TestNonEmptyOnEpsilonAddition: a sample lighter than epsilon must not become min/max.
    options = LinearHistogramOptions(max_value=1.0, bucket_size=0.1, epsilon=WEIGHT_EPSILON)
    histogram = Histogram(options)
    histogram.add_sample(9.9, WEIGHT_EPSILON * 3)
    assert not histogram.is_empty()
    histogram.add_sample(0.1, WEIGHT_EPSILON * 0.3)
    assert not histogram.is_empty()
    histogram.add_sample(999.9, WEIGHT_EPSILON * 0.3)
    assert not histogram.is_empty()


def test_histogram_merge_adds_samples() -> None:
    h1, h2, expected = Histogram(TEST_OPTIONS), Histogram(TEST_OPTIONS), Histogram(TEST_OPTIONS)
    for histogram, values in ((h1, (1, 2)), (h2, (2, 3)), (expected, (1, 2, 2, 3))):
        for value in values:
            histogram.add_sample(value, 1)
    h1.merge(h2)
    assert h1.equals(expected)


def test_negative_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Histogram(TEST_OPTIONS).add_sample(1.0, -1.0)


def test_bucket_weights_lists_only_nonempty_buckets() -> None:
    histogram = Histogram(TEST_OPTIONS)
    histogram.add_sample(1.5, 2.0)
    histogram.add_sample(7.0, 0.5)
    assert histogram.bucket_weights() == {1: 2.0, 7: 0.5}


def test_vpa_cpu_and_memory_percentiles_within_five_percent() -> None:
    # estimator_test.go TestPercentileEstimator: samples 1, 2, 3 (weight 1); CPU P20 ~ 1.0 core
    # and memory P50 ~ 2e9 bytes, within 5% for the bucket rounding.
    cpu, memory = Histogram(CPU_HISTOGRAM_OPTIONS), Histogram(MEMORY_HISTOGRAM_OPTIONS)
    for value in (1.0, 2.0, 3.0):
        cpu.add_sample(value, 1.0)
        memory.add_sample(value * 1e9, 1.0)
    assert cpu.percentile(0.2) == pytest.approx(1.0, rel=0.05)
    assert memory.percentile(0.5) == pytest.approx(2e9, rel=0.05)


# ----------------------------------------------------------------- decaying_histogram_test.go


def test_old_heavy_sample_is_almost_entirely_decayed() -> None:
    # TestSimpleDecay: 20 half-lives later the new sample weighs 2^20 * 0.001 > 1000x more.
    histogram = DecayingHistogram(TEST_OPTIONS, HOUR)
    histogram.add_sample(2, 1000, START)
    histogram.add_sample(1, 1, START + 20 * HOUR)
    assert histogram.percentile(0.999) == close(2)
    assert histogram.percentile(1.0) == close(3)


def test_renormalises_after_more_than_max_decay_exponent_half_lives() -> None:
    # TestLongtermDecay: 101 half-lives apart, the old sample falls below epsilon.
    histogram = DecayingHistogram(TEST_OPTIONS, HOUR)
    histogram.add_sample(2, 1, START)
    histogram.add_sample(1, 1, START + 101 * HOUR)
    assert histogram.percentile(1.0) == close(2)


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [
        # Values and weights 1..4, one half-life apart: weights 1/8, 2/4, 3/2, 4 of total 6.125.
        pytest.param(0.00, 2, id="p0"),
        pytest.param(0.02, 2, id="p2"),
        pytest.param(0.03, 3, id="p3"),
        pytest.param(0.10, 3, id="p10"),
        pytest.param(0.11, 4, id="p11"),
        pytest.param(0.34, 4, id="p34"),
        pytest.param(0.35, 5, id="p35"),
        pytest.param(1.00, 5, id="p100"),
    ],
)
def test_decaying_percentiles(percentile: float, expected: float) -> None:
    histogram = DecayingHistogram(TEST_OPTIONS, HOUR)
    for i in range(1, 5):
        histogram.add_sample(float(i), float(i), START + (i - 1) * HOUR)
    assert histogram.percentile(percentile) == close(expected)


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [(0.0, 2), (0.1, 2), (0.2, 3), (0.3, 3), (0.4, 4), (0.5, 4), (0.6, 4), (0.7, 5), (1.0, 5)],
)
def test_no_decay_at_fixed_time_equals_plain_histogram(percentile: float, expected: float) -> None:
    histogram = DecayingHistogram(TEST_OPTIONS, HOUR)
    for i in range(1, 5):
        histogram.add_sample(float(i), float(i), START)
    assert histogram.percentile(percentile) == close(expected)


def test_decaying_merge_aligns_reference_timestamps() -> None:
    h1 = DecayingHistogram(TEST_OPTIONS, HOUR)
    h1.add_sample(1, 1, START)
    h1.add_sample(2, 1, START + HOUR)
    h2 = DecayingHistogram(TEST_OPTIONS, HOUR)
    h2.add_sample(2, 1, START + 2 * HOUR)
    h2.add_sample(3, 1, START + HOUR)
    expected = DecayingHistogram(TEST_OPTIONS, HOUR)
    expected.add_sample(2, 1, START + 2 * HOUR)
    expected.add_sample(2, 1, START + HOUR)
    expected.add_sample(3, 1, START + HOUR)
    expected.add_sample(1, 1, START)
    h1.merge(h2)
    assert h1.equals(expected)


def test_merge_refuses_different_half_lives() -> None:
    with pytest.raises(ValueError, match="half lives"):
        DecayingHistogram(TEST_OPTIONS, HOUR).merge(DecayingHistogram(TEST_OPTIONS, 2 * HOUR))


# ----------------------------------------------------------------- decay arithmetic by hand


def test_reference_timestamp_is_rounded_to_a_multiple_of_the_half_life() -> None:
    # 1234567890 is 2009-02-13 23:31:30 UTC; Go's Time.Round(24h) counts from year 1, which is
    # midnight-aligned, and 23:31 is past half a day, so the reference is 2009-02-14 00:00.
    histogram = DecayingHistogram(CPU_HISTOGRAM_OPTIONS, timedelta(hours=24))
    histogram.add_sample(0.5, 1.0, START)
    assert histogram.reference_timestamp == datetime(2009, 2, 14, tzinfo=UTC)


def test_sample_one_half_life_older_weighs_half() -> None:
    half_life = timedelta(hours=24)
    midnight = datetime(2024, 3, 1, tzinfo=UTC)  # a multiple of 24 h: decay factor 2^0 = 1
    histogram = DecayingHistogram(CPU_HISTOGRAM_OPTIONS, half_life)
    histogram.add_sample(1.0, 1.0, midnight)
    histogram.add_sample(2.0, 1.0, midnight - half_life)
    weights = histogram.bucket_weights()
    assert weights[CPU_HISTOGRAM_OPTIONS.find_bucket(1.0)] == 1.0
    assert weights[CPU_HISTOGRAM_OPTIONS.find_bucket(2.0)] == 0.5


def test_rescaling_keeps_relative_weights() -> None:
    # A sample 105 h after the first passes 2^100 and moves the reference forward. Relative
    # weights survive: the 95 h and 105 h samples stay 2^10 apart, while the first sample
    # (about 2^-105 of the newest) drops under epsilon and its bucket empties.
    histogram = DecayingHistogram(TEST_OPTIONS, HOUR)
    histogram.add_sample(1, 1, START)
    histogram.add_sample(3, 1, START + 95 * HOUR)
    reference_before = histogram.reference_timestamp
    histogram.add_sample(5, 1, START + 105 * HOUR)
    assert histogram.reference_timestamp > reference_before
    weights = histogram.bucket_weights()
    assert sorted(weights) == [3, 5]
    assert weights[5] / weights[3] == pytest.approx(2.0**10)
    assert math.isclose(histogram.total_weight, sum(weights.values()), rel_tol=1e-12)


def test_naive_datetimes_are_taken_as_utc() -> None:
    aware, naive = DecayingHistogram(TEST_OPTIONS, HOUR), DecayingHistogram(TEST_OPTIONS, HOUR)
    aware.add_sample(1, 1, START)
    naive.add_sample(1, 1, START.replace(tzinfo=None))
    assert aware.equals(naive)
