"""The invalidation bus: wire format, delivery between nodes, reconnects, and latency."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aredis

from agent.cache.invalidation import (
    DEFAULT_CHANNEL,
    Invalidation,
    InvalidationBus,
    MalformedInvalidation,
)

from services import ControlledRedis, RedisServer

BUS_LOGGER = "agent.cache.invalidation"


# --------------------------------------------------------------------------------------------
# Wire format (no Redis needed)
# --------------------------------------------------------------------------------------------

VALID = [
    Invalidation("key", "users", "user:1", 17, "node-a"),
    Invalidation("prefix", "users", "user:", 18, "node-a"),
    Invalidation("prefix", "users", "", 19, "node-b"),
    Invalidation("tag", "users", "team:7", 1_795_725_711_225_620, "node-b"),
    Invalidation("namespace", "users", "", 0, "node-c"),
    Invalidation("key", "ns", 'ключ "quoted" \\ ,{}', 1, "n"),
]


@pytest.mark.parametrize("invalidation", VALID, ids=lambda i: f"{i.kind}-{i.version}")
def test_invalidation_round_trips_through_versioned_json(invalidation: Invalidation) -> None:
    wire = invalidation.to_json()

    assert json.loads(wire)["v"] == 1
    assert Invalidation.from_json(wire) == invalidation


GOOD: dict[str, Any] = {
    "v": 1,
    "kind": "key",
    "namespace": "users",
    "target": "user:1",
    "version": 3,
    "origin": "node-a",
}


def variant(**changes: Any) -> bytes:
    """GOOD with some fields changed; a value of ... removes the field."""
    merged = {**GOOD, **changes}
    return json.dumps({k: v for k, v in merged.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b'"key"', id="string"),
        pytest.param(variant(v=2), id="future-wire-version"),
        pytest.param(variant(v="1"), id="wire-version-as-string"),
        pytest.param(variant(v=True), id="wire-version-as-bool"),
        pytest.param(variant(v=...), id="missing-wire-version"),
        pytest.param(variant(kind="everything"), id="unknown-kind"),
        pytest.param(variant(kind=...), id="missing-kind"),
        pytest.param(variant(namespace=""), id="empty-namespace"),
        pytest.param(variant(namespace=7), id="namespace-not-string"),
        pytest.param(variant(target=None), id="target-null"),
        pytest.param(variant(version=-1), id="negative-version"),
        pytest.param(variant(version=1.5), id="float-version"),
        pytest.param(variant(version="3"), id="version-as-string"),
        pytest.param(variant(version=True), id="version-as-bool"),
        pytest.param(variant(origin=""), id="empty-origin"),
        pytest.param(variant(kind="namespace"), id="namespace-kind-with-target"),
        pytest.param(variant(extra=1), id="unknown-field"),
    ],
)
def test_malformed_wire_messages_are_refused(wire: bytes) -> None:
    with pytest.raises(MalformedInvalidation):
        Invalidation.from_json(wire)


# --------------------------------------------------------------------------------------------
# Delivery over real Redis
# --------------------------------------------------------------------------------------------


class Recorder:
    """Collects what a bus delivers; ``wait_for`` polls without blocking the loop."""

    def __init__(self) -> None:
        self.messages: list[Invalidation] = []
        self.reconnects = 0

    def on_message(self, invalidation: Invalidation) -> None:
        self.messages.append(invalidation)

    def on_reconnect(self) -> None:
        self.reconnects += 1

    @staticmethod
    async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while not condition():
            assert time.monotonic() < deadline, "condition not met in time"
            await asyncio.sleep(0.01)


BusFactory = Callable[..., InvalidationBus]


@pytest.fixture
def channel() -> str:
    """A channel per test, so tests sharing the session Redis never see each other."""
    return f"{DEFAULT_CHANNEL}:test:{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def make_bus(channel: str) -> AsyncIterator[BusFactory]:
    """``make_bus(url, node_id, recorder, **kwargs)``; every bus is closed at teardown."""
    buses: list[InvalidationBus] = []

    def make(url: str, node_id: str, recorder: Recorder, **kwargs: Any) -> InvalidationBus:
        options: dict[str, Any] = {
            "channel": channel,
            # Roomy: a loaded CI box must not turn a slow answer into a reconnect.
            "socket_connect_timeout": 1.0,
            "socket_timeout": 1.0,
            "backoff_initial": 0.05,
            "backoff_max": 0.2,
            **kwargs,
        }
        bus = InvalidationBus(url, node_id, recorder.on_message, recorder.on_reconnect, **options)
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        await bus.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[aredis.Redis[bytes]]:
    client = aredis.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()  # type: ignore[attr-defined]


@pytest.mark.services
async def test_bus_delivers_invalidations_to_other_nodes_but_not_back_to_the_sender(
    redis_server: RedisServer, make_bus: BusFactory
) -> None:
    got_a, got_b = Recorder(), Recorder()
    bus_a = make_bus(redis_server.url, "node-a", got_a)
    bus_b = make_bus(redis_server.url, "node-b", got_b)
    await bus_a.start()
    await bus_b.start()

    for invalidation in VALID[:2]:
        assert await bus_a.publish(invalidation)
    await got_b.wait_for(lambda: len(got_b.messages) == 2)

    assert got_b.messages == VALID[:2]
    assert got_a.messages == []
    assert (bus_a.stats.published, bus_b.stats.received) == (2, 2)
    await Recorder.wait_for(lambda: bus_a.stats.own_skipped == 2)
    assert (got_a.reconnects, got_b.reconnects) == (0, 0)


@pytest.mark.services
async def test_bus_skips_malformed_messages_and_keeps_listening(
    redis_server: RedisServer,
    make_bus: BusFactory,
    raw: aredis.Redis[bytes],
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    got = Recorder()
    bus = make_bus(redis_server.url, "node-b", got)
    await bus.start()
    garbage = [b"", b"\xff", b"{}", b"[]", variant(v=2), variant(version="x"), b"x" * 100_000]

    for message in garbage:
        await raw.publish(channel, message)
    await raw.publish(channel, VALID[0].to_json())
    await got.wait_for(lambda: len(got.messages) == 1)

    assert got.messages == [VALID[0]]
    assert bus.stats.malformed == len(garbage)
    assert bus.connected
    warnings = [r for r in caplog.records if r.name == BUS_LOGGER and r.levelname == "WARNING"]
    assert len(warnings) == 1  # One line, then only counted.


@pytest.mark.services
async def test_a_failing_on_message_callback_does_not_stop_delivery(
    redis_server: RedisServer, make_bus: BusFactory, channel: str
) -> None:
    seen: list[Invalidation] = []

    def flaky(invalidation: Invalidation) -> None:
        seen.append(invalidation)
        if len(seen) == 1:
            raise RuntimeError("callback bug")

    publisher = make_bus(redis_server.url, "node-a", Recorder())
    bus = InvalidationBus(redis_server.url, "node-b", flaky, lambda: None, channel=channel)
    try:
        await bus.start()
        await publisher.start()
        await publisher.publish(VALID[0])
        await publisher.publish(VALID[1])
        await Recorder.wait_for(lambda: len(seen) == 2)
        assert bus.stats.callback_errors == 1
    finally:
        await bus.close()


@pytest.mark.services
async def test_start_twice_is_an_error(redis_server: RedisServer, make_bus: BusFactory) -> None:
    bus = make_bus(redis_server.url, "node-a", Recorder())
    await bus.start()
    with pytest.raises(RuntimeError, match="twice"):
        await bus.start()


@pytest.mark.services
async def test_publish_after_close_is_a_quiet_no_op(
    redis_server: RedisServer, make_bus: BusFactory
) -> None:
    """Shutdown races (a last write while the agent stops) must not raise."""
    bus = make_bus(redis_server.url, "node-a", Recorder())
    await bus.start()
    await bus.close()

    assert await bus.publish(VALID[0]) is False
    assert bus.stats.publish_skipped == 1


@pytest.mark.services
async def test_invalidation_latency_between_two_buses_is_well_under_100ms(
    redis_server: RedisServer, make_bus: BusFactory
) -> None:
    received_at: dict[int, float] = {}

    class Timing(Recorder):
        def on_message(self, invalidation: Invalidation) -> None:
            received_at[invalidation.version] = time.perf_counter()

    sender = make_bus(redis_server.url, "node-a", Recorder())
    receiver = make_bus(redis_server.url, "node-b", Timing())
    await sender.start()
    await receiver.start()
    count = 1000
    sent_at: dict[int, float] = {}

    for version in range(count):
        sent_at[version] = time.perf_counter()
        await sender.publish(Invalidation("key", "users", f"user:{version}", version, "node-a"))
    await Recorder.wait_for(lambda: len(received_at) == count)

    latencies = sorted((received_at[v] - sent_at[v]) * 1000 for v in range(count))
    p50 = statistics.median(latencies)
    p99 = latencies[int(count * 0.99) - 1]
    print(f"\ninvalidation publish->on_message over {count}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    assert p99 < 100


@pytest.mark.services
async def test_a_burst_of_concurrent_publishes_is_delivered_in_full(
    redis_server: RedisServer, make_bus: BusFactory
) -> None:
    got = Recorder()
    sender = make_bus(redis_server.url, "node-a", Recorder())
    receiver = make_bus(redis_server.url, "node-b", got)
    await sender.start()
    await receiver.start()
    burst = [Invalidation("key", "ns", f"k{i}", i, "node-a") for i in range(500)]

    sent = await asyncio.gather(*(sender.publish(inv) for inv in burst))
    await got.wait_for(lambda: len(got.messages) == len(burst))

    assert all(sent)
    assert sorted(got.messages, key=lambda inv: inv.version) == burst


# --------------------------------------------------------------------------------------------
# Outages: a private Redis that can be stopped, restarted on the same port, or frozen
# --------------------------------------------------------------------------------------------


@pytest.mark.services
async def test_bus_reconnects_after_a_redis_restart_and_asks_for_an_l1_flush(
    controlled_redis: ControlledRedis, make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=BUS_LOGGER)
    got_a, got_b = Recorder(), Recorder()
    bus_a = make_bus(controlled_redis.url, "node-a", got_a)
    bus_b = make_bus(controlled_redis.url, "node-b", got_b)
    await bus_a.start()
    await bus_b.start()

    controlled_redis.stop()
    await Recorder.wait_for(lambda: not bus_b.connected)
    started = time.monotonic()
    assert not await bus_a.publish(VALID[0])  # Lost: that is why on_reconnect exists.
    assert time.monotonic() - started < 0.5
    await asyncio.sleep(0.3)  # Several failed attempts: still one warning per bus.
    await controlled_redis.arestart()
    await Recorder.wait_for(lambda: got_a.reconnects == got_b.reconnects == 1)

    await Recorder.wait_for(lambda: bus_b.connected)
    for _ in range(100):  # bus_a's publish gate may still be backing off.
        if await bus_a.publish(VALID[1]):
            break
        await asyncio.sleep(0.02)
    await got_b.wait_for(lambda: len(got_b.messages) == 1)
    assert got_b.messages == [VALID[1]]
    assert bus_b.stats.reconnects == 1
    warnings = [r for r in caplog.records if r.name == BUS_LOGGER and r.levelname == "WARNING"]
    lost = [r for r in warnings if "lost" in r.getMessage()]
    assert len(lost) == 2  # One per bus.


@pytest.mark.services
async def test_bus_detects_a_frozen_redis_by_ping_and_recovers(
    controlled_redis: ControlledRedis, make_bus: BusFactory
) -> None:
    got = Recorder()
    bus = make_bus(controlled_redis.url, "node-b", got, ping_interval=0.1, socket_timeout=0.2)
    await bus.start()

    controlled_redis.pause()
    await got.wait_for(lambda: not bus.connected, within=2.0)
    controlled_redis.resume()
    await got.wait_for(lambda: got.reconnects == 1 and bus.connected)

    publisher = make_bus(controlled_redis.url, "node-a", Recorder())
    assert await publisher.publish(VALID[0])
    await got.wait_for(lambda: got.messages == [VALID[0]])


@pytest.mark.services
async def test_bus_started_while_redis_is_down_flushes_once_it_connects(
    controlled_redis: ControlledRedis, make_bus: BusFactory
) -> None:
    got = Recorder()
    controlled_redis.stop()
    bus = make_bus(controlled_redis.url, "node-b", got)

    started = time.monotonic()
    await bus.start()  # Returns after the first (failed) attempt; does not raise.
    assert time.monotonic() - started < 0.5
    assert not bus.connected

    await controlled_redis.arestart()
    await got.wait_for(lambda: got.reconnects == 1 and bus.connected)


@pytest.mark.services
async def test_bus_keeps_retrying_when_redis_refuses_the_subscription(
    controlled_redis: ControlledRedis, make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Not only disconnects: an ACL refusal (NOPERM) must not kill the listener either."""
    admin = aredis.Redis.from_url(controlled_redis.url)
    try:
        await admin.execute_command("ACL", "SETUSER", "default", "resetchannels")
        got = Recorder()
        bus = make_bus(controlled_redis.url, "node-b", got)
        await bus.start()
        assert not bus.connected
        assert not await make_bus(controlled_redis.url, "node-a", Recorder()).publish(VALID[0])

        await admin.execute_command("ACL", "SETUSER", "default", "allchannels")
        await got.wait_for(lambda: got.reconnects == 1 and bus.connected)
    finally:
        await admin.aclose()  # type: ignore[attr-defined]
    assert any("lost" in r.getMessage() and r.exc_info for r in caplog.records)
