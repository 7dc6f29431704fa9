"""Eviction policies for the L1 store and for trace replays: ``LRU`` and ``WTinyLFU``.

``WTinyLFU`` follows Caffeine (v3.2.x, ``BoundedLocalCache`` and ``FrequencySketch``), because
its published hit ratios are the bar our L1 is measured against (see
``shared/research/caching.md`` §1 and ``shared/data/cache-traces/README.md``):

* a small LRU **window** (1 % of the capacity to start with) that every new key enters;
* a **main** region, a segmented LRU split 80/20 between *protected* and *probation*;
* a 4-bit count-min **sketch** of recent popularity, aged by halving every 10 * capacity
  increments, that decides whether the window's LRU entry (the *candidate*) may replace the
  probation LRU entry (the *victim*): ``freq(candidate) > freq(victim)``, ties rejected, and a
  warm candidate (frequency >= 6) admitted at random 1 time in 128 against hash flooding;
* a **hill climber** that moves capacity between window and main, towards whichever of
  recency or frequency improved the hit rate over the last sample period.

Both regions are measured in weight, as Caffeine's ``maximumWeight``: the agent's L1 passes
bytes, trace replays pass 1 per entry with the capacity in entries. An entry heavier than
the whole capacity is evicted at once without disturbing the others.

Differences from Caffeine, all deliberate:

* Single-threaded and synchronous. Caffeine buffers reads and replays them in a maintenance
  pass after writes; here every call applies at once, and the maintenance step (eviction,
  then the climber) runs after each write (``insert``, ``update``, ``resize``).
* A hit on a probation entry promotes it and demotes protected's LRU entries straight away,
  instead of at the next maintenance pass (Caffeine's simulator policies do the same).
* The sketch counts requests: ``access`` (a hit) and ``record_miss`` (a miss) increment it;
  ``insert`` does not, because the store reports the miss before it inserts. Caffeine counts
  the miss when the entry is added (``AddTask``), which is the same event for get-or-load.
* Weights must be >= 1: Caffeine's zero-weight (never evicted) entries are not supported.
* One byte per 4-bit counter (values saturate at 15): twice Caffeine's 8 bytes per entry of
  capacity, but an increment is a compare and a store, and aging is one C-level
  ``bytearray.translate`` instead of a Python loop over packed words.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Hashable
from itertools import islice
from typing import TYPE_CHECKING, Final, Generic

from agent.cache.policy_api import K

if TYPE_CHECKING:
    from agent.cache.policy_api import Policy

# BoundedLocalCache's constants, with its names.
PERCENT_MAIN: Final = 0.99
"""The initial share of the capacity given to the main region (so the window starts at 1 %)."""
PERCENT_MAIN_PROTECTED: Final = 0.80
"""The share of the main region given to its protected segment."""
HILL_CLIMBER_RESTART_THRESHOLD: Final = 0.05
"""A change in hit rate (as a fraction) that restarts the climber's step at full size."""
HILL_CLIMBER_STEP_PERCENT: Final = 0.0625
"""The climber's initial step, as a share of the capacity."""
HILL_CLIMBER_STEP_DECAY_RATE: Final = 0.98
"""The factor the step shrinks by after each sample period without a restart."""
QUEUE_TRANSFER_THRESHOLD: Final = 1_000
"""The most entries moved between regions in one maintenance pass."""
ADMIT_HASHDOS_THRESHOLD: Final = 6
"""A rejected candidate at least this frequent is admitted at random 1 time in 128."""
SAMPLE_SIZE_FACTOR: Final = 10
"""The sketch ages (and the climber samples) every ``10 * capacity`` increments (requests)."""

_MAX_SKETCH_ENTRIES: Final = (2**31 - 1) >> 1  # Integer.MAX_VALUE >>> 1, as FrequencySketch
_M32: Final = 0xFFFF_FFFF
# A counter byte's offset in its 32-byte half-block from 5 hash bits: bit 0 picks one of the
# two 16-counter words, bits 1-4 the counter in it (FrequencySketch's ``offset``/``index``).
_SLOT: Final = tuple(((b & 1) << 4) | (b >> 1) for b in range(32))
_HALVE: Final = bytes(v >> 1 for v in range(256))
_ODD: Final = bytes(v & 1 for v in range(256))

