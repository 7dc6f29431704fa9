"""The demo's sample line service: a part lookup through the node-local cache, then CPU work.

``GET /parts/{part_id}`` asks the cache of the agent on the replica's own node (L1 there, L2 in
Redis when the agent has one); a miss "computes" the part (a few ms of sleep, standing in for a
database) and stores it with a TTL. Every request then does a fixed amount of hashing, so CPU
contention shows as latency. The answer's ``X-Cache`` header says where the part came from.

Where a replica runs is learnt the way a pod learns it from the downward API: with
``--controller URL`` it finds its own pod (by port) in the controller's view of the workload,
and that pod's node's agent in ``/v1/agents``; it reports ready only once it knows. With
``--cache-url`` it uses that agent directly.

It exposes ``http_requests_total`` and ``http_request_duration_seconds`` with ``namespace`` and
``pod`` labels (what the controller's metrics sources read per workload), ``/healthz`` for
readiness, and ``POST /_demo/slow?ms=N&fail=F``, a fault hook only the demo uses.

Run: ``python -m controller.demo.line_service --port N --cache-url URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from shared.cache_client import AsyncCacheClient, CacheError

log = logging.getLogger("line_service")

CACHE_NAMESPACE = "parts"
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass
class Placement:
    """Where this replica runs: its pod name, node, and its node agent's cache."""

    pod: str
    node: str
    cache_url: str


