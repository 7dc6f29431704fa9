"""The embedded reverse proxy: one aiohttp listener per service, forwarding to the endpoint
the balancer picks over one pooled keep-alive client session.

Per request: pick (priority, zone, endpoint), forward with hop-by-hop headers removed and
``X-Forwarded-For`` added, stream both bodies. A try is bounded by the per-try timeout and the
whole exchange by the overall one (504 before any answer). Idempotent requests (GET HEAD
OPTIONS PUT DELETE) are retried after a connect failure, a reset, a per-try timeout or a
502/503/504, on another endpoint when there is one, within ``max_attempts`` and the retry
budget. Nothing to pick answers 503 ``{"error": "no healthy upstream"}``.

Admission control: with a pushed TuningSet the service takes at most
``dataplane.max_concurrency`` requests at once; one more is answered 503
``{"error": "concurrency limit"}`` at once (never queued: a queue in front of a saturated
upstream only adds latency) and counted in ``linescale_dataplane_rejected_total``. The
TuningSet's connect and request timeouts and retry budget replace the route's: the
controller tunes them fleet-wide (request timeout = the overall timeout, a try never longer).

A new table is applied in place: the same address keeps its in-flight count, EWMA and
counters; a removed or draining endpoint takes no new request and finishes the ones it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from yarl import URL

from agent.dataplane.balancer import Balancer, RandomSource, Upstream
from agent.dataplane.ewma import PeakEwma
from agent.dataplane.health import PassiveHealthTracker
from agent.dataplane.retry_budget import RetryBudget
from agent.dataplane.table import ServiceSpec
from shared import metric_names
from shared.wire import DataplaneTuning, EndpointStats, RetryPolicy, Timeouts

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_STATUSES = frozenset({502, 503, 504})
# RFC 9110 section 7.6.1 connection-specific fields, plus the pre-standard Proxy-Connection.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Request bodies up to this size are buffered so the request can be retried; larger or
# unsized ones are streamed and tried once.
RETRY_BUFFER_BYTES = 64 * 1024
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

FailureKind = Literal["connect", "reset", "timeout"]


class DataplaneMetrics:
    """Per-endpoint series on the agent's registry; an endpoint's series go with it."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            metric_names.DATAPLANE_REQUESTS,
            "Tries sent to an upstream endpoint, by answer class (error: no HTTP answer).",
            ["service", "endpoint", "code_class"],
            registry=registry,
        )
        self.duration = Histogram(
            metric_names.DATAPLANE_REQUEST_DURATION,
            "Time from sending a try to an endpoint until its answer's headers.",
            ["service", "endpoint"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            metric_names.DATAPLANE_IN_FLIGHT,
            "Requests an endpoint is serving now.",
            ["service", "endpoint"],
            registry=registry,
        )
        self.ewma = Gauge(
            metric_names.DATAPLANE_EWMA,
            "Peak-EWMA response time of an endpoint, decayed to the scrape.",
            ["service", "endpoint"],
            registry=registry,
        )
        self.retries = Counter(
            metric_names.DATAPLANE_RETRIES,
            "Retry decisions: retried, or not for lack of budget or attempts.",
            ["service", "outcome"],
            registry=registry,
        )
        self.ejections = Counter(
            metric_names.DATAPLANE_EJECTIONS,
            "Endpoints taken out locally by passive health.",
            ["service"],
            registry=registry,
        )
        self.rejected = Counter(
            metric_names.DATAPLANE_REJECTED,
            "Requests refused before any upstream was tried, by reason.",
            ["service", "reason"],
            registry=registry,
        )

    def forget(self, service: str, endpoint: str) -> None:
        for metric in (self.duration, self.in_flight, self.ewma):
            _remove(metric, service, endpoint)
        for code_class in ("1xx", "2xx", "3xx", "4xx", "5xx", "error"):
            _remove(self.requests, service, endpoint, code_class)


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


class EndpointRuntime(Upstream):
    """An upstream with what the agent reports on it and its metric series."""

    __slots__ = (
        "_code_counters",
        "_duration",
        "consecutive_errors",
        "errors",
        "requests",
        "service",
    )

    def __init__(
        self, service: str, address: str, ewma: PeakEwma, metrics: DataplaneMetrics
    ) -> None:
        super().__init__(address, ewma)
        self.service = service
        self.requests = 0
        self.errors = 0
        self.consecutive_errors = 0
        self._code_counters = {
            code_class: metrics.requests.labels(service, address, code_class)
            for code_class in ("1xx", "2xx", "3xx", "4xx", "5xx", "error")
        }
        self._duration = metrics.duration.labels(service, address)
        # Read at scrape time rather than inc()/dec() per request: two locked updates fewer
        # on the hot path, and the gauge cannot drift from the count the balancer uses.
        metrics.in_flight.labels(service, address).set_function(lambda: self.in_flight)
        metrics.ewma.labels(service, address).set_function(
            lambda: self.ewma.estimate(time.monotonic())
        )

    def started(self) -> None:
        self.in_flight += 1

    def finished(self) -> None:
        self.in_flight -= 1

    def answered(self, status: int | None, seconds: float) -> bool:
        """Count one try; returns whether it failed (5xx or no answer)."""
        self.requests += 1
        failed = status is None or status >= 500
        code_class = "error" if status is None else f"{min(max(status // 100, 1), 5)}xx"
        self._code_counters[code_class].inc()
        if status is not None:
            self._duration.observe(seconds)
        if failed:
            self.errors += 1
            self.consecutive_errors += 1
        else:
            self.consecutive_errors = 0
        return failed


def _connection_named(headers: CIMultiDictProxy[str]) -> set[str]:
    """Headers the ``Connection`` header declares hop-by-hop."""
    values = headers.getall("Connection", [])
    return {token.strip().lower() for value in values for token in value.split(",")}


def _end_to_end(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """A copy without the hop-by-hop headers and those ``Connection`` names. Copying whole
    and dropping the few names (case-insensitive ``popall``) costs about a third of
    filtering every header in Python, and keeps the order and repeats the same way."""
    copy: CIMultiDict[str] = CIMultiDict(headers)
    dropped = HOP_BY_HOP | _connection_named(headers) if "Connection" in headers else HOP_BY_HOP
    for name in dropped:
        copy.popall(name, None)
    return copy


def forwarded_headers(headers: CIMultiDictProxy[str], remote: str | None) -> CIMultiDict[str]:
    """Request headers for the upstream: hop-by-hop ones (and those ``Connection`` names)
    removed, the client appended to ``X-Forwarded-For``."""
    forwarded = _end_to_end(headers)
    if remote:
        prior = forwarded.popall("X-Forwarded-For", [])
        forwarded["X-Forwarded-For"] = ", ".join([*prior, remote])
    return forwarded


def response_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    return _end_to_end(headers)


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"error": message}).encode(),
        content_type="application/json",
    )


