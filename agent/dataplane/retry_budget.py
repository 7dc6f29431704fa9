"""Retry budget (Linkerd, Envoy): retries are allowed while the retries of the last 10 s stay
within ``budget_percent`` of the requests of the last 10 s, plus ``min_retries_per_second``
* 10 so a quiet service can still retry. A fixed "retry 3 times" multiplies load by 4 when a
backend is sick; a budget caps the extra load at the percentage.

Counts live in one-second buckets (a ring of ``window`` buckets), so memory stays bounded
whatever the traffic; the window is therefore exact to one bucket.
"""

from __future__ import annotations

import math

from shared.wire import RetryPolicy

WINDOW_SECONDS = 10


def retry_allowed(
    retries_in_window: int,
    requests_in_window: int,
    budget_percent: float,
    min_retries_per_second: float,
    window_seconds: float = WINDOW_SECONDS,
) -> bool:
    """Whether one more retry keeps retries within the budget."""
    allowance = budget_percent / 100.0 * requests_in_window + min_retries_per_second * (
        window_seconds
    )
    return retries_in_window + 1 <= allowance


class RetryBudget:
    """Requests and retries per second over the last ``window_seconds``; clock injected."""

    def __init__(self, policy: RetryPolicy, window_seconds: int = WINDOW_SECONDS) -> None:
        self.policy = policy
        self.window_seconds = window_seconds
        self._requests = [0] * window_seconds
        self._retries = [0] * window_seconds
        self._second = [-1] * window_seconds  # which absolute second each bucket holds

    def set_policy(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def _bucket(self, now: float) -> int:
        second = math.floor(now)
        index = second % self.window_seconds
        if self._second[index] != second:
            self._second[index] = second
            self._requests[index] = 0
            self._retries[index] = 0
        return index

    def _totals(self, now: float) -> tuple[int, int]:
        oldest = math.floor(now) - self.window_seconds + 1
        requests = retries = 0
        for index, second in enumerate(self._second):
            if second >= oldest:
                requests += self._requests[index]
                retries += self._retries[index]
        return requests, retries

    def record_request(self, now: float) -> None:
        """Count one original request (not a retry)."""
        self._requests[self._bucket(now)] += 1

    def try_retry(self, now: float) -> bool:
        """Take one retry from the budget if it allows; counts it when it does."""
        index = self._bucket(now)
        requests, retries = self._totals(now)
        if not retry_allowed(
            retries,
            requests,
            self.policy.budget_percent,
            self.policy.min_retries_per_second,
            self.window_seconds,
        ):
            return False
        self._retries[index] += 1
        return True
