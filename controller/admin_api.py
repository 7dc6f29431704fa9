"""The controller's admin API: workloads and their policies, decisions, recommendations,
bottlenecks, and a dry evaluation of a decision input.

Reads (``GET``) need no token; everything that changes state, and ``/v1/decide``, does. Every
value a client sends is checked before it is used: a malformed path parameter is a 404, a
malformed query parameter or body a 400 that names it. Nothing a client sends produces a 5xx;
an orchestrator that is not up yet, or fails, is a 503.
"""

from __future__ import annotations

import logging
import math
import re
import time
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from controller.decide import evaluate
from controller.engines.caching import CachingEngine, CachingSettings
from controller.engines.decide_input import DecideInputError
from controller.engines.performance.findings import ActionItem
from controller.engines.resources.engine import CycleResult
from controller.engines.resources.rightsizing import rightsizing_json
from controller.ports import ContainerState, Resources, WorkloadRef, WorkloadState
from controller.registry import is_stale
from shared.http_api import json_error
from shared.scaling_policy import PolicyError, parse_policy, policy_to_json
from shared.wire import Decision

if TYPE_CHECKING:
    from controller.app import ControllerContext

log = logging.getLogger(__name__)

# Kubernetes names: a namespace is a DNS label, a workload name a DNS subdomain.
_NAMESPACE = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
NAMESPACE_PATTERN = f"^{_NAMESPACE}$"  # as documented in the OpenAPI document
NAME_PATTERN = f"^{_NAME}$"
NAME_MAX_LENGTH = 253
_NAMESPACE_RE = re.compile(_NAMESPACE)  # used with fullmatch: "$" would allow a final newline
_NAME_RE = re.compile(_NAME)

DECISION_KINDS: tuple[str, ...] = typing.get_args(Decision.model_fields["kind"].annotation)
RESOURCES = ("cpu", "memory", "disk", "network", "fds")
SEVERITIES = ("warning", "critical")
MAX_DECISIONS_LIMIT = 1000  # DecisionLog.query's own cap
DEFAULT_DECISIONS_LIMIT = 50

_INT_RE = re.compile(r"[0-9]{1,7}")
_NUMBER_RE = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3})?")
_MAX_NUMBER_CHARS = 40


# --- rendering ---------------------------------------------------------------------------------


def _resources(resources: Resources) -> dict[str, int | None]:
    return {"cpu_millicores": resources.cpu_millicores, "memory_bytes": resources.memory_bytes}


def _container(container: ContainerState) -> dict[str, Any]:
    return {
        "name": container.name,
        "requests": _resources(container.requests),
        "limits": _resources(container.limits),
    }


def _ref(ref: WorkloadRef) -> dict[str, str]:
    return {"namespace": ref.namespace, "name": ref.name, "kind": ref.kind}


def workload_json(ctx: ControllerContext, state: WorkloadState) -> dict[str, Any]:
    resolved = ctx.scalability.resolve(state)
    return {
        **_ref(state.ref),
        "desired_replicas": state.desired_replicas,
        "ready_replicas": state.ready_replicas,
        "pods": [
            {
                "name": pod.name,
                "ready": pod.ready,
                "node": pod.node,
                "address": pod.address,
                "containers": [_container(container) for container in pod.containers],
            }
            for pod in state.pods
        ],
        "policy": policy_to_json(resolved.policy) if resolved.policy is not None else None,
        "policy_origin": resolved.origin,
        "policy_error": resolved.error,
        "paused": state.ref in ctx.controls.paused,
    }


def resources_json(result: CycleResult | None, at: float | None) -> dict[str, Any]:
    """The last ResourceEngine cycle: right-sizing per container, efficiency and the seed's
    goals per pool, capacity run-out dates and the node plan."""
    if result is None:
        return {"rightsizing": [], "efficiency": [], "capacity": [], "resources_at": None}
    return {
        "resources_at": at,
        "rightsizing": [rightsizing_json(r) for r in result.recommendations],
        "efficiency": [
            {
                "pool": goals.pool,
                "cost_efficiency": goals.cost_efficiency,
                "waste_share": goals.waste_share,
                "efficiency_goal_met": goals.efficiency_goal_met,
                "waste_goal_met": goals.waste_goal_met,
            }
            for goals in result.efficiency.goals
        ],
        "capacity": [
            {
                "pool": forecast.pool,
                "nodes_now": forecast.nodes_now,
                "nodes_needed": forecast.nodes_needed,
                "run_out_at": forecast.run_out_at,
                "run_out_resource": forecast.run_out_resource,
                "reason": forecast.reason,
            }
            for forecast in result.forecasts
        ],
    }


