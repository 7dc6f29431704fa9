"""Per-service analysis: Prometheus' histogram_quantile, SLO burn rates with the SRE
workbook's multi-window rule, and per-service deltas from the agents' cumulative counters."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from controller.engines.performance.analysis import (
    CounterHistory,
    ServiceSnapshot,
    SloPolicy,
    alert_level,
    analyse,
    analyse_service,
    histogram_quantile,
    service_snapshots,
)
from shared.wire import AgentReport, parse

from messages import report

INF = math.inf
# 100 observations: 50 under 10 ms, 40 in (10, 20], 9 in (20, 50], 1 above 50 ms.
BUCKETS = ((10.0, 50.0), (20.0, 90.0), (50.0, 99.0), (INF, 100.0))


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        # rank 50 is the top of the first bucket, which starts at 0: 0 + 10 * 50/50.
        pytest.param(0.5, BUCKETS, 10.0, id="p50-top-of-first-bucket"),
        # rank 70: 10 + (20 - 10) * (70 - 50) / 40 = 15.
        pytest.param(0.7, BUCKETS, 15.0, id="p70-interpolated"),
        # rank 99: 20 + 30 * (99 - 90) / 9 = 50.
        pytest.param(0.99, BUCKETS, 50.0, id="p99-top-of-last-finite"),
        # rank 99.5 falls in +Inf: the highest finite bound.
        pytest.param(0.995, BUCKETS, 50.0, id="inf-bucket-answers-highest-bound"),
        pytest.param(0.5, ((10.0, 0.0), (INF, 0.0)), None, id="no-observations"),
        pytest.param(0.5, ((10.0, 5.0),), None, id="no-inf-bucket"),
    ],
)
def test_histogram_quantile_matches_prometheus(
    q: float, buckets: tuple[tuple[float, float], ...], expected: float | None
) -> None:
    assert histogram_quantile(q, buckets) == expected


@pytest.mark.parametrize(
    ("burn", "expected"),
    [
        pytest.param({"5m": 20, "30m": 20, "1h": 20, "6h": 20}, "page", id="all-burning-pages"),
        # The SRE rule pages only while the short window still burns: recovered -> ticket.
        pytest.param({"5m": 0, "30m": 16, "1h": 18, "6h": 18}, "ticket", id="recovered-5m"),
        pytest.param({"5m": 8, "30m": 8, "1h": 8, "6h": 8}, "ticket", id="slow-burn-ticket"),
        pytest.param({"5m": 30, "30m": 5, "1h": 5, "6h": 5}, "none", id="short-spike-only"),
        # Thresholds are strict (the workbook's "> 14.4 * budget").
        pytest.param({"5m": 14.4, "30m": 6, "1h": 14.4, "6h": 6}, "none", id="at-threshold"),
        pytest.param({"5m": None, "30m": None, "1h": None, "6h": None}, "none", id="no-data"),
    ],
)
def test_multi_window_alert_rule(burn: dict[str, float | None], expected: str) -> None:
    assert alert_level(burn, SloPolicy()) == expected


def history_of(minutes: int, error_share: float, *, recovered_minutes: int = 0) -> CounterHistory:
    """One record a minute of 1,000 requests; the last ``recovered_minutes`` error-free."""
    history = CounterHistory()
    for minute in range(1, minutes + 1):
        errors = 0 if minute > minutes - recovered_minutes else round(1000 * error_share)
        history.record(minute * 60.0, 1000, errors)
    return history


SNAPSHOT = ServiceSnapshot("orders", 60.0, 1000, 20, 3, ewma_ms=12.0, capacity=30)


def test_burn_rate_is_the_error_ratio_over_the_budget() -> None:
    # 2 % errors against a 99.9 % SLO: 0.02 / 0.001 = 20 in every window.
    result = analyse_service(SNAPSHOT, history_of(60, 0.02), 3600.0, SloPolicy())
    assert result.burn.by_window == pytest.approx({"5m": 20, "30m": 20, "1h": 20, "6h": 20})
    assert result.burn.alert == "page"


def test_a_recovered_service_stops_paging_but_keeps_its_ticket() -> None:
    # 60 minutes, the last 5 clean: 5m burn 0; 30m 25/30 * 20 = 16.7; 1h 55/60 * 20 = 18.3.
    result = analyse_service(
        SNAPSHOT, history_of(60, 0.02, recovered_minutes=5), 3600.0, SloPolicy()
    )
    burn = result.burn.by_window
    assert burn["5m"] == 0
    assert burn["30m"] == pytest.approx(20 * 25 / 30)
    assert burn["1h"] == pytest.approx(20 * 55 / 60)
    assert result.burn.alert == "ticket"


def test_counter_history_windows_are_half_open() -> None:
    history = CounterHistory()
    for at, requests, errors in ((100.0, 10, 1), (200.0, 20, 2), (300.0, 30, 3)):
        history.record(at, requests, errors)
    # (300 - 100, 300] holds the records at 200 and 300, not the one at 100.
    assert history.window(300.0, 200.0) == (50, 5)
    assert history.window(300.0, 1000.0) == (60, 6)
    assert history.window(50.0, 100.0) == (0, 0)


def test_counter_history_forgets_what_is_older_than_it_keeps() -> None:
    history = CounterHistory(keep_seconds=100.0)
    for second in range(0, 1000, 10):
        history.record(float(second), 1, 0)
    assert len(history) < 30  # about 100 s of 10 s records, trimmed in halves
    assert history.window(990.0, 100.0) == (10, 0)


def test_rate_error_ratio_latency_and_saturation_of_one_service() -> None:
    result = analyse_service(SNAPSHOT, history_of(1, 0.02), 60.0, SloPolicy())
    assert result.request_rate == pytest.approx(1000 / 60)
    assert result.error_rate == pytest.approx(0.02)
    assert result.latency.source == "ewma"
    assert result.latency.headline_ms == 12.0
    assert result.saturation == pytest.approx(3 / 30)


def test_a_histogram_wins_over_the_ewma() -> None:
    snapshot = ServiceSnapshot("orders", 60.0, 100, 0, 0, ewma_ms=12.0, histogram=BUCKETS)
    latency = analyse_service(snapshot, history_of(1, 0.0), 60.0, SloPolicy()).latency
    assert (latency.source, latency.p50_ms, latency.p99_ms) == ("histogram", 10.0, 50.0)
    assert latency.headline_ms == 50.0


def agent(node: str, stats: list[dict[str, Any]]) -> AgentReport:
    return parse(AgentReport, json.dumps(report(node=node, dataplane=stats)))


def seen(
    address: str, requests: int, errors: int, ewma: float, in_flight: int = 0
) -> dict[str, Any]:
    return {
        "service": "orders",
        "address": address,
        "ewma_latency_ms": ewma,
        "in_flight": in_flight,
        "requests": requests,
        "errors": errors,
    }


def test_snapshots_difference_counters_and_sum_over_agents() -> None:
    first = [
        agent("node-1", [seen("10.0.0.1:80", 100, 1, 10.0)]),
        agent("node-2", [seen("10.0.0.1:80", 50, 0, 10.0)]),
    ]
    _, counters = service_snapshots({}, first, 10.0)
    second = [
        agent("node-1", [seen("10.0.0.1:80", 200, 3, 10.0, in_flight=2)]),  # +100, +2
        # node-2 restarted: 30 < 50, so its counters count from zero (30, 1).
        agent("node-2", [seen("10.0.0.1:80", 30, 1, 30.0, in_flight=1)]),
    ]
    snapshots, _ = service_snapshots(counters, second, 10.0, limit_per_agent=8)
    orders = snapshots["orders"]
    assert (orders.requests, orders.errors, orders.in_flight) == (130, 3, 3)
    # Weighted by the interval's requests: (10 * 100 + 30 * 30) / 130.
    assert orders.ewma_ms == pytest.approx(1900 / 130, rel=1e-4)
    assert orders.capacity == 16  # 8 per agent, two agents


def test_analyse_records_each_interval_in_the_history() -> None:
    histories: dict[str, CounterHistory] = {}
    snapshots = {"orders": ServiceSnapshot("orders", 60.0, 1000, 10, 0, ewma_ms=5.0)}
    analyse(snapshots, histories, 60.0)
    result = analyse(snapshots, histories, 120.0)
    assert histories["orders"].window(120.0, 3600.0) == (2000, 20)
    assert result["orders"].burn.by_window["1h"] == pytest.approx(10.0)  # 1 % / 0.1 %
