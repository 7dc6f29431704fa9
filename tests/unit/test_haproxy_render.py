"""The HAProxy dataplane's pure parts: start-up config, weights, and the Runtime API plan.

Expected weights are hand-computed from the rule in ``render``'s docstring: target share =
load(level) x share(zone) x weight / sum of its (level, zone) group's weights; the tier's
largest share maps to 256 and the others to round_half_up(256 x share / largest), at least 1.
"""

from __future__ import annotations

import pytest

from agent.dataplane_haproxy.model import ServerState
from agent.dataplane_haproxy.render import (
    desired_servers,
    level_loads,
    plan,
    plan_steps,
    quantise_weights,
    render_config,
    server_name,
)
from shared.wire import Endpoint, RetryPolicy, ServiceRoute, Timeouts


def _endpoint(
    address: str, zone: str = "a", weight: int = 100, state: str = "active", priority: int = 0
) -> Endpoint:
    return Endpoint.model_validate(
        {"address": address, "zone": zone, "weight": weight, "state": state, "priority": priority}
    )


def _route(endpoints: list[Endpoint], **fields: object) -> ServiceRoute:
    return ServiceRoute.model_validate(
        {"name": "web", "listen_port": 8080, "endpoints": endpoints, **fields}
    )


# --- names and quantisation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "backup", "expected"),
    [
        pytest.param("10.0.0.7:8080", False, "s_10_0_0_7_8080", id="ipv4"),
        pytest.param("10.0.0.7:8080", True, "b_10_0_0_7_8080", id="ipv4-backup"),
        pytest.param("[fe80::1]:9000", False, "s_fe80_1_9000", id="ipv6-brackets-dropped"),
        pytest.param("api.internal:80", False, "s_api_internal_80", id="hostname"),
    ],
)
def test_server_name_is_derived_from_the_address(address: str, backup: bool, expected: str) -> None:
    assert server_name(address, backup=backup) == expected


@pytest.mark.parametrize(
    ("shares", "expected"),
    [
        pytest.param([100, 100, 50], [256, 256, 128], id="largest-gets-256"),
        # 256 x 1/3 = 85.33 -> 85
        pytest.param([3, 1], [256, 85], id="rounds-down-below-half"),
        # 256 x 0.4/0.6 = 170.67 -> 171
        pytest.param([0.6, 0.4], [256, 171], id="rounds-up-above-half"),
        # 256 x 1/1000 = 0.256 would round to 0: kept in rotation at 1
        pytest.param([1000, 1], [256, 1], id="tiny-share-floors-at-one"),
        pytest.param([0, 5], [0, 256], id="zero-share-stays-zero"),
        pytest.param([0, 0], [0, 0], id="nothing-to-serve"),
        pytest.param([], [], id="empty-tier"),
    ],
)
def test_quantise_weights_scales_the_largest_share_to_256(
    shares: list[float], expected: list[int]
) -> None:
    assert quantise_weights(shares) == expected


@pytest.mark.parametrize(
    ("priority_load", "available", "expected"),
    [
        pytest.param([], {0, 1}, {0: 1.0}, id="empty-load-lowest-level-takes-all"),
        pytest.param([], {2, 1}, {1: 1.0}, id="empty-load-lowest-available-level"),
        pytest.param([0.7, 0.3], {0, 1}, {0: 0.7, 1: 0.3}, id="load-as-given"),
        pytest.param([0.7, 0.3], {1}, {1: 0.3}, id="unavailable-level-dropped"),
        pytest.param([1.0, 0.0], {1}, {1: 1.0}, id="all-zero-falls-back-to-lowest"),
        pytest.param([0.5, 0.5], {0, 2}, {0: 0.5, 2: 0.0}, id="level-beyond-the-list-gets-0"),
        pytest.param([1.0], set(), {}, id="nothing-available"),
    ],
)
def test_level_loads(
    priority_load: list[float], available: set[int], expected: dict[int, float]
) -> None:
    assert level_loads(priority_load, available) == expected


# --- desired servers: weights, states, backups -----------------------------------------------

E1, E2, E3, E4 = "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"


