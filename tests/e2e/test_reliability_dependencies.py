"""End-to-end reliability when a dependency fails or a client misbehaves, on real processes.

- Redis stops and comes back under a cache load on two real agents: callers see no error,
  the hit ratio holds on L1 and recovers after the restart, the agents' L2 state goes down
  and up.
- The controller's metrics Prometheus stops: nothing scales down on the missing data, the
  ``LinescaleMetricsSourceUnhealthy`` alert goes through a second Prometheus and a real
  Alertmanager to a webhook, it resolves when the source returns, and the workload scales in.
- Bad input on every surface of a running agent and controller (and their command lines) is
  refused with the documented 4xx naming the problem, and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from controller.app import ControllerDeps, create_app
from controller.orchestrators.local import LocalOrchestrator
from controller.ports import WorkloadRef
from controller.sources.prometheus import PrometheusSource
from shared.cache_client import CacheClient, CacheError
from shared.config import load_settings

import messages
from alerting import (
    RECORDING_RULES,
    drain_notifications,
    example_alertmanager,
    rules_with_short_for,
)
from demand_exporter import Demand, Exporter, local_replicas, requests_policy, serve_demand
from kube_api_double import KubeApiDouble, deployment, pods_for, serve_in_thread, write_kubeconfig
from kube_rbac import CONTROLLER_RBAC
from messages import TOKEN
from services import (
    AlertmanagerFactory,
    ControlledRedis,
    LinescaleFactory,
    LinescaleServer,
    PrometheusFactory,
    http_sink,
    start_linescale,
)
from waiting import eventually, eventually_async

pytestmark = [pytest.mark.services, pytest.mark.timeout(180)]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only


def send(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """One request with exactly these bytes and headers; (status, JSON or text) whatever the
    status, so tables can state the refusals they expect."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with _OPENER.open(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
        error.close()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


# --------------------------------------------------------------------------------------------
# 1. Redis killed and restarted under load
# --------------------------------------------------------------------------------------------

NAMESPACE = "parts"
KEYS = 400  # a Zipf-ish key set: rank r is asked with weight 1 / r
VALUE_BYTES = 512
RECOVERY_POINTS = 0.05  # "within a few points" of the pre-outage hit ratio
WINDOW = 400  # requests per hit-ratio measurement


def start_cache_agent(factory: LinescaleFactory, node: str, redis_url: str) -> LinescaleServer:
    return factory(
        "agent",
        ["--node", node, "--zone", "a", "--redis", redis_url],
        env={"LINESCALE_TOKEN": TOKEN, "LINESCALE_AGENT__CACHE__REDIS_TIMEOUT_SECONDS": "0.2"},
    )


@dataclass
class CacheLoad:
    """Get-or-compute-and-set on a Zipf-ish key set through two agents, counting what the
    caller sees: hits, misses, and every error a call raised."""

    clients: list[CacheClient]
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    outcomes: list[bool] = field(default_factory=list)  # True: a hit
    errors: list[str] = field(default_factory=list)
    l1_only_puts: int = 0

    def __post_init__(self) -> None:
        self._keys = [f"item:{rank}" for rank in range(KEYS)]
        self._weights = [1 / (rank + 1) for rank in range(KEYS)]

    def one(self) -> None:
        key = self.rng.choices(self._keys, self._weights)[0]
        client = self.rng.choice(self.clients)
        hit = None
        try:
            hit = client.get(NAMESPACE, key)
            if hit is None:
                value = key.encode().ljust(VALUE_BYTES, b".")  # "computed"
                if client.put(NAMESPACE, key, value, ttl_seconds=300) == 0:
                    self.l1_only_puts += 1
            elif not hit.value.startswith(key.encode()):
                self.errors.append(f"{key}: wrong value {hit.value[:20]!r}")
        except CacheError as error:
            self.errors.append(f"{key}: {error}")
        self.outcomes.append(hit is not None)

    def run(self, requests: int) -> float:
        """Send ``requests`` calls; their hit ratio."""
        start = len(self.outcomes)
        for _ in range(requests):
            self.one()
        window = self.outcomes[start:]
        return sum(window) / len(window)


