"""Start real Prometheus, Alertmanager, Redis and HAProxy servers on loopback for tests.

Why this exists: fakes drift from the real servers' behaviour (PromQL results, Alertmanager's
v2 API, HAProxy's Runtime API output), so integration tests talk to the real binaries.

Every server runs in its own temporary directory on a free 127.0.0.1 port with its
stdout/stderr in a log file there. ``start_*`` returns only once the server answers its
readiness probe; on failure the error carries the tail of that log. ``stop()`` sends SIGTERM,
waits up to 5 s, then SIGKILLs. As a safety net, running servers are also stopped at
interpreter exit, and on Linux a server started from the main thread gets SIGTERM if the test
process dies abruptly (``PR_SET_PDEATHSIG``).

Only :func:`require_binary` imports pytest; everything else is plain Python.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import yaml

__all__ = [
    "DEFAULT_HAPROXY_BACKEND",
    "DEFAULT_HAPROXY_SLOTS",
    "DEFAULT_WEBHOOK_URL",
    "REQUIRE_SERVICES_ENV",
    "AlertmanagerFactory",
    "AlertmanagerServer",
    "ControlledRedis",
    "HAProxyFactory",
    "HAProxyServer",
    "HttpServer",
    "LinescaleFactory",
    "LinescaleServer",
    "ManagedProcess",
    "PrometheusFactory",
    "PrometheusServer",
    "RedisServer",
    "Server",
    "ServiceConfigError",
    "ServiceError",
    "ServiceGroup",
    "ServiceStartError",
    "default_haproxy_config",
    "find_binary",
    "free_port",
    "http_json",
    "parse_servers_state",
    "pick_binary_name",
    "require_binary",
    "start_alertmanager",
    "start_haproxy",
    "start_linescale",
    "start_prometheus",
    "start_redis",
]

REQUIRE_SERVICES_ENV = "LINESCALE_REQUIRE_SERVICES"
"""Set to ``1`` (e.g. in CI) so a missing server binary fails the test instead of skipping it."""

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:9/"
"""Discard port: Alertmanager accepts the config, and notifications go nowhere."""

DEFAULT_HAPROXY_BACKEND = "be_app"
DEFAULT_HAPROXY_SLOTS = 4
"""The default HAProxy config has ``be_app`` with slots ``app1``..``app4``, all disabled."""

STOP_TIMEOUT_S = 5.0
START_ATTEMPTS = 3
DEFAULT_STARTUP_TIMEOUT_S = 30.0
_POLL_INTERVAL_S = 0.05
_LOG_TAIL_LINES = 40
# sockaddr_un.sun_path is 108 bytes on Linux; deep pytest tmp paths can exceed it.
_MAX_UNIX_SOCKET_PATH = 100
_SEARCH_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
_T = TypeVar("_T")


class ServiceError(RuntimeError):
    """Base class for failures to run a test server."""


class ServiceStartError(ServiceError):
    """The server exited or never became ready; the message includes its log tail."""


class ServiceConfigError(ServiceError):
    """The server rejected the generated configuration before starting."""


# --------------------------------------------------------------------------------------------
# Binaries and ports
# --------------------------------------------------------------------------------------------


def find_binary(name: str) -> str | None:
    """Return the absolute path of ``name``, also looking in sbin dirs often missing from PATH."""
    found = shutil.which(name)
    if found:
        return found
    search_path = os.pathsep.join(_SEARCH_DIRS)
    return shutil.which(name, path=search_path)


def pick_binary_name(*candidates: str) -> str:
    """First candidate installed here, else the first one (so skip messages name it).

    Debian ships Alertmanager as ``prometheus-alertmanager``; upstream tarballs as
    ``alertmanager``.
    """
    return next((name for name in candidates if find_binary(name)), candidates[0])


def require_binary(name: str, apt_package: str) -> str:
    """Return the binary's path, or skip the test (fail it under ``LINESCALE_REQUIRE_SERVICES=1``).

    Skipping keeps laptops without the servers green; CI sets the variable so a missing
    package cannot silently turn the integration suite into a no-op.
    """
    import pytest  # Imported here so the rest of the module stays pytest-free.

    path = find_binary(name)
    if path is not None:
        return path
    message = f"{name} not installed: apt-get install -y {apt_package}"
    if os.environ.get(REQUIRE_SERVICES_ENV) == "1":
        pytest.fail(f"{message} ({REQUIRE_SERVICES_ENV}=1)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """Ask the kernel for a free loopback port.

    Racy by nature (someone may take it before the server binds), so starts are retried.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# Process management
