"""The agent's in-memory L1: a byte-bounded, TTL'd, versioned map plus per-key single-flight.

The store is a pure data structure: no I/O and no clock of its own (the clock is injected, so
tests and trace replays drive time), and the eviction decisions belong to a ``Policy`` (see
``policy_api``). What the store adds on top of the policy is what users of cache libraries keep
asking for: TTLs with stale-while-revalidate, negative caching, a bound in bytes, invalidation
by key, prefix, tag and namespace, and stampede protection.

Version rules (L2 hands out a monotonically increasing version per key; invalidations carry the
version of the delete or overwrite; version 0 means "unversioned", for L1-only use):

1. A versioned ``delete(k, version=t)`` records a tombstone ``t`` for ``tombstone_seconds`` (the
   larger version wins if one is already live), whether or not ``k`` is resident. It removes a
   resident entry whose version is ``<= t`` or 0, and keeps one that is newer than ``t``.
2. ``put(k, version=v)`` with ``v > 0`` is refused if a live tombstone has version ``>= v``, or
   if the resident entry has a version ``> v`` (no stepping back). ``v ==`` resident version is
   accepted as a refresh (same version, same value: the TTL restarts).
3. ``put(k, version=0)`` is last-writer-wins against any resident entry, but is refused while a
   live (versioned) tombstone exists: an unversioned value cannot be ordered against the delete.
4. An unversioned delete (``version=None`` or 0) removes the entry and records no tombstone:
   there is no version to compare later puts with, and a later put is a later write.
5. Any delete, invalidation or put touching a key with a load in flight fences that load: its
   result is still returned to its waiters but only cached if its version is above the fence
   (an unversioned fence blocks caching outright). This is what keeps a load that read L2
   before an invalidation from caching the old value afterwards, also for prefix, tag and
   namespace invalidations, which can tombstone only the keys they find resident.
6. A refused put removes the resident entry unless that entry is strictly newer than the put
   (``v > 0`` and resident version ``> v``): a refused write must never leave an older value
   being served. So a put refused for size, TTL or admission drops the old value.
7. ``put_negative`` (the key is absent upstream) ignores tombstones (absence is never stale after
   a delete) but never replaces a resident versioned value.

Together: after ``delete(k, version=v)``, no value with version ``<= v`` is served, provided the
late put arrives within ``tombstone_seconds`` (tombstones are bounded in number too; the oldest
are dropped first and counted in ``tombstones_dropped``).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from agent.cache.policy import WTinyLFU
from agent.cache.policy_api import Policy

_log = logging.getLogger(__name__)

Key = tuple[str, str]
State = Literal["fresh", "stale", "negative", "miss"]
Source = Literal["l1", "loaded", "stale", "negative"]
PolicyFactory = Callable[[int], Policy[Key]]

ENTRY_OVERHEAD_BYTES = 768
"""Bytes charged per entry on top of its strings and value: the CPython objects behind one
entry (the key tuple and string header, the ``bytes`` header, slot, ``Entry``, hit ``Lookup``,
timestamps, dict and namespace-index slots, the expiry-heap record) and the policy's node.
Measured with ``tracemalloc`` on CPython 3.11 with W-TinyLFU: about 760 bytes for an untagged
entry; each tag costs about 100 more, which the weight does not charge. Without it a cache of
small values would use several times its byte bound."""

_NO_TTLS: Mapping[str, float] = MappingProxyType({})
_UNFENCED = -1.0


def entry_weight(namespace: str, key: str, value: bytes, tags: Sequence[str] = ()) -> int:
    """The weight the policy sees for one entry (string lengths are counted in characters)."""
    return ENTRY_OVERHEAD_BYTES + len(namespace) + len(key) + len(value) + sum(map(len, tags))


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached value; a negative entry has ``value == b""`` and version 0."""

    value: bytes
    version: int
    tags: tuple[str, ...]
    stored_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Lookup:
    """The outcome of a read. ``entry`` is None for a miss (and for an uncached negative load)."""

    state: State
    entry: Entry | None


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a loader returns; ``ttl_seconds`` None falls back to the call's, then the
    namespace's TTL."""

    value: bytes
    version: int = 0
    tags: tuple[str, ...] = ()
    ttl_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class NamespaceStats:
    """Cumulative counters and current gauges (``entries``, ``bytes``) for one namespace.

    Requests = hits + stale_hits + negative_hits + misses. ``evictions`` are resident entries
    the policy pushed out; ``rejections`` are puts not stored (version, size, TTL, admission);
    ``invalidations`` are entries removed by delete/invalidate/clear or superseded by a refused
    put; ``loads`` count loader calls and ``load_errors`` / ``refresh_errors`` their failures in
    the foreground / background.
    """

    hits: int
    misses: int
    stale_hits: int
    negative_hits: int
    evictions: int
    expirations: int
    invalidations: int
    rejections: int
    loads: int
    load_errors: int
    refresh_errors: int
    entries: int
    bytes: int


