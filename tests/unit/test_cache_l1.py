"""The agent's L1 store: TTLs, the byte bound, versions, invalidation and single-flight loading."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import pytest

from agent.cache.l1 import (
    ENTRY_OVERHEAD_BYTES,
    MISS,
    Key,
    L1Cache,
    Loaded,
    PolicyFactory,
    entry_weight,
)
from agent.cache.policy import LRU, WTinyLFU
from agent.cache.policy_api import Policy

K = TypeVar("K", bound=Hashable)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLRU(LRU[K]):
    """The real LRU policy, plus keys it never admits (to test refused puts) and a miss count."""

    def __init__(self, capacity: int, refuse: frozenset[Any] = frozenset()) -> None:
        super().__init__(capacity)
        self.refuse = refuse
        self.misses = 0

    def record_miss(self, key: K) -> None:
        self.misses += 1
        super().record_miss(key)

    def insert(self, key: K, weight: int) -> list[K]:
        if key in self.refuse:
            return [key]
        return super().insert(key, weight)

    def update(self, key: K, weight: int) -> list[K]:
        if key in self.refuse:
            self.remove(key)
            return [key]
        return super().update(key, weight)


class Harness:
    """A cache on a fake clock, with the policy it built kept at hand."""

    def __init__(
        self,
        capacity: int = 1 << 20,
        *,
        refuse: frozenset[Any] = frozenset(),
        factory: PolicyFactory | None = None,
        **kwargs: Any,
    ) -> None:
        self.clock = FakeClock()
        self.policies: list[Any] = []

        def build(capacity: int) -> Any:
            policy = factory(capacity) if factory else FakeLRU[Key](capacity, refuse)
            self.policies.append(policy)
            return policy

        self.cache = L1Cache(capacity, self.clock, policy_factory=build, **kwargs)

    @property
    def policy(self) -> Any:
        return self.policies[0]

    def value(self, ns: str, key: str) -> bytes | None:
        lookup = self.cache.get(ns, key)
        return None if lookup.entry is None or lookup.state == "negative" else lookup.entry.value


def fake_lru(capacity: int) -> Policy[Key]:
    return FakeLRU[Key](capacity)


def seeded_wtinylfu(capacity: int) -> Policy[Key]:
    return WTinyLFU[Key](capacity, weighted=True, rng=random.Random(7))


POLICIES = [
    pytest.param(fake_lru, id="fake-lru"),
    pytest.param(LRU[Key], id="lru"),
    pytest.param(seeded_wtinylfu, id="w-tinylfu"),
]


# -- TTLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "ns", "ttl", "age", "state"),
    [
        pytest.param({}, "a", None, 299.9, "fresh", id="default-ttl-still-fresh"),
        pytest.param({}, "a", None, 300, "miss", id="default-ttl-expires-at-deadline"),
        pytest.param({"namespace_ttls": {"short": 10}}, "short", None, 9.9, "fresh", id="ns-ttl"),
        pytest.param(
            {"namespace_ttls": {"short": 10}}, "short", None, 10, "miss", id="ns-ttl-expires"
        ),
        pytest.param(
            {"namespace_ttls": {"short": 10}}, "other", None, 10, "fresh", id="ns-ttl-only-its-ns"
        ),
        pytest.param(
            {"namespace_ttls": {"short": 10}}, "short", 60, 30, "fresh", id="explicit-ttl-wins"
        ),
        pytest.param({"max_ttl_seconds": 100}, "a", 1000, 100, "miss", id="max-ttl-clamps"),
        pytest.param(
            {"max_ttl_seconds": 100, "namespace_ttls": {"a": 500}},
            "a",
            None,
            100,
            "miss",
            id="max-ttl-clamps-ns-ttl",
        ),
        pytest.param({"stale_seconds": 30}, "a", 10, 20, "stale", id="stale-window-serves-stale"),
        pytest.param({"stale_seconds": 30}, "a", 10, 40, "miss", id="stale-window-ends"),
    ],
)
def test_entries_expire_by_ttl(
    kwargs: dict[str, Any], ns: str, ttl: float | None, age: float, state: str
) -> None:
    h = Harness(**kwargs)
    assert h.cache.put(ns, "k", b"v", ttl_seconds=ttl)
    h.clock.advance(age)
    lookup = h.cache.get(ns, "k")
    assert lookup.state == state
    if state != "miss":
        assert lookup.entry is not None
        assert lookup.entry.value == b"v"


def test_expired_entry_is_removed_on_get_and_counted() -> None:
    h = Harness()
    h.cache.put("a", "k", b"v", ttl_seconds=5)
    h.clock.advance(5)
    assert h.cache.get("a", "k") is MISS
    assert len(h.cache) == 0
    assert h.cache.weight == 0 == h.policy.weight
    stats = h.cache.stats()["a"]
    assert (stats.expirations, stats.misses, stats.entries, stats.bytes) == (1, 1, 0, 0)


@pytest.mark.parametrize("ttl", [pytest.param(0, id="zero"), pytest.param(-1, id="negative")])
def test_put_with_non_positive_ttl_is_refused_and_drops_old_value(ttl: float) -> None:
    h = Harness()
    h.cache.put("a", "k", b"old")
    assert not h.cache.put("a", "k", b"new", ttl_seconds=ttl)
    assert h.cache.get("a", "k") is MISS


def test_entry_records_stored_and_expiry_times() -> None:
    h = Harness()
    h.cache.put("a", "k", b"v", ttl_seconds=7, tags=("t",), version=3)
    entry = h.cache.get("a", "k").entry
    assert entry is not None
    assert (entry.value, entry.version, entry.tags) == (b"v", 3, ("t",))
    assert (entry.stored_at, entry.expires_at) == (h.clock.now, h.clock.now + 7)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"default_ttl_seconds": -1}, id="default-ttl"),
        pytest.param({"stale_seconds": -1}, id="stale"),
        pytest.param({"namespace_ttls": {"a": -5}}, id="namespace-ttl"),
        pytest.param({"max_tombstones": -1}, id="max-tombstones"),
        pytest.param({"tombstone_seconds": float("nan")}, id="nan"),
    ],
)
def test_negative_settings_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        Harness(**kwargs)


# -- the byte bound ----------------------------------------------------------------------------


def test_weight_is_exact_through_put_overwrite_and_delete() -> None:
    h = Harness()
    h.cache.put("ns", "key", b"x" * 100, tags=("t1", "tag2"))
    first = ENTRY_OVERHEAD_BYTES + 2 + 3 + 100 + 2 + 4
    assert entry_weight("ns", "key", b"x" * 100, ("t1", "tag2")) == first
    assert h.cache.weight == first == h.policy.weight
    h.cache.put("ns", "other", b"")
    second = ENTRY_OVERHEAD_BYTES + 2 + 5
    assert h.cache.weight == first + second == h.policy.weight
    h.cache.put("ns", "key", b"y" * 10)
    assert h.cache.weight == ENTRY_OVERHEAD_BYTES + 2 + 3 + 10 + second == h.policy.weight
    h.cache.delete("ns", "key")
    assert h.cache.weight == second == h.policy.weight
    assert h.cache.stats()["ns"].bytes == second


def check_bound(h: Harness) -> None:
    cache, policy = h.cache, h.policy
    assert cache.weight == policy.weight <= cache.capacity_bytes
    assert len(cache) == len(policy)
    stats = cache.stats().values()
    assert sum(s.bytes for s in stats) == cache.weight
    assert sum(s.entries for s in stats) == len(cache)


@pytest.mark.parametrize("factory", POLICIES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_byte_bound_holds_across_random_operations(factory: PolicyFactory, seed: int) -> None:
    rng = random.Random(seed)
    h = Harness(20_000, factory=factory, stale_seconds=5, negative_ttl_seconds=3)
    namespaces = ["a", "bb", "ccc"]
    for _ in range(5000):
        ns = rng.choice(namespaces)
        key = f"k{rng.randrange(200)}"
        op = rng.random()
        if op < 0.45:
            size = rng.choice([0, 10, 100, 1000, 5000, 25_000])
            tags = tuple(rng.sample(["red", "green", "blue"], rng.randrange(3)))
            h.cache.put(
                ns,
                key,
                b"v" * size,
                ttl_seconds=rng.choice([None, 1, 10]),
                tags=tags,
                version=rng.randrange(4),
            )
        elif op < 0.55:
            h.cache.put_negative(ns, key)
        elif op < 0.75:
            h.cache.get(ns, key)
        elif op < 0.85:
            h.cache.delete(ns, key, version=rng.choice([None, 1, 2]))
        elif op < 0.88:
            h.cache.invalidate_tag(ns, rng.choice(["red", "green"]))
        elif op < 0.90:
            h.cache.invalidate_prefix(ns, f"k{rng.randrange(10)}")
        elif op < 0.95:
            h.clock.advance(rng.random() * 4)
            h.cache.expire(max_items=rng.randrange(1, 50))
        elif op < 0.96:
            h.cache.resize(rng.choice([5000, 20_000, 40_000]))
        else:
            h.cache.get(ns, f"absent{rng.randrange(50)}")
        check_bound(h)
    assert len(h.cache) > 0


@pytest.mark.parametrize(
    "capacity",
    [pytest.param(ENTRY_OVERHEAD_BYTES, id="tiny"), pytest.param(10_000, id="ordinary")],
)
def test_value_heavier_than_capacity_is_refused_and_drops_old_value(capacity: int) -> None:
    h = Harness(capacity)
    stored = h.cache.put("a", "k", b"")  # fits only in the ordinary cache
    assert not h.cache.put("a", "k", b"x" * capacity)
    assert h.cache.get("a", "k") is MISS
    assert h.cache.weight == 0 == h.policy.weight
    assert h.cache.stats()["a"].rejections == (1 if stored else 2)


def test_put_not_admitted_by_policy_is_refused_and_drops_old_value() -> None:
    h = Harness(refuse=frozenset({("a", "cold")}))
    assert not h.cache.put("a", "cold", b"v")
    assert h.cache.get("a", "cold") is MISS
    assert h.cache.put("a", "warm", b"v")
    assert h.cache.stats()["a"].rejections == 1


def test_overwrite_the_policy_evicts_leaves_no_value() -> None:
    h = Harness()
    h.cache.put("a", "k", b"old")
    h.policy.refuse = frozenset({("a", "k")})
    assert not h.cache.put("a", "k", b"new")
    assert h.cache.get("a", "k") is MISS
    stats = h.cache.stats()["a"]
    assert (stats.rejections, stats.invalidations) == (1, 1)
    check_bound(h)


def test_evictions_are_counted_in_the_victims_namespace() -> None:
    one = entry_weight("a", "k0", b"x" * 100)
    h = Harness(2 * one)
    h.cache.put("a", "k0", b"x" * 100)
    h.cache.put("a", "k1", b"x" * 100)
    h.cache.put("b", "k2", b"x" * 100)
    assert h.cache.get("a", "k0") is MISS
    stats = h.cache.stats()
    assert (stats["a"].evictions, stats["a"].entries) == (1, 1)
    assert (stats["b"].evictions, stats["b"].entries) == (0, 1)


def test_resize_evicts_to_fit_and_counts() -> None:
    one = entry_weight("a", "k0", b"")
    h = Harness(10 * one)
    for i in range(10):
        h.cache.put("a", f"k{i}", b"")
    assert h.cache.resize(4 * one) == 6
    assert h.cache.capacity_bytes == 4 * one
    assert len(h.cache) == 4
    assert h.cache.stats()["a"].evictions == 6
    check_bound(h)


def test_default_policy_keeps_hot_keys_through_a_scan() -> None:
    clock = FakeClock()
    one = entry_weight("a", "hot00", b"x" * 100)
    cache = L1Cache(100 * one, clock)
    hot = [f"hot{i:02d}" for i in range(20)]
    for _ in range(20):
        for key in hot:
            if cache.get("a", key) is MISS:
                cache.put("a", key, b"x" * 100)
    for i in range(2000):
        key = f"scan{i:04d}"
        if cache.get("a", key) is MISS:
            cache.put("a", key, b"x" * 100)
    assert all(cache.get("a", key).state == "fresh" for key in hot)
    assert cache.weight <= cache.capacity_bytes


# -- negative caching --------------------------------------------------------------------------


def test_negative_entry_is_served_until_negative_ttl() -> None:
    h = Harness(negative_ttl_seconds=5, stale_seconds=100)
    assert h.cache.put_negative("a", "k")
    lookup = h.cache.get("a", "k")
    assert lookup.state == "negative"
    assert lookup.entry is not None
    assert lookup.entry.value == b""
    h.clock.advance(5)
    assert h.cache.get("a", "k") is MISS  # negative entries have no stale window
    assert h.cache.stats()["a"].negative_hits == 1


@pytest.mark.parametrize(
    ("version", "expected_put", "expected_value"),
    [
        pytest.param(0, True, None, id="replaces-unversioned-value"),
        pytest.param(3, False, b"v", id="never-replaces-versioned-value"),
    ],
)
def test_negative_entry_versus_resident_value(
    version: int, expected_put: bool, expected_value: bytes | None
) -> None:
    h = Harness()
    h.cache.put("a", "k", b"v", version=version)
    assert h.cache.put_negative("a", "k") is expected_put
    assert h.value("a", "k") == expected_value


def test_negative_caching_disabled_by_zero_ttl() -> None:
    h = Harness(negative_ttl_seconds=0)
    assert not h.cache.put_negative("a", "k")
    assert h.cache.put_negative("a", "k", ttl_seconds=2)
    assert h.cache.get("a", "k").state == "negative"


def test_negative_entry_ignores_tombstones() -> None:
    h = Harness()
    h.cache.delete("a", "k", version=5)
    assert h.cache.put_negative("a", "k")


# -- versions ----------------------------------------------------------------------------------

# Steps: ("put", version, value, accepted), ("delete", version, removed), ("advance", seconds).
VERSION_CASES = [
    pytest.param(
        {},
        [("put", 1, b"a", True), ("delete", 2, True), ("put", 1, b"a", False)],
        None,
        id="put-after-delete-with-older-version-refused",
    ),
    pytest.param(
        {},
        [("delete", 2, False), ("put", 2, b"b", False)],
        None,
        id="put-with-tombstone-version-refused",
    ),
    pytest.param(
        {},
        [("put", 1, b"a", True), ("delete", 2, True), ("put", 3, b"c", True)],
        b"c",
        id="put-newer-than-tombstone-accepted",
    ),
    pytest.param(
        {},
        [("delete", 5, False), ("put", 4, b"old", False)],
        None,
        id="invalidation-before-the-stale-put-still-fences",
    ),
    pytest.param(
        {},
        [("delete", 5, False), ("advance", 59.9, None), ("put", 4, b"old", False)],
        None,
        id="tombstone-holds-until-expiry",
    ),
    pytest.param(
        {},
        [("delete", 5, False), ("advance", 60, None), ("put", 4, b"old", True)],
        b"old",
        id="tombstone-expiry-lets-older-version-in",
    ),
    pytest.param(
        {"tombstone_seconds": 0},
        [("delete", 5, False), ("put", 4, b"old", True)],
        b"old",
        id="tombstones-disabled",
    ),
    pytest.param(
        {},
        [("delete", 5, False), ("delete", 3, False), ("put", 4, b"x", False)],
        None,
        id="tombstone-keeps-highest-version",
    ),
    pytest.param(
        {},
        [("put", 3, b"c", True), ("put", 2, b"b", False)],
        b"c",
        id="no-stepping-back",
    ),
    pytest.param(
        {},
        [("put", 3, b"c", True), ("put", 3, b"c2", True)],
        b"c2",
        id="same-version-refreshes",
    ),
    pytest.param(
        {},
        [("put", 0, b"a", True), ("put", 0, b"b", True)],
        b"b",
        id="unversioned-last-writer-wins",
    ),
    pytest.param(
        {},
        [("put", 3, b"a", True), ("put", 0, b"b", True)],
        b"b",
        id="unversioned-overwrites-versioned",
    ),
    pytest.param(
        {},
        [("delete", 3, False), ("put", 0, b"x", False)],
        None,
        id="unversioned-refused-after-versioned-delete",
    ),
    pytest.param(
        {},
        [("delete", 3, False), ("put", 5, b"new", True), ("put", 0, b"x", False)],
        None,
        id="refused-unversioned-put-drops-resident-value",
    ),
    pytest.param(
        {},
        [("delete", 3, False), ("advance", 60, None), ("put", 0, b"x", True)],
        b"x",
        id="unversioned-accepted-after-tombstone-expiry",
    ),
    pytest.param(
        {},
        [("put", 3, b"c", True), ("delete", None, True), ("put", 1, b"a", True)],
        b"a",
        id="unversioned-delete-leaves-no-tombstone",
    ),
    pytest.param(
        {},
        [("put", 5, b"e", True), ("delete", 3, False)],
        b"e",
        id="older-delete-keeps-newer-entry",
    ),
    pytest.param(
        {},
        [("put", 0, b"a", True), ("delete", 3, True)],
        None,
        id="versioned-delete-removes-unversioned-entry",
    ),
    pytest.param(
        {},
        [("put", 1, b"a", True), ("put", 2, b"x" * 2_000_000, False)],
        None,
        id="newer-put-refused-for-size-drops-older-value",
    ),
]


@pytest.mark.parametrize(("kwargs", "steps", "expected"), VERSION_CASES)
def test_version_rules(
    kwargs: dict[str, Any], steps: list[tuple[Any, ...]], expected: bytes | None
) -> None:
    h = Harness(**kwargs)
    for i, (op, *args) in enumerate(steps):
        if op == "put":
            version, value, accepted = args
            assert h.cache.put("a", "k", value, version=version) is accepted, f"step {i}"
        elif op == "delete":
            version, removed = args
            assert h.cache.delete("a", "k", version=version) is removed, f"step {i}"
        else:
            h.clock.advance(args[0])
    assert h.value("a", "k") == expected


def test_negative_versions_are_rejected() -> None:
    h = Harness()
    with pytest.raises(ValueError, match="version"):
        h.cache.put("a", "k", b"v", version=-1)
    with pytest.raises(ValueError, match="version"):
        h.cache.delete("a", "k", version=-1)


def test_tombstones_are_bounded_oldest_first() -> None:
    h = Harness(max_tombstones=2)
    for key in ("k1", "k2", "k3"):
        h.cache.delete("a", key, version=5)
    assert (h.cache.tombstones, h.cache.tombstones_dropped) == (2, 1)
    assert h.cache.put("a", "k1", b"old", version=1)  # its fence was dropped
    assert not h.cache.put("a", "k3", b"old", version=1)


def test_expired_tombstones_are_pruned_by_expire() -> None:
    h = Harness(tombstone_seconds=10)
    for i in range(5):
        h.cache.delete("a", f"k{i}", version=1)
    h.clock.advance(10)
    h.cache.expire()
    assert h.cache.tombstones == 0


# -- invalidation ------------------------------------------------------------------------------


def seeded() -> Harness:
    h = Harness()
    h.cache.put("a", "user:1", b"1", tags=("users", "eu"), version=1)
    h.cache.put("a", "user:2", b"2", tags=("users",), version=7)
    h.cache.put("a", "order:1", b"3", tags=("orders", "eu"))
    h.cache.put("b", "user:1", b"4", tags=("users",))
    return h


def remaining(h: Harness) -> set[tuple[str, str]]:
    keys = [("a", "user:1"), ("a", "user:2"), ("a", "order:1"), ("b", "user:1")]
    return {k for k in keys if h.value(*k) is not None}


@pytest.mark.parametrize(
    ("invalidate", "count", "left"),
    [
        pytest.param(
            lambda c: c.invalidate_prefix("a", "user:"),
            2,
            {("a", "order:1"), ("b", "user:1")},
            id="prefix-stays-in-its-namespace",
        ),
        pytest.param(
            lambda c: c.invalidate_prefix("a", "user:", version=5),
            1,
            {("a", "user:2"), ("a", "order:1"), ("b", "user:1")},
            id="versioned-prefix-keeps-newer-entries",
        ),
        pytest.param(
            lambda c: c.invalidate_prefix("a", ""),
            3,
            {("b", "user:1")},
            id="empty-prefix-is-the-whole-namespace",
        ),
        pytest.param(
            lambda c: c.invalidate_tag("a", "eu"),
            2,
            {("a", "user:2"), ("b", "user:1")},
            id="tag",
        ),
        pytest.param(
            lambda c: c.invalidate_tag("a", "users", version=5),
            1,
            {("a", "user:2"), ("a", "order:1"), ("b", "user:1")},
            id="versioned-tag-keeps-newer-entries",
        ),
        pytest.param(
            lambda c: c.invalidate_tag("a", "nothing"), 0, None, id="unknown-tag-removes-nothing"
        ),
        pytest.param(lambda c: c.invalidate_namespace("a"), 3, {("b", "user:1")}, id="namespace"),
        pytest.param(lambda c: c.clear(), 4, set(), id="clear"),
    ],
)
def test_invalidation_removes_matching_entries(
    invalidate: Callable[[L1Cache], int], count: int, left: set[tuple[str, str]] | None
) -> None:
    h = seeded()
    before = remaining(h)
    assert invalidate(h.cache) == count
    assert remaining(h) == (before if left is None else left)
    stats = h.cache.stats()
    assert sum(s.invalidations for s in stats.values()) == count
    check_bound(h)


def test_versioned_prefix_invalidation_tombstones_the_keys_it_removed() -> None:
    h = seeded()
    h.cache.invalidate_prefix("a", "user:", version=5)
    assert not h.cache.put("a", "user:1", b"old", version=4)
    assert h.cache.put("a", "user:1", b"new", version=6)


def test_tag_index_follows_overwrites() -> None:
    h = Harness()
    h.cache.put("a", "k", b"v", tags=("old",))
    h.cache.put("a", "k", b"v", tags=("new",))
    assert h.cache.invalidate_tag("a", "old") == 0
    assert h.cache.invalidate_tag("a", "new") == 1


# -- stats -------------------------------------------------------------------------------------


def test_stats_are_kept_per_namespace() -> None:
    h = Harness(stale_seconds=10)
    h.cache.put("a", "k", b"12345", ttl_seconds=5)
    h.cache.put_negative("b", "gone")
    h.cache.get("a", "k")
    h.cache.get("a", "k")
    h.cache.get("a", "absent")
    h.cache.get("b", "gone")
    h.cache.get("c", "absent")
    h.clock.advance(6)
    assert h.cache.get("a", "k").state == "stale"
    stats = h.cache.stats()
    a, b, c = stats["a"], stats["b"], stats["c"]
    assert (a.hits, a.misses, a.stale_hits, a.negative_hits) == (2, 1, 1, 0)
    assert (a.entries, a.bytes) == (1, entry_weight("a", "k", b"12345"))
    assert (b.hits, b.negative_hits, b.entries) == (0, 1, 1)
    assert (c.misses, c.entries, c.bytes) == (1, 0, 0)


def test_hits_reuse_one_lookup_and_misses_share_one() -> None:
    h = Harness()
    h.cache.put("a", "k", b"v")
    assert h.cache.get("a", "k") is h.cache.get("a", "k")
    assert h.cache.get("a", "x") is MISS
    assert h.policy.misses == 1


# -- expiry sweep ------------------------------------------------------------------------------


def test_expire_is_bounded_and_reclaims_memory() -> None:
    h = Harness()
    for i in range(50):
        h.cache.put("a", f"old{i}", b"v", ttl_seconds=10)
    for i in range(5):
        h.cache.put("a", f"live{i}", b"v", ttl_seconds=100)
    h.clock.advance(10)
    assert h.cache.expire(max_items=10) == 10
    assert len(h.cache) == 45
    assert h.cache.expire() == 40
    assert len(h.cache) == 5
    assert h.cache.stats()["a"].expirations == 50
    check_bound(h)


def test_expire_respects_stale_window_and_overwrites() -> None:
    h = Harness(stale_seconds=20)
    h.cache.put("a", "stale", b"v", ttl_seconds=10)
    h.cache.put("a", "renewed", b"v", ttl_seconds=10)
    h.cache.put("a", "renewed", b"v", ttl_seconds=100)
    h.clock.advance(15)
    assert h.cache.expire() == 0
    h.clock.advance(15)
    assert h.cache.expire() == 1
    assert h.cache.get("a", "renewed").state == "fresh"


def test_expire_survives_many_overwrites() -> None:
    h = Harness()
    for i in range(10_000):
        h.cache.put("a", "k", b"v", ttl_seconds=1 + i % 7)
    h.clock.advance(7)
    assert h.cache.expire(max_items=100_000) == 1
    assert len(h.cache) == 0


# -- single-flight -----------------------------------------------------------------------------


class Loader:
    """Counts calls; waits for ``release`` before answering so callers pile up."""

    def __init__(self, result: Loaded | Exception | None = None) -> None:
        self.result = result
        self.calls = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> Loaded | None:
        self.calls += 1
        await self.release.wait()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


@pytest.mark.parametrize("factory", POLICIES)
async def test_concurrent_misses_share_one_load(factory: PolicyFactory) -> None:
    h = Harness(factory=factory)
    loader = Loader(Loaded(b"value", version=2, tags=("t",)))
    loader.release.clear()
    calls = [asyncio.create_task(h.cache.get_or_load("a", "k", loader)) for _ in range(100)]
    await asyncio.sleep(0)
    assert h.cache.loads_in_flight == 1
    loader.release.set()
    results = await asyncio.gather(*calls)
    assert loader.calls == 1
    assert {(lookup.state, source) for lookup, source in results} == {("fresh", "loaded")}
    assert {lookup.entry.value for lookup, _ in results if lookup.entry} == {b"value"}
    assert h.cache.loads_in_flight == 0
    lookup, source = await h.cache.get_or_load("a", "k", loader)
    assert (lookup.state, source, loader.calls) == ("fresh", "l1", 1)
    assert h.cache.stats()["a"].loads == 1


async def test_loader_exception_reaches_every_waiter_and_caches_nothing() -> None:
    h = Harness()
    loader = Loader(RuntimeError("L2 down"))
    loader.release.clear()
    calls = [asyncio.create_task(h.cache.get_or_load("a", "k", loader)) for _ in range(100)]
    await asyncio.sleep(0)
    loader.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert loader.calls == 1
    assert all(isinstance(r, RuntimeError) and str(r) == "L2 down" for r in results)
    assert h.cache.loads_in_flight == 0
    assert h.cache.get("a", "k") is MISS
    assert h.cache.stats()["a"].load_errors == 1
    loader.result = Loaded(b"v")
    lookup, source = await h.cache.get_or_load("a", "k", loader)
    assert (lookup.state, source, loader.calls) == ("fresh", "loaded", 2)


@pytest.mark.parametrize(
    ("negative_ttl", "cached", "second_source"),
    [
        pytest.param(5, True, "negative", id="absence-is-cached"),
        pytest.param(0, False, "loaded", id="absence-not-cached-when-disabled"),
    ],
)
async def test_loader_none_caches_negative_entry(
    negative_ttl: float, cached: bool, second_source: str
) -> None:
    h = Harness(negative_ttl_seconds=negative_ttl)
    loader = Loader(None)
    lookup, source = await h.cache.get_or_load("a", "k", loader)
    assert (lookup.state, source) == ("negative", "loaded")
    assert (lookup.entry is not None) is cached
    lookup, source = await h.cache.get_or_load("a", "k", loader)
    assert (lookup.state, source) == ("negative", second_source)
    assert loader.calls == (1 if cached else 2)


async def test_loaded_ttl_overrides_call_ttl() -> None:
    h = Harness()
    await h.cache.get_or_load("a", "k", Loader(Loaded(b"v", ttl_seconds=3)), ttl_seconds=100)
    h.clock.advance(3)
    assert h.cache.get("a", "k") is MISS
    await h.cache.get_or_load("a", "j", Loader(Loaded(b"v")), ttl_seconds=2)
    h.clock.advance(2)
    assert h.cache.get("a", "j") is MISS


async def test_stale_entry_is_served_once_and_refreshed_once() -> None:
    h = Harness(stale_seconds=30)
    h.cache.put("a", "k", b"old", ttl_seconds=10, version=1)
    h.clock.advance(15)
    loader = Loader(Loaded(b"new", version=2))
    loader.release.clear()
    first = await h.cache.get_or_load("a", "k", loader)
    second = await h.cache.get_or_load("a", "k", loader)
    for lookup, source in (first, second):
        assert (lookup.state, source) == ("stale", "stale")
        assert lookup.entry is not None
        assert lookup.entry.value == b"old"
    loader.release.set()
    await h.cache.drain()
    assert loader.calls == 1
    lookup, source = await h.cache.get_or_load("a", "k", loader)
    assert (lookup.state, source) == ("fresh", "l1")
    assert lookup.entry is not None
    assert (lookup.entry.value, lookup.entry.version) == (b"new", 2)
    assert h.cache.stats()["a"].stale_hits == 2


async def test_failed_background_refresh_is_logged_and_counted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(stale_seconds=30)
    h.cache.put("a", "k", b"old", ttl_seconds=10)
    h.clock.advance(15)
    loader = Loader(RuntimeError("L2 down"))
    with caplog.at_level(logging.WARNING, logger="agent.cache.l1"):
        _, source = await h.cache.get_or_load("a", "k", loader)
        await h.cache.drain()
    assert source == "stale"
    assert "background refresh of a/k failed" in caplog.text
    assert h.cache.stats()["a"].refresh_errors == 1
    assert h.cache.get("a", "k").state == "stale"  # still served; the next call retries
    await h.cache.get_or_load("a", "k", loader)
    await h.cache.drain()
    assert loader.calls == 2


async def test_miss_joins_a_background_refresh_in_flight() -> None:
    h = Harness(stale_seconds=5)
    h.cache.put("a", "k", b"old", ttl_seconds=10)
    h.clock.advance(12)
    loader = Loader(Loaded(b"new"))
    loader.release.clear()
    assert (await h.cache.get_or_load("a", "k", loader))[1] == "stale"
    h.clock.advance(5)  # past the stale window: the next call misses
    waiter = asyncio.create_task(h.cache.get_or_load("a", "k", loader))
    await asyncio.sleep(0)
    loader.release.set()
    lookup, source = await waiter
    assert (lookup.state, source, loader.calls) == ("fresh", "loaded", 1)


@pytest.mark.parametrize(
    ("invalidate", "loaded_version", "cached"),
    [
        pytest.param(lambda c: c.delete("a", "k"), 0, False, id="unversioned-delete"),
        pytest.param(lambda c: c.delete("a", "k", version=5), 5, False, id="delete-same-version"),
        pytest.param(lambda c: c.delete("a", "k", version=5), 6, True, id="delete-older-version"),
        pytest.param(
            lambda c: c.invalidate_prefix("a", "k", version=5), 4, False, id="prefix-versioned"
        ),
        pytest.param(lambda c: c.invalidate_prefix("a", "x"), 0, True, id="prefix-not-matching"),
        pytest.param(lambda c: c.invalidate_tag("a", "any"), 9, False, id="tag-fences-namespace"),
        pytest.param(lambda c: c.invalidate_namespace("a"), 9, False, id="namespace"),
        pytest.param(lambda c: c.invalidate_namespace("b"), 9, True, id="other-namespace"),
        pytest.param(lambda c: c.clear(), 9, False, id="clear"),
        pytest.param(lambda c: c.put("a", "k", b"w"), 9, False, id="unversioned-put"),
    ],
)
async def test_invalidation_during_a_load_fences_its_result(
    invalidate: Callable[[L1Cache], object], loaded_version: int, cached: bool
) -> None:
    h = Harness()
    loader = Loader(Loaded(b"loaded", version=loaded_version))
    loader.release.clear()
    call = asyncio.create_task(h.cache.get_or_load("a", "k", loader))
    await asyncio.sleep(0)
    invalidate(h.cache)
    loader.release.set()
    lookup, source = await call
    assert lookup.entry is not None
    assert (lookup.state, source, lookup.entry.value) == ("fresh", "loaded", b"loaded")
    assert (h.value("a", "k") == b"loaded") is cached


async def test_invalidation_during_a_negative_load_caches_no_absence() -> None:
    h = Harness()
    loader = Loader(None)
    loader.release.clear()
    call = asyncio.create_task(h.cache.get_or_load("a", "k", loader))
    await asyncio.sleep(0)
    h.cache.delete("a", "k", version=3)
    loader.release.set()
    lookup, _ = await call
    assert (lookup.state, lookup.entry) == ("negative", None)
    assert h.cache.get("a", "k") is MISS


async def test_cancelled_waiter_does_not_cancel_the_load_for_others() -> None:
    h = Harness()
    loader = Loader(Loaded(b"v"))
    loader.release.clear()
    first = asyncio.create_task(h.cache.get_or_load("a", "k", loader))
    second = asyncio.create_task(h.cache.get_or_load("a", "k", loader))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    loader.release.set()
    lookup, source = await second
    assert (lookup.state, source, loader.calls) == ("fresh", "loaded", 1)


async def test_close_cancels_refreshes_and_starts_no_more() -> None:
    h = Harness(stale_seconds=30)
    h.cache.put("a", "k", b"old", ttl_seconds=10)
    h.clock.advance(15)
    loader = Loader(Loaded(b"new"))
    loader.release.clear()
    await h.cache.get_or_load("a", "k", loader)
    assert h.cache.loads_in_flight == 1
    await h.cache.close()
    assert h.cache.loads_in_flight == 0
    assert (await h.cache.get_or_load("a", "k", loader))[1] == "stale"
    assert h.cache.loads_in_flight == 0
    assert h.cache.get("a", "k").state == "stale"


async def test_close_before_a_load_starts_leaves_no_flight() -> None:
    h = Harness()
    loader = Loader(Loaded(b"v"))
    call = asyncio.create_task(h.cache.get_or_load("a", "k", loader))
    await asyncio.sleep(0)  # the caller registered the flight; the load task has not run
    await h.cache.close()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (h.cache.loads_in_flight, loader.calls) == (0, 0)
