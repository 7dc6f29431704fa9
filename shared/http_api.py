"""aiohttp building blocks both components use: token checks, bounded strict body parsing,
JSON errors, and a per-app metrics registry with build and process information."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from shared import __version__, metric_names
from shared.wire import WireError, WireModel, parse

M = TypeVar("M", bound=WireModel)

AuthResult = Literal["ok", "missing", "wrong"]


def check_bearer(authorization: str | None, expected_token: str) -> AuthResult:
    """Compare an ``Authorization`` header with the expected bearer token in constant time."""
    if not authorization:
        return "missing"
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return "missing"
    if hmac.compare_digest(presented.strip().encode(), expected_token.encode()):
        return "ok"
    return "wrong"


def json_error(status: int, message: str, **details: Any) -> web.HTTPException:
    """An HTTP error whose body is ``{"error": message, ...details}``, ready to raise."""
    body = json.dumps({"error": message, **details})
    return _ERRORS[status](text=body, content_type="application/json")


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
    429: web.HTTPTooManyRequests,
    503: web.HTTPServiceUnavailable,
}


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``limit`` (declared or streamed)."""
    declared = request.content_length
    body = (
        b"" if declared is not None and declared > limit else await request.content.read(limit + 1)
    )
    if len(body) > limit or (declared is not None and declared > limit):
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=declared if declared is not None else len(body),
            text=json.dumps({"error": f"body larger than {limit} bytes"}),
            content_type="application/json",
        )
    return body


class RequestGuard:
    """Authenticates and parses mutating requests, counting every refusal by reason."""

    def __init__(self, token: str, max_body_bytes: int, registry: CollectorRegistry) -> None:
        self._token = token
        self._max_body_bytes = max_body_bytes
        self.rejected = Counter(
            metric_names.HTTP_REJECTED,
            "Requests refused before reaching a handler's logic, by reason.",
            ["reason"],
            registry=registry,
        )
        for reason in ("unauthorized", "forbidden", "too_large", "invalid"):
            self.rejected.labels(reason)

    def authenticate(self, request: web.Request) -> None:
        """Raise 401 without a bearer token and 403 with a wrong one."""
        result = check_bearer(request.headers.get("Authorization"), self._token)
        if result == "missing":
            self.rejected.labels("unauthorized").inc()
            error = json_error(401, "bearer token required")
            error.headers["WWW-Authenticate"] = 'Bearer realm="linescale"'
            raise error
        if result == "wrong":
            self.rejected.labels("forbidden").inc()
            raise json_error(403, "token not accepted")

    async def read(self, request: web.Request, model: type[M]) -> M:
        """Read at most ``max_body_bytes`` and parse strictly; 413 or 400 naming the field."""
        try:
            body = await read_bounded(request, self._max_body_bytes)
        except web.HTTPRequestEntityTooLarge:
            self.rejected.labels("too_large").inc()
            raise
        try:
            return parse(model, body)
        except WireError as error:
            self.rejected.labels("invalid").inc()
            raise json_error(
                400,
                str(error),
                fields=[{"field": field, "message": msg} for field, msg in error.problems],
            ) from None

    async def authenticated_read(self, request: web.Request, model: type[M]) -> M:
        self.authenticate(request)
        return await self.read(request, model)

    async def authenticated_read_json(self, request: web.Request) -> object:
        """Authenticate, then ``read_json``."""
        self.authenticate(request)
        return await self.read_json(request)

    async def read_json(self, request: web.Request) -> object:
        """Read a bounded body as plain JSON (413, or 400 when it is not JSON), for handlers
        that validate it themselves or dispatch on its content first."""
        try:
            body = await read_bounded(request, self._max_body_bytes)
        except web.HTTPRequestEntityTooLarge:
            self.rejected.labels("too_large").inc()
            raise
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
            self.rejected.labels("invalid").inc()
            raise json_error(400, f"body is not JSON: {error}") from None


def new_registry(component: Literal["agent", "controller"]) -> CollectorRegistry:
    """A registry owned by one app, with build info and this process's resource usage."""
    # ``*_created`` series double the exposition and no dashboard of ours reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info(metric_names.BUILD_INFO, "Linescale build.", registry=registry).info(
        {"version": __version__, "component": component}
    )
    return registry


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle_metrics(request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return handle_metrics


async def handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@contextlib.asynccontextmanager
async def background_task(coro: Coroutine[object, object, None], name: str) -> AsyncIterator[None]:
    """Run ``coro`` as a task for the life of the block, then cancel it and wait for it to end.

    Meant for an app's ``cleanup_ctx``: the loop starts with the app and stops, in order,
    when it shuts down.
    """
    task = asyncio.create_task(coro, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
