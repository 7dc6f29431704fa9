"""RedisL2 against a real Redis: layout, versions, invalidation and degraded mode."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
from redis.crc import key_slot

from agent.cache.l2 import Backoff, RedisL2, tag_key, value_key, version_key
from shared.cache_codec import HEADER_LZ4, HEADER_RAW, encode

from services import ControlledRedis, RedisServer

pytestmark = pytest.mark.services

CONNECT_TIMEOUT = 0.1
SOCKET_TIMEOUT = 0.15
CALL_BOUND = CONNECT_TIMEOUT + SOCKET_TIMEOUT + 0.15  # the deadline plus scheduling slack
L2_LOGGER = "agent.cache.l2"


def json_like(size: int) -> bytes:
    record = b'{"id":1,"name":"alice","roles":["admin","dev"]},'
    return (record * (size // len(record) + 1))[:size]


@pytest.fixture
def ns() -> str:
    """A namespace of its own, so tests sharing the session Redis never see each other."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aredis.Redis[bytes]]:
    client = aredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()  # type: ignore[attr-defined]


def roomy_l2(url: str, **kwargs: int) -> RedisL2:
    """For tests not about timeouts: production's 0.2 s bounds can trip on a loaded CI box."""
    return RedisL2(url, socket_connect_timeout=2.0, socket_timeout=2.0, **kwargs)


@pytest.fixture
async def l2(redis_server: RedisServer) -> AsyncIterator[RedisL2]:
    cache = roomy_l2(redis_server.url, compress_above=1024)
    yield cache
    await cache.close()


def new_l2(url: str, **kwargs: object) -> RedisL2:
    """An L2 with test-sized timeouts and backoff."""
    return RedisL2(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        backoff_initial=0.05,
        backoff_max=0.2,
        **kwargs,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------------------------
# Round trips, layout, TTL
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "header"),
    [
        pytest.param(b"", HEADER_RAW, id="empty"),
        pytest.param(b"small", HEADER_RAW, id="small-raw"),
        pytest.param(json_like(1024), HEADER_RAW, id="at-threshold-raw"),
        pytest.param(json_like(20_000), HEADER_LZ4, id="large-compressed"),
        pytest.param(os.urandom(20_000), HEADER_RAW, id="large-incompressible-raw"),
    ],
)
async def test_set_then_get_round_trips_and_stores_the_codec_header(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str, value: bytes, header: int
) -> None:
    version = await l2.set(ns, "k", value, ttl_seconds=30, tags=["b", "a"])

    got = await l2.get(ns, "k")
    stored = await raw.hget(value_key(ns, "k"), "v")

    assert got is not None
    assert (got.value, got.version, got.tags) == (value, version, ("a", "b"))
    assert stored is not None
    assert stored[0] == header
    assert stored == encode(value, compress_above=1024)
    assert l2.stats.bytes_written == l2.stats.bytes_read == len(stored)
    assert (l2.stats.hits, l2.stats.errors) == (1, 0)


async def test_get_of_an_absent_key_is_a_counted_miss(l2: RedisL2, ns: str) -> None:
    assert await l2.get(ns, "absent") is None
    assert (l2.stats.misses, l2.stats.errors) == (1, 0)


@pytest.mark.parametrize(
    ("ttl_seconds", "expect_expiry"),
    [pytest.param(30.0, True, id="ttl"), pytest.param(None, False, id="no-ttl")],
)
async def test_ttl_is_set_on_the_value_and_its_tag_index(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str, ttl_seconds: float | None, expect_expiry: bool
) -> None:
    await l2.set(ns, "k", b"v", ttl_seconds=ttl_seconds, tags=["t"])

    value_pttl = await raw.pttl(value_key(ns, "k"))
    value_expiry, tag_expiry = [
        await raw.execute_command("PEXPIRETIME", key)
        for key in (value_key(ns, "k"), tag_key(ns, "t"))
    ]
    got = await l2.get(ns, "k")

    assert got is not None
    if expect_expiry:
        assert 29_000 < value_pttl <= 30_000
        assert tag_expiry >= value_expiry
        assert got.ttl_seconds is not None
        assert 29 < got.ttl_seconds <= 30
    else:
        assert value_pttl == value_expiry == tag_expiry == -1
        assert got.ttl_seconds is None