def l2_states(load: CacheLoad, agents: list[LinescaleServer]) -> list[bool]:
    """Keep the load going a little, then each agent's L2 state as its stats show it."""
    load.run(50)
    states = []
    for agent in agents:
        with CacheClient(agent.url, TOKEN) as client:
            states.append(bool(client.stats()["l2"]["available"]))
    return states


def l1_flushed(load: CacheLoad, agents: list[LinescaleServer]) -> list[bool]:
    """Keep the load going a little, then whether each agent flushed its L1 on resubscribing."""
    load.run(50)
    flushes = 'linescale_cache_invalidations_total{kind="namespace",source="channel_lost"}'
    return [metric(agent, flushes) >= 1 for agent in agents]


def test_redis_outage_under_load_gives_no_caller_error_and_the_hit_ratio_recovers(
    linescale_factory: LinescaleFactory, controlled_redis: ControlledRedis
) -> None:
    agents = [start_cache_agent(linescale_factory, f"node-{n}", controlled_redis.url) for n in "ab"]
    clients = [CacheClient(agent.url, TOKEN, fail_open_reads=False) for agent in agents]
    load = CacheLoad(clients)
    try:
        load.run(3000)  # warm both L1s and Redis
        before = load.run(WINDOW * 2)
        assert load.l1_only_puts == 0

        controlled_redis.stop()
        during = load.run(WINDOW * 2)
        eventually(lambda: not any(l2_states(load, agents)), 10, "L2 marked down", poll=0)
        during_more = load.run(WINDOW)
        gauges_down = [metric(agent, "linescale_cache_l2_available") for agent in agents]
        puts_during_outage = load.l1_only_puts

        controlled_redis.restart()
        restarted_at = len(load.outcomes)
        # The agents find Redis again through the load's own calls (a probe per backoff), and
        # their invalidation bus subscribes again and flushes L1 (messages sent in the gap are
        # lost): the hit ratio dips there, and must climb back.
        eventually(lambda: all(l2_states(load, agents)), 15, "L2 back on both agents", poll=0)
        l1_only_puts_at_recovery = load.l1_only_puts
        eventually(lambda: all(l1_flushed(load, agents)), 30, "both L1s flushed", poll=0)
        after: list[float] = []

        def recovered() -> bool:
            after.append(load.run(WINDOW))
            return after[-1] >= before - RECOVERY_POINTS

        eventually(recovered, 30, f"hit ratio back to {before:.3f} - {RECOVERY_POINTS}", poll=0)
        since_restart = load.outcomes[restarted_at:]
        dip = min(
            sum(since_restart[i : i + WINDOW]) / WINDOW
            for i in range(0, len(since_restart) - WINDOW + 1, WINDOW // 4)
        )
        gauges = [metric(agent, "linescale_cache_l2_available") for agent in agents]
    finally:
        for client in clients:
            client.close()

    print(
        f"hit ratio before {before:.3f}, during {during:.3f}/{during_more:.3f}, "
        f"lowest after restart {dip:.3f}, recovered {[round(r, 3) for r in after]} "
        f"over {len(since_restart)} calls; L1-only puts {puts_during_outage}"
    )
    assert load.errors == []
    # L1 keeps serving what it holds: the outage costs at most a few points.
    assert min(during, during_more) >= before - 0.1
    assert puts_during_outage > 0  # writes went on, L1 only, answered with success
    assert load.l1_only_puts == l1_only_puts_at_recovery  # and reach Redis again after it
    assert (gauges_down, gauges) == ([0.0, 0.0], [1.0, 1.0])


def test_an_idle_agent_reports_redis_back_without_waiting_for_traffic(
    linescale_factory: LinescaleFactory, controlled_redis: ControlledRedis
) -> None:
    agent = start_cache_agent(linescale_factory, "node-idle", controlled_redis.url)
    with CacheClient(agent.url, TOKEN) as client:
        client.put("parts", "p-1", b"v")
        controlled_redis.stop()
        client.get("parts", "p-2")  # the one call that meets the outage
        eventually(
            lambda: metric(agent, "linescale_cache_l2_available") == 0, 10, "L2 down", poll=0.1
        )
        controlled_redis.restart()
        # No cache call from here on: the agent's own probe must find Redis back, or
        # LinescaleCacheL2Down would keep firing on a quiet node.
        eventually(
            lambda: metric(agent, "linescale_cache_l2_available") == 1, 20, "L2 back", poll=0.2
        )


def metric(server: LinescaleServer, series: str) -> float:
    """One series' value from a server's /metrics (0 when it has no sample yet)."""
    _, text = send("GET", f"{server.url}/metrics")
    for line in text.splitlines():
        if line.startswith(f"{series} "):
            return float(line.split()[-1])
    return 0.0


# --------------------------------------------------------------------------------------------
# 2. The metrics Prometheus killed: hold, alert, resolve, scale in
# --------------------------------------------------------------------------------------------

ORDERS = WorkloadRef("line", "orders", "Local")
SOURCE_ALERT = "LinescaleMetricsSourceUnhealthy"
PER_REPLICA_RPS = 10
POLICY = requests_policy(1, 4, PER_REPLICA_RPS)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def orders(tmp_path: Path) -> AsyncIterator[LocalOrchestrator]:
    """One local workload of tiny HTTP servers, at one replica."""
    async with local_replicas(tmp_path / "logs", ORDERS.name, ORDERS.namespace) as local:
        yield local


@pytest.fixture
def orders_demand() -> Iterator[tuple[Demand, Exporter]]:
    """The workload's request counter, served for Prometheus to scrape."""
    demand = Demand()
    exporter = serve_demand(demand)
    try:
        yield demand, exporter
    finally:
        exporter.close()


async def test_source_prometheus_outage_holds_replicas_alerts_and_recovers(
    aiohttp_client: Any,
    prometheus_factory: PrometheusFactory,
    alertmanager_factory: AlertmanagerFactory,
    orders: LocalOrchestrator,
    orders_demand: tuple[Demand, Exporter],
    tmp_path: Path,
) -> None:
    demand, exporter = orders_demand
    demand.set(35)  # 35 requests/s against 10 per replica: 4 replicas
    source_prometheus = prometheus_factory({"orders": [exporter.address]}, scrape_interval="1s")
    await asyncio.to_thread(source_prometheus.wait_for_targets_up, "orders")

    async def rate_settled() -> bool:
        result = await asyncio.to_thread(
            source_prometheus.query, "sum(rate(http_requests_total[4s]))"
        )
        return bool(result) and abs(float(result[0]["value"][1]) - 35) < 2

    await eventually_async(rate_settled, 20, "the source sees 35 requests/s")
    with http_sink() as (sink_port, received):
        alertmanager = example_alertmanager(alertmanager_factory, sink_port)
        settings = load_settings(
            environ={},
            overrides={
                "token": TOKEN,
                "controller": {"scaling_interval_seconds": 0.5, "reconcile_interval_seconds": 0.5},
            },
        )
        source = PrometheusSource(
            source_prometheus.url, scrape_interval_seconds=1, timeout_seconds=2
        )
        app = create_app(settings, ControllerDeps(source=source, orchestrator=orders))
        client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
        # The second Prometheus watches the controller as an operator's would, with the real
        # rules; only the alert's "for: 5m" is cut to a few evaluations.
        rules = rules_with_short_for(tmp_path / "alerts.yaml", [SOURCE_ALERT], for_="3s")
        monitor = await asyncio.to_thread(
            prometheus_factory,
            {"linescale-controller": [f"127.0.0.1:{client.server.port}"]},
            rule_files=[RECORDING_RULES, rules],
            alertmanager=alertmanager.address,
        )
        await asyncio.to_thread(monitor.wait_for_targets_up, "linescale-controller")
        put = await client.put("/v1/workloads/line/orders/policy", json=POLICY, headers=AUTH)
        assert put.status == 200, await put.text()

        async def replicas() -> int:
            state = await orders.get_workload(ORDERS)
            assert state is not None
            return state.desired_replicas

        async def decisions(**query: str) -> list[dict[str, Any]]:
            answer = await client.get("/v1/decisions", params={"target": str(ORDERS), **query})
            found: list[dict[str, Any]] = (await answer.json())["decisions"]
            return found

        async def at(count: int) -> bool:  # a scale decision is logged once it is done
            latest = await decisions(kind="scale", limit="1")
            return await replicas() == count and bool(latest) and latest[0]["to_value"] == count

        await eventually_async(lambda: at(4), 30, "scale-up to 4")
        notifications: list[tuple[str, dict[str, Any]]] = []

        async def notified(status: str) -> bool:
            notifications.extend(drain_notifications(received, SOURCE_ALERT))
            return any(alert["status"] == status for _, alert in notifications)

        assert not await notified("firing")  # a healthy source raises nothing

        async def scaling_passes() -> float:
            text = await (await client.get("/metrics")).text()
            return sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith('linescale_reconcile_total{engine="scalability"')
            )

        # The source goes away, and the load with it: nothing may scale down on no data.
        await asyncio.to_thread(source_prometheus.process.stop)
        demand.set(0)
        passes_before = await scaling_passes()
        await eventually_async(lambda: notified("firing"), 60, f"{SOURCE_ALERT} at the webhook")
        assert await replicas() == 4
        assert await scaling_passes() - passes_before >= 3  # several passes, all held
        held = await decisions(reason="metrics_unavailable")
        assert held, "the hold is logged"
        assert all((d["from_value"], d["to_value"]) == (4, 4) for d in held)

        # The source is back: the alert resolves and, the load being gone, it scales in.
        await asyncio.to_thread(source_prometheus.restart)
        await eventually_async(lambda: notified("resolved"), 60, f"{SOURCE_ALERT} resolved")
        await eventually_async(lambda: at(1), 40, "scale-in to 1 after recovery")

    fired = [alert for path, alert in notifications if alert["status"] == "firing"]
    assert {path for path, _ in notifications} == {"/linescale-tickets"}  # a warning: tickets
    assert fired[0]["labels"] == {
        "alertname": SOURCE_ALERT,
        "severity": "warning",
        "source": "PrometheusSource",
        "job": "linescale-controller",
        "instance": f"127.0.0.1:{client.server.port}",
    }
    assert fired[0]["annotations"]["runbook_url"].endswith("#linescalemetricssourceunhealthy")


