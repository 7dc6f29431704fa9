"""Behaviour of the real servers started by ``tests/services.py`` and the conftest fixtures.

These pin down what later integration tests rely on: that each server really starts, answers
on loopback, and behaves as the Linescale code expects (PromQL, Alertmanager's v2 API,
Redis, HAProxy's Runtime API).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from prometheus_api_client import PrometheusConnect

import services
from services import (
    DEFAULT_HAPROXY_BACKEND,
    DEFAULT_HAPROXY_SLOTS,
    REQUIRE_SERVICES_ENV,
    AlertmanagerFactory,
    HAProxyFactory,
    PrometheusFactory,
    RedisServer,
    ServiceConfigError,
    ServiceStartError,
    http_json,
    http_sink,
    pick_binary_name,
    require_binary,
    start_redis,
)

# srv_admin_state bit set by "disable server" / the "disabled" keyword (SRV_ADMF_FMAINT).
HAPROXY_FORCED_MAINTENANCE = 0x01
HAPROXY_OP_STATE_RUNNING = "2"


# --------------------------------------------------------------------------------------------
# require_binary
# --------------------------------------------------------------------------------------------

MISSING_BINARY = "linescale-no-such-binary-7f3a"


@pytest.mark.parametrize(
    ("require_services", "expected"),
    [
        (None, pytest.skip.Exception),
        ("0", pytest.skip.Exception),
        ("1", pytest.fail.Exception),
    ],
    ids=["unset-skips", "zero-skips", "one-fails"],
)
def test_require_binary_missing_skips_unless_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
    require_services: str | None,
    expected: type[BaseException],
) -> None:
    if require_services is None:
        monkeypatch.delenv(REQUIRE_SERVICES_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_SERVICES_ENV, require_services)

    with pytest.raises(expected, match=r"apt-get install -y some-package"):
        require_binary(MISSING_BINARY, "some-package")


def test_require_binary_returns_absolute_path_of_installed_binary() -> None:
    path = require_binary("sh", "dash")
    assert Path(path).is_absolute()
    assert Path(path).name == "sh"


def test_pick_binary_name_prefers_installed_candidate() -> None:
    assert pick_binary_name(MISSING_BINARY, "sh") == "sh"
    assert pick_binary_name(MISSING_BINARY, "another-missing") == MISSING_BINARY


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


@pytest.mark.services
def test_prometheus_scrapes_itself_and_reports_up(prometheus_factory: PrometheusFactory) -> None:
    prometheus = prometheus_factory(self_scrape_job="prometheus")

    targets = prometheus.wait_for_targets_up("prometheus", timeout=20)

    assert [t["scrapeUrl"] for t in targets] == [f"{prometheus.url}/metrics"]
    with PrometheusConnect(prometheus.url, disable_ssl=True) as client:
        result = client.custom_query('up{job="prometheus"}')
    assert [(r["metric"]["job"], r["value"][1]) for r in result] == [("prometheus", "1")]


@pytest.mark.services
def test_prometheus_reports_unreachable_target_as_down(
    prometheus_factory: PrometheusFactory,
) -> None:
    dead_port = services.free_port()  # Nothing listens there.
    prometheus = prometheus_factory({"dead": [f"127.0.0.1:{dead_port}"]})

    targets = prometheus.wait_for_targets_scraped("dead", timeout=20)

    assert [t["health"] for t in targets] == ["down"]
    assert [s["value"][1] for s in prometheus.query('up{job="dead"}')] == ["0"]
    with pytest.raises(TimeoutError, match=r"not all up .*connection refused"):
        prometheus.wait_for_targets_up("dead", timeout=0.3)


@pytest.mark.services
def test_prometheus_rule_alert_reaches_alertmanager_and_webhook(
    prometheus_factory: PrometheusFactory,
    alertmanager_factory: AlertmanagerFactory,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "always.rules.yml"
    rules.write_text(
        "groups:\n"
        "  - name: test\n"
        "    rules:\n"
        "      - alert: AlwaysFiring\n"
        "        expr: vector(1)\n"
        "        labels: {severity: page}\n"
    )
    with http_sink() as (sink_port, received):
        alertmanager = alertmanager_factory(webhook_url=f"http://127.0.0.1:{sink_port}/hook")
        prometheus_factory(rule_files=[rules], alertmanager=alertmanager.address)

        path, body = received.get(timeout=20)

    assert path == "/hook"
    notification = json.loads(body)
    assert notification["status"] == "firing"
    assert [a["labels"]["alertname"] for a in notification["alerts"]] == ["AlwaysFiring"]


@pytest.mark.services
def test_prometheus_start_failure_reports_log_tail(
    prometheus_factory: PrometheusFactory, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(
        "groups:\n  - name: broken\n    rules:\n      - alert: X\n        expr: up ==\n"
    )

    with pytest.raises(ServiceStartError, match=r"(?s)exited with status 1.*loading groups failed"):
        prometheus_factory(rule_files=[broken])


# --------------------------------------------------------------------------------------------
# Alertmanager
# --------------------------------------------------------------------------------------------


@pytest.mark.services
def test_alertmanager_lists_posted_alert(alertmanager_factory: AlertmanagerFactory) -> None:
    alertmanager = alertmanager_factory()
    now = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "LinescaleTest", "severity": "warning"},
        "annotations": {"summary": "posted by a test"},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=5)).isoformat(),
    }

    http_json("POST", f"{alertmanager.url}/api/v2/alerts", [alert])
    listed = http_json("GET", f"{alertmanager.url}/api/v2/alerts")

    assert [(a["labels"]["alertname"], a["status"]["state"]) for a in listed] == [
        ("LinescaleTest", "active")
    ]


@pytest.mark.services
def test_alertmanager_rejects_malformed_alert(alertmanager_factory: AlertmanagerFactory) -> None:
    alertmanager = alertmanager_factory()

    with pytest.raises(urllib.error.HTTPError) as excinfo:
        http_json("POST", f"{alertmanager.url}/api/v2/alerts", [{"labels": "not-a-map"}])

    assert excinfo.value.code == 400


@pytest.mark.services
def test_amtool_accepts_generated_alertmanager_config(
    alertmanager_factory: AlertmanagerFactory,
) -> None:
    amtool = require_binary("amtool", "prometheus-alertmanager")
    alertmanager = alertmanager_factory(webhook_url="http://127.0.0.1:9/custom")

    check = subprocess.run(
        [amtool, "check-config", str(alertmanager.config_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )

    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.parametrize(
    ("key", "value"),
    [("linescale:test:ascii", b"hello"), ("linescale:test:binary", bytes(range(256)))],
    ids=["ascii", "binary"],
)
def test_redis_round_trips_values(redis_server: RedisServer, key: str, value: bytes) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        assert client.set(key, value, ex=60)
        assert client.get(key) == value
        client.delete(key)


@pytest.mark.services
def test_redis_start_retries_on_a_new_port_when_port_is_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    binary = require_binary("redis-server", "redis-server")
    real_free_port = services.free_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))  # Bound, not listening: the probe fails fast.
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        monkeypatch.setattr(services, "free_port", lambda: next(ports, None) or real_free_port())

        with start_redis(binary, tmp_path) as server:
            assert server.port != taken
            assert server.process.is_running()
            assert "address already in use" in server.process.read_log().lower()


@pytest.mark.services
def test_stopped_server_leaves_no_process_and_stop_is_idempotent(tmp_path: Path) -> None:
    binary = require_binary("redis-server", "redis-server")
    server = start_redis(binary, tmp_path)
    pid = server.process.pid

    server.stop()
    server.stop()

    assert server.process.returncode is not None
    with pytest.raises(ProcessLookupError):
        _signal_zero(pid)


def _signal_zero(pid: int) -> None:
    os.kill(pid, 0)


# --------------------------------------------------------------------------------------------
# HAProxy
# --------------------------------------------------------------------------------------------


@pytest.mark.services
def test_haproxy_runtime_api_answers_show_info(haproxy_factory: HAProxyFactory) -> None:
    haproxy = haproxy_factory()

    info = haproxy.runtime_command("show info")

    assert "Name: HAProxy" in info


@pytest.mark.services
def test_haproxy_default_backend_has_disabled_slots(haproxy_factory: HAProxyFactory) -> None:
    haproxy = haproxy_factory()

    state = haproxy.servers_state()

    expected = [f"app{i}" for i in range(1, DEFAULT_HAPROXY_SLOTS + 1)]
    assert [row["srv_name"] for row in state] == expected
    assert {row["be_name"] for row in state} == {DEFAULT_HAPROXY_BACKEND}
    assert all(int(row["srv_admin_state"]) & HAPROXY_FORCED_MAINTENANCE for row in state)


@pytest.mark.services
def test_haproxy_enabling_a_slot_routes_frontend_traffic(haproxy_factory: HAProxyFactory) -> None:
    haproxy = haproxy_factory()
    with http_sink() as (sink_port, received):
        haproxy.runtime_command(f"set server be_app/app1 addr 127.0.0.1 port {sink_port}")
        haproxy.runtime_command("enable server be_app/app1")

        by_name = {row["srv_name"]: row for row in haproxy.servers_state()}
        response = _http_get_text(f"http://127.0.0.1:{haproxy.frontend_port}/via-haproxy")
        path, _ = received.get(timeout=5)

    app1 = by_name["app1"]
    assert (app1["srv_addr"], app1["srv_port"]) == ("127.0.0.1", str(sink_port))
    assert app1["srv_op_state"] == HAPROXY_OP_STATE_RUNNING
    assert not int(app1["srv_admin_state"]) & HAPROXY_FORCED_MAINTENANCE
    assert int(by_name["app2"]["srv_admin_state"]) & HAPROXY_FORCED_MAINTENANCE
    assert response == "sink ok\n"
    assert path == "/via-haproxy"


@pytest.mark.services
def test_haproxy_accepts_custom_config_built_from_frontend_port(
    haproxy_factory: HAProxyFactory,
) -> None:
    def config(port: int) -> str:
        return (
            f"frontend fe_custom\n    bind 127.0.0.1:{port}\n    http-request return status 204\n"
        )

    haproxy = haproxy_factory(config)

    assert "fe_custom" in haproxy.runtime_command("show stat")
    with socket.create_connection(("127.0.0.1", haproxy.frontend_port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        status_line = sock.recv(64).split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 204 No Content"


@pytest.mark.services
def test_haproxy_invalid_config_raises_clear_error(haproxy_factory: HAProxyFactory) -> None:
    with pytest.raises(ServiceConfigError, match=r"haproxy rejected .*haproxy\.cfg"):
        haproxy_factory("backend be_broken\n    server s1 127.0.0.1:notaport\n")


def _http_get_text(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        text: str = response.read().decode()
        return text
