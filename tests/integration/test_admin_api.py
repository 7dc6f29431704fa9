"""The controller's admin API over a fake orchestrator: workloads, policies, pause, decisions,
bottlenecks, recommendations and dry decisions. (The real orchestrators have their own tests.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from controller.app import CONTROLLER, ControllerContext, ControllerDeps, create_app
from controller.ports import (
    ContainerState,
    PodState,
    Resources,
    WorkloadRef,
    WorkloadState,
)
from shared.config import Settings, load_settings
from shared.wire import Decision, parse

from engine_fakes import Cluster, Metrics
from messages import TOKEN, decision, finding, report

AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEB = WorkloadRef("shop", "web", "Deployment")
DB = WorkloadRef("shop", "db", "StatefulSet")
MIB = 2**20


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


WORKLOADS: tuple[WorkloadState, ...] = (
    WorkloadState(
        ref=WEB,
        desired_replicas=2,
        ready_replicas=1,
        pods=(
            PodState(
                name="web-0",
                ready=True,
                node="node-1",
                address="10.0.0.5:8080",
                containers=(
                    ContainerState(
                        "app",
                        requests=Resources(cpu_millicores=250, memory_bytes=128 * MIB),
                        limits=Resources(memory_bytes=256 * MIB),
                    ),
                ),
            ),
            PodState(name="web-1", ready=False),
        ),
    ),
    WorkloadState(ref=DB, desired_replicas=1, ready_replicas=1),
)


def settings() -> Settings:
    return load_settings(
        environ={}, overrides={"token": TOKEN, "controller": {"agent_stale_after_seconds": 15}}
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def orchestrator() -> Cluster:
    """The two workloads; the admin API never scales, so a scale changes nothing here."""
    return Cluster({state.ref: state for state in WORKLOADS}, lambda ref, n, old: old)


@pytest.fixture
async def client(aiohttp_client: Any, clock: FakeClock, orchestrator: Cluster) -> TestClient:
    deps = ControllerDeps(clock=clock, orchestrator=orchestrator, source=Metrics({}, down=True))
    return await aiohttp_client(create_app(settings(), deps))  # type: ignore[no-any-return]


def context(client: TestClient) -> ControllerContext:
    app = client.app
    assert app is not None
    return app[CONTROLLER]


async def answer(client: TestClient, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with client.request(method, path, **kwargs) as response:
        assert response.content_type == "application/json", await response.text()
        return response.status, await response.json()


def policy(**changes: Any) -> dict[str, Any]:
    """An autoscaling/v2 HPA spec, as operators write it."""
    return {"minReplicas": 2, "maxReplicas": 10, **changes}


def cpu_target(percent: object) -> list[dict[str, Any]]:
    target = {"type": "Utilization", "averageUtilization": percent}
    return [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]


# --- workloads ---------------------------------------------------------------------------------


async def test_list_shows_every_workload_with_pods_policy_and_pause_state(
    client: TestClient,
) -> None:
    status, body = await answer(client, "GET", "/v1/workloads")
    assert status == 200
    db, web = body["workloads"]
    assert (db["name"], db["kind"], db["pods"], db["policy"], db["paused"]) == (
        "db",
        "StatefulSet",
        [],
        None,
        False,
    )
    assert (web["namespace"], web["desired_replicas"], web["ready_replicas"]) == ("shop", 2, 1)
    assert web["pods"][0] == {
        "name": "web-0",
        "ready": True,
        "node": "node-1",
        "address": "10.0.0.5:8080",
        "containers": [
            {
                "name": "app",
                "requests": {"cpu_millicores": 250, "memory_bytes": 128 * MIB},
                "limits": {"cpu_millicores": None, "memory_bytes": 256 * MIB},
            }
        ],
    }


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        pytest.param("web", "Deployment", id="deployment"),
        pytest.param("db", "StatefulSet", id="statefulset"),
    ],
)
async def test_one_workload_is_found_whatever_its_kind(
    client: TestClient, name: str, kind: str
) -> None:
    status, body = await answer(client, "GET", f"/v1/workloads/shop/{name}")
    assert status == 200
    assert (body["namespace"], body["name"], body["kind"]) == ("shop", name, kind)


MISSING_WORKLOADS = [
    pytest.param("/v1/workloads/shop/cart", id="unknown-name"),
    pytest.param("/v1/workloads/other/web", id="unknown-namespace"),
    pytest.param("/v1/workloads/Shop/web", id="uppercase-namespace"),
    pytest.param("/v1/workloads/shop/web%0A", id="trailing-newline"),
    pytest.param("/v1/workloads/shop/a%2Fb", id="encoded-slash"),
    pytest.param("/v1/workloads/shop/-web", id="leading-dash"),
    pytest.param(f"/v1/workloads/{'n' * 64}/web", id="namespace-too-long"),
    pytest.param(f"/v1/workloads/shop/{'w' * 254}", id="name-too-long"),
]


@pytest.mark.parametrize("path", MISSING_WORKLOADS)
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        pytest.param("GET", "", None, id="get"),
        pytest.param("PUT", "/policy", policy(), id="put-policy"),
        pytest.param("POST", "/pause", None, id="pause"),
        pytest.param("POST", "/resume", None, id="resume"),
    ],
)
async def test_unknown_or_malformed_workload_is_a_json_404(
    client: TestClient, path: str, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    status, answered = await answer(client, method, path + suffix, json=body, headers=AUTH)
    assert status == 404
    assert "no such workload" in answered["error"]
    assert context(client).controls.policies == {}
    assert context(client).controls.paused == set()


async def test_failing_orchestrator_is_a_503_not_a_500(
    client: TestClient, orchestrator: Cluster
) -> None:
    orchestrator.failing = True
    for method, path in [("GET", "/v1/workloads"), ("POST", "/v1/workloads/shop/web/pause")]:
        status, body = await answer(client, method, path, headers=AUTH)
        assert status == 503
        assert "api server unreachable" in body["error"]


# --- policy ------------------------------------------------------------------------------------


async def test_put_policy_stores_it_and_the_workload_shows_it(client: TestClient) -> None:
    status, body = await answer(
        client,
        "PUT",
        "/v1/workloads/shop/web/policy",
        json=policy(metrics=cpu_target(60)),
        headers=AUTH,
    )
    assert status == 200
    assert (body["minReplicas"], body["maxReplicas"]) == (2, 10)
    assert body["metrics"] == cpu_target(60)
    assert context(client).controls.policies[WEB].max_replicas == 10
    _, shown = await answer(client, "GET", "/v1/workloads/shop/web")
    assert (shown["policy"], shown["policy_origin"]) == (body, "api")
    _, other = await answer(client, "GET", "/v1/workloads/shop/db")
    assert other["policy"] is None


@pytest.mark.parametrize(
    ("headers", "body", "status", "named"),
    [
        pytest.param({}, policy(), 401, None, id="no-token-401"),
        pytest.param({"Authorization": "Bearer nope"}, policy(), 403, None, id="wrong-token-403"),
        pytest.param(
            AUTH, policy(minReplicas=5, maxReplicas=2), 400, "maxReplicas", id="min-above-max"
        ),
        pytest.param(AUTH, policy(maxReplica=3), 400, "maxReplica", id="unknown-field"),
        pytest.param(AUTH, {"minReplicas": 1}, 400, "maxReplicas", id="missing-field"),
        pytest.param(AUTH, policy(maxReplicas="3"), 400, "maxReplicas", id="string-number"),
        pytest.param(
            AUTH, policy(metrics=cpu_target(0)), 400, "averageUtilization", id="out-of-range"
        ),
        pytest.param(AUTH, [policy()], 400, "spec", id="not-an-object"),
    ],
)
async def test_refused_policy_changes_nothing(
    client: TestClient,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    named: str | None,
) -> None:
    answered_status, answered = await answer(
        client, "PUT", "/v1/workloads/shop/web/policy", json=body, headers=headers
    )
    assert answered_status == status
    if named is not None:
        assert named in answered["error"]
    assert context(client).controls.policies == {}


async def test_policy_that_is_not_json_is_a_400(client: TestClient) -> None:
    status, _ = await answer(
        client, "PUT", "/v1/workloads/shop/web/policy", data=b"{not json", headers=AUTH
    )
    assert status == 400


# --- pause and resume --------------------------------------------------------------------------


async def test_pause_then_resume_toggles_the_workload(client: TestClient) -> None:
    status, body = await answer(client, "POST", "/v1/workloads/shop/db/pause", headers=AUTH)
    assert (status, body) == (
        200,
        {"workload": {"namespace": "shop", "name": "db", "kind": "StatefulSet"}, "paused": True},
    )
    assert context(client).controls.paused == {DB}
    _, listed = await answer(client, "GET", "/v1/workloads")
    assert {w["name"]: w["paused"] for w in listed["workloads"]} == {"db": True, "web": False}

    for _ in range(2):  # resuming is idempotent
        status, body = await answer(client, "POST", "/v1/workloads/shop/db/resume", headers=AUTH)
        assert (status, body["paused"]) == (200, False)
    assert context(client).controls.paused == set()


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-token-401"),
        pytest.param({"Authorization": "Bearer nope"}, 403, id="wrong-token-403"),
    ],
)
@pytest.mark.parametrize("action", ["pause", "resume"])
async def test_pause_and_resume_need_the_token(
    client: TestClient, headers: dict[str, str], status: int, action: str
) -> None:
    answered, _ = await answer(client, "POST", f"/v1/workloads/shop/web/{action}", headers=headers)
    assert answered == status
    assert context(client).controls.paused == set()


# --- decisions ---------------------------------------------------------------------------------


def logged(**changes: Any) -> Decision:
    return parse(Decision, json.dumps(decision(**changes)))


@pytest.fixture
def five_decisions(client: TestClient) -> list[str]:
    """d1 (oldest) .. d5 (newest): scale, cache, scale, cache, scale."""
    log = context(client).decisions
    ids = []
    for index in range(1, 6):
        scale = index % 2 == 1
        log.append(
            logged(
                id=f"d{index}",
                kind="scale" if scale else "cache",
                target="shop/web" if scale else "l1/default",
                reason={"code": "cpu_above_target" if index < 4 else "idle", "message": "m"},
                decided_at=float(index * 10),
            )
        )
        ids.append(f"d{index}")
    return ids


async def test_decisions_page_newest_first_through_the_cursor(
    client: TestClient, five_decisions: list[str]
) -> None:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        status, body = await answer(client, "GET", "/v1/decisions", params=query)
        assert status == 200
        pages.append([d["id"] for d in body["decisions"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == [["d5", "d4"], ["d3", "d2"], ["d1"]]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({}, ["d5", "d4", "d3", "d2", "d1"], id="no-filter-newest-first"),
        pytest.param({"kind": "cache"}, ["d4", "d2"], id="kind"),
        pytest.param({"target": "shop/web"}, ["d5", "d3", "d1"], id="target"),
        pytest.param({"reason": "idle"}, ["d5", "d4"], id="reason-code"),
        pytest.param({"since": "20", "until": "40"}, ["d3", "d2"], id="since-inclusive-until-not"),
        pytest.param({"since": "2.5e1"}, ["d5", "d4", "d3"], id="exponent-number"),
        pytest.param({"kind": "scale", "reason": "idle"}, ["d5"], id="filters-combine"),
        pytest.param(
            {"kind": "", "limit": ""}, ["d5", "d4", "d3", "d2", "d1"], id="empty-is-unset"
        ),
        pytest.param({"target": "nobody"}, [], id="no-match"),
    ],
)
async def test_decisions_filter(
    client: TestClient, five_decisions: list[str], query: dict[str, str], expected: list[str]
) -> None:
    status, body = await answer(client, "GET", "/v1/decisions", params=query)
    assert status == 200
    assert [d["id"] for d in body["decisions"]] == expected
    assert body["next_cursor"] is None


async def test_decisions_are_answered_as_the_wire_model(
    client: TestClient, five_decisions: list[str]
) -> None:
    _, body = await answer(client, "GET", "/v1/decisions", params={"limit": "1"})
    (first,) = body["decisions"]
    assert parse(Decision, json.dumps(first)) == context(client).decisions.get("d5")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        pytest.param({"limit": "0"}, "limit", id="limit-zero"),
        pytest.param({"limit": "1001"}, "limit", id="limit-above-max"),
        pytest.param({"limit": "-1"}, "limit", id="limit-negative"),
        pytest.param({"limit": "2.0"}, "limit", id="limit-not-integer"),
        pytest.param({"limit": "ten"}, "limit", id="limit-not-number"),
        pytest.param({"since": "yesterday"}, "since", id="since-not-number"),
        pytest.param({"since": "nan"}, "since", id="since-nan"),
        pytest.param({"until": "1e999"}, "until", id="until-infinite"),
        pytest.param({"until": "1_000"}, "until", id="until-underscore"),
        pytest.param({"cursor": "abc"}, "cursor", id="cursor-not-ours"),
        pytest.param({"cursor": "9" * 30}, "cursor", id="cursor-too-long"),
        pytest.param({"kind": "sclae"}, "kind", id="unknown-kind"),
    ],
)
async def test_bad_decision_query_is_a_400_naming_the_parameter(
    client: TestClient, query: dict[str, str], named: str
) -> None:
    status, body = await answer(client, "GET", "/v1/decisions", params=query)
    assert status == 400
    assert body["error"].startswith(f"{named}:")


# --- bottlenecks -------------------------------------------------------------------------------


async def post_report(client: TestClient, body: dict[str, Any]) -> None:
    async with client.post(f"/v1/agents/{body['node']}/report", json=body, headers=AUTH) as r:
        assert r.status == 200, await r.text()


@pytest.fixture
async def reporting_agents(client: TestClient, clock: FakeClock) -> None:
    """node-0 went quiet (stale) with a finding; node-1 and node-2 are fresh."""
    await post_report(client, report(node="node-0", findings=[finding(subject="node/node-0")]))
    clock.now += 20
    await post_report(
        client,
        report(
            node="node-1",
            zone="a",
            findings=[
                finding(resource="cpu", severity="warning", subject="node/node-1"),
                finding(resource="memory", severity="critical", rule="mem_psi", subject="n1"),
            ],
        ),
    )
    await post_report(
        client,
        report(
            node="node-2",
            zone="b",
            findings=[finding(resource="cpu", severity="critical", subject="node/node-2")],
        ),
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            {},
            {"node-1": ["cpu/warning", "memory/critical"], "node-2": ["cpu/critical"]},
            id="all-fresh-nodes",
        ),
        pytest.param(
            {"resource": "cpu"},
            {"node-1": ["cpu/warning"], "node-2": ["cpu/critical"]},
            id="by-resource",
        ),
        pytest.param(
            {"severity": "critical"},
            {"node-1": ["memory/critical"], "node-2": ["cpu/critical"]},
            id="by-severity",
        ),
        pytest.param(
            {"resource": "cpu", "severity": "critical"},
            {"node-1": [], "node-2": ["cpu/critical"]},
            id="both",
        ),
        pytest.param({"resource": "fds"}, {"node-1": [], "node-2": []}, id="none-match"),
    ],
)
@pytest.mark.usefixtures("reporting_agents")
async def test_bottlenecks_come_from_fresh_agents_reports(
    client: TestClient, query: dict[str, str], expected: dict[str, list[str]]
) -> None:
    status, body = await answer(client, "GET", "/v1/bottlenecks", params=query)
    assert status == 200
    found = {
        node["node"]: [f"{f['resource']}/{f['severity']}" for f in node["findings"]]
        for node in body["nodes"]
    }
    assert found == expected
    assert {node["node"]: node["zone"] for node in body["nodes"]} == {"node-1": "a", "node-2": "b"}


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"resource": "gpu"}, id="unknown-resource"),
        pytest.param({"severity": "info"}, id="unknown-severity"),
        pytest.param({"resource": "CPU"}, id="wrong-case"),
    ],
)
async def test_bad_bottleneck_filter_is_a_400_naming_it(
    client: TestClient, query: dict[str, str]
) -> None:
    status, body = await answer(client, "GET", "/v1/bottlenecks", params=query)
    assert status == 400
    assert body["error"].startswith(f"{next(iter(query))}:")


# --- recommendations and decide ----------------------------------------------------------------

KNEE_CURVE = [
    {"capacity_bytes": 1 * MIB, "miss_ratio": 0.5},
    {"capacity_bytes": 64 * MIB, "miss_ratio": 0.1},
    {"capacity_bytes": 128 * MIB, "miss_ratio": 0.095},
    {"capacity_bytes": 1024 * MIB, "miss_ratio": 0.09},
]


async def test_recommendations_hold_the_l1_size_decision(
    client: TestClient, clock: FakeClock
) -> None:
    status, body = await answer(client, "GET", "/v1/recommendations")
    assert status == 200
    (l1,) = body["recommendations"]
    assert (l1["kind"], l1["target"]) == ("cache", "l1/default")
    # No agent, no curve and no current size: the minimum bound.
    assert (l1["from_value"], l1["to_value"], l1["reason"]["code"]) == (
        0,
        16 * MIB,
        "clamped_to_min",
    )

    await post_report(
        client, report(cache_mrc=KNEE_CURVE, cache_capacity_bytes=32 * MIB, sent_at=clock.now)
    )
    _, body = await answer(client, "GET", "/v1/recommendations")
    (l1,) = body["recommendations"]
    parse(Decision, json.dumps(l1))
    assert (l1["from_value"], l1["to_value"]) == (32 * MIB, 64 * MIB)
    assert l1["reason"]["code"] == "knee_of_curve"


def decide(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "cache_l1_size",
        "curves": [KNEE_CURVE, KNEE_CURVE[:2]],
        "current_capacity_bytes": 32 * MIB,
        **changes,
    }


async def test_decide_evaluates_without_acting(client: TestClient, orchestrator: Cluster) -> None:
    status, body = await answer(client, "POST", "/v1/decide", json=decide(), headers=AUTH)
    assert status == 200
    decided = parse(Decision, json.dumps(body))
    assert (decided.kind, decided.from_value, decided.reason.inputs["nodes"]) == (
        "cache",
        32 * MIB,
        2,
    )
    assert decided.reason.code == "knee_of_curve"
    assert isinstance(decided.to_value, float)
    assert 16 * MIB <= decided.to_value <= 64 * MIB
    assert len(context(client).decisions) == 0
    assert (orchestrator.scaled, orchestrator.resized) == ([], [])


async def test_decide_keeps_the_size_without_curves(client: TestClient) -> None:
    status, body = await answer(
        client,
        "POST",
        "/v1/decide",
        json=decide(curves=[], current_capacity_bytes=64 * MIB),
        headers=AUTH,
    )
    assert status == 200
    assert (body["to_value"], body["reason"]["code"]) == (64 * MIB, "no_curve")


@pytest.mark.parametrize(
    ("headers", "body", "status", "named"),
    [
        pytest.param({}, decide(), 401, None, id="no-token-401"),
        pytest.param({"Authorization": "Bearer nope"}, decide(), 403, None, id="wrong-token-403"),
        pytest.param(AUTH, decide(kind="scale"), 400, "kind", id="unknown-kind"),
        pytest.param(AUTH, {"curves": []}, 400, "kind", id="missing-kind"),
        pytest.param(AUTH, decide(extra=1), 400, "extra", id="unknown-field"),
        pytest.param(
            AUTH,
            decide(curves=[[{"capacity_bytes": 1, "miss_ratio": 1.5}]]),
            400,
            "miss_ratio",
            id="miss-ratio-above-one",
        ),
        pytest.param(
            AUTH,
            decide(curves=[[{"capacity_bytes": 10**30, "miss_ratio": 0.5}]]),
            400,
            "curves",
            id="capacity-too-large",
        ),
        pytest.param(
            AUTH,
            decide(curves=[KNEE_CURVE * 16] * 20),
            400,
            "curves",
            id="too-many-points",
        ),
        pytest.param(
            AUTH, decide(current_capacity_bytes=-1), 400, "current_capacity_bytes", id="negative"
        ),
    ],
)
async def test_refused_decide_input_names_the_field(
    client: TestClient,
    headers: dict[str, str],
    body: dict[str, Any],
    status: int,
    named: str | None,
) -> None:
    answered_status, answered = await answer(
        client, "POST", "/v1/decide", json=body, headers=headers
    )
    assert answered_status == status
    if named is not None:
        assert any(named in problem["field"].split(".") for problem in answered["fields"])


def horizontal(**changes: Any) -> dict[str, Any]:
    """Kubernetes' TestScaleUp as a decide input: 1.5 cores used of 3 at a 30 % target -> 5."""
    cpu = {"type": "Utilization", "averageUtilization": 30}
    return {
        "kind": "horizontal",
        "now": 1_700_000_000,
        "policy": {
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": cpu}}],
        },
        "currentReplicas": 3,
        "pods": [
            {"name": f"p{i}", "requests": {"cpu": "1"}, "metrics": {"cpu": level}}
            for i, level in enumerate(["300m", "500m", "700m"])
        ],
        **changes,
    }


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        pytest.param(horizontal(), 200, 5, id="scale-up"),
        pytest.param(horizontal(currentReplicas=0), 200, 0, id="zero-means-disabled"),
        pytest.param(horizontal(pods=[{"name": "p0"}]), 422, None, id="no-metric-at-all-422"),
        pytest.param(horizontal(currentReplicas=-1), 400, None, id="negative-replicas-400"),
    ],
)
async def test_decide_horizontal_answers_like_the_hpa(
    client: TestClient, body: dict[str, Any], status: int, expected: int | None
) -> None:
    answered_status, answered = await answer(client, "POST", "/v1/decide", json=body, headers=AUTH)
    assert answered_status == status, answered
    if expected is not None:
        assert answered["desiredReplicas"] == expected
    else:
        assert answered["error"]