# --------------------------------------------------------------------------------------------
# 3. Bad input everywhere, against a running agent and controller
# --------------------------------------------------------------------------------------------

WRONG = {"Authorization": "Bearer not-the-token-0123456789"}
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}
OVERSIZED = b'{"padding": "' + b"x" * (2 * 2**20) + b'"}'  # both max_body_bytes default to 1 MiB
KUBE_TOKEN = "controller-sa-token"


def as_json(body: Any) -> bytes:
    return json.dumps(body).encode()


def names(answer: Any, fragment: str) -> bool:
    """Whether a refusal's error message, or one of the fields it lists, names ``fragment``."""
    if not isinstance(answer, dict):
        return False
    fields = [f"{f.get('field')}: {f.get('message')}" for f in answer.get("fields", [])]
    return any(fragment in text for text in [str(answer.get("error", "")), *fields])


@dataclass(frozen=True)
class Refusal:
    """One bad request and how it must be refused: ``status`` and a fragment the error names."""

    method: str
    path: str
    body: bytes | None
    headers: Mapping[str, str]
    status: int
    named: str


def refusal(
    method: str,
    path: str,
    body: Any,
    status: int,
    named: str,
    headers: Mapping[str, str] = JSON_AUTH,
    case: str = "",
) -> Any:
    raw = body if isinstance(body, bytes) or body is None else as_json(body)
    return pytest.param(Refusal(method, path, raw, headers, status, named), id=case)