_WINDOW: Final = 0
_PROBATION: Final = 1
_PROTECTED: Final = 2
REGIONS: Final = ("window", "probation", "protected")


def _check_weight(weight: int) -> None:
    if weight < 1:
        raise ValueError(f"weight must be >= 1, got {weight}")


def _check_capacity(capacity: int) -> None:
    if capacity < 0:
        raise ValueError(f"capacity must be >= 0, got {capacity}")


class FrequencySketch:
    """Caffeine's ``FrequencySketch``: a count-min sketch of depth 4 with 4-bit counters.

    Why: TinyLFU needs the recent popularity of keys that are *not* resident (a candidate's
    history, a victim's), in far less space than one counter per key. Count-min over-estimates
    only through collisions, and the minimum of four counters keeps that rare.

    Layout as Caffeine's: ``table_words`` 16-counter words (the capacity rounded up to a power
    of two, at least 8), grouped into 64-byte blocks of 8 words; a key's four counters sit in
    one block, one in each 2-word quarter, chosen by ``spread``/``rehash`` of a 32-bit hash.
    The 32-bit hash folds an ``int`` key (or ``hash(key)`` for other types) like Java's
    ``Long.hashCode``, so for 64-bit integer keys (every trace) the counters chosen are exactly
    those Caffeine's ``FrequencySketch`` picks for a ``Long``. (``str`` hashes change between
    processes with ``PYTHONHASHSEED``: that only moves collisions, and makes crafted ones
    harder. A stable hash such as ``zlib.crc32`` would cost about 0.06 microseconds more.)

    Aging (TinyLFU's *reset*): after ``sample_size`` (= 10 * maximum) increments that raised at
    least one counter, every counter is halved, and ``size`` is corrected for the odd counters
    that lost their low bit. Popularity therefore reflects roughly the last 10 * C requests.

    The sketch is created empty; ``ensure_capacity`` allocates it (Caffeine initialises it
    lazily, once the cache is half full, so small or idle caches cost nothing).
    """

    __slots__ = ("_block_mask", "_table", "_words", "sample_size", "size")

    def __init__(self) -> None:
        self._table: bytearray | None = None
        self._words = 0
        self._block_mask = 0
        self.sample_size = 0
        """Increments between two agings (also the hill climber's sample period)."""
        self.size = 0
        """Increments since the last aging (corrected at each aging, as Caffeine's)."""

    @property
    def initialized(self) -> bool:
        return self._table is not None

    @property
    def table_words(self) -> int:
        """Number of 16-counter words (Caffeine's ``table.length``); 0 before allocation."""
        return self._words

    def ensure_capacity(self, maximum: int) -> None:
        """Size the sketch for ``maximum`` entries; grows only, and forgets all counts if it
        grows (``FrequencySketch.ensureCapacity``)."""
        if maximum < 0:
            raise ValueError(f"maximum must be >= 0, got {maximum}")
        capped = min(maximum, _MAX_SKETCH_ENTRIES)
        if self._table is not None and self._words >= capped:
            return
        words = max(1 << max(capped - 1, 0).bit_length(), 8)
        self._table = bytearray(words * 16)
        self._words = words
        self._block_mask = (words >> 3) - 1
        self.sample_size = 10 if maximum == 0 else SAMPLE_SIZE_FACTOR * capped
        self.size = 0

    def _indexes(self, table_key: Hashable) -> tuple[int, int, int, int]:
        """The key's four counters, one per 32-counter row of its 128-counter block
        (``FrequencySketch.indexOf`` after ``spread`` and ``rehash``)."""
        h = table_key if type(table_key) is int else hash(table_key)
        h = (h ^ (h >> 32)) & _M32  # Long.hashCode
        # spread(): a supplemental hash against poor hashCode()s
        h ^= h >> 17
        h = (h * 0xED5AD4BB) & _M32
        h ^= h >> 11
        h = (h * 0xAC4C1B51) & _M32
        h ^= h >> 15
        # rehash(): 8 bits per counter
        c = (h * 0x31848BAB) & _M32
        c ^= c >> 14
        base = (h & self._block_mask) << 7
        slot = _SLOT
        return (
            base + slot[c & 31],
            base + 32 + slot[(c >> 8) & 31],
            base + 64 + slot[(c >> 16) & 31],
            base + 96 + slot[(c >> 24) & 31],
        )

    def frequency(self, key: Hashable) -> int:
        """Estimated number of recent occurrences of ``key``, 0 to 15."""
        table = self._table
        if table is None:
            return 0
        a, b, c, d = self._indexes(key)
        return min(table[a], table[b], table[c], table[d])

    def increment(self, key: Hashable) -> None:
        """Count one occurrence of ``key`` (each counter saturates at 15); may age the sketch.

        All four counters are raised, not only the minimal ones ("conservative update"):
        Caffeine found the difference to be noise.
        """
        table = self._table
        if table is None:
            return
        added = False
        for i in self._indexes(key):
            v = table[i]
            if v < 15:
                table[i] = v + 1
                added = True
        if added:
            self.size += 1
            if self.size == self.sample_size:
                self.reset()

    def reset(self) -> None:
        """Halve every counter (``FrequencySketch.reset``)."""
        table = self._table
        if table is None:
            return
        odd = table.translate(_ODD).count(1)
        self._table = table.translate(_HALVE)
        self.size = max(0, (self.size - (odd >> 2)) >> 1)

    def counters(self) -> bytes:
        """A copy of every counter, for tests and debugging."""
        return bytes(self._table or b"")


