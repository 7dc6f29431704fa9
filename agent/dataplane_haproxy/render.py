"""Pure parts of the HAProxy dataplane: the config HAProxy starts from, and the Runtime API
commands that turn what it runs into what a routing table says.

**Start-up config** (:func:`render_config`). ``global`` opens an admin-level stats socket with
``expose-fd listeners`` (so a reload can hand the listening sockets over); each service with a
``listen_port`` gets a frontend ``fe_<service>`` and an empty backend ``<prefix><service>``
with a dynamic algorithm (HAProxy only adds servers at run time to those, and only those take
``set server ... weight``). Servers are never written to the file: the agent adds them through
the Runtime API, so no ``server-template`` slots are needed.

**Policies.** ``round_robin`` -> ``roundrobin`` (smooth weighted); ``least_request`` and
``p2c_peak_ewma`` -> ``leastconn`` (HAProxy has no latency-aware algorithm; fewest outstanding
requests is the nearest it has); ``random`` -> ``random(1)`` (one weighted draw; HAProxy's plain
``random`` draws two and keeps the less loaded).

**Weights.** HAProxy shares traffic in proportion to each server's weight, an integer 0..256
(``set server <be>/<srv> weight``), among the servers of one tier (active or backup). The
planner folds priority load and zone shares into one target share per endpoint (below), then
scales each tier so its largest share gets 256 and the others proportionally, rounded half
up, and never below 1 for an endpoint that should get traffic (HAProxy's weight 0 means no new
traffic). So a table's weights 0..1000 map onto 0..256 by ratio, not by a fixed factor
(weights 100, 100, 50 become 256, 256, 128), and a share is off by at most half a step:
relative error <= 0.5 / weight (0.2 % at 256; 50 % for a server at weight 1, which only
happens when it should get under 1/512 of the largest server's traffic).

**Folding priority load and zone shares.** An endpoint is eligible when its weight is above
0, it is not draining, and it is active (or ejected while the service is in panic), as the
embedded dataplane decides. Levels with an eligible endpoint take their ``priority_load``
(empty, or all zero: the lowest such level takes everything). On priority 0, the caller
zone's ``zone_shares`` split the level among zones that have eligible endpoints (a zone not
listed gets nothing; no usable share: the level splits by weight). Then an endpoint's target
share is ``load(level) * share(zone) * weight / sum of the weights of its (level, zone)
group``. HAProxy renormalises: loads of levels or zones with nothing eligible go to the rest
in proportion, as the embedded dataplane does.

**Backup servers.** When the loads give priority 0 everything, endpoints of higher levels
become ``backup`` servers (``option allbackups``): HAProxy then fails over to them by itself,
the moment every priority-0 server is unusable, without waiting for the controller. HAProxy
has one backup tier: only the lowest level above 0 with an eligible endpoint gets weights
there, deeper levels sit at weight 0 until the controller moves load to them. A server's
backup flag cannot change at run time, so the flag is part of its name (``b_`` against
``s_``): a change adds the other server and retires the old one.

**Not expressible in HAProxy.** Per-request priority or zone draws (HAProxy sees one weighted
pool, so shares are met on average, not per draw); more than one failover level; shares
finer than 1/256 of the tier's largest; peak-EWMA latency; the retry budget (``retries``
bounds attempts per request only); health-blind panic for ejected servers beyond forcing them
``ready``. Server names come from the address (``s_10_0_0_7_8080``), so two hostnames that
differ only in ``.``/``-``/``_`` would collide; dynamic servers in 2.6 do not resolve
hostnames either, so endpoints should be IP addresses.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.dataplane_haproxy.model import ServerAdminState, ServerState
from agent.dataplane_haproxy.runtime import parse_socket_address
from shared.wire import Endpoint, ServiceRoute, Timeouts

__all__ = [
    "BALANCE",
    "DEFAULT_BACKEND_PREFIX",
    "HAPROXY_MAX_WEIGHT",
    "DesiredServer",
    "PlannedCommand",
    "backend_name",
    "desired_servers",
    "frontend_name",
    "level_loads",
    "plan",
    "plan_steps",
    "quantise_weights",
    "render_config",
    "server_name",
]

HAPROXY_MAX_WEIGHT = 256  # "set server ... weight": absolute weights are 0..256
DEFAULT_BACKEND_PREFIX = "ls_"
STATS_SOCKET_TIMEOUT = "2m"  # HAP-MGMT's example; the default 10 s cuts idle operators

BALANCE: Mapping[str, str] = {
    "round_robin": "roundrobin",
    "least_request": "leastconn",
    "p2c_peak_ewma": "leastconn",
    "random": "random(1)",
}

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9]+")


# --- names -----------------------------------------------------------------------------------


def backend_name(service: str, prefix: str = DEFAULT_BACKEND_PREFIX) -> str:
    return f"{prefix}{service}"


def frontend_name(service: str) -> str:
    return f"fe_{service}"


def server_name(address: str, *, backup: bool = False) -> str:
    """Deterministic server name from the endpoint address: ``10.0.0.7:8080`` ->
    ``s_10_0_0_7_8080`` (``b_`` for a backup server)."""
    host, _, port = address.rpartition(":")
    sanitised = _UNSAFE_NAME_CHARS.sub("_", host.strip("[]")).strip("_")
    return f"{'b' if backup else 's'}_{sanitised}_{port}"


# --- start-up config -------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _bind_address(host: str, port: int) -> str:
    return f"ipv6@{host.strip('[]')}:{port}" if ":" in host else f"{host}:{port}"


def _stats_socket_line(socket: str) -> str:
    address = parse_socket_address(socket)
    if address.is_unix:
        where = f"{address.path} mode 600"
    else:
        family = "ipv6" if ":" in address.host else "ipv4"
        where = f"{family}@{address.host}:{address.port}"
    return f"    stats socket {where} level admin expose-fd listeners\n"


def _timeouts(timeouts: Timeouts, *, client: bool, server: bool) -> list[str]:
    lines = []
    if client:
        lines.append(f"    timeout client {_ms(timeouts.overall_seconds)}\n")
    if server:
        lines.append(f"    timeout connect {_ms(timeouts.connect_seconds)}\n")
        lines.append(f"    timeout server {_ms(timeouts.per_try_seconds)}\n")
    return lines


def render_config(
    services: Iterable[ServiceRoute],
    *,
    socket: str,
    listen_host: str = "127.0.0.1",
    backend_prefix: str = DEFAULT_BACKEND_PREFIX,
) -> str:
    """The whole haproxy.cfg the agent's HAProxy starts from: one frontend and one empty
    backend per service with a ``listen_port``; services without one are not served here.

    Timeouts: ``defaults`` carries the wire defaults, each proxy its service's own:
    ``timeout connect`` = connect, ``timeout server`` (inactivity per try) = per try, and the
    frontend's ``timeout client`` = overall. ``retries`` = attempts - 1, with
    ``option redispatch 1`` so a retry after a failed connect goes to another server.
    """
    parts = [
        "global\n",
        _stats_socket_line(socket),
        f"    stats timeout {STATS_SOCKET_TIMEOUT}\n",
        "\n",
        "defaults\n",
        "    mode http\n",
        *_timeouts(Timeouts(), client=True, server=True),
    ]
    for route in sorted(services, key=lambda route: route.name):
        if route.listen_port is None:
            continue
        backend = backend_name(route.name, backend_prefix)
        parts += [
            "\n",
            f"frontend {frontend_name(route.name)}\n",
            f"    bind {_bind_address(listen_host, route.listen_port)}\n",
            *_timeouts(route.timeouts, client=True, server=False),
            f"    default_backend {backend}\n",
            "\n",
            f"backend {backend}\n",
            f"    balance {BALANCE[route.policy]}\n",
            "    option allbackups\n",
            *_timeouts(route.timeouts, client=False, server=True),
            f"    retries {route.retries.max_attempts - 1}\n",
            "    option redispatch 1\n",
            "    # servers are added at run time through the Runtime API\n",
        ]
    return "".join(parts)


# --- what the table wants HAProxy to run -----------------------------------------------------


@dataclass(frozen=True)
class DesiredServer:
    """One server as the routing table wants it, and why it gets that weight."""

    name: str
    address: str
    weight: int  # HAProxy weight 0..256, after quantisation
    state: ServerAdminState
    backup: bool
    share: float  # target fraction of its tier's new requests (0..1), before quantisation
    reason: str


def _eligible(endpoint: Endpoint, panic: bool) -> bool:
    if endpoint.weight <= 0 or endpoint.state == "draining":
        return False
    return panic or endpoint.state == "active"


def _admin_state(endpoint: Endpoint, panic: bool) -> ServerAdminState:
    if endpoint.state == "draining":
        return "drain"
    if endpoint.state == "ejected" and not panic:
        return "maint"
    return "ready"


def level_loads(priority_load: Sequence[float], available: Iterable[int]) -> dict[int, float]:
    """Load of each level that has an eligible endpoint: ``priority_load`` where it gives
    any, else everything to the lowest such level (what the embedded dataplane draws)."""
    levels = sorted(set(available))
    if not levels:
        return {}
    loads = {
        level: (priority_load[level] if level < len(priority_load) else 0.0) for level in levels
    }
    if sum(loads.values()) <= 0:
        return {levels[0]: 1.0}
    return loads


def quantise_weights(shares: Sequence[float]) -> list[int]:
    """Shares of one tier as HAProxy weights: the largest gets 256, the others in proportion,
    rounded half up, at least 1 when the share is above 0 (see the module docstring)."""
    largest = max(shares, default=0.0)
    if largest <= 0:
        return [0 for _ in shares]
    return [
        max(1, math.floor(HAPROXY_MAX_WEIGHT * share / largest + 0.5)) if share > 0 else 0
        for share in shares
    ]


def _zone_fractions(
    route: ServiceRoute, own_zone: str, level0: Sequence[Endpoint]
) -> dict[str, float] | None:
    """Normalised shares of the caller zone over zones with eligible priority-0 endpoints;
    None when no share applies (the level then splits by weight)."""
    shares = route.zone_shares.get(own_zone) or {}
    zones = {endpoint.zone for endpoint in level0}
    usable = {zone: share for zone, share in shares.items() if share > 0 and zone in zones}
    total = sum(usable.values())
    if total <= 0:
        return None
    return {zone: share / total for zone, share in usable.items()}


def _fold(
    route: ServiceRoute, own_zone: str, loads: Mapping[int, float]
) -> dict[str, tuple[float, str]]:
    """Target share (not yet normalised) and its reason, by endpoint address."""
    panic = route.panic
    eligible = [endpoint for endpoint in route.endpoints if _eligible(endpoint, panic)]
    zone_fractions = _zone_fractions(
        route, own_zone, [endpoint for endpoint in eligible if endpoint.priority == 0]
    )
    groups: dict[tuple[int, str], int] = {}  # (level, zone or "") -> sum of weights

    def group_of(endpoint: Endpoint) -> tuple[int, str]:
        by_zone = endpoint.priority == 0 and zone_fractions is not None
        return endpoint.priority, endpoint.zone if by_zone else ""

    for endpoint in eligible:
        key = group_of(endpoint)
        groups[key] = groups.get(key, 0) + endpoint.weight
    folded: dict[str, tuple[float, str]] = {}
    for endpoint in eligible:
        level, zone = group_of(endpoint)
        load = loads.get(level, 0.0)
        zone_fraction = (
            zone_fractions.get(zone, 0.0) if zone_fractions is not None and zone else 1.0
        )
        share = load * zone_fraction * endpoint.weight / groups[(level, zone)]
        zone_text = f" x zone {zone} share {zone_fraction:.4g}" if zone else ""
        reason = (
            f"priority {level} load {load:.4g}{zone_text}"
            f" x weight {endpoint.weight}/{groups[(level, zone)]}"
        )
        folded[endpoint.address] = (share, reason)
    return folded


def _no_traffic_reason(endpoint: Endpoint, panic: bool) -> str:
    if endpoint.state == "draining":
        return "draining: finishes what it has, takes nothing new"
    if endpoint.state == "ejected" and not panic:
        return "ejected: out of rotation"
    if endpoint.weight <= 0:
        return "weight 0"
    return f"priority {endpoint.priority} level or zone {endpoint.zone} gets no load"


def desired_servers(route: ServiceRoute, own_zone: str) -> list[DesiredServer]:
    """Every endpoint of the route as the HAProxy server that realises it, in table order."""
    panic = route.panic
    available = {endpoint.priority for endpoint in route.endpoints if _eligible(endpoint, panic)}
    loads = level_loads(route.priority_load, available)
    backup_mode = (
        loads.get(0, 0.0) > 0
        and all(load <= 0 for level, load in loads.items() if level != 0)
        and any(endpoint.priority > 0 for endpoint in route.endpoints)
    )
    if backup_mode:
        failover = min((level for level in available if level > 0), default=None)
        loads = {0: 1.0} | ({failover: 1.0} if failover is not None else {})
    folded = _fold(route, own_zone, loads)

    tiers: dict[bool, list[Endpoint]] = {False: [], True: []}
    for endpoint in route.endpoints:
        tiers[backup_mode and endpoint.priority > 0].append(endpoint)
    by_address: dict[str, DesiredServer] = {}
    for backup, members in tiers.items():
        raw = [folded.get(endpoint.address, (0.0, ""))[0] for endpoint in members]
        total = sum(raw)
        for endpoint, share, weight in zip(members, raw, quantise_weights(raw), strict=True):
            reason = folded[endpoint.address][1] if share > 0 else ""
            by_address[endpoint.address] = DesiredServer(
                name=server_name(endpoint.address, backup=backup),
                address=endpoint.address,
                weight=weight,
                state=_admin_state(endpoint, panic),
                backup=backup,
                share=share / total if total > 0 else 0.0,
                reason=reason or _no_traffic_reason(endpoint, panic),
            )
    return [by_address[endpoint.address] for endpoint in route.endpoints]


# --- from what runs to what is wanted --------------------------------------------------------


@dataclass(frozen=True)
class PlannedCommand:
    """One Runtime API command and why it is sent."""

    command: str
    reason: str


def _retire(backend: str, server: ServerState) -> list[PlannedCommand]:
    """A server the table no longer names: deleted once idle, drained until then."""
    target = f"{backend}/{server.name}"
    if server.sessions > 0:
        if server.state == "ready":
            return [
                PlannedCommand(
                    f"set server {target} state drain",
                    f"not in the table; {server.sessions} sessions open: drain, delete when idle",
                )
            ]
        return []  # already draining or in maintenance: wait for its sessions to end
    steps = []
    if server.state != "maint":
        steps.append(
            PlannedCommand(f"set server {target} state maint", "not in the table and idle")
        )
    steps.append(PlannedCommand(f"del server {target}", "not in the table and idle"))
    return steps


def plan_steps(
    desired: ServiceRoute,
    running: Sequence[ServerState],
    *,
    backend: str | None = None,
    own_zone: str = "",
) -> list[PlannedCommand]:
    """Commands taking HAProxy's ``backend`` from ``running`` to the route: additions first
    (so capacity comes before it goes), then weight and state changes, then retirements.
    A dynamic server starts in maintenance, so an added server that should serve is then set
    ``ready``; an existing one gets its weight before its state, so it enters with it."""
    backend = backend or backend_name(desired.name)
    running_by_name = {server.name: server for server in running}
    wanted = desired_servers(desired, own_zone)
    additions: list[PlannedCommand] = []
    updates: list[PlannedCommand] = []
    for server in wanted:
        target = f"{backend}/{server.name}"
        current = running_by_name.get(server.name)
        if current is None:
            backup = " backup" if server.backup else ""
            additions.append(
                PlannedCommand(
                    f"add server {target} {server.address} weight {server.weight}{backup}",
                    f"new endpoint; {server.reason}",
                )
            )
            if server.state != "maint":
                additions.append(
                    PlannedCommand(
                        f"set server {target} state {server.state}",
                        "added servers start in maintenance",
                    )
                )
            continue
        if current.weight != server.weight:
            updates.append(
                PlannedCommand(
                    f"set server {target} weight {server.weight}",
                    f"weight {current.weight} -> {server.weight}: {server.reason}",
                )
            )
        if current.state != server.state:
            updates.append(
                PlannedCommand(
                    f"set server {target} state {server.state}",
                    f"state {current.state} -> {server.state}: {server.reason}",
                )
            )
    wanted_names = {server.name for server in wanted}
    retirements = [
        step
        for server in sorted(running, key=lambda server: server.name)
        if server.name not in wanted_names
        for step in _retire(backend, server)
    ]
    return additions + updates + retirements


def plan(
    desired: ServiceRoute,
    running: Sequence[ServerState],
    *,
    backend: str | None = None,
    own_zone: str = "",
) -> list[str]:
    """The Runtime API commands of :func:`plan_steps`, without their reasons."""
    return [
        step.command for step in plan_steps(desired, running, backend=backend, own_zone=own_zone)
    ]
