"""Node pools, their prices and utilisation, and when each runs out of room.

- **Pools** come from configured label selectors first, then from a node label
  (``node.kubernetes.io/instance-type`` by default, or e.g. a Karpenter ``nodepool`` label).
  A pool's node type is its most common allocatable shape; a node's price is its own, else the
  price of its instance type, else the pool's configured price.
- **Unit prices** split a node's hourly price into CPU and memory the way OpenCost does when it
  only knows a node price: in the ratio of its default rates (``configs/default.json``, GCP
  us-central1: 0.031611 per core-hour, 0.004237 per GiB-hour).
- **Forecasts** of a pool's requested and used capacity reuse ``forecast.fit_forecaster`` for
  the daily/weekly shape on top of a linear trend (fitted on whole-day means, so a full cycle
  does not read as a trend); when the history is too short or shows no season, the linear
  trend alone is used, and the reason says so. The P95 band is the path plus the 95th
  percentile of the model's in-sample overshoots; a pool runs out at the first step where the
  band reaches its allocatable capacity, and the nodes needed cover the band's peak over the
  horizon.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from controller.engines.scaling.forecast import Grid, fit_forecaster, resample

__all__ = [
    "INSTANCE_TYPE_LABEL",
    "CapacityForecast",
    "Node",
    "NodePool",
    "NodeType",
    "PoolConfig",
    "PoolHistory",
    "PoolUtilisation",
    "SeriesForecast",
    "UnitPrices",
    "forecast_pool",
    "forecast_series",
    "nodes_for",
    "pools_from_nodes",
    "unit_prices",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
GIB = 2**30
HOUR_SECONDS = 3600.0
DAY_SECONDS = 86_400.0
# OpenCost configs/default.json (GCP us-central1 on-demand): the CPU : RAM price ratio.
OPENCOST_CPU_PER_CORE_HOUR = 0.031611
OPENCOST_RAM_PER_GIB_HOUR = 0.004237
UNLABELLED_POOL = "(unlabelled)"


# --------------------------------------------------------------------------- nodes and pools


@dataclass(frozen=True, slots=True)
class NodeType:
    """A node shape: allocatable CPU (millicores) and memory (bytes), and its hourly price."""

    name: str
    cpu_millicores: int
    memory_bytes: int
    price_per_hour: float

    def fits(self, cpu_millicores: int, memory_bytes: int) -> bool:
        return cpu_millicores <= self.cpu_millicores and memory_bytes <= self.memory_bytes


@dataclass(frozen=True, slots=True)
class UnitPrices:
    per_core_hour: float
    per_gib_hour: float

    def cost_per_hour(self, cpu_millicores: float, memory_bytes: float) -> float:
        return cpu_millicores / 1000 * self.per_core_hour + memory_bytes / GIB * self.per_gib_hour


def unit_prices(node_type: NodeType) -> UnitPrices:
    """The node's price split into per core-hour and per GiB-hour in OpenCost's default ratio,
    so cores x CPU price + GiB x RAM price = the node price."""
    cores = node_type.cpu_millicores / 1000
    gib = node_type.memory_bytes / GIB
    weight = cores * OPENCOST_CPU_PER_CORE_HOUR + gib * OPENCOST_RAM_PER_GIB_HOUR
    if weight <= 0:
        return UnitPrices(0.0, 0.0)
    scale = node_type.price_per_hour / weight
    return UnitPrices(OPENCOST_CPU_PER_CORE_HOUR * scale, OPENCOST_RAM_PER_GIB_HOUR * scale)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    labels: Mapping[str, str]
    cpu_millicores: int  # allocatable
    memory_bytes: int  # allocatable
    price_per_hour: float | None = None


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """A configured pool: the nodes whose labels include ``selector``, at an optional price."""

    name: str
    selector: Mapping[str, str]
    price_per_node_hour: float | None = None


@dataclass(frozen=True, slots=True)
class NodePool:
    """Nodes of one pool; ``node_type`` is the shape new nodes of the pool would have."""

    name: str
    node_type: NodeType
    nodes: tuple[str, ...]
    cpu_millicores: int  # allocatable, all nodes
    memory_bytes: int
    cost_per_hour: float
    labels: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def node_count(self) -> int:
        return len(self.nodes)


def _pool_of(node: Node, configured: Sequence[PoolConfig], label: str) -> str:
    for config in configured:
        if all(node.labels.get(key) == value for key, value in config.selector.items()):
            return config.name
    return node.labels.get(label, UNLABELLED_POOL)


def pools_from_nodes(
    nodes: Sequence[Node],
    *,
    pool_label: str = INSTANCE_TYPE_LABEL,
    prices: Mapping[str, float] | None = None,
    configured: Sequence[PoolConfig] = (),
) -> tuple[NodePool, ...]:
    """Group nodes into pools (configured selectors first, then ``pool_label``).

    ``prices`` maps an instance type (``node.kubernetes.io/instance-type``) or a pool name to
    a price per node-hour. A node with no price known counts 0 and the pool notes it.
    """
    prices = prices or {}
    by_config = {config.name: config for config in configured}
    members: dict[str, list[Node]] = {}
    for node in nodes:
        members.setdefault(_pool_of(node, configured, pool_label), []).append(node)
    pools: list[NodePool] = []
    for name in sorted(members):
        config = by_config.get(name)
        notes: list[str] = []
        node_prices: list[float] = []
        for node in members[name]:
            price = node.price_per_hour
            if price is None:
                price = prices.get(node.labels.get(INSTANCE_TYPE_LABEL, ""))
            if price is None and config is not None:
                price = config.price_per_node_hour
            if price is None:
                price = prices.get(name)
            if price is None:
                notes.append(f"no price for node {node.name}: counted as 0")
                price = 0.0
            node_prices.append(price)
        group = members[name]
        shape, _ = Counter((node.cpu_millicores, node.memory_bytes) for node in group).most_common(
            1
        )[0]
        same_shape = [
            price
            for node, price in zip(group, node_prices, strict=True)
            if (node.cpu_millicores, node.memory_bytes) == shape
        ]
        type_name = group[0].labels.get(INSTANCE_TYPE_LABEL, name)
        labels = dict(config.selector) if config is not None else {pool_label: name}
        pools.append(
            NodePool(
                name=name,
                node_type=NodeType(
                    type_name, shape[0], shape[1], sum(same_shape) / len(same_shape)
                ),
                nodes=tuple(node.name for node in group),
                cpu_millicores=sum(node.cpu_millicores for node in group),
                memory_bytes=sum(node.memory_bytes for node in group),
                cost_per_hour=sum(node_prices),
                labels=labels,
                notes=tuple(notes),
            )
        )
    return tuple(pools)


@dataclass(frozen=True, slots=True)
class PoolUtilisation:
    """How full a pool is by requests (what the scheduler sees) and by usage (what is used)."""

    pool: str
    node_count: int
    cpu_millicores: int
    memory_bytes: int
    requested_cpu_millicores: float
    requested_memory_bytes: float
    used_cpu_millicores: float
    used_memory_bytes: float

    @staticmethod
    def _share(part: float, whole: int) -> float | None:
        return part / whole if whole > 0 else None

    @property
    def cpu_by_requests(self) -> float | None:
        return self._share(self.requested_cpu_millicores, self.cpu_millicores)

    @property
    def memory_by_requests(self) -> float | None:
        return self._share(self.requested_memory_bytes, self.memory_bytes)

    @property
    def cpu_by_usage(self) -> float | None:
        return self._share(self.used_cpu_millicores, self.cpu_millicores)

    @property
    def memory_by_usage(self) -> float | None:
        return self._share(self.used_memory_bytes, self.memory_bytes)


# --------------------------------------------------------------------------- forecasts


@dataclass(frozen=True, slots=True, eq=False)
class PoolHistory:
    """A pool's totals over time: requested and used CPU (millicores) and memory (bytes)."""

    pool: str
    times: FloatArray
    requested_cpu: FloatArray
    requested_memory: FloatArray
    used_cpu: FloatArray
    used_memory: FloatArray