class LRU(Generic[K]):
    """Least recently used, by weight: the baseline, and correct by construction.

    An ``OrderedDict`` from key to weight in recency order (LRU first): a hit moves the key to
    the end, an insert evicts from the front until the total weight fits. With weight 1 and
    capacity in entries it reproduces the published LRU hit ratios on the shared traces
    exactly, which is what shows that the trace parsers are right.
    """

    __slots__ = ("_capacity", "_data", "_weight")

    def __init__(self, capacity: int) -> None:
        _check_capacity(capacity)
        self._capacity = capacity
        self._data: OrderedDict[K, int] = OrderedDict()
        self._weight = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def weight(self) -> int:
        return self._weight

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def access(self, key: K) -> None:
        if key in self._data:
            self._data.move_to_end(key)

    def record_miss(self, key: K) -> None:
        """LRU keeps no history of absent keys."""

    def insert(self, key: K, weight: int) -> list[K]:
        _check_weight(weight)
        data = self._data
        if key in data:
            return self.update(key, weight)
        if weight > self._capacity:
            return [key]
        data[key] = weight
        self._weight += weight
        if self._weight <= self._capacity:
            return []
        return self._evict()

    def update(self, key: K, weight: int) -> list[K]:
        """A write counts as a use: the key becomes the most recent."""
        _check_weight(weight)
        data = self._data
        old = data.get(key)
        if old is None:
            return self.insert(key, weight)
        if weight > self._capacity:
            del data[key]
            self._weight -= old
            return [key]
        data[key] = weight
        data.move_to_end(key)
        self._weight += weight - old
        return self._evict()

    def remove(self, key: K) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self._weight -= old

    def resize(self, capacity: int) -> list[K]:
        _check_capacity(capacity)
        self._capacity = capacity
        return self._evict()

    def keys(self) -> list[K]:
        """Resident keys, least recent first (O(n), for tests and debugging)."""
        return list(self._data)

    def _evict(self) -> list[K]:
        evicted: list[K] = []
        data = self._data
        while self._weight > self._capacity:
            key, weight = data.popitem(last=False)
            self._weight -= weight
            evicted.append(key)
        return evicted


