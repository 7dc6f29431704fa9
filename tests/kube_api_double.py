"""A Kubernetes API double for the subset Linescale uses, served over real HTTP so the real
``kubernetes`` client talks to it.

Behaves like the API server where we depend on it: bearer-token authentication (401 Status),
RBAC (403 Status naming the verb and resource), ``fieldSelector`` on the pod fields the API
server supports (400 for others), ``PodList`` with a ``resourceVersion``. Extend it here, in
one place, as later work needs deployments, scale, resize, nodes and leases.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

# Pod field selectors the API server accepts (pkg/registry/core/pod/strategy.go ToSelectableFields).
POD_SELECTABLE_FIELDS = frozenset(
    {
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
)


def status(code: int, reason: str, message: str) -> web.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(body, status=code)


def pod(
    name: str, namespace: str, node: str, uid: str, containers: dict[str, str]
) -> dict[str, Any]:
    """A pod as the API returns it; ``containers`` maps name → runtime URI container ID."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "1"},
        "spec": {"nodeName": node, "containers": [{"name": c} for c in containers]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": c,
                    "containerID": container_id,
                    "ready": True,
                    "restartCount": 0,
                    "image": "img",
                    "imageID": "img@sha256:0",
                }
                for c, container_id in containers.items()
            ],
        },
    }


def field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class KubeApiDouble:
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> allowed "verb resource"
    pods: list[dict[str, Any]] = field(default_factory=list)
    resource_version: int = 100
    requests: list[str] = field(default_factory=list)

    def authorize(self, request: web.Request, verb: str, resource: str) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if token not in self.tokens:
            return status(401, "Unauthorized", "Unauthorized")
        if f"{verb} {resource}" not in self.tokens[token]:
            return status(
                403,
                "Forbidden",
                f'{resource} is forbidden: User "system:serviceaccount:linescale:agent" '
                f'cannot {verb} resource "{resource}" in API group "" at the cluster scope',
            )
        return None

    def select(self, selector: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for term in filter(None, selector.split(",")):
            negate = "!=" in term
            key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
            if key not in POD_SELECTABLE_FIELDS:
                raise web.HTTPBadRequest(
                    text=status(400, "BadRequest", f"field label not supported: {key}").text,
                    content_type="application/json",
                )
            items = [p for p in items if (field_value(p, key) == value) != negate]
        return items

    async def list_pods(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if refused := self.authorize(request, "list", "pods"):
            return refused
        items = self.pods
        if namespace := request.match_info.get("namespace"):
            items = [p for p in items if p["metadata"]["namespace"] == namespace]
        items = self.select(request.query.get("fieldSelector", ""), items)
        return web.json_response(
            {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.resource_version)},
                "items": items,
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/pods", self.list_pods)
        app.router.add_get("/api/v1/namespaces/{namespace}/pods", self.list_pods)
        return app


@contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on a free loopback port from its own thread, so synchronous clients (the
    ``kubernetes`` client) can call it; yields the base URL."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    started = threading.Event()
    url: list[str] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = runner.addresses[0][1]
        url.append(f"http://127.0.0.1:{port}")
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="kube-api-double", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("API double did not start")
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