def check_refused(base_url: str, bad: Refusal) -> Any:
    status, answer = send(bad.method, base_url + bad.path, bad.body, bad.headers)
    assert status == bad.status, answer
    assert names(answer, bad.named), f"{bad.named!r} not named in {answer}"
    return answer


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinescaleServer]:
    """A real agent process holding routing v3 and tuning v1, pushed as the controller would."""
    binary = str(Path(sys.executable).parent / "linescale")
    workdir = tmp_path_factory.mktemp("agent")
    env = {"LINESCALE_TOKEN": TOKEN}
    with start_linescale(
        binary, workdir, "agent", ["--node", "node-1", "--zone", "a"], env=env
    ) as server:
        for kind, body in (("routing", messages.routing()), ("tuning", messages.tuning())):
            status, answer = send("PUT", f"{server.url}/v1/{kind}", as_json(body), JSON_AUTH)
            assert (status, answer["status"]) == (200, "applied"), answer
        yield server


def agent_state(agent: LinescaleServer) -> list[Any]:
    return [send("GET", f"{agent.url}{path}") for path in ("/v1/routing", "/v1/tuning", "/readyz")]


AGENT_PUSHES = [
    refusal("PUT", "/v1/routing", b'{"version": 4,', 400, "JSON", case="routing-bad-json"),
    refusal("PUT", "/v1/routing", b"[]", 400, "RoutingTable", case="routing-not-an-object"),
    refusal(
        "PUT",
        "/v1/routing",
        messages.routing(version=4, services="order-intake"),
        400,
        "services",
        case="routing-wrong-schema",
    ),
    refusal(
        "PUT",
        "/v1/routing",
        messages.routing(version=4, schema_version=99),
        400,
        "schema_version",
        case="routing-unknown-schema-version",
    ),
    refusal(
        "PUT",
        "/v1/routing",
        messages.routing(version=4, colour="red"),
        400,
        "colour",
        case="routing-unknown-field",
    ),
    refusal(
        "PUT", "/v1/routing", messages.routing(version=4), 401, "token", {}, "routing-no-token"
    ),
    refusal(
        "PUT",
        "/v1/routing",
        messages.routing(version=4),
        403,
        "token",
        {**WRONG, "Content-Type": "application/json"},
        "routing-wrong-token",
    ),
    refusal("PUT", "/v1/routing", OVERSIZED, 413, "larger than", case="routing-oversized"),
    refusal(
        "PUT",
        "/v1/tuning",
        messages.tuning(version=2, cache={"capacity_bytes": -1}),
        400,
        "capacity_bytes",
        case="tuning-wrong-schema",
    ),
    refusal(
        "PUT",
        "/v1/tuning",
        messages.tuning(version=2, turbo=True),
        400,
        "turbo",
        case="tuning-unknown-field",
    ),
    refusal("PUT", "/v1/tuning", OVERSIZED, 413, "larger than", case="tuning-oversized"),
]


