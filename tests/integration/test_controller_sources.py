"""The controller with a real Prometheus as its metrics source: healthy while it answers,
unhealthy (in /v1/status and in a metric) while it is down, and healthy again after."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from messages import TOKEN
from services import LinescaleFactory, PrometheusFactory
from waiting import eventually


def status_of(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/v1/status", timeout=5) as response:
        status: dict[str, Any] = json.load(response)
        return status


@pytest.mark.services
def test_prometheus_outage_is_visible_and_recovers(
    prometheus_factory: PrometheusFactory, linescale_factory: LinescaleFactory
) -> None:
    env = {"LINESCALE_TOKEN": TOKEN, "LINESCALE_CONTROLLER__RECONCILE_INTERVAL_SECONDS": "0.5"}
    agent = linescale_factory("agent", ["--node", "n1", "--zone", "a"], env=env)
    prometheus = prometheus_factory({"linescale-agent": [agent.address]})
    controller = linescale_factory("controller", ["--prometheus", prometheus.url], env=env)

    def source_healthy() -> bool:
        return bool(status_of(controller.url)["source"]["healthy"])

    eventually(source_healthy, within=15)
    assert status_of(controller.url)["source"]["kind"] == "PrometheusSource"

    prometheus.process.stop()
    eventually(lambda: not source_healthy(), within=15)
    source = status_of(controller.url)["source"]
    assert source["detail"]
    with urllib.request.urlopen(f"{controller.url}/metrics", timeout=5) as response:
        assert 'linescale_controller_source_healthy{source="PrometheusSource"} 0.0' in (
            response.read().decode()
        )

    prometheus.restart()
    eventually(source_healthy, within=20)
