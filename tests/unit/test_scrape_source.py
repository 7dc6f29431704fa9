"""ScrapeSource on fixed exposition texts and a fake clock: parsing, rates, staleness, bounds."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from controller.ports import WorkloadRef
from controller.sources.scrape import (
    ScrapedFamily,
    ScrapeSource,
    histogram_quantile,
    metrics_url,
    rate,
)

INTAKE = WorkloadRef("line", "order-intake")
LEDGER = WorkloadRef("line", "ledger", "StatefulSet")
GHOST = WorkloadRef("line", "ghost")


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def cpu_line(pod: str, seconds: float, container: str = "app", stamp_ms: int | None = None) -> str:
    labels = f'namespace="line",pod="{pod}",container="{container}",pod_uid="u",container_id="c"'
    suffix = "" if stamp_ms is None else f" {stamp_ms}"
    return f"linescale_container_cpu_usage_seconds_total{{{labels}}} {seconds}{suffix}"


def exposition(t: float, *, extra: Sequence[str] = ()) -> str:
    """An agent-like exposition at elapsed time ``t``: counters growing at fixed rates."""
    return "\n".join(
        [
            "# HELP linescale_container_cpu_usage_seconds_total CPU used.",
            "# TYPE linescale_container_cpu_usage_seconds_total counter",
            cpu_line("order-intake-7d9f8b6c5-x2k4q", 0.25 * t),
            cpu_line("order-intake-7d9f8b6c5-x2k4q", 0.05 * t, container="sidecar"),
            cpu_line("order-intake-7d9f8b6c5-b7rzm", 0.5 * t),
            cpu_line("ledger-0", 0.2 * t),
            # Not a container (empty namespace/pod): never a workload.
            'linescale_container_cpu_usage_seconds_total{namespace="",pod="",container="",'
            'pod_uid="",container_id=""} 99',
            "# TYPE linescale_container_memory_usage_bytes gauge",
            'linescale_container_memory_usage_bytes{namespace="line",pod="order-intake-7d9f8b6c5-'
            'x2k4q",container="app",pod_uid="u",container_id="c"} 1e8',
            'linescale_container_memory_usage_bytes{namespace="line",pod="order-intake-7d9f8b6c5-'
            'b7rzm",container="app",pod_uid="u",container_id="c"} 1.5e8',
            'linescale_container_memory_usage_bytes{namespace="line",pod="ledger-0",'
            'container="app",pod_uid="u",container_id="c"} 3e8',
            'linescale_process_cpu_seconds_total{pid="1",command="x",namespace="line",'
            'pod="ledger-0",container="app",pod_uid="u",container_id="c"} 5',
            *extra,
            "",
        ]
    )


def new_source(clock: FakeClock, **kwargs: Any) -> ScrapeSource:
    return ScrapeSource(lambda: ["a:1"], interval_seconds=5, clock=clock, **kwargs)


def run_rounds(
    source: ScrapeSource,
    clock: FakeClock,
    rounds: int,
    body: Callable[[float], str | Exception],
    *,
    target: str = "a:1",
) -> None:
    """``rounds`` rounds 5 s apart, starting at the clock; elapsed time t=0, 5, 10, ..."""
    start = clock.now
    for index in range(rounds):
        clock.now = start + 5 * index
        source.record({target: body(5.0 * index)}, clock.now)


async def test_parses_exposition_into_per_workload_readings() -> None:
    clock = FakeClock()
    source = new_source(clock)
    run_rounds(source, clock, 3, exposition)

    cpu = await source.current("cpu_cores", [INTAKE, LEDGER, GHOST], clock.now)
    assert cpu is not None
    assert cpu.values == {
        INTAKE: pytest.approx(0.25 + 0.05 + 0.5),
        LEDGER: pytest.approx(0.2),
    }
    assert cpu.missing == (GHOST,)
    assert cpu.at == clock.now

    memory = await source.current("memory_bytes", [INTAKE, LEDGER], clock.now)
    assert memory is not None
    assert memory.values == {INTAKE: 2.5e8, LEDGER: 3e8}


async def test_a_counter_needs_two_samples_before_it_has_a_rate() -> None:
    clock = FakeClock()
    source = new_source(clock)
    run_rounds(source, clock, 1, exposition)
    cpu = await source.current("cpu_cores", [INTAKE], clock.now)
    assert cpu is not None
    assert cpu.values == {}
    assert cpu.missing == (INTAKE,)
    memory = await source.current("memory_bytes", [INTAKE], clock.now)
    assert memory is not None
    assert memory.values == {INTAKE: 2.5e8}  # a gauge is usable at once


@pytest.mark.parametrize(
    ("points", "expected"),
    [
        pytest.param([(0, 10), (5, 20), (10, 30)], 2.0, id="steady"),
        pytest.param([(0, 10), (5, 20), (10, 5), (15, 15)], 25 / 15, id="reset-counts-new-value"),
        pytest.param([(0, 10), (5, 0), (10, 0)], 0.0, id="reset-to-zero"),
        pytest.param([(0, 10)], None, id="one-sample"),
        pytest.param([], None, id="no-samples"),
        pytest.param([(5, 10), (5, 12)], None, id="no-time-elapsed"),
    ],
)
def test_rate(points: list[tuple[float, float]], expected: float | None) -> None:
    assert rate(points) == (None if expected is None else pytest.approx(expected))


async def test_counter_reset_in_a_scrape_gives_the_prometheus_rate() -> None:
    clock = FakeClock()
    source = new_source(clock)
    values = iter([10.0, 20.0, 5.0, 15.0])  # the pod restarted between the 2nd and 3rd scrape
    run_rounds(source, clock, 4, lambda t: cpu_line("ledger-0", next(values)) + "\n")
    cpu = await source.current("cpu_cores", [LEDGER], clock.now)
    assert cpu is not None
    assert cpu.values == {LEDGER: pytest.approx(25 / 15)}


async def test_rate_window_limits_the_samples_used() -> None:
    clock = FakeClock()
    source = new_source(clock, rate_window_seconds=10)
    # 1 core for 20 s, then 3 cores: a 10 s window sees only the new rate.
    run_rounds(
        source, clock, 7, lambda t: cpu_line("ledger-0", t if t <= 20 else 20 + 3 * (t - 20))
    )
    cpu = await source.current("cpu_cores", [LEDGER], clock.now)
    assert cpu is not None
    assert cpu.values == {LEDGER: pytest.approx(3.0)}


async def test_failed_target_keeps_series_until_stale_then_missing() -> None:
    clock = FakeClock()
    source = ScrapeSource(lambda: ["a:1", "b:1"], interval_seconds=5, clock=clock)
    good = exposition(10)
    source.record({"a:1": exposition(0), "b:1": "up 1\n"}, 1000)
    source.record({"a:1": good, "b:1": "up 1\n"}, 1005)
    down = ConnectionRefusedError("refused")
    for at in (1010, 1015, 1020):  # a:1 fails; b:1 still answers so the source stays healthy
        clock.now = at
        source.record({"a:1": down, "b:1": "up 1\n"}, at)
        reading = await source.current("memory_bytes", [LEDGER], at)
        assert reading is not None
        # max age = 3 intervals = 15 s since a:1's last sample at 1005.
        assert reading.values == ({LEDGER: 3e8} if at - 1005 <= 15 else {})
    health = source.health()
    assert health.healthy
    assert "1 of 2 targets failed" in health.detail
    assert "a:1: ConnectionRefusedError: refused" in health.detail


async def test_series_dropped_by_an_answering_target_is_missing_at_once() -> None:
    clock = FakeClock()
    source = new_source(clock)
    run_rounds(source, clock, 2, exposition)
    clock.now += 5
    without_ledger = "\n".join(line for line in exposition(10).splitlines() if "ledger" not in line)
    source.record({"a:1": without_ledger}, clock.now)
    memory = await source.current("memory_bytes", [INTAKE, LEDGER], clock.now)
    assert memory is not None
    assert memory.missing == (LEDGER,)
    assert INTAKE in memory.values


async def test_explicit_old_sample_timestamps_are_stale() -> None:
    clock = FakeClock(2000.0)
    source = new_source(clock)
    old_ms = int((clock.now - 60) * 1000)  # a minute old: past 3 x 5 s
    line = (
        'linescale_container_memory_usage_bytes{namespace="line",pod="ledger-0"} 5 '
        f"{old_ms}\n"
        'linescale_container_memory_usage_bytes{namespace="line",pod="order-intake-7d9f8b6c5-'
        'x2k4q"} 7\n'
    )
    run_rounds(source, clock, 2, lambda t: line)
    memory = await source.current("memory_bytes", [INTAKE, LEDGER], clock.now)
    assert memory is not None
    assert memory.values == {INTAKE: 7.0}
    assert memory.missing == (LEDGER,)


async def test_reading_is_missing_when_asked_long_after_the_last_round() -> None:
    clock = FakeClock()
    source = new_source(clock, unhealthy_after_intervals=100)
    run_rounds(source, clock, 2, exposition)
    reading = await source.current("memory_bytes", [LEDGER], clock.now + 16)
    assert reading is not None
    assert reading.values == {}


async def test_unhealthy_when_no_target_answers_then_recovers() -> None:
    clock = FakeClock()
    source = new_source(clock)
    assert not source.health().healthy
    assert source.health().detail == "no scrape yet"
    assert await source.current("cpu_cores", [INTAKE], clock.now) is None

    run_rounds(source, clock, 2, exposition)
    assert source.health().healthy
    answered = clock.now

    for _ in range(4):
        clock.now += 5
        source.record({"a:1": TimeoutError("timed out")}, clock.now)
    health = source.health()
    assert not health.healthy
    assert health.detail.startswith("no target answered in the last 15s")
    assert "a:1: TimeoutError" in health.detail
    assert health.last_success == answered
    assert await source.current("cpu_cores", [INTAKE], clock.now) is None
    assert await source.history("cpu_cores", [INTAKE], answered - 5, clock.now, 5) is None

    clock.now += 5
    source.record({"a:1": exposition(100)}, clock.now)
    assert source.health().healthy


async def test_no_targets_is_unhealthy() -> None:
    clock = FakeClock()
    source = ScrapeSource(list, interval_seconds=5, clock=clock)
    await source.scrape_once()
    assert not source.health().healthy
    assert source.health().detail == "no targets to scrape"
    await source.close()


async def test_malformed_exposition_fails_only_that_target() -> None:
    clock = FakeClock()
    source = ScrapeSource(lambda: ["a:1", "b:1"], interval_seconds=5, clock=clock)
    bad = 'linescale_container_memory_usage_bytes{namespace="line",pod="ledger-0"} not-a-number\n'
    source.record({"a:1": bad, "b:1": exposition(0)}, clock.now)
    health = source.health()
    assert health.healthy
    assert "a:1: unparsable exposition" in health.detail
    memory = await source.current("memory_bytes", [LEDGER], clock.now)
    assert memory is not None
    assert memory.values == {LEDGER: 3e8}


async def test_removed_target_series_are_dropped() -> None:
    clock = FakeClock()
    source = ScrapeSource(lambda: ["a:1"], interval_seconds=5, clock=clock)
    source.record({"a:1": exposition(0)}, clock.now)
    assert source.series_count == 7  # 4 CPU + 3 memory; process and empty-pod lines ignored
    clock.now += 5
    source.record({"b:1": "up 1\n"}, clock.now)
    assert source.series_count == 0


async def test_series_cap_drops_the_least_recently_updated() -> None:
    clock = FakeClock()
    source = new_source(clock, max_series=3)
    pods = [f"w{i}-0" for i in range(5)]
    body = "".join(
        f'linescale_container_memory_usage_bytes{{namespace="n",pod="{pod}"}} {i}\n'
        for i, pod in enumerate(pods)
    )
    source.record({"a:1": body}, clock.now)
    assert source.series_count == 3
    assert source.window_count <= 3
    reading = await source.current(
        "memory_bytes", [WorkloadRef("n", f"w{i}") for i in range(5)], clock.now
    )
    assert reading is not None
    assert sorted(ref.name for ref in reading.values) == ["w2", "w3", "w4"]  # newest kept


async def test_window_holds_at_most_window_seconds_of_values() -> None:
    clock = FakeClock()
    source = new_source(clock, window_seconds=30)
    run_rounds(source, clock, 40, exposition)  # 195 s of rounds
    history = await source.history("memory_bytes", [LEDGER], clock.now - 195, clock.now, 5)
    assert history is not None
    stamps = [stamp for stamp, _ in history[LEDGER]]
    assert stamps == [clock.now - 5 * i for i in range(6, -1, -1)]  # 30 s: 7 rounds


async def test_history_steps_take_the_latest_round_before_them() -> None:
    clock = FakeClock()
    source = new_source(clock)
    run_rounds(source, clock, 5, exposition)  # rounds at 1000..1020
    history = await source.history("cpu_cores", [INTAKE, GHOST], 1002, 1022, 10)
    assert history is not None
    assert history[GHOST] == []
    # At 1002 the latest round (1000) had one sample per counter, hence no rate yet.
    assert [stamp for stamp, _ in history[INTAKE]] == [1012, 1022]
    assert [value for _, value in history[INTAKE]] == pytest.approx([0.8, 0.8])
    early = await source.history("cpu_cores", [INTAKE], 900, 990, 10)
    assert early == {INTAKE: []}


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        pytest.param(0.5, [(0.1, 50), (0.2, 100), (math.inf, 100)], 0.1, id="on-a-bound"),
        pytest.param(0.99, [(0.1, 50), (0.2, 100), (math.inf, 100)], 0.198, id="interpolated"),
        pytest.param(0.99, [(0.1, 0), (0.2, 10), (math.inf, 20)], 0.2, id="in-inf-bucket"),
        pytest.param(0.5, [(0.1, 10), (0.2, 9), (math.inf, 20)], 0.1, id="non-monotonic-fixed"),
        pytest.param(0.5, [(0.1, 0), (math.inf, 0)], None, id="no-observations"),
        pytest.param(0.5, [(0.1, 5), (0.2, 10)], None, id="no-inf-bucket"),
        pytest.param(0.5, [(math.inf, 10)], None, id="one-bucket"),
    ],
)
def test_histogram_quantile(
    q: float, buckets: list[tuple[float, float]], expected: float | None
) -> None:
    assert histogram_quantile(q, buckets) == (None if expected is None else pytest.approx(expected))


async def test_p99_from_bucket_counters() -> None:
    clock = FakeClock()
    source = new_source(clock)

    def buckets(t: float) -> str:
        # 100 req/s; 90 % under 0.1 s, all under 0.5 s.
        return "".join(
            'http_request_duration_seconds_bucket{namespace="line",'
            f'pod="{pod}",le="{le}"}} {count * t}\n'
            for pod in ("order-intake-7d9f8b6c5-x2k4q", "order-intake-7d9f8b6c5-b7rzm")
            for le, count in (("0.1", 45), ("0.5", 50), ("+Inf", 50))
        ) + "".join(
            f'http_requests_total{{namespace="line",pod="{pod}"}} {50 * t}\n'
            for pod in ("order-intake-7d9f8b6c5-x2k4q", "order-intake-7d9f8b6c5-b7rzm")
        )

    run_rounds(source, clock, 3, buckets)
    p99 = await source.current("latency_p99_seconds", [INTAKE], clock.now)
    assert p99 is not None
    # rank 99 of 100 falls 9/10 into the (0.1, 0.5] bucket.
    assert p99.values == {INTAKE: pytest.approx(0.1 + 0.4 * 0.9)}
    rps = await source.current("requests_per_second", [INTAKE], clock.now)
    assert rps is not None
    assert rps.values == {INTAKE: pytest.approx(100.0)}


async def test_ready_replicas_from_kube_state_metrics_labels() -> None:
    clock = FakeClock()
    source = new_source(clock)
    body = (
        'kube_deployment_status_replicas_ready{namespace="line",deployment="order-intake"} 2\n'
        'kube_statefulset_status_replicas_ready{namespace="line",statefulset="ledger"} 1\n'
    )
    source.record({"a:1": body}, clock.now)
    ready = await source.current("ready_replicas", [INTAKE, LEDGER], clock.now)
    assert ready is not None
    assert ready.values == {INTAKE: 2.0, LEDGER: 1.0}


async def test_custom_family_mapping() -> None:
    clock = FakeClock()
    hits = ScrapedFamily("rate", {"app_hits_total": "app"})  # the workload is in an "app" label
    source = new_source(clock, families={"requests_per_second": hits})
    run_rounds(
        source, clock, 2, lambda t: f'app_hits_total{{namespace="line",app="ledger"}} {7 * t}\n'
    )
    rps = await source.current("requests_per_second", [LEDGER], clock.now)
    assert rps is not None
    assert rps.values == {LEDGER: pytest.approx(7.0)}


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("10.0.0.1:9400", "http://10.0.0.1:9400/metrics"),
        ("http://agent:9400", "http://agent:9400/metrics"),
        ("https://agent:9400/", "https://agent:9400/metrics"),
        ("http://agent:9400/custom/metrics", "http://agent:9400/custom/metrics"),
    ],
)
def test_metrics_url(target: str, url: str) -> None:
    assert metrics_url(target) == url


# --------------------------------------------------------------------------------------------
# scrape_once over HTTP (an in-process aiohttp server on loopback)
# --------------------------------------------------------------------------------------------


@pytest.fixture
async def agents() -> AsyncIterator[TestServer]:
    started = asyncio.get_running_loop().time()

    async def good(request: web.Request) -> web.Response:
        elapsed = asyncio.get_running_loop().time() - started
        return web.Response(text=exposition(elapsed), content_type="text/plain")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="")

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    app = web.Application()
    app.router.add_get("/good/metrics", good)
    app.router.add_get("/slow/metrics", slow)
    app.router.add_get("/broken/metrics", broken)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def test_scrape_once_is_concurrent_and_bounded_by_the_timeout(agents: TestServer) -> None:
    base = f"http://127.0.0.1:{agents.port}"
    targets = [f"{base}/good/metrics", f"{base}/slow/metrics", f"{base}/broken/metrics"]
    source = ScrapeSource(lambda: targets, interval_seconds=0.2, timeout_seconds=0.3)
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await source.scrape_once()
        assert loop.time() - began < 1.0  # the slow target cost one timeout, not a hang
        await asyncio.sleep(0.2)
        await source.scrape_once()
        health = source.health()
        assert health.healthy
        assert "2 of 3 targets failed" in health.detail
        assert "slow/metrics: TimeoutError" in health.detail
        assert "500" in health.detail
        cpu = await source.current("cpu_cores", [INTAKE, LEDGER], time.time())
        assert cpu is not None
        assert cpu.values == {
            INTAKE: pytest.approx(0.8, rel=0.1),
            LEDGER: pytest.approx(0.2, rel=0.1),
        }
    finally:
        await source.close()


async def test_start_runs_the_loop_until_close(agents: TestServer) -> None:
    target = f"http://127.0.0.1:{agents.port}/good/metrics"
    source = ScrapeSource(lambda: [target], interval_seconds=0.1, timeout_seconds=1)
    await source.start()
    try:
        for _ in range(50):
            reading = await source.current("cpu_cores", [LEDGER], time.time())
            if reading is not None and reading.values:
                break
            await asyncio.sleep(0.05)
        assert reading is not None
        assert reading.values == {LEDGER: pytest.approx(0.2, rel=0.2)}
    finally:
        await source.close()
    await source.close()  # idempotent