def action_json(item: ActionItem) -> dict[str, Any]:
    """A fleet finding as operators read it: what, where, and the suggested change."""
    floor = item.floor
    return {
        "namespace": item.namespace,
        "workload": item.workload,
        "container": item.container,
        "resource": item.resource,
        "kind": item.kind,
        "severity": item.severity,
        "nodes": list(item.nodes),
        "message": item.message,
        "suggestion": item.suggestion,
        "floor": None if floor is None else {"resource": floor.resource, "minimum": floor.minimum},
    }


# --- request parsing ---------------------------------------------------------------------------


def _path_workload(request: web.Request) -> tuple[str, str]:
    """The path's namespace and name; 404 unless they are valid Kubernetes names."""
    namespace = request.match_info.get("namespace", "")
    name = request.match_info.get("name", "")
    if (
        _NAMESPACE_RE.fullmatch(namespace) is None
        or len(name) > NAME_MAX_LENGTH
        or _NAME_RE.fullmatch(name) is None
    ):
        raise json_error(404, "no such workload: namespace and name must be Kubernetes names")
    return namespace, name


def _query(request: web.Request, name: str) -> str | None:
    """A query parameter, None when absent or empty (an empty value means "not given")."""
    value = request.query.get(name)
    return value or None


def _choice(request: web.Request, name: str, allowed: Sequence[str]) -> str | None:
    value = _query(request, name)
    if value is not None and value not in allowed:
        raise json_error(400, f"{name}: must be one of {', '.join(allowed)}")
    return value


def _number(request: web.Request, name: str) -> float | None:
    value = _query(request, name)
    if value is None:
        return None
    if len(value) > _MAX_NUMBER_CHARS or _NUMBER_RE.fullmatch(value) is None:
        raise json_error(400, f"{name}: must be a number (Unix seconds)")
    number = float(value)
    if not math.isfinite(number):
        raise json_error(400, f"{name}: must be a finite number")
    return number


def _limit(request: web.Request) -> int:
    value = _query(request, "limit")
    if value is None:
        return DEFAULT_DECISIONS_LIMIT
    if _INT_RE.fullmatch(value) is None or not 1 <= int(value) <= MAX_DECISIONS_LIMIT:
        raise json_error(400, f"limit: must be an integer in 1..{MAX_DECISIONS_LIMIT}")
    return int(value)


# --- routes ------------------------------------------------------------------------------------


