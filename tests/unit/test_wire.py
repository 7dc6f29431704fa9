"""Wire contracts: valid messages parse, and every refusal names the field at fault."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.wire import AgentReport, Decision, RoutingTable, TuningSet, WireError, WireModel, parse

from messages import decision, finding, report, routing, tuning


def endpoint_change(**endpoint: Any) -> dict[str, Any]:
    table = routing()
    table["services"][0]["endpoints"][0].update(endpoint)
    return table


@pytest.mark.parametrize(
    ("model", "body"),
    [
        pytest.param(RoutingTable, routing(), id="routing-table"),
        pytest.param(TuningSet, tuning(), id="tuning-set"),
        pytest.param(AgentReport, report(), id="agent-report-minimal"),
        pytest.param(Decision, decision(), id="decision"),
        pytest.param(AgentReport, report(findings=[finding()]), id="agent-report-with-finding"),
        pytest.param(RoutingTable, routing(services=[]), id="routing-table-without-services"),
        pytest.param(
            RoutingTable, endpoint_change(address="[fd00::1]:443"), id="ipv6-endpoint-address"
        ),
    ],
)
def test_valid_messages_parse_and_round_trip(model: type[WireModel], body: dict[str, Any]) -> None:
    parsed = parse(model, json.dumps(body))
    assert parse(model, parsed.model_dump_json()) == parsed


@pytest.mark.parametrize(
    ("model", "body", "field"),
    [
        pytest.param(RoutingTable, routing(extra=1), "extra", id="unknown-top-level-field"),
        pytest.param(RoutingTable, routing(version="3"), "version", id="version-as-string"),
        pytest.param(RoutingTable, routing(version=0), "version", id="version-zero"),
        pytest.param(RoutingTable, routing(schema_version=2), "schema_version", id="future-schema"),
        pytest.param(
            RoutingTable,
            endpoint_change(weight=1001),
            "services.0.endpoints.0.weight",
            id="weight-over-1000",
        ),
        pytest.param(
            RoutingTable,
            endpoint_change(state="up"),
            "services.0.endpoints.0.state",
            id="unknown-endpoint-state",
        ),
        pytest.param(
            RoutingTable,
            endpoint_change(address="10.0.0.1"),
            "services.0.endpoints.0.address",
            id="address-without-port",
        ),
        pytest.param(
            RoutingTable,
            endpoint_change(address="10.0.0.1:70000"),
            "services.0.endpoints.0.address",
            id="port-out-of-range",
        ),
        pytest.param(
            RoutingTable,
            endpoint_change(address="10.0.1.1:8080"),
            "services.0.endpoints",
            id="duplicate-endpoint",
        ),
        pytest.param(
            RoutingTable,
            routing(services=[routing()["services"][0]] * 2),
            "services",
            id="duplicate-service",
        ),
        pytest.param(
            TuningSet,
            tuning(collector_interval_seconds=0.1),
            "collector_interval_seconds",
            id="interval-too-short",
        ),
        pytest.param(
            TuningSet,
            tuning(dataplane={**tuning()["dataplane"], "retry_budget_percent": 150}),
            "dataplane.retry_budget_percent",
            id="retry-budget-over-100",
        ),
        pytest.param(AgentReport, report(node="Node_1"), "node", id="node-not-dns-name"),
        pytest.param(AgentReport, report(health="great"), "health", id="unknown-health"),
        pytest.param(AgentReport, report(endpoint="ftp://x"), "endpoint", id="endpoint-not-http"),
        pytest.param(
            AgentReport,
            report(capacity={"cpu_cores": -1, "memory_bytes": 1}),
            "capacity.cpu_cores",
            id="negative-capacity",
        ),
        pytest.param(AgentReport, report(sequence=True), "sequence", id="bool-is-not-an-int"),
        pytest.param(Decision, decision(kind="explode"), "kind", id="unknown-decision-kind"),
        pytest.param(
            Decision,
            decision(reason={"code": "Bad Code", "message": ""}),
            "reason.code",
            id="reason-code-not-snake-case",
        ),
    ],
)
def test_invalid_messages_are_refused_naming_the_field(
    model: type[WireModel], body: dict[str, Any], field: str
) -> None:
    with pytest.raises(WireError) as caught:
        parse(model, json.dumps(body))
    assert field in [name for name, _ in caught.value.problems]
    assert field in str(caught.value)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"", id="empty-body"),
        pytest.param(b"{not json", id="broken-json"),
        pytest.param(b"[]", id="array-not-object"),
        pytest.param(b'{"version": NaN}', id="nan"),
    ],
)
def test_non_objects_are_refused(raw: bytes) -> None:
    with pytest.raises(WireError):
        parse(RoutingTable, raw)


def test_lists_are_bounded_so_one_message_cannot_exhaust_memory() -> None:
    parse(AgentReport, json.dumps(report(findings=[finding()] * 200)))
    with pytest.raises(WireError) as caught:
        parse(AgentReport, json.dumps(report(findings=[finding()] * 201)))
    assert [field for field, _ in caught.value.problems] == ["findings"]


@pytest.mark.parametrize(
    ("bottlenecks", "field"),
    [
        pytest.param(
            {"cpu_runqueue_ratio": {"warning": "2", "critical": 3}},
            "bottlenecks.cpu_runqueue_ratio.warning",
            id="pushed-threshold-as-string",
        ),
        pytest.param(
            {"fd_usage_percent": {"warning": 95, "critical": 90}},
            "bottlenecks",
            id="critical-below-warning",
        ),
        pytest.param(
            {"memory_available_percent": {"warning": 5, "critical": 10}},
            "bottlenecks",
            id="inverted-threshold-critical-above-warning",
        ),
        pytest.param(
            {"clear_fraction": 1.5}, "bottlenecks.clear_fraction", id="clear-fraction-over-1"
        ),
        pytest.param(
            {"typo_percent": {"warning": 1, "critical": 2}},
            "bottlenecks.typo_percent",
            id="unknown-threshold",
        ),
    ],
)
def test_pushed_thresholds_are_strict(bottlenecks: dict[str, Any], field: str) -> None:
    with pytest.raises(WireError) as caught:
        parse(TuningSet, json.dumps(tuning(bottlenecks=bottlenecks)))
    assert field in [name for name, _ in caught.value.problems]


def test_pushed_thresholds_keep_defaults_for_what_they_omit() -> None:
    pushed = parse(
        TuningSet,
        json.dumps(tuning(bottlenecks={"fd_usage_percent": {"warning": 50, "critical": 60}})),
    )
    assert pushed.bottlenecks is not None
    assert pushed.bottlenecks.fd_usage_percent.warning == 50
    assert pushed.bottlenecks.cpu_throttled_percent.warning == 25
