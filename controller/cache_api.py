"""The controller's cache endpoints: fleet-wide invalidation (token required) and analytics.

Invalidation is sent to every fresh agent rather than only through Redis, so it also reaches
agents running L1-only; each agent applies it to its L1, its L2 and its bus, all idempotent.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from controller.engines.caching import CacheTotals, CachingEngine, expected_hit_ratios
from controller.registry import is_stale
from shared.http_api import json_error

if TYPE_CHECKING:
    from controller.app import ControllerContext


def _totals(totals: CacheTotals) -> dict[str, Any]:
    return {
        "hits": totals.hits,
        "misses": totals.misses,
        "hit_ratio": totals.hit_ratio,
        "evictions": totals.evictions,
        "entries": totals.entries,
        "bytes": totals.bytes,
        "errors": totals.errors,
        "nodes": totals.nodes,
    }


async def _invalidate_one(
    session: aiohttp.ClientSession,
    node: str,
    endpoint: str,
    namespace: str,
    body: dict[str, str],
    token: str,
    timeout_seconds: float,
) -> dict[str, Any]:
    url = f"{endpoint}/v1/cache/{urllib.parse.quote(namespace, safe='')}/invalidate"
    try:
        async with session.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            answer = await response.json(content_type=None)
            if response.status != 200:
                return {"node": node, "outcome": "failed", "detail": answer.get("error", "")}
            return {"node": node, "outcome": "applied", "invalidated": answer["invalidated"]}
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        return {"node": node, "outcome": "failed", "detail": f"{type(error).__name__}: {error}"}


def cache_routes(
    engine: CachingEngine, context: web.AppKey[ControllerContext]
) -> list[web.RouteDef]:
    """Routes bound to the engine; the controller's context is read from the app by key."""

    async def handle_invalidate(request: web.Request) -> web.Response:
        ctx = request.app[context]
        ctx.guard.authenticate(request)
        try:
            body = await request.json()
        except ValueError:
            raise json_error(400, "body must be JSON") from None
        if not isinstance(body, dict) or set(body) - {"namespace", "prefix", "tag"}:
            raise json_error(400, 'body: {"namespace": ..., "prefix": ...} or {..., "tag": ...}')
        namespace = body.get("namespace")
        targets = {k: v for k, v in body.items() if k in ("prefix", "tag")}
        if not isinstance(namespace, str) or not namespace or len(targets) != 1:
            raise json_error(400, "namespace and exactly one of prefix or tag are required")
        if not all(isinstance(v, str) for v in targets.values()):
            raise json_error(400, "prefix or tag must be a string")
        now = ctx.deps.clock()
        stale_after = ctx.settings.controller.agent_stale_after_seconds
        fresh = [r for r in ctx.agents.records() if not is_stale(r.last_seen, now, stale_after)]
        if ctx.session is None:
            raise json_error(503, "controller is starting")
        results = await asyncio.gather(
            *(
                _invalidate_one(
                    ctx.session,
                    record.report.node,
                    record.report.endpoint,
                    namespace,
                    targets,
                    ctx.token,
                    ctx.settings.controller.push_timeout_seconds,
                )
                for record in fresh
            )
        )
        return web.json_response({"namespace": namespace, **targets, "agents": list(results)})

    async def handle_stats(request: web.Request) -> web.Response:
        ctx = request.app[context]
        now = ctx.deps.clock()
        records = ctx.agents.records()
        started = time.perf_counter()
        stats = engine.fleet_stats(records, now)
        recommendation = engine.recommend_l1_size(records, now)
        recommendation = recommendation.model_copy(
            update={"decide_seconds": time.perf_counter() - started}
        )
        current, recommended = expected_hit_ratios(recommendation)
        return web.json_response(
            {
                "namespaces": [
                    {"namespace": namespace, "level": level, **_totals(totals)}
                    for (namespace, level), totals in sorted(stats.by_namespace.items())
                ],
                "levels": {level: _totals(t) for level, t in sorted(stats.by_level.items())},
                "nodes": {"fresh": list(stats.fresh_nodes), "stale": list(stats.stale_nodes)},
                "l1_size": {
                    "decision": recommendation.model_dump(mode="json"),
                    "expected_hit_ratio_current": current,
                    "expected_hit_ratio_recommended": recommended,
                },
            }
        )

    return [
        web.post("/v1/cache/invalidate", handle_invalidate),
        web.get("/v1/cache/stats", handle_stats),
    ]