async def test_value_expires_after_its_ttl(l2: RedisL2, ns: str) -> None:
    await l2.set(ns, "k", b"v", ttl_seconds=0.15)
    assert await l2.get(ns, "k") is not None

    await asyncio.sleep(0.3)

    assert await l2.get(ns, "k") is None


async def test_tag_index_lives_as_long_as_its_longest_lived_member(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str
) -> None:
    await l2.set(ns, "long", b"v", ttl_seconds=100, tags=["t"])
    await l2.set(ns, "short", b"v", ttl_seconds=10, tags=["t"])
    assert await raw.pttl(tag_key(ns, "t")) > 90_000

    await l2.set(ns, "forever", b"v", ttl_seconds=None, tags=["t"])
    assert await raw.pttl(tag_key(ns, "t")) == -1


async def test_every_key_of_a_namespace_hashes_to_one_cluster_slot(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str
) -> None:
    """Each Lua script touches several keys: Redis Cluster requires them in one slot."""
    for i, tags in enumerate([("a",), ("a", "b"), ()]):
        await l2.set(ns, f"user:{i}", b"v", ttl_seconds=30, tags=tags)
    await l2.delete(ns, "user:0")

    created = [key async for key in raw.scan_iter(match=f"ls:v1:{{{ns}}}:*")]
    named = [value_key(ns, "x"), tag_key(ns, "a"), version_key(ns), value_key(ns, "{odd}:k")]

    assert len(created) == 5  # user:1, user:2, tag:a, tag:b, ver
    assert {key_slot(key) for key in created} | {key_slot(k.encode()) for k in named} == {
        key_slot(ns.encode())
    }


@pytest.mark.parametrize(
    ("ns", "tag"),
    [
        pytest.param("", "t", id="empty-namespace"),
        pytest.param("a{b", "t", id="brace-in-namespace"),
        pytest.param("a}b", "t", id="closing-brace-in-namespace"),
        pytest.param("ns", "a,b", id="comma-in-tag"),
        pytest.param("ns", "", id="empty-tag"),
    ],
)
async def test_names_that_would_break_the_layout_are_refused(
    l2: RedisL2, ns: str, tag: str
) -> None:
    with pytest.raises(ValueError, match=r"namespace|tag"):
        await l2.set(ns, "k", b"v", ttl_seconds=1, tags=[tag])


@pytest.mark.parametrize("ttl_seconds", [0.0, -1.0, float("inf"), float("nan")])
async def test_non_positive_or_infinite_ttl_is_refused(
    l2: RedisL2, ns: str, ttl_seconds: float
) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        await l2.set(ns, "k", b"v", ttl_seconds=ttl_seconds)


# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------


async def test_versions_strictly_increase_across_two_agents(
    redis_server: RedisServer, l2: RedisL2, ns: str
) -> None:
    other = roomy_l2(redis_server.url)
    try:
        sequential = []
        for i in range(20):
            writer = l2 if i % 2 else other
            sequential.append(await writer.set(ns, "k", b"%d" % i, ttl_seconds=30))
        concurrent = await asyncio.gather(
            *(w.set(ns, "k", b"c", ttl_seconds=30) for w in (l2, other) * 20)
        )
        final = await other.get(ns, "k")
    finally:
        await other.close()

    assert sequential == sorted(sequential)
    assert len(set(sequential)) == len(sequential)
    assert len(set(concurrent)) == len(concurrent)
    assert min(concurrent) > max(sequential)
    assert final is not None
    assert final.version == max(concurrent)  # Redis holds the last write in version order.


