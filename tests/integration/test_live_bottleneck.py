"""Live: more busy processes than cores make the agent report CPU saturation naming them,
and the finding clears after they stop."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent.app import create_app
from shared.config import load_settings

from messages import TOKEN

INTERVAL = 1.0


@pytest.fixture
def burners() -> Iterator[list[subprocess.Popen[bytes]]]:
    count = 2 * (os.cpu_count() or 1) + 1
    processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            process.kill()
        for process in processes:
            process.wait()


async def cpu_findings(client: TestClient) -> list[dict[str, Any]]:
    body = await (await client.get("/v1/bottlenecks")).json()
    return [f for f in body["findings"] if f["resource"] == "cpu" and f["kind"] == "saturation"]


async def test_cpu_saturation_names_the_burning_processes_and_clears(
    aiohttp_client: Any, burners: list[subprocess.Popen[bytes]]
) -> None:
    settings = load_settings(
        environ={},
        overrides={
            "token": TOKEN,
            "agent": {
                "node": "live-node",
                "zone": "a",
                "collector": {"interval_seconds": INTERVAL, "top_processes": 20},
            },
        },
    )
    client: TestClient = await aiohttp_client(create_app(settings))
    burner_pids = {process.pid for process in burners}

    started = time.monotonic()
    named: set[int] = set()
    while time.monotonic() - started < 2 * INTERVAL + 1.0:  # two intervals, plus start-up
        for finding in await cpu_findings(client):
            named |= {c["pid"] for c in finding["culprits"]} & burner_pids
        if named:
            break
        await asyncio.sleep(0.2)
    assert named, f"no CPU saturation finding naming {sorted(burner_pids)}"

    metrics = await (await client.get("/metrics")).text()
    assert 'linescale_bottleneck_active{kind="saturation",resource="cpu"' in metrics

    for process in burners:
        process.kill()
    for process in burners:
        process.wait()
    for _ in range(30):  # clearing takes clear_samples clean intervals; allow 15 s
        if not await cpu_findings(client):
            break
        await asyncio.sleep(0.5)
    assert await cpu_findings(client) == []
