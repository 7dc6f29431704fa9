"""Linescale's Grafana dashboards, as code: the one source of the committed ``*.json`` files.

Why a generator: five dashboards share a datasource variable, a grid layout and the same
conventions (stable UIDs, a unit on every panel, every target on ``${datasource}``); writing
them by hand drifts. ``python dashboards/generate.py`` rewrites the JSON files next to it;
``--check`` exits 1 when a committed file differs from what this module renders (CI and
``tests/unit/test_dashboards.py`` both compare).

Only metrics the product exposes are used (``shared/metric_names.py`` and
``agent/observe/exposition.py``); what a dashboard would want but no metric carries is listed
in ``MISSING_METRICS`` instead of being invented.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

SCHEMA_VERSION: Final = 42  # the classic dashboard model as Grafana 12 saves it
DATASOURCE_VARIABLE: Final = "datasource"
DATASOURCE_REF: Final[Mapping[str, str]] = {
    "type": "prometheus",
    "uid": f"${{{DATASOURCE_VARIABLE}}}",
}
RATE: Final = "$__rate_interval"
PANEL_WIDTH: Final = 12
PANEL_HEIGHT: Final = 8
GRID_COLUMNS: Final = 24

# What the dashboards would show if a metric carried it (reported, not invented).
MISSING_METRICS: Final[Mapping[str, str]] = {
    "workload demand / forecast values": (
        "no per-workload metric: the ScalabilityEngine's inputs and forecasts are only in "
        "/v1/decisions and /v1/recommendations"
    ),
    "per-workload recommendations": (
        "right-sizing is exported per pool only (linescale_resource_efficiency_ratio, "
        "linescale_resource_waste), not per workload or container"
    ),
}


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL target; ``legend`` is Grafana's legendFormat."""

    expr: str
    legend: str


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel; ``unit`` is a Grafana unit id (``fieldConfig.defaults.unit``)."""

    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""
    kind: str = "timeseries"


@dataclass(frozen=True, slots=True)
class Variable:
    """A multi-value query variable, always used in PromQL as ``label=~"$name"``."""

    name: str
    label: str
    query: str  # label_values(...) for the Prometheus datasource


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[Variable, ...] = ()


def _panel(
    title: str, unit: str, *queries: Query, description: str = "", kind: str = "timeseries"
) -> Panel:
    return Panel(title, unit, tuple(queries), description, kind)


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def _quantile(q: float, bucket: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket}{selector}[{RATE}])))"


# An agent's own process metrics: prometheus-client's process_* joined on the agent's build info,
# so the query does not depend on what the operator named the scrape job.
_AGENT_JOIN: Final = '* on (job, instance) group_left () linescale_build_info{component="agent"}'

FLEET: Final = Dashboard(
    uid="linescale-fleet",
    title="Linescale / Fleet overview",
    description="Agents, the controller's engines, their decisions and errors, and leadership.",
    panels=(
        _panel(
            "Agents by state (controller's registry)",
            "short",
            _q("sum by (state) (linescale_controller_agents)", "{{state}}"),
            description="fresh: reported within agent_stale_after_seconds; stale: not pushed to",
        ),
        _panel(
            "Agents scraped",
            "short",
            _q('count(linescale_build_info{component="agent"})', "agents"),
            kind="stat",
        ),
        _panel(
            "Leader",
            "short",
            _q("max by (instance) (linescale_controller_leader)", "{{instance}}"),
            description="1 on the replica holding the Lease; no 1 anywhere: nothing acts",
        ),
        _panel(
            "Decisions by engine and reason",
            "ops",
            _q(
                f"sum by (engine, reason) (rate(linescale_decisions_total[{RATE}]))",
                "{{engine}} {{reason}}",
            ),
        ),
        _panel(
            "Reconcile error ratio by engine",
            "percentunit",
            _q(
                f'sum by (engine) (rate(linescale_reconcile_total{{result="error"}}[{RATE}]))'
                f" / sum by (engine) (rate(linescale_reconcile_total[{RATE}]))"
                f" or sum by (engine) (rate(linescale_reconcile_total[{RATE}])) * 0",
                "{{engine}}",
            ),
            description="error outcomes / all outcomes; 0 when an engine has had no error",
        ),
        _panel(
            "Time since an engine's last successful pass",
            "s",
            _q("time() - max by (engine) (linescale_last_success_timestamp_seconds)", "{{engine}}"),
        ),
        _panel(
            "Agent reports received",
            "reqps",
            _q(
                f"sum by (outcome) (rate(linescale_controller_reports_total[{RATE}]))",
                "{{outcome}}",
            ),
        ),
        _panel(
            "Pushes to agents",
            "ops",
            _q(
                f"sum by (kind, outcome) (rate(linescale_controller_pushes_total[{RATE}]))",
                "{{kind}} {{outcome}}",
            ),
        ),
    ),
)

_ENGINE: Final = Variable("engine", "Engine", "label_values(linescale_reconcile_total, engine)")
_ENGINE_SELECTOR: Final = '{engine=~"$engine"}'

WORKLOAD: Final = Dashboard(
    uid="linescale-workload",
    title="Linescale / Workloads",
    description=(
        "What the engines decide for workloads and how they reconcile: replicas against "
        "maxReplicas and the forecast error against its gate per workload. Per-workload demand "
        "and forecast values are in /v1/decisions, not metrics."
    ),
    variables=(_ENGINE,),
    panels=(
        _panel(
            "Replicas vs maxReplicas",
            "short",
            _q("max by (namespace, workload) (linescale_workload_replicas)", "{{workload}}"),
            _q(
                "max by (namespace, workload) (linescale_workload_max_replicas)",
                "{{workload}} max",
            ),
        ),
        _panel(
            "Forecast error vs gate",
            "percent",
            _q(
                "max by (namespace, workload) (linescale_forecast_error_percent)",
                "{{workload}} error",
            ),
            _q(
                "max by (namespace, workload) (linescale_forecast_error_gate_percent)",
                "{{workload}} gate",
            ),
        ),
        _panel(
            "Decisions by reason",
            "ops",
            _q(
                "sum by (engine, reason) "
                f"(rate(linescale_decisions_total{_ENGINE_SELECTOR}[{RATE}]))",
                "{{engine}} {{reason}}",
            ),
        ),
        _panel(
            "Reconcile outcomes",
            "ops",
            _q(
                "sum by (engine, result) "
                f"(rate(linescale_reconcile_total{_ENGINE_SELECTOR}[{RATE}]))",
                "{{engine}} {{result}}",
            ),
            description="acted, unchanged, skipped or error per workload and pass",
        ),
        _panel(
            "Reconcile pass duration p95",
            "s",
            _q(
                _quantile(
                    0.95, "linescale_reconcile_duration_seconds_bucket", "engine", _ENGINE_SELECTOR
                ),
                "{{engine}}",
            ),
        ),
        _panel(
            "Time since last successful pass",
            "s",
            _q(
                "time() - max by (engine) "
                f"(linescale_last_success_timestamp_seconds{_ENGINE_SELECTOR})",
                "{{engine}}",
            ),
        ),
        _panel(
            "Efficiency (usage / requests) by pool",
            "percentunit",
            _q("linescale_resource_efficiency_ratio", "{{pool}} {{resource}}"),
            description="the ResourceEngine's goal is above 85 %",
        ),
        _panel(
            "CPU waste (requests - usage) by pool",
            "short",
            _q('linescale_resource_waste{unit="cores"}', "{{pool}}"),
            description="cores",
        ),
        _panel(
            "Memory waste (requests - usage) by pool",
            "bytes",
            _q('linescale_resource_waste{unit="bytes"}', "{{pool}}"),
        ),
        _panel(
            "Waste cost per hour by pool",
            "currencyUSD",
            _q('linescale_resource_waste{unit="per_hour"}', "{{pool}}"),
            description="at controller.node_price_per_hour",
        ),
    ),
)

_SERVICE: Final = Variable(
    "service", "Service", "label_values(linescale_dataplane_requests_total, service)"
)
_SERVICE_SELECTOR: Final = '{service=~"$service"}'

ROUTING: Final = Dashboard(
    uid="linescale-routing",
    title="Linescale / Routing",
    description=(
        "The routing table the controller holds (zone shares, endpoint states) and the "
        "agents' embedded dataplanes per service and upstream endpoint."
    ),
    variables=(_SERVICE,),
    panels=(
        _panel(
            "Zone shares by caller zone",
            "percentunit",
            _q(
                f"max by (service, caller_zone, upstream_zone) "
                f"(linescale_routing_zone_share{_SERVICE_SELECTOR})",
                "{{service}} {{caller_zone}} -> {{upstream_zone}}",
            ),
        ),
        _panel(
            "Endpoints by state",
            "short",
            _q(
                f"max by (service, state) (linescale_routing_endpoints{_SERVICE_SELECTOR})",
                "{{service}} {{state}}",
            ),
        ),
        _panel(
            "Requests by endpoint and code class",
            "reqps",
            _q(
                "sum by (service, endpoint, code_class) "
                f"(rate(linescale_dataplane_requests_total{_SERVICE_SELECTOR}[{RATE}]))",
                "{{service}} {{endpoint}} {{code_class}}",
            ),
        ),
        _panel(
            "Latency p99 by endpoint",
            "s",
            _q(
                _quantile(
                    0.99,
                    "linescale_dataplane_request_duration_seconds_bucket",
                    "service, endpoint",
                    _SERVICE_SELECTOR,
                ),
                "{{service}} {{endpoint}}",
            ),
        ),
        _panel(
            "Latency p50 by endpoint",
            "s",
            _q(
                _quantile(
                    0.5,
                    "linescale_dataplane_request_duration_seconds_bucket",
                    "service, endpoint",
                    _SERVICE_SELECTOR,
                ),
                "{{service}} {{endpoint}}",
            ),
        ),
        _panel(
            "Peak-EWMA latency by endpoint",
            "s",
            _q(
                f"max by (service, endpoint) (linescale_dataplane_ewma_seconds{_SERVICE_SELECTOR})",
                "{{service}} {{endpoint}}",
            ),
            description="the cost the p2c balancer compares (times in-flight + 1)",
        ),
        _panel(
            "In flight by endpoint",
            "short",
            _q(
                f"sum by (service, endpoint) (linescale_dataplane_in_flight{_SERVICE_SELECTOR})",
                "{{service}} {{endpoint}}",
            ),
        ),
        _panel(
            "Ejections",
            "short",
            _q(
                "sum by (service) "
                f"(increase(linescale_dataplane_ejections_total{_SERVICE_SELECTOR}[{RATE}]))",
                "{{service}}",
            ),
            description="endpoints ejected by passive health (5 failures within 1 s)",
        ),
        _panel(
            "Retries by outcome",
            "ops",
            _q(
                "sum by (service, outcome) "
                f"(rate(linescale_dataplane_retries_total{_SERVICE_SELECTOR}[{RATE}]))",
                "{{service}} {{outcome}}",
            ),
        ),
        _panel(
            "Rejected (concurrency limit)",
            "reqps",
            _q(
                "sum by (service, reason) "
                f"(rate(linescale_dataplane_rejected_total{_SERVICE_SELECTOR}[{RATE}]))",
                "{{service}} {{reason}}",
            ),
        ),
    ),
)

_NAMESPACE: Final = Variable(
    "namespace", "Namespace", "label_values(linescale_cache_requests_total, namespace)"
)
_NS: Final = 'namespace=~"$namespace"'

CACHE: Final = Dashboard(
    uid="linescale-cache",
    title="Linescale / Cache",
    description="The node-local cache: L1 (W-TinyLFU in each agent) and the shared Redis L2.",
    variables=(_NAMESPACE,),
    panels=(
        _panel(
            "Hit ratio by level and namespace",
            "percentunit",
            _q(
                "sum by (level, namespace) "
                f'(rate(linescale_cache_requests_total{{result="hit", {_NS}}}[{RATE}]))'
                " / sum by (level, namespace) "
                f"(rate(linescale_cache_requests_total{{{_NS}}}[{RATE}]))",
                "{{level}} {{namespace}}",
            ),
            description="hits / lookups answered at that level (stale hits count as not hit)",
        ),
        _panel(
            "Lookups by level and result",
            "ops",
            _q(
                f"sum by (level, result) (rate(linescale_cache_requests_total{{{_NS}}}[{RATE}]))",
                "{{level}} {{result}}",
            ),
        ),
        _panel(
            "L1 bytes by namespace",
            "bytes",
            _q(f"sum by (namespace) (linescale_cache_bytes{{{_NS}}})", "{{namespace}}"),
        ),
        _panel(
            "L1 entries by namespace",
            "short",
            _q(f"sum by (namespace) (linescale_cache_entries{{{_NS}}})", "{{namespace}}"),
        ),
        _panel(
            "Evictions by namespace",
            "ops",
            _q(
                f"sum by (namespace) (rate(linescale_cache_evictions_total{{{_NS}}}[{RATE}]))",
                "{{namespace}}",
            ),
        ),
        _panel(
            "Invalidations by source and kind",
            "ops",
            _q(
                f"sum by (source, kind) (rate(linescale_cache_invalidations_total[{RATE}]))",
                "{{source}} {{kind}}",
            ),
            description="local, remote (another node's write) or channel_lost (L1 flushed)",
        ),
        _panel(
            "L2 (Redis) available",
            "short",
            _q("min by (instance) (linescale_cache_l2_available)", "{{instance}}"),
            description="0 while Redis is away: the cache serves from L1 alone",
        ),
        _panel(
            "L2 errors",
            "ops",
            _q(
                f"sum by (instance) (rate(linescale_cache_l2_errors_total[{RATE}]))", "{{instance}}"
            ),
        ),
        _panel(
            "Lookup latency p99 by level",
            "s",
            _q(
                _quantile(0.99, "linescale_cache_lookup_duration_seconds_bucket", "level"),
                "{{level}}",
            ),
        ),
    ),
)

NODE: Final = Dashboard(
    uid="linescale-node",
    title="Linescale / Nodes",
    description=(
        "USE method per node from the agents: utilisation, saturation (PSI), bottlenecks, "
        "top processes, and the agent's own overhead."
    ),
    panels=(
        _panel(
            "Open bottleneck findings",
            "short",
            _q(
                "sum by (resource, kind, severity) (linescale_bottleneck_active)",
                "{{resource}} {{kind}} {{severity}}",
            ),
        ),
        _panel(
            "CPU utilisation",
            "percentunit",
            _q(
                "sum by (instance) "
                f'(rate(linescale_node_cpu_seconds_total{{mode!~"idle|iowait|steal"}}[{RATE}]))'
                " / on (instance) sum by (instance) (linescale_node_cpus)",
                "{{instance}}",
            ),
        ),
        _panel(
            "Load per CPU (1 min)",
            "short",
            _q("linescale_node_load1 / on (instance) linescale_node_cpus", "{{instance}}"),
            description="saturation: above 1 means runnable tasks wait",
        ),
        _panel(
            "Memory available",
            "percentunit",
            _q(
                "linescale_node_memory_available_bytes"
                " / on (instance) linescale_node_memory_total_bytes",
                "{{instance}}",
            ),
        ),
        _panel(
            "Pressure (PSI some, avg10)",
            "percent",
            _q('linescale_node_pressure_avg10_percent{degree="some"}', "{{instance}} {{resource}}"),
        ),
        _panel(
            "Pressure stall rate (PSI some)",
            "percentunit",
            _q(
                f"rate(linescale_node_pressure_waiting_seconds_total[{RATE}])",
                "{{instance}} {{resource}}",
            ),
            description="seconds stalled per second",
        ),
        _panel(
            "Top processes by CPU",
            "short",
            _q("topk(10, linescale_process_cpu_cores)", "{{instance}} {{command}} {{pid}}"),
            description="cores, over the agent's last sample",
        ),
        _panel(
            "Top processes by memory",
            "bytes",
            _q(
                "topk(10, linescale_process_resident_memory_bytes)",
                "{{instance}} {{command}} {{pid}}",
            ),
        ),
        _panel(
            "Network throughput",
            "Bps",
            _q(
                f"sum by (instance) (rate(linescale_node_network_receive_bytes_total[{RATE}]))",
                "{{instance}} rx",
            ),
            _q(
                f"sum by (instance) (rate(linescale_node_network_transmit_bytes_total[{RATE}]))",
                "{{instance}} tx",
            ),
        ),
        _panel(
            "Agent CPU (overhead)",
            "percentunit",
            _q(f"rate(process_cpu_seconds_total[{RATE}]) {_AGENT_JOIN}", "{{instance}}"),
            description="cores used by the agent itself; the README's figure is 0.3 % of one core",
        ),
        _panel(
            "Agent resident memory",
            "bytes",
            _q(f"process_resident_memory_bytes {_AGENT_JOIN}", "{{instance}}"),
        ),
        _panel(
            "Collection pass duration p99",
            "s",
            _q(
                _quantile(0.99, "linescale_collector_sample_duration_seconds_bucket", "instance"),
                "{{instance}}",
            ),
        ),
    ),
)

DASHBOARDS: Final[tuple[Dashboard, ...]] = (FLEET, WORKLOAD, ROUTING, CACHE, NODE)


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": DATASOURCE_VARIABLE,
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def _query_variable(variable: Variable) -> dict[str, Any]:
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": dict(DATASOURCE_REF),
        "definition": variable.query,
        "query": {"query": variable.query, "refId": f"{variable.name}-values"},
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "current": {},
        "hide": 0,
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "options": [],
    }


def _render_panel(panel: Panel, panel_id: int) -> dict[str, Any]:
    index = panel_id - 1
    columns = GRID_COLUMNS // PANEL_WIDTH
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": dict(DATASOURCE_REF),
        "gridPos": {
            "h": PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "x": (index % columns) * PANEL_WIDTH,
            "y": (index // columns) * PANEL_HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "datasource": dict(DATASOURCE_REF),
                "expr": query.expr,
                "legendFormat": query.legend or "__auto",
                "range": True,
            }
            for n, query in enumerate(panel.queries)
        ],
    }


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The classic Grafana dashboard model; ids follow panel order, so they are stable too."""
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["linescale"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [_datasource_variable(), *map(_query_variable, dashboard.variables)]
        },
        "panels": [_render_panel(panel, n) for n, panel in enumerate(dashboard.panels, start=1)],
    }


def file_name(dashboard: Dashboard) -> str:
    return f"{dashboard.uid}.json"


def rendered_files(dashboards: Sequence[Dashboard] = DASHBOARDS) -> dict[str, str]:
    """File name -> exact file text (2-space JSON, trailing newline)."""
    return {
        file_name(d): json.dumps(render(d), indent=2, ensure_ascii=False) + "\n" for d in dashboards
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a committed file is out of date"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered_files().items():
        path: Path = args.out / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"out of date (run python dashboards/generate.py): {', '.join(stale)}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
