"""The LoadBalancingEngine's step: routed services from annotations, endpoints placed in their
agents' zones, outlier ejection from what the dataplanes saw, RoutingTables published only
when a route changes, hand-set routes of other services kept."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller.engines.balancing.engine import (
    ROUTE_POLICY_ANNOTATION,
    ROUTE_PORT_ANNOTATION,
    LoadBalancingEngine,
    service_spec,
)
from controller.ports import PodState, WorkloadRef, WorkloadState
from controller.reconcile import StepContext
from shared.wire import AgentReport, RoutingTable, parse

from engine_fakes import Cluster
from messages import report

ORDERS = WorkloadRef("line", "orders", "Local")
ZONES = {"node-a": "a", "node-b": "b", "node-c": "c"}


def orders(ready: tuple[bool, ...] = (True, True, True), **annotations: str) -> WorkloadState:
    pods = tuple(
        PodState(f"orders-{i}", ok, node=f"node-{'abc'[i % 3]}", address=f"10.0.0.{i + 1}:8080")
        for i, ok in enumerate(ready)
    )
    notes = {ROUTE_PORT_ANNOTATION: "18080", **annotations}
    return WorkloadState(ORDERS, len(pods), sum(ready), pods, annotations=notes)


def agent(
    node: str, dataplane: list[dict[str, Any]] | None = None, routing_version: int = 0
) -> AgentReport:
    body = report(
        node=node, zone=ZONES[node], endpoint=f"http://{node}:9400", routing_version=routing_version
    )
    body["dataplane"] = dataplane or []
    return parse(AgentReport, json.dumps(body))


def seen(address: str, requests: int, errors: int, consecutive: int) -> dict[str, Any]:
    return {
        "service": "orders",
        "address": address,
        "ewma_latency_ms": 5.0,
        "in_flight": 0,
        "requests": requests,
        "errors": errors,
        "consecutive_errors": consecutive,
    }


@dataclass
class World:
    cluster: Cluster
    reports: list[AgentReport] = field(default_factory=lambda: [agent(n) for n in ZONES])
    held: RoutingTable | None = None
    published: list[RoutingTable] = field(default_factory=list)
    now: float = 1000.0

    def engine(self) -> LoadBalancingEngine:
        async def publish(table: RoutingTable) -> None:
            self.held = table
            self.published.append(table)

        return LoadBalancingEngine(
            orchestrator=lambda: self.cluster,
            reports=lambda: self.reports,
            held=lambda: self.held,
            publish=publish,
            clock=lambda: self.now,
            monotonic=lambda: self.now,
        )

    async def step(self, engine: LoadBalancingEngine) -> list[Any]:
        outcomes = await engine.step(StepContext(now=self.now, backed_off=frozenset()))
        self.now += 10
        return outcomes


def world(state: WorkloadState) -> World:
    return World(Cluster({state.ref: state}, lambda ref, n, old: old))


async def test_a_routed_service_is_published_with_endpoints_in_their_agents_zones() -> None:
    w = world(orders())
    engine = w.engine()
    (outcome,) = await w.step(engine)
    assert outcome.result == "acted"
    (table,) = w.published
    (route,) = table.services
    assert (table.version, route.name, route.listen_port, route.policy) == (
        1,
        "orders",
        18080,
        "p2c_peak_ewma",
    )
    assert [(e.address, e.zone, e.state) for e in route.endpoints] == [
        ("10.0.0.1:8080", "a", "active"),
        ("10.0.0.2:8080", "b", "active"),
        ("10.0.0.3:8080", "c", "active"),
    ]
    # 3 healthy hosts < Envoy's min cluster size 6: every caller zone splits by hosts.
    assert route.zone_shares["a"] == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert route.priority_load == [1.0]
    assert outcome.decision is not None
    assert outcome.decision.kind == "route"


async def test_nothing_is_published_while_nothing_changes() -> None:
    w = world(orders())
    engine = w.engine()
    await w.step(engine)
    w.now += 60  # past the slow-start window: weights settle
    await w.step(engine)
    published = len(w.published)
    outcomes = await w.step(engine)
    assert len(w.published) == published
    assert [o.result for o in outcomes] == ["unchanged"]


async def test_five_consecutive_errors_eject_an_endpoint_and_say_why() -> None:
    w = world(orders())
    engine = w.engine()
    await w.step(engine)
    w.reports = [
        agent("node-a", [seen("10.0.0.2:8080", 5, 5, 5), seen("10.0.0.1:8080", 50, 0, 0)]),
        agent("node-b"),
        agent("node-c"),
    ]
    outcomes = await w.step(engine)
    route = w.published[-1].services[0]
    states = {e.address: e.state for e in route.endpoints}
    assert states == {
        "10.0.0.1:8080": "active",
        "10.0.0.2:8080": "ejected",
        "10.0.0.3:8080": "active",
    }
    codes = [o.decision.reason.code for o in outcomes if o.decision is not None]
    assert "consecutive_5xx" in codes


async def test_a_pod_that_is_not_ready_drains() -> None:
    w = world(orders(ready=(True, False, True)))
    await w.step(w.engine())
    states = [e.state for e in w.published[-1].services[0].endpoints]
    assert states == ["active", "draining", "active"]


async def test_a_new_endpoint_starts_light_and_ramps_up() -> None:
    w = world(orders())
    engine = w.engine()
    await w.step(engine)
    first = w.published[-1].services[0].endpoints[0].weight
    w.now += 60
    await w.step(engine)
    later = w.published[-1].services[0].endpoints[0].weight
    assert first < later == 100  # slow start: 10 % floor, full weight after the window


async def test_hand_set_routes_of_other_services_are_kept() -> None:
    w = world(orders())
    w.held = RoutingTable(
        version=7,
        generated_at=1.0,
        services=[{"name": "legacy", "endpoints": [{"address": "10.9.0.1:80", "zone": "a"}]}],  # type: ignore[list-item]
    )
    await w.step(w.engine())
    table = w.published[-1]
    assert table.version == 8
    assert [s.name for s in table.services] == ["legacy", "orders"]


async def test_a_restarted_controller_numbers_its_table_above_what_the_agents_hold() -> None:
    # The agents still hold the predecessor's v40 (or older): a v1 would be ignored as stale.
    w = world(orders())
    w.reports = [agent("node-a", routing_version=40), agent("node-b", routing_version=12)]
    await w.step(w.engine())
    assert [table.version for table in w.published] == [41]


async def test_unchanged_routes_are_published_again_when_the_agents_are_ahead() -> None:
    # Its tables went out numbered from 1 while the agents reported none held; now they
    # report the predecessor's v40 (a report from before the restart, say): the same routes
    # go out again, numbered so that the agents take them.
    w = world(orders())
    engine = w.engine()
    await w.step(engine)
    w.now += 60  # past the slow-start window: the routes settle
    await w.step(engine)
    settled = w.published[-1]
    w.reports = [agent(node, routing_version=40) for node in ZONES]
    await w.step(engine)
    table = w.published[-1]
    assert table.version == 41
    assert [s.endpoints for s in table.services] == [s.endpoints for s in settled.services]
    await w.step(engine)
    assert w.published[-1] is table  # caught up: nothing more to publish


async def test_an_invalid_route_annotation_is_an_error_and_publishes_nothing() -> None:
    w = world(orders(**{ROUTE_POLICY_ANNOTATION: "fastest"}))
    (outcome,) = await w.step(w.engine())
    assert outcome.result == "error"
    assert ROUTE_POLICY_ANNOTATION in outcome.reason
    assert w.published == []


@pytest.mark.parametrize(
    ("annotations", "port", "error"),
    [
        pytest.param({}, None, None, id="not-routed"),
        pytest.param({ROUTE_PORT_ANNOTATION: "18080"}, 18080, "", id="routed"),
        pytest.param({ROUTE_PORT_ANNOTATION: "0"}, None, "port", id="port-zero"),
        pytest.param({ROUTE_PORT_ANNOTATION: "http"}, None, "port", id="port-not-a-number"),
    ],
)
def test_service_spec(annotations: dict[str, str], port: int | None, error: str | None) -> None:
    spec = service_spec(annotations)
    if error is None:
        assert spec is None
        return
    assert spec is not None
    assert spec.port == port
    assert error in spec.error
