"""The agent's observation surface over replayed samples: findings on /v1/bottlenecks, in the
report and in /metrics; pushed thresholds and interval take effect without a restart."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from agent.app import AGENT, AgentDeps, build_report, create_app
from agent.observe.model import Sample
from shared.config import load_settings

from messages import TOKEN, tuning
from observe_samples import load_scenarios

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Replay:
    """A sample source that replays a seed scenario, then repeats its last sample advanced
    in time (so the condition persists)."""

    def __init__(self, samples: tuple[Sample, ...], step: float) -> None:
        self._samples: Iterator[Sample] = iter(samples)
        self._last = samples[-1]
        self._step = step
        self.calls = itertools.count()

    def sample(self) -> Sample:
        next(self.calls)
        try:
            self._last = next(self._samples)
        except StopIteration:
            from dataclasses import replace

            self._last = replace(self._last, timestamp=self._last.timestamp + self._step)
        return self._last


def scenario(name: str) -> Any:
    return next(s for s in load_scenarios() if s.name == name)


@pytest.fixture
async def saturated(aiohttp_client: Any) -> TestClient:
    seed = scenario("cpu-saturated-by-one-pod")
    settings = load_settings(
        environ={},
        overrides={
            "token": TOKEN,
            "agent": {
                "node": seed.node_name,
                "zone": "a",
                "collector": {"interval_seconds": 0.5},
            },
        },
    )
    deps = AgentDeps(sample_source=Replay(seed.samples, step=15.0))
    return await aiohttp_client(create_app(settings, deps))  # type: ignore[no-any-return]


async def findings_of(client: TestClient) -> list[dict[str, Any]]:
    return (await (await client.get("/v1/bottlenecks")).json())["findings"]  # type: ignore[no-any-return]


async def wait_for(client: TestClient, present: bool, rule_prefix: str = "cpu_") -> list[Any]:
    for _ in range(40):
        found = [f for f in await findings_of(client) if f["rule"].startswith(rule_prefix)]
        if bool(found) == present:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"cpu findings present={not present} after 4 s")


async def test_findings_are_served_reported_and_exported(saturated: TestClient) -> None:
    found = await wait_for(saturated, present=True)
    assert {f["resource"] for f in found} == {"cpu"}
    assert any(f["kind"] == "saturation" for f in found)
    body = await (await saturated.get("/v1/bottlenecks")).json()
    assert body["thresholds"]["cpu_psi_some_percent"]["warning"] == 25.0
    report = build_report(saturated.app[AGENT], 0)
    assert {f.rule for f in report.findings} >= {f["rule"] for f in found}
    metrics = await (await saturated.get("/metrics")).text()
    assert 'linescale_bottleneck_active{kind="saturation",resource="cpu",severity=' in metrics
    assert "linescale_collector_samples_total" in metrics


async def test_pushed_thresholds_take_effect_without_restart(saturated: TestClient) -> None:
    await wait_for(saturated, present=True)
    lenient = {
        name: {"warning": 1000.0, "critical": 2000.0}
        for name in ("cpu_psi_some_percent", "cpu_runqueue_ratio", "cpu_utilization_percent")
    }
    response = await saturated.put(
        "/v1/tuning",
        json=tuning(collector_interval_seconds=0.5, bottlenecks=lenient),
        headers=AUTH,
    )
    assert response.status == 200
    assert await wait_for(saturated, present=False) == []
    body = await (await saturated.get("/v1/bottlenecks")).json()
    assert body["thresholds"]["cpu_runqueue_ratio"]["warning"] == 1000.0


async def test_pushed_interval_changes_the_sampling_rate(saturated: TestClient) -> None:
    source = saturated.app[AGENT].deps.sample_source
    assert isinstance(source, Replay)
    await saturated.put(
        "/v1/tuning", json=tuning(version=2, collector_interval_seconds=3600), headers=AUTH
    )
    await asyncio.sleep(0.6)  # the pass already sleeping finishes at the old interval
    before = next(source.calls)
    await asyncio.sleep(1.0)
    assert next(source.calls) == before + 1  # only our own two reads: no sample in between


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        pytest.param("/v1/processes/1/profile", {}, 401, id="no-token-401"),
        pytest.param("/v1/processes/999999999/profile", AUTH, 404, id="missing-pid-404"),
        pytest.param("/v1/processes/1/profile?seconds=-1", AUTH, 400, id="bad-seconds-400"),
        pytest.param("/v1/processes/abc/profile", AUTH, 400, id="pid-not-a-number-400"),
    ],
)
async def test_process_profile_refusals(
    saturated: TestClient, path: str, headers: dict[str, str], status: int
) -> None:
    response = await saturated.get(path, headers=headers)
    assert response.status == status
    assert (await response.json())["error"]