@dataclass
class ServiceState:
    args: argparse.Namespace
    token: str
    hashes_per_ms: int
    placement: Placement | None = None
    cache: AsyncCacheClient | None = None
    slow_ms: float = 0.0
    fail_ratio: float = 0.0


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "Requests answered, by status code.",
            ["namespace", "pod", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request.",
            ["namespace", "pod"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )


STATE = web.AppKey("line_service_state", ServiceState)
METRICS = web.AppKey("line_service_metrics", ServiceMetrics)


def calibrate_hashes_per_ms() -> int:
    """How many SHA-256 rounds take one millisecond here (the fastest of a few tries)."""
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        digest = b"calibrate"
        for _ in range(2000):
            digest = hashlib.sha256(digest).digest()
        best = max(best, 2000 / ((time.perf_counter() - started) * 1000))
    return max(1, int(best))


def cpu_work(rounds: int, seed: bytes) -> str:
    """A fixed amount of work: under CPU contention it takes longer, as real work does."""
    digest = seed
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


def part_record(part_id: str) -> bytes:
    """What the "database" returns for a part."""
    return json.dumps(
        {"part": part_id, "description": f"line part {part_id}", "stock": len(part_id) * 7}
    ).encode()


async def handle_part(request: web.Request) -> web.Response:
    state = request.app[STATE]
    metrics = request.app[METRICS]
    placement = state.placement
    if placement is None or state.cache is None:
        return web.json_response({"error": "not placed yet"}, status=503)
    started = time.perf_counter()
    part_id = request.match_info["part_id"]
    hit = await state.cache.get(CACHE_NAMESPACE, part_id)
    if hit is not None:
        value, level = hit.value, hit.level
    else:
        await asyncio.sleep(state.args.db_ms / 1000)
        value, level = part_record(part_id), "MISS"
        with contextlib.suppress(CacheError):
            await state.cache.put(CACHE_NAMESPACE, part_id, value, ttl_seconds=state.args.ttl)
    checksum = cpu_work(round(state.hashes_per_ms * state.args.cpu_ms), value)
    if state.slow_ms > 0:
        await asyncio.sleep(state.slow_ms / 1000)
    if state.fail_ratio > 0 and random.random() < state.fail_ratio:
        metrics.requests.labels(state.args.namespace, placement.pod, "503").inc()
        return web.json_response({"error": "replica in trouble"}, status=503)
    metrics.requests.labels(state.args.namespace, placement.pod, "200").inc()
    metrics.duration.labels(state.args.namespace, placement.pod).observe(
        time.perf_counter() - started
    )
    return web.json_response(
        {"part": part_id, "checksum": checksum, "pod": placement.pod, "node": placement.node},
        headers={"X-Cache": level, "X-Pod": placement.pod},
    )


async def handle_healthz(request: web.Request) -> web.Response:
    placed = request.app[STATE].placement is not None
    return web.json_response({"ready": placed}, status=200 if placed else 503)


async def handle_metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    return web.Response(
        body=generate_latest(metrics.registry), content_type="text/plain", charset="utf-8"
    )


async def handle_slow(request: web.Request) -> web.Response:
    """The demo's fault hook: answer every request ``ms`` later and fail ``fail`` of them
    with 503 (both 0 heal)."""
    state = request.app[STATE]
    if state.token and request.headers.get("Authorization") != f"Bearer {state.token}":
        return web.json_response({"error": "token required"}, status=401)
    try:
        slow_ms = max(0.0, float(request.query.get("ms", "0")))
        fail_ratio = min(1.0, max(0.0, float(request.query.get("fail", "0"))))
    except ValueError:
        return web.json_response({"error": "ms and fail must be numbers"}, status=400)
    state.slow_ms, state.fail_ratio = slow_ms, fail_ratio
    return web.json_response({"slow_ms": slow_ms, "fail": fail_ratio})


async def find_placement(
    session: aiohttp.ClientSession, controller: str, namespace: str, name: str, port: int
) -> Placement | None:
    """This replica's pod and node from the controller's workload view, and that node's agent."""
    async with session.get(f"{controller}/v1/workloads/{namespace}/{name}") as response:
        if response.status != 200:
            return None
        workload = await response.json()
    pod = next((p for p in workload["pods"] if p["address"].endswith(f":{port}")), None)
    if pod is None:
        return None
    async with session.get(f"{controller}/v1/agents") as response:
        if response.status != 200:
            return None
        agents = (await response.json())["agents"]
    agent = next((a for a in agents if a["node"] == pod["node"]), None)
    if agent is None:
        return None
    return Placement(pod=pod["name"], node=pod["node"], cache_url=agent["endpoint"])


async def discover(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: learn the placement (or take ``--cache-url``), open the cache client."""
    state = app[STATE]
    args = state.args

    async def placed() -> None:
        if args.cache_url:
            state.placement = Placement(args.pod or f"{args.name}-{args.port}", "", args.cache_url)
        else:
            timeout = aiohttp.ClientTimeout(total=2)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                while state.placement is None:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError):
                        state.placement = await find_placement(
                            session, args.controller, args.namespace, args.name, args.port
                        )
                    if state.placement is None:
                        await asyncio.sleep(0.2)
        state.cache = AsyncCacheClient(state.placement.cache_url, state.token or None)
        log.info("placed: %s", state.placement)

    task = asyncio.create_task(placed())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if state.cache is not None:
        await state.cache.close()


def create_app(args: argparse.Namespace, token: str = "") -> web.Application:
    app = web.Application()
    app[STATE] = ServiceState(args=args, token=token, hashes_per_ms=calibrate_hashes_per_ms())
    app[METRICS] = ServiceMetrics()
    app.router.add_get("/parts/{part_id}", handle_part)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_post("/_demo/slow", handle_slow)
    app.cleanup_ctx.append(discover)
    return app


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m controller.demo.line_service",
        description="The demo's sample line service (part lookups through the node cache).",
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--namespace", default="local", help="namespace label on metrics")
    parser.add_argument("--name", default="line-service", help="workload name")
    parser.add_argument("--pod", default="", help="pod name with --cache-url (default name-port)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--cache-url", default="", help="this node's agent, e.g. http://h:9400")
    where.add_argument("--controller", default="", help="controller URL to learn the placement")
    parser.add_argument("--cpu-ms", type=float, default=1.0, help="CPU work per request (ms)")
    parser.add_argument("--db-ms", type=float, default=4.0, help="cost of a cache miss (ms)")
    parser.add_argument("--ttl", type=float, default=30.0, help="cache TTL of a part (s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = create_app(args, token=os.environ.get("LINESCALE_TOKEN", ""))
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
