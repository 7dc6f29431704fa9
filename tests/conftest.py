"""Shared fixtures: real servers on loopback (the logic lives in ``services.py``).

A missing server binary skips the test, or fails it when ``LINESCALE_REQUIRE_SERVICES=1``.
Factories are function-scoped: every server a test starts is stopped at its teardown,
whether the test passed or not.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import (
    AlertmanagerFactory,
    ControlledRedis,
    HAProxyFactory,
    LinescaleFactory,
    PrometheusFactory,
    RedisServer,
    ServiceGroup,
    pick_binary_name,
    require_binary,
    start_alertmanager,
    start_haproxy,
    start_linescale,
    start_prometheus,
    start_redis,
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One Redis for the whole session; tests should use their own keys (or flushdb)."""
    binary = require_binary("redis-server", "redis-server")
    with start_redis(binary, tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """``prometheus_factory(jobs, scrape_interval=..., rule_files=..., alertmanager=...)``."""
    binary = require_binary("prometheus", "prometheus")
    with ServiceGroup(tmp_path / "services") as group:
        yield group.factory(start_prometheus, binary, "prometheus")


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[AlertmanagerFactory]:
    """``alertmanager_factory(webhook_url=...)``."""
    name = pick_binary_name("prometheus-alertmanager", "alertmanager")
    binary = require_binary(name, "prometheus-alertmanager")
    with ServiceGroup(tmp_path / "services") as group:
        yield group.factory(start_alertmanager, binary, "alertmanager")


@pytest.fixture
def haproxy_factory(tmp_path: Path) -> Iterator[HAProxyFactory]:
    """``haproxy_factory(extra_config=None, *, full_config=None)``; the default config has
    ``be_app`` app1..app4; ``full_config(socket_path, port)`` writes the whole file."""
    binary = require_binary("haproxy", "haproxy")
    with ServiceGroup(tmp_path / "services") as group:
        yield group.factory(start_haproxy, binary, "haproxy")


@pytest.fixture
def linescale_factory(tmp_path: Path) -> Iterator[LinescaleFactory]:
    """``linescale_factory("agent", [...flags], env={...})``: the installed console script."""
    binary = str(Path(sys.executable).parent / "linescale")
    with ServiceGroup(tmp_path / "linescale") as group:
        yield group.factory(start_linescale, binary, "linescale")


@pytest.fixture
def controlled_redis(tmp_path: Path) -> Iterator[ControlledRedis]:
    """A private Redis the test may stop, restart on the same port, or freeze."""
    binary = require_binary("redis-server", "redis-server")
    controlled = ControlledRedis(start_redis(binary, tmp_path / "controlled-redis"))
    yield controlled
    controlled.cleanup()