@pytest.mark.parametrize(
    ("route", "own_zone", "expected"),
    [
        pytest.param(
            _route([_endpoint(E1), _endpoint(E2), _endpoint(E3, weight=50)]),
            "a",
            [(E1, 256, "ready", False), (E2, 256, "ready", False), (E3, 128, "ready", False)],
            id="plain-weights-by-ratio",
        ),
        pytest.param(
            _route(
                [
                    _endpoint(E1),
                    _endpoint(E2, state="draining"),
                    _endpoint(E3, state="ejected"),
                    _endpoint(E4, weight=0),
                ]
            ),
            "a",
            [
                (E1, 256, "ready", False),
                (E2, 0, "drain", False),
                (E3, 0, "maint", False),
                (E4, 0, "ready", False),
            ],
            id="draining-drains-ejected-maint-weight0-no-traffic",
        ),
        pytest.param(
            _route(
                [_endpoint(E1), _endpoint(E2, state="draining"), _endpoint(E3, state="ejected")],
                panic=True,
            ),
            "a",
            [(E1, 256, "ready", False), (E2, 0, "drain", False), (E3, 256, "ready", False)],
            id="panic-serves-ejected-but-not-draining",
        ),
        pytest.param(
            # a1 = a2 = 0.8 x 100/200 = 0.4, b1 = 0.2 x 100/100 = 0.2 -> 256, 256, 128
            _route(
                [_endpoint(E1, "a"), _endpoint(E2, "a"), _endpoint(E3, "b")],
                zone_shares={"a": {"a": 0.8, "b": 0.2}},
            ),
            "a",
            [(E1, 256, "ready", False), (E2, 256, "ready", False), (E3, 128, "ready", False)],
            id="zone-shares-fold-into-weights",
        ),
        pytest.param(
            # a1 = 0.5 x 300/400 = 0.375, a2 = 0.5 x 100/400 = 0.125, b1 = 0.5 -> 192, 64, 256
            _route(
                [_endpoint(E1, "a", 300), _endpoint(E2, "a", 100), _endpoint(E3, "b", 100)],
                zone_shares={"a": {"a": 0.5, "b": 0.5}},
            ),
            "a",
            [(E1, 192, "ready", False), (E2, 64, "ready", False), (E3, 256, "ready", False)],
            id="zone-share-split-by-weight-within-zone",
        ),
        pytest.param(
            _route(
                [_endpoint(E1, "a"), _endpoint(E2, "b")],
                zone_shares={"a": {"a": 1.0}},
            ),
            "a",
            [(E1, 256, "ready", False), (E2, 0, "ready", False)],
            id="zone-without-share-gets-nothing",
        ),
        pytest.param(
            # zone c has nothing eligible: its half goes to a, the only usable zone
            _route(
                [_endpoint(E1, "a"), _endpoint(E2, "a", weight=50), _endpoint(E3, "b")],
                zone_shares={"a": {"a": 0.5, "c": 0.5}},
            ),
            "a",
            [(E1, 256, "ready", False), (E2, 128, "ready", False), (E3, 0, "ready", False)],
            id="share-of-empty-zone-renormalised",
        ),
        pytest.param(
            _route(
                [_endpoint(E1, "a"), _endpoint(E2, "b", weight=50)],
                zone_shares={"a": {"a": 1.0}},
            ),
            "z",
            [(E1, 256, "ready", False), (E2, 128, "ready", False)],
            id="caller-zone-not-listed-splits-by-weight",
        ),
        pytest.param(
            # e1 = e2 = 0.75 x 100/200 = 0.375, e3 = 0.25 -> 256, 256, 256 x 0.25/0.375 = 171
            _route(
                [_endpoint(E1), _endpoint(E2), _endpoint(E3, priority=1)],
                priority_load=[0.75, 0.25],
            ),
            "a",
            [(E1, 256, "ready", False), (E2, 256, "ready", False), (E3, 171, "ready", False)],
            id="priority-load-folds-into-weights",
        ),
        pytest.param(
            # p0 takes all: p1 becomes the weighted backup tier, p2 backups at weight 0
            _route(
                [
                    _endpoint(E1),
                    _endpoint(E2, priority=1),
                    _endpoint(E3, weight=50, priority=1),
                    _endpoint(E4, priority=2),
                ]
            ),
            "a",
            [
                (E1, 256, "ready", False),
                (E2, 256, "ready", True),
                (E3, 128, "ready", True),
                (E4, 0, "ready", True),
            ],
            id="empty-load-higher-levels-become-backups",
        ),
        pytest.param(
            _route([_endpoint(E1), _endpoint(E2, priority=1)], priority_load=[1.0, 0.0]),
            "a",
            [(E1, 256, "ready", False), (E2, 256, "ready", True)],
            id="explicit-full-load-on-p0-uses-backups",
        ),
        pytest.param(
            # p0 has nothing eligible, so the empty load puts everything on p1: no backups
            _route([_endpoint(E1, state="ejected"), _endpoint(E2, priority=1)]),
            "a",
            [(E1, 0, "maint", False), (E2, 256, "ready", False)],
            id="p0-all-ejected-p1-serves-as-primary",
        ),
    ],
)
def test_desired_servers(
    route: ServiceRoute, own_zone: str, expected: list[tuple[str, int, str, bool]]
) -> None:
    servers = desired_servers(route, own_zone)

    assert [(s.address, s.weight, s.state, s.backup) for s in servers] == expected
    assert [s.name for s in servers] == [server_name(a, backup=b) for a, _, _, b in expected]


