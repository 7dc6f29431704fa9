"""Benchmark: latency the embedded dataplane adds, against direct calls and HAProxy.

Starts on free loopback ports: one backend (aiohttp, answers 64 bytes at once), an agent
(``python -m agent``) whose config has a static dataplane service to that backend, and an
HAProxy 2.6 (Debian package, ``-db``) with a static config to the same backend. Then a
sync client on one kept-alive connection sends a steady ``--rate`` requests/s for
``--seconds`` to each target in turn (direct, embedded proxy, HAProxy) and prints p50/p99,
and the added latency (via - direct) with its ratio. Goal, ours: p50 < 0.5 ms, p99 < 1 ms added.

    .venv/bin/python testing/bench/bench_dataplane_forwarding.py --rate 1000 --seconds 20

The backend and agent helpers here are shared by the other dataplane benchmarks.
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.processes import free_port

from bench_support import paced, percentile, wait_healthy

# Backends in one process, one listener per port: each answers after a uniform random delay
# in [low, high] seconds, or after the delay set by ``GET /__delay?seconds=S`` on its port
# (``seconds=-1`` restores the random delay).
BACKENDS = """
import asyncio, random, sys
from aiohttp import web

ports = [int(port) for port in sys.argv[1].split(",")]
low, high = float(sys.argv[2]), float(sys.argv[3])
fixed = {}

def make(port):
    async def handle(request):
        if request.path == "/__delay":
            seconds = float(request.query["seconds"])
            if seconds < 0:
                fixed.pop(port, None)
            else:
                fixed[port] = seconds
            return web.Response(text="ok")
        delay = fixed.get(port, random.uniform(low, high) if high > 0 else 0.0)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(body=b"x" * 64)
    return handle

async def main():
    for port in ports:
        runner = web.ServerRunner(web.Server(make(port), access_log=None))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


def wait_port(port: int, within_seconds: float = 20.0) -> None:
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def start_backends(ports: Sequence[int], low: float, high: float) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-c", BACKENDS, ",".join(map(str, ports)), str(low), str(high)]
    )
    for port in ports:
        wait_port(port)
    return process


def set_backend_delay(port: int, seconds: float) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.request("GET", f"/__delay?seconds={seconds}")
    connection.getresponse().read()
    connection.close()


def start_agent(
    workdir: Path, services: list[dict[str, Any]]
) -> tuple[subprocess.Popen[bytes], str]:
    """An agent with static dataplane services (no controller); returns it and its URL."""
    port = free_port()
    config = workdir / f"agent-{port}.yaml"
    config.write_text(
        yaml.safe_dump(
            {"agent": {"cache": {"enabled": False}, "dataplane": {"services": services}}}
        )
    )
    env = {
        **os.environ,
        "LINESCALE_TOKEN": secrets.token_urlsafe(24),
        "LINESCALE_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "--config", str(config),
         "--listen", f"127.0.0.1:{port}", "--node", "bench", "--zone", "a"],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url)
    return process, url


def start_haproxy(
    workdir: Path, frontend_port: int, backend_ports: Sequence[int]
) -> subprocess.Popen[bytes]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    servers = "".join(
        f"    server s{index} 127.0.0.1:{port}\n" for index, port in enumerate(backend_ports)
    )
    config = workdir / "haproxy.cfg"
    config.write_text(
        "global\n    maxconn 4096\n\n"
        "defaults\n    mode http\n    option http-keep-alive\n    timeout connect 1s\n"
        "    timeout client 30s\n    timeout server 30s\n\n"
        f"frontend fe\n    bind 127.0.0.1:{frontend_port}\n    default_backend be\n\n"
        f"backend be\n    balance roundrobin\n{servers}"
    )
    subprocess.run([binary, "-c", "-q", "-f", str(config)], check=True)
    process = subprocess.Popen([binary, "-f", str(config), "-db"], stdout=subprocess.DEVNULL)
    wait_port(frontend_port)
    return process


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def steady_latencies(port: int, rate: float, seconds: float) -> list[float]:
    """Latency of each request at a steady rate over one kept-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(200):  # warm-up: connections, EWMA, pools
        connection.request("GET", "/warm")
        connection.getresponse().read()

    def forward() -> None:
        connection.request("GET", "/item?id=1")
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status

    samples = paced(rate, seconds, forward)
    connection.close()
    return sorted(samples)


@dataclass(frozen=True, slots=True)
class Latency:
    """One target's latency at the steady rate, in seconds."""

    p50: float
    p99: float
    samples: int


DIRECT, EMBEDDED, HAPROXY = "direct", "embedded proxy", "haproxy 2.6"


def measure(rate: float, seconds: float, *, with_haproxy: bool = True) -> dict[str, Latency]:
    """Latency of direct calls, through the embedded proxy and (optionally) through HAProxy,
    each at ``rate`` requests/s for ``seconds``, keyed by target name in that order."""
    workdir = Path(tempfile.mkdtemp(prefix="linescale-bench-"))
    backend_port, proxy_port, haproxy_port = free_port(), free_port(), free_port()
    processes = [start_backends([backend_port], 0.0, 0.0)]
    try:
        service = {
            "name": "bench",
            "listen": f"127.0.0.1:{proxy_port}",
            "endpoints": [f"127.0.0.1:{backend_port}"],
        }
        processes.append(start_agent(workdir, [service])[0])
        wait_port(proxy_port)
        targets = [(DIRECT, backend_port), (EMBEDDED, proxy_port)]
        if with_haproxy:
            processes.append(start_haproxy(workdir, haproxy_port, [backend_port]))
            targets.append((HAPROXY, haproxy_port))
        results = {}
        for name, port in targets:
            samples = steady_latencies(port, rate, seconds)
            results[name] = Latency(
                percentile(samples, 0.5), percentile(samples, 0.99), len(samples)
            )
        return results
    finally:
        stop(processes)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="window per target")
    parser.add_argument(
        "--without-haproxy",
        action="store_true",
        help="measure direct and embedded only (quicker A/B runs of the embedded proxy)",
    )
    args = parser.parse_args()
    results = measure(args.rate, args.seconds, with_haproxy=not args.without_haproxy)
    print(f"steady {args.rate:g} req/s for {args.seconds:g} s per target, one connection, "
          f"64-byte answers, {os.cpu_count()} CPUs")  # fmt: skip
    for name, latency in results.items():
        figures = f"p50 {latency.p50 * 1e3:7.3f} ms   p99 {latency.p99 * 1e3:7.3f} ms"
        print(f"{name:15s} {figures}   (n={latency.samples})")
    direct = results[DIRECT]
    for name in (EMBEDDED, HAPROXY):
        if name not in results:
            continue
        p50, p99 = results[name].p50, results[name].p99
        print(
            f"added by {name:15s} p50 {(p50 - direct.p50) * 1e3:7.3f} ms "
            f"({p50 / direct.p50:4.2f}x direct)   p99 {(p99 - direct.p99) * 1e3:7.3f} ms "
            f"({p99 / direct.p99:4.2f}x direct)"
        )


if __name__ == "__main__":
    main()
