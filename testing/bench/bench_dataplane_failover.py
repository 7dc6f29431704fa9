"""Benchmark: a backend killed (SIGKILL) under steady load, behind the embedded dataplane.

Three backends (separate processes, 5-20 ms answers) behind an agent's static dataplane
service (p2c_peak_ewma, default retries: 2 attempts within a 20 % budget; default passive
health: 5 failures in 1 s eject for 10 s). A client sends ``--rate`` requests/s for
``--seconds``; one backend is killed after a third of the run. Success = a 200; every other
answer and every request left without an answer is counted. Goal: >= 99.9 %.

    .venv/bin/python testing/bench/bench_dataplane_failover.py --rate 1000 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from controller.processes import free_port

from bench_dataplane_forwarding import start_agent, start_backends, stop, wait_port


async def load(
    port: int, rate: float, seconds: float, victim: subprocess.Popen[bytes]
) -> tuple[Counter[str], float]:
    outcomes: Counter[str] = Counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            try:
                async with session.get(
                    f"http://127.0.0.1:{port}/item", timeout=aiohttp.ClientTimeout(total=20)
                ) as response:
                    await response.read()
                    outcomes["ok" if response.status == 200 else str(response.status)] += 1
            except TimeoutError:
                outcomes["no answer (timeout)"] += 1
            except aiohttp.ClientError as error:
                outcomes[f"no answer ({type(error).__name__})"] += 1

        tasks: set[asyncio.Task[None]] = set()
        total = int(rate * seconds)
        killed_at = 0.0
        started = time.monotonic()
        for index in range(total):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if index == total // 3:
                victim.send_signal(signal.SIGKILL)
                killed_at = time.monotonic() - started
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return outcomes, killed_at


@dataclass(frozen=True, slots=True)
class FailoverFigures:
    """Each request's outcome ("ok", a status, or "no answer (...)") and when the kill came."""

    outcomes: Counter[str]
    killed_at: float

    @property
    def success_ratio(self) -> float:
        return self.outcomes["ok"] / sum(self.outcomes.values())


def measure(rate: float, seconds: float, policy: str = "p2c_peak_ewma") -> FailoverFigures:
    """Three backends behind the embedded proxy, one SIGKILLed a third into the load."""
    workdir = Path(tempfile.mkdtemp(prefix="linescale-bench-"))
    ports = [free_port() for _ in range(3)]
    backends = [start_backends([port], 0.005, 0.020) for port in ports]
    processes = list(backends)
    try:
        proxy_port = free_port()
        service = {
            "name": "bench",
            "listen": f"127.0.0.1:{proxy_port}",
            "policy": policy,
            "endpoints": [f"127.0.0.1:{port}" for port in ports],
        }
        agent, _ = start_agent(workdir, [service])
        processes.append(agent)
        wait_port(proxy_port)
        outcomes, killed_at = asyncio.run(load(proxy_port, rate, seconds, backends[1]))
        return FailoverFigures(outcomes, killed_at)
    finally:
        stop(processes)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--policy", default="p2c_peak_ewma")
    args = parser.parse_args()
    figures = measure(args.rate, args.seconds, args.policy)
    outcomes = figures.outcomes
    total = sum(outcomes.values())
    print(
        f"3 backends 5-20 ms, {args.policy}, {args.rate:g} req/s for {args.seconds:g} s, "
        f"one backend SIGKILLed at {figures.killed_at:.1f} s"
    )
    others = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k != "ok")
    print(
        f"success {figures.success_ratio * 100:7.3f} %  ({outcomes['ok']}/{total}; "
        f"{others or 'no failures'})"
    )


if __name__ == "__main__":
    main()
