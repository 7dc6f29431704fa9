"""A real Prometheus scrapes a running agent and controller; we read the metrics back."""

from __future__ import annotations

import time

import pytest
from prometheus_api_client import PrometheusConnect

from messages import TOKEN
from services import LinescaleFactory, PrometheusFactory


def value_of(prom: PrometheusConnect, promql: str) -> dict[str, float]:
    """Instant query; maps each series' ``component``/``outcome`` label (or '') to its value."""
    result = prom.custom_query(promql)
    return {
        series["metric"].get("component", series["metric"].get("outcome", "")): float(
            series["value"][1]
        )
        for series in result
    }


@pytest.mark.services
def test_prometheus_scrapes_agent_and_controller_metrics(
    prometheus_factory: PrometheusFactory, linescale_factory: LinescaleFactory
) -> None:
    env = {"LINESCALE_TOKEN": TOKEN, "LINESCALE_AGENT__REPORT_INTERVAL_SECONDS": "0.5"}
    controller = linescale_factory("controller", env=env)
    agent = linescale_factory(
        "agent", ["--node", "node-1", "--zone", "a", "--controller", controller.url], env=env
    )
    prometheus = prometheus_factory(
        {"linescale-agent": [agent.address], "linescale-controller": [controller.address]}
    )
    prometheus.wait_for_targets_up("linescale-agent")
    prometheus.wait_for_targets_up("linescale-controller")

    with PrometheusConnect(url=prometheus.url, disable_ssl=True) as prom:
        assert value_of(prom, "linescale_build_info") == {"agent": 1.0, "controller": 1.0}
        deadline = time.monotonic() + 20
        while True:
            sent = value_of(prom, 'linescale_agent_reports_total{outcome="sent"}').get("sent", 0)
            fresh = value_of(prom, 'linescale_controller_agents{state="fresh"}')
            if (sent > 0 and fresh.get("", 0) == 1) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert sent > 0
        assert fresh == {"": 1.0}
        memory = value_of(prom, 'process_resident_memory_bytes{job="linescale-agent"}')
        assert 0 < memory[""] < 500 * 2**20

        # The observation side: node, top processes, and bottleneck gauges, read back.
        assert value_of(prom, "linescale_node_cpus")[""] >= 1
        assert value_of(prom, "linescale_node_memory_available_bytes")[""] > 0
        processes = prom.custom_query("linescale_process_resident_memory_bytes")
        assert 1 <= len(processes) <= 2 * 20  # top 20 by CPU and by RSS, at most
        assert all(int(p["metric"]["pid"]) > 0 for p in processes)
        bottlenecks = prom.custom_query("linescale_bottleneck_active")
        assert len(bottlenecks) == 5 * 3 * 2
