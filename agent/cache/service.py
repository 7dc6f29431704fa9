"""The agent's cache: L1 in front of an optional Redis L2, kept coherent across nodes.

Reads go L1 → L2 (single-flight per key, so a stampede of misses costs one L2 read); writes go
through to L2 first, which hands out the per-key version, then into L1, then onto the
invalidation bus so every other node drops its copy. An invalidation carries the highest
version that is now stale: for a delete, the delete's own version; for an overwrite to version
v, v - 1, so other nodes may cache v itself but never anything older.

When Redis is down the cache serves from L1 alone: reads miss instead of failing, writes stay
local. When the invalidation channel was lost, the L1 is flushed, because messages sent during
the gap are gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.cache.invalidation import Invalidation, InvalidationBus
from agent.cache.l1 import Entry, L1Cache, Loaded, entry_weight
from agent.cache.l2 import RedisL2
from agent.cache.mrc import MissRatioCurve
from shared import metric_names
from shared.wire import CacheLevelStats, MissRatioPoint

log = logging.getLogger(__name__)

Level = Literal["L1", "L2"]
InvalidationKind = Literal["key", "prefix", "tag", "namespace"]


@dataclass(frozen=True)
class CacheRead:
    entry: Entry
    level: Level


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            metric_names.CACHE_REQUESTS,
            "Cache lookups by level, namespace and result (hit, stale, miss).",
            ["level", "namespace", "result"],
            registry=registry,
        )
        self.invalidations = Counter(
            metric_names.CACHE_INVALIDATIONS,
            "Invalidations applied to this node's L1, by source (local, remote, channel_lost).",
            ["source", "kind"],
            registry=registry,
        )
        self.lookup = Histogram(
            metric_names.CACHE_LOOKUP_DURATION,
            "Time to answer a cache read, by the level that answered (or miss).",
            ["level"],
            buckets=(5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1),
            registry=registry,
        )


class CacheService:
    def __init__(
        self,
        l1: L1Cache,
        l2: RedisL2 | None,
        publisher: InvalidationBus | None,
        node_id: str,
        metrics: CacheMetrics,
        mrc: MissRatioCurve | None = None,
        default_ttl_seconds: float = 300.0,
    ) -> None:
        self.l1 = l1
        self.l2 = l2
        self.publisher = publisher  # set after construction when the bus needs the service
        self._node_id = node_id
        self._metrics = metrics
        self.mrc = mrc
        self._default_ttl = default_ttl_seconds
        self.l2_hits: dict[str, int] = {}
        self.l2_misses: dict[str, int] = {}

    # -- reads --------------------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> CacheRead | None:
        started = time.perf_counter()
        if self.l2 is None:
            lookup = self.l1.get(namespace, key)
            source = {"fresh": "l1", "stale": "stale", "negative": "negative"}.get(
                lookup.state, "miss"
            )
        else:
            lookup, source = await self.l1.get_or_load(
                namespace, key, lambda: self._load(namespace, key)
            )
        read = self._count(namespace, source, lookup.entry)
        self._metrics.lookup.labels(read.level if read else "miss").observe(
            time.perf_counter() - started
        )
        if self.mrc is not None and read is not None:
            self.mrc.record(f"{namespace}\x00{key}", entry_weight(namespace, key, read.entry.value))
        return read

    def _count(self, namespace: str, source: str, entry: Entry | None) -> CacheRead | None:
        requests = self._metrics.requests
        if source in ("l1", "stale") and entry is not None:
            requests.labels("l1", namespace, "hit" if source == "l1" else "stale").inc()
            return CacheRead(entry, "L1")
        requests.labels("l1", namespace, "miss").inc()
        if source == "loaded" and entry is not None and entry.value:
            requests.labels("l2", namespace, "hit").inc()
            return CacheRead(entry, "L2")
        if self.l2 is not None and source != "negative":
            requests.labels("l2", namespace, "miss").inc()
        return None

    async def _load(self, namespace: str, key: str) -> Loaded | None:
        assert self.l2 is not None
        found = await self.l2.get(namespace, key)
        if found is None:
            self.l2_misses[namespace] = self.l2_misses.get(namespace, 0) + 1
            return None
        self.l2_hits[namespace] = self.l2_hits.get(namespace, 0) + 1
        return Loaded(
            value=found.value,
            version=found.version,
            tags=found.tags,
            ttl_seconds=found.ttl_seconds,
        )

    # -- writes -------------------------------------------------------------------------------

    async def put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        ttl_seconds: float | None,
        tags: Sequence[str] = (),
    ) -> tuple[int, bool]:
        """Write through; returns (version, stored in L1). Version 0: L2 is absent or down."""
        ttl = self._default_ttl if ttl_seconds is None else ttl_seconds
        version = 0
        if self.l2 is not None:
            version = await self.l2.set(namespace, key, value, ttl_seconds=ttl, tags=tags)
        stored = self.l1.put(namespace, key, value, ttl_seconds=ttl, tags=tags, version=version)
        if version:
            await self._publish("key", namespace, key, version - 1)
        return version, stored

    async def delete(self, namespace: str, key: str) -> tuple[bool, int]:
        version = 0
        if self.l2 is not None:
            version = await self.l2.delete(namespace, key)
        deleted = self.l1.delete(namespace, key, version=version or None)
        self._metrics.invalidations.labels("local", "key").inc()
        if version:
            await self._publish("key", namespace, key, version)
        return deleted, version

    async def invalidate(
        self, namespace: str, kind: Literal["prefix", "tag"], target: str
    ) -> tuple[int, int]:
        """Drop matching keys here, in L2, and (through the bus) on every other node."""
        version = 0
        if self.l2 is not None:
            remote = (
                await self.l2.invalidate_prefix(namespace, target)
                if kind == "prefix"
                else await self.l2.invalidate_tag(namespace, target)
            )
            version = remote[1]
        if kind == "prefix":
            count = self.l1.invalidate_prefix(namespace, target, version=version or None)
        else:
            count = self.l1.invalidate_tag(namespace, target, version=version or None)
        self._metrics.invalidations.labels("local", kind).inc()
        await self._publish(kind, namespace, target, version)
        return count, version

    async def _publish(
        self, kind: InvalidationKind, namespace: str, target: str, version: int
    ) -> None:
        if self.publisher is None:
            return
        await self.publisher.publish(
            Invalidation(
                kind=kind,
                namespace=namespace,
                target=target,
                version=version,
                origin=self._node_id,
            )
        )

    # -- from the bus ---------------------------------------------------------------------------

    def apply(self, message: Invalidation) -> None:
        """Another node deleted or overwrote something: drop our copy (versioned)."""
        if message.origin == self._node_id:
            return
        version = message.version or None
        if message.kind == "key":
            self.l1.delete(message.namespace, message.target, version=version)
        elif message.kind == "prefix":
            self.l1.invalidate_prefix(message.namespace, message.target, version=version)
        elif message.kind == "tag":
            self.l1.invalidate_tag(message.namespace, message.target, version=version)
        else:
            self.l1.invalidate_namespace(message.namespace)
        self._metrics.invalidations.labels("remote", message.kind).inc()

    def channel_lost(self) -> None:
        """Invalidations sent while we were disconnected are gone: trust nothing we hold."""
        dropped = self.l1.clear()
        self._metrics.invalidations.labels("channel_lost", "namespace").inc()
        log.warning("cache invalidation channel reconnected: flushed %d L1 entries", dropped)

    # -- reporting ------------------------------------------------------------------------------

    def level_stats(self) -> list[CacheLevelStats]:
        stats = []
        for namespace, l1 in sorted(self.l1.stats().items()):
            stats.append(
                CacheLevelStats(
                    level="l1",
                    namespace=namespace,
                    hits=l1.hits + l1.stale_hits,
                    misses=l1.misses,
                    evictions=l1.evictions,
                    entries=l1.entries,
                    bytes=l1.bytes,
                    errors=l1.load_errors + l1.refresh_errors,
                )
            )
            if self.l2 is not None:
                stats.append(
                    CacheLevelStats(
                        level="l2",
                        namespace=namespace,
                        hits=self.l2_hits.get(namespace, 0),
                        misses=self.l2_misses.get(namespace, 0),
                        evictions=0,
                        entries=0,
                        bytes=0,
                    )
                )
        return stats

    def miss_ratio_curve(self, points: int = 16) -> list[MissRatioPoint]:
        if self.mrc is None:
            return []
        top = 4 * self.l1.capacity_bytes
        capacities = [max(1, top * (index + 1) // points) for index in range(points)]
        return [
            MissRatioPoint(capacity_bytes=capacity, miss_ratio=min(1.0, max(0.0, ratio)))
            for capacity, ratio in self.mrc.curve(capacities)
        ]


class CacheGauges(Collector):
    """Bytes and entries per namespace, and evictions, read from the L1 at scrape time."""

    def __init__(self, service: Callable[[], CacheService | None]) -> None:
        self._service = service

    def collect(self) -> list[Metric]:
        service = self._service()
        labels = ["level", "namespace"]
        size = GaugeMetricFamily(metric_names.CACHE_BYTES, "Bytes held.", labels=labels)
        entries = GaugeMetricFamily(metric_names.CACHE_ENTRIES, "Entries held.", labels=labels)
        evictions = CounterMetricFamily(
            metric_names.CACHE_EVICTIONS, "Entries evicted by the policy.", labels=labels
        )
        available = GaugeMetricFamily(
            metric_names.CACHE_L2_AVAILABLE, "1 when Redis (L2) answers, 0 when degraded."
        )
        errors = CounterMetricFamily(
            metric_names.CACHE_L2_ERRORS, "Redis (L2) errors, timeouts and corrupt values."
        )
        if service is not None:
            for namespace, stats in service.l1.stats().items():
                size.add_metric(["l1", namespace], stats.bytes)
                entries.add_metric(["l1", namespace], stats.entries)
                evictions.add_metric(["l1", namespace], stats.evictions)
            if service.l2 is not None:
                available.add_metric([], 1.0 if service.l2.available else 0.0)
                errors.add_metric([], service.l2.stats.errors)
        return [size, entries, evictions, available, errors]
