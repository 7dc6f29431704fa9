"""Every dashboard panel's PromQL runs against a real Prometheus scraping a real agent and
controller, and returns series.

Why: a panel whose metric name, label or function is wrong shows "No data" in Grafana and
nothing fails; only running the queries against what the binaries really expose catches it.
The stack: an agent with a Redis L2, cache traffic (puts, hits, misses, an invalidation) and an
embedded dataplane service with one live and one dead endpoint carrying requests (so latency,
retries and ejections exist), reporting to a controller that pushed a routing table.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboard_generator import load_generator
from demand_exporter import serve_exposition
from messages import TOKEN, tuning
from services import LinescaleFactory, PrometheusFactory, RedisServer, free_port

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
RATE_INTERVAL = "1m"  # what Grafana's $__rate_interval becomes at a 1 s scrape interval, rounded up
SERVICE = "orders"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# Panels whose series cannot exist in this small stack, with the reason. The test also checks
# that each of them really returns nothing, so the list cannot outlive its reason.
_NO_POOLS = (
    "the ResourceEngine exports pools only for workloads with containers and usage history; "
    "a controller started from the command line with the local orchestrator manages none"
)
_NO_SCALED_WORKLOADS = (
    "per-workload replica and forecast gauges exist for workloads under a scaling policy; "
    "this stack's local orchestrator runs none (tests/unit/test_engine_metrics.py covers them)"
)
CANNOT_EXIST_HERE: dict[tuple[str, str], str] = {
    ("linescale-workload", "Replicas vs maxReplicas"): _NO_SCALED_WORKLOADS,
    ("linescale-workload", "Forecast error vs gate"): _NO_SCALED_WORKLOADS,
    ("linescale-workload", "Efficiency (usage / requests) by pool"): _NO_POOLS,
    ("linescale-workload", "CPU waste (requests - usage) by pool"): _NO_POOLS,
    ("linescale-workload", "Memory waste (requests - usage) by pool"): _NO_POOLS,
    ("linescale-workload", "Waste cost per hour by pool"): _NO_POOLS,
}


def _substitute(expr: str, variables: list[str]) -> str:
    """Template variables as Grafana sends them with "All" selected (allValue ``.*``)."""
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(f"${name}", ".*")
    return expr


def _panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL ready to run) for every target of every dashboard."""
    generate = load_generator()
    queries = []
    for dashboard in generate.DASHBOARDS:
        names = [v.name for v in dashboard.variables]
        for panel in dashboard.panels:
            for query in panel.queries:
                queries.append((dashboard.uid, panel.title, _substitute(query.expr, names)))
    return queries


def _variable_lookups() -> list[tuple[str, str]]:
    """(metric, label) of every ``label_values(metric, label)`` query variable."""
    lookups = []
    for dashboard in load_generator().DASHBOARDS:
        for variable in dashboard.variables:
            match = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable.query)
            assert match, variable.query
            lookups.append((match[1], match[2]))
    return lookups


def _label_values(prometheus_url: str, metric: str, label: str) -> list[str]:
    """What Grafana's ``label_values(metric, label)`` asks Prometheus for."""
    query = urllib.parse.urlencode({"match[]": metric})
    url = f"{prometheus_url}/api/v1/label/{label}/values?{query}"
    with urllib.request.urlopen(url, timeout=5) as response:
        values: list[str] = json.loads(response.read())["data"]
    return values


def _instant(prometheus_url: str, promql: str) -> tuple[list[dict[str, Any]], str | None]:
    """The result vector, or the error Prometheus gave for an invalid query."""
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        exc.close()
        return [], str(body.get("error", exc))
    if payload.get("status") != "success":
        return [], str(payload.get("error"))
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result, None


