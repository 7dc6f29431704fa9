"""What the demo shows while it runs: a snapshot rendered as rich panels or as plain lines.

Pure: a ``Snapshot`` in, renderables or strings out; the fleet gathers the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from controller.demo.report import ENGINES


@dataclass(frozen=True, slots=True)
class EndpointRow:
    pod: str
    address: str
    zone: str
    state: str  # active, draining, ejected (the held routing table), or "-"
    share: float  # fraction of the recent answers this replica gave
    slow: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    scenario: str
    wall: float
    duration: float
    speed: float
    sim_clock: str  # pattern time of day, "06:02"
    offered_rps: float = 0.0
    served_rps: float = 0.0
    failed_rps: float = 0.0
    in_flight: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    desired: int = 0
    ready: int = 0
    running: int = 0
    forecast: str = ""
    endpoints: tuple[EndpointRow, ...] = ()
    zone_shares: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    ejections: int = 0
    local_ejections: int = 0
    hit_ratio: float | None = None
    l1_hits: int = 0
    l2_hits: int = 0
    redis: bool = False
    bottlenecks: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    decisions: tuple[str, ...] = ()  # newest last


def clock_of(simulated_seconds: float) -> str:
    """Time of day of a pattern time (t = 0 is midnight), ``HH:MM``."""
    minutes = int(simulated_seconds // 60) % (24 * 60)
    day = int(simulated_seconds // 86400)
    return (f"d{day} " if day else "") + f"{minutes // 60:02d}:{minutes % 60:02d}"


def _value(value: object) -> str:
    """``2.0`` reads as ``2``: replica counts arrive as floats."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def decision_line(decision: Mapping[str, Any], at: float) -> str:
    """One decision as it happens: when, which engine, what changed and why."""
    reason = decision.get("reason", {})
    engine = ENGINES.get(str(decision.get("kind")), str(decision.get("kind")))
    change = f"{_value(decision.get('from_value'))} -> {_value(decision.get('to_value'))}"
    return (
        f"[{at:6.1f}s] {engine:<11} {decision.get('target', '')}: {change} "
        f"({reason.get('code', '')}: {reason.get('message', '')})"
    )


def finding_line(node: str, finding: Mapping[str, Any], at: float, opened: bool) -> str:
    """A bottleneck an agent started (or stopped) reporting."""
    what = f"{finding['resource']} {finding['kind']} ({finding['severity']})"
    if not opened:
        return f"[{at:6.1f}s] agent       {node}: {what} cleared"
    return f"[{at:6.1f}s] agent       {node}: {what} on {finding['subject']}: {finding['message']}"


def plain_line(snapshot: Snapshot) -> str:
    """The periodic progress line of ``--no-tty``."""
    hit = "-" if snapshot.hit_ratio is None else f"{snapshot.hit_ratio * 100:.0f}%"
    parts = [
        f"[{snapshot.wall:6.1f}s/{snapshot.duration:.0f}s] {snapshot.sim_clock}",
        f"offered {snapshot.offered_rps:.0f}/s served {snapshot.served_rps:.0f}/s "
        f"failed {snapshot.failed_rps:.1f}/s",
        f"p50 {snapshot.p50_ms:.1f}ms p99 {snapshot.p99_ms:.1f}ms",
        f"replicas {snapshot.ready}/{snapshot.desired}",
        f"cache hit {hit}",
        f"ejections {snapshot.ejections}",
    ]
    if snapshot.bottlenecks:
        parts.append(f"bottlenecks {len(snapshot.bottlenecks)}")
    if snapshot.faults:
        parts.append("fault: " + ", ".join(snapshot.faults))
    return " | ".join(parts)


def _table(*columns: str) -> Table:
    table = Table(box=None, pad_edge=False, expand=True, show_header=bool(columns))
    for column in columns:
        table.add_column(column)
    return table


