"""``linescale demo``: the whole system on one machine, telling one story end to end.

A sample line service run by the LocalOrchestrator, three agents as nodes in zones a, b, c, a
load generator replaying a fixture load pattern in compressed time through the agents'
dataplanes, and the controller deciding; a live view while it runs, then a summary and a report
folder. Modules, one concept each: ``scenarios`` (pure timelines), ``loadgen`` (open-loop load,
bounded aggregates, in its own process), ``line_service`` (the sample service), ``view`` (pure
rendering), ``report`` (summary maths and the report folder), ``health`` (how healthy the
harness itself was), ``fleet`` (the run) and ``cli``.

``main`` imports the run lazily: ``python -m controller.demo.line_service`` starts one replica
per scale-up and must not pay for the controller's imports.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    from controller.demo.cli import main as run

    run(argv)