async def test_delete_version_exceeds_the_deleted_values_version(l2: RedisL2, ns: str) -> None:
    written = await l2.set(ns, "k", b"v", ttl_seconds=30)

    deleted = await l2.delete(ns, "k")
    deleted_again = await l2.delete(ns, "k")  # Absent key: still a fresh version (a fence).

    assert written < deleted < deleted_again
    assert await l2.get(ns, "k") is None
    rewritten = await l2.set(ns, "k", b"v2", ttl_seconds=30)
    assert rewritten > deleted_again


async def test_versions_keep_increasing_when_the_counter_is_lost(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str
) -> None:
    """Redis restarted without persistence: the counter restarts from the clock, not 0."""
    before = await l2.set(ns, "k", b"v", ttl_seconds=30)
    await raw.delete(version_key(ns))

    after = await l2.set(ns, "k", b"v", ttl_seconds=30)

    assert after > before


async def test_delete_removes_the_key_from_its_tag_indexes(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str
) -> None:
    await l2.set(ns, "k", b"v", ttl_seconds=30, tags=["a", "b"])
    await l2.set(ns, "other", b"v", ttl_seconds=30, tags=["a"])

    await l2.delete(ns, "k")

    assert await raw.smembers(tag_key(ns, "a")) == {b"other"}
    assert await raw.exists(tag_key(ns, "b")) == 0


async def test_rewriting_a_key_moves_it_between_tag_indexes(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str
) -> None:
    await l2.set(ns, "k", b"v", ttl_seconds=30, tags=["old", "kept"])

    await l2.set(ns, "k", b"v", ttl_seconds=30, tags=["kept", "new"])

    assert await raw.exists(tag_key(ns, "old")) == 0
    assert await raw.smembers(tag_key(ns, "kept")) == {b"k"}
    assert await raw.smembers(tag_key(ns, "new")) == {b"k"}


# --------------------------------------------------------------------------------------------
# Invalidation
# --------------------------------------------------------------------------------------------

PREFIX_KEYS = ["user:1", "user:2", "user:*", "users", "user", "order:1", "a*b", "a*c", "axb"]


@pytest.mark.parametrize(
    ("prefix", "deleted"),
    [
        pytest.param("user:", {"user:1", "user:2", "user:*"}, id="prefix"),
        pytest.param("user", {"user:1", "user:2", "user:*", "users", "user"}, id="shorter"),
        pytest.param("a*", {"a*b", "a*c"}, id="glob-star-is-literal"),
        pytest.param("a?", set(), id="glob-question-mark-is-literal"),
        pytest.param("nothing", set(), id="no-match"),
        pytest.param("", set(PREFIX_KEYS), id="whole-namespace"),
    ],
)
async def test_prefix_invalidation_deletes_exactly_the_matching_keys(
    l2: RedisL2, ns: str, prefix: str, deleted: set[str]
) -> None:
    versions = [await l2.set(ns, key, b"v", ttl_seconds=30) for key in PREFIX_KEYS]

    count, version = await l2.invalidate_prefix(ns, prefix)

    remaining = {key for key in PREFIX_KEYS if await l2.get(ns, key) is not None}
    assert count == len(deleted)
    assert remaining == set(PREFIX_KEYS) - deleted
    assert version > max(versions)


async def test_prefix_invalidation_scans_in_batches_and_spares_other_namespaces(
    redis_server: RedisServer, raw: aredis.Redis[bytes], ns: str
) -> None:
    cache = roomy_l2(redis_server.url, scan_count=50)
    try:
        async with raw.pipeline(transaction=False) as pipe:
            for i in range(600):
                pipe.hset(value_key(ns, f"p:{i}"), mapping={"v": b"\x00v", "ver": 1, "t": ""})
            pipe.hset(value_key(ns + "x", "p:1"), mapping={"v": b"\x00v", "ver": 1, "t": ""})
            await pipe.execute()

        count, _ = await cache.invalidate_prefix(ns, "p:")

        assert count == 600
        assert await raw.exists(value_key(ns + "x", "p:1")) == 1
    finally:
        await cache.close()