@pytest.mark.parametrize("bad", AGENT_PUSHES)
def test_a_malformed_push_to_the_agent_is_refused_and_changes_nothing(
    agent: LinescaleServer, bad: Refusal
) -> None:
    before = agent_state(agent)
    check_refused(agent.url, bad)
    assert agent_state(agent) == before


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        pytest.param("routing", messages.routing(version=2), id="routing-older"),
        pytest.param("routing", messages.routing(services=[]), id="routing-same-version"),
        pytest.param("tuning", messages.tuning(collector_interval_seconds=60), id="tuning-same"),
    ],
)
def test_an_older_push_is_answered_stale_and_changes_nothing(
    agent: LinescaleServer, kind: str, body: dict[str, Any]
) -> None:
    """Documented as a 200 "stale", not an error: a re-sent or reordered push is harmless."""
    before = agent_state(agent)
    status, answer = send("PUT", f"{agent.url}/v1/{kind}", as_json(body), JSON_AUTH)
    assert (status, answer["status"]) == (200, "stale"), answer
    assert "not newer" in answer["message"]
    assert agent_state(agent) == before


@dataclass
class RunningController:
    server: LinescaleServer
    kube: KubeApiDouble


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningController]:
    """A real controller process on a (double) Kubernetes API holding Deployment line/orders
    at 3 replicas, with one agent reported and a policy set. Its engines run once at start
    and then not for an hour, so nothing but the requests under test can change its state."""
    double = KubeApiDouble(tokens={KUBE_TOKEN: set(CONTROLLER_RBAC)})
    orders_deployment = double.add(deployment("orders", "line", replicas=3))
    for pod in pods_for(orders_deployment):
        double.add(pod)
    workdir = tmp_path_factory.mktemp("controller")
    env = {
        "LINESCALE_TOKEN": TOKEN,
        "LINESCALE_CONTROLLER__LEADER_ELECTION": "false",
        **{
            f"LINESCALE_CONTROLLER__{engine}_INTERVAL_SECONDS": "3600"
            for engine in ("SCALING", "BALANCING", "PERFORMANCE", "VERTICAL", "RESOURCE")
        },
    }
    binary = str(Path(sys.executable).parent / "linescale")
    with serve_in_thread(double.app()) as kube_url:
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", kube_url, KUBE_TOKEN)
        args = ["--orchestrator", "kubernetes", "--kubeconfig", str(kubeconfig)]
        with start_linescale(binary, workdir, "controller", args, env=env) as server:
            report = messages.report(endpoint="http://127.0.0.1:9")  # pushes to it go nowhere
            status, answer = send(
                "POST", f"{server.url}/v1/agents/node-1/report", as_json(report), JSON_AUTH
            )
            assert status == 200, answer
            status, answer = send(
                "PUT", f"{server.url}{ORDERS_POLICY}", as_json(VALID_POLICY), JSON_AUTH
            )
            assert status == 200, answer
            eventually(lambda: first_passes_done(server), 30, "every engine's first pass")
            yield RunningController(server, double)


