"""Retry budget: retries in the last 10 s <= budget% x requests + min_retries_per_second x 10."""

from __future__ import annotations

import pytest

from agent.dataplane.retry_budget import RetryBudget, retry_allowed
from shared.wire import RetryPolicy


@pytest.mark.parametrize(
    ("retries", "requests", "percent", "minimum", "allowed"),
    [
        # Quiet service: 10 retries/s x 10 s = 100 retries however few the requests.
        pytest.param(99, 0, 20.0, 10.0, True, id="min-allows-the-100th"),
        pytest.param(100, 0, 20.0, 10.0, False, id="min-refuses-the-101st"),
        # Busy service, no minimum: 20 % of 1000 requests = 200 retries.
        pytest.param(199, 1000, 20.0, 0.0, True, id="percent-allows-the-200th"),
        pytest.param(200, 1000, 20.0, 0.0, False, id="percent-refuses-the-201st"),
        # Both: 20 % of 1000 + 100 = 300.
        pytest.param(299, 1000, 20.0, 10.0, True, id="sum-allows-the-300th"),
        pytest.param(300, 1000, 20.0, 10.0, False, id="sum-refuses-the-301st"),
        pytest.param(0, 1000, 0.0, 0.0, False, id="zero-budget-never"),
    ],
)
def test_retry_allowed(
    retries: int, requests: int, percent: float, minimum: float, allowed: bool
) -> None:
    assert retry_allowed(retries, requests, percent, minimum) is allowed


def test_budget_counts_requests_and_retries_of_the_last_ten_seconds() -> None:
    budget = RetryBudget(RetryPolicy(budget_percent=10.0, min_retries_per_second=0.0))
    for _ in range(100):
        budget.record_request(100.2)
    assert sum(budget.try_retry(100.5) for _ in range(20)) == 10  # 10 % of 100
    for _ in range(100):
        budget.record_request(105.0)
    assert sum(budget.try_retry(105.5) for _ in range(20)) == 10  # 10 % of 200, 10 used
    # At 110 s second 100 (100 requests, 10 retries) has left the window: 10 % of 100 = 10,
    # all used by second 105.
    assert not budget.try_retry(110.0)
    # At 115 s everything has left: 10 new requests allow exactly one retry.
    for _ in range(10):
        budget.record_request(115.0)
    assert [budget.try_retry(115.1), budget.try_retry(115.2)] == [True, False]


def test_minimum_retries_refill_as_the_window_slides() -> None:
    budget = RetryBudget(RetryPolicy(budget_percent=0.0, min_retries_per_second=1.0))
    assert sum(budget.try_retry(0.5) for _ in range(15)) == 10  # 1/s x 10 s
    assert not budget.try_retry(9.9)
    assert budget.try_retry(10.0)  # second 0 left the window


def test_memory_is_bounded_by_the_buckets() -> None:
    budget = RetryBudget(RetryPolicy())
    for index in range(10_000):
        budget.record_request(index * 0.37)
        budget.try_retry(index * 0.37)
    assert len(budget._requests) == len(budget._retries) == 10