def test_desired_share_is_the_fraction_of_the_tier_before_quantisation() -> None:
    route = _route(
        [_endpoint(E1, "a"), _endpoint(E2, "a"), _endpoint(E3, "b")],
        zone_shares={"a": {"a": 0.8, "b": 0.2}},
    )

    shares = [server.share for server in desired_servers(route, "a")]

    assert shares == pytest.approx([0.4, 0.4, 0.2])


# --- the plan --------------------------------------------------------------------------------

BE = "ls_web"
S1, S2, S3 = server_name(E1), server_name(E2), server_name(E3)


def _running(
    address: str, weight: int = 256, state: str = "ready", sessions: int = 0, backup: bool = False
) -> ServerState:
    return ServerState(
        name=server_name(address, backup=backup),
        address=address,
        weight=weight,
        state=state,  # type: ignore[arg-type]
        backup=backup,
        sessions=sessions,
    )


@pytest.mark.parametrize(
    ("route", "running", "expected"),
    [
        pytest.param(
            _route([_endpoint(E1), _endpoint(E2, weight=50)]),
            [],
            [
                f"add server {BE}/{S1} {E1} weight 256",
                f"set server {BE}/{S1} state ready",
                f"add server {BE}/{S2} {E2} weight 128",
                f"set server {BE}/{S2} state ready",
            ],
            id="new-servers-added-then-set-ready",
        ),
        pytest.param(
            _route([_endpoint(E1, state="ejected"), _endpoint(E2, state="draining")]),
            [],
            [
                f"add server {BE}/{S1} {E1} weight 0",
                f"add server {BE}/{S2} {E2} weight 0",
                f"set server {BE}/{S2} state drain",
            ],
            id="new-ejected-stays-in-maintenance-it-starts-in",
        ),
        pytest.param(
            _route([_endpoint(E1), _endpoint(E2, weight=50)]),
            [_running(E1, 256), _running(E2, 128)],
            [],
            id="nothing-to-do-when-haproxy-matches",
        ),
        pytest.param(
            _route([_endpoint(E1), _endpoint(E2, weight=50)]),
            [_running(E1, 256), _running(E2, 256)],
            [f"set server {BE}/{S2} weight 128"],
            id="weight-change",
        ),
        pytest.param(
            _route([_endpoint(E1), _endpoint(E2, state="draining")]),
            [_running(E1, 256), _running(E2, 256)],
            [f"set server {BE}/{S2} weight 0", f"set server {BE}/{S2} state drain"],
            id="drain-sets-weight-then-state",
        ),
        pytest.param(
            _route([_endpoint(E1), _endpoint(E2)]),
            [_running(E1, 256), _running(E2, 0, "maint")],
            [f"set server {BE}/{S2} weight 256", f"set server {BE}/{S2} state ready"],
            id="un-ejected-gets-weight-before-ready",
        ),
        pytest.param(
            _route([_endpoint(E1)]),
            [_running(E1), _running(E2, state="ready", sessions=0)],
            [f"set server {BE}/{S2} state maint", f"del server {BE}/{S2}"],
            id="removed-idle-server-maint-then-deleted",
        ),
        pytest.param(
            _route([_endpoint(E1)]),
            [_running(E1), _running(E2, state="maint", sessions=0)],
            [f"del server {BE}/{S2}"],
            id="removed-server-already-in-maint-deleted",
        ),
        pytest.param(
            _route([_endpoint(E1)]),
            [_running(E1), _running(E2, state="ready", sessions=3)],
            [f"set server {BE}/{S2} state drain"],
            id="removed-busy-server-drains-first",
        ),
        pytest.param(
            _route([_endpoint(E1)]),
            [_running(E1), _running(E2, state="drain", sessions=1)],
            [],
            id="removed-draining-busy-server-waits",
        ),
        pytest.param(
            _route([_endpoint(E1), _endpoint(E3)]),
            [_running(E1), _running(E2), _running(E3, 100)],
            [
                f"set server {BE}/{S3} weight 256",
                f"set server {BE}/{S2} state maint",
                f"del server {BE}/{S2}",
            ],
            id="updates-before-retirements",
        ),
        pytest.param(
            _route([_endpoint(E1), _endpoint(E2, priority=1)]),
            [_running(E1), _running(E2)],
            [
                f"add server {BE}/{server_name(E2, backup=True)} {E2} weight 256 backup",
                f"set server {BE}/{server_name(E2, backup=True)} state ready",
                f"set server {BE}/{S2} state maint",
                f"del server {BE}/{S2}",
            ],
            id="becoming-backup-adds-backup-server-retires-old",
        ),
    ],
)
def test_plan(route: ServiceRoute, running: list[ServerState], expected: list[str]) -> None:
    assert plan(route, running) == expected