async def test_invalidation_spares_values_written_after_its_version(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str
) -> None:
    """A value with a newer version than the fence was written after the invalidation began."""
    await l2.set(ns, "p:old", b"v", ttl_seconds=30, tags=["t"])
    await l2.set(ns, "p:new", b"v", ttl_seconds=30, tags=["t"])
    await raw.hset(value_key(ns, "p:new"), "ver", 2**62)  # Simulates the race.

    by_prefix = await l2.invalidate_prefix(ns, "p:")
    await l2.set(ns, "p:old", b"v", ttl_seconds=30, tags=["t"])
    by_tag = await l2.invalidate_tag(ns, "t")

    assert (by_prefix[0], by_tag[0]) == (1, 1)
    assert await l2.get(ns, "p:new") is not None
    assert await l2.get(ns, "p:old") is None


async def test_tag_invalidation_deletes_tagged_keys_and_their_index_entries(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str
) -> None:
    await l2.set(ns, "a", b"v", ttl_seconds=30, tags=["red", "big"])
    await l2.set(ns, "b", b"v", ttl_seconds=30, tags=["red"])
    await l2.set(ns, "c", b"v", ttl_seconds=30, tags=["big"])
    await l2.set(ns, "d", b"v", ttl_seconds=30)
    last = await l2.set(ns, "e", b"v", ttl_seconds=30, tags=["red"])
    await l2.set(ns, "e", b"v", ttl_seconds=30, tags=["blue"])  # No longer red.

    count, version = await l2.invalidate_tag(ns, "red")

    remaining = {key for key in "abcde" if await l2.get(ns, key) is not None}
    assert (count, remaining) == (2, {"c", "d", "e"})
    assert version > last
    assert await raw.exists(tag_key(ns, "red")) == 0
    assert await raw.smembers(tag_key(ns, "big")) == {b"c"}


async def test_tag_invalidation_cleans_index_entries_of_expired_keys(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str
) -> None:
    await l2.set(ns, "gone", b"v", ttl_seconds=30, tags=["t"])
    await raw.delete(value_key(ns, "gone"))  # As if it had expired.

    count, _ = await l2.invalidate_tag(ns, "t")

    assert count == 0
    assert await raw.exists(tag_key(ns, "t")) == 0


async def test_a_burst_beyond_the_pool_size_queues_instead_of_looking_like_an_outage(
    redis_server: RedisServer, ns: str
) -> None:
    """redis-py's default pool raises past 100 concurrent calls: not an outage."""
    cache = roomy_l2(redis_server.url, max_connections=4)
    try:
        await cache.set(ns, "k", b"v", ttl_seconds=30)

        results = await asyncio.gather(*(cache.get(ns, "k") for _ in range(500)))

        assert all(r is not None and r.value == b"v" for r in results)
        assert (cache.available, cache.stats.errors) == (True, 0)
    finally:
        await cache.close()


# --------------------------------------------------------------------------------------------
# Corrupt and foreign data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mapping",
    [
        pytest.param({"v": b"\x7fnot ours", "ver": b"1", "t": b""}, id="unknown-header"),
        pytest.param({"v": b"", "ver": b"1", "t": b""}, id="empty-blob"),
        pytest.param({"v": b"\x01\xff\xff\x00\x00junk", "ver": b"1"}, id="corrupt-lz4"),
        pytest.param({"v": b"\x00ok", "ver": b"one"}, id="non-numeric-version"),
        pytest.param({"v": b"\x00ok"}, id="missing-version"),
        pytest.param({"ver": b"1"}, id="missing-value"),
        pytest.param({"v": b"\x00ok", "ver": b"1", "t": b"\xff\xfe"}, id="tags-not-utf8"),
    ],
)
async def test_corrupt_hash_is_a_miss_and_a_counted_error(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str, mapping: dict[str, bytes]
) -> None:
    await raw.hset(value_key(ns, "k"), mapping=mapping)  # type: ignore[arg-type]

    assert await l2.get(ns, "k") is None
    assert (l2.stats.misses, l2.stats.errors, l2.stats.corrupt) == (1, 1, 1)
    assert l2.available