def tuned_timeouts(timeouts: Timeouts, tuning: DataplaneTuning | None) -> Timeouts:
    """The route's timeouts with a TuningSet's in force: connect as pushed, the request
    timeout as the overall one, and no try longer than the whole request."""
    if tuning is None:
        return timeouts
    overall = tuning.request_timeout_ms / 1000.0
    return Timeouts(
        connect_seconds=tuning.connect_timeout_ms / 1000.0,
        per_try_seconds=min(timeouts.per_try_seconds, overall),
        overall_seconds=overall,
    )


def tuned_retries(retries: RetryPolicy, tuning: DataplaneTuning | None) -> RetryPolicy:
    """The route's retry policy with a TuningSet's retry budget."""
    if tuning is None:
        return retries
    return retries.model_copy(update={"budget_percent": tuning.retry_budget_percent})


@functools.lru_cache(maxsize=16)
def _connect_timeout(connect_seconds: float) -> aiohttp.ClientTimeout:
    """The (frozen, shareable) per-try client timeout: built once per connect timeout in
    force instead of once per try."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_seconds)


class _TryFailedError(Exception):
    def __init__(self, kind: FailureKind) -> None:
        super().__init__(kind)
        self.kind = kind


class ServiceProxy:
    """One service: its listener, balancer, passive health, retry budget and client pool."""

    def __init__(
        self,
        spec: ServiceSpec,
        metrics: DataplaneMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: RandomSource | None = None,
        default_rtt_seconds: float = 0.030,
        tuning: DataplaneTuning | None = None,
    ) -> None:
        self.spec = spec
        self.metrics = metrics
        self.clock = clock
        self.rng: RandomSource = rng if rng is not None else random.Random()
        self.default_rtt_seconds = default_rtt_seconds
        self.tuning = tuning
        self.timeouts = tuned_timeouts(spec.timeouts, tuning)
        self.health = PassiveHealthTracker(spec.passive_health)
        self.budget = RetryBudget(tuned_retries(spec.retries, tuning))
        self.active_requests = 0  # client requests being handled (admission control)
        self._rejected = metrics.rejected.labels(spec.name, "concurrency_limit")
        self._endpoints: dict[str, EndpointRuntime] = {}
        self._retired: dict[str, EndpointRuntime] = {}
        self._next_expiry: float | None = None
        self.balancer = Balancer(spec.shape, [], self.rng)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.ServerRunner | None = None
        self.bound_port: int | None = None
        self._apply_endpoints(spec)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        timeouts = self.timeouts
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_seconds),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=timeouts.overall_seconds)
        await runner.setup()
        site = web.TCPSite(runner, self.spec.listen_host, self.spec.listen_port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            await self._session.close()
            raise
        self._runner = runner
        addresses = runner.addresses
        self.bound_port = int(addresses[0][1]) if addresses else self.spec.listen_port
        log.info(
            "dataplane service %s listening on %s:%s (%s)",
            self.spec.name,
            self.spec.listen_host,
            self.bound_port,
            self.spec.source,
            extra={"service": self.spec.name},
        )

    async def stop(self, *, forget_metrics: bool = True) -> None:
        """Stop listening, let in-flight requests finish (up to the overall timeout), then
        close the pool. ``forget_metrics=False`` keeps the series for a successor (the same
        service on a new listener shares them)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if forget_metrics:
            for runtime in [*self._endpoints.values(), *self._retired.values()]:
                self.metrics.forget(self.spec.name, runtime.address)
        self._endpoints.clear()
        self._retired.clear()

    def update(self, spec: ServiceSpec) -> None:
        """Apply a new spec on the same listener, in place."""
        self.spec = spec
        self.health.set_policy(spec.passive_health)
        self.tune(self.tuning)
        self._apply_endpoints(spec)

    def tune(self, tuning: DataplaneTuning | None) -> None:
        """Apply a TuningSet's dataplane part (None: the route's own settings), in place;
        requests in flight keep the timeouts they started with."""
        self.tuning = tuning
        self.timeouts = tuned_timeouts(self.spec.timeouts, tuning)
        self.budget.set_policy(tuned_retries(self.spec.retries, tuning))

    @property
    def max_concurrency(self) -> int | None:
        return self.tuning.max_concurrency if self.tuning is not None else None

    def _apply_endpoints(self, spec: ServiceSpec) -> None:
        now = self.clock()
        current: dict[str, EndpointRuntime] = {}
        for wanted in spec.upstreams:
            runtime = self._endpoints.get(wanted.address) or self._retired.pop(wanted.address, None)
            if runtime is None:
                ewma = PeakEwma(now, default_rtt_seconds=self.default_rtt_seconds)
                runtime = EndpointRuntime(spec.name, wanted.address, ewma, self.metrics)
            runtime.zone = wanted.zone
            runtime.weight = wanted.weight
            runtime.state = wanted.state
            runtime.priority = wanted.priority
            runtime.locally_ejected = self.health.of(wanted.address).ejected(now)
            current[wanted.address] = runtime
        for address, runtime in self._endpoints.items():
            if address not in current:
                self._retired[address] = runtime
                self.health.forget(address)
        self._endpoints = current
        self._prune_retired()
        self.balancer.update(spec.shape, current.values())
        self._next_expiry = self.health.next_expiry()

    def _prune_retired(self) -> None:
        for address in [a for a, runtime in self._retired.items() if runtime.in_flight == 0]:
            del self._retired[address]
            self.metrics.forget(self.spec.name, address)

    def stats(self) -> list[EndpointStats]:
        self._prune_retired()
        now = self.clock()
        return [
            EndpointStats(
                service=self.spec.name,
                address=runtime.address,
                zone=runtime.zone,
                ewma_latency_ms=runtime.ewma.estimate(now) * 1000.0,
                in_flight=max(0, runtime.in_flight),
                requests=runtime.requests,
                errors=runtime.errors,
                consecutive_errors=runtime.consecutive_errors,
                locally_ejected=runtime.locally_ejected,
            )
            for runtime in [*self._endpoints.values(), *self._retired.values()]
        ]

    def endpoints(self) -> Iterable[EndpointRuntime]:
        return self._endpoints.values()

    # --- passive health -------------------------------------------------------------------

    def _expire_ejections(self, now: float) -> None:
        if self._next_expiry is None or now < self._next_expiry:
            return
        for address in self.health.expire(now):
            runtime = self._endpoints.get(address)
            if runtime is not None:
                runtime.locally_ejected = False
                log.info("dataplane %s: %s back from ejection", self.spec.name, address)
        self.balancer.rebuild()
        self._next_expiry = self.health.next_expiry()

    def _record(self, runtime: EndpointRuntime, failed: bool, now: float) -> None:
        if not failed:
            if runtime.consecutive_errors == 0:
                self.health.record_success(runtime.address)
            return
        if runtime.address not in self._endpoints or runtime.locally_ejected:
            return
        others = sum(1 for upstream in self.balancer.eligible() if upstream is not runtime)
        decision = self.health.record_failure(runtime.address, now, others)
        if decision.eject:
            runtime.locally_ejected = True
            self.metrics.ejections.labels(self.spec.name).inc()
            self.balancer.rebuild()
            self._next_expiry = self.health.next_expiry()
            log.warning(
                "dataplane %s: ejected %s for %.1fs after %d failures",
                self.spec.name,
                runtime.address,
                self.spec.passive_health.ejection_seconds,
                self.spec.passive_health.consecutive_failures,
                extra={"service": self.spec.name, "endpoint": runtime.address},
            )

    # --- forwarding -----------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        limit = self.max_concurrency
        if limit is not None and self.active_requests >= limit:
            self._rejected.inc()
            return _json_error(503, "concurrency limit")
        self.active_requests += 1
        try:
            return await self._forward(request)
        finally:
            self.active_requests -= 1

    async def _forward(self, request: web.BaseRequest) -> web.StreamResponse:
        clock = self.clock
        started = clock()
        timeouts = self.timeouts
        retries = self.budget.policy
        deadline = started + timeouts.overall_seconds
        self.budget.record_request(started)
        body: bytes | aiohttp.StreamReader | None = None
        retryable = request.method in IDEMPOTENT_METHODS
        if request.can_read_body:
            length = request.content_length
            if length is not None and length <= RETRY_BUFFER_BYTES:
                body = await request.read()
            else:
                body = request.content
                retryable = False
        headers = forwarded_headers(request.headers, request.remote)
        if isinstance(body, bytes):
            headers.popall("Content-Length", None)
        tried: list[Upstream] = []
        attempts = retries.max_attempts if retryable else 1
        while True:
            now = clock()
            self._expire_ejections(now)
            picked = self.balancer.pick(now, tried)
            if picked is None:
                return _json_error(503, "no healthy upstream")
            assert isinstance(picked, EndpointRuntime)
            remaining = deadline - now
            if remaining <= 0:
                return _json_error(504, "upstream timeout")
            try_seconds = min(timeouts.per_try_seconds, remaining)
            tried.append(picked)
            picked.started()
            try:
                upstream = await self._send(
                    picked, request, headers, body, try_seconds, timeouts.connect_seconds
                )
            except _TryFailedError as failure:
                end = clock()
                picked.finished()
                self._observe_failure(picked, end - now, end)
                picked.answered(None, end - now)
                self._record(picked, True, end)
                if self._may_retry(len(tried), attempts, end, deadline):
                    continue
                if failure.kind == "timeout" or end >= deadline:
                    return _json_error(504, "upstream timeout")
                return _json_error(502, f"upstream {failure.kind} failure")
            except BaseException:
                picked.finished()
                raise
            answered_at = clock()
            elapsed = answered_at - now
            status = upstream.status
            failed = picked.answered(status, elapsed)
            if failed:
                self._observe_failure(picked, elapsed, answered_at)
            else:
                picked.ewma.observe(elapsed, answered_at)
            self._record(picked, failed, answered_at)
            if status in RETRYABLE_STATUSES and self._may_retry(
                len(tried), attempts, answered_at, deadline
            ):
                upstream.release()
                picked.finished()
                continue
            try:
                return await self._relay(request, upstream, deadline - answered_at)
            finally:
                upstream.release()
                picked.finished()

    def _observe_failure(self, runtime: EndpointRuntime, elapsed: float, now: float) -> None:
        """A failure never makes an endpoint look faster: a fast refusal would otherwise pull
        traffic to a dead endpoint (the black hole of latency-only balancing)."""
        runtime.ewma.observe(max(elapsed, runtime.ewma.estimate(now)), now)

    def _may_retry(self, tries: int, attempts: int, now: float, deadline: float) -> bool:
        if tries >= attempts:
            if attempts > 1:
                self.metrics.retries.labels(self.spec.name, "attempts_exhausted").inc()
            return False
        if now >= deadline:
            return False
        if not self.budget.try_retry(now):
            self.metrics.retries.labels(self.spec.name, "budget_exhausted").inc()
            return False
        self.metrics.retries.labels(self.spec.name, "retried").inc()
        return True

    async def _send(
        self,
        runtime: EndpointRuntime,
        request: web.BaseRequest,
        headers: CIMultiDict[str],
        body: bytes | aiohttp.StreamReader | None,
        try_seconds: float,
        connect_seconds: float,
    ) -> aiohttp.ClientResponse:
        session = self._session
        if session is None:
            raise _TryFailedError("connect")
        url = URL(f"http://{runtime.address}{request.raw_path}", encoded=True)
        try:
            async with asyncio.timeout(try_seconds):
                return await session.request(
                    request.method,
                    url,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    timeout=_connect_timeout(connect_seconds),
                )
        except TimeoutError:
            raise _TryFailedError("timeout") from None
        except (aiohttp.ClientConnectorError, aiohttp.ClientProxyConnectionError):
            raise _TryFailedError("connect") from None
        except (aiohttp.ClientError, OSError):
            raise _TryFailedError("reset") from None

    async def _relay(
        self, request: web.BaseRequest, upstream: aiohttp.ClientResponse, remaining: float
    ) -> web.StreamResponse:
        headers = response_headers(upstream.headers)
        length = upstream.content_length
        small = length is not None and length <= RETRY_BUFFER_BYTES and request.method != "HEAD"
        response: web.StreamResponse
        if small:
            try:
                if upstream.content.is_eof():
                    # The whole body came with the headers (the usual small answer): reading
                    # it cannot wait, so it needs no timer (one call_at and cancel fewer).
                    data = await upstream.read()
                else:
                    async with asyncio.timeout(max(remaining, 0.001)):
                        data = await upstream.read()
            except (TimeoutError, aiohttp.ClientError, OSError):
                return _json_error(504 if remaining <= 0 else 502, "upstream body failure")
            headers["Content-Length"] = str(len(data))
            # A web.Response holds its headers back until write_eof and sends them with the
            # body in one send(); a StreamResponse sends them at prepare(), costing a second
            # send() per answer (socket send is the largest self-time in the profile).
            response = web.Response(
                status=upstream.status, reason=upstream.reason, headers=headers, body=data
            )
        else:
            response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=headers
            )
        try:
            await response.prepare(request)
            if not small:  # a small body goes out with the headers in write_eof
                async with asyncio.timeout(max(remaining, 0.001)):
                    async for chunk in upstream.content.iter_any():
                        await response.write(chunk)
            await response.write_eof()
        except (TimeoutError, aiohttp.ClientError, OSError):
            # The client left, or the upstream failed after the headers went out: cutting
            # the connection is the only honest signal left.
            if request.transport is not None:
                request.transport.close()
        return response
