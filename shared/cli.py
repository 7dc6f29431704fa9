"""``linescale``: one command for every role.

Each subcommand runs its component's own entry point in place of this process (``exec``),
so the ``shared`` package never imports ``agent`` or ``controller`` and signals reach the
component directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from shared import __version__

# subcommand -> (module run with ``python -m``, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("controller.demo", "run controller and three agents on this machine with a live view"),
    "agent": ("agent", "run the node agent"),
    "controller": ("controller", "run the central controller"),
    "decide": (
        "controller.decide",
        "evaluate one decision input (JSON, --input FILE or -) without acting",
    ),
    "backtest": (
        "controller.backtest",
        "replay a load trace through the scaling engine and print what it would have done",
    ),
    "bench": (
        "agent.cache.bench",
        "replay a cache trace through the L1 policy and print the hit ratio",
    ),
    "report": (
        "controller.report",
        "operator reports: 'report resources' prints right-sizing recommendations and waste",
    ),
}

USAGE = (
    "usage: linescale {demo,agent,controller,decide,backtest,bench,report,version} [options]"
    "  (linescale COMMAND --help)"
)


def usage_text() -> str:
    lines = [USAGE, "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines.append(f"  {'version':<11} print the version")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage_text())
        raise SystemExit(0 if args else 2)
    command, rest = args[0], args[1:]
    if command in ("version", "--version"):
        print(f"linescale {__version__}")
        return
    if command not in SUBCOMMANDS:
        print(f"linescale: unknown command {command!r}\n{usage_text()}", file=sys.stderr)
        raise SystemExit(2)
    module, _ = SUBCOMMANDS[command]
    os.execv(sys.executable, [sys.executable, "-m", module, *rest])
