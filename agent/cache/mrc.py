"""Miss-ratio curve of the L1 by SHARDS: what the hit ratio would be at other sizes.

Waldspurger et al., "Efficient MRC Construction with SHARDS", FAST 2015. Keys are sampled
spatially (a stable hash under a threshold), so a sampled key is seen on every access and its
reuse distance is exact within the sample; scaling the distance by 1/R estimates the full one.
Distances are measured in bytes (the L1 is bounded in bytes), so the curve answers "what would
an LRU cache of C bytes have hit", for every C at once, from one pass over the accesses.

The curve is for LRU; the L1 runs W-TinyLFU, which usually does better, so the curve is a
conservative estimate of what a size change buys. Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence
from zlib import crc32

__all__ = ["HASH_SPACE", "MissRatioCurve", "capacity_grid", "sample_hash"]

HASH_SPACE = 1 << 32  # sample_hash returns values in [0, HASH_SPACE)
_GOLDEN = 0x9E3779B1  # Knuth's multiplicative constant: spreads crc32's bits into the top ones
_MASK = HASH_SPACE - 1
_MIN_TREE = 64


def sample_hash(key: str) -> int:
    """Stable across processes and nodes (unlike ``hash``), so every agent samples alike."""
    return (crc32(key.encode()) * _GOLDEN) & _MASK


class _Fenwick:
    """Prefix sums of byte weights over access timestamps: O(log n) reuse distances."""

    __slots__ = ("_tree",)

    def __init__(self, size: int) -> None:
        self._tree = [0] * (size + 1)

    @property
    def size(self) -> int:
        return len(self._tree) - 1

    def add(self, index: int, delta: int) -> None:
        tree = self._tree
        i = index + 1
        n = len(tree)
        while i < n:
            tree[i] += delta
            i += i & -i

    def prefix(self, index: int) -> int:
        """Sum of slots [0, index)."""
        tree = self._tree
        total = 0
        i = index
        while i > 0:
            total += tree[i]
            i &= i - 1
        return total

    def rebuild(self, weights: Sequence[int]) -> None:
        """Linear-time build with slots 0..len(weights)-1 set, the rest zero."""
        tree = [0] * len(self._tree)
        tree[1 : len(weights) + 1] = weights
        n = len(tree)
        for i in range(1, n):
            parent = i + (i & -i)
            if parent < n:
                tree[parent] += tree[i]
        self._tree = tree


def _bucket(distance: int, precision_bits: int) -> int:
    """Log-linear (HdrHistogram-like) bucket index, monotone in distance.

    Distances below 2**precision_bits get their own bucket (exact); above, a bucket spans
    less than 2**-(precision_bits-1) of its value, finer than the sampling error.
    """
    shift = distance.bit_length() - precision_bits
    if shift <= 0:
        return distance
    return (shift << precision_bits) + (distance >> shift)


def _bucket_bounds(index: int, precision_bits: int) -> tuple[int, int]:
    """[low, high) of the distances that fall in bucket ``index``."""
    shift = index >> precision_bits
    if shift == 0:
        return index, index + 1
    mantissa = index & ((1 << precision_bits) - 1)
    return mantissa << shift, (mantissa + 1) << shift


class MissRatioCurve:
    """SHARDS estimator of the LRU miss ratio per capacity in bytes, with bounded memory.

    ``rate`` is the initial sampling rate R. At most ``max_keys`` sampled keys are tracked;
    when a new one would exceed that, the rate is lowered to evict the keys with the largest
    hashes (SHARDS fixed-size), so memory stays bounded whatever the key space.

    Miss ratio at C = estimated references whose byte reuse distance exceeds C (cold misses
    included) / all references recorded. Dividing by the exact reference count rather than
    the sampled one is the SHARDS_adj correction; set ``adjust=False`` for the plain
    estimator. A key's distance is the bytes of the distinct sampled keys accessed since its
    last access scaled by 1/R, plus its own previous weight: a hit in an LRU cache of C bytes
    exactly when that is at most C.
    """

    __slots__ = (
        "_adjust",
        "_clock",
        "_cold",
        "_heap",
        "_histogram",
        "_keys",
        "_max_keys",
        "_precision_bits",
        "_references",
        "_sampled",
        "_scale",
        "_threshold",
        "_total_weight",
        "_tree",
    )

    def __init__(
        self,
        rate: float = 0.01,
        *,
        max_keys: int = 8192,
        precision_bits: int = 8,
        adjust: bool = True,
    ) -> None:
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {rate}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        if not 1 <= precision_bits <= 30:
            raise ValueError(f"precision_bits must be in 1..30, got {precision_bits}")
        self._threshold = max(1, min(HASH_SPACE, round(rate * HASH_SPACE)))
        self._scale = HASH_SPACE / self._threshold  # 1/R: references one sample stands for
        self._max_keys = max_keys
        self._precision_bits = precision_bits
        self._adjust = adjust
        # key -> [timestamp of last access, weight at that access]
        self._keys: dict[str, list[int]] = {}
        self._heap: list[tuple[int, str]] = []  # (-hash, key): largest hash on top
        self._tree = _Fenwick(max(_MIN_TREE, 2 * max_keys))
        self._clock = 0
        self._total_weight = 0  # of tracked keys: the tree's full prefix, kept to halve queries
        self._histogram: dict[int, float] = {}
        self._cold = 0.0
        self._sampled = 0.0  # estimated references represented by the samples
        self._references = 0

    @property
    def rate(self) -> float:
        """The current sampling rate; lower than the initial one once the key bound bit."""
        return self._threshold / HASH_SPACE

    @property
    def references(self) -> int:
        return self._references

    @property
    def tracked_keys(self) -> int:
        return len(self._keys)

    @property
    def max_keys(self) -> int:
        return self._max_keys

    @property
    def histogram_buckets(self) -> int:
        return len(self._histogram)

    def record(self, key: str, weight: int) -> None:
        """One access to ``key`` holding ``weight`` bytes (hit or miss alike; negative is 0).

        Unsampled keys cost one stable hash and a compare; sampled ones O(log max_keys).
        """
        self._references += 1
        hashed = (crc32(key.encode()) * _GOLDEN) & _MASK
        if hashed >= self._threshold:
            return
        self._record_sampled(key, max(0, weight), hashed)

    def _record_sampled(self, key: str, weight: int, hashed: int) -> None:
        if self._clock >= self._tree.size:
            self._compact()
        now = self._clock
        self._clock = now + 1
        scale = self._scale
        self._sampled += scale
        state = self._keys.get(key)
        tree = self._tree
        if state is None:
            self._cold += scale
            self._keys[key] = [now, weight]
            heapq.heappush(self._heap, (-hashed, key))
            tree.add(now, weight)
            self._total_weight += weight
            if len(self._keys) > self._max_keys:
                self._lower_rate()
            return
        last, previous_weight = state
        others = self._total_weight - tree.prefix(last + 1)
        distance = (others * HASH_SPACE) // self._threshold + previous_weight
        bucket = _bucket(distance, self._precision_bits)
        self._histogram[bucket] = self._histogram.get(bucket, 0.0) + scale
        tree.add(last, -previous_weight)
        tree.add(now, weight)
        self._total_weight += weight - previous_weight
        state[0] = now
        state[1] = weight

    def _lower_rate(self) -> None:
        """SHARDS fixed-size: the largest tracked hash becomes the new (exclusive) threshold."""
        heap = self._heap
        threshold = -heap[0][0]
        while heap and -heap[0][0] >= threshold:
            _, key = heapq.heappop(heap)
            last, weight = self._keys.pop(key)
            self._tree.add(last, -weight)
            self._total_weight -= weight
        self._threshold = max(1, threshold)
        self._scale = HASH_SPACE / self._threshold

    def _compact(self) -> None:
        """Renumber live timestamps 0..n-1 so the tree never grows (amortised O(log n))."""
        states = sorted(self._keys.values(), key=lambda state: state[0])
        for index, state in enumerate(states):
            state[0] = index
        self._tree.rebuild([state[1] for state in states])
        self._clock = len(states)

    def curve(self, capacities: Sequence[int]) -> list[tuple[int, float]]:
        """(capacity, LRU miss ratio) for each capacity in bytes, in the order given.

        Empty when nothing has been sampled yet: no estimate is better than a made-up one.
        """
        for capacity in capacities:
            if capacity < 0:
                raise ValueError(f"capacity must be non-negative, got {capacity}")
        if self._sampled == 0.0:
            return []
        total = float(self._references) if self._adjust else self._sampled
        bits = self._precision_bits
        buckets = sorted(self._histogram.items())
        bounds = [_bucket_bounds(index, bits) for index, _ in buckets]
        last_distance = [high - 1 for _, high in bounds]  # the largest distance in each bucket
        beyond = [0.0] * (len(buckets) + 1)  # beyond[i]: estimated references in buckets i..
        for i in range(len(buckets) - 1, -1, -1):
            beyond[i] = beyond[i + 1] + buckets[i][1]
        result: list[tuple[int, float]] = []
        for capacity in capacities:
            first = bisect.bisect_right(last_distance, capacity)  # first bucket with any miss
            misses = self._cold + beyond[first]
            if first < len(buckets) and bounds[first][0] <= capacity:
                # The capacity falls inside the bucket: assume its distances spread evenly.
                low, high = bounds[first]
                misses -= buckets[first][1] * (capacity - low + 1) / (high - low)
            result.append((capacity, min(1.0, max(0.0, misses / total))))
        return result


def capacity_grid(low: int, high: int, points: int) -> list[int]:
    """Geometrically spaced capacities from ``low`` to ``high``: where to sample the curve.

    MRCs change on a log scale of size, and the wire carries at most 64 points.
    """
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got {low}, {high}")
    if points < 1:
        raise ValueError(f"points must be at least 1, got {points}")
    if points == 1 or low == high:
        return [high]
    ratio = math.log(high / low) / (points - 1)
    grid = sorted({round(low * math.exp(ratio * step)) for step in range(points)} | {high})
    return [capacity for capacity in grid if low <= capacity <= high]
