"""Pools from nodes, unit prices, and capacity forecasts computed by hand.

Series are hourly. The expected run-out instants and peaks come from the generating formula
(a line, a daily sine, or both) evaluated on the forecast hours, which is what a perfect model
would say; the forecaster must reproduce them.
"""

from __future__ import annotations

import numpy as np
import pytest

from controller.engines.resources.capacity import (
    INSTANCE_TYPE_LABEL,
    Node,
    NodeType,
    PoolConfig,
    PoolHistory,
    forecast_pool,
    forecast_series,
    nodes_for,
    pools_from_nodes,
    unit_prices,
)

H = 3600.0
DAY = 86_400.0
GIB = 2**30
T0 = 1_699_920_000.0  # 2023-11-14T00:00:00Z, a midnight


def hours(count: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + count, dtype=float)


# --------------------------------------------------------------------------- forecasts


def test_linear_growth_runs_out_where_the_line_crosses() -> None:
    # 10050 + 100 h over 3 days (no season: the forecaster declines, the line is used).
    # Passing 20000 at h = 99.5 → hour 100; the horizon's peak at h = 71 + 168 = 239: 33950.
    h = hours(72)
    forecast = forecast_series(T0 + h * H, 10050 + 100 * h, capacity=20000, horizon_seconds=7 * DAY)
    assert forecast.model == "linear"
    assert "no seasonality" in forecast.reason
    assert forecast.run_out_at == T0 + 100 * H
    assert forecast.peak == pytest.approx(33950)
    assert forecast.slope_per_day == pytest.approx(2400)


def test_short_history_falls_back_to_the_line_with_the_reason() -> None:
    h = hours(12)  # 12 h: less than the forecaster's 24 h minimum
    forecast = forecast_series(T0 + h * H, 1000 + 10 * h, capacity=1e9, horizon_seconds=DAY)
    assert forecast.model == "linear"
    assert "< minimum 24h" in forecast.reason
    assert forecast.run_out_at is None
    assert forecast.peak == pytest.approx(1000 + 10 * (11 + 24))


def test_single_observation_gives_no_forecast() -> None:
    forecast = forecast_series(np.array([T0]), np.array([5.0]), capacity=1, horizon_seconds=DAY)
    assert forecast.model == "none"
    assert forecast.run_out_at is None
    assert forecast.peak is None


@pytest.mark.parametrize(
    ("capacity", "run_out_hour"),
    [
        # Flat 10000 ± 2000 daily: the peak 12000 is at 06:00. Capacity 13000 is never
        # reached; capacity 11500 is reached first at the first forecast hour where
        # 2000 sin(2π h / 24) >= 1500, i.e. h mod 24 in 4..8 → 336 + 4 = 340.
        pytest.param(13000, None, id="above-the-peak-never"),
        pytest.param(11500, 340, id="below-the-peak-at-04h"),
    ],
)
def test_daily_cycle_runs_out_at_its_peak_hours(capacity: float, run_out_hour: int | None) -> None:
    h = hours(14 * 24)
    forecast = forecast_series(
        T0 + h * H, 10000 + 2000 * np.sin(2 * np.pi * h / 24), capacity=capacity,
        horizon_seconds=7 * DAY,
    )  # fmt: skip
    assert forecast.model == "seasonal+trend"
    assert forecast.peak == pytest.approx(12000, abs=1)
    assert forecast.slope_per_day == pytest.approx(0, abs=1e-6)  # whole-day means are flat
    expected = None if run_out_hour is None else T0 + run_out_hour * H
    assert forecast.run_out_at == expected


def test_growing_daily_cycle_runs_out_at_the_first_peak_above_capacity() -> None:
    def load(h: np.ndarray) -> np.ndarray:
        values: np.ndarray = 10000 + 50 * h + 2000 * np.sin(2 * np.pi * h / 24)
        return values

    history = hours(7 * 24)
    future = hours(14 * 24, start=7 * 24)
    forecast = forecast_series(
        T0 + history * H, load(history), capacity=25000, horizon_seconds=14 * DAY
    )
    first = future[np.argmax(load(future) >= 25000)]  # 268 by the formula
    assert forecast.model == "seasonal+trend"
    assert forecast.slope_per_day == pytest.approx(50 * 24)
    assert forecast.run_out_at == T0 + first * H
    assert forecast.peak == pytest.approx(load(future).max(), rel=1e-6)