@dataclass(frozen=True, slots=True)
class SeriesForecast:
    """The P95 band of one series ``step_seconds`` apart after ``start``, and when it first
    reaches ``capacity`` (None: not within the horizon)."""

    model: str  # "seasonal+trend", "linear", "none"
    reason: str
    start: float
    step_seconds: float
    band: tuple[float, ...]
    slope_per_day: float
    capacity: float
    run_out_at: float | None

    @property
    def peak(self) -> float | None:
        return max(self.band) if self.band else None


def _trend(grid: Grid) -> tuple[float, float] | None:
    """(slope per second, value at the last bucket) of a least-squares line.

    With two or more whole days, the line goes through whole-day means: a daily cycle then
    adds nothing to the slope (a line through raw points of a sine is tilted by the phase
    the history starts and ends in).
    """
    y = grid.values
    t = (grid.first + np.arange(y.size)) * grid.step_seconds
    per_day = round(DAY_SECONDS / grid.step_seconds)
    whole_days = y.size // per_day if per_day >= 1 else 0
    if whole_days >= 2:
        tail = y[y.size - whole_days * per_day :].reshape(whole_days, per_day)
        tail_t = t[t.size - whole_days * per_day :].reshape(whole_days, per_day)
        counts = np.isfinite(tail).sum(axis=1)
        keep = counts > 0
        sums = np.where(np.isfinite(tail), tail, 0.0).sum(axis=1)
        x = tail_t.mean(axis=1)[keep]
        v = sums[keep] / counts[keep]
    else:
        finite = np.isfinite(y)
        x, v = t[finite], y[finite]
    if x.size < 2:
        return None
    slope, intercept = np.polyfit(x - x[-1], v, 1)
    return float(slope), float(intercept + slope * (t[-1] - x[-1]))


