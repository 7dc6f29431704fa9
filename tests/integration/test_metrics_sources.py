"""Both MetricsSource adapters against real servers: a real Prometheus and a real agent.

Agents on this machine see no kubepods cgroups, so their container metrics are empty; a
synthetic ``/metrics`` served from this test stands in for the containers, with CPU counters
growing at known rates for two pods of a Deployment and one StatefulSet pod. Prometheus
scrapes it (and the agent) every second; ``ScrapeSource`` scrapes the same two targets.

Batching is checked on the wire: ``PrometheusSource`` talks to Prometheus through a counting
proxy, and each ``current()`` must send exactly one ``/api/v1/query`` whatever the number of
workloads, with no workload name in the PromQL.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from unit.test_workloads import WORKLOAD_CASES

from controller.ports import WorkloadRef
from controller.sources.prometheus import PrometheusSource
from controller.sources.scrape import ScrapeSource
from controller.sources.workloads import promql_workload, workload_of

from messages import TOKEN
from services import (
    LinescaleServer,
    PrometheusFactory,
    PrometheusServer,
    ServiceGroup,
    require_binary,
    start_linescale,
    start_prometheus,
)

pytestmark = pytest.mark.services

INTAKE = WorkloadRef("line", "order-intake")
LEDGER = WorkloadRef("line", "ledger", "StatefulSet")
GHOST = WorkloadRef("line", "ghost", "StatefulSet")  # only a sample with an old timestamp
NOBODY = WorkloadRef("other-ns", "nobody")  # never exposed; a "-" to escape in the regex

# Per container: (pod, container, CPU cores, memory bytes).
CONTAINERS = [
    ("order-intake-7d9f8b6c5-x2k4q", "app", 0.25, 1.0e8),
    ("order-intake-7d9f8b6c5-x2k4q", "sidecar", 0.05, 0.2e8),
    ("order-intake-7d9f8b6c5-b7rzm", "app", 0.5, 1.5e8),
    ("ledger-0", "app", 0.2, 3.0e8),
]
EXPECTED_CPU = {INTAKE: 0.8, LEDGER: 0.2}
EXPECTED_MEMORY = {INTAKE: 2.7e8, LEDGER: 3.0e8}
GHOST_AGE_S = 60  # far past 3 x 1 s, well inside Prometheus' own 5-minute lookback
SCRAPE_INTERVAL_S = 1.0
RATE_WINDOW_S = 4
REL = 0.1  # rates: scrape jitter vs. counters computed at request time


# --------------------------------------------------------------------------------------------
# Plain-thread HTTP servers: independent of any event loop, so they outlive one test
# --------------------------------------------------------------------------------------------


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def synthetic_exposition(elapsed: float, now: float) -> str:
    lines = ["# TYPE linescale_container_cpu_usage_seconds_total counter"]
    for pod, container, cores, _ in CONTAINERS:
        labels = (
            f'namespace="line",pod="{pod}",container="{container}",pod_uid="u",container_id="c"'
        )
        lines.append(f"linescale_container_cpu_usage_seconds_total{{{labels}}} {cores * elapsed}")
    lines.append("# TYPE linescale_container_memory_usage_bytes gauge")
    for pod, container, _, memory in CONTAINERS:
        labels = (
            f'namespace="line",pod="{pod}",container="{container}",pod_uid="u",container_id="c"'
        )
        lines.append(f"linescale_container_memory_usage_bytes{{{labels}}} {memory}")
    old_ms = int((now - GHOST_AGE_S) * 1000)
    lines.append(
        'linescale_container_memory_usage_bytes{namespace="line",pod="ghost-0",container="app",'
        f'pod_uid="u",container_id="c"}} 5e8 {old_ms}'
    )
    lines.append("# TYPE linescale_test_pod_info gauge")
    lines += [
        f'linescale_test_pod_info{{namespace="table",case="{case}",pod="{pod}"}} 1'
        for case, pod, _ in WORKLOAD_CASES
    ]
    return "\n".join(lines) + "\n"


@dataclass
class ThreadServer:
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    return ThreadServer(server, thread)


def start_synthetic_target() -> ThreadServer:
    started = time.time()

    class Metrics(_Quiet):
        def do_GET(self) -> None:
            now = time.time()
            body = synthetic_exposition(now - started, now).encode()
            self.reply(200, body, "text/plain; version=0.0.4")

    return serve(Metrics)


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class CountingProxy:
    """Forwards to Prometheus and records every request's path and query parameters."""

    def __init__(self, upstream: str) -> None:
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self.fail_with: int | None = None  # answer every request with this status instead
        proxy = self

        class Forward(_Quiet):
            def do_GET(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                proxy.requests.append((parsed.path, urllib.parse.parse_qs(parsed.query)))
                if proxy.fail_with is not None:
                    self.reply(proxy.fail_with, b'{"status":"error"}', "application/json")
                    return
                try:
                    with _NO_PROXY.open(upstream + self.path, timeout=10) as response:
                        status, body = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                    error.close()
                self.reply(status, body, "application/json")

        self._server = serve(Forward)
        self.url = f"http://{self._server.address}"

    def queries(self) -> list[str]:
        return [params["query"][0] for path, params in self.requests if "query" in params]

    def stop(self) -> None:
        self._server.stop()


# --------------------------------------------------------------------------------------------
# One Prometheus + agent + synthetic target for the module (scraping takes ~6 s to begin)
# --------------------------------------------------------------------------------------------


@dataclass
class Stack:
    prometheus: PrometheusServer
    agent: LinescaleServer
    synthetic: ThreadServer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = require_binary("prometheus", "prometheus")
    synthetic = start_synthetic_target()
    try:
        with ServiceGroup(tmp_path_factory.mktemp("metrics-sources")) as group:
            agent = group.add(
                start_linescale(
                    str(Path(sys.executable).parent / "linescale"),
                    group.new_workdir("agent"),
                    "agent",
                    ["--node", "node-1", "--zone", "a"],
                    env={"LINESCALE_TOKEN": TOKEN},
                )
            )
            prometheus = group.add(
                start_prometheus(
                    binary,
                    group.new_workdir("prometheus"),
                    {"synthetic": [synthetic.address], "linescale-agent": [agent.address]},
                    scrape_interval="1s",
                )
            )
            yield Stack(prometheus, agent, synthetic)
    finally:
        synthetic.stop()


async def scraped(stack: Stack, *, history_seconds: int = 0) -> None:
    """Wait until Prometheus scraped both targets, and holds ``history_seconds`` of samples.

    Until a rate window is covered by samples, Prometheus' ``rate`` extrapolates only half an
    interval past the first sample and reads low; tests of rates wait for a full window.
    """
    await asyncio.to_thread(stack.prometheus.wait_for_targets_up, "synthetic")
    await asyncio.to_thread(stack.prometheus.wait_for_targets_up, "linescale-agent")
    if not history_seconds:
        return
    promql = (
        'count_over_time(linescale_container_cpu_usage_seconds_total{pod="ledger-0"}'
        f"[{history_seconds + 1}s])"
    )
    deadline = time.monotonic() + 20
    while True:
        result = await asyncio.to_thread(stack.prometheus.query, promql)
        if result and float(result[0]["value"][1]) >= history_seconds / SCRAPE_INTERVAL_S:
            return
        assert time.monotonic() < deadline, result
        await asyncio.sleep(0.5)


def prometheus_source(url: str) -> PrometheusSource:
    return PrometheusSource(
        url,
        timeout_seconds=2,
        retries=2,
        backoff_seconds=0.1,
        scrape_interval_seconds=SCRAPE_INTERVAL_S,
        rate_window_seconds=RATE_WINDOW_S,
    )


def assert_close(values: dict[WorkloadRef, float], expected: dict[WorkloadRef, float]) -> None:
    assert values.keys() == expected.keys()
    for ref, want in expected.items():
        assert values[ref] == pytest.approx(want, rel=REL), ref


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


async def test_promql_workload_matches_workload_of(stack: Stack) -> None:
    """The same table through the Python function and the PromQL label_replace chain."""
    await scraped(stack)
    result = await asyncio.to_thread(
        stack.prometheus.query, promql_workload('linescale_test_pod_info{namespace="table"}')
    )
    from_promql = {s["metric"]["case"]: s["metric"].get("workload", "") for s in result}
    expected = {case: want for case, _, want in WORKLOAD_CASES}
    assert from_promql == expected
    assert {case: workload_of(pod) for case, pod, _ in WORKLOAD_CASES} == expected


async def test_prometheus_source_sends_one_query_per_family(stack: Stack) -> None:
    # Room for a 2 s history whose every step has a full rate window behind it.
    await scraped(stack, history_seconds=RATE_WINDOW_S + 3)
    proxy = CountingProxy(stack.prometheus.url)
    source = prometheus_source(proxy.url)
    try:
        refs = [INTAKE, LEDGER, GHOST, NOBODY]
        cpu = await source.current("cpu_cores", refs, time.time())
        assert cpu is not None
        assert [path for path, _ in proxy.requests] == ["/api/v1/query"]
        (query,) = proxy.queries()
        assert "order-intake" not in query
        assert "ledger" not in query
        assert 'namespace=~"line|other\\\\-ns"' in query
        assert_close(dict(cpu.values), EXPECTED_CPU)
        assert set(cpu.missing) == {GHOST, NOBODY}

        proxy.requests.clear()
        memory = await source.current("memory_bytes", refs, time.time())
        assert memory is not None
        assert len(proxy.requests) == 1
        assert dict(memory.values) == EXPECTED_MEMORY
        # Prometheus itself still returns the ghost (inside its 5-minute lookback) ...
        raw = await asyncio.to_thread(
            stack.prometheus.query, 'linescale_container_memory_usage_bytes{pod="ghost-0"}'
        )
        assert [float(s["value"][1]) for s in raw] == [5e8]
        # ... but its sample is 60 s old, past our 3 x 1 s bound: missing, not a value.
        assert set(memory.missing) == {GHOST, NOBODY}

        proxy.requests.clear()
        now = time.time()
        history = await source.history("cpu_cores", refs, now - 2, now, 1)
        assert history is not None
        assert [path for path, _ in proxy.requests] == ["/api/v1/query_range"]
        assert history[GHOST] == []
        assert history[NOBODY] == []
        assert len(history[INTAKE]) >= 2
        assert all(v == pytest.approx(0.8, rel=REL) for _, v in history[INTAKE]), history

        # Families without data here answer with everything missing, still in one query each.
        proxy.requests.clear()
        for family in ("requests_per_second", "latency_p99_seconds", "ready_replicas"):
            reading = await source.current(family, refs, time.time())
            assert reading is not None
            assert reading.values == {}
            assert set(reading.missing) == set(refs)
        assert len(proxy.requests) == 3
        assert source.health().healthy
    finally:
        await source.close()
        proxy.stop()


async def test_prometheus_source_retries_only_what_can_heal(stack: Stack) -> None:
    proxy = CountingProxy(stack.prometheus.url)
    source = PrometheusSource(
        proxy.url,
        timeout_seconds=2,
        retries=2,
        backoff_seconds=0.05,
        queries={"cpu_cores": "sum(("},
    )
    try:
        # A query Prometheus rejects (400) is final: one request, no retries.
        assert await source.current("cpu_cores", [INTAKE], time.time()) is None
        assert len(proxy.requests) == 1
        health = source.health()
        assert not health.healthy
        assert health.detail.startswith("cpu_cores: Prometheus refused the query")
        assert "400" in health.detail

        # Any answer makes the source healthy again.
        assert await source.current("memory_bytes", [INTAKE], time.time()) is not None
        assert source.health().healthy

        # 503 can heal: retried, with backoff, then given up.
        proxy.requests.clear()
        proxy.fail_with = 503
        assert await source.current("memory_bytes", [INTAKE], time.time()) is None
        assert len(proxy.requests) == 3
        health = source.health()
        assert not health.healthy
        assert "HTTP Status Code 503" in health.detail
        assert "after 3 attempts" in health.detail
    finally:
        await source.close()
        proxy.stop()


async def test_scrape_source_agrees_with_prometheus(stack: Stack) -> None:
    await scraped(stack, history_seconds=RATE_WINDOW_S + 1)
    targets = [stack.synthetic.address, stack.agent.address]
    scrape = ScrapeSource(
        lambda: targets,
        interval_seconds=SCRAPE_INTERVAL_S,
        timeout_seconds=1,
        rate_window_seconds=RATE_WINDOW_S,
    )
    prometheus = prometheus_source(stack.prometheus.url)
    refs = [INTAKE, LEDGER, GHOST, NOBODY]
    try:
        await scrape.start()
        deadline = time.monotonic() + 15
        while True:
            direct = await scrape.current("cpu_cores", refs, time.time())
            if direct is not None and direct.values.keys() == EXPECTED_CPU.keys():
                break
            assert time.monotonic() < deadline, (direct, scrape.health())
            await asyncio.sleep(0.3)
        health = scrape.health()
        assert health.healthy
        assert health.detail == ""  # the agent answered too
        via_prometheus = await prometheus.current("cpu_cores", refs, time.time())
        assert via_prometheus is not None
        assert_close(dict(direct.values), EXPECTED_CPU)
        assert_close(dict(direct.values), dict(via_prometheus.values))
        assert set(direct.missing) == set(via_prometheus.missing) == {GHOST, NOBODY}

        memory = await scrape.current("memory_bytes", refs, time.time())
        assert memory is not None
        assert dict(memory.values) == EXPECTED_MEMORY
        assert set(memory.missing) == {GHOST, NOBODY}

        now = time.time()
        history = await scrape.history("cpu_cores", refs, now - 2, now, 1)
        assert history is not None
        assert all(v == pytest.approx(0.8, rel=REL) for _, v in history[INTAKE])
    finally:
        await scrape.close()
        await prometheus.close()


async def test_prometheus_outage_gives_none_then_recovers(
    prometheus_factory: PrometheusFactory,
) -> None:
    server = prometheus_factory({})
    source = PrometheusSource(
        server.url, timeout_seconds=1, retries=2, backoff_seconds=0.1, scrape_interval_seconds=1
    )
    refs = [INTAKE, LEDGER]
    try:
        first = await source.current("cpu_cores", refs, time.time())
        assert first is not None
        assert first.values == {}  # nothing scraped: missing, never zero
        assert first.missing == (INTAKE, LEDGER)
        assert source.health().healthy

        server.process.stop()
        began = time.monotonic()
        assert await source.current("cpu_cores", refs, time.time()) is None
        assert time.monotonic() - began <= source.budget_seconds
        health = source.health()
        assert not health.healthy
        assert "unreachable" in health.detail
        assert "ConnectionError" in health.detail
        assert "after 3 attempts" in health.detail
        assert health.last_success is not None
        assert await source.history("cpu_cores", refs, time.time() - 5, time.time(), 1) is None

        # Restart with the same argv (same port, same data dir), as an operator's restart would.
        await asyncio.to_thread(server.restart)
        deadline = time.monotonic() + 20
        while (reading := await source.current("cpu_cores", refs, time.time())) is None:
            assert server.process.is_running(), server.process.log_tail()
            assert time.monotonic() < deadline, source.health()
            await asyncio.sleep(0.2)
        assert reading.missing == (INTAKE, LEDGER)
        recovered = source.health()
        assert recovered.healthy
        assert recovered.detail == ""
    finally:
        await source.close()