def _load_panel(snapshot: Snapshot) -> Panel:
    table = _table()
    table.add_column(ratio=1)
    table.add_column(ratio=1, justify="right")
    table.add_row("offered", f"{snapshot.offered_rps:.0f} req/s")
    table.add_row("served ok", f"{snapshot.served_rps:.0f} req/s")
    table.add_row("failed", f"{snapshot.failed_rps:.1f} req/s")
    table.add_row("in flight", str(snapshot.in_flight))
    table.add_row("latency p50 / p99", f"{snapshot.p50_ms:.1f} / {snapshot.p99_ms:.1f} ms")
    return Panel(table, title="load")


def _replicas_panel(snapshot: Snapshot) -> Panel:
    table = _table()
    table.add_column(ratio=1)
    table.add_column(ratio=1, justify="right")
    table.add_row("ready / desired", f"{snapshot.ready} / {snapshot.desired}")
    table.add_row("running", str(snapshot.running))
    table.add_row("forecast", snapshot.forecast or "-")
    return Panel(table, title="replicas")


def _routing_panel(snapshot: Snapshot) -> Panel:
    table = _table("replica", "zone", "state", "share")
    for row in snapshot.endpoints:
        style = "red" if row.state == "ejected" else "yellow" if row.slow else ""
        name = row.pod + (" (slow)" if row.slow else "")
        table.add_row(
            Text(name, style=style), row.zone, row.state, f"{row.share * 100:.0f}%", style=style
        )
    shares = "; ".join(
        f"{caller}->" + ",".join(f"{zone}:{share * 100:.0f}%" for zone, share in upstream.items())
        for caller, upstream in sorted(snapshot.zone_shares.items())
    )
    footer = Text(
        f"zone shares {shares or 'by healthy hosts'}\nejections: {snapshot.ejections} by the "
        f"controller, {snapshot.local_ejections} local"
    )
    return Panel(Group(table, footer), title="routing")


def _cache_panel(snapshot: Snapshot) -> Panel:
    hit = "-" if snapshot.hit_ratio is None else f"{snapshot.hit_ratio * 100:.1f} %"
    lines = [f"hit ratio (last seconds): {hit}", f"L1 hits: {snapshot.l1_hits}"]
    lines.append(f"L2 hits: {snapshot.l2_hits}" if snapshot.redis else "L2: off (no --redis)")
    return Panel(Text("\n".join(lines)), title="cache")


def _bottleneck_panel(snapshot: Snapshot) -> Panel:
    lines = list(snapshot.bottlenecks) or ["none reported"]
    if snapshot.faults:
        lines.append("injected: " + ", ".join(snapshot.faults))
    return Panel(Text("\n".join(lines)), title="bottlenecks")


def render(snapshot: Snapshot, decisions_shown: int = 10) -> RenderableType:
    """The live view as rich renderables."""
    header = Text(
        f"linescale demo: {snapshot.scenario}   {snapshot.wall:5.1f}s / {snapshot.duration:.0f}s"
        f"   simulated {snapshot.sim_clock} at {snapshot.speed:g}x",
        style="bold",
    )
    top = Table.grid(expand=True)
    for _ in range(3):
        top.add_column(ratio=1)
    top.add_row(_load_panel(snapshot), _replicas_panel(snapshot), _cache_panel(snapshot))
    middle = Table.grid(expand=True)
    middle.add_column(ratio=3)
    middle.add_column(ratio=2)
    middle.add_row(_routing_panel(snapshot), _bottleneck_panel(snapshot))
    feed = Text("\n".join(snapshot.decisions[-decisions_shown:]) or "no decisions yet")
    return Group(header, top, middle, Panel(feed, title="decisions"))


def endpoint_rows(
    pods: Sequence[Mapping[str, Any]],
    states: Mapping[str, str],
    zones: Mapping[str, str],
    answered: Mapping[str, int],
    slow_pods: Sequence[str] = (),
) -> tuple[EndpointRow, ...]:
    """Rows of the routing panel: every pod with its zone, routed state and recent share."""
    total = sum(answered.values())
    return tuple(
        EndpointRow(
            pod=pod["name"],
            address=pod["address"],
            zone=zones.get(pod["node"], "?"),
            state=states.get(pod["address"], "-"),
            share=answered.get(pod["name"], 0) / total if total else 0.0,
            slow=pod["name"] in slow_pods,
        )
        for pod in pods
    )
