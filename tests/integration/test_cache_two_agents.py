"""Two agents sharing one real Redis: read-through, invalidation across nodes within the bound,
and degradation to L1 when Redis stops, with recovery when it returns."""

from __future__ import annotations

import pytest

from shared.cache_client import CacheClient

from messages import TOKEN
from services import ControlledRedis, LinescaleFactory, LinescaleServer
from waiting import eventually

INVALIDATION_BOUND_SECONDS = 0.1  # the goal: delete to every L1 under 100 ms on loopback


def start_agent(factory: LinescaleFactory, node: str, redis_url: str) -> LinescaleServer:
    return factory(
        "agent",
        ["--node", node, "--zone", "a", "--redis", redis_url],
        env={"LINESCALE_TOKEN": TOKEN, "LINESCALE_AGENT__CACHE__REDIS_TIMEOUT_SECONDS": "0.2"},
    )


@pytest.mark.services
def test_put_through_a_reads_through_b_and_delete_reaches_b_within_the_bound(
    linescale_factory: LinescaleFactory, controlled_redis: ControlledRedis
) -> None:
    a = start_agent(linescale_factory, "node-a", controlled_redis.url)
    b = start_agent(linescale_factory, "node-b", controlled_redis.url)
    with CacheClient(a.url, TOKEN) as via_a, CacheClient(b.url, TOKEN) as via_b:
        version = via_a.put("parts", "bolt", b"v1" * 1000, ttl_seconds=60)  # compressed in L2
        assert version > 0
        first = via_b.get("parts", "bolt")
        assert first is not None
        assert (first.value, first.level, first.version) == (b"v1" * 1000, "L2", version)
        second = via_b.get("parts", "bolt")
        assert second is not None
        assert second.level == "L1"

        via_a.delete("parts", "bolt")
        took = eventually(lambda: via_b.get("parts", "bolt") is None, within=1.0, poll=0.001)
        assert took < INVALIDATION_BOUND_SECONDS * 5  # generous: the benchmark measures p99

        via_a.put("parts", "bolt", b"v2", ttl_seconds=60)
        via_b.get("parts", "bolt")
        via_a.put("parts", "bolt", b"v3", ttl_seconds=60)  # overwrite: B's v2 must go
        eventually(
            lambda: (hit := via_b.get("parts", "bolt")) is not None and hit.value == b"v3", 1.0
        )


@pytest.mark.services
def test_redis_down_both_agents_serve_l1_without_errors_and_recover(
    linescale_factory: LinescaleFactory, controlled_redis: ControlledRedis
) -> None:
    a = start_agent(linescale_factory, "node-a", controlled_redis.url)
    b = start_agent(linescale_factory, "node-b", controlled_redis.url)
    with CacheClient(a.url, TOKEN) as via_a, CacheClient(b.url, TOKEN) as via_b:
        via_a.put("parts", "warm", b"w", ttl_seconds=60)
        assert via_b.get("parts", "warm") is not None  # now in B's L1 too

        controlled_redis.stop()
        for client in (via_a, via_b):
            hit = client.get("parts", "warm")
            assert hit is not None
            assert hit.level == "L1"
            assert client.get("parts", "cold") is None  # a miss, not an error
        assert via_a.put("parts", "local", b"l", ttl_seconds=60) == 0  # L1 only, no 5xx
        stats = via_a.stats()
        assert stats["l2"]["available"] is False

        controlled_redis.restart()
        # Recovery by itself: a write reaches L2 again (version > 0) and B reads it through.
        eventually(
            lambda: via_a.put("parts", "after", b"a", ttl_seconds=60) > 0, within=15.0, poll=0.001
        )
        eventually(lambda: via_b.get("parts", "after") is not None, within=15.0, poll=0.001)
