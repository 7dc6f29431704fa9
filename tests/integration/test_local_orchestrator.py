"""Local orchestrator against real child processes: scale under load without a failed request,
restart a killed replica, leave nothing behind, and change nothing under dry run."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import psutil
import pytest

from controller.orchestrators.local import LocalOrchestrator, LocalWorkloadSpec
from controller.ports import Resources, WorkloadRef

pytestmark = pytest.mark.timeout(30)

# A tiny HTTP server: 200 on / and /healthz, 404 elsewhere; the port is argv[1].
SERVER = """
import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if self.path in ("/", "/healthz") else 404
        body = b"ok" if code == 200 else b"no"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def server_spec(name: str = "web", **overrides: float) -> LocalWorkloadSpec:
    settings = {"drain_seconds": 0.5, "stop_timeout_seconds": 2.0, "ready_timeout_seconds": 10.0}
    settings.update(overrides)
    return LocalWorkloadSpec(name, command=[sys.executable, "-c", SERVER, "{port}"], **settings)


@pytest.fixture
async def orchestrator(tmp_path: Path) -> AsyncIterator[LocalOrchestrator]:
    orchestrator = LocalOrchestrator(
        probe_interval_seconds=0.1, restart_backoff_seconds=0.1, log_dir=tmp_path / "logs"
    )
    try:
        yield orchestrator
    finally:
        await orchestrator.close()


async def wait_for(condition: Callable[[], bool], within_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + within_seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class LoadLoop:
    """Requests one ready endpoint after another, re-reading the list before each request."""

    def __init__(self, orchestrator: LocalOrchestrator, ref: WorkloadRef) -> None:
        self.orchestrator = orchestrator
        self.ref = ref
        self.ok = 0
        self.failures: list[str] = []
        self.served_by: set[str] = set()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=3)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            turn = 0
            while not self._stop.is_set():
                endpoints = self.orchestrator.ready_endpoints(self.ref)
                if not endpoints:
                    await asyncio.sleep(0.01)
                    continue
                address = endpoints[turn % len(endpoints)]
                turn += 1
                try:
                    async with session.get(f"http://{address}/") as response:
                        await response.read()
                        if response.status == 200:
                            self.ok += 1
                            self.served_by.add(address)
                        else:
                            self.failures.append(f"{address}: HTTP {response.status}")
                except (aiohttp.ClientError, TimeoutError) as error:
                    self.failures.append(f"{address}: {error!r}")
                await asyncio.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()


async def test_scale_up_and_down_under_load_without_a_failed_request(
    orchestrator: LocalOrchestrator,
) -> None:
    spec = server_spec()
    ref = spec.ref
    registered = await orchestrator.register(spec, 1)
    assert registered.ok, registered.detail
    first_pid = orchestrator.pids(ref)["web-0"]

    load = LoadLoop(orchestrator, ref)
    task = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(0.3)
        up = await orchestrator.scale(ref, 5, "load test: up")
        assert up.ok, up.detail
        state = await orchestrator.get_workload(ref)
        assert state is not None
        assert (state.desired_replicas, state.ready_replicas) == (5, 5)
        assert [pod.name for pod in state.pods] == [f"web-{i}" for i in range(5)]
        assert all(pod.node == "local" and pod.ready for pod in state.pods)
        assert [pod.address for pod in state.pods] == orchestrator.ready_endpoints(ref)
        assert len(set(orchestrator.ready_endpoints(ref))) == 5
        pids = orchestrator.pids(ref)
        await asyncio.sleep(0.5)  # let every replica take traffic

        down = await orchestrator.scale(ref, 1, "load test: down")
        assert down.ok, down.detail
        await asyncio.sleep(0.3)
    finally:
        load.stop()
        await task

    assert load.failures == []
    assert load.ok > 50
    assert len(load.served_by) == 5
    state = await orchestrator.get_workload(ref)
    assert state is not None
    assert [(pod.name, pod.ready) for pod in state.pods] == [("web-0", True)]
    assert state.annotations["linescale.io/last-scale-reason"] == "load test: down"
    # The newest four were removed and their processes are gone; the first one never moved.
    assert orchestrator.pids(ref) == {"web-0": first_pid}
    for name in ("web-1", "web-2", "web-3", "web-4"):
        assert not psutil.pid_exists(pids[name]), name