# --------------------------------------------------------------------------------------------

_RUNNING: set[ManagedProcess] = set()
_RUNNING_LOCK = threading.Lock()
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    # Resolved in the parent: the preexec hook must not do anything heavy after fork().
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """Runs in the child after fork(): SIGTERM it if the test process dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def _stop_all_at_exit() -> None:
    with _RUNNING_LOCK:
        leftovers = list(_RUNNING)
    for process in leftovers:
        process.stop()


atexit.register(_stop_all_at_exit)


class ManagedProcess:
    """A server child process whose stdout/stderr go to a log file; ``stop()`` is idempotent."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        cwd: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            log.write(f"$ {subprocess.list2cmdline(self.argv)}\n".encode())
            log.flush()
            # Where this attempt's output starts, so retries inspect only their own output.
            self.log_offset = log.tell()
            # PDEATHSIG is tied to the forking *thread*: only use it from the main thread,
            # otherwise the server would die when a worker thread exits.
            in_main_thread = threading.current_thread() is threading.main_thread()
            self._popen = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=None if env is None else dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches pytest, which then stops us.
                start_new_session=True,
                preexec_fn=_die_with_parent if in_main_thread and _PRCTL else None,
            )
        with _RUNNING_LOCK:
            _RUNNING.add(self)

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once exited, else None (polls without blocking)."""
        return self._popen.poll()

    def is_running(self) -> bool:
        return self._popen.poll() is None

    def read_log(self, *, this_attempt_only: bool = False) -> str:
        try:
            with self.log_path.open("rb") as log:
                if this_attempt_only:
                    log.seek(self.log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self.read_log().splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; always reaps the child."""
        try:
            if self._popen.poll() is None:
                self._popen.terminate()
                try:
                    self._popen.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._popen.kill()
                    self._popen.wait()
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(self)

    def describe_failure(self, reason: str) -> str:
        return (
            f"{self.name} {reason}\n"
            f"command: {subprocess.list2cmdline(self.argv)}\n"
            f"--- last {_LOG_TAIL_LINES} lines of {self.log_path} ---\n"
            f"{self.log_tail()}"
        )


class _ExitedEarlyError(Exception):
    pass


