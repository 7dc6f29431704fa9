"""The agent's HAProxy dataplane: applies routing tables to a running HAProxy and reads back
what it really runs.

HAProxy is never reloaded. The backends ``<prefix><service>`` must exist in its config (see
:func:`agent.dataplane_haproxy.render.render_config`); a service the table routes on a
``listen_port`` without such a backend is reported as unmanaged, and backends of the prefix
that the table does not name are left as they are (a table that stops naming a service
should not black-hole a frontend still bound). Within a managed backend the servers are the
table's: added, re-weighted, drained, deleted.

One refused command does not stop the others; the next apply re-reads HAProxy and plans again
from what it finds, so a refusal (or a server still busy when its removal was due) heals on a
later apply. A socket that cannot be reached raises :class:`RuntimeAPIUnreachableError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from agent.dataplane_haproxy.model import ServerView
from agent.dataplane_haproxy.render import (
    PlannedCommand,
    backend_name,
    desired_servers,
    plan_steps,
    server_name,
)
from agent.dataplane_haproxy.runtime import (
    RuntimeAPI,
    RuntimeAPIError,
    RuntimeAPIUnreachableError,
    ServersStateRow,
    StatRow,
)
from shared.config import HAProxySettings
from shared.wire import EndpointStats, RoutingTable, ServiceRoute

__all__ = ["ApplyResult", "HAProxyDataplane", "ServiceOutcome"]

logger = logging.getLogger(__name__)

# "del server" refusal while streams or idle connections still use the server (HAProxy 2.6).
_STILL_CONNECTED = "still has connections"


@dataclass(frozen=True)
class ServiceOutcome:
    """What one apply did to one service's backend."""

    service: str
    backend: str
    sent: tuple[PlannedCommand, ...]  # accepted by HAProxy
    refused: tuple[tuple[PlannedCommand, str], ...]  # with HAProxy's message
    waiting_removal: tuple[str, ...]  # servers the table dropped, kept until idle


@dataclass(frozen=True)
class ApplyResult:
    services: tuple[ServiceOutcome, ...]
    unmanaged: tuple[str, ...]  # services with a listen_port but no backend in HAProxy
    untouched: tuple[str, ...]  # backends of the prefix the table does not route

    @property
    def ok(self) -> bool:
        """Every planned command was accepted (removals waiting for idle servers are fine)."""
        return not any(outcome.refused for outcome in self.services)


@dataclass(frozen=True)
class _Snapshot:
    servers: Mapping[str, list[ServerView]]  # by backend
    stat_rows: Mapping[tuple[str, str], StatRow]  # (backend, server)


def _view(row: ServersStateRow, stat: StatRow | None) -> ServerView:
    return ServerView(
        name=row.server,
        address=row.address,
        weight=row.user_weight,
        state=row.state,
        backup=stat.backup if stat is not None else False,
        sessions=stat.sessions if stat is not None else 0,
        operational=row.operational,
        status=stat.status if stat is not None else "",
        requests=stat.requests if stat is not None else 0,
        errors=stat.errors if stat is not None else 0,
        response_ms=stat.response_ms if stat is not None else 0,
    )


