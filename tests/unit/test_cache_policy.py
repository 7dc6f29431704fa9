"""L1 eviction policies: LRU order, W-TinyLFU's regions, admission, sketch and hill climber,
weights (bytes), update/remove/resize, and determinism. Integer keys throughout, because
``hash(int)`` is the same in every process (``str`` hashes vary with PYTHONHASHSEED)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from agent.cache.policy import ADMIT_HASHDOS_THRESHOLD, LRU, PERCENT_MAIN, FrequencySketch, WTinyLFU

Policy = Any  # LRU[int] | WTinyLFU[int]: the tests drive both through the same protocol
MakePolicy = Callable[[int], Policy]


def request(policy: Policy, key: int, weight: int = 1) -> list[int]:
    """One request as the store makes it: a hit is ``access``; a miss is ``record_miss`` then
    ``insert``. Returns the evicted keys."""
    if key in policy:
        policy.access(key)
        return []
    policy.record_miss(key)
    evicted: list[int] = policy.insert(key, weight)
    return evicted


def requests(policy: Policy, keys: Iterable[int]) -> list[int]:
    evicted: list[int] = []
    for key in keys:
        evicted += request(policy, key)
    return evicted


def seeded(capacity: int, **kwargs: Any) -> WTinyLFU[int]:
    return WTinyLFU(capacity, rng=random.Random(0), **kwargs)


class FixedDice(random.Random):
    """An injected RNG whose 7-bit draws are fixed: 0 admits a warm loser, 1 never does."""

    def __init__(self, bits: int) -> None:
        super().__init__(0)
        self.bits = bits

    def getrandbits(self, k: int, /) -> int:
        return self.bits


POLICIES = [
    pytest.param(LRU, id="lru"),
    pytest.param(lambda capacity: seeded(capacity, weighted=True), id="wtinylfu"),
]


# ---- LRU ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "evicted", "resident"),
    [
        pytest.param([1, 2, 3, 4], [1], [2, 3, 4], id="evicts-least-recent-first"),
        pytest.param([1, 2, 3, 1, 4], [2], [3, 1, 4], id="hit-refreshes-recency"),
        pytest.param([1, 2, 3, 4, 5, 6], [1, 2, 3], [4, 5, 6], id="evicts-in-arrival-order"),
        pytest.param([1, 2, 3, 3, 2, 1, 4, 5], [3, 2], [1, 4, 5], id="evicts-in-recency-order"),
    ],
)
def test_lru_eviction_order(keys: list[int], evicted: list[int], resident: list[int]) -> None:
    lru: LRU[int] = LRU(3)
    assert requests(lru, keys) == evicted
    assert lru.keys() == resident


def test_lru_heavy_insert_evicts_just_enough_least_recent_weight() -> None:
    lru: LRU[int] = LRU(10)
    for key in (1, 2, 3):
        lru.insert(key, 3)
    assert lru.insert(4, 7) == [1, 2]
    assert (lru.keys(), lru.weight) == ([3, 4], 10)


# ---- W-TinyLFU regions ------------------------------------------------------------------------

# Capacity 10: window 1, main 9 of which protected at most 7 (BoundedLocalCache's 1 % / 80 %).
FULL = list(range(10))  # after these: window [9], probation [0..8]


@pytest.mark.parametrize(
    ("capacity", "keys", "regions"),
    [
        pytest.param(
            10,
            [0, 1, 2, 3],
            {"window": [3], "probation": [0, 1, 2], "protected": []},
            id="new-key-enters-window-and-pushes-its-lru-to-probation",
        ),
        pytest.param(
            1000,
            [*range(10), 3, 10],
            {"window": [1, 2, 4, 5, 6, 7, 8, 9, 3, 10], "probation": [0], "protected": []},
            id="window-hit-refreshes-window-recency",
        ),
        pytest.param(
            10,
            [*FULL, 4, 2],
            {"window": [9], "probation": [0, 1, 3, 5, 6, 7, 8], "protected": [4, 2]},
            id="probation-hit-promotes-to-protected-mru",
        ),
        pytest.param(
            10,
            [*FULL, *range(8)],
            {"window": [9], "probation": [8, 0], "protected": [1, 2, 3, 4, 5, 6, 7]},
            id="protected-overflow-demotes-its-lru-to-probation-mru",
        ),
        pytest.param(
            10,
            [*FULL, 0, 1, 2, 0],
            {"window": [9], "probation": [3, 4, 5, 6, 7, 8], "protected": [1, 2, 0]},
            id="protected-hit-refreshes-protected-recency",
        ),
    ],
)
def test_wtinylfu_regions_in_recency_order(
    capacity: int, keys: list[int], regions: dict[str, list[int]]
) -> None:
    policy = seeded(capacity)
    assert requests(policy, keys) == []
    assert policy.regions() == regions
    assert policy.window_capacity == capacity - int(PERCENT_MAIN * capacity)


def test_wtinylfu_victims_leave_probation_lru_first() -> None:
    policy = seeded(10)
    requests(policy, [*FULL, 2])  # 2 is protected: never a victim while probation has entries
    # Each new key pushes the window's entry (a newer, more frequent key) into probation, where it
    # beats probation's least recent entry, whose requests predate the sketch.
    assert requests(policy, [100, 101, 102]) == [0, 1, 3]
    assert policy.region_of(2) == "protected"


# ---- W-TinyLFU admission ----------------------------------------------------------------------


def full_cache_before_admission(
    victim_requests: int, candidate_requests: int, rng: random.Random
) -> WTinyLFU[int]:
    """A full cache of 100 whose probation LRU entry (the victim, key 1) and window entry
    (the next candidate, key 500) were requested the given numbers of times."""
    policy: WTinyLFU[int] = WTinyLFU(100, rng=rng)
    warmup = range(1000, 1100)
    requests(policy, warmup)  # the sketch starts counting once the cache is half full
    for key in warmup:
        policy.remove(key)
    for _ in range(victim_requests - 1):
        policy.record_miss(1)
    requests(policy, range(1, 100))  # window [99], probation [1..98]
    request(policy, 500)  # window [500], probation [1..99]: full
    for _ in range(candidate_requests - 1):
        policy.access(500)
    assert (policy.frequency(1), policy.frequency(500)) == (victim_requests, candidate_requests)
    return policy


@pytest.mark.parametrize(
    ("victim_requests", "candidate_requests", "dice", "loser"),
    [
        pytest.param(1, 4, 1, 1, id="frequent-candidate-evicts-rare-victim"),
        pytest.param(4, 1, 1, 500, id="rare-candidate-is-rejected-by-frequent-victim"),
        pytest.param(3, 3, 1, 500, id="tie-keeps-the-resident-victim"),
        pytest.param(9, 6, 1, 500, id="warm-loser-is-rejected-on-most-draws"),
        pytest.param(9, 6, 0, 1, id="warm-loser-is-admitted-on-a-1-in-128-draw"),
        pytest.param(9, 5, 0, 500, id="cooler-loser-is-never-admitted-at-random"),
    ],
)
def test_wtinylfu_admission(
    victim_requests: int, candidate_requests: int, dice: int, loser: int
) -> None:
    policy = full_cache_before_admission(victim_requests, candidate_requests, FixedDice(dice))
    assert request(policy, 600) == [loser]
    winner = 500 if loser == 1 else 1
    assert winner in policy
    assert policy.region_of(600) == "window"


def test_hashdos_threshold_is_caffeines() -> None:
    assert ADMIT_HASHDOS_THRESHOLD == 6


def test_wtinylfu_resists_a_scan_that_flushes_lru() -> None:
    hot = list(range(60)) * 20  # over half the capacity, so the sketch is counting
    scan = range(10_000, 10_500)  # five times the capacity
    for make in (LRU, seeded):
        policy = make(100)
        requests(policy, hot)
        requests(policy, scan)
        survivors = sum(key in policy for key in range(60))
        assert survivors == (0 if make is LRU else 60)


# ---- frequency sketch -------------------------------------------------------------------------


def test_sketch_counts_saturate_at_15() -> None:
    sketch = FrequencySketch()
    sketch.ensure_capacity(64)
    for n in range(1, 21):
        sketch.increment(42)
        assert sketch.frequency(42) == min(n, 15)
    assert sketch.frequency(43) == 0


def test_sketch_ignores_increments_before_it_is_allocated() -> None:
    sketch = FrequencySketch()
    sketch.increment(1)
    assert (sketch.initialized, sketch.frequency(1)) == (False, 0)


def test_sketch_puts_a_keys_counters_in_one_block_one_per_quarter() -> None:
    sketch = FrequencySketch()
    sketch.ensure_capacity(1000)
    assert (sketch.table_words, sketch.sample_size) == (1024, 10_000)
    for key in (0, 1, 12345, -7, 2**40):
        before = sketch.counters()
        sketch.increment(key)
        changed = [
            i for i, (a, b) in enumerate(zip(before, sketch.counters(), strict=True)) if a != b
        ]
        assert len({i // 128 for i in changed}) == 1  # one 64-byte block of 128 counters
        assert sorted(i % 128 // 32 for i in changed) == [0, 1, 2, 3]


def test_sketch_reset_halves_every_counter() -> None:
    sketch = FrequencySketch()
    sketch.ensure_capacity(64)
    rng = random.Random(3)
    for _ in range(300):
        sketch.increment(rng.randrange(100))
    before, size = sketch.counters(), sketch.size
    sketch.reset()
    assert sketch.counters() == bytes(c >> 1 for c in before)
    odd = sum(c & 1 for c in before)
    assert sketch.size == (size - odd // 4) // 2


def test_sketch_ages_after_sample_size_increments() -> None:
    sketch = FrequencySketch()
    sketch.ensure_capacity(16)
    assert sketch.sample_size == 160
    for _ in range(15):
        sketch.increment(7)
    assert sketch.frequency(7) == 15
    key = 1000
    while True:  # other keys until the 160th counted increment triggers the reset
        size = sketch.size
        sketch.increment(key)
        key += 1
        if sketch.size < size:
            break
        assert key < 2000, "no reset"
    assert sketch.frequency(7) == 7
    assert max(sketch.counters()) <= 7


# ---- weights ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("make", POLICIES)
def test_byte_weight_bound_is_never_exceeded(make: MakePolicy, seed: int) -> None:
    rng = random.Random(seed)
    policy = make(1000)
    resident: dict[int, int] = {}

    def apply(evicted: list[int]) -> None:
        for key in evicted:
            assert key in resident, f"evicted {key}, which was not resident"
            assert key not in policy
            del resident[key]

    for _ in range(4000):
        roll, key = rng.random(), rng.randrange(300)
        if roll < 0.6:
            if key in policy:
                policy.access(key)
            else:
                policy.record_miss(key)
                resident[key] = weight = rng.randint(1, 120)
                apply(policy.insert(key, weight))
        elif roll < 0.75 and key in resident:
            resident[key] = weight = rng.randint(1, 200)
            apply(policy.update(key, weight))
        elif roll < 0.85:
            policy.remove(key)
            resident.pop(key, None)
        elif roll < 0.88:
            resident[key] = weight = policy.capacity + 1
            if key not in policy:
                policy.record_miss(key)
            apply(policy.insert(key, weight))
        elif roll < 0.9:
            apply(policy.resize(rng.randint(200, 1500)))
        assert policy.weight <= policy.capacity
        assert policy.weight == sum(resident.values())
        assert len(policy) == len(resident)
        if isinstance(policy, WTinyLFU):
            regions = policy.regions()
            assert policy.window_weight == sum(resident[k] for k in regions["window"])
            assert policy.protected_weight == sum(resident[k] for k in regions["protected"])
    assert all(key in policy for key in resident)


@pytest.mark.parametrize("make", POLICIES)
def test_entry_heavier_than_the_capacity_is_evicted_at_once_and_alone(make: MakePolicy) -> None:
    policy = make(100)
    for key in range(1, 6):
        policy.insert(key, 10)
    assert policy.insert(99, 101) == [99]
    assert 99 not in policy
    assert policy.weight == 50
    assert all(key in policy for key in range(1, 6))


@pytest.mark.parametrize("make", POLICIES)
@pytest.mark.parametrize(
    ("key", "weight", "evicted_self", "weight_after"),
    [
        pytest.param(3, 5, False, 45, id="shrinking-evicts-nothing"),
        pytest.param(3, 20, False, 60, id="growing-within-capacity-evicts-nothing"),
        pytest.param(3, 101, True, 40, id="growing-beyond-capacity-evicts-the-key-itself"),
        pytest.param(9, 10, False, 60, id="updating-an-absent-key-inserts-it"),
    ],
)
def test_update_changes_a_resident_weight(
    make: MakePolicy, key: int, weight: int, evicted_self: bool, weight_after: int
) -> None:
    policy = make(100)
    for k in range(1, 6):
        policy.insert(k, 10)
    evicted = policy.update(key, weight)
    assert evicted == ([key] if evicted_self else [])
    assert (key in policy) is not evicted_self
    assert policy.weight == weight_after


@pytest.mark.parametrize("make", POLICIES)
def test_update_that_overflows_evicts_others_down_to_the_bound(make: MakePolicy) -> None:
    policy = make(100)
    weights = dict.fromkeys(range(1, 11), 10)
    for key, weight in weights.items():
        policy.insert(key, weight)
    weights[5] = 35
    evicted = policy.update(5, 35)
    assert evicted
    assert policy.weight == sum(w for k, w in weights.items() if k not in evicted) <= 100


# Capacity 200: window 2, protected at most 158; keys of weight 1 then one grown to 2.
@pytest.mark.parametrize(
    ("keys", "updated", "region"),
    [
        pytest.param([*FULL], 9, "window", id="in-window-stays-in-window"),
        pytest.param([*FULL], 4, "protected", id="in-probation-counts-as-a-hit-and-promotes"),
        pytest.param([*FULL, 4], 4, "protected", id="in-protected-stays-protected"),
    ],
)
def test_wtinylfu_update_keeps_region_weights_in_step(
    keys: list[int], updated: int, region: str
) -> None:
    policy = seeded(200, weighted=True)
    requests(policy, keys)
    assert policy.update(updated, 2) == []
    assert policy.region_of(updated) == region
    assert policy.weight == len(FULL) + 1
    regions = policy.regions()
    weights = {k: 2 if k == updated else 1 for k in FULL}
    assert policy.window_weight == sum(weights[k] for k in regions["window"])
    assert policy.protected_weight == sum(weights[k] for k in regions["protected"])


# ---- remove, resize ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", POLICIES)
def test_remove_forgets_a_key_and_ignores_an_absent_one(make: MakePolicy) -> None:
    policy = make(100)
    for k in range(1, 6):
        policy.insert(k, 10)
    policy.remove(3)
    policy.remove(42)
    assert (3 in policy, len(policy), policy.weight) == (False, 4, 40)


@pytest.mark.parametrize(
    ("keys", "key", "region"),
    [
        pytest.param([*FULL], 9, "window", id="from-window"),
        pytest.param([*FULL], 4, "probation", id="from-probation"),
        pytest.param([*FULL, 4], 4, "protected", id="from-protected"),
    ],
)
def test_wtinylfu_remove_from_each_region(keys: list[int], key: int, region: str) -> None:
    policy = seeded(10)
    requests(policy, keys)
    assert policy.region_of(key) == region
    policy.remove(key)
    assert key not in policy
    assert (policy.weight, len(policy)) == (9, 9)
    assert policy.window_weight == len(policy.regions()["window"])
    assert policy.protected_weight == len(policy.regions()["protected"])


@pytest.mark.parametrize("make", POLICIES)
def test_resize_shrinking_evicts_down_to_the_new_bound(make: MakePolicy) -> None:
    policy = make(100)
    requests(policy, range(100))
    requests(policy, range(0, 100, 3))
    evicted = policy.resize(10)
    assert (len(policy), policy.weight, policy.capacity) == (10, 10, 10)
    assert len(set(evicted)) == 90
    assert not set(evicted) & {k for k in range(100) if k in policy}
    assert policy.resize(50) == []
    if isinstance(policy, WTinyLFU):
        assert policy.window_capacity == 50 - int(PERCENT_MAIN * 50)


def test_invalid_weights_and_capacities_are_rejected() -> None:
    with pytest.raises(ValueError, match="capacity"):
        WTinyLFU(-1)
    with pytest.raises(ValueError, match="weight"):
        LRU(10).insert(1, 0)
    with pytest.raises(ValueError, match="weight"):
        seeded(10).insert(1, -3)


# ---- determinism --------------------------------------------------------------------------


def zipf_keys(count: int, seed: int, universe: int = 2000) -> list[int]:
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(universe)]
    return rng.choices(range(universe), weights=weights, k=count)


def test_wtinylfu_is_deterministic_given_its_seed() -> None:
    keys = zipf_keys(30_000, seed=5)

    def run(seed: int) -> tuple[list[int], int]:
        policy: WTinyLFU[int] = WTinyLFU(200, rng=random.Random(seed))
        evicted = requests(policy, keys)
        return evicted, policy.window_capacity

    assert run(7) == run(7)


# ---- hill climber -----------------------------------------------------------------------------


def recency_biased(count: int, seed: int, base: int = 0) -> list[int]:
    """Every key is requested 3 times within 60 requests and never again: only recency helps
    (a small window hands new keys to the frequency filter, which rejects them)."""
    rng = random.Random(seed)
    due: dict[int, list[int]] = {}
    keys: list[int] = []
    fresh = base
    for t in range(count):
        pending = due.pop(t, [])
        if pending and rng.random() < 0.9:
            key = pending.pop()
        else:
            fresh += 1
            key = fresh
            for _ in range(3):
                due.setdefault(t + rng.randint(1, 60), []).append(key)
        due.setdefault(t + 1, []).extend(pending)
        keys.append(key)
    return keys


def frequency_biased(count: int, seed: int, base: int = 10**7) -> list[int]:
    """A loop over 120 keys (more than the cache holds) plus 10 % one-off keys: only the
    frequency filter helps, and every entry the window holds is one fewer loop hit."""
    rng = random.Random(seed)
    return [
        base + 120 + rng.randrange(10**6) if rng.random() < 0.1 else base + t % 120
        for t in range(count)
    ]


def test_hill_climber_grows_the_window_on_a_recency_biased_workload() -> None:
    policy = seeded(100)
    assert policy.window_capacity == 1
    requests(policy, recency_biased(60_000, seed=1))
    assert policy.window_capacity >= 20


def test_hill_climber_shrinks_the_window_on_a_frequency_biased_workload() -> None:
    policy = seeded(100)
    requests(policy, recency_biased(60_000, seed=1))
    grown = policy.window_capacity
    requests(policy, frequency_biased(60_000, seed=1))
    assert policy.window_capacity <= 10 < grown


def test_fixed_window_does_not_move() -> None:
    policy = seeded(100, adaptive=False)
    requests(policy, recency_biased(30_000, seed=1))
    assert policy.window_capacity == 1