def _wait_until_ready(process: ManagedProcess, probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not process.is_running():
            raise _ExitedEarlyError
        if probe():
            return
        if time.monotonic() >= deadline:
            raise ServiceStartError(
                process.describe_failure(f"did not become ready within {timeout:g}s")
            )
        time.sleep(_POLL_INTERVAL_S)


def _looks_like_port_race(log_text: str) -> bool:
    lowered = log_text.lower()
    return "address already in use" in lowered or "cannot bind" in lowered


def _launch(
    name: str,
    workdir: Path,
    plan: Callable[[], tuple[list[str], Callable[[], bool], _T]],
    timeout: float,
    env: Mapping[str, str] | None = None,
    owned_dirs: Sequence[Path] = (),
) -> tuple[ManagedProcess, _T]:
    """Start the planned command until it is ready, re-planning (new ports) on a bind race.

    ``plan`` picks ports, writes config files and returns (argv, readiness probe, info).
    On failure, ``owned_dirs`` (temp dirs made for this server) are removed.
    """
    try:
        return _launch_attempts(name, workdir, plan, timeout, env)
    except BaseException:
        for path in owned_dirs:
            shutil.rmtree(path, ignore_errors=True)
        raise


def _launch_attempts(
    name: str,
    workdir: Path,
    plan: Callable[[], tuple[list[str], Callable[[], bool], _T]],
    timeout: float,
    env: Mapping[str, str] | None,
) -> tuple[ManagedProcess, _T]:
    for attempt in range(1, START_ATTEMPTS + 1):
        argv, probe, info = plan()
        process = ManagedProcess(name, argv, cwd=workdir, log_path=workdir / f"{name}.log", env=env)
        try:
            _wait_until_ready(process, probe, timeout)
        except _ExitedEarlyError:
            process.stop()
            if attempt < START_ATTEMPTS and _looks_like_port_race(
                process.read_log(this_attempt_only=True)
            ):
                continue
            raise ServiceStartError(
                process.describe_failure(
                    f"exited with status {process.returncode} before becoming ready "
                    f"(attempt {attempt}/{START_ATTEMPTS})"
                )
            ) from None
        except BaseException:
            process.stop()
            raise
        return process, info
    raise AssertionError("unreachable")  # pragma: no cover


def _fresh_workdir(workdir: Path | None, prefix: str) -> tuple[Path, bool]:
    """Use the caller's dir, or make a private temp dir that ``stop()`` will delete."""
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir, False
    return Path(tempfile.mkdtemp(prefix=f"linescale-{prefix}-")), True


class Server:
    """A started server: its process, working directory and loopback port."""

    host = "127.0.0.1"

    def __init__(
        self, process: ManagedProcess, workdir: Path, port: int, *, owns_workdir: bool
    ) -> None:
        self.process = process
        self.workdir = workdir
        self.port = port
        self._owns_workdir = owns_workdir
        self._extra_cleanup: list[Path] = []

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def address(self) -> str:
        """``host:port``, the form scrape targets and alerting configs want."""
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop the process (idempotent) and remove temp dirs this module created."""
        self.process.stop()
        for path in self._extra_cleanup:
            shutil.rmtree(path, ignore_errors=True)
        self._extra_cleanup.clear()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._owns_workdir = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process.is_running() else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} pid={self.process.pid} {state}>"


# --------------------------------------------------------------------------------------------
# HTTP helpers (urllib: no extra dependency, no proxies, nothing left open)
# --------------------------------------------------------------------------------------------

# Loopback only: ignore any http_proxy in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(method: str, url: str, body: Any = None, *, timeout: float = 5.0) -> Any:
    """Send one JSON request and decode the JSON response (``None`` for an empty body).

    Raises ``urllib.error.HTTPError`` (already closed) on non-2xx statuses.
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        exc.close()  # An unclosed HTTPError leaks its socket (ResourceWarning).
        raise
    return json.loads(raw) if raw.strip() else None


def _http_ok(url: str) -> bool:
    try:
        with _OPENER.open(url, timeout=1.0) as response:
            response.read()
            status: int = response.status
            return 200 <= status < 300
    except urllib.error.HTTPError as exc:
        exc.close()
        return False
    except (OSError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


class HttpServer(Server):
    """A started server that speaks HTTP; ``url`` is its base URL."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class PrometheusServer(HttpServer):
    """A running Prometheus; ``url`` is its HTTP base URL."""

    def __init__(
        self, process: ManagedProcess, workdir: Path, port: int, config_path: Path, *, owns: bool
    ) -> None:
        super().__init__(process, workdir, port, owns_workdir=owns)
        self.config_path = config_path

    def restart(self, timeout: float = DEFAULT_STARTUP_TIMEOUT_S) -> None:
        """Start again with the same argv (same port, same data dir) after ``process.stop()``,
        as an operator's restart would; returns once it is ready."""
        self.process = ManagedProcess(
            "prometheus",
            self.process.argv,
            cwd=self.workdir,
            log_path=self.workdir / "prometheus-restarted.log",
        )
        _wait_until_ready(self.process, lambda: _http_ok(f"{self.url}/-/ready"), timeout)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the ``data.result`` vector."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        result: list[dict[str, Any]] = http_json("GET", url)["data"]["result"]
        return result

    def active_targets(self, job: str) -> list[dict[str, Any]]:
        payload = http_json("GET", f"{self.url}/api/v1/targets?state=active")
        targets: list[dict[str, Any]] = payload["data"]["activeTargets"]
        return [t for t in targets if t.get("labels", {}).get("job") == job]

    def wait_for_targets_scraped(self, job: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until every target of ``job`` was scraped once and its ``up`` is queryable.

        Returns the targets whatever their health, for tests about failing targets.
        Static targets appear only after Prometheus' ~5 s discovery update tick.
        """
        return self._wait_for_targets(job, timeout, need_up=False)

    def wait_for_targets_up(self, job: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Block until every target of ``job`` is healthy and ``up{job=...}`` is 1 for each.

        Checks both: ``/api/v1/targets`` flips to "up" slightly before the sample is
        committed, and tests usually go on to query.
        """
        return self._wait_for_targets(job, timeout, need_up=True)

    def _wait_for_targets(self, job: str, timeout: float, *, need_up: bool) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        selector = f"up{{job={json.dumps(job)}}}"
        targets: list[dict[str, Any]] = []
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                targets = self.active_targets(job)
                health = [t.get("health") for t in targets]
                if targets and "unknown" not in health and (not need_up or set(health) == {"up"}):
                    values = [s["value"][1] for s in self.query(selector)]
                    if len(values) == len(targets) and (not need_up or set(values) == {"1"}):
                        return targets
            if not self.process.is_running():
                raise ServiceStartError(self.process.describe_failure("exited while scraping"))
            if time.monotonic() >= deadline:
                state = {t.get("scrapeUrl"): (t.get("health"), t.get("lastError")) for t in targets}
                wanted = "up" if need_up else "scraped"
                raise TimeoutError(
                    f"targets of job {job!r} not all {wanted} within {timeout:g}s: "
                    f"{state or 'no targets discovered'}"
                )
            time.sleep(0.1)


def _prometheus_config(
    jobs: Mapping[str, Sequence[str]],
    scrape_interval: str,
    evaluation_interval: str,
    rule_files: Sequence[Path],
    alertmanager: str | None,
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
            # Must not exceed the interval; the default 10s would be rejected for "1s".
            "scrape_timeout": scrape_interval,
        },
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": list(targets)}]}
            for job, targets in jobs.items()
        ],
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def start_prometheus(
    binary: str,
    workdir: Path | None = None,
    /,
    jobs: Mapping[str, Sequence[str]] | None = None,
    *,
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    rule_files: Sequence[str | os.PathLike[str]] = (),
    alertmanager: str | None = None,
    self_scrape_job: str | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> PrometheusServer:
    """Start Prometheus scraping ``jobs`` (job name -> ["host:port", ...]).

    ``rule_files`` are copied into the work dir so tests can't mutate shared fixtures.
    ``alertmanager`` is "host:port" of an Alertmanager to send alerts to.
    ``self_scrape_job`` adds a job scraping this Prometheus itself (its port is only known
    once picked, so callers can't put it in ``jobs``).
    """
    workdir, owns = _fresh_workdir(workdir, "prometheus")
    rules_dir = workdir / "rules"
    copied_rules: list[Path] = []
    for index, rule_file in enumerate(rule_files):
        source = Path(rule_file)
        rules_dir.mkdir(exist_ok=True)
        target = rules_dir / f"{index:02d}-{source.name}"
        shutil.copyfile(source, target)
        copied_rules.append(target)
    config_path = workdir / "prometheus.yml"
    data_dir = workdir / "data"

    def plan() -> tuple[list[str], Callable[[], bool], int]:
        port = free_port()
        all_jobs = dict(jobs or {})
        if self_scrape_job is not None:
            all_jobs[self_scrape_job] = [f"127.0.0.1:{port}"]
        config = _prometheus_config(
            all_jobs, scrape_interval, evaluation_interval, copied_rules, alertmanager
        )
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            # Default 1m: an alert that fired before the Alertmanager was discovered (~5 s
            # after start) would otherwise only be re-sent a minute later.
            f"--rules.alert.resend-delay={evaluation_interval}",
        ]
        return argv, lambda: _http_ok(f"http://127.0.0.1:{port}/-/ready"), port

    process, port = _launch(
        "prometheus", workdir, plan, startup_timeout, owned_dirs=[workdir] if owns else []
    )
    return PrometheusServer(process, workdir, port, config_path, owns=owns)


# --------------------------------------------------------------------------------------------
# Alertmanager
# --------------------------------------------------------------------------------------------


class AlertmanagerServer(HttpServer):
    """A running, non-clustered Alertmanager; ``url`` is its HTTP base URL."""

    def __init__(
        self, process: ManagedProcess, workdir: Path, port: int, config_path: Path, *, owns: bool
    ) -> None:
        super().__init__(process, workdir, port, owns_workdir=owns)
        self.config_path = config_path


def _alertmanager_config(webhook_url: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "webhook",
            "group_by": ["alertname"],
            # Short timings so notification tests finish in seconds, not minutes.
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
        ],
    }


def start_alertmanager(
    binary: str,
    workdir: Path | None = None,
    /,
    *,
    webhook_url: str = DEFAULT_WEBHOOK_URL,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> AlertmanagerServer:
    """Start Alertmanager routing everything to one webhook receiver at ``webhook_url``."""
    workdir, owns = _fresh_workdir(workdir, "alertmanager")
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(_alertmanager_config(webhook_url), sort_keys=False))

    def plan() -> tuple[list[str], Callable[[], bool], int]:
        port = free_port()
        argv = [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            # Empty disables gossip; otherwise every instance binds 0.0.0.0:9094 and they collide.
            "--cluster.listen-address=",
        ]
        return argv, lambda: _http_ok(f"http://127.0.0.1:{port}/-/ready"), port

    process, port = _launch(
        "alertmanager", workdir, plan, startup_timeout, owned_dirs=[workdir] if owns else []
    )
    return AlertmanagerServer(process, workdir, port, config_path, owns=owns)


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


class RedisServer(Server):
    """A running, persistence-free Redis; ``url`` selects database 0."""

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(
    binary: str,
    workdir: Path | None = None,
    /,
    *,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> RedisServer:
    """Start redis-server with no RDB/AOF persistence, bound to loopback only."""
    workdir, owns = _fresh_workdir(workdir, "redis")

    def plan() -> tuple[list[str], Callable[[], bool], int]:
        port = free_port()
        argv = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--protected-mode", "no",
        ]  # fmt: skip
        return argv, lambda: _redis_ping(port), port

    process, port = _launch(
        "redis", workdir, plan, startup_timeout, owned_dirs=[workdir] if owns else []
    )
    return RedisServer(process, workdir, port, owns_workdir=owns)


# --------------------------------------------------------------------------------------------
# HAProxy
# --------------------------------------------------------------------------------------------


def default_haproxy_config(frontend_port: int) -> str:
    """Frontend on ``frontend_port`` -> ``be_app`` with slots app1..app4 in maintenance.

    Tests fill a slot through the Runtime API (``set server be_app/app1 addr ... port ...``,
    then ``enable server be_app/app1``), which is how Linescale drives HAProxy.
    """
    return (
        "frontend fe_app\n"
        f"    bind 127.0.0.1:{frontend_port}\n"
        f"    default_backend {DEFAULT_HAPROXY_BACKEND}\n"
        "\n"
        f"backend {DEFAULT_HAPROXY_BACKEND}\n"
        "    balance roundrobin\n"
        f"    server-template app 1-{DEFAULT_HAPROXY_SLOTS} 127.0.0.1:1 disabled\n"
    )


def _haproxy_config(socket_path: Path, extra: str) -> str:
    return (
        "global\n"
        f"    stats socket {socket_path} mode 600 level admin\n"
        "    stats timeout 30s\n"
        "\n"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 1s\n"
        "    timeout client 5s\n"
        "    timeout server 5s\n"
        "\n"
        f"{extra.rstrip()}\n"
    )


def _runtime_command(socket_path: Path, command: str, timeout: float) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(socket_path))
        sock.sendall(command.rstrip("\n").encode() + b"\n")
        chunks: list[bytes] = []
        # Non-interactive mode: HAProxy answers one command, then closes the connection.
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