def forecast_series(
    times: FloatArray,
    values: FloatArray,
    *,
    capacity: float,
    horizon_seconds: float,
    step_seconds: float = HOUR_SECONDS,
) -> SeriesForecast:
    """Forecast one pool total over the horizon (see the module docstring for the model)."""
    grid = resample(times, values, step_seconds)
    horizon = max(1, math.ceil(horizon_seconds / step_seconds - 1e-9))
    finite = np.isfinite(grid.values)
    trend = _trend(grid) if grid.values.size else None
    if trend is None or not finite.any():
        return SeriesForecast(
            "none", "fewer than two observations", grid.end_time, step_seconds, (), 0.0, capacity,
            None,
        )  # fmt: skip
    slope, last_level = trend
    t = ((grid.first + np.arange(grid.values.size)) * step_seconds).astype(np.float64)
    end = grid.end_time
    ahead = end + step_seconds * np.arange(1, horizon + 1)
    detrended = grid.values - slope * (t - end)
    forecaster = fit_forecaster(
        t, detrended, step_seconds=step_seconds, lead_time_seconds=6 * HOUR_SECONDS
    )
    forecast = forecaster.forecast(horizon) if forecaster.available else None
    if forecast is not None:
        path = np.asarray(forecast.values) + slope * (ahead - end)
        one_ahead = forecaster.predict_path(Grid(grid.first, step_seconds, detrended), 1)[:, 0]
        overshoot = detrended[1:] - one_ahead[:-1]
        model, reason = "seasonal+trend", f"{forecaster.model} on a linear trend"
    else:
        path = last_level + slope * (ahead - end)
        overshoot = grid.values - (last_level + slope * (t - end))
        model, reason = "linear", f"linear trend ({forecaster.reason})"
    overshoot = overshoot[np.isfinite(overshoot)]
    spread = max(0.0, float(np.percentile(overshoot, 95))) if overshoot.size else 0.0
    band = np.maximum(path + spread, 0.0)
    reached = np.flatnonzero(band >= capacity) if capacity > 0 else np.empty(0, dtype=np.int64)
    run_out = float(ahead[reached[0]]) if reached.size else None
    return SeriesForecast(
        model,
        reason,
        end,
        step_seconds,
        tuple(float(v) for v in band),
        slope * DAY_SECONDS,
        capacity,
        run_out,
    )


