"""The scaling chart's x axis: days by default (``linescale backtest``), any unit on request."""

from __future__ import annotations

import re

from controller.engines.scaling.svg_chart import Line, line_chart_svg


def x_labels(svg: str) -> list[str]:
    return re.findall(r'text-anchor="middle">([^<]*)</text>', svg)


def test_the_x_axis_is_labelled_in_days_by_default() -> None:
    svg = line_chart_svg("t", [0.0, 86400.0, 5 * 86400.0], [Line("d", [1.0, 2.0, 3.0], "#000")])
    assert x_labels(svg) == ["0 d", "1 d", "2 d", "3 d", "4 d", "5 d"]


def test_a_labeller_gets_seconds_since_the_first_time() -> None:
    seen: list[float] = []

    def minutes(seconds: float) -> str:
        seen.append(seconds)
        return f"{seconds / 60:g} min <"

    svg = line_chart_svg(
        "t", [100.0, 400.0, 1300.0], [Line("d", [1.0, 2.0, 3.0], "#000")], x_labeller=minutes
    )
    assert seen == [0.0, 240.0, 480.0, 720.0, 960.0, 1200.0]
    assert x_labels(svg) == [f"{m:g} min &lt;" for m in (0, 4, 8, 12, 16, 20)]  # escaped
    assert " d</text>" not in svg
