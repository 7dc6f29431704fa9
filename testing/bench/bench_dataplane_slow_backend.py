"""Benchmark: one slow backend among 11 ("Beyond Round Robin", Linkerd 2016), per policy.

Linkerd's setup, scaled down: 11 backends answering in 20-170 ms (uniform), a client at
``--rate`` requests/s with a 1 s timeout, and for the middle third of each run one backend
answers in 2 s. Each policy (round_robin, least_request, p2c_peak_ewma) gets its own fresh
agent (static dataplane service over the 11 backends) and ``--seconds`` of load; success =
a 200 within the caller's 1 s timeout. Published shape: ~95 % RR, ~99 % least-loaded,
~99.9 % peak-EWMA; our goal: peak-EWMA >= 99.9 %.

    .venv/bin/python testing/bench/bench_dataplane_slow_backend.py --rate 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from controller.processes import free_port

from bench_dataplane_forwarding import (
    set_backend_delay,
    start_agent,
    start_backends,
    stop,
    wait_port,
)

POLICIES = ("round_robin", "least_request", "p2c_peak_ewma")


async def open_loop(
    port: int, rate: float, seconds: float, limit: float, slow_port: int, slow_delay: float
) -> Counter[str]:
    """Requests at a steady rate whatever the answers (open loop); one backend turns slow
    for the middle third."""
    outcomes: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            try:
                async with session.get(
                    f"http://127.0.0.1:{port}/item", timeout=aiohttp.ClientTimeout(total=limit)
                ) as response:
                    await response.read()
                    outcomes["ok" if response.status == 200 else str(response.status)] += 1
            except TimeoutError:
                outcomes["timeout"] += 1
            except aiohttp.ClientError as error:
                outcomes[type(error).__name__] += 1

        tasks: set[asyncio.Task[None]] = set()
        total = int(rate * seconds)
        slow_from, slow_until = total // 3, 2 * total // 3
        started = time.monotonic()
        for index in range(total):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if index in (slow_from, slow_until):
                seconds_ = slow_delay if index == slow_from else -1
                await asyncio.to_thread(set_backend_delay, slow_port, seconds_)
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="per policy")
    parser.add_argument("--timeout", type=float, default=1.0, help="caller timeout")
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="linescale-bench-"))
    ports = [free_port() for _ in range(11)]
    backends = start_backends(ports, 0.020, 0.170)
    print(
        f"11 backends 20-170 ms, one at {args.slow_seconds:g} s for the middle third; "
        f"{args.rate:g} req/s for {args.seconds:g} s per policy; caller timeout {args.timeout:g} s"
    )
    try:
        for policy in POLICIES:
            proxy_port = free_port()
            service = {
                "name": "bench",
                "listen": f"127.0.0.1:{proxy_port}",
                "policy": policy,
                "endpoints": [f"127.0.0.1:{port}" for port in ports],
            }
            agent, _ = start_agent(workdir, [service])
            try:
                wait_port(proxy_port)
                outcomes = asyncio.run(
                    open_loop(
                        proxy_port,
                        args.rate,
                        args.seconds,
                        args.timeout,
                        ports[0],
                        args.slow_seconds,
                    )
                )
            finally:
                stop([agent])
            total = sum(outcomes.values())
            success = outcomes["ok"] / total
            others = ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k != "ok")
            counts = f"{outcomes['ok']}/{total}; {others or 'no failures'}"
            print(f"{policy:14s} success {success * 100:7.3f} %  ({counts})")
    finally:
        stop([backends])
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
