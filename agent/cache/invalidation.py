"""The cross-node invalidation bus: Redis pub/sub of (what, version) on one channel.

Why pub/sub and not ``CLIENT TRACKING``: it works the same on the Debian Redis 7.0 here and on
managed Redis, and it carries versions, so an L1 can drop exactly what is older than a write
(caching.md sections 0 and 6). Pub/sub is fire-and-forget: messages sent while a subscriber is
disconnected are lost, so after every reconnect the bus calls ``on_reconnect()`` and the agent
flushes (or fences) its L1. The callback runs *after* the new subscription is confirmed, so
nothing published after the flush can be missed.

Wire format: one JSON object per message,
``{"v":1,"kind":"key","namespace":"...","target":"...","version":12,"origin":"node-a"}``.
Decoding is strict (exact fields and types): a malformed message is counted and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from agent.cache.l2 import CONNECTION_ERRORS, Backoff, aclose, make_client, redacted

__all__ = [
    "DEFAULT_CHANNEL",
    "WIRE_VERSION",
    "BusStats",
    "Invalidation",
    "InvalidationBus",
    "InvalidationKind",
    "MalformedInvalidation",
]

log = logging.getLogger(__name__)

DEFAULT_CHANNEL: Final = "ls:v1:invalidate"
WIRE_VERSION: Final = 1
_PUBLISH_BATCH: Final = 500
"""At most this many publishes per pipeline (bounds one round trip's size)."""

InvalidationKind = Literal["key", "prefix", "tag", "namespace"]
_KINDS: Final = frozenset(get_args(InvalidationKind))
_FIELDS: Final = frozenset({"v", "kind", "namespace", "target", "version", "origin"})


class MalformedInvalidation(ValueError):  # noqa: N818 - reads better at the call site.
    """A bus message that is not a valid version-1 invalidation."""


@dataclass(frozen=True, slots=True)
class Invalidation:
    """Drop entries of ``namespace`` matched by ``kind``/``target`` older than ``version``.

    ``target`` is the key, prefix or tag; it is ``""`` for a whole-namespace invalidation.
    """

    kind: InvalidationKind
    namespace: str
    target: str
    version: int
    origin: str

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"unknown invalidation kind {self.kind!r}")
        for name in ("namespace", "target", "origin"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string")
        if not self.namespace or not self.origin:
            raise ValueError("namespace and origin must be non-empty")
        if self.kind == "namespace" and self.target:
            raise ValueError("a namespace invalidation has no target")
        # bool is an int subclass; a version of True is a bug, not version 1.
        if type(self.version) is not int or self.version < 0:
            raise ValueError(f"version must be a non-negative int, got {self.version!r}")

    def to_json(self) -> bytes:
        """The wire form (compact JSON, ``"v": 1``)."""
        return json.dumps(
            {
                "v": WIRE_VERSION,
                "kind": self.kind,
                "namespace": self.namespace,
                "target": self.target,
                "version": self.version,
                "origin": self.origin,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Invalidation:
        """Strict decode; raises :class:`MalformedInvalidation` for anything else."""
        try:
            obj: Any = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedInvalidation(f"not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise MalformedInvalidation("not a JSON object")
        if set(obj) != _FIELDS:
            raise MalformedInvalidation(f"fields {sorted(obj)} != {sorted(_FIELDS)}")
        if obj["v"] != WIRE_VERSION or type(obj["v"]) is not int:
            raise MalformedInvalidation(f"unsupported wire version {obj['v']!r}")
        try:
            return cls(
                kind=obj["kind"],
                namespace=obj["namespace"],
                target=obj["target"],
                version=obj["version"],
                origin=obj["origin"],
            )
        except ValueError as exc:
            raise MalformedInvalidation(str(exc)) from exc


@dataclass(slots=True)
class BusStats:
    """Counters for metrics."""

    published: int = 0
    publish_errors: int = 0
    publish_skipped: int = 0
    """Publishes not attempted: Redis was down (within the backoff) or the bus is closed."""
    received: int = 0
    own_skipped: int = 0
    malformed: int = 0
    callback_errors: int = 0
    reconnects: int = 0
    """Subscriptions re-established after a gap (each one called ``on_reconnect``)."""


class InvalidationBus:
    """Publishes invalidations and delivers other nodes' ones to ``on_message``.

    Messages from this node's own ``node_id`` are skipped: the publisher applies an
    invalidation locally before publishing it (applying it twice would be harmless).
    """

    def __init__(
        self,
        redis_url: str,
        node_id: str,
        on_message: Callable[[Invalidation], None],
        on_reconnect: Callable[[], None],
        *,
        channel: str = DEFAULT_CHANNEL,
        socket_connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        ping_interval: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        max_connections: int = 8,
    ) -> None:
        if not node_id:
            raise ValueError("node_id must be non-empty")
        self.node_id = node_id
        self.channel = channel
        self.stats = BusStats()
        self._on_message = on_message
        self._on_reconnect = on_reconnect
        self._where = redacted(redis_url)
        self._connect_deadline = socket_connect_timeout + socket_timeout
        self._ping_interval = ping_interval
        # A PING unanswered this long means a dead peer even if TCP did not notice.
        self._ping_timeout = socket_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._publish_gate = Backoff(backoff_initial, backoff_max)
        self._client = make_client(
            redis_url,
            socket_connect_timeout=socket_connect_timeout,
            socket_timeout=socket_timeout,
            max_connections=max_connections,  # One is held by the subscription.
        )
        self._task: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._outbox: list[tuple[bytes, asyncio.Future[bool]]] = []
        self._first_attempt_done = asyncio.Event()
        self._connected = False
        self._closed = False
        self._warned_malformed = False

    @property
    def connected(self) -> bool:
        """True while the subscription is live."""
        return self._connected

    async def start(self) -> None:
        """Start listening; returns once the first subscription attempt succeeded or failed.

        Never raises because Redis is down: the listener keeps retrying with backoff, and
        ``on_reconnect()`` is called once it gets through.
        """
        if self._task is not None or self._closed:
            raise RuntimeError("InvalidationBus.start() called twice or after close()")
        self._task = asyncio.create_task(self._listen(), name=f"invalidation-bus:{self.node_id}")
        await self._first_attempt_done.wait()

    async def publish(self, invalidation: Invalidation) -> bool:
        """Send to every node; False when Redis is unavailable or the bus closed (message lost).

        Publishes made while a send is in flight go out together in one pipeline, so a burst
        of invalidations costs a few round trips instead of one each.
        """
        if self._closed:
            self.stats.publish_skipped += 1
            return False
        sent: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._outbox.append((invalidation.to_json(), sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._drain_outbox())
        return await sent

    async def _drain_outbox(self) -> None:
        while self._outbox:
            batch = self._outbox[:_PUBLISH_BATCH]
            del self._outbox[:_PUBLISH_BATCH]
            try:
                ok = await self._send([payload for payload, _ in batch])
            except BaseException:  # Cancelled by close(): these were not sent.
                ok = False
                raise
            finally:
                for _, sent in batch:
                    if not sent.done():  # Its caller may have been cancelled.
                        sent.set_result(ok)

    async def _send(self, payloads: list[bytes]) -> bool:
        probe = self._publish_gate.try_acquire()
        if probe is None:
            self.stats.publish_skipped += len(payloads)
            return False
        try:
            async with asyncio.timeout(self._connect_deadline):
                if len(payloads) == 1:
                    await self._client.publish(self.channel, payloads[0])
                else:
                    async with self._client.pipeline(transaction=False) as pipe:
                        for payload in payloads:
                            pipe.publish(self.channel, payload)
                        await pipe.execute()
        except CONNECTION_ERRORS as exc:
            self.stats.publish_errors += len(payloads)
            if self._publish_gate.record_failure(probe):
                log.warning(
                    "invalidation bus at %s cannot publish (%s: %s); retrying in %.1fs",
                    self._where,
                    type(exc).__name__,
                    exc,
                    self._publish_gate.delay,
                )
            return False
        except RedisError as exc:  # Redis answered but refused (e.g. NOPERM): it is up.
            self.stats.publish_errors += len(payloads)
            self._publish_gate.record_success(probe)
            log.warning("invalidation bus at %s refused a publish: %s", self._where, exc)
            return False
        except BaseException:
            self._publish_gate.release(probe)
            raise
        if self._publish_gate.record_success(probe):
            log.info("invalidation bus at %s can publish again", self._where)
        self.stats.published += len(payloads)
        return True

    async def close(self) -> None:
        """Stop the listener and the sender (unsent publishes return False); close the pool."""
        if self._closed:
            return
        self._closed = True
        self._first_attempt_done.set()  # A start() still waiting returns.
        for task in (self._task, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for _, sent in self._outbox:
            if not sent.done():
                sent.set_result(False)
        self._outbox.clear()
        await aclose(self._client)

    # ------------------------------------------------------------------------------- listener

    async def _listen(self) -> None:
        delay = self._backoff_initial
        gap = False  # True once a subscription was lost or never made: L1 may be stale.
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._subscribe(pubsub)
                self._connected = True
                delay = self._backoff_initial
                if gap:
                    self.stats.reconnects += 1
                    log.info("invalidation bus at %s subscribed again", self._where)
                    self._call_on_reconnect()
                gap = False
                self._first_attempt_done.set()
                await self._pump(pubsub)
            except Exception as exc:  # Connection trouble, but also e.g. NOPERM: keep retrying.
                expected = isinstance(exc, CONNECTION_ERRORS)
                if self._connected or not gap:
                    log.warning(
                        "invalidation bus at %s lost (%s: %s); retrying in %.1fs",
                        self._where,
                        type(exc).__name__,
                        exc,
                        delay,
                        exc_info=not expected,
                    )
                else:
                    log.debug("invalidation bus still down (%s: %s)", type(exc).__name__, exc)
                gap = True
                self._first_attempt_done.set()
            finally:
                self._connected = False
                await aclose(pubsub)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _subscribe(self, pubsub: PubSub) -> None:
        """Subscribe and wait for the server's confirmation (messages flow only after it)."""
        async with asyncio.timeout(self._connect_deadline):
            await pubsub.subscribe(self.channel)
            while True:
                message = await pubsub.get_message(timeout=self._connect_deadline)
                if message is not None and message["type"] == "subscribe":
                    return

    async def _pump(self, pubsub: PubSub) -> None:
        """Deliver messages until the connection fails; PING when idle to detect dead peers."""
        loop = asyncio.get_running_loop()
        last_seen = loop.time()
        ping_sent: float | None = None
        while True:
            now = loop.time()
            if ping_sent is not None:
                if now - ping_sent > self._ping_timeout:
                    raise TimeoutError(f"no PONG within {self._ping_timeout:g}s")
                wait = ping_sent + self._ping_timeout - now
            elif now - last_seen >= self._ping_interval:
                await pubsub.ping()
                ping_sent = now
                wait = self._ping_timeout
            else:
                wait = last_seen + self._ping_interval - now
            message = await pubsub.get_message(timeout=max(wait, 0.001))
            if message is None:
                continue
            last_seen = loop.time()
            ping_sent = None
            if message["type"] == "message":
                self._deliver(message["data"])

    def _deliver(self, data: bytes) -> None:
        try:
            invalidation = Invalidation.from_json(data)
        except MalformedInvalidation as exc:
            self.stats.malformed += 1
            if not self._warned_malformed:
                self._warned_malformed = True
                log.warning(
                    "malformed invalidation skipped (%s); further ones are only counted", exc
                )
            return
        if invalidation.origin == self.node_id:
            self.stats.own_skipped += 1
            return
        self.stats.received += 1
        try:
            self._on_message(invalidation)
        except Exception:
            self.stats.callback_errors += 1
            log.exception("invalidation bus on_message failed for %s", invalidation)

    def _call_on_reconnect(self) -> None:
        try:
            self._on_reconnect()
        except Exception:
            self.stats.callback_errors += 1
            log.exception("invalidation bus on_reconnect failed")
