"""``linescale controller`` / ``linescale-controller``: run the central controller."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from controller.app import create_app
from shared.service import serve, settings_or_exit


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="linescale controller",
        description="Run the Linescale controller (one per cluster).",
    )
    parser.add_argument("--config", help="YAML configuration file")
    parser.add_argument("--listen", help="HOST:PORT to serve on (default 0.0.0.0:9500)")
    parser.add_argument(
        "--prometheus", help="Prometheus URL; without it the agents are scraped directly"
    )
    parser.add_argument(
        "--orchestrator",
        choices=["local", "kubernetes"],
        help="where workloads run (default local)",
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster account)")
    parser.add_argument(
        "--dry-run", action="store_true", default=None, help="log would-be actions, act on none"
    )
    return parser.parse_args(argv)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags given on the command line override file and environment."""
    flags = {
        "listen": args.listen,
        "prometheus_url": args.prometheus,
        "orchestrator": args.orchestrator,
        "kubeconfig": args.kubeconfig,
        "dry_run": args.dry_run,
    }
    given = {key: value for key, value in flags.items() if value is not None}
    return {"controller": given} if given else {}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = settings_or_exit(args.config, flag_overrides(args))
    serve("controller", settings, settings.controller.listen, create_app)
