"""The contract between the L1 store and its eviction policy.

The store owns values, TTLs and namespaces; the policy only decides which keys stay, by weight
(bytes for the agent's L1, 1 per entry for trace replays). Keeping the two apart lets the same
policy code run in the store and in ``linescale bench cache`` over published traces.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, TypeVar

K = TypeVar("K", bound=Hashable)


class Policy(Protocol[K]):
    """Admission and eviction over resident keys with weights; every method is O(1) amortised."""

    @property
    def capacity(self) -> int:
        """The weight bound."""
        ...

    @property
    def weight(self) -> int:
        """Total weight of resident keys (never above ``capacity`` after a call returns)."""
        ...

    def __contains__(self, key: object) -> bool: ...

    def __len__(self) -> int: ...

    def access(self, key: K) -> None:
        """A hit on a resident key (counts towards its frequency and recency)."""
        ...

    def record_miss(self, key: K) -> None:
        """A request for a key that is not resident (counts towards its frequency only)."""
        ...

    def insert(self, key: K, weight: int) -> list[K]:
        """Make ``key`` resident with ``weight``; returns the keys evicted to stay within
        capacity, which may include ``key`` itself (not admitted, or heavier than capacity)."""
        ...

    def update(self, key: K, weight: int) -> list[K]:
        """A resident key's weight changed; returns keys evicted (possibly ``key``)."""
        ...

    def remove(self, key: K) -> None:
        """Forget a resident key (deleted, expired, invalidated); no-op if absent."""
        ...

    def resize(self, capacity: int) -> list[K]:
        """Change the weight bound; returns the keys evicted to fit."""
        ...
