"""Clients for the node agent's cache API, for services running on the node.

Both speak ``/v1/cache/{namespace}/{key}``: the value is raw bytes, a miss is ``None``.
Reads fail open by default (an unreachable agent reads as a miss, because a cache must not take
a service down with it); writes raise ``CacheUnavailable`` so the caller knows nothing was
stored. Use the async client in asyncio services and the sync one elsewhere.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import aiohttp

log = logging.getLogger(__name__)


class CacheError(Exception):
    """The agent refused the request (4xx) or failed (5xx); ``status`` and message say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class CacheUnavailable(CacheError):  # noqa: N818 - reads as the condition it reports
    """The agent could not be reached."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


@dataclass(frozen=True)
class CacheHit:
    value: bytes
    level: str  # "L1" or "L2"
    version: int


def _path(namespace: str, key: str | None = None, action: str | None = None) -> str:
    path = f"/v1/cache/{urllib.parse.quote(namespace, safe='')}"
    if key is not None:
        path += f"/{urllib.parse.quote(key, safe='')}"
    if action is not None:
        path += f"/{action}"
    return path


def _put_query(ttl_seconds: float | None, tags: Iterable[str]) -> str:
    params = {}
    if ttl_seconds is not None:
        params["ttl"] = f"{ttl_seconds:g}"
    tag_list = ",".join(tags)
    if tag_list:
        params["tags"] = tag_list
    return f"?{urllib.parse.urlencode(params)}" if params else ""


def _invalidate_body(prefix: str | None, tag: str | None) -> dict[str, str]:
    if (prefix is None) == (tag is None):
        raise ValueError("give exactly one of prefix or tag")
    return {"prefix": prefix} if prefix is not None else {"tag": tag or ""}


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body[:200].decode(errors="replace")))
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace")


def _hit(status: int, headers: Mapping[str, str], body: bytes) -> CacheHit | None:
    if status == 404:
        return None
    if status != 200:
        raise CacheError(status, _error_message(body))
    return CacheHit(
        value=body,
        level=headers.get("X-Cache", ""),
        version=int(headers.get("X-Cache-Version", "0") or 0),
    )


class AsyncCacheClient:
    """``async with AsyncCacheClient("http://127.0.0.1:9400", token) as cache: ...``"""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_seconds: float = 1.0,
        fail_open_reads: bool = True,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._fail_open = fail_open_reads
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self._session

    async def _request(
        self, method: str, path: str, *, data: bytes | None = None, json_body: Any = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            async with self._client().request(
                method, self._base + path, data=data, json=json_body
            ) as response:
                return response.status, response.headers, await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise CacheUnavailable(f"{method} {path}: {error or type(error).__name__}") from None

    async def get(self, namespace: str, key: str) -> CacheHit | None:
        try:
            return _hit(*await self._request("GET", _path(namespace, key)))
        except CacheUnavailable as error:
            if not self._fail_open:
                raise
            log.warning("cache unreachable, reading as a miss: %s", error)
            return None

    async def put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        ttl_seconds: float | None = None,
        tags: Iterable[str] = (),
    ) -> int:
        """Store ``value``; returns its version (0 when only the node's L1 holds it)."""
        path = _path(namespace, key) + _put_query(ttl_seconds, tags)
        status, _, body = await self._request("PUT", path, data=value)
        if status != 200:
            raise CacheError(status, _error_message(body))
        return int(json.loads(body)["version"])

    async def delete(self, namespace: str, key: str) -> bool:
        status, _, body = await self._request("DELETE", _path(namespace, key))
        if status != 200:
            raise CacheError(status, _error_message(body))
        return bool(json.loads(body)["deleted"])

    async def invalidate(
        self, namespace: str, *, prefix: str | None = None, tag: str | None = None
    ) -> int:
        """Drop every key with ``prefix`` or ``tag`` on every node; returns how many here."""
        body = _invalidate_body(prefix, tag)
        status, _, answer = await self._request(
            "POST", _path(namespace, action="invalidate"), json_body=body
        )
        if status != 200:
            raise CacheError(status, _error_message(answer))
        return int(json.loads(answer)["invalidated"])

    async def stats(self) -> dict[str, Any]:
        status, _, body = await self._request("GET", "/v1/cache/stats")
        if status != 200:
            raise CacheError(status, _error_message(body))
        stats: dict[str, Any] = json.loads(body)
        return stats

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class CacheClient:
    """The same API, blocking, over one kept-alive HTTP connection (not thread-safe: one
    client per thread)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_seconds: float = 1.0,
        fail_open_reads: bool = True,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"base_url must be http://HOST:PORT, got {base_url!r}")
        self._host = parsed.hostname
        self._port = parsed.port or 80
        self._timeout = timeout_seconds
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._fail_open = fail_open_reads
        self._connection: http.client.HTTPConnection | None = None

    def _request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, Mapping[str, str], bytes]:
        headers = dict(self._headers)
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in (1, 2):  # a kept-alive connection the agent closed: reconnect once
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
            try:
                self._connection.request(method, path, body=body, headers=headers)
                response = self._connection.getresponse()
                data = response.read()
                return response.status, dict(response.getheaders()), data
            except (OSError, http.client.HTTPException) as error:
                self.close()
                if attempt == 2:
                    raise CacheUnavailable(f"{method} {path}: {error}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, namespace: str, key: str) -> CacheHit | None:
        try:
            return _hit(*self._request("GET", _path(namespace, key)))
        except CacheUnavailable as error:
            if not self._fail_open:
                raise
            log.warning("cache unreachable, reading as a miss: %s", error)
            return None

    def put(
        self,
        namespace: str,
        key: str,
        value: bytes,
        *,
        ttl_seconds: float | None = None,
        tags: Iterable[str] = (),
    ) -> int:
        path = _path(namespace, key) + _put_query(ttl_seconds, tags)
        status, _, body = self._request("PUT", path, value, "application/octet-stream")
        if status != 200:
            raise CacheError(status, _error_message(body))
        return int(json.loads(body)["version"])

    def delete(self, namespace: str, key: str) -> bool:
        status, _, body = self._request("DELETE", _path(namespace, key))
        if status != 200:
            raise CacheError(status, _error_message(body))
        return bool(json.loads(body)["deleted"])

    def invalidate(
        self, namespace: str, *, prefix: str | None = None, tag: str | None = None
    ) -> int:
        payload = json.dumps(_invalidate_body(prefix, tag)).encode()
        status, _, body = self._request(
            "POST", _path(namespace, action="invalidate"), payload, "application/json"
        )
        if status != 200:
            raise CacheError(status, _error_message(body))
        return int(json.loads(body)["invalidated"])

    def stats(self) -> dict[str, Any]:
        status, _, body = self._request("GET", "/v1/cache/stats")
        if status != 200:
            raise CacheError(status, _error_message(body))
        stats: dict[str, Any] = json.loads(body)
        return stats

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
