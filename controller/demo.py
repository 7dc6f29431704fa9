"""``linescale demo``: the whole system on one machine, with nothing else installed.

Starts a controller and three agents (zones a, b, c) as child processes on free loopback
ports, pushes a routing table and a tuning set through the controller's admin API, drains
one zone half-way through, shows a live view, and ends with a summary. Every child is
stopped on the way out (and told by the kernel to stop if the demo itself is killed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from controller.processes import die_with_parent_preexec, free_port

ZONES = ("a", "b", "c")
DEMO_SERVICE = "line-telemetry"


@dataclass
class Child:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Fleet:
    """The child processes of one demo run, and how to stop them all."""

    workdir: Path
    token: str
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, url: str, args: list[str], env: dict[str, str]) -> Child:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", *args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env, "LINESCALE_TOKEN": self.token},
                preexec_fn=die_with_parent_preexec(),
            )
        child = Child(name, url, process, log_path)
        self.children.append(child)
        return child

    def dead(self) -> list[Child]:
        return [child for child in self.children if child.process.poll() is not None]

    def stop(self, timeout_seconds: float = 8.0) -> list[str]:
        """SIGTERM everyone, wait, SIGKILL what is left; returns names that needed SIGKILL."""
        for child in self.children:
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + timeout_seconds
        killed = []
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
                killed.append(child.name)
        return killed


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def routing_table(
    version: int, agent_ports: dict[str, int], drained_zone: str | None
) -> dict[str, Any]:
    """The demo's line service: one endpoint per zone, one zone draining after half-time."""
    return {
        "version": version,
        "generated_at": time.time(),
        "services": [
            {
                "name": DEMO_SERVICE,
                "policy": "p2c_peak_ewma",
                "endpoints": [
                    {
                        "address": f"127.0.0.1:{port}",
                        "zone": zone,
                        "region": "demo",
                        "weight": 100,
                        "state": "draining" if zone == drained_zone else "active",
                    }
                    for zone, port in agent_ports.items()
                ],
            }
        ],
    }


def tuning_set(version: int) -> dict[str, Any]:
    return {
        "version": version,
        "generated_at": time.time(),
        "cache": {
            "capacity_bytes": 64 * 2**20,
            "default_ttl_seconds": 30.0,
            "max_ttl_seconds": 300.0,
        },
        "dataplane": {
            "connect_timeout_ms": 250,
            "request_timeout_ms": 2000,
            "retry_budget_percent": 20.0,
            "max_concurrency": 256,
        },
        "collector_interval_seconds": 5.0,
    }


def render_status(status: dict[str, Any] | None, elapsed: float, duration: float) -> str:
    """The live view: one line per agent, with what it holds and how fresh it is."""
    header = f"linescale demo  {elapsed:5.1f}s / {duration:.0f}s"
    if status is None:
        return f"{header}\n  controller not answering yet"
    ctl = status["controller"]
    lines = [
        header,
        f"controller: routing v{ctl['routing_version']}  tuning v{ctl['tuning_version']}  "
        f"agents {status['summary']['agents']} (stale {status['summary']['stale']})",
        f"  {'node':<14} {'zone':<5} {'health':<8} {'age':>6} {'reports':>8} {'routing':>8} "
        f"{'tuning':>7}",
    ]
    for agent in status["agents"]:
        health = "STALE" if agent["stale"] else agent["health"]
        lines.append(
            f"  {agent['node']:<14} {agent['zone']:<5} {health:<8} {agent['age_seconds']:>5.1f}s "
            f"{agent['reports']:>8} {'v' + str(agent['routing_version']):>8} "
            f"{'v' + str(agent['tuning_version']):>7}"
        )
    return "\n".join(lines)


def summarize(
    status: dict[str, Any] | None, elapsed: float, killed: list[str], stopped: int
) -> str:
    if status is None:
        return "summary: the controller never answered"
    ctl = status["controller"]
    agents = status["agents"]
    current = [
        a["node"]
        for a in agents
        if a["routing_version"] == ctl["routing_version"]
        and a["tuning_version"] == ctl["tuning_version"]
    ]
    return "\n".join(
        [
            f"summary after {elapsed:.1f}s:",
            f"  agents registered: {len(agents)} of {len(ZONES)} "
            f"({', '.join(sorted(a['zone'] for a in agents))})",
            f"  reports received:  {sum(a['reports'] for a in agents)}",
            f"  converged on routing v{ctl['routing_version']} / tuning v{ctl['tuning_version']}: "
            f"{len(current)} of {len(agents)}",
            f"  processes stopped: {stopped}"
            + (f" ({len(killed)} needed SIGKILL: {', '.join(killed)})" if killed else " cleanly"),
        ]
    )


class DemoError(RuntimeError):
    pass


async def fetch_status(
    session: aiohttp.ClientSession, controller_url: str
) -> dict[str, Any] | None:
    try:
        async with session.get(f"{controller_url}/v1/status") as response:
            if response.status != 200:
                return None
            status: dict[str, Any] = await response.json()
            return status
    except (aiohttp.ClientError, TimeoutError):
        return None


def converged(status: dict[str, Any]) -> bool:
    ctl = status["controller"]
    return len(status["agents"]) == len(ZONES) and all(
        agent["routing_version"] == ctl["routing_version"]
        and agent["tuning_version"] == ctl["tuning_version"]
        for agent in status["agents"]
    )