class WTinyLFU(Generic[K]):
    """Window TinyLFU with an adaptive window, after Caffeine's ``BoundedLocalCache``.

    Why not plain LRU: on frequency-biased workloads (databases, search, loops) LRU lets a
    burst of one-time keys flush the popular ones. Here a new key only displaces a resident
    one if the sketch says it has been requested more often recently; the LRU window keeps
    bursts (recency) working, and the hill climber sizes that window to the workload.

    ``weighted``: ``False`` (trace replays; weight 1 per entry) sizes the sketch from the
    capacity; ``True`` (the L1, capacity in bytes) sizes it from the number of resident
    entries and grows it with them, as Caffeine does for a ``weigher``.
    ``rng``: the source of the 1-in-128 random admission; inject ``random.Random(seed)`` for
    reproducible runs. ``adaptive=False`` freezes the window at 1 % (for comparisons).

    Each region is an ``OrderedDict`` from key to weight, least recent first, so every
    operation is O(1) amortised; the rare walk over the window for extra candidates
    (``evictFromMain`` when one insert must evict several entries) is O(that walk).
    """

    __slots__ = (
        "_adaptive",
        "_adjustment",
        "_hits_in_sample",
        "_maximum",
        "_misses_in_sample",
        "_previous_hit_rate",
        "_probation",
        "_protected",
        "_protected_max",
        "_protected_weight",
        "_rng",
        "_sketch",
        "_step_size",
        "_weight",
        "_weighted",
        "_window",
        "_window_max",
        "_window_weight",
    )

    def __init__(
        self,
        capacity: int,
        *,
        weighted: bool = False,
        rng: random.Random | None = None,
        adaptive: bool = True,
    ) -> None:
        _check_capacity(capacity)
        self._weighted = weighted
        self._rng = rng if rng is not None else random.Random()
        self._adaptive = adaptive
        self._sketch = FrequencySketch()
        self._window: OrderedDict[K, int] = OrderedDict()
        self._probation: OrderedDict[K, int] = OrderedDict()
        self._protected: OrderedDict[K, int] = OrderedDict()
        self._weight = 0
        self._window_weight = 0
        self._protected_weight = 0
        self._maximum = -1
        self._window_max = 0
        self._protected_max = 0
        self._hits_in_sample = 0
        self._misses_in_sample = 0
        self._previous_hit_rate = 0.0
        self._step_size = 0.0
        self._adjustment = 0
        self._set_maximum(capacity)

    # ---- the Policy protocol ----------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._maximum

    @property
    def weight(self) -> int:
        return self._weight

    def __contains__(self, key: object) -> bool:
        return key in self._protected or key in self._probation or key in self._window

    def __len__(self) -> int:
        return len(self._window) + len(self._probation) + len(self._protected)

    def access(self, key: K) -> None:
        """A hit (``BoundedLocalCache.onAccess``): count it, refresh recency, and promote a
        probation entry to protected (``reorderProbation``). A key that is not resident only
        counts towards its frequency (a stale access, as Caffeine ignores them)."""
        self._sketch.increment(key)
        if key in self._protected:
            self._protected.move_to_end(key)
        elif key in self._probation:
            self._promote(key)
        elif key in self._window:
            self._window.move_to_end(key)
        else:
            return
        self._hits_in_sample += 1

    def record_miss(self, key: K) -> None:
        """A miss: count it in the sketch and in the climber's sample."""
        if not self._sketch.initialized:
            self._maybe_init_sketch(len(self) + 1)
        self._sketch.increment(key)
        self._misses_in_sample += 1

    def insert(self, key: K, weight: int) -> list[K]:
        """Add ``key`` to the window (``AddTask``) and run maintenance; returns the evicted keys.

        A key heavier than the window goes to the window's LRU end so that it becomes a
        candidate at once; heavier than the capacity, it is then evicted at once.
        """
        _check_weight(weight)
        if key in self._protected or key in self._probation or key in self._window:
            return self.update(key, weight)
        old = self._weight
        self._weight = old + weight
        self._window_weight += weight
        window = self._window
        window[key] = weight
        if weight > self._window_max:
            window.move_to_end(key, last=False)
        if self._weighted or not self._sketch.initialized:
            self._maybe_init_sketch(len(self), old)
        return self._maintenance()

    def update(self, key: K, weight: int) -> list[K]:
        """A resident key's weight changed (``UpdateTask``); a write counts as an access, as
        in Caffeine. Too heavy for its region, it moves to the window's LRU end and competes
        for admission again; heavier than the capacity, it is evicted."""
        _check_weight(weight)
        if key in self._window:
            old = self._window[key]
            self._window[key] = weight
            if weight <= self._window_max:
                self.access(key)
            else:
                self._window.move_to_end(key, last=False)
            self._window_weight += weight - old
        elif key in self._probation:
            old = self._probation[key]
            if weight <= self._maximum:
                self._probation[key] = weight
                self.access(key)
            else:
                del self._probation[key]
                self._window[key] = weight
                self._window.move_to_end(key, last=False)
                self._window_weight += weight
        elif key in self._protected:
            old = self._protected[key]
            if weight <= self._maximum:
                self._protected[key] = weight
                self._protected_weight += weight - old
                self.access(key)
            else:
                del self._protected[key]
                self._protected_weight -= old
                self._window[key] = weight
                self._window.move_to_end(key, last=False)
                self._window_weight += weight
        else:
            return self.insert(key, weight)
        self._weight += weight - old
        return self._maintenance()

    def remove(self, key: K) -> None:
        if key in self._window:
            self._evict_key(key, _WINDOW)
        elif key in self._probation:
            self._evict_key(key, _PROBATION)
        elif key in self._protected:
            self._evict_key(key, _PROTECTED)

    def resize(self, capacity: int) -> list[K]:
        """Change the bound (``setMaximumSize``): the window goes back to 1 % and the climber
        restarts; returns the keys evicted to fit."""
        _check_capacity(capacity)
        if capacity == self._maximum:
            return []
        self._set_maximum(capacity)
        return self._maintenance()

    # ---- introspection (tests, debugging, metrics) ------------------------------------------

    @property
    def window_capacity(self) -> int:
        """The window's current bound (moved by the hill climber)."""
        return self._window_max

    @property
    def protected_capacity(self) -> int:
        return self._protected_max

    @property
    def window_weight(self) -> int:
        return self._window_weight

    @property
    def protected_weight(self) -> int:
        return self._protected_weight

    @property
    def probation_weight(self) -> int:
        return self._weight - self._window_weight - self._protected_weight

    @property
    def sketch(self) -> FrequencySketch:
        return self._sketch

    def frequency(self, key: K) -> int:
        return self._sketch.frequency(key)

    def region_of(self, key: K) -> str | None:
        """``"window"``, ``"probation"``, ``"protected"``, or ``None`` if not resident."""
        for name, region in zip(REGIONS, self._regions(), strict=True):
            if key in region:
                return name
        return None

    def regions(self) -> dict[str, list[K]]:
        """Resident keys per region, least recent first (O(n))."""
        return {name: list(r) for name, r in zip(REGIONS, self._regions(), strict=True)}

    # ---- internals --------------------------------------------------------------------------

    def _regions(self) -> tuple[OrderedDict[K, int], OrderedDict[K, int], OrderedDict[K, int]]:
        return self._window, self._probation, self._protected

    def _set_maximum(self, maximum: int) -> None:
        """``BoundedLocalCache.setMaximumSize``: 1 % window, 80 % of main protected."""
        window = maximum - int(PERCENT_MAIN * maximum)
        self._maximum = maximum
        self._window_max = window
        self._protected_max = int(PERCENT_MAIN_PROTECTED * (maximum - window))
        self._hits_in_sample = 0
        self._misses_in_sample = 0
        self._step_size = -HILL_CLIMBER_STEP_PERCENT * maximum
        if not self._weighted and self._weight >= (maximum >> 1):
            self._sketch.ensure_capacity(maximum)

    def _maybe_init_sketch(self, entries: int, weight_before: int | None = None) -> None:
        """Allocate (or, weighted, grow) the sketch once the cache is half full (``AddTask``)."""
        weight = self._weight if weight_before is None else weight_before
        if weight >= (self._maximum >> 1):
            self._sketch.ensure_capacity(entries if self._weighted else self._maximum)

    def _promote(self, key: K) -> None:
        probation = self._probation
        weight = probation[key]
        if weight > self._protected_max:
            probation.move_to_end(key)
            return
        del probation[key]
        self._protected[key] = weight
        self._protected_weight += weight
        if self._protected_weight > self._protected_max:
            self._demote_from_protected()

    def _demote_from_protected(self) -> None:
        """Move protected's LRU entries to probation's MRU end until protected fits."""
        protected, probation = self._protected, self._probation
        for _ in range(QUEUE_TRANSFER_THRESHOLD):
            if self._protected_weight <= self._protected_max or not protected:
                break
            key, weight = protected.popitem(last=False)
            probation[key] = weight
            self._protected_weight -= weight

    def _evict_key(self, key: K, region: int) -> None:
        if region == _WINDOW:
            weight = self._window.pop(key)
            self._window_weight -= weight
        elif region == _PROBATION:
            weight = self._probation.pop(key)
        else:
            weight = self._protected.pop(key)
            self._protected_weight -= weight
        self._weight -= weight

    def _maintenance(self) -> list[K]:
        """``BoundedLocalCache.maintenance`` after a write: evict, then climb."""
        evicted: list[K]
        candidates = self._evict_from_window() if self._window_weight > self._window_max else []
        evicted = self._evict_from_main(candidates) if self._weight > self._maximum else []
        if not self._adaptive:
            if self._protected_weight > self._protected_max:
                self._demote_from_protected()
        elif (
            self._adjustment
            or self._protected_weight > self._protected_max
            or not self._sketch.initialized
            or self._hits_in_sample + self._misses_in_sample >= self._sketch.sample_size
        ):
            self._climb()  # (skipped when it would do nothing, which is nearly always)
        return evicted

    def _evict_from_window(self) -> list[K]:
        """``evictFromWindow``: move the window's LRU entries to probation's MRU end while the
        window is over its bound; they are the candidates, oldest first."""
        window, probation = self._window, self._probation
        moved: list[K] = []
        while self._window_weight > self._window_max and window:
            key, weight = window.popitem(last=False)
            probation[key] = weight
            self._window_weight -= weight
            moved.append(key)
        return moved

    def _evict_from_main(self, candidates: list[K]) -> list[K]:
        """``BoundedLocalCache.evictFromMain``: while over capacity, pit the next candidate
        against the victim (probation's LRU entry) and evict the loser (``admit``).

        Candidates are the entries just moved from the window, oldest first; when they run
        out, the window's own entries from its LRU end. Victims are probation's LRU entries;
        when probation runs out (and candidates too), protected's, then the window's. A
        victim is always the head of its queue, so it is tracked by its queue alone.
        """
        evicted: list[K] = []
        window = self._window
        queues = self._regions()
        victim_region = _PROBATION
        victims = self._probation
        from_window = False  # candidates come from the window once the moved ones run out
        pos = 0  # index in ``candidates``, or in the window's order
        count = len(candidates)
        while self._weight > self._maximum:
            if not from_window and pos >= count:
                from_window = True
                pos = 0
            if from_window and pos >= len(window):  # no candidate left
                if victims:
                    victim = next(iter(victims))
                    self._evict_key(victim, victim_region)
                    evicted.append(victim)
                elif victim_region == _PROBATION:
                    victim_region, victims = _PROTECTED, queues[_PROTECTED]
                elif victim_region == _PROTECTED:
                    victim_region, victims = _WINDOW, queues[_WINDOW]
                else:
                    break  # nothing left (cannot happen while the weights add up)
                continue
            if from_window:
                candidate_region = _WINDOW
                candidate = next(islice(window, pos, None))
            else:
                candidate_region = _PROBATION
                candidate = candidates[pos]
            if not victims:  # only candidates are left
                self._evict_key(candidate, candidate_region)
                evicted.append(candidate)
                if not from_window:
                    pos += 1  # (in the window, the next one slides into ``pos``)
                continue
            victim = next(iter(victims))
            if candidate is victim or candidate == victim:  # both picked the same entry
                self._evict_key(victim, victim_region)
                evicted.append(victim)
                pos = len(window) + 1 if from_window else count
                continue
            if queues[candidate_region][candidate] > self._maximum:  # heavier than everything
                self._evict_key(candidate, candidate_region)
                evicted.append(candidate)
                if not from_window:
                    pos += 1
                continue
            if self._admit(candidate, victim):
                self._evict_key(victim, victim_region)
                evicted.append(victim)
                pos += 1  # the candidate stays; the next one follows it
            else:
                self._evict_key(candidate, candidate_region)
                evicted.append(candidate)
                if not from_window:
                    pos += 1
        return evicted

    def _admit(self, candidate: K, victim: K) -> bool:
        """``BoundedLocalCache.admit``: the candidate must be strictly more frequent (a tie
        keeps the resident victim, which is what resists scans). A warm candidate (>= 6) that
        loses is still admitted 1 time in 128, so an attacker who inflates the victim's
        counters by hash collisions cannot pin it forever."""
        sketch = self._sketch
        victim_freq = sketch.frequency(victim)
        candidate_freq = sketch.frequency(candidate)
        if candidate_freq > victim_freq:
            return True
        if candidate_freq >= ADMIT_HASHDOS_THRESHOLD:
            return self._rng.getrandbits(7) == 0
        return False

    # ---- hill climber (BoundedLocalCache.climb / determineAdjustment) -----------------------

    def _climb(self) -> None:
        """Adapt the window towards the better of recency and frequency for this workload."""
        if not self._sketch.initialized:
            self._previous_hit_rate = 0.0
            self._hits_in_sample = 0
            self._misses_in_sample = 0
        elif self._hits_in_sample + self._misses_in_sample >= self._sketch.sample_size:
            self._determine_adjustment()
        if self._protected_weight > self._protected_max:
            self._demote_from_protected()
        if self._adjustment > 0:
            self._increase_window()
        elif self._adjustment < 0:
            self._decrease_window()

    def _determine_adjustment(self) -> None:
        """At the end of a sample period (the sketch's ``sample_size`` requests), compare the
        hit rate with the previous period's: keep the direction if it did not get worse,
        otherwise turn around. The step decays by 0.98 each period, and restarts at 6.25 % of
        the capacity when the hit rate moved by 5 points or more (the workload changed)."""
        requests = self._hits_in_sample + self._misses_in_sample
        hit_rate = self._hits_in_sample / requests
        change = hit_rate - self._previous_hit_rate
        amount = self._step_size if change >= 0 else -self._step_size
        if abs(change) >= HILL_CLIMBER_RESTART_THRESHOLD:
            next_step = HILL_CLIMBER_STEP_PERCENT * self._maximum * (1 if amount >= 0 else -1)
        else:
            next_step = HILL_CLIMBER_STEP_DECAY_RATE * amount
        self._previous_hit_rate = hit_rate
        self._adjustment = int(amount)
        self._step_size = next_step
        self._hits_in_sample = 0
        self._misses_in_sample = 0

    def _increase_window(self) -> None:
        """``increaseWindow``: take the quota from protected's bound and move main's LRU
        entries (probation first) to the window's MRU end; what is not moved carries over."""
        if self._protected_max == 0:
            return
        quota = min(self._adjustment, self._protected_max)
        self._protected_max -= quota
        self._window_max += quota
        self._demote_from_protected()
        window, probation, protected = self._window, self._probation, self._protected
        for _ in range(QUEUE_TRANSFER_THRESHOLD):
            source = probation
            if not probation or quota < probation[next(iter(probation))]:
                source = protected
                if not protected:
                    break
            key = next(iter(source))
            weight = source[key]
            if quota < weight:
                break
            quota -= weight
            del source[key]
            if source is protected:
                self._protected_weight -= weight
            window[key] = weight
            self._window_weight += weight
        self._protected_max += quota
        self._window_max -= quota
        self._adjustment = quota

    def _decrease_window(self) -> None:
        """``decreaseWindow``: give the quota to protected's bound and move the window's LRU
        entries to probation's MRU end; the window keeps at least 1."""
        if self._window_max <= 1:
            return
        quota = min(-self._adjustment, max(0, self._window_max - 1))
        self._protected_max += quota
        self._window_max -= quota
        window, probation = self._window, self._probation
        for _ in range(QUEUE_TRANSFER_THRESHOLD):
            if not window:
                break
            key = next(iter(window))
            weight = window[key]
            if quota < weight:
                break
            quota -= weight
            del window[key]
            self._window_weight -= weight
            probation[key] = weight
        self._protected_max -= quota
        self._window_max += quota
        self._adjustment = -quota


if TYPE_CHECKING:

    def _conforms(lru: LRU[int], wtinylfu: WTinyLFU[int]) -> list[Policy[int]]:
        return [lru, wtinylfu]
