"""``linescale controller`` / ``linescale-controller``: run the central controller."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from controller.app import create_app
from shared.service import serve, settings_or_exit


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="linescale controller",
        description="Run the Linescale controller (one per cluster).",
    )
    parser.add_argument("--config", help="YAML configuration file")
    parser.add_argument("--listen", help="HOST:PORT to serve on (default 0.0.0.0:9500)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    overrides = {"controller": {"listen": args.listen}} if args.listen else {}
    settings = settings_or_exit(args.config, overrides)
    serve("controller", settings, settings.controller.listen, create_app)
