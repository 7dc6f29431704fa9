"""Which services run: static config merged with the pushed table, and the diff to apply."""

from __future__ import annotations

from typing import Any

import pytest

from agent.dataplane.table import (
    UpstreamSpec,
    desired_services,
    listener_conflicts,
    plan_changes,
    static_address,
)
from shared.config import ConfigError, DataplaneSettings
from shared.wire import RoutingTable

STATIC = DataplaneSettings.model_validate(
    {
        "listen_host": "10.1.0.5",
        "services": [
            {
                "name": "orders",
                "listen": "127.0.0.1:7000",
                "policy": "round_robin",
                "endpoints": ["10.0.0.1:80", {"address": "10.0.0.2:80", "zone": "b", "weight": 5}],
            }
        ],
    }
)


def table(*services: dict[str, Any], version: int = 4) -> RoutingTable:
    return RoutingTable.model_validate(
        {"version": version, "generated_at": 1.0, "services": list(services)}
    )


def route(name: str, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "endpoints": [{"address": "10.9.0.1:8080", "zone": "a", "state": "draining"}],
    }
    body.update(changes)
    return body


def test_static_services_run_without_a_table() -> None:
    services = desired_services(STATIC, None, "a")
    orders = services["orders"]
    assert orders.listen == ("127.0.0.1", 7000)
    assert orders.shape.policy == "round_robin"
    assert orders.upstreams == (
        UpstreamSpec("10.0.0.1:80"),
        UpstreamSpec("10.0.0.2:80", zone="b", weight=5),
    )
    assert orders.source == "static"


@pytest.mark.parametrize(
    ("pushed", "listen", "addresses"),
    [
        pytest.param(
            route("orders"),
            ("127.0.0.1", 7000),
            ("10.9.0.1:8080",),
            id="pushed-wins-keeps-static-listener",
        ),
        pytest.param(
            route("orders", listen_port=7100),
            ("10.1.0.5", 7100),
            ("10.9.0.1:8080",),
            id="pushed-port-on-listen-host",
        ),
        pytest.param(
            route("billing"),
            ("127.0.0.1", 7000),
            ("10.0.0.1:80", "10.0.0.2:80"),
            id="other-service-static-stays",
        ),
    ],
)
def test_a_pushed_route_takes_precedence_for_the_service_it_names(
    pushed: dict[str, Any], listen: tuple[str, int], addresses: tuple[str, ...]
) -> None:
    orders = desired_services(STATIC, table(pushed), "a")["orders"]
    assert orders.listen == listen
    assert tuple(upstream.address for upstream in orders.upstreams) == addresses


def test_a_pushed_route_without_any_listener_is_not_served() -> None:
    assert "billing" not in desired_services(STATIC, table(route("billing")), "a")


def test_pushed_route_carries_states_priorities_and_shapes() -> None:
    pushed = route(
        "billing",
        listen_port=7200,
        endpoints=[
            {"address": "10.9.0.1:80", "zone": "a", "state": "ejected", "priority": 1},
            {"address": "10.9.0.2:80", "zone": "b", "weight": 7},
        ],
        zone_shares={"a": {"a": 0.5, "b": 0.5}},
        priority_load=[0.9, 0.1],
        panic=True,
    )
    billing = desired_services(STATIC, table(pushed, version=9), "a")["billing"]
    assert billing.upstreams == (
        UpstreamSpec("10.9.0.1:80", "a", 100, "ejected", 1),
        UpstreamSpec("10.9.0.2:80", "b", 7, "active", 0),
    )
    assert billing.shape.own_zone_shares() == {"a": 0.5, "b": 0.5}
    assert billing.shape.priority_load == (0.9, 0.1)
    assert billing.shape.panic
    assert billing.source == "routing v9"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("10.0.0.1:80", "10.0.0.1:80", id="host-port"),
        pytest.param("http://backend.local:8080/", "backend.local:8080", id="url-tolerated"),
        pytest.param("[::1]:9000", "[::1]:9000", id="ipv6"),
    ],
)
def test_static_address(raw: str, expected: str) -> None:
    assert static_address(raw) == expected


@pytest.mark.parametrize("raw", ["10.0.0.1", "10.0.0.1:0", "a b:80", "10.0.0.1:99999"])
def test_static_address_refuses_what_is_not_host_port(raw: str) -> None:
    with pytest.raises(ConfigError, match="host:port"):
        static_address(raw)


def test_plan_changes_updates_in_place_and_moves_listeners_by_stop_then_start() -> None:
    running = desired_services(
        STATIC,
        table(route("a", listen_port=1), route("b", listen_port=2), route("c", listen_port=3)),
        "z",
    )
    desired = desired_services(
        STATIC,
        table(
            route("a", listen_port=1),  # unchanged
            route("b", listen_port=2, panic=True),  # same listener, new settings
            route("c", listen_port=4),  # listener moved
            route("d", listen_port=5),  # new
        ),
        "z",
    )
    del running["orders"]  # "orders" appears: started
    changes = plan_changes(running, desired)
    assert changes.unchanged == ("a",)
    assert changes.update == ("b",)
    assert changes.stop == ("c",)
    assert changes.start == ("c", "d", "orders")
    assert plan_changes(desired, {}).stop == ("a", "b", "c", "d", "orders")


def test_listener_conflicts_name_every_claimant() -> None:
    desired = desired_services(
        STATIC, table(route("x", listen_port=9), route("y", listen_port=9)), "a"
    )
    assert listener_conflicts(desired) == {("10.1.0.5", 9): ["x", "y"]}