@pytest.mark.parametrize("kind", ["string", "list", "set"])
async def test_foreign_key_type_is_a_miss_and_is_overwritten_by_set(
    l2: RedisL2, raw: aredis.Redis[bytes], ns: str, kind: str
) -> None:
    key = value_key(ns, "k")
    if kind == "string":
        await raw.set(key, b"someone else's")
    elif kind == "list":
        await raw.rpush(key, b"x")
    else:
        await raw.sadd(key, b"x")

    assert await l2.get(ns, "k") is None
    assert l2.stats.corrupt == 1
    assert (await l2.invalidate_prefix(ns, ""))[0] == 1  # Our key space: foreign data goes.
    await raw.set(key, b"again")
    assert await l2.set(ns, "k", b"mine", ttl_seconds=30) > 0
    got = await l2.get(ns, "k")
    assert got is not None
    assert got.value == b"mine"


# --------------------------------------------------------------------------------------------
# Degraded mode
# --------------------------------------------------------------------------------------------


async def assert_every_call_degrades_quickly(cache: RedisL2, ns: str) -> None:
    calls = [
        ("get", cache.get(ns, "k"), None),
        ("set", cache.set(ns, "k", b"v", ttl_seconds=5, tags=["t"]), 0),
        ("delete", cache.delete(ns, "k"), 0),
        ("invalidate_prefix", cache.invalidate_prefix(ns, "k"), (0, 0)),
        ("invalidate_tag", cache.invalidate_tag(ns, "t"), (0, 0)),
    ]
    for name, call, expected in calls:
        started = time.monotonic()
        result = await call
        elapsed = time.monotonic() - started
        assert result == expected, name
        assert elapsed < CALL_BOUND, f"{name} took {elapsed:.3f}s"


def warnings_from_l2(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == L2_LOGGER and r.levelno == logging.WARNING
    ]