def test_plan_uses_the_given_backend_and_own_zone() -> None:
    route = _route([_endpoint(E1, "a"), _endpoint(E2, "b")], zone_shares={"b": {"b": 1.0}})

    commands = plan(route, [_running(E1), _running(E2)], backend="edge_web", own_zone="b")

    assert commands == ["set server edge_web/s_10_0_0_1_80 weight 0"]


def test_every_planned_command_has_a_reason() -> None:
    route = _route([_endpoint(E1), _endpoint(E3, state="ejected")])

    steps = plan_steps(route, [_running(E2, sessions=2)])

    assert steps
    assert all(step.reason for step in steps)


def test_plan_applied_to_its_own_result_is_empty() -> None:
    route = _route(
        [_endpoint(E1, "a", 300), _endpoint(E2, "b"), _endpoint(E3, state="draining")],
        zone_shares={"a": {"a": 0.6, "b": 0.4}},
    )
    after = [
        ServerState(
            name=server.name,
            address=server.address,
            weight=server.weight,
            state=server.state,
            backup=server.backup,
        )
        for server in desired_servers(route, "a")
    ]

    assert plan(route, after, own_zone="a") == []


# --- start-up config -------------------------------------------------------------------------


def _config_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_render_config_opens_an_admin_socket_and_one_proxy_pair_per_listening_service() -> None:
    routes = [
        _route([_endpoint(E1)]),
        ServiceRoute.model_validate({"name": "report-only", "endpoints": []}),
    ]

    lines = _config_lines(render_config(routes, socket="/run/ls/haproxy.sock"))

    assert lines[:3] == [
        "global",
        "stats socket /run/ls/haproxy.sock mode 600 level admin expose-fd listeners",
        "stats timeout 2m",
    ]
    assert "mode http" in lines
    assert "frontend fe_web" in lines
    assert "bind 127.0.0.1:8080" in lines
    assert "default_backend ls_web" in lines
    assert "backend ls_web" in lines
    assert "option allbackups" in lines
    assert not any("report-only" in line for line in lines)
    assert not any(line.startswith(("server", "server-template")) for line in lines)


@pytest.mark.parametrize(
    ("policy", "balance"),
    [
        pytest.param("round_robin", "balance roundrobin", id="round-robin"),
        pytest.param("least_request", "balance leastconn", id="least-request"),
        pytest.param("p2c_peak_ewma", "balance leastconn", id="p2c-peak-ewma"),
        pytest.param("random", "balance random(1)", id="random-one-draw"),
    ],
)
def test_render_config_uses_a_dynamic_algorithm(policy: str, balance: str) -> None:
    route = _route([_endpoint(E1)], policy=policy)

    assert balance in _config_lines(render_config([route], socket="/s.sock"))


def test_render_config_takes_timeouts_and_retries_from_the_route() -> None:
    route = _route(
        [_endpoint(E1)],
        timeouts=Timeouts(connect_seconds=0.25, per_try_seconds=2.5, overall_seconds=9),
        retries=RetryPolicy(max_attempts=3),
    )

    text = render_config([route], socket="/s.sock", backend_prefix="edge_")
    backend = _config_lines(text.split("backend edge_web", 1)[1])
    frontend = _config_lines(text.split("frontend fe_web", 1)[1].split("backend", 1)[0])

    assert "timeout client 9000ms" in frontend
    assert "timeout connect 250ms" in backend
    assert "timeout server 2500ms" in backend
    assert "retries 2" in backend  # three attempts in all: the first and two retries


@pytest.mark.parametrize(
    ("socket", "line"),
    [
        pytest.param(
            "127.0.0.1:9999",
            "stats socket ipv4@127.0.0.1:9999 level admin expose-fd listeners",
            id="tcp-ipv4",
        ),
        pytest.param(
            "[::1]:9999",
            "stats socket ipv6@::1:9999 level admin expose-fd listeners",
            id="tcp-ipv6",
        ),
        pytest.param(
            "haproxy.sock",
            "stats socket haproxy.sock mode 600 level admin expose-fd listeners",
            id="relative-unix-path",
        ),
    ],
)
def test_render_config_stats_socket_forms(socket: str, line: str) -> None:
    assert _config_lines(render_config([], socket=socket))[1] == line


def test_render_config_binds_ipv6_listen_host() -> None:
    text = render_config([_route([_endpoint(E1)])], socket="/s.sock", listen_host="::")

    assert "bind ipv6@:::8080" in _config_lines(text)