class HAProxyServer(Server):
    """A running HAProxy (foreground, ``-db``) with an admin-level Runtime API socket."""

    def __init__(
        self,
        process: ManagedProcess,
        workdir: Path,
        frontend_port: int,
        config_path: Path,
        socket_path: Path,
        *,
        owns: bool,
    ) -> None:
        super().__init__(process, workdir, frontend_port, owns_workdir=owns)
        self.frontend_port = frontend_port
        self.config_path = config_path
        self.socket_path = socket_path

    def runtime_command(self, cmd: str, timeout: float = 5.0) -> str:
        """Send one Runtime API command over the admin socket and return the response text."""
        return _runtime_command(self.socket_path, cmd, timeout)

    def servers_state(self, backend: str = DEFAULT_HAPROXY_BACKEND) -> list[dict[str, str]]:
        """``show servers state <backend>`` parsed into one dict per server."""
        return parse_servers_state(self.runtime_command(f"show servers state {backend}"))


def parse_servers_state(text: str) -> list[dict[str, str]]:
    """Parse ``show servers state`` output: a version line, a ``#`` header, one row per server."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = next((line for line in lines if line.startswith("#")), None)
    if header is None:
        raise ValueError(f"no header in 'show servers state' output: {text!r}")
    columns = header.lstrip("#").split()
    rows = [line.split() for line in lines[lines.index(header) + 1 :]]
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _socket_dir(workdir: Path) -> tuple[Path, bool]:
    """A dir whose ``admin.sock`` path fits sun_path; falls back to a short /tmp dir."""
    if len(str(workdir / "admin.sock").encode()) <= _MAX_UNIX_SOCKET_PATH:
        return workdir, False
    return Path(tempfile.mkdtemp(prefix="lsha-", dir="/tmp")), True


def start_haproxy(
    binary: str,
    workdir: Path | None = None,
    /,
    extra_config: str | Callable[[int], str] | None = None,
    *,
    full_config: Callable[[Path, int], str] | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> HAProxyServer:
    """Start HAProxy in the foreground after validating its config with ``haproxy -c``.

    ``extra_config`` is appended after ``global``/``defaults``: text, or a callable that gets
    the reserved frontend port and returns text. ``None`` uses :func:`default_haproxy_config`.
    ``full_config`` instead writes the whole file: a callable that gets the admin socket path
    and the reserved frontend port; its ``global`` must open ``stats socket <path> level
    admin`` (the readiness probe and ``runtime_command`` use it).
    """
    if full_config is not None and extra_config is not None:
        raise ValueError("pass extra_config or full_config, not both")
    workdir, owns = _fresh_workdir(workdir, "haproxy")
    sock_dir, owns_sock_dir = _socket_dir(workdir)
    socket_path = sock_dir / "admin.sock"
    config_path = workdir / "haproxy.cfg"
    render = default_haproxy_config if extra_config is None else extra_config

    def plan() -> tuple[list[str], Callable[[], bool], int]:
        port = free_port()
        if full_config is not None:
            config_path.write_text(full_config(socket_path, port))
        else:
            extra = render if isinstance(render, str) else render(port)
            config_path.write_text(_haproxy_config(socket_path, extra))
        check = subprocess.run(
            [binary, "-c", "-f", str(config_path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if check.returncode != 0:
            raise ServiceConfigError(
                f"haproxy rejected {config_path} (exit {check.returncode}):\n"
                f"{check.stdout}{check.stderr}\n--- config ---\n{config_path.read_text()}"
            )
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()  # A stale socket from a failed attempt would fool the probe.

        def ready() -> bool:
            try:
                return "Name: HAProxy" in _runtime_command(socket_path, "show info", 1.0)
            except OSError:
                return False

        return [binary, "-f", str(config_path), "-db"], ready, port

    owned = [path for path, own in ((sock_dir, owns_sock_dir), (workdir, owns)) if own]
    process, port = _launch("haproxy", workdir, plan, startup_timeout, owned_dirs=owned)
    server = HAProxyServer(process, workdir, port, config_path, socket_path, owns=owns)
    if owns_sock_dir:
        server._extra_cleanup.append(sock_dir)
    return server


# Call signatures of the conftest factory fixtures: the matching ``start_*`` minus its first
# two (binary, workdir) arguments.
PrometheusFactory = Callable[..., PrometheusServer]
LinescaleFactory = Callable[..., "LinescaleServer"]
AlertmanagerFactory = Callable[..., AlertmanagerServer]
HAProxyFactory = Callable[..., HAProxyServer]


# --------------------------------------------------------------------------------------------
# Groups (what the pytest factory fixtures are built on)
# --------------------------------------------------------------------------------------------

_S = TypeVar("_S", bound=Server)
_P = ParamSpec("_P")


class ServiceGroup:
    """Tracks servers started in one scope and stops them all, newest first, on exit.

    Each server gets its own numbered sub-directory of ``base_dir``.
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._servers: list[Server] = []
        self._counter = 0

    def new_workdir(self, name: str) -> Path:
        self._counter += 1
        path = self.base_dir / f"{name}-{self._counter}"
        path.mkdir(parents=True, exist_ok=False)
        return path

    def add(self, server: _S) -> _S:
        self._servers.append(server)
        return server

    def factory(
        self, start: Callable[Concatenate[str, Path, _P], _S], binary: str, name: str
    ) -> Callable[_P, _S]:
        """Bind ``start_*`` to ``binary`` and a fresh work dir; the group stops what it starts."""

        def start_in_group(*args: _P.args, **kwargs: _P.kwargs) -> _S:
            return self.add(start(binary, self.new_workdir(name), *args, **kwargs))

        return start_in_group

    def __iter__(self) -> Iterator[Server]:
        return iter(list(self._servers))

    def stop_all(self) -> None:
        """Stop every server even if some stop() raises; re-raise the first error."""
        first_error: BaseException | None = None
        while self._servers:
            server = self._servers.pop()
            try:
                server.stop()
            except BaseException as exc:  # Keep stopping the others.
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()