ENGINES = ("push", "scalability", "balancing", "resources", "performance", "vertical")


def first_passes_done(server: LinescaleServer) -> bool:
    """Whether every engine finished its first pass (the only one for an hour)."""
    _, text = send("GET", f"{server.url}/metrics")
    finished = {
        line.split('"')[1]
        for line in text.splitlines()
        if line.startswith("linescale_reconcile_duration_seconds_count{")
        and float(line.split()[-1]) >= 1
    }
    return finished >= set(ENGINES)


ORDERS_POLICY = "/v1/workloads/line/orders/policy"
VALID_POLICY = {"minReplicas": 2, "maxReplicas": 6}


def controller_state(running: RunningController) -> dict[str, Any]:
    """What a refused request must leave alone: the agents and their reports, the held
    versions, the workload's policy, pause state and replicas, and the decision log."""
    url = running.server.url
    _, agents = send("GET", f"{url}/v1/agents")
    _, status = send("GET", f"{url}/v1/status")
    _, workloads = send("GET", f"{url}/v1/workloads")
    _, decisions = send("GET", f"{url}/v1/decisions?limit=1000")
    deployment_now = running.kube.find("deployments", "line", "orders")
    assert deployment_now is not None
    return {
        "agents": [(a["node"], a["reports"], a["report"]) for a in agents["agents"]],
        "versions": (
            status["controller"]["routing_version"],
            status["controller"]["tuning_version"],
        ),
        "workloads": workloads,
        "decisions": decisions["decisions"],
        "replicas": deployment_now["spec"]["replicas"],
        "held": [send("GET", f"{url}/v1/{kind}") for kind in ("routing", "tuning")],
    }