async def test_removal_is_drained_before_the_process_is_stopped(
    orchestrator: LocalOrchestrator,
) -> None:
    spec = server_spec(drain_seconds=0.6)
    ref = spec.ref
    assert (await orchestrator.register(spec, 2)).ok
    victim = orchestrator.pids(ref)["web-1"]
    scaling = asyncio.create_task(orchestrator.scale(ref, 1, "drain check"))
    await asyncio.sleep(0.2)
    # Out of the endpoints and not ready at once, but still running while it drains.
    assert len(orchestrator.ready_endpoints(ref)) == 1
    state = await orchestrator.get_workload(ref)
    assert state is not None
    assert [(pod.name, pod.ready) for pod in state.pods] == [("web-0", True), ("web-1", False)]
    assert psutil.pid_exists(victim)
    assert (await scaling).ok
    assert not psutil.pid_exists(victim)


async def test_a_replica_killed_externally_is_restarted(orchestrator: LocalOrchestrator) -> None:
    spec = server_spec()
    ref = spec.ref
    assert (await orchestrator.register(spec, 2)).ok
    before = orchestrator.pids(ref)
    old_address = orchestrator.ready_endpoints(ref)[1]
    os.kill(before["web-1"], signal.SIGKILL)

    await wait_for(lambda: orchestrator.pids(ref).get("web-1", before["web-1"]) != before["web-1"])
    await wait_for(lambda: len(orchestrator.ready_endpoints(ref)) == 2)
    after = orchestrator.pids(ref)
    assert after["web-0"] == before["web-0"]
    assert not psutil.pid_exists(before["web-1"])
    assert old_address not in orchestrator.ready_endpoints(ref)  # a fresh port, like a new pod


async def test_close_leaves_no_process_behind(tmp_path: Path) -> None:
    orchestrator = LocalOrchestrator(probe_interval_seconds=0.1)
    assert (await orchestrator.register(server_spec("web"), 3)).ok
    assert (await orchestrator.register(server_spec("api"), 2)).ok
    pids = [
        pid
        for name in ("web", "api")
        for pid in orchestrator.pids(WorkloadRef("local", name, "Local")).values()
    ]
    me = psutil.Process()
    assert set(pids) <= {child.pid for child in me.children(recursive=True)}
    await orchestrator.close()
    await orchestrator.close()  # idempotent
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert not set(pids) & {child.pid for child in me.children(recursive=True)}
    closed = await orchestrator.scale(WorkloadRef("local", "web", "Local"), 2, "after close")
    assert (closed.ok, closed.permanent) == (False, True)


async def test_dry_run_scales_nothing() -> None:
    orchestrator = LocalOrchestrator(dry_run=True, probe_interval_seconds=0.1)
    try:
        spec = server_spec()
        assert (await orchestrator.register(spec, 1)).ok  # registration still starts it
        pids = orchestrator.pids(spec.ref)
        result = await orchestrator.scale(spec.ref, 4, "dry run check")
        assert (result.ok, result.dry_run) == (True, True)
        assert "1 -> 4" in result.detail
        state = await orchestrator.get_workload(spec.ref)
        assert state is not None
        assert (state.desired_replicas, len(state.pods)) == (1, 1)
        assert orchestrator.pids(spec.ref) == pids
    finally:
        await orchestrator.close()