# --------------------------------------------------------------------------------------------
# Linescale's own components, as the operator runs them (the installed console script)
# --------------------------------------------------------------------------------------------


class LinescaleServer(HttpServer):
    """A running ``linescale agent`` or ``linescale controller``."""


def start_linescale(
    binary: str,
    workdir: Path | None = None,
    /,
    role: str = "agent",
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT_S,
) -> LinescaleServer:
    """Start ``binary role --listen 127.0.0.1:PORT *args`` and wait for ``/healthz``.

    ``env`` is added to a copy of this process's environment without its ``LINESCALE_*``
    variables, so a developer's shell settings cannot leak into a test.
    """
    workdir, owns = _fresh_workdir(workdir, role)

    def plan() -> tuple[list[str], Callable[[], bool], int]:
        port = free_port()
        argv = [binary, role, "--listen", f"127.0.0.1:{port}", *args]
        return argv, lambda: _http_ok(f"http://127.0.0.1:{port}/healthz"), port

    clean = {k: v for k, v in os.environ.items() if not k.startswith("LINESCALE_")}
    process, port = _launch(
        role,
        workdir,
        plan,
        startup_timeout,
        env={**clean, **(env or {})},
        owned_dirs=[workdir] if owns else [],
    )
    return LinescaleServer(process, workdir, port, owns_workdir=owns)