async def settled_status(
    session: aiohttp.ClientSession, controller_url: str, within_seconds: float
) -> dict[str, Any] | None:
    """The final picture: wait briefly for the last push to show in every agent's report."""
    deadline = time.monotonic() + within_seconds
    status = await fetch_status(session, controller_url)
    while (status is None or not converged(status)) and time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        status = await fetch_status(session, controller_url) or status
    return status


async def wait_healthy(session: aiohttp.ClientSession, fleet: Fleet, within_seconds: float) -> None:
    deadline = time.monotonic() + within_seconds
    for child in fleet.children:
        while True:
            if child.process.poll() is not None:
                raise DemoError(f"{child.name} exited early:\n{log_tail(child.log_path)}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{child.url}/healthz") as response:
                    if response.status == 200:
                        break
            if time.monotonic() > deadline:
                raise DemoError(f"{child.name} not healthy after {within_seconds:.0f}s")
            await asyncio.sleep(0.1)


async def admin_put(
    session: aiohttp.ClientSession, url: str, token: str, body: dict[str, Any]
) -> dict[str, Any]:
    async with session.put(url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
        answer: dict[str, Any] = await resp.json()
        if resp.status != 200:
            raise DemoError(f"PUT {url}: HTTP {resp.status}: {answer}")
        return answer


async def run_demo(
    duration: float, fleet: Fleet, live: bool
) -> tuple[dict[str, Any] | None, float, bool]:
    """Runs the demo; returns the last status, the time it ran, and whether it was interrupted."""
    controller_port = free_port()
    controller_url = f"http://127.0.0.1:{controller_port}"
    fleet.spawn(
        "controller",
        controller_url,
        ["controller", "--listen", f"127.0.0.1:{controller_port}"],
        {
            "LINESCALE_CONTROLLER__AGENT_STALE_AFTER_SECONDS": "4",
            "LINESCALE_CONTROLLER__RECONCILE_INTERVAL_SECONDS": "1",
            "LINESCALE_LOG_FORMAT": "json",
        },
    )
    agent_ports = {zone: free_port() for zone in ZONES}
    for zone, port in agent_ports.items():
        fleet.spawn(
            f"agent-{zone}",
            f"http://127.0.0.1:{port}",
            [
                "agent",
                "--listen",
                f"127.0.0.1:{port}",
                "--node",
                f"line-node-{zone}",
                "--zone",
                zone,
                "--region",
                "demo",
                "--controller",
                controller_url,
            ],
            {"LINESCALE_AGENT__REPORT_INTERVAL_SECONDS": "1", "LINESCALE_LOG_FORMAT": "json"},
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    started = time.monotonic()
    status: dict[str, Any] | None = None
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await wait_healthy(session, fleet, within_seconds=20)
        await admin_put(
            session,
            f"{controller_url}/v1/routing",
            fleet.token,
            routing_table(1, agent_ports, None),
        )
        await admin_put(session, f"{controller_url}/v1/tuning", fleet.token, tuning_set(1))
        drained = False
        last_print = -10.0
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if elapsed >= duration:
                break
            if not drained and elapsed >= duration / 2:
                await admin_put(
                    session,
                    f"{controller_url}/v1/routing",
                    fleet.token,
                    routing_table(2, agent_ports, drained_zone="b"),
                )
                drained = True
            if dead := fleet.dead():
                raise DemoError(f"{dead[0].name} died:\n{log_tail(dead[0].log_path)}")
            status = await fetch_status(session, controller_url) or status
            view = render_status(status, elapsed, duration)
            if live:
                sys.stdout.write("\x1b[H\x1b[2J" + view + "\n")
                sys.stdout.flush()
            elif elapsed - last_print >= 5:
                print(view, flush=True)
                last_print = elapsed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(1.0, duration - elapsed))
        status = await settled_status(session, controller_url, within_seconds=3) or status
    return status, time.monotonic() - started, stop.is_set()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="linescale demo",
        description="Run a controller and three agents (zones a, b, c) on this machine.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds to run (default 60; Ctrl-C ends early)",
    )
    parser.add_argument(
        "--no-live", action="store_true", help="print a status block every 5 s instead of redrawing"
    )
    args = parser.parse_args(argv)
    if not args.duration > 0:
        parser.error("--duration must be greater than 0")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    live = sys.stdout.isatty() and not args.no_live
    with tempfile.TemporaryDirectory(prefix="linescale-demo-") as workdir:
        fleet = Fleet(Path(workdir), token=secrets.token_urlsafe(24))
        status: dict[str, Any] | None = None
        elapsed = 0.0
        interrupted = False
        code = 0
        try:
            status, elapsed, interrupted = asyncio.run(run_demo(args.duration, fleet, live))
        except DemoError as error:
            print(f"linescale demo: {error}", file=sys.stderr)
            code = 1
        except KeyboardInterrupt:
            interrupted = True
        finally:
            killed = fleet.stop()
        print(summarize(status, elapsed, killed, len(fleet.children)))
        if not interrupted and (status is None or not converged(status)):
            print("linescale demo: the agents did not all register and converge", file=sys.stderr)
            code = code or 1
    raise SystemExit(code)


if __name__ == "__main__":
    main()