async def wait_until_available(cache: RedisL2, ns: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not cache.available:
        assert time.monotonic() < deadline, "L2 did not recover"
        await cache.get(ns, "probe")
        await asyncio.sleep(0.02)


async def test_stopped_redis_gives_fast_misses_one_warning_and_recovers_on_restart(
    controlled_redis: ControlledRedis, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=L2_LOGGER)
    states: list[bool] = []
    cache = new_l2(controlled_redis.url, on_state_change=states.append)
    try:
        assert await cache.set(ns, "k", b"v", ttl_seconds=30) > 0

        controlled_redis.stop()
        for _ in range(3):  # Several rounds: failed probes after each backoff stay quiet.
            await assert_every_call_degrades_quickly(cache, ns)
            await asyncio.sleep(0.1)

        assert not cache.available
        assert states == [False]
        assert len(warnings_from_l2(caplog)) == 1
        assert "unavailable" in warnings_from_l2(caplog)[0]
        assert cache.stats.errors >= 2
        assert cache.stats.skipped > 0

        await controlled_redis.arestart()
        await wait_until_available(cache, ns)

        assert states == [False, True]
        assert any("available again" in r.getMessage() for r in caplog.records)
        version = await cache.set(ns, "k", b"back", ttl_seconds=30)
        got = await cache.get(ns, "k")
        assert got is not None
        assert (got.value, got.version) == (b"back", version)
        assert len(warnings_from_l2(caplog)) == 1
    finally:
        await cache.close()


async def test_probe_finds_a_restarted_redis_without_any_caller(
    controlled_redis: ControlledRedis, ns: str
) -> None:
    cache = new_l2(controlled_redis.url)
    try:
        assert await cache.probe()  # up: nothing to probe
        controlled_redis.stop()
        await cache.get(ns, "k")  # a caller meets the outage
        assert not cache.available
        assert not await cache.probe()  # inside the backoff: no call goes out
        assert cache.stats.skipped == 0
        await controlled_redis.arestart()
        deadline = time.monotonic() + 10
        while not await cache.probe():  # the agent's probe loop, without any cache traffic
            assert time.monotonic() < deadline, "the probe never found Redis back"
            await asyncio.sleep(cache.retry_in or 0.05)
        assert cache.available
    finally:
        await cache.close()


async def test_frozen_redis_times_out_within_the_bound_and_recovers(
    controlled_redis: ControlledRedis, ns: str, caplog: pytest.LogCaptureFixture
) -> None:
    states: list[bool] = []
    cache = new_l2(controlled_redis.url, on_state_change=states.append)
    try:
        await cache.set(ns, "k", b"v", ttl_seconds=30)

        controlled_redis.pause()
        started = time.monotonic()
        assert await cache.get(ns, "k") is None
        assert time.monotonic() - started < CALL_BOUND
        assert not cache.available
        await asyncio.sleep(0.1)
        await assert_every_call_degrades_quickly(cache, ns)  # Probes time out too.

        controlled_redis.resume()
        await wait_until_available(cache, ns)

        got = await cache.get(ns, "k")
        assert got is not None
        assert got.value == b"v"
        assert states == [False, True]
        assert len(warnings_from_l2(caplog)) == 1
    finally:
        await cache.close()


async def test_calls_during_backoff_skip_redis_entirely(controlled_redis: ControlledRedis) -> None:
    cache = RedisL2(
        controlled_redis.url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        backoff_initial=5.0,
    )
    try:
        controlled_redis.stop()
        await cache.get("ns", "k")
        errors = cache.stats.errors

        started = time.monotonic()
        results = [await cache.get("ns", "k") for _ in range(100)]

        assert results == [None] * 100
        assert time.monotonic() - started < 0.05
        assert cache.stats.errors == errors
        assert cache.stats.skipped == 100
        assert cache.stats.misses == 101
    finally:
        await cache.close()


async def test_a_failing_state_hook_does_not_break_the_cache(
    controlled_redis: ControlledRedis, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(available: bool) -> None:
        raise RuntimeError("hook bug")

    cache = new_l2(controlled_redis.url, on_state_change=broken)
    try:
        controlled_redis.stop()
        assert await cache.get("ns", "k") is None
        assert any("on_state_change" in r.getMessage() for r in caplog.records)
    finally:
        await cache.close()


async def test_closed_l2_returns_misses(redis_server: RedisServer, ns: str) -> None:
    cache = RedisL2(redis_server.url)
    await cache.close()
    await cache.close()  # Idempotent.

    assert await cache.get(ns, "k") is None
    assert await cache.set(ns, "k", b"v", ttl_seconds=1) == 0
    assert not cache.available


# --------------------------------------------------------------------------------------------
# The backoff gate on its own (a fake clock; no Redis involved)
# --------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_lets_one_probe_through_per_doubling_delay_until_success() -> None:
    clock = FakeClock()
    gate = Backoff(1.0, 4.0, clock=clock)
    assert gate.try_acquire() is False  # Up: a normal call.

    assert gate.record_failure() is True  # The transition to down.
    assert gate.record_failure() is False  # A call that was already in flight: ignored.
    observed = []
    for _ in range(4):
        assert gate.try_acquire() is None  # Within the backoff: skipped.
        clock.now += gate.retry_in
        assert gate.try_acquire() is True  # The probe...
        assert gate.try_acquire() is None  # ...and only one.
        assert gate.record_failure(True) is False
        observed.append(gate.delay)

    assert observed == [2.0, 4.0, 4.0, 4.0]
    clock.now += gate.retry_in
    probe = gate.try_acquire()
    assert gate.record_success(probe) is True
    assert (gate.up, gate.delay, gate.try_acquire()) == (True, 1.0, False)


def test_backoff_probe_cancelled_without_verdict_frees_the_next_probe() -> None:
    clock = FakeClock()
    gate = Backoff(1.0, 4.0, clock=clock)
    gate.record_failure()
    clock.now += 1.0
    probe = gate.try_acquire()
    assert probe is True

    gate.release(probe)

    assert gate.try_acquire() is True
    assert not gate.up


@pytest.mark.parametrize(("initial", "maximum"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_backoff_refuses_nonsense_delays(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial, maximum)