class ControlledRedis:
    """A private redis-server a test may stop, restart on the same port, or freeze."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.process: ManagedProcess = server.process
        self.url = server.url
        self.port = server.port
        self._paused = False

    def stop(self) -> None:
        self.process.stop()

    def restart(self, timeout: float = 10.0) -> None:
        """Same argv, so the same port: clients must find it again on their own."""
        self.process = ManagedProcess(
            "redis",
            self.server.process.argv,
            cwd=self.server.workdir,
            log_path=self.server.workdir / "redis-restarted.log",
        )
        _wait_until_ready(self.process, lambda: _redis_ping(self.port), timeout)

    async def arestart(self) -> None:
        """``restart`` for async tests, without blocking their event loop."""
        await asyncio.to_thread(self.restart)

    def pause(self) -> None:
        """SIGSTOP: connections stay open but nothing answers (a 'slow' Redis)."""
        os.kill(self.process.pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        if self._paused:
            os.kill(self.process.pid, signal.SIGCONT)
            self._paused = False

    def cleanup(self) -> None:
        self.resume()
        self.process.stop()
        self.server.stop()


@contextlib.contextmanager
def http_sink() -> Iterator[tuple[int, queue.Queue[tuple[str, bytes]]]]:
    """A loopback HTTP server that answers 200 and records (path, body) of every request."""
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.put((self.path, self.rfile.read(length)))
            body = b"sink ok\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._record()

        def do_POST(self) -> None:
            self._record()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep pytest output clean."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