class HAProxyDataplane:
    """Drives one HAProxy through its Runtime API (settings ``agent.dataplane.haproxy``)."""

    def __init__(self, settings: HAProxySettings, *, runtime: RuntimeAPI | None = None) -> None:
        if runtime is None:
            if not settings.socket:
                raise ValueError("agent.dataplane.haproxy.socket: required in haproxy mode")
            runtime = RuntimeAPI(settings.socket, settings.timeout_seconds)
        self.runtime = runtime
        self.backend_prefix = settings.backend_prefix
        self._lock = asyncio.Lock()
        # service -> server name -> (table address, zone): names the table gave its endpoints.
        self._endpoints: dict[str, dict[str, tuple[str, str]]] = {}
        self._stat_rows: dict[tuple[str, str], StatRow] = {}
        self._unmanaged: tuple[str, ...] = ()

    def _service_of(self, backend: str) -> str | None:
        if not backend.startswith(self.backend_prefix):
            return None
        return backend[len(self.backend_prefix) :] or None

    async def _snapshot(self) -> _Snapshot:
        backends = await self.runtime.show_backends()
        ours = {backend for backend in backends if self._service_of(backend) is not None}
        stat_rows = {
            (row.proxy, row.name): row
            for row in await self.runtime.show_stat()
            if row.proxy in ours and row.kind == 2
        }
        servers: dict[str, list[ServerView]] = {backend: [] for backend in ours}
        for row in await self.runtime.show_servers_state():
            if row.backend in ours:
                servers[row.backend].append(_view(row, stat_rows.get((row.backend, row.server))))
        self._stat_rows = dict(stat_rows)
        return _Snapshot(servers, stat_rows)

    async def apply(self, table: RoutingTable | None, own_zone: str) -> ApplyResult:
        """Make HAProxy run what ``table`` says for every service it routes on a listen port
        and has a backend for. ``None`` (no table yet) changes nothing."""
        routes = [route for route in (table.services if table else []) if route.listen_port]
        async with self._lock:
            snapshot = await self._snapshot()
            outcomes: list[ServiceOutcome] = []
            unmanaged: list[str] = []
            routed: set[str] = set()
            for route in routes:
                backend = backend_name(route.name, self.backend_prefix)
                routed.add(backend)
                if backend not in snapshot.servers:
                    unmanaged.append(route.name)
                    continue
                outcomes.append(
                    await self._apply_service(route, backend, snapshot.servers[backend], own_zone)
                )
            self._remember_endpoints(routes, snapshot)
        if tuple(unmanaged) != self._unmanaged:
            for service in sorted(set(unmanaged) - set(self._unmanaged)):
                logger.warning(
                    "service %s has a listen port but HAProxy has no backend %s: unmanaged "
                    "(add it to haproxy.cfg and reload HAProxy)",
                    service,
                    backend_name(service, self.backend_prefix),
                )
            self._unmanaged = tuple(unmanaged)
        untouched = sorted(set(snapshot.servers) - routed)
        return ApplyResult(tuple(outcomes), tuple(unmanaged), tuple(untouched))

    async def _apply_service(
        self, route: ServiceRoute, backend: str, running: Sequence[ServerView], own_zone: str
    ) -> ServiceOutcome:
        steps = plan_steps(route, running, backend=backend, own_zone=own_zone)
        sent: list[PlannedCommand] = []
        refused: list[tuple[PlannedCommand, str]] = []
        deleted: set[str] = set()
        for step in steps:
            try:
                await self.runtime.execute(step.command)
            except RuntimeAPIUnreachableError:
                raise
            except RuntimeAPIError as error:
                if step.command.startswith("del server ") and _STILL_CONNECTED in error.message:
                    continue  # busy again between the read and the delete: next apply
                refused.append((step, error.message))
                logger.warning(
                    "HAProxy refused %r (%s): %s", step.command, step.reason, error.message
                )
                continue
            sent.append(step)
            if step.command.startswith("del server "):
                deleted.add(step.command.rpartition("/")[2])
        wanted = {server.name for server in desired_servers(route, own_zone)}
        waiting = tuple(
            sorted(
                server.name
                for server in running
                if server.name not in wanted and server.name not in deleted
            )
        )
        if sent:
            logger.info(
                "HAProxy backend %s: %d commands applied",
                backend,
                len(sent),
                extra={"service": route.name, "backend": backend},
            )
        return ServiceOutcome(route.name, backend, tuple(sent), tuple(refused), waiting)

    def _remember_endpoints(self, routes: Sequence[ServiceRoute], snapshot: _Snapshot) -> None:
        """Keep the table's address and zone of every server, for stats(); servers the table
        dropped keep theirs until HAProxy deletes them."""
        remembered: dict[str, dict[str, tuple[str, str]]] = {}
        for route in routes:
            names = remembered.setdefault(route.name, {})
            for endpoint in route.endpoints:
                for backup in (False, True):
                    name = server_name(endpoint.address, backup=backup)
                    names[name] = (endpoint.address, endpoint.zone)
        for backend, servers in snapshot.servers.items():
            service = self._service_of(backend) or ""
            previous = self._endpoints.get(service, {})
            names = remembered.setdefault(service, {})
            for server in servers:
                if server.name not in names and server.name in previous:
                    names[server.name] = previous[server.name]
        self._endpoints = remembered

    async def read_back(self) -> dict[str, list[ServerView]]:
        """What HAProxy really runs in the agent's backends, by service (also refreshes
        :meth:`stats`)."""
        async with self._lock:
            snapshot = await self._snapshot()
        return {
            service: servers
            for backend, servers in sorted(snapshot.servers.items())
            if (service := self._service_of(backend)) is not None
        }

    async def refresh_stats(self) -> None:
        """Re-read the counters :meth:`stats` reports (apply and read_back also do)."""
        async with self._lock:
            self._stat_rows = {
                (row.proxy, row.name): row
                for row in await self.runtime.show_stat()
                if row.kind == 2 and self._service_of(row.proxy) is not None
            }

    def stats(self) -> list[EndpointStats]:
        """Per-server counters for the AgentReport, as last read: ``requests`` = ``req_tot``,
        ``errors`` = 5xx + failed connects + broken responses, ``in_flight`` = ``scur``, and
        ``ewma_latency_ms`` = HAProxy's ``rtime`` (a plain average of the last 1024 requests,
        HAProxy has no EWMA). Counters restart when a server is deleted and added again."""
        reports: list[EndpointStats] = []
        for (backend, name), row in sorted(self._stat_rows.items()):
            service = self._service_of(backend)
            if service is None:
                continue
            address, zone = self._endpoints.get(service, {}).get(name, (row.address, ""))
            try:
                reports.append(
                    EndpointStats(
                        service=service,
                        address=address,
                        zone=zone,
                        ewma_latency_ms=float(row.response_ms),
                        in_flight=row.sessions,
                        requests=row.requests,
                        errors=row.errors,
                    )
                )
            except ValidationError:
                logger.debug("server %s/%s has no reportable address %r", backend, name, address)
        return reports