MISS = Lookup("miss", None)
_NEGATIVE_UNCACHED = Lookup("negative", None)


class _Counters:
    __slots__ = (
        "bytes",
        "entries",
        "evictions",
        "expirations",
        "hits",
        "invalidations",
        "load_errors",
        "loads",
        "misses",
        "negative_hits",
        "refresh_errors",
        "rejections",
        "stale_hits",
    )

    def __init__(self) -> None:
        self.hits = self.misses = self.stale_hits = self.negative_hits = 0
        self.evictions = self.expirations = self.invalidations = self.rejections = 0
        self.loads = self.load_errors = self.refresh_errors = 0
        self.entries = self.bytes = 0

    def snapshot(self) -> NamespaceStats:
        return NamespaceStats(
            hits=self.hits,
            misses=self.misses,
            stale_hits=self.stale_hits,
            negative_hits=self.negative_hits,
            evictions=self.evictions,
            expirations=self.expirations,
            invalidations=self.invalidations,
            rejections=self.rejections,
            loads=self.loads,
            load_errors=self.load_errors,
            refresh_errors=self.refresh_errors,
            entries=self.entries,
            bytes=self.bytes,
        )


class _Slot:
    """One resident entry with what the hot path needs precomputed (the hit ``Lookup`` is built
    once at put time so a hit allocates nothing)."""

    __slots__ = ("counters", "deadline", "entry", "expires_at", "hit", "negative", "seq", "weight")

    def __init__(
        self,
        entry: Entry,
        negative: bool,
        deadline: float,
        weight: int,
        seq: int,
        counters: _Counters,
    ) -> None:
        self.entry = entry
        self.negative = negative
        self.expires_at = entry.expires_at
        self.deadline = deadline  # end of the stale window; the entry is dropped after it
        self.weight = weight
        self.seq = seq
        self.counters = counters
        self.hit = Lookup("negative" if negative else "fresh", entry)


class _Flight:
    __slots__ = ("background", "fence", "task")

    def __init__(self, background: bool) -> None:
        self.background = background
        self.fence = _UNFENCED  # a loaded version must exceed this to be cached
        self.task: asyncio.Task[tuple[Lookup, Source]] | None = None


def default_policy(capacity_bytes: int) -> Policy[Key]:
    """W-TinyLFU weighted in bytes: its sketch is sized from the resident entries."""
    return WTinyLFU[Key](capacity_bytes, weighted=True)


