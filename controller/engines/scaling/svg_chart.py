"""A small SVG line chart: a few series over one time axis, no plotting library needed.

Demand and capacity share the left axis (the trace's unit); replica counts get their own right
axis. Long series are reduced to at most ``max_points`` per line by keeping each bin's maximum,
so a short spike stays visible, which is what a scaling chart is read for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

__all__ = ["Line", "line_chart_svg"]

_WIDTH, _HEIGHT = 1000, 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 70, 40, 50


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    values: Sequence[float]  # NaN breaks the line
    colour: str
    right_axis: bool = False


def _reduce(
    times: Sequence[float], values: Sequence[float], max_points: int
) -> list[tuple[float, float]]:
    """At most ``max_points`` points: the maximum of each bin, at the bin's first time."""
    size = len(times)
    if size <= max_points:
        return list(zip(times, values, strict=True))
    points = []
    per_bin = size / max_points
    for index in range(max_points):
        low, high = int(index * per_bin), max(int((index + 1) * per_bin), int(index * per_bin) + 1)
        finite = [v for v in values[low:high] if math.isfinite(v)]
        points.append((times[low], max(finite) if finite else math.nan))
    return points


def _y(value: float, axis: tuple[float, float]) -> float:
    low, high = axis
    plot = _HEIGHT - _TOP - _BOTTOM
    span = high - low if high > low else 1.0
    return _TOP + plot - (value - low) / span * plot


def _axis_max(lines: Sequence[Line]) -> float:
    finite = [v for line in lines for v in line.values if math.isfinite(v)]
    return max(finite, default=1.0) * 1.05 or 1.0


def line_chart_svg(
    title: str,
    times: Sequence[float],
    lines: Sequence[Line],
    *,
    left_label: str = "load",
    right_label: str = "replicas",
    max_points: int = 1500,
    x_labeller: Callable[[float], str] | None = None,
) -> str:
    """The SVG text. ``times`` are seconds; the x axis is labelled in days from the first,
    or by ``x_labeller`` (seconds since the first time -> tick label) for shorter spans."""
    if not times:
        raise ValueError("nothing to chart: no times")
    for line in lines:
        if len(line.values) != len(times):
            raise ValueError(f"line {line.label!r} has {len(line.values)} values, not {len(times)}")
    first, last = times[0], times[-1]
    x_scale = (_WIDTH - _LEFT - _RIGHT) / (last - first if last > first else 1.0)
    left_axis = (0.0, _axis_max([line for line in lines if not line.right_axis]))
    right_axis = (0.0, _axis_max([line for line in lines if line.right_axis]))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
        f'<text x="{_WIDTH / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    plot_bottom = _HEIGHT - _BOTTOM
    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{_WIDTH - _LEFT - _RIGHT}" '
        f'height="{plot_bottom - _TOP}" fill="none" stroke="#999"/>'
    )
    for tick in range(5):
        fraction = tick / 4
        y = _TOP + (plot_bottom - _TOP) * (1 - fraction)
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{left_axis[1] * fraction:.4g}</text>"
        )
        parts.append(
            f'<text x="{_WIDTH - _RIGHT + 6}" y="{y + 4:.1f}">{right_axis[1] * fraction:.4g}</text>'
        )
    days = (last - first) / 86400
    for tick in range(6):
        fraction = tick / 5
        x = _LEFT + (_WIDTH - _LEFT - _RIGHT) * fraction
        label = (
            f"{days * fraction:.3g} d"
            if x_labeller is None
            else escape(x_labeller((last - first) * fraction))
        )
        parts.append(
            f'<text x="{x:.1f}" y="{plot_bottom + 18}" text-anchor="middle">{label}</text>'
        )
    parts.append(
        f'<text x="16" y="{_TOP - 10}">{escape(left_label)}</text>'
        f'<text x="{_WIDTH - 16}" y="{_TOP - 10}" text-anchor="end">{escape(right_label)}</text>'
    )
    for index, line in enumerate(lines):
        axis = right_axis if line.right_axis else left_axis
        points = _reduce(times, line.values, max_points)
        commands: list[str] = []
        pen_up = True
        for time, value in points:
            if not math.isfinite(value):
                pen_up = True
                continue
            x = _LEFT + (time - first) * x_scale
            commands.append(f"{'M' if pen_up else 'L'}{x:.1f},{_y(value, axis):.1f}")
            pen_up = False
        parts.append(
            f'<path d="{" ".join(commands)}" fill="none" stroke="{escape(line.colour)}" '
            f'stroke-width="1"><title>{escape(line.label)}</title></path>'
        )
        legend_x = _LEFT + 10 + index * 200
        parts.append(
            f'<rect x="{legend_x}" y="{_HEIGHT - 18}" width="14" height="4" '
            f'fill="{escape(line.colour)}"/>'
            f'<text x="{legend_x + 20}" y="{_HEIGHT - 12}">{escape(line.label)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