def admin_routes(key: web.AppKey[ControllerContext]) -> list[web.RouteDef]:
    """The admin routes; the controller's context is read from the app by ``key``."""

    async def list_states(ctx: ControllerContext) -> Sequence[WorkloadState]:
        orchestrator = ctx.orchestrator
        if orchestrator is None:
            raise json_error(503, "the orchestrator is not up yet")
        try:
            return await orchestrator.list_workloads()
        except Exception as error:  # an adapter's failure is not the client's
            log.warning("cannot list workloads: %s", error)
            raise json_error(503, f"the orchestrator cannot list workloads: {error}") from None

    async def find(ctx: ControllerContext, request: web.Request) -> WorkloadState:
        """The path's workload, of any kind (the first by kind when several share a name)."""
        namespace, name = _path_workload(request)
        for state in await list_states(ctx):
            if state.ref.namespace == namespace and state.ref.name == name:
                return state
        raise json_error(404, f"no such workload: {namespace}/{name}")

    async def handle_list(request: web.Request) -> web.Response:
        ctx = request.app[key]
        states = await list_states(ctx)
        return web.json_response({"workloads": [workload_json(ctx, state) for state in states]})

    async def handle_get(request: web.Request) -> web.Response:
        ctx = request.app[key]
        return web.json_response(workload_json(ctx, await find(ctx, request)))

    async def handle_put_policy(request: web.Request) -> web.Response:
        ctx = request.app[key]
        ctx.guard.authenticate(request)
        _path_workload(request)
        raw = await ctx.guard.read_json(request)
        try:
            if not isinstance(raw, dict):
                raise PolicyError([("spec", "must be an object (an HPA spec)")])
            policy = parse_policy(raw)
        except PolicyError as error:
            ctx.guard.rejected.labels("invalid").inc()
            fields = [{"field": field, "message": message} for field, message in error.problems]
            raise json_error(400, str(error), fields=fields) from None
        state = await find(ctx, request)
        ctx.controls.set_policy(state.ref, policy)
        log.info(
            "policy of %s %s set", state.ref.kind, state.ref, extra={"workload": str(state.ref)}
        )
        return web.json_response(policy_to_json(policy))

    def toggle_pause(paused: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle_pause(request: web.Request) -> web.Response:
            ctx = request.app[key]
            ctx.guard.authenticate(request)
            state = await find(ctx, request)
            ctx.controls.set_paused(state.ref, paused)
            log.info(
                "%s %s %s",
                state.ref.kind,
                state.ref,
                "paused" if paused else "resumed",
                extra={"workload": str(state.ref)},
            )
            return web.json_response({"workload": _ref(state.ref), "paused": paused})

        return handle_pause

    async def handle_decisions(request: web.Request) -> web.Response:
        ctx = request.app[key]
        kind = _choice(request, "kind", DECISION_KINDS)
        since = _number(request, "since")
        until = _number(request, "until")
        limit = _limit(request)
        try:
            decisions, next_cursor = ctx.decisions.query(
                kind=kind,
                target=_query(request, "target"),
                reason=_query(request, "reason"),
                since=since,
                until=until,
                limit=limit,
                cursor=_query(request, "cursor"),
            )
        except ValueError as error:  # the limit is checked above: the cursor is at fault
            raise json_error(400, f"cursor: {error}") from None
        return web.json_response(
            {
                "decisions": [decision.model_dump(mode="json") for decision in decisions],
                "next_cursor": next_cursor,
            }
        )

    async def handle_recommendations(request: web.Request) -> web.Response:
        ctx = request.app[key]
        engine = CachingEngine(
            CachingSettings(stale_after_seconds=ctx.settings.controller.agent_stale_after_seconds)
        )
        started = time.perf_counter()
        l1_size = engine.recommend_l1_size(ctx.agents.records(), ctx.deps.clock())
        l1_size = l1_size.model_copy(update={"decide_seconds": time.perf_counter() - started})
        return web.json_response(
            {
                "recommendations": [l1_size.model_dump(mode="json")],
                "actions": [action_json(item) for item in ctx.performance.action_items],
                **resources_json(ctx.resources.last, ctx.resources.last_at),
            }
        )

    async def handle_bottlenecks(request: web.Request) -> web.Response:
        ctx = request.app[key]
        resource = _choice(request, "resource", RESOURCES)
        severity = _choice(request, "severity", SEVERITIES)
        now = ctx.deps.clock()
        stale_after = ctx.settings.controller.agent_stale_after_seconds
        nodes = [
            {
                "node": record.report.node,
                "zone": record.report.zone,
                "findings": [
                    finding.model_dump(mode="json")
                    for finding in record.report.findings
                    if (resource is None or finding.resource == resource)
                    and (severity is None or finding.severity == severity)
                ],
            }
            for record in ctx.agents.records()
            if not is_stale(record.last_seen, now, stale_after)
        ]
        return web.json_response({"nodes": nodes})

    async def handle_decide(request: web.Request) -> web.Response:
        ctx = request.app[key]
        raw = await ctx.guard.authenticated_read_json(request)
        try:
            answer = evaluate(raw, now=ctx.deps.clock())
        except DecideInputError as error:
            fields = [{"field": field, "message": message} for field, message in error.fields]
            raise json_error(error.status, error.message, fields=fields) from None
        return web.json_response(answer)

    workload = "/v1/workloads/{namespace}/{name}"
    return [
        web.get("/v1/workloads", handle_list),
        web.get(workload, handle_get),
        web.put(f"{workload}/policy", handle_put_policy),
        web.post(f"{workload}/pause", toggle_pause(paused=True)),
        web.post(f"{workload}/resume", toggle_pause(paused=False)),
        web.get("/v1/decisions", handle_decisions),
        web.get("/v1/recommendations", handle_recommendations),
        web.get("/v1/bottlenecks", handle_bottlenecks),
        web.post("/v1/decide", handle_decide),
    ]