def report_path(node: str = "node-1") -> str:
    return f"/v1/agents/{node}/report"


CONTROLLER_REFUSALS = [
    # Agent reports.
    refusal("POST", report_path(), b"{", 400, "JSON", case="report-bad-json"),
    refusal(
        "POST",
        report_path(),
        {k: v for k, v in messages.report().items() if k != "zone"},
        400,
        "zone",
        case="report-missing-field",
    ),
    refusal(
        "POST",
        report_path(),
        messages.report(zone="z-evil", mood="happy"),
        400,
        "mood",
        case="report-unknown-field",
    ),
    refusal(
        "POST",
        report_path(),
        messages.report(health="great"),
        400,
        "health",
        case="report-wrong-schema",
    ),
    refusal(
        "POST",
        report_path("node-2"),
        messages.report(zone="z-evil"),
        400,
        "node",
        case="report-for-another-node",
    ),
    refusal(
        "POST", report_path(), messages.report(zone="z-evil"), 401, "token", {}, "report-no-token"
    ),
    refusal(
        "POST",
        report_path("node-9"),
        messages.report(node="node-9"),
        403,
        "token",
        WRONG,
        "report-wrong-token",
    ),
    refusal("POST", report_path(), OVERSIZED, 413, "larger than", case="report-oversized"),
    # Scaling policies through the admin API.
    refusal(
        "PUT",
        ORDERS_POLICY,
        {"minReplicas": 5, "maxReplicas": 2},
        400,
        "maxReplicas",
        case="policy-min-above-max",
    ),
    refusal(
        "PUT",
        ORDERS_POLICY,
        {"maxReplicas": 6, "metrics": [{"type": "Telepathy"}]},
        400,
        "metrics.0",
        case="policy-unknown-metric-type",
    ),
    refusal(
        "PUT",
        ORDERS_POLICY,
        {"maxReplicas": 6, "metrics": [{"type": "Resource", "resource": {"name": "cpu"}}]},
        400,
        "target",
        case="policy-metric-without-target",
    ),
    refusal(
        "PUT",
        ORDERS_POLICY,
        {"maxReplicas": 6, "vertical": {"mode": "Sideways"}},
        400,
        "vertical.mode",
        case="policy-unknown-vertical-mode",
    ),
    refusal(
        "PUT",
        ORDERS_POLICY,
        {"maxReplicas": 6, "replicas": 3},
        400,
        "replicas",
        case="policy-unknown-field",
    ),
    refusal("PUT", ORDERS_POLICY, b"maxReplicas: [", 400, "JSON", case="policy-not-json"),
    refusal("PUT", ORDERS_POLICY, [VALID_POLICY], 400, "object", case="policy-not-an-object"),
    refusal("PUT", ORDERS_POLICY, OVERSIZED, 413, "larger than", case="policy-oversized"),
    refusal("PUT", ORDERS_POLICY, {"maxReplicas": 1}, 401, "token", {}, "policy-no-token"),
    refusal(
        "PUT",
        "/v1/workloads/line/ghost/policy",
        VALID_POLICY,
        404,
        "line/ghost",
        case="policy-unknown-workload",
    ),
    refusal(
        "PUT",
        "/v1/workloads/Line/orders/policy",
        VALID_POLICY,
        404,
        "Kubernetes names",
        case="policy-malformed-workload-name",
    ),
    refusal(
        "POST", "/v1/workloads/line/ghost/pause", None, 404, "line/ghost", AUTH, "pause-unknown"
    ),
    # Decision inputs (evaluated without acting).
    refusal("POST", "/v1/decide", b"[1,", 400, "JSON", case="decide-bad-json"),
    refusal("POST", "/v1/decide", {"kind": "astrology"}, 400, "kind", case="decide-unknown-kind"),
    refusal(
        "POST",
        "/v1/decide",
        {
            "kind": "horizontal",
            "now": 1_700_000_000,
            "policy": VALID_POLICY,
            "currentReplicas": -1,
            "pods": [],
        },
        400,
        "currentReplicas",
        case="decide-negative-replicas",
    ),
    refusal(
        "POST",
        "/v1/decide",
        {
            "kind": "horizontal",
            "now": 1_700_000_000,
            "policy": VALID_POLICY,
            "currentReplicas": 3,
            "pods": [{"name": "p0"}],
        },
        422,
        "no metric could be computed",
        case="decide-not-computable",
    ),
    refusal(
        "POST",
        "/v1/decide",
        {"kind": "cache_l1_size", "curves": [], "current_capacity_bytes": -1},
        400,
        "current_capacity_bytes",
        case="decide-negative-capacity",
    ),
    refusal("POST", "/v1/decide", {"kind": "horizontal"}, 401, "token", {}, "decide-no-token"),
]


