"""SHARDS miss-ratio curve: exact at rate 1.0, close when sampled, bounded, in bytes."""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import pytest

from agent.cache.mrc import HASH_SPACE, MissRatioCurve, capacity_grid, sample_hash

Stream = list[tuple[str, int]]


def exact_lru(stream: Stream, capacities: Sequence[int]) -> list[float]:
    """The oracle: a byte-bounded LRU cache that admits every miss and evicts the oldest."""
    ratios = []
    for capacity in capacities:
        cache: OrderedDict[str, int] = OrderedDict()
        held = misses = 0
        for key, weight in stream:
            if key in cache:
                cache.move_to_end(key)
                continue
            misses += 1
            cache[key] = weight
            held += weight
            while held > capacity:
                held -= cache.popitem(last=False)[1]
        ratios.append(misses / len(stream))
    return ratios


def estimate(curve: MissRatioCurve, stream: Stream, capacities: Sequence[int]) -> list[float]:
    for key, weight in stream:
        curve.record(key, weight)
    points = curve.curve(capacities)
    assert [capacity for capacity, _ in points] == list(capacities)
    return [ratio for _, ratio in points]


def random_stream(seed: int, keys: int, length: int, weights: tuple[int, int]) -> Stream:
    rng = random.Random(seed)
    size = {f"k{i}": rng.randint(*weights) for i in range(keys)}
    # Mix of a hot set and a cold tail so that every capacity sees hits and misses.
    hot = [f"k{i}" for i in range(keys // 5)]
    every = list(size)
    picks = [rng.choice(hot) if rng.random() < 0.7 else rng.choice(every) for _ in range(length)]
    return [(key, size[key]) for key in picks]


def zipf_stream(seed: int, keys: int, length: int, alpha: float) -> Stream:
    rng = random.Random(seed)
    popularity = [1.0 / (rank + 1) ** alpha for rank in range(keys)]
    size = [rng.randint(100, 4000) for _ in range(keys)]
    ranks = rng.choices(range(keys), weights=popularity, k=length)
    return [(f"item-{rank}", size[rank]) for rank in ranks]


def footprint(stream: Stream) -> int:
    return sum(dict(stream).values())


def loop_stream(keys: int, weight: int, rounds: int) -> Stream:
    return [(f"loop-{i}", weight) for _ in range(rounds) for i in range(keys)]


# --- exactness at rate 1.0 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "capacities"),
    [
        pytest.param(
            random_stream(1, keys=50, length=2000, weights=(1, 1)),
            [0, 1, 5, 10, 25, 40, 50, 100],
            id="unit-weights",
        ),
        pytest.param(
            random_stream(2, keys=200, length=5000, weights=(10, 300)),
            [0, 50, 500, 2_000, 5_000, 10_000, 20_000, 60_000],
            id="byte-weights",
        ),
        pytest.param(
            [("a", 3), ("b", 4), ("a", 3), ("c", 5), ("b", 4), ("a", 3), ("d", 1), ("c", 5)],
            [0, 3, 7, 8, 9, 11, 12, 13],
            id="hand-sized",
        ),
        pytest.param(
            random_stream(3, keys=30, length=30_000, weights=(1, 64)),
            [10, 100, 300, 600, 1_000],
            id="long-stream-compacts-timestamps",
        ),
    ],
)
def test_rate_one_equals_exact_lru(stream: Stream, capacities: list[int]) -> None:
    curve = MissRatioCurve(rate=1.0, max_keys=256, precision_bits=20)
    assert estimate(curve, stream, capacities) == pytest.approx(exact_lru(stream, capacities))
    assert curve.rate == 1.0


def test_default_histogram_precision_is_within_a_percent_of_a_bucket() -> None:
    """Default 8 precision bits: buckets narrower than 0.8 % of the distance."""
    stream = random_stream(4, keys=300, length=6000, weights=(500, 5000))
    capacities = [10_000, 50_000, 200_000, 500_000]
    got = estimate(MissRatioCurve(rate=1.0, max_keys=1000), stream, capacities)
    assert got == pytest.approx(exact_lru(stream, capacities), abs=0.005)


# --- a loop over N keys: the textbook LRU cliff ------------------------------------------------


@pytest.mark.parametrize(
    ("capacity", "expected"),
    [
        pytest.param(0, 1.0, id="empty"),
        pytest.param(99 * 64, 1.0, id="one-key-short"),
        pytest.param(100 * 64 - 1, 1.0, id="one-byte-short"),
        pytest.param(100 * 64, 100 / 5000, id="exactly-fits-only-cold-misses"),
        pytest.param(1_000 * 64, 100 / 5000, id="far-above"),
    ],
)
def test_cyclic_loop_misses_everything_below_its_size(capacity: int, expected: float) -> None:
    curve = MissRatioCurve(rate=1.0, max_keys=200, precision_bits=16)
    assert estimate(curve, loop_stream(100, 64, rounds=50), [capacity]) == [pytest.approx(expected)]


def test_cyclic_loop_cliff_survives_sampling() -> None:
    """At 10 % the cliff moves by the sampling noise (here 2,029 keys sampled of 20,000)."""
    size = 20_000 * 64
    curve = MissRatioCurve(rate=0.1)
    stream = loop_stream(20_000, 64, rounds=20)
    below, above = estimate(curve, stream, [size * 95 // 100, size * 105 // 100])
    assert below == pytest.approx(1.0, abs=0.01)
    assert above == pytest.approx(0.05, abs=0.01)  # the cold misses: 1 round in 20


# --- sampling accuracy -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zipf_case() -> tuple[Stream, list[int], list[float]]:
    """50,000 keys of 100..4,000 bytes, Zipf 0.8, 300,000 accesses; capacities 2..50 %."""
    stream = zipf_stream(seed=0, keys=50_000, length=300_000, alpha=0.8)
    capacities = [round(footprint(stream) * share) for share in (0.02, 0.05, 0.1, 0.25, 0.5)]
    return stream, capacities, exact_lru(stream, capacities)


@pytest.mark.parametrize(
    ("rate", "max_keys", "tolerance"),
    [
        pytest.param(0.1, 100_000, 0.02, id="fixed-rate-10pct"),
        pytest.param(0.01, 100_000, 0.04, id="fixed-rate-1pct"),
        pytest.param(1.0, 4_000, 0.03, id="fixed-size-4000-keys"),
    ],
)
def test_sampled_curve_is_within_a_few_points_of_exact(
    zipf_case: tuple[Stream, list[int], list[float]], rate: float, max_keys: int, tolerance: float
) -> None:
    stream, capacities, exact = zipf_case
    curve = MissRatioCurve(rate=rate, max_keys=max_keys)
    got = estimate(curve, stream, capacities)
    errors = [abs(a - b) for a, b in zip(got, exact, strict=True)]
    assert max(errors) <= tolerance, (exact, got)
    assert curve.rate <= rate + 1e-9
    assert curve.tracked_keys <= max_keys


def test_curve_never_increases_with_capacity() -> None:
    stream = zipf_stream(seed=1, keys=5_000, length=50_000, alpha=1.0)
    ratios = estimate(MissRatioCurve(rate=0.2), stream, capacity_grid(1_000, 10**8, 40))
    assert ratios == sorted(ratios, reverse=True)
    assert all(0.0 <= ratio <= 1.0 for ratio in ratios)


def test_plain_estimator_without_adjustment_is_still_exact_at_rate_one() -> None:
    stream = random_stream(5, keys=40, length=1000, weights=(1, 9))
    capacities = [5, 50, 150]
    plain = MissRatioCurve(rate=1.0, adjust=False, precision_bits=16)
    assert estimate(plain, stream, capacities) == pytest.approx(exact_lru(stream, capacities))


# --- memory bound ------------------------------------------------------------------------------


def test_key_bound_lowers_the_rate_and_holds() -> None:
    curve = MissRatioCurve(rate=1.0, max_keys=500)
    stream = [(f"distinct-{i}", 100) for i in range(20_000)] * 2
    for key, weight in stream:
        curve.record(key, weight)
        assert curve.tracked_keys <= 500
    assert curve.rate < 500 / 20_000 * 1.2  # about max_keys / distinct keys
    assert curve.references == 40_000
    assert curve.histogram_buckets <= 500
    # Every key was seen twice, 20,000 keys apart: a miss below 2 MB, a hit above.
    (_, below), (_, above) = curve.curve([1_000_000, 4_000_000])
    assert below == pytest.approx(1.0, abs=0.01)
    assert above == pytest.approx(0.5, abs=0.1)


def test_unsampled_keys_leave_no_state() -> None:
    unsampled = [key for key in ("a", "e", "f") if sample_hash(key) >= HASH_SPACE // 2]
    assert unsampled == ["a", "e", "f"]
    curve = MissRatioCurve(rate=0.5)
    for key in unsampled * 100:
        curve.record(key, 10)
    assert curve.tracked_keys == 0
    assert curve.references == 300
    assert curve.curve([0, 100]) == []  # nothing sampled: no estimate rather than a guess


# --- weights -----------------------------------------------------------------------------------


def test_weights_are_bytes_doubling_them_doubles_the_capacity_needed() -> None:
    base = random_stream(6, keys=100, length=3000, weights=(1, 50))
    doubled = [(key, 2 * weight) for key, weight in base]
    capacities = [100, 500, 1_000, 2_000]
    small = estimate(MissRatioCurve(rate=1.0, precision_bits=16), base, capacities)
    large = estimate(
        MissRatioCurve(rate=1.0, precision_bits=16), doubled, [2 * c for c in capacities]
    )
    assert large == pytest.approx(small)


def test_one_large_value_pushes_small_ones_out() -> None:
    """Counting entries would call a 1 KB cache enough for three keys; in bytes it is not."""
    stream = [("small-1", 10), ("big", 2_000), ("small-2", 10)] * 20
    capacities = [1_024, 2_019, 2_020]
    got = estimate(MissRatioCurve(rate=1.0, precision_bits=16), stream, capacities)
    assert got == pytest.approx(exact_lru(stream, capacities))
    assert got == pytest.approx([1.0, 1.0, 3 / 60])


# --- inputs and helpers ------------------------------------------------------------------------


def test_hash_is_stable_across_processes() -> None:
    """Fixed values: every agent (and every restart) samples the same keys."""
    assert [sample_hash(key) for key in ("", "orders:42", "k0")] == [0, 5417269, 4233331343]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"rate": 0.0}, id="zero-rate"),
        pytest.param({"rate": 1.5}, id="rate-above-one"),
        pytest.param({"max_keys": 0}, id="no-keys"),
        pytest.param({"precision_bits": 0}, id="no-precision"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        MissRatioCurve(**kwargs)


def test_negative_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        MissRatioCurve().curve([-1])


@pytest.mark.parametrize(
    ("low", "high", "points", "expected"),
    [
        pytest.param(1, 1_000, 4, [1, 10, 100, 1_000], id="decades"),
        pytest.param(5, 5, 10, [5], id="single-size"),
        pytest.param(1, 4, 64, [1, 2, 3, 4], id="duplicates-collapse"),
        pytest.param(10, 20, 1, [20], id="one-point-is-the-top"),
    ],
)
def test_capacity_grid(low: int, high: int, points: int, expected: list[int]) -> None:
    assert capacity_grid(low, high, points) == expected
