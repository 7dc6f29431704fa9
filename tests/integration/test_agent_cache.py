"""The agent's cache API without Redis (L1 only), through both shared clients."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.app import AGENT, build_report, create_app
from shared.cache_client import AsyncCacheClient, CacheClient, CacheError
from shared.config import load_settings

from messages import TOKEN, tuning
from services import LinescaleFactory

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def cache_settings(**cache: Any) -> Any:
    return load_settings(
        environ={},
        overrides={
            "token": TOKEN,
            "agent": {
                "node": "node-1",
                "zone": "a",
                "cache": {"max_value_bytes": 4096, "max_key_bytes": 32, **cache},
            },
        },
    )


@pytest.fixture
async def client(aiohttp_client: Any) -> TestClient:
    return await aiohttp_client(create_app(cache_settings()))  # type: ignore[no-any-return]


async def test_put_then_get_serves_raw_bytes_from_l1(client: TestClient) -> None:
    value = bytes(range(256))
    put = await client.put(
        "/v1/cache/parts/bolt-m8?ttl=60&tags=line-a,bom", data=value, headers=AUTH
    )
    assert put.status == 200
    assert await put.json() == {"version": 0, "stored": {"l1": True, "l2": False}}
    got = await client.get("/v1/cache/parts/bolt-m8")
    assert got.status == 200
    assert got.headers["X-Cache"] == "L1"
    assert await got.read() == value


async def test_miss_is_404_and_delete_removes(client: TestClient) -> None:
    assert (await client.get("/v1/cache/parts/none")).status == 404
    await client.put("/v1/cache/parts/k", data=b"v", headers=AUTH)
    deleted = await client.delete("/v1/cache/parts/k", headers=AUTH)
    assert (await deleted.json())["deleted"] is True
    assert (await client.get("/v1/cache/parts/k")).status == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    [
        pytest.param("PUT", "/v1/cache/parts/k", b"v", {}, 401, id="put-without-token-401"),
        pytest.param(
            "DELETE",
            "/v1/cache/parts/k",
            b"",
            {"Authorization": "Bearer x"},
            403,
            id="delete-wrong-token-403",
        ),
        pytest.param("PUT", "/v1/cache/parts/k", b"x" * 4097, AUTH, 413, id="value-too-large-413"),
        pytest.param("PUT", "/v1/cache/parts/k?ttl=-1", b"v", AUTH, 400, id="negative-ttl-400"),
        pytest.param(
            "PUT", "/v1/cache/parts/k?ttl=abc", b"v", AUTH, 400, id="ttl-not-a-number-400"
        ),
        pytest.param(
            "PUT", "/v1/cache/parts/k?ttl=99999999", b"v", AUTH, 400, id="ttl-over-max-400"
        ),
        pytest.param("PUT", "/v1/cache/Parts/k", b"v", AUTH, 400, id="namespace-uppercase-400"),
        pytest.param("PUT", f"/v1/cache/parts/{'k' * 33}", b"v", AUTH, 400, id="key-too-long-400"),
        pytest.param("PUT", "/v1/cache/parts/k?tags=bad%20tag", b"v", AUTH, 400, id="bad-tag-400"),
        pytest.param(
            "POST",
            "/v1/cache/parts/invalidate",
            b"{}",
            AUTH,
            400,
            id="invalidate-without-target-400",
        ),
        pytest.param(
            "POST", "/v1/cache/parts/invalidate", b"[", AUTH, 400, id="invalidate-not-json-400"
        ),
        pytest.param(
            "POST",
            "/v1/cache/parts/invalidate",
            b'{"prefix":"a"}',
            {},
            401,
            id="invalidate-without-token-401",
        ),
    ],
)
async def test_bad_requests_are_refused_and_change_nothing(
    client: TestClient,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    await client.put("/v1/cache/parts/k", data=b"original", headers=AUTH)
    response = await client.request(method, path, data=body, headers=headers)
    assert response.status == status
    assert (await response.json())["error"]
    assert await (await client.get("/v1/cache/parts/k")).read() == b"original"


async def test_namespace_count_is_bounded(aiohttp_client: Any) -> None:
    client: TestClient = await aiohttp_client(create_app(cache_settings(max_namespaces=2)))
    for namespace in ("a", "b"):
        assert (await client.put(f"/v1/cache/{namespace}/k", data=b"v", headers=AUTH)).status == 200
    refused = await client.put("/v1/cache/c/k", data=b"v", headers=AUTH)
    assert refused.status == 400
    assert "namespace limit" in (await refused.json())["error"]


async def test_prefix_and_tag_invalidation_and_stats_through_the_async_client(
    aiohttp_server: Any,
) -> None:
    server: TestServer = await aiohttp_server(create_app(cache_settings()))
    async with AsyncCacheClient(str(server.make_url("")), TOKEN) as cache:
        for key, tags in (("order-1", ["line-a"]), ("order-2", ["line-b"]), ("part-1", ["line-a"])):
            assert await cache.put("orders", key, key.encode(), ttl_seconds=60, tags=tags) == 0
        assert await cache.invalidate("orders", prefix="order-") == 2
        assert await cache.get("orders", "order-1") is None
        hit = await cache.get("orders", "part-1")
        assert hit is not None
        assert (hit.value, hit.level) == (b"part-1", "L1")
        assert await cache.invalidate("orders", tag="line-a") == 1
        assert await cache.get("orders", "part-1") is None
        stats = await cache.stats()
        assert stats["namespaces"]["orders"]["l1"]["hits"] == 1
        assert stats["namespaces"]["orders"]["l1"]["misses"] == 2
        with pytest.raises(CacheError) as caught:
            await cache.put("orders", "k" * 40, b"v")
        assert caught.value.status == 400


async def test_unreachable_agent_reads_as_a_miss_but_writes_raise() -> None:
    async with AsyncCacheClient("http://127.0.0.1:9", TOKEN, timeout_seconds=0.5) as cache:
        assert await cache.get("parts", "k") is None
        with pytest.raises(CacheError):
            await cache.put("parts", "k", b"v")


async def test_cache_metrics_count_requests_by_level_and_result(client: TestClient) -> None:
    await client.put("/v1/cache/parts/k", data=b"v", headers=AUTH)
    await client.get("/v1/cache/parts/k")
    await client.get("/v1/cache/parts/missing")
    metrics = await (await client.get("/metrics")).text()
    assert (
        'linescale_cache_requests_total{level="l1",namespace="parts",result="hit"} 1.0' in metrics
    )
    assert (
        'linescale_cache_requests_total{level="l1",namespace="parts",result="miss"} 1.0' in metrics
    )
    assert 'linescale_cache_bytes{level="l1",namespace="parts"}' in metrics
    assert "linescale_cache_lookup_duration_seconds_bucket" in metrics


def test_sync_client_against_a_running_agent(linescale_factory: LinescaleFactory) -> None:
    agent = linescale_factory(
        "agent", ["--node", "node-s", "--zone", "a"], env={"LINESCALE_TOKEN": TOKEN}
    )
    with CacheClient(agent.url, TOKEN) as cache:
        assert cache.put("parts", "a/b c", b"\x00\xff") == 0  # slashes and spaces in keys
        hit = cache.get("parts", "a/b c")
        assert hit is not None
        assert hit.value == b"\x00\xff"
        assert cache.delete("parts", "a/b c") is True
        assert cache.get("parts", "a/b c") is None
        assert cache.stats()["l2"] is None


async def test_report_carries_cache_stats_and_pushed_capacity_resizes_l1(
    client: TestClient,
) -> None:
    await client.put("/v1/cache/parts/k", data=b"v" * 100, headers=AUTH)
    await client.get("/v1/cache/parts/k")
    report = build_report(client.app[AGENT], 0)
    (l1,) = [s for s in report.cache if s.level == "l1" and s.namespace == "parts"]
    assert (l1.hits, l1.entries) == (1, 1)
    assert report.cache_capacity_bytes == 64 * 2**20
    pushed = tuning(
        cache={"capacity_bytes": 2**20, "default_ttl_seconds": 30, "max_ttl_seconds": 300}
    )
    assert (await client.put("/v1/tuning", json=pushed, headers=AUTH)).status == 200
    stats = await (await client.get("/v1/cache/stats")).json()
    assert stats["l1"]["capacity_bytes"] == 2**20
