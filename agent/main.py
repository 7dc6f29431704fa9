"""``linescale agent`` / ``linescale-agent``: run the node agent."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from agent.app import create_app
from shared.service import serve, settings_or_exit


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="linescale agent",
        description="Run the Linescale node agent (one per node, as a DaemonSet).",
    )
    parser.add_argument("--config", help="YAML configuration file")
    parser.add_argument("--listen", help="HOST:PORT to serve on (default 0.0.0.0:9400)")
    parser.add_argument("--node", help="node name (in a cluster: spec.nodeName)")
    parser.add_argument("--zone", help="topology zone of the node")
    parser.add_argument("--region", help="topology region of the node")
    parser.add_argument("--controller", help="controller base URL, e.g. http://controller:9500")
    parser.add_argument("--advertise-url", help="URL the controller uses to reach this agent")
    parser.add_argument("--redis", help="Redis URL for the cache's L2, e.g. redis://redis:6379/0")
    return parser.parse_args(argv)


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags given on the command line override file and environment."""
    flags = {
        "listen": args.listen,
        "node": args.node,
        "zone": args.zone,
        "region": args.region,
        "controller_url": args.controller,
        "advertise_url": args.advertise_url,
    }
    overrides: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    if args.redis is not None:
        overrides["cache"] = {"redis_url": args.redis}
    return {"agent": overrides}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    settings = settings_or_exit(args.config, flag_overrides(args))
    serve("agent", settings, settings.agent.listen, create_app)
