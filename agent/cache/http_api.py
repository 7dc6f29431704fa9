"""The agent's cache endpoints: ``/v1/cache/{namespace}/{key}`` for values, invalidation and
stats. Reads need no token; writes, deletes and invalidations do. Every limit (namespace
name and count, key length, value size, TTL, tags) is checked before anything changes."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from agent.cache.service import CacheService
from shared.config import NAMESPACE_PATTERN, CacheSettings
from shared.http_api import RequestGuard, json_error, read_bounded

MAX_TAGS = 16
_NAMESPACE = re.compile(NAMESPACE_PATTERN)
_TAG = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.:]{0,63}$")


@dataclass
class CacheRuntime:
    settings: CacheSettings
    guard: RequestGuard
    service: CacheService | None = None  # set once the cache has started


CACHE = web.AppKey("cache", CacheRuntime)


def _service(request: web.Request) -> tuple[CacheRuntime, CacheService]:
    runtime = request.app[CACHE]
    if runtime.service is None:
        raise json_error(503, "cache is disabled or still starting")
    return runtime, runtime.service


def _namespace(runtime: CacheRuntime, service: CacheService, raw: str) -> str:
    if not _NAMESPACE.match(raw):
        raise json_error(
            400, f"namespace {raw[:80]!r}: lowercase letters, digits, '-', '_', '.'; 1-63 chars"
        )
    known = service.l1.stats()
    if raw not in known and len(known) >= runtime.settings.max_namespaces:
        raise json_error(400, f"namespace limit {runtime.settings.max_namespaces} reached")
    return raw


def _key(runtime: CacheRuntime, raw: str) -> str:
    size = len(raw.encode())
    if not raw or size > runtime.settings.max_key_bytes:
        raise json_error(400, f"key must be 1..{runtime.settings.max_key_bytes} bytes")
    return raw


def _ttl(runtime: CacheRuntime, raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        ttl = float(raw)
    except ValueError:
        raise json_error(400, f"ttl must be a number of seconds, got {raw[:40]!r}") from None
    if not 0 < ttl <= runtime.settings.max_ttl_seconds:
        raise json_error(400, f"ttl must be in (0, {runtime.settings.max_ttl_seconds:g}]")
    return ttl


def _tags(raw: str | None) -> tuple[str, ...]:
    tags = tuple(tag for tag in (raw or "").split(",") if tag)
    if len(tags) > MAX_TAGS:
        raise json_error(400, f"at most {MAX_TAGS} tags")
    for tag in tags:
        if not _TAG.match(tag):
            raise json_error(400, f"tag {tag[:80]!r}: letters, digits, '-_.:', up to 64 chars")
    return tags


def _target(request: web.Request) -> tuple[CacheRuntime, CacheService, str, str]:
    runtime, service = _service(request)
    namespace = _namespace(runtime, service, request.match_info["namespace"])
    key = _key(runtime, urllib.parse.unquote(request.match_info["key"]))
    return runtime, service, namespace, key


async def handle_get(request: web.Request) -> web.Response:
    _, service, namespace, key = _target(request)
    read = await service.get(namespace, key)
    if read is None:
        return web.json_response({"error": "miss"}, status=404)
    return web.Response(
        body=read.entry.value,
        content_type="application/octet-stream",
        headers={"X-Cache": read.level, "X-Cache-Version": str(read.entry.version)},
    )


async def handle_put(request: web.Request) -> web.Response:
    runtime, service, namespace, key = _target(request)
    runtime.guard.authenticate(request)
    ttl = _ttl(runtime, request.query.get("ttl"))
    tags = _tags(request.query.get("tags"))
    value = await read_bounded(request, runtime.settings.max_value_bytes)
    version, stored = await service.put(namespace, key, value, ttl_seconds=ttl, tags=tags)
    return web.json_response({"version": version, "stored": {"l1": stored, "l2": version > 0}})


async def handle_delete(request: web.Request) -> web.Response:
    runtime, service, namespace, key = _target(request)
    runtime.guard.authenticate(request)
    deleted, version = await service.delete(namespace, key)
    return web.json_response({"deleted": deleted, "version": version})


async def handle_invalidate(request: web.Request) -> web.Response:
    runtime, service = _service(request)
    runtime.guard.authenticate(request)
    namespace = _namespace(runtime, service, request.match_info["namespace"])
    try:
        body = await request.json()
    except ValueError:
        raise json_error(400, 'body must be JSON: {"prefix": "..."} or {"tag": "..."}') from None
    if not isinstance(body, dict) or len(body) != 1 or not body.keys() <= {"prefix", "tag"}:
        raise json_error(400, 'body must be exactly one of {"prefix": "..."} or {"tag": "..."}')
    ((kind, target),) = body.items()
    if not isinstance(target, str) or (kind == "tag" and not _TAG.match(target)):
        raise json_error(400, f"{kind}: must be a valid string")
    if kind == "prefix":
        target = _key(runtime, target) if target else target
    chosen: Literal["prefix", "tag"] = "prefix" if kind == "prefix" else "tag"
    count, version = await service.invalidate(namespace, chosen, target)
    return web.json_response({"invalidated": count, "version": version})


async def handle_stats(request: web.Request) -> web.Response:
    _, service = _service(request)
    namespaces = {
        namespace: {
            "l1": {
                "hits": stats.hits,
                "stale_hits": stats.stale_hits,
                "misses": stats.misses,
                "evictions": stats.evictions,
                "expirations": stats.expirations,
                "invalidations": stats.invalidations,
                "entries": stats.entries,
                "bytes": stats.bytes,
            },
            **(
                {
                    "l2": {
                        "hits": service.l2_hits.get(namespace, 0),
                        "misses": service.l2_misses.get(namespace, 0),
                    }
                }
                if service.l2 is not None
                else {}
            ),
        }
        for namespace, stats in sorted(service.l1.stats().items())
    }
    return web.json_response(
        {
            "l1": {"capacity_bytes": service.l1.capacity_bytes, "bytes": service.l1.weight},
            "l2": (
                {"available": service.l2.available, "errors": service.l2.stats.errors}
                if service.l2 is not None
                else None
            ),
            "namespaces": namespaces,
        }
    )


def add_routes(app: web.Application) -> None:
    routes: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
        ("GET", "/v1/cache/stats", handle_stats),
        ("POST", "/v1/cache/{namespace}/invalidate", handle_invalidate),
        ("GET", "/v1/cache/{namespace}/{key}", handle_get),
        ("PUT", "/v1/cache/{namespace}/{key}", handle_put),
        ("DELETE", "/v1/cache/{namespace}/{key}", handle_delete),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