class L1Cache:
    """Byte-bounded in-memory cache of ``(namespace, key) -> bytes`` with TTLs, versions and
    single-flight loading, for one event loop (not thread-safe).

    Every operation is O(1) (a put adds O(log n) for the expiry heap) except the invalidations
    that scan: prefix (the namespace), tag (the tagged keys), namespace, and clear. Stats are
    kept per namespace ever seen, so namespaces are meant to be a small, configured set.
    """

    def __init__(
        self,
        capacity_bytes: int,
        clock: Callable[[], float],
        *,
        policy_factory: PolicyFactory = default_policy,
        default_ttl_seconds: float = 300,
        namespace_ttls: Mapping[str, float] = _NO_TTLS,
        max_ttl_seconds: float = 86400,
        negative_ttl_seconds: float = 5,
        stale_seconds: float = 0,
        tombstone_seconds: float = 60,
        max_tombstones: int = 65536,
    ) -> None:
        if capacity_bytes < 0:
            raise ValueError("capacity_bytes must be >= 0")
        for name, seconds in (
            ("default_ttl_seconds", default_ttl_seconds),
            ("max_ttl_seconds", max_ttl_seconds),
            ("negative_ttl_seconds", negative_ttl_seconds),
            ("stale_seconds", stale_seconds),
            ("tombstone_seconds", tombstone_seconds),
            *((f"namespace_ttls[{ns!r}]", ttl) for ns, ttl in namespace_ttls.items()),
        ):
            if not seconds >= 0:
                raise ValueError(f"{name} must be >= 0, got {seconds!r}")
        if max_tombstones < 0:
            raise ValueError("max_tombstones must be >= 0")
        self._clock = clock
        self._policy = policy_factory(capacity_bytes)
        self._access = self._policy.access
        self._record_miss = self._policy.record_miss
        self._max_ttl = float(max_ttl_seconds)
        self._default_ttl = float(default_ttl_seconds)
        self._ns_ttls = {ns: float(ttl) for ns, ttl in namespace_ttls.items()}
        self._negative_ttl = float(negative_ttl_seconds)
        self._stale = float(stale_seconds)
        self._tombstone_seconds = float(tombstone_seconds)
        self._max_tombstones = max_tombstones
        self._slots: dict[Key, _Slot] = {}
        self._weight = 0
        self._counters: dict[str, _Counters] = {}
        self._ns_keys: dict[str, set[str]] = {}
        self._tag_keys: dict[Key, set[str]] = {}  # (namespace, tag) -> keys
        self._heap: list[tuple[float, int, Key]] = []  # (deadline, seq, key), lazily deleted
        self._seq = itertools.count()
        self._tombstones: OrderedDict[Key, tuple[int, float]] = OrderedDict()  # -> (ver, until)
        self._tombstones_dropped = 0
        self._flights: dict[Key, _Flight] = {}
        self._tasks: set[asyncio.Task[tuple[Lookup, Source]]] = set()
        self._closed = False

    # -- reads ------------------------------------------------------------------------------

    def get(self, namespace: str, key: str) -> Lookup:
        """Read without loading; a hit counts for the policy, a miss counts for admission."""
        k = (namespace, key)
        slot = self._slots.get(k)
        if slot is not None:
            now = self._clock()
            if now < slot.expires_at:
                self._access(k)
                if slot.negative:
                    slot.counters.negative_hits += 1
                else:
                    slot.counters.hits += 1
                return slot.hit
            if now < slot.deadline:
                self._access(k)
                slot.counters.stale_hits += 1
                return Lookup("stale", slot.entry)
            self._policy.remove(k)
            self._unlink(k, slot)
            slot.counters.expirations += 1
        self._record_miss(k)
        self._ns(namespace).misses += 1
        return MISS

    # -- writes -----------------------------------------------------------------------------

    def put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        ttl_seconds: float | None = None,
        tags: Sequence[str] = (),
        version: int = 0,
    ) -> bool:
        """Store a value; False when refused (see the module's version rules), in which case no
        older value for the key is left behind."""
        return (
            self._put(namespace, key, value, ttl_seconds, tuple(tags), version, negative=False)
            is not None
        )

    def put_negative(self, namespace: str, key: str, ttl_seconds: float | None = None) -> bool:
        """Remember that the key is absent upstream, so repeated misses do not reach L2."""
        ttl = self._negative_ttl if ttl_seconds is None else ttl_seconds
        return self._put(namespace, key, b"", ttl, (), 0, negative=True) is not None

    def delete(self, namespace: str, key: str, version: int | None = None) -> bool:
        """Drop a key (an invalidation message); a version leaves a tombstone so a racing put
        of an older version cannot bring the old value back. True if an entry was removed."""
        v = _check_version(version)
        return self._invalidate((namespace, key), v, self._clock())

    def invalidate_prefix(self, namespace: str, prefix: str, version: int | None = None) -> int:
        """Drop every key of the namespace starting with ``prefix`` (scans the namespace)."""
        v = _check_version(version)
        now = self._clock()
        self._fence_flights(lambda k: k[0] == namespace and k[1].startswith(prefix), v)
        keys = [key for key in self._ns_keys.get(namespace, ()) if key.startswith(prefix)]
        return sum(self._invalidate((namespace, key), v, now) for key in keys)

    def invalidate_tag(self, namespace: str, tag: str, version: int | None = None) -> int:
        """Drop every key of the namespace stored with ``tag``. Loads in flight in the namespace
        are fenced too, since their tags are unknown until they finish."""
        v = _check_version(version)
        now = self._clock()
        self._fence_flights(lambda k: k[0] == namespace, v)
        keys = list(self._tag_keys.get((namespace, tag), ()))
        return sum(self._invalidate((namespace, key), v, now) for key in keys)

    def invalidate_namespace(self, namespace: str) -> int:
        """Drop the whole namespace (e.g. its schema or source changed)."""
        self._fence_flights(lambda k: k[0] == namespace, 0)
        keys = list(self._ns_keys.get(namespace, ()))
        return sum(self._drop((namespace, key)) for key in keys)

    def clear(self) -> int:
        """Drop everything, after the invalidation channel was lost and messages may have been
        missed. Tombstones are kept (they stay true); loads in flight are fenced."""
        self._fence_flights(lambda _k: True, 0)
        return sum(self._drop(k) for k in list(self._slots))

    def resize(self, capacity_bytes: int) -> int:
        """Change the byte bound; returns how many entries were evicted to fit."""
        if capacity_bytes < 0:
            raise ValueError("capacity_bytes must be >= 0")
        return self._evicted(self._policy.resize(capacity_bytes), None)

    def expire(self, max_items: int = 1000) -> int:
        """Reclaim entries past their stale window without waiting for a get; examines at most
        ``max_items`` expiry records, so a periodic call never stalls the loop. Returns the
        number of entries removed. Also prunes expired tombstones."""
        now = self._clock()
        self._prune_tombstones(now)
        heap = self._heap
        slots = self._slots
        removed = 0
        for _ in range(max_items):
            if not heap or heap[0][0] > now:
                break
            _deadline, seq, k = heapq.heappop(heap)
            slot = slots.get(k)
            if slot is None or slot.seq != seq:
                continue  # superseded or already removed
            self._policy.remove(k)
            self._unlink(k, slot)
            slot.counters.expirations += 1
            removed += 1
        return removed

    # -- single-flight ----------------------------------------------------------------------

    async def get_or_load(
        self,
        namespace: str,
        key: str,
        loader: Callable[[], Awaitable[Loaded | None]],
        *,
        ttl_seconds: float | None = None,
    ) -> tuple[Lookup, Source]:
        """Read, loading on a miss with at most one loader call per key at a time.

        A stale entry is returned at once and refreshed by one background load. The loader
        runs in a task of its own, so a cancelled caller neither cancels it for the others nor
        leaves the key without its flight; a loader exception reaches every waiter and caches
        nothing. ``None`` from the loader caches a negative entry.
        """
        lookup = self.get(namespace, key)
        state = lookup.state
        if state == "fresh":
            return lookup, "l1"
        if state == "negative":
            return lookup, "negative"
        k = (namespace, key)
        flight = self._flights.get(k)
        if state == "stale":
            if flight is None and not self._closed:
                self._start(k, loader, ttl_seconds, background=True)
            return lookup, "stale"
        if flight is None:
            flight = self._start(k, loader, ttl_seconds, background=False)
        assert flight.task is not None
        return await asyncio.shield(flight.task)

    async def drain(self) -> None:
        """Wait for every load and background refresh in progress (errors stay counted)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Cancel loads and refreshes in progress and start no more background refreshes."""
        self._closed = True
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # -- introspection ----------------------------------------------------------------------

    @property
    def capacity_bytes(self) -> int:
        return self._policy.capacity

    @property
    def weight(self) -> int:
        """Bytes charged for resident entries (equals the policy's weight)."""
        return self._weight

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    @property
    def tombstones_dropped(self) -> int:
        """Tombstones dropped before expiry because ``max_tombstones`` was reached."""
        return self._tombstones_dropped

    @property
    def loads_in_flight(self) -> int:
        return len(self._flights)

    def __len__(self) -> int:
        return len(self._slots)

    def stats(self) -> dict[str, NamespaceStats]:
        return {ns: counters.snapshot() for ns, counters in self._counters.items()}

    # -- internals --------------------------------------------------------------------------

    def _ns(self, namespace: str) -> _Counters:
        counters = self._counters.get(namespace)
        if counters is None:
            counters = self._counters[namespace] = _Counters()
        return counters

    def _ttl(self, namespace: str, ttl_seconds: float | None) -> float:
        if ttl_seconds is None:
            ttl_seconds = self._ns_ttls.get(namespace, self._default_ttl)
        return min(ttl_seconds, self._max_ttl)

    def _put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        ttl_seconds: float | None,
        tags: tuple[str, ...],
        version: int,
        *,
        negative: bool,
    ) -> _Slot | None:
        if version < 0:
            raise ValueError("version must be >= 0")
        k = (namespace, key)
        now = self._clock()
        if self._flights:
            self._fence(k, version)
        counters = self._ns(namespace)
        old = self._slots.get(k)
        if negative:
            if old is not None and old.entry.version > 0:
                self._refuse(k, None, counters)
                return None
        else:
            tomb = self._tombstones.get(k) if self._tombstones else None
            if tomb is not None and tomb[1] <= now:
                del self._tombstones[k]
                tomb = None
            if tomb is not None and version <= tomb[0]:
                # Rule 2 (the resident entry, if any, is newer than the tombstone) or rule 3.
                self._refuse(k, old if version == 0 else None, counters)
                return None
            if version and old is not None and old.entry.version > version:
                self._refuse(k, None, counters)
                return None
        ttl = self._ttl(namespace, ttl_seconds)
        weight = entry_weight(namespace, key, value, tags)
        if not ttl > 0 or weight > self._policy.capacity:
            self._refuse(k, old, counters)
            return None
        expires_at = now + ttl
        slot = _Slot(
            Entry(value, version, tags, now, expires_at),
            negative,
            expires_at if negative or not self._stale else expires_at + self._stale,
            weight,
            next(self._seq),
            counters,
        )
        policy = self._policy
        evicted = policy.insert(k, weight) if old is None else policy.update(k, weight)
        if evicted:
            self._evicted(evicted, k)
            if k in evicted:
                if old is not None:
                    self._unlink(k, old)  # the policy already let go of it
                    counters.invalidations += 1
                counters.rejections += 1
                return None
        if old is not None:
            self._unlink(k, old)
        self._link(k, slot)
        return slot

    def _refuse(self, k: Key, superseded: _Slot | None, counters: _Counters) -> None:
        counters.rejections += 1
        if superseded is not None:
            self._policy.remove(k)
            self._unlink(k, superseded)
            counters.invalidations += 1

    def _evicted(self, keys: list[Key], skip: Key | None) -> int:
        count = 0
        for k in keys:
            if k == skip:
                continue
            slot = self._slots.get(k)
            if slot is not None:
                self._unlink(k, slot)
                slot.counters.evictions += 1
                count += 1
        return count

    def _invalidate(self, k: Key, version: int, now: float) -> bool:
        if version and self._tombstone_seconds > 0:
            self._tombstone(k, version, now)
        if self._flights:
            self._fence(k, version)
        slot = self._slots.get(k)
        if slot is None or (version and slot.entry.version > version):
            return False
        self._policy.remove(k)
        self._unlink(k, slot)
        slot.counters.invalidations += 1
        return True

    def _drop(self, k: Key) -> bool:
        slot = self._slots.get(k)
        if slot is None:
            return False
        self._policy.remove(k)
        self._unlink(k, slot)
        slot.counters.invalidations += 1
        return True

    def _tombstone(self, k: Key, version: int, now: float) -> None:
        tombs = self._tombstones
        old = tombs.pop(k, None)
        if old is not None and old[1] > now and old[0] > version:
            version = old[0]
        tombs[k] = (version, now + self._tombstone_seconds)
        self._prune_tombstones(now)
        while len(tombs) > self._max_tombstones:
            tombs.popitem(last=False)
            self._tombstones_dropped += 1

    def _prune_tombstones(self, now: float) -> None:
        # Every tombstone lives equally long and a refresh moves it to the end, so the
        # dict is ordered by expiry and pruning stops at the first live one.
        tombs = self._tombstones
        while tombs:
            first = next(iter(tombs))
            if tombs[first][1] > now:
                break
            del tombs[first]

    def _fence(self, k: Key, version: int) -> None:
        flight = self._flights.get(k)
        if flight is not None:
            flight.fence = max(flight.fence, version if version else math.inf)

    def _fence_flights(self, match: Callable[[Key], bool], version: int) -> None:
        for k in [k for k in self._flights if match(k)]:
            self._fence(k, version)

    def _link(self, k: Key, slot: _Slot) -> None:
        namespace, key = k
        self._slots[k] = slot
        keys = self._ns_keys.get(namespace)
        if keys is None:
            keys = self._ns_keys[namespace] = set()
        keys.add(key)
        for tag in slot.entry.tags:
            tagged = self._tag_keys.get((namespace, tag))
            if tagged is None:
                tagged = self._tag_keys[(namespace, tag)] = set()
            tagged.add(key)
        self._weight += slot.weight
        slot.counters.entries += 1
        slot.counters.bytes += slot.weight
        heap = self._heap
        heapq.heappush(heap, (slot.deadline, slot.seq, k))
        if len(heap) > 2 * len(self._slots) + 64:
            # Superseded records outnumber live ones: rebuild, amortised O(1) per put.
            self._heap = [(s.deadline, s.seq, key2) for key2, s in self._slots.items()]
            heapq.heapify(self._heap)

    def _unlink(self, k: Key, slot: _Slot) -> None:
        namespace, key = k
        del self._slots[k]
        keys = self._ns_keys[namespace]
        keys.discard(key)
        if not keys:
            del self._ns_keys[namespace]
        for tag in slot.entry.tags:
            tagged = self._tag_keys.get((namespace, tag))
            if tagged is not None:
                tagged.discard(key)
                if not tagged:
                    del self._tag_keys[(namespace, tag)]
        self._weight -= slot.weight
        slot.counters.entries -= 1
        slot.counters.bytes -= slot.weight

    def _start(
        self,
        k: Key,
        loader: Callable[[], Awaitable[Loaded | None]],
        ttl_seconds: float | None,
        *,
        background: bool,
    ) -> _Flight:
        flight = _Flight(background)
        task = asyncio.get_running_loop().create_task(
            self._load(k, flight, loader, ttl_seconds), name=f"l1-load:{k[0]}"
        )
        flight.task = task
        self._flights[k] = flight
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._load_done, k, flight))
        return flight

    def _load_done(
        self, k: Key, flight: _Flight, task: asyncio.Task[tuple[Lookup, Source]]
    ) -> None:
        # Also covers a task cancelled before it ran, whose ``finally`` never executed.
        if self._flights.get(k) is flight:
            del self._flights[k]
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: waiters (if any) re-raise it; nobody else should log

    async def _load(
        self,
        k: Key,
        flight: _Flight,
        loader: Callable[[], Awaitable[Loaded | None]],
        ttl_seconds: float | None,
    ) -> tuple[Lookup, Source]:
        counters = self._ns(k[0])
        counters.loads += 1
        try:
            loaded = await loader()
        except Exception:
            if flight.background:
                counters.refresh_errors += 1
                _log.warning("background refresh of %s/%s failed", k[0], k[1], exc_info=True)
            else:
                counters.load_errors += 1
            raise
        finally:
            if self._flights.get(k) is flight:
                del self._flights[k]
        namespace, key = k
        if loaded is None:
            if flight.fence == _UNFENCED and self._negative_ttl > 0:
                slot = self._put(namespace, key, b"", self._negative_ttl, (), 0, negative=True)
                if slot is not None:
                    return slot.hit, "loaded"
            return _NEGATIVE_UNCACHED, "loaded"
        ttl = ttl_seconds if loaded.ttl_seconds is None else loaded.ttl_seconds
        value, version, tags = loaded.value, loaded.version, tuple(loaded.tags)
        if version > flight.fence:
            slot = self._put(namespace, key, value, ttl, tags, version, negative=False)
            if slot is not None:
                return slot.hit, "loaded"
        now = self._clock()
        entry = Entry(value, version, tags, now, now + self._ttl(namespace, ttl))
        return Lookup("fresh", entry), "loaded"


def _check_version(version: int | None) -> int:
    if version is None:
        return 0
    if version < 0:
        raise ValueError("version must be >= 0")
    return version