def _request(method: str, url: str, body: bytes | None = None, *, auth: bool = False) -> int:
    request = urllib.request.Request(url, data=body, method=method, headers=AUTH if auth else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _drive_traffic(agent_url: str, service_port: int) -> None:
    """Cache puts, hits, misses and an invalidation; dataplane requests over both endpoints."""
    for n in range(20):
        _request("PUT", f"{agent_url}/v1/cache/parts/key-{n}?ttl=300", b"x" * 100, auth=True)
        _request("GET", f"{agent_url}/v1/cache/parts/key-{n}")
        _request("GET", f"{agent_url}/v1/cache/parts/absent-{n}")
    _request("DELETE", f"{agent_url}/v1/cache/parts/key-0", auth=True)
    for _ in range(40):
        _request("GET", f"http://127.0.0.1:{service_port}/work")


def test_every_panel_query_is_valid_and_returns_series(
    prometheus_factory: PrometheusFactory,
    linescale_factory: LinescaleFactory,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    backend = serve_exposition(lambda: b"ok\n")
    dead_endpoint = f"127.0.0.1:{free_port()}"  # nothing listens: failures, retries, ejection
    service_port = free_port()
    config = tmp_path / "agent.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "agent": {
                    "dataplane": {
                        "services": [
                            {
                                "name": SERVICE,
                                "listen": f"127.0.0.1:{service_port}",
                                "policy": "round_robin",
                                "endpoints": [backend.address, dead_endpoint],
                            }
                        ]
                    }
                }
            }
        )
    )
    env = {
        "LINESCALE_TOKEN": TOKEN,
        "LINESCALE_AGENT__REPORT_INTERVAL_SECONDS": "0.5",
        "LINESCALE_AGENT__COLLECTOR__INTERVAL_SECONDS": "1",
        "LINESCALE_CONTROLLER__RECONCILE_INTERVAL_SECONDS": "0.5",
        "LINESCALE_CONTROLLER__RESOURCE_INTERVAL_SECONDS": "1",
        "LINESCALE_CONTROLLER__BALANCING_INTERVAL_SECONDS": "0.5",
        "LINESCALE_CONTROLLER__SCALING_INTERVAL_SECONDS": "0.5",
        "LINESCALE_CONTROLLER__PERFORMANCE_INTERVAL_SECONDS": "0.5",
    }
    try:
        controller = linescale_factory("controller", env=env)
        agent = linescale_factory(
            "agent",
            [
                "--node", "node-1", "--zone", "a", "--controller", controller.url,
                "--redis", redis_server.url, "--config", str(config),
            ],
            env=env,
        )  # fmt: skip
        prometheus = prometheus_factory(
            {"linescale-agent": [agent.address], "linescale-controller": [controller.address]}
        )
        prometheus.wait_for_targets_up("linescale-agent")
        prometheus.wait_for_targets_up("linescale-controller")
        routing = {
            "version": 1,
            "generated_at": 0,
            "services": [
                {
                    "name": "line-telemetry",
                    "endpoints": [{"address": "10.0.0.7:8080", "zone": "a"}],
                    "zone_shares": {"a": {"a": 1.0}},
                }
            ],
        }
        assert (
            _request("PUT", f"{controller.url}/v1/routing", json.dumps(routing).encode(), auth=True)
            == 200
        )
        # A held TuningSet starts the PerformanceEngine's tuning, whose steps are decisions.
        held = tuning(collector_interval_seconds=1)
        assert (
            _request("PUT", f"{controller.url}/v1/tuning", json.dumps(held).encode(), auth=True)
            == 200
        )

        queries = _panel_queries()
        deadline = time.monotonic() + 45
        while True:
            _drive_traffic(agent.url, service_port)
            results = {
                (uid, title, expr): _instant(prometheus.url, expr) for uid, title, expr in queries
            }
            invalid = {key: err for key, (_, err) in results.items() if err is not None}
            empty = {
                key
                for key, (series, err) in results.items()
                if err is None and not series and key[:2] not in CANNOT_EXIST_HERE
            }
            if invalid or not empty or time.monotonic() > deadline:
                break
            time.sleep(1)
        empty_variables = [v for v in _variable_lookups() if not _label_values(prometheus.url, *v)]
    finally:
        backend.close()

    assert not invalid, f"invalid PromQL: {invalid}"
    assert not empty, "panels with no series: " + "; ".join(
        f"{u} / {t}: {e}" for u, t, e in sorted(empty)
    )
    assert not empty_variables, f"template variables with no values: {empty_variables}"
    exempt_with_series = [
        key[:2] for key, (series, _) in results.items() if key[:2] in CANNOT_EXIST_HERE and series
    ]
    assert not exempt_with_series, (
        f"remove from CANNOT_EXIST_HERE, they have series now: {exempt_with_series}"
    )
    titles = {(uid, title) for uid, title, _ in queries}
    assert set(CANNOT_EXIST_HERE) <= titles, "CANNOT_EXIST_HERE names a panel that does not exist"


def test_substitution_leaves_no_template_variable() -> None:
    """Every ``$`` in a panel query is a variable the test knows how to fill in."""
    leftovers = [
        (uid, title, expr) for uid, title, expr in _panel_queries() if re.search(r"\$", expr)
    ]
    assert leftovers == []