def nodes_for(
    cpu_millicores: float, memory_bytes: float, node_type: NodeType, max_utilisation: float = 1.0
) -> int:
    """Nodes of ``node_type`` whose allocatable (x ``max_utilisation``) holds both totals."""
    need = 0
    for amount, per_node in (
        (cpu_millicores, node_type.cpu_millicores),
        (memory_bytes, node_type.memory_bytes),
    ):
        if amount <= 0:
            continue
        if per_node <= 0:
            raise ValueError(f"node type {node_type.name} has no allocatable capacity")
        need = max(need, math.ceil(amount / (per_node * max_utilisation) - 1e-9))
    return need


@dataclass(frozen=True, slots=True)
class CapacityForecast:
    """When a pool runs out (by requests, which is what stops scheduling, or by usage) and
    how many nodes its forecast P95 needs over the horizon."""

    pool: str
    horizon_days: float
    requested_cpu: SeriesForecast
    requested_memory: SeriesForecast
    used_cpu: SeriesForecast
    used_memory: SeriesForecast
    run_out_at: float | None
    run_out_resource: str | None
    nodes_now: int
    nodes_needed: int | None
    reason: str

    @property
    def run_out_date(self) -> str | None:
        if self.run_out_at is None:
            return None
        return datetime.fromtimestamp(self.run_out_at, UTC).date().isoformat()


def forecast_pool(
    pool: NodePool,
    history: PoolHistory,
    *,
    horizon_days: float = 30.0,
    step_seconds: float = HOUR_SECONDS,
    max_utilisation: float = 1.0,
) -> CapacityForecast:
    """Forecast requested and used CPU and memory of one pool against its allocatable."""
    horizon = horizon_days * DAY_SECONDS
    series = {
        "requested cpu": (history.requested_cpu, pool.cpu_millicores),
        "requested memory": (history.requested_memory, pool.memory_bytes),
        "used cpu": (history.used_cpu, pool.cpu_millicores),
        "used memory": (history.used_memory, pool.memory_bytes),
    }
    forecasts = {
        name: forecast_series(
            history.times,
            values,
            capacity=capacity * max_utilisation,
            horizon_seconds=horizon,
            step_seconds=step_seconds,
        )
        for name, (values, capacity) in series.items()
    }
    run_outs = [
        (forecast.run_out_at, name)
        for name, forecast in forecasts.items()
        if forecast.run_out_at is not None
    ]
    run_out_at, run_out_resource = min(run_outs) if run_outs else (None, None)
    cpu_peak = forecasts["requested cpu"].peak
    memory_peak = forecasts["requested memory"].peak
    nodes_needed = (
        None
        if cpu_peak is None or memory_peak is None
        else nodes_for(cpu_peak, memory_peak, pool.node_type, max_utilisation)
    )
    if run_out_at is None:
        reason = f"no resource reaches its capacity within {horizon_days:g} days"
    else:
        when = datetime.fromtimestamp(run_out_at, UTC).isoformat()
        reason = f"{run_out_resource} P95 reaches the pool's allocatable at {when}"
    reason += f"; requests model: {forecasts['requested cpu'].reason}"
    return CapacityForecast(
        pool=pool.name,
        horizon_days=horizon_days,
        requested_cpu=forecasts["requested cpu"],
        requested_memory=forecasts["requested memory"],
        used_cpu=forecasts["used cpu"],
        used_memory=forecasts["used memory"],
        run_out_at=run_out_at,
        run_out_resource=run_out_resource,
        nodes_now=pool.node_count,
        nodes_needed=nodes_needed,
        reason=reason,
    )
