"""What the dataplane should run: static services from config merged with the held routing
table, and the difference to what runs now.

A pushed route wins over a static service of the same name (the controller knows the live
endpoints); it keeps the static listener when it names no ``listen_port`` of its own. A pushed
route with no listener anywhere is only reported on, not served. The last table stays in force
while the controller is away: nothing here expires it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from agent.dataplane.balancer import EndpointState, Policy, RouteShape
from shared.config import ConfigError, DataplaneSettings, StaticEndpoint, split_listen
from shared.wire import PassiveHealth, RetryPolicy, RoutingTable, ServiceRoute, Timeouts

_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class UpstreamSpec:
    address: str  # host:port
    zone: str = ""
    weight: int = 100
    state: EndpointState = "active"
    priority: int = 0


@dataclass(frozen=True)
class ServiceSpec:
    """Everything one service listener needs; equal specs mean nothing to change."""

    name: str
    listen_host: str
    listen_port: int
    upstreams: tuple[UpstreamSpec, ...]
    shape: RouteShape
    timeouts: Timeouts
    retries: RetryPolicy
    passive_health: PassiveHealth
    source: str  # "static" or "routing v<N>"

    @property
    def listen(self) -> tuple[str, int]:
        return self.listen_host, self.listen_port


def static_address(raw: str) -> str:
    """``host:port`` of a configured endpoint (an ``http://`` prefix is tolerated)."""
    address = raw.removeprefix("http://").rstrip("/")
    match = _ADDRESS.match(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ConfigError(f"dataplane endpoint {raw!r}: must be host:port")
    return address


def _static_upstream(endpoint: str | StaticEndpoint) -> UpstreamSpec:
    if isinstance(endpoint, str):
        return UpstreamSpec(static_address(endpoint))
    return UpstreamSpec(static_address(endpoint.address), endpoint.zone, endpoint.weight)


def _pushed_upstreams(route: ServiceRoute) -> tuple[UpstreamSpec, ...]:
    return tuple(
        UpstreamSpec(e.address, e.zone, e.weight, e.state, e.priority) for e in route.endpoints
    )


def _shape(route: ServiceRoute, own_zone: str) -> RouteShape:
    return RouteShape(
        policy=route.policy,
        own_zone=own_zone,
        zone_shares={caller: dict(shares) for caller, shares in route.zone_shares.items()},
        priority_load=tuple(route.priority_load),
        panic=route.panic,
    )


def desired_services(
    settings: DataplaneSettings, table: RoutingTable | None, own_zone: str
) -> dict[str, ServiceSpec]:
    """The services to serve, by name, from static config and the held table."""
    desired: dict[str, ServiceSpec] = {}
    static_listen: dict[str, tuple[str, int]] = {}
    for service in settings.services:
        host, port = split_listen(service.listen)
        static_listen[service.name] = (host, port)
        policy: Policy = service.policy
        desired[service.name] = ServiceSpec(
            name=service.name,
            listen_host=host,
            listen_port=port,
            upstreams=tuple(_static_upstream(endpoint) for endpoint in service.endpoints),
            shape=RouteShape(policy=policy, own_zone=own_zone),
            timeouts=service.timeouts,
            retries=service.retries,
            passive_health=service.passive_health,
            source="static",
        )
    for route in table.services if table is not None else ():
        if route.listen_port is not None:
            listen = (settings.listen_host, route.listen_port)
        elif route.name in static_listen:
            listen = static_listen[route.name]
        else:
            continue  # reported on by the controller, not served by this agent
        desired[route.name] = ServiceSpec(
            name=route.name,
            listen_host=listen[0],
            listen_port=listen[1],
            upstreams=_pushed_upstreams(route),
            shape=_shape(route, own_zone),
            timeouts=route.timeouts,
            retries=route.retries,
            passive_health=route.passive_health,
            source=f"routing v{table.version}" if table is not None else "static",
        )
    return desired


@dataclass(frozen=True)
class Changes:
    """How to get from the running services to the desired ones."""

    start: tuple[str, ...]  # new services, or ones whose listener moved (after their stop)
    update: tuple[str, ...]  # same listener, new endpoints or settings: applied in place
    stop: tuple[str, ...]  # removed services, or ones whose listener moved
    unchanged: tuple[str, ...]


def plan_changes(running: Mapping[str, ServiceSpec], desired: Mapping[str, ServiceSpec]) -> Changes:
    """Listener moves are a stop then a start; everything else is updated in place, so
    in-flight requests are never dropped by a new table."""
    start, update, stop, unchanged = [], [], [], []
    for name in sorted(running.keys() | desired.keys()):
        old, new = running.get(name), desired.get(name)
        if new is None:
            stop.append(name)
        elif old is None:
            start.append(name)
        elif old.listen != new.listen:
            stop.append(name)
            start.append(name)
        elif old != new:
            update.append(name)
        else:
            unchanged.append(name)
    return Changes(tuple(start), tuple(update), tuple(stop), tuple(unchanged))


def listener_conflicts(desired: Mapping[str, ServiceSpec]) -> dict[tuple[str, int], list[str]]:
    """Listeners claimed by more than one service (the later ones are refused)."""
    claims: dict[tuple[str, int], list[str]] = {}
    for name in sorted(desired):
        claims.setdefault(desired[name].listen, []).append(name)
    return {listen: names for listen, names in claims.items() if len(names) > 1}