def test_nodes_needed_cover_the_peak_of_the_requests() -> None:
    node_type = NodeType("m", 4000, 16 * GIB, 0.2)
    pool = pools_from_nodes(
        [Node(f"n{i}", {INSTANCE_TYPE_LABEL: "m"}, 4000, 16 * GIB) for i in range(5)],
        prices={"m": 0.2},
    )[0]
    assert pool.node_type == node_type
    h = hours(14 * 24)
    cpu = 10000 + 2000 * np.sin(2 * np.pi * h / 24)  # peak 12000m → 3 nodes of 4000m
    memory = np.full(h.size, 40.0 * GIB)  # 40 GiB → 3 nodes of 16 GiB (2.5 → 3)
    history = PoolHistory("m", T0 + h * H, cpu, memory, cpu / 2, memory / 2)
    forecast = forecast_pool(pool, history, horizon_days=7)
    # 5 nodes: 20000m and 80 GiB; nothing gets there.
    assert forecast.nodes_now == 5
    assert forecast.nodes_needed == 3
    assert forecast.run_out_at is None
    assert forecast.run_out_date is None


def test_pool_run_out_is_the_earliest_resource() -> None:
    pool = pools_from_nodes(
        [Node(f"n{i}", {INSTANCE_TYPE_LABEL: "m"}, 4000, 16 * GIB) for i in range(2)]
    )[0]
    h = hours(72)
    cpu = 2025 + 50 * h  # passes 8000m at h = 119.5 → hour 120 (the history ends at h = 71)
    memory = 16 * GIB + h * GIB / 10  # reaches 32 GiB at h = 160
    history = PoolHistory("m", T0 + h * H, cpu, memory, cpu / 4, memory / 4)
    forecast = forecast_pool(pool, history, horizon_days=7)
    assert forecast.run_out_at == T0 + 120 * H
    assert forecast.run_out_resource == "requested cpu"
    assert forecast.run_out_date == "2023-11-19"


# --------------------------------------------------------------------------- pools, prices


def test_pools_by_label_and_configured_selector_first() -> None:
    nodes = [
        Node("a", {INSTANCE_TYPE_LABEL: "m5.xlarge"}, 3920, 14 * GIB),
        Node("b", {INSTANCE_TYPE_LABEL: "m5.xlarge"}, 3920, 14 * GIB),
        Node("c", {INSTANCE_TYPE_LABEL: "m5.xlarge", "team": "gpu"}, 3920, 14 * GIB, 1.0),
        Node("d", {}, 2000, 8 * GIB),
    ]
    pools = pools_from_nodes(
        nodes,
        prices={"m5.xlarge": 0.192},
        configured=[PoolConfig("gpu", {"team": "gpu"})],
    )
    by_name = {pool.name: pool for pool in pools}
    assert sorted(by_name) == ["(unlabelled)", "gpu", "m5.xlarge"]
    assert by_name["m5.xlarge"].nodes == ("a", "b")
    assert by_name["m5.xlarge"].cost_per_hour == pytest.approx(0.384)
    assert by_name["gpu"].cost_per_hour == 1.0  # the node's own price wins
    assert by_name["(unlabelled)"].cost_per_hour == 0.0
    assert by_name["(unlabelled)"].notes == ("no price for node d: counted as 0",)


@pytest.mark.parametrize(
    ("node_type", "per_core", "per_gib"),
    [
        # 4 cores + 16 GiB at OpenCost's 0.031611 and 0.004237 cost 0.194236/h: a node at that
        # price gets exactly OpenCost's rates; one at twice the price, twice the rates.
        pytest.param(NodeType("x", 4000, 16 * GIB, 0.194236), 0.031611, 0.004237, id="same"),
        pytest.param(NodeType("x", 4000, 16 * GIB, 0.388472), 0.063222, 0.008474, id="double"),
    ],
)
def test_unit_prices_split_the_node_price_in_opencost_ratio(
    node_type: NodeType, per_core: float, per_gib: float
) -> None:
    prices = unit_prices(node_type)
    assert prices.per_core_hour == pytest.approx(per_core)
    assert prices.per_gib_hour == pytest.approx(per_gib)
    assert prices.cost_per_hour(4000, 16 * GIB) == pytest.approx(node_type.price_per_hour)


@pytest.mark.parametrize(
    ("cpu", "memory", "fill", "expected"),
    [
        pytest.param(8000, GIB, 1.0, 2, id="cpu-exact-2"),
        pytest.param(8001, GIB, 1.0, 3, id="cpu-just-over"),
        pytest.param(100, 33 * GIB, 1.0, 3, id="memory-bound"),
        pytest.param(8000, GIB, 0.8, 3, id="headroom-80pct"),
        pytest.param(0, 0, 1.0, 0, id="nothing"),
    ],
)
def test_nodes_for(cpu: float, memory: float, fill: float, expected: int) -> None:
    assert nodes_for(cpu, memory, NodeType("m", 4000, 16 * GIB, 0.2), fill) == expected
