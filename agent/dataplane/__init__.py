"""The agent's embedded dataplane: serves each routed service on its own listener and
applies pushed routing tables in place (see ``table``, ``balancer``, ``proxy``)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry

from agent.dataplane.balancer import RandomSource
from agent.dataplane.ewma import DEFAULT_RTT_SECONDS
from agent.dataplane.proxy import DataplaneMetrics, ServiceProxy
from agent.dataplane.table import (
    ServiceSpec,
    desired_services,
    listener_conflicts,
    plan_changes,
)
from shared.config import DataplaneSettings
from shared.wire import MAX_DATAPLANE_ENDPOINTS, DataplaneTuning, EndpointStats, RoutingTable

__all__ = ["Dataplane"]

log = logging.getLogger(__name__)


class RoutingDataplane(Protocol):
    """What the agent app needs of a dataplane: the embedded proxy or the HAProxy driver."""

    async def start(self) -> None: ...

    async def apply(self, table: RoutingTable | None) -> None: ...

    def stats(self) -> list[EndpointStats]: ...

    async def close(self) -> None: ...


class Dataplane:
    """Runs the services of static config plus the held routing table.

    ``apply`` is serialised (a lock), so a push and a catch-up never interleave; services whose
    listener goes away stop in the background, letting their in-flight requests finish.
    """

    def __init__(
        self,
        settings: DataplaneSettings,
        own_zone: str,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: RandomSource | None = None,
        default_rtt_seconds: float = DEFAULT_RTT_SECONDS,
    ) -> None:
        self.settings = settings
        self.own_zone = own_zone
        self.metrics = DataplaneMetrics(registry)
        self.clock = clock
        self.rng: RandomSource = rng if rng is not None else random.Random()
        self.default_rtt_seconds = default_rtt_seconds
        self.table: RoutingTable | None = None
        self.tuning: DataplaneTuning | None = None
        self._services: dict[str, ServiceProxy] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._started = False

    @property
    def services(self) -> dict[str, ServiceProxy]:
        return dict(self._services)

    async def start(self) -> None:
        """Serve the static services (a table applied before start is served too)."""
        self._started = True
        await self.apply(self.table)

    async def apply(self, table: RoutingTable | None) -> None:
        """Converge on static config + ``table`` (None: static only, or keep the held one
        if ``table`` is older than what is running)."""
        async with self._lock:
            if table is not None and (self.table is None or table.version >= self.table.version):
                self.table = table
            if not self._started:
                return
            desired = desired_services(self.settings, self.table, self.own_zone)
            for listen, names in listener_conflicts(desired).items():
                for name in names[1:]:
                    log.error("dataplane: %s also wants %s:%s; not served", name, *listen)
                    desired.pop(name)
            running: dict[str, ServiceSpec] = {n: s.spec for n, s in self._services.items()}
            changes = plan_changes(running, desired)
            for name in changes.stop:
                self._stop_in_background(self._services.pop(name), name not in desired)
            if changes.stop:
                await asyncio.sleep(0)  # let the listeners close before others bind
            for name in changes.update:
                self._services[name].update(desired[name])
            for name in changes.start:
                proxy = ServiceProxy(
                    desired[name],
                    self.metrics,
                    clock=self.clock,
                    rng=self.rng,
                    default_rtt_seconds=self.default_rtt_seconds,
                    tuning=self.tuning,
                )
                try:
                    await proxy.start()
                except OSError as error:
                    log.error("dataplane: cannot serve %s: %s", name, error)
                    await proxy.stop()
                    continue
                self._services[name] = proxy

    def tune(self, tuning: DataplaneTuning | None) -> None:
        """Apply a pushed TuningSet's concurrency limit, timeouts and retry budget to every
        service now and to those started later (None: each route's own settings)."""
        self.tuning = tuning
        for proxy in self._services.values():
            proxy.tune(tuning)

    def _stop_in_background(self, proxy: ServiceProxy, forget_metrics: bool = True) -> None:
        log.info("dataplane: stopping %s after its in-flight requests", proxy.spec.name)
        task = asyncio.create_task(
            proxy.stop(forget_metrics=forget_metrics), name=f"dataplane-stop-{proxy.spec.name}"
        )
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    def stats(self) -> list[EndpointStats]:
        """Per-endpoint counters and gauges for the AgentReport, bounded by the wire limit."""
        stats = [item for proxy in self._services.values() for item in proxy.stats()]
        return stats[:MAX_DATAPLANE_ENDPOINTS]

    async def close(self) -> None:
        async with self._lock:
            services, self._services = list(self._services.values()), {}
            self._started = False
        for proxy in services:
            self._stop_in_background(proxy)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
