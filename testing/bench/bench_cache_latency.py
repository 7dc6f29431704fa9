"""Benchmark: cache read latency by level, in one run on this machine.

Starts a private redis-server and an agent (``python -m agent --redis ...``) on free loopback
ports, then measures p50/p99 of:
  - an in-process L1 get (``L1Cache.get``, W-TinyLFU, warm, 10k entries of 100 bytes);
  - an L1 hit through the agent's HTTP API at a steady ``--rate`` requests/s (sync client,
    one kept-alive connection);
  - an L2 get (``RedisL2.get``) and a direct redis-py GET of a plain key, same server;
  - the invalidation delay: delete through agent A until agent B misses (p50/p99).

    .venv/bin/python testing/bench/bench_cache_latency.py --rate 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import redis
import redis.asyncio as aredis

from agent.cache.l1 import L1Cache
from agent.cache.l2 import RedisL2
from controller.processes import free_port
from shared.cache_client import CacheClient

from bench_support import paced, percentile, wait_healthy


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
    return f"p50 {p50 * 1e6:8.1f} us   p99 {p99 * 1e6:8.1f} us   (n={len(ordered)})"


def bench_l1_in_process(entries: int = 10_000, gets: int = 100_000) -> list[float]:
    l1 = L1Cache(entries * 1200, time.monotonic)
    for index in range(entries):
        l1.put("parts", f"key-{index}", b"x" * 100, ttl_seconds=3600)
    keys = [f"key-{index % entries}" for index in range(gets)]
    samples = []
    clock = time.perf_counter
    for key in keys:
        started = clock()
        l1.get("parts", key)
        samples.append(clock() - started)
    return samples


def bench_http(url: str, token: str, rate: float, seconds: float) -> list[float]:
    with CacheClient(url, token) as cache:
        cache.put("parts", "hot", b"x" * 100, ttl_seconds=3600)
        cache.get("parts", "hot")

        def lookup() -> None:
            hit = cache.get("parts", "hot")
            assert hit is not None
            assert hit.level == "L1"

        return paced(rate, seconds, lookup)


async def bench_redis(url: str, reads: int = 5_000) -> tuple[list[float], list[float]]:
    l2 = RedisL2(url)
    raw = aredis.Redis.from_url(url)
    try:
        await l2.set("parts", "bench", b"x" * 100, ttl_seconds=3600)
        await raw.set("bench-plain", b"x" * 100)
        via_l2, direct = [], []
        for _ in range(reads):
            begin = time.perf_counter()
            await l2.get("parts", "bench")
            via_l2.append(time.perf_counter() - begin)
            begin = time.perf_counter()
            await raw.get("bench-plain")
            direct.append(time.perf_counter() - begin)
        return via_l2, direct
    finally:
        await l2.close()
        await raw.aclose()


def bench_invalidation(a_url: str, b_url: str, token: str, rounds: int = 200) -> list[float]:
    samples = []
    with CacheClient(a_url, token) as via_a, CacheClient(b_url, token) as via_b:
        for index in range(rounds):
            key = f"inv-{index}"
            via_a.put("parts", key, b"v", ttl_seconds=60)
            assert via_b.get("parts", key) is not None  # now in B's L1
            assert via_b.get("parts", key) is not None
            started = time.perf_counter()
            via_a.delete("parts", key)
            while via_b.get("parts", key) is not None:
                pass
            samples.append(time.perf_counter() - started)
    return samples


@dataclass(frozen=True, slots=True)
class CacheFigures:
    """Each level's samples, in seconds, in measurement order."""

    l1_in_process: list[float]
    http: list[float]
    l2: list[float]
    direct_redis: list[float]
    invalidation: list[float]


def measure(
    rate: float, seconds: float, *, invalidation_rounds: int = 200, redis_server: str = ""
) -> CacheFigures:
    """Start a private Redis and two agents on it, then measure every level in turn."""
    redis_server = redis_server or shutil.which("redis-server") or "/usr/bin/redis-server"
    workdir = tempfile.mkdtemp(prefix="linescale-bench-")
    redis_port = free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    token = secrets.token_urlsafe(24)
    processes = [
        subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir],
            stdout=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis.from_url(redis_url) as probe:
                    probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        env = {**os.environ, "LINESCALE_TOKEN": token, "LINESCALE_LOG_LEVEL": "warning"}
        urls = []
        for node in ("bench-a", "bench-b"):
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "agent", "--listen", f"127.0.0.1:{port}",
                     "--node", node, "--zone", "a", "--redis", redis_url],
                    env=env,
                )
            )  # fmt: skip
            urls.append(f"http://127.0.0.1:{port}")
            wait_healthy(urls[-1])

        in_process = bench_l1_in_process()
        http = bench_http(urls[0], token, rate, seconds)
        via_l2, direct = asyncio.run(bench_redis(redis_url))
        invalidation = bench_invalidation(urls[0], urls[1], token, invalidation_rounds)
        return CacheFigures(in_process, http, via_l2, direct, invalidation)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="HTTP requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="HTTP measurement window")
    args = parser.parse_args()
    figures = measure(args.rate, args.seconds)
    print(f"L1 in-process get        {percentiles(figures.l1_in_process)}")
    print(f"L1 via agent HTTP @{args.rate:g}/s {percentiles(figures.http)}")
    print(f"L2 get (RedisL2)         {percentiles(figures.l2)}")
    print(f"direct redis-py GET      {percentiles(figures.direct_redis)}")
    http, direct = sorted(figures.http), sorted(figures.direct_redis)
    ratio = http[len(http) // 2] / direct[len(direct) // 2]
    print(f"HTTP L1 hit / direct Redis GET, p50: {ratio:.2f}x")
    print(f"invalidation A->B        {percentiles(figures.invalidation)}")


if __name__ == "__main__":
    main()