async def test_refusals_are_permanent(orchestrator: LocalOrchestrator) -> None:
    spec = server_spec()
    assert (await orchestrator.register(spec, 0)).ok
    unknown = WorkloadRef("local", "missing", "Local")
    cases = [
        await orchestrator.scale(unknown, 1, "x"),
        await orchestrator.scale(spec.ref, -1, "x"),
        await orchestrator.scale(spec.ref, 10_000, "x"),
        await orchestrator.register(spec, 1),
        await orchestrator.resize(spec.ref, "web", Resources(cpu_millicores=500), Resources(), "x"),
    ]
    assert [(r.ok, r.permanent) for r in cases] == [(False, True)] * len(cases)
    assert cases[-1].detail == "local processes have no resource requests"
    assert await orchestrator.get_workload(unknown) is None
    assert await orchestrator.get_workload(WorkloadRef("local", "web", "Deployment")) is None
    assert [w.ref for w in await orchestrator.list_workloads()] == [spec.ref]


async def test_a_replica_that_never_gets_ready_is_a_transient_failure(
    orchestrator: LocalOrchestrator,
) -> None:
    never_ready = LocalWorkloadSpec(
        "stuck",
        command=[sys.executable, "-c", SERVER, "{port}"],
        readiness_path="/not-here",
        ready_timeout_seconds=0.5,
        drain_seconds=0.0,
    )
    result = await orchestrator.register(never_ready, 1)
    assert (result.ok, result.permanent) == (False, False)
    assert result.retry_after_seconds is not None
    assert "stuck-0" in result.detail
    assert orchestrator.ready_endpoints(never_ready.ref) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"command": ["server", "8080"]}, "{port}", id="no-placeholder"),
        pytest.param({"command": ["s", "{port}"], "namespace": "Bad_NS"}, "DNS", id="namespace"),
        pytest.param({"command": ["s", "{port}"], "readiness_path": "healthz"}, "/", id="path"),
        pytest.param({"command": ["s", "{port}"], "drain_seconds": -1.0}, "drain", id="drain"),
        pytest.param({"command": ["s", "{port}"], "nodes": ()}, "nodes", id="no-nodes"),
    ],
)
def test_spec_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LocalWorkloadSpec("web", **kwargs)  # type: ignore[arg-type]


async def test_scale_waits_for_min_ready_seconds(orchestrator: LocalOrchestrator) -> None:
    spec = server_spec(min_ready_seconds=0.4)
    started = time.monotonic()
    assert (await orchestrator.register(spec, 2)).ok
    assert time.monotonic() - started >= 0.4


# The controller, as a child: registers a workload, prints its pids, then waits to be killed.
ORPHAN_PARENT = """
import asyncio, sys
from controller.orchestrators.local import LocalOrchestrator, LocalWorkloadSpec

async def main():
    orchestrator = LocalOrchestrator()
    spec = LocalWorkloadSpec("web", command=[sys.executable, "-c", sys.argv[1], "{port}"])
    result = await orchestrator.register(spec, 2)
    print(result.ok, *orchestrator.pids(spec.ref).values(), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
async def test_replicas_die_with_a_killed_controller() -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ORPHAN_PARENT,
        SERVER,
        stdout=asyncio.subprocess.PIPE,
    )
    assert parent.stdout is not None
    try:
        line = await asyncio.wait_for(parent.stdout.readline(), timeout=15)
        ok, *pids = line.decode().split()
        assert ok == "True"
        assert len(pids) == 2
        assert all(psutil.pid_exists(int(pid)) for pid in pids)
    finally:
        parent.kill()
        await parent.wait()
    await wait_for(lambda: not any(_running(int(pid)) for pid in pids), within_seconds=5)


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by init, or by a subreaper later)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_replicas_spread_over_the_given_nodes_and_carry_the_annotations(
    orchestrator: LocalOrchestrator,
) -> None:
    spec = LocalWorkloadSpec(
        "web",
        command=[sys.executable, "-c", SERVER, "{port}"],
        annotations={"linescale.io/route-port": "18080"},
        nodes=("node-a", "node-b"),
    )
    assert (await orchestrator.register(spec, 3)).ok
    state = await orchestrator.get_workload(spec.ref)
    assert state is not None
    assert [pod.node for pod in state.pods] == ["node-a", "node-b", "node-a"]
    assert state.annotations["linescale.io/route-port"] == "18080"
