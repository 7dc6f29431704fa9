"""The HAProxy driver behind the same face as the embedded dataplane, for the agent app.

``apply`` hands each new table to HAProxy; a background loop re-applies the held table and
re-reads the counters every ``resync_seconds``, so servers HAProxy lost in a restart come back
and the AgentReport's endpoint stats stay current (the report is built synchronously). An
unreachable socket is logged and counted, never fatal: the agent keeps running and the next
resync tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CollectorRegistry, Counter

from agent.dataplane_haproxy.driver import HAProxyDataplane
from agent.dataplane_haproxy.runtime import RuntimeAPIError
from shared import metric_names
from shared.config import DataplaneSettings
from shared.wire import EndpointStats, RoutingTable

log = logging.getLogger(__name__)


class HAProxyAgentDataplane:
    def __init__(
        self,
        settings: DataplaneSettings,
        own_zone: str,
        registry: CollectorRegistry,
        *,
        resync_seconds: float = 5.0,
        driver: HAProxyDataplane | None = None,
    ) -> None:
        self.driver = driver or HAProxyDataplane(settings.haproxy)
        self._zone = own_zone
        self._table: RoutingTable | None = None
        self._resync_seconds = resync_seconds
        self._task: asyncio.Task[None] | None = None
        self.failures = Counter(
            metric_names.DATAPLANE_HAPROXY_FAILURES,
            "Runtime API calls to HAProxy that failed, by operation.",
            ["operation"],
            registry=registry,
        )
        for operation in ("apply", "stats"):
            self.failures.labels(operation)
        if settings.services:
            log.warning(
                "dataplane mode haproxy: the %d static services in the config are not served; "
                "declare them as HAProxy frontends/backends instead",
                len(settings.services),
            )

    async def start(self) -> None:
        self._task = asyncio.create_task(self._resync(), name="haproxy-resync")

    async def apply(self, table: RoutingTable | None) -> None:
        self._table = table
        await self._apply()

    def stats(self) -> list[EndpointStats]:
        return self.driver.stats()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _apply(self) -> None:
        try:
            result = await self.driver.apply(self._table, self._zone)
        except (RuntimeAPIError, OSError) as error:
            self.failures.labels("apply").inc()
            log.warning("HAProxy did not take the routing table: %s", error)
            return
        for outcome in result.services:
            for command, problem in outcome.refused:
                log.warning("HAProxy refused %r: %s", command.command, problem)
        if result.unmanaged:
            log.warning("no HAProxy backend for routed services %s", ", ".join(result.unmanaged))

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self._resync_seconds)
            await self._apply()
            try:
                await self.driver.refresh_stats()
            except (RuntimeAPIError, OSError) as error:
                self.failures.labels("stats").inc()
                log.warning("could not read HAProxy's counters: %s", error)
