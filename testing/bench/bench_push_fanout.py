"""Benchmark: admin PUT of a routing table, fanned out by the controller to N real agents.

Starts a controller and N agents (``python -m ...``) on free loopback ports, sends
``--pushes`` routing tables of ``--endpoints`` endpoints each, and prints p50/p99 of the
whole PUT (validation, fan-out, every agent's validation and apply) and each process's RSS.

    .venv/bin/python testing/bench/bench_push_fanout.py --agents 3 --pushes 100 --endpoints 49
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from typing import Any

import psutil

from controller.processes import free_port

from bench_support import percentile, wait_healthy


def put(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--pushes", type=int, default=100)
    parser.add_argument("--endpoints", type=int, default=49)
    args = parser.parse_args()

    token = secrets.token_urlsafe(24)
    env = {**os.environ, "LINESCALE_TOKEN": token, "LINESCALE_LOG_LEVEL": "warning"}
    controller_port = free_port()
    controller = f"http://127.0.0.1:{controller_port}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "controller", "--listen", f"127.0.0.1:{controller_port}"],
            env=env, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        wait_healthy(controller)
        for index in range(args.agents):
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "agent", "--listen", f"127.0.0.1:{port}",
                     "--node", f"bench-{index}", "--zone", "abc"[index % 3],
                     "--controller", controller],
                    env={**env, "LINESCALE_AGENT__REPORT_INTERVAL_SECONDS": "0.5"},
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
            wait_healthy(f"http://127.0.0.1:{port}")
        while True:  # every agent registered
            with urllib.request.urlopen(f"{controller}/v1/status") as response:
                if json.load(response)["summary"]["agents"] == args.agents:
                    break
            time.sleep(0.2)

        endpoints = [
            {"address": f"10.0.{i // 250}.{i % 250 + 1}:8080", "zone": "abc"[i % 3]}
            for i in range(args.endpoints)
        ]
        seconds = []
        for version in range(1, args.pushes + 1):
            body = {"version": version, "generated_at": time.time(),
                    "services": [{"name": "line-telemetry", "endpoints": endpoints}]}  # fmt: skip
            started = time.perf_counter()
            answer = put(f"{controller}/v1/routing", token, body)
            seconds.append(time.perf_counter() - started)
            outcomes = [agent["outcome"] for agent in answer["agents"]]
            if outcomes != ["applied"] * args.agents:
                raise SystemExit(f"push {version}: {answer}")
        seconds.sort()
        print(
            f"routing PUT fanned out to {args.agents} agents, {args.endpoints} endpoints, "
            f"{args.pushes} pushes: p50 {percentile(seconds, 0.5) * 1e3:.1f} ms, "
            f"p99 {percentile(seconds, 0.99) * 1e3:.1f} ms"
        )
        for process in processes:
            rss = psutil.Process(process.pid).memory_info().rss / 2**20
            role = "controller" if process is processes[0] else "agent"
            print(f"  {role:<10} pid {process.pid}: {rss:.1f} MiB RSS")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