@pytest.mark.parametrize("bad", CONTROLLER_REFUSALS)
def test_a_bad_request_to_the_controller_is_refused_and_changes_nothing(
    controller: RunningController, bad: Refusal
) -> None:
    before = controller_state(controller)
    check_refused(controller.server.url, bad)
    assert controller_state(controller) == before


CONFIG_TOKEN_ENV = {"LINESCALE_TOKEN": TOKEN}


@pytest.mark.parametrize(
    ("role", "env", "file_text", "named"),
    [
        pytest.param(
            "agent",
            {"LINESCALE_AGENT__CACHE__CAPACITY_BYTES": "1"},
            None,
            "agent.cache.capacity_bytes",
            id="agent-env-out-of-range",
        ),
        pytest.param(
            "agent",
            {"LINESCALE_AGENT__CACHE__REDIS_TIMEOUT_SECONDS": "soon"},
            None,
            "agent.cache.redis_timeout_seconds",
            id="agent-env-not-a-number",
        ),
        pytest.param("agent", {}, "agent: [node-1\n", "not valid YAML", id="agent-file-not-yaml"),
        pytest.param(
            "agent",
            {},
            "agent:\n  cache:\n    capacity: 10\n",
            "agent.cache.capacity",
            id="agent-file-unknown-key",
        ),
        pytest.param(
            "controller",
            {"LINESCALE_CONTROLLER__SCALING_INTERVAL_SECONDS": "-1"},
            None,
            "controller.scaling_interval_seconds",
            id="controller-env-negative",
        ),
        pytest.param(
            "controller",
            {"LINESCALE_CONTROLLER__ORCHESTRATOR": "nomad"},
            None,
            "controller.orchestrator",
            id="controller-env-unknown-choice",
        ),
        pytest.param(
            "controller",
            {"LINESCALE_CONTROLLER____LISTEN": "127.0.0.1:1"},
            None,
            "LINESCALE_CONTROLLER____LISTEN",
            id="controller-env-malformed-name",
        ),
        pytest.param(
            "controller",
            {},
            "controller:\n  policies_path: /nonexistent/policies.yaml\n",
            "controller.policies_path",
            id="controller-file-missing-policies",
        ),
        pytest.param(
            "controller", {}, "- controller\n", "must be a mapping", id="controller-file-a-list"
        ),
    ],
)
def test_a_bad_configuration_exits_2_naming_the_key_and_leaves_nothing_running(
    tmp_path: Path, role: str, env: dict[str, str], file_text: str | None, named: str
) -> None:
    args = [str(Path(sys.executable).parent / "linescale"), role, "--listen", "127.0.0.1:0"]
    if role == "agent":
        args += ["--node", "node-1", "--zone", "a"]
    if file_text is not None:
        config = tmp_path / "config.yaml"
        config.write_text(file_text)
        args += ["--config", str(config)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINESCALE_")}
    with subprocess.Popen(
        args,
        env={**clean, **CONFIG_TOKEN_ENV, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()  # only if it is still running: the assertion below then fails
    assert process.returncode == 2, stderr
    assert "configuration error" in stderr
    assert named in stderr, stderr
    assert TOKEN not in stderr
