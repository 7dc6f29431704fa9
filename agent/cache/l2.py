"""Redis as the shared L2 behind every agent's in-memory L1.

Why it looks like this:

- **Key layout (Redis Cluster compatible).** Everything of namespace ``ns`` shares the hash tag
  ``{ns}``, so it lives in one cluster slot:

  - ``ls:v1:{ns}:k:<key>``: a hash per cached key with fields ``v`` (codec blob, see
    :mod:`shared.cache_codec`), ``ver`` (its version) and ``t`` (its tags, comma-separated);
  - ``ls:v1:{ns}:tag:<tag>``: a set of the keys carrying ``<tag>``, expiring no earlier than
    its longest-lived member;
  - ``ls:v1:{ns}:ver``: the namespace's version counter.

  Tagging by namespace is what makes every write atomic: a Lua script allocates the version,
  writes the hash and updates the tag sets in one step, which Cluster only allows within one
  slot (scripts also touch tag sets named in a hash's ``t`` field; they are in the same slot,
  which Cluster permits). It also means a prefix invalidation SCANs one node instead of every
  master. The price is that one namespace is served by one shard, so a namespace too hot for
  one Redis node must be split into several namespaces.
- **Versions.** One counter per namespace, so versions strictly increase per key across
  agents, and a delete or invalidation gets a version above every value it removes: an L1 can
  drop everything older than an invalidation's version and keep anything newer. A missing
  counter (a restarted Redis without persistence, or eviction) is re-seeded from the server
  clock in microseconds, so versions keep increasing across restarts too.
- **Degraded mode.** The L2 is an optimisation: when Redis is down or slow, every call
  returns a miss (``None``, ``0``, ``(0, 0)``) within ``socket_connect_timeout +
  socket_timeout`` and raises nothing. The first failure logs one warning and calls
  ``on_state_change(False)``; then calls are skipped for a backoff (doubling up to
  ``backoff_max``), after which one call probes Redis; its success logs one info line and calls
  ``on_state_change(True)``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import InvalidResponse, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.cache_codec import CorruptValue, decode, encode

__all__ = [
    "CONNECTION_ERRORS",
    "KEY_PREFIX",
    "Backoff",
    "L2Stats",
    "L2Value",
    "RedisL2",
    "aclose",
    "make_client",
    "redacted",
    "tag_key",
    "value_key",
    "version_key",
]

log = logging.getLogger(__name__)

KEY_PREFIX: Final = "ls:v1"
DEFAULT_COMPRESS_ABOVE: Final = 1024
"""lz4 pays above about 1 KB on JSON-like values (caching.md section 0, item 4)."""

_T = TypeVar("_T")

CONNECTION_ERRORS: Final = (RedisConnectionError, RedisTimeoutError, InvalidResponse, OSError)
"""Errors that mean "Redis is unreachable or too slow" (builtin TimeoutError is an OSError)."""


# --------------------------------------------------------------------------------------------
# Key layout
# --------------------------------------------------------------------------------------------


def _check_namespace(ns: str) -> None:
    # Braces would change the hash tag, and with it the slot of some of the namespace's keys.
    if not ns or "{" in ns or "}" in ns:
        raise ValueError(f"namespace must be non-empty and free of braces: {ns!r}")


def _check_tag(tag: str) -> None:
    if not tag or "," in tag:
        raise ValueError(f"tag must be non-empty and free of commas: {tag!r}")


def value_key(ns: str, key: str) -> str:
    """The Redis hash holding ``key`` of namespace ``ns``."""
    _check_namespace(ns)
    return f"{KEY_PREFIX}:{{{ns}}}:k:{key}"


def tag_key(ns: str, tag: str) -> str:
    """The Redis set of the keys of ``ns`` that carry ``tag``."""
    _check_namespace(ns)
    return f"{KEY_PREFIX}:{{{ns}}}:tag:{tag}"


def version_key(ns: str) -> str:
    """The version counter of ``ns``."""
    _check_namespace(ns)
    return f"{KEY_PREFIX}:{{{ns}}}:ver"


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so SCAN MATCH treats ``text`` literally."""
    return "".join("\\" + ch if ch in "\\*?[]" else ch for ch in text)


# --------------------------------------------------------------------------------------------
# Lua: every script touches one slot only (see the module docstring)
# --------------------------------------------------------------------------------------------

_LUA_HELPERS: Final = """
local function next_version(counter)
  if redis.call('EXISTS', counter) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', counter, t[1] .. string.rep('0', 6 - #t[2]) .. t[2])
  end
  return redis.call('INCR', counter)
end

local function drop(key, member, tag_prefix)
  if redis.call('TYPE', key)['ok'] == 'hash' then
    local tags = redis.call('HGET', key, 't')
    if tags then
      for tag in string.gmatch(tags, '[^,]+') do
        redis.call('SREM', tag_prefix .. tag, member)
      end
    end
  end
  return redis.call('DEL', key)
end
"""

# KEYS[1] value hash. Returns nil (no key) or {v, ver, t, pttl}; v is nil for a foreign type.
_GET_LUA: Final = """
local ty = redis.call('TYPE', KEYS[1])['ok']
if ty == 'none' then return false end
local pttl = redis.call('PTTL', KEYS[1])
if ty ~= 'hash' then return {false, false, false, pttl} end
local f = redis.call('HMGET', KEYS[1], 'v', 'ver', 't')
return {f[1], f[2], f[3], pttl}
"""

# KEYS[1] value hash, KEYS[2] counter, KEYS[3..] sets of the new tags.
# ARGV: blob, ttl ms (0 = none), tags csv, member (the caller's key), tag-set key prefix.
_SET_LUA: Final = (
    _LUA_HELPERS
    + """
local ver = next_version(KEYS[2])
drop(KEYS[1], ARGV[4], ARGV[5])
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', string.format('%d', ver), 't', ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
for i = 3, #KEYS do
  local fresh = redis.call('EXISTS', KEYS[i]) == 0
  redis.call('SADD', KEYS[i], ARGV[4])
  if ttl == 0 then
    redis.call('PERSIST', KEYS[i])
  elseif fresh then
    redis.call('PEXPIRE', KEYS[i], ttl)
  else
    redis.call('PEXPIRE', KEYS[i], ttl, 'GT')
  end
end
return ver
"""
)

# KEYS[1] value hash, KEYS[2] counter. ARGV: member, tag-set key prefix. Returns the version.
_DELETE_LUA: Final = (
    _LUA_HELPERS
    + """
local ver = next_version(KEYS[2])
drop(KEYS[1], ARGV[1], ARGV[2])
return ver
"""
)

# KEYS[1] counter. Returns a fresh version (the fence of a prefix or tag invalidation).
_FENCE_LUA: Final = _LUA_HELPERS + "return next_version(KEYS[1])\n"

# KEYS: value hashes found by SCAN / SSCAN. ARGV: fence version, tag-set key prefix,
# value-key prefix, tag ('' when invalidating by prefix). Deletes the values older than the
# fence (newer ones were written after the invalidation began); in tag mode it also drops
# index entries whose key expired or no longer carries the tag. Returns the count deleted.
_PURGE_LUA: Final = (
    _LUA_HELPERS
    + """
local fence = tonumber(ARGV[1])
local tag = ARGV[4]
local n = 0
for _, key in ipairs(KEYS) do
  local member = string.sub(key, #ARGV[3] + 1)
  local ty = redis.call('TYPE', key)['ok']
  if ty == 'hash' then
    local f = redis.call('HMGET', key, 'ver', 't')
    local ver = tonumber(f[1])
    local tagged = tag == '' or
      (f[2] and string.find(',' .. f[2] .. ',', ',' .. tag .. ',', 1, true) ~= nil)
    if not tagged then
      redis.call('SREM', ARGV[2] .. tag, member)
    elseif ver == nil or ver < fence then
      n = n + drop(key, member, ARGV[2])
    end
  elseif ty ~= 'none' then
    n = n + redis.call('DEL', key)
  elseif tag ~= '' then
    redis.call('SREM', ARGV[2] .. tag, member)
  end
end
return n
"""
)


# --------------------------------------------------------------------------------------------
# Values, stats, backoff
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class L2Value:
    """A value read from Redis; ``ttl_seconds`` is what remains (``None``: no expiry)."""

    value: bytes
    version: int
    tags: tuple[str, ...]
    ttl_seconds: float | None


@dataclass(slots=True)
class L2Stats:
    """Counters for metrics; ``errors`` counts failed calls, corrupt values and server errors."""

    hits: int = 0
    misses: int = 0
    errors: int = 0
    corrupt: int = 0
    skipped: int = 0
    """Calls not sent to Redis because it is down (within the backoff) or the L2 is closed."""
    bytes_read: int = 0
    bytes_written: int = 0


class Backoff:
    """Up/down state with a retry delay: while down, only one probe call per delay goes out.

    Why: a dead Redis costs each call a full timeout; skipping calls for a while keeps the
    caller fast, and a single probe (not every concurrent caller) finds out when it is back.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"need 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self._clock = clock
        self.up = True
        self.delay = initial
        self.down_since = 0.0
        self._retry_at = 0.0
        self._probing = False

    def try_acquire(self) -> bool | None:
        """``None``: skip the call; ``False``: a normal call; ``True``: the probe while down."""
        if self.up:
            return False
        if self._probing or self._clock() < self._retry_at:
            return None
        self._probing = True
        return True

    def release(self, probe: bool | None) -> None:
        """The call ended without a verdict (e.g. it was cancelled)."""
        if probe:
            self._probing = False

    def record_success(self, probe: bool | None = False) -> bool:
        """Redis answered; True when that ends a down period."""
        self.release(probe)
        if self.up:
            return False
        self.up = True
        self.delay = self.initial
        return True

    def record_failure(self, probe: bool | None = False) -> bool:
        """Redis failed; True when that starts a down period."""
        now = self._clock()
        if self.up:
            self.up = False
            self.down_since = now
            self.delay = self.initial
            started = True
        elif probe:
            self.delay = min(self.delay * 2, self.maximum)
            started = False
        else:
            return False  # A call that began before the outage: the current backoff stands.
        self.release(probe)
        self._retry_at = now + self.delay
        return started

    @property
    def retry_in(self) -> float:
        """Seconds until the next probe may go out (0 when up)."""
        return 0.0 if self.up else max(0.0, self._retry_at - self._clock())


class _AsyncClosable(Protocol):
    async def aclose(self) -> None: ...


async def aclose(resource: object) -> None:
    """``await resource.aclose()``: redis-py >= 5 has it, the installed types-redis stubs don't."""
    await cast(_AsyncClosable, resource).aclose()


def _as_bytes(value: bytes | str) -> bytes:
    """Replies are bytes (no ``decode_responses``); typed as either by redis-py."""
    return value if isinstance(value, bytes) else value.encode()


def make_client(
    url: str,
    *,
    socket_connect_timeout: float,
    socket_timeout: float,
    max_connections: int,
) -> Redis:
    """A client whose every call is bounded, for callers that degrade instead of failing.

    - No redis-py retries: they would multiply the timeouts (redis-py 8 retries 3 times).
    - A blocking pool: redis-py's default pool raises ``MaxConnectionsError`` past 100
      concurrent calls, which would look like an outage; here a burst queues for a connection
      for at most one call's deadline instead.

    Reconnection is still automatic: the pool opens a new connection on the next call.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=socket_connect_timeout + socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        socket_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
    )
    client = Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # The client owns its pool, as from_pool() does.
    return client


def redacted(url: str) -> str:
    """``host:port/db`` of a Redis URL, for logs (never the password)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


class _Unavailable:
    """Marker result: Redis did not answer (down, slow, skipped or closed) or refused the call."""


_UNAVAILABLE: Final = _Unavailable()


def _ttl_ms(ttl_seconds: float | None) -> int:
    if ttl_seconds is None:
        return 0
    if not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be a positive number or None, got {ttl_seconds!r}")
    return max(1, math.ceil(ttl_seconds * 1000))


# --------------------------------------------------------------------------------------------
# The L2
# --------------------------------------------------------------------------------------------


class RedisL2:
    """Write-through L2 over ``redis.asyncio``; never raises because Redis is down or slow."""

    def __init__(
        self,
        url: str,
        *,
        socket_connect_timeout: float = 0.2,
        socket_timeout: float = 0.25,
        compress_above: int = DEFAULT_COMPRESS_ABOVE,
        backoff_initial: float = 1.0,
        backoff_max: float = 10.0,
        scan_count: int = 500,
        max_connections: int = 64,
        on_state_change: Callable[[bool], None] | None = None,
    ) -> None:
        if scan_count < 1:
            raise ValueError(f"scan_count must be >= 1, got {scan_count}")
        self.stats = L2Stats()
        self.on_state_change = on_state_change
        """Called with the new availability (False: the agent should flush or fence its L1)."""
        self._where = redacted(url)
        self._compress_above = compress_above
        self._scan_count = scan_count
        # One call = at most one connect plus one read, so this is the bound on any call.
        self._deadline = socket_connect_timeout + socket_timeout
        self._gate = Backoff(backoff_initial, backoff_max)
        self._closed = False
        self._warned: set[str] = set()
        self._client = make_client(
            url,
            socket_connect_timeout=socket_connect_timeout,
            socket_timeout=socket_timeout,
            max_connections=max_connections,
        )
        self._get_script = self._client.register_script(_GET_LUA)
        self._set_script = self._client.register_script(_SET_LUA)
        self._delete_script = self._client.register_script(_DELETE_LUA)
        self._fence_script = self._client.register_script(_FENCE_LUA)
        self._purge_script = self._client.register_script(_PURGE_LUA)

    @property
    def available(self) -> bool:
        """False while Redis is considered down (calls return misses without trying)."""
        return self._gate.up and not self._closed

    async def probe(self) -> bool:
        """While Redis is down, send the backoff's probe (a PING) even if no caller does, so an
        idle node notices the recovery; returns whether Redis is available afterwards."""
        if not self.available and self._gate.retry_in == 0:
            await self._run("ping", self._client.ping)
        return self.available

    @property
    def retry_in(self) -> float:
        """Seconds until the next probe may go out while Redis is down (0 when up)."""
        return self._gate.retry_in

    async def close(self) -> None:
        """Close the connection pool; later calls return misses."""
        if not self._closed:
            self._closed = True
            await aclose(self._client)

    # ---------------------------------------------------------------------------- operations

    async def get(self, ns: str, key: str) -> L2Value | None:
        """The value, or ``None`` on a miss, a corrupt/foreign value or an unavailable Redis."""
        script = functools.partial(self._get_script, keys=[value_key(ns, key)])
        reply = await self._run("get", script)
        if isinstance(reply, _Unavailable) or reply is None:
            self.stats.misses += 1
            return None
        try:
            found = self._parse(reply)
        except (CorruptValue, ValueError, TypeError) as exc:
            self.stats.misses += 1
            self.stats.errors += 1
            self.stats.corrupt += 1
            self._warn_once("corrupt", "corrupt value at %s (%s); treated as a miss", key, exc)
            return None
        self.stats.hits += 1
        return found

    def _parse(self, reply: Any) -> L2Value:
        blob, version, tags, pttl = reply
        if not isinstance(blob, bytes) or not isinstance(version, bytes | int):
            raise CorruptValue("not a Linescale L2 hash (missing 'v' or 'ver')")
        self.stats.bytes_read += len(blob)
        tag_text = tags.decode() if isinstance(tags, bytes) else ""
        return L2Value(
            value=decode(blob),
            version=int(version),
            tags=tuple(tag_text.split(",")) if tag_text else (),
            ttl_seconds=None if int(pttl) < 0 else int(pttl) / 1000,
        )

    async def set(
        self,
        ns: str,
        key: str,
        value: bytes,
        *,
        ttl_seconds: float | None,
        tags: Iterable[str] = (),
    ) -> int:
        """Write through; returns the new version, or 0 when Redis is unavailable."""
        tag_list = sorted(set(tags))
        for tag in tag_list:
            _check_tag(tag)
        blob = encode(value, compress_above=self._compress_above)
        script = functools.partial(
            self._set_script,
            keys=[value_key(ns, key), version_key(ns), *(tag_key(ns, tag) for tag in tag_list)],
            args=[blob, _ttl_ms(ttl_seconds), ",".join(tag_list), key, tag_key(ns, "")],
        )
        version = await self._run("set", script)
        if isinstance(version, _Unavailable):
            return 0
        self.stats.bytes_written += len(blob)
        return int(version)

    async def delete(self, ns: str, key: str) -> int:
        """Delete ``key``; returns the delete's version (above any version the value had).

        0 means Redis is unavailable and nothing was deleted.
        """
        script = functools.partial(
            self._delete_script,
            keys=[value_key(ns, key), version_key(ns)],
            args=[key, tag_key(ns, "")],
        )
        version = await self._run("delete", script)
        return 0 if isinstance(version, _Unavailable) else int(version)

    async def invalidate_prefix(self, ns: str, prefix: str) -> tuple[int, int]:
        """Delete the keys of ``ns`` starting with ``prefix`` ("" = all); (count, version).

        SCANs in batches of ``scan_count``, so Redis is never blocked for long. Values written
        after the version was allocated survive. If Redis fails midway the count so far is
        returned, and the agent's state-change hook has been told to flush.
        """
        fence = await self._fence(ns)
        if fence == 0:
            return 0, 0
        pattern = _glob_escape(value_key(ns, prefix)) + "*"
        deleted = 0
        cursor = 0
        while True:
            scan = functools.partial(
                self._client.scan, cursor, match=pattern, count=self._scan_count
            )
            page = await self._run("invalidate_prefix", scan)
            if isinstance(page, _Unavailable):
                break
            cursor, keys = int(page[0]), [_as_bytes(k) for k in page[1]]
            count = await self._purge(ns, keys, fence, tag="")
            if count is None:
                break
            deleted += count
            if cursor == 0:
                break
        return deleted, fence

    async def invalidate_tag(self, ns: str, tag: str) -> tuple[int, int]:
        """Delete the keys of ``ns`` tagged ``tag``; (count, version). SSCANs in batches."""
        _check_tag(tag)
        fence = await self._fence(ns)
        if fence == 0:
            return 0, 0
        index = tag_key(ns, tag)
        key_prefix = value_key(ns, "").encode()
        deleted = 0
        cursor = 0
        while True:
            scan = functools.partial(self._client.sscan, index, cursor, count=self._scan_count)
            page = await self._run("invalidate_tag", scan)
            if isinstance(page, _Unavailable):
                break
            cursor, members = int(page[0]), [_as_bytes(m) for m in page[1]]
            count = await self._purge(ns, [key_prefix + m for m in members], fence, tag=tag)
            if count is None:
                break
            deleted += count
            if cursor == 0:
                break
        return deleted, fence

    async def _fence(self, ns: str) -> int:
        script = functools.partial(self._fence_script, keys=[version_key(ns)])
        version = await self._run("invalidate", script)
        return 0 if isinstance(version, _Unavailable) else int(version)

    async def _purge(self, ns: str, keys: list[bytes], fence: int, *, tag: str) -> int | None:
        if not keys:
            return 0
        script = functools.partial(
            self._purge_script,
            keys=keys,
            args=[fence, tag_key(ns, ""), value_key(ns, ""), tag],
        )
        count = await self._run("invalidate", script)
        return None if isinstance(count, _Unavailable) else int(count)

    # ------------------------------------------------------------------------ degraded mode

    async def _run(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T | _Unavailable:
        """Run one Redis call under the deadline and the backoff gate; never raises for Redis."""
        if self._closed:
            self.stats.skipped += 1
            return _UNAVAILABLE
        probe = self._gate.try_acquire()
        if probe is None:
            self.stats.skipped += 1
            return _UNAVAILABLE
        try:
            async with asyncio.timeout(self._deadline):
                result = await call()
        except CONNECTION_ERRORS as exc:
            self.stats.errors += 1
            self._failed(what, exc, probe)
            return _UNAVAILABLE
        except ResponseError as exc:
            # Redis answered, so it is up; the command itself failed (OOM, WRONGTYPE, ...).
            self.stats.errors += 1
            self._succeeded(probe)
            self._warn_once(type(exc).__name__, "redis L2 %s failed: %s", what, exc)
            return _UNAVAILABLE
        except BaseException:
            self._gate.release(probe)
            raise
        self._succeeded(probe)
        return result

    def _failed(self, what: str, exc: BaseException, probe: bool | None) -> None:
        if self._gate.record_failure(probe):
            log.warning(
                "redis L2 at %s unavailable (%s during %s: %s); serving misses, retrying in %.1fs",
                self._where,
                type(exc).__name__,
                what,
                exc,
                self._gate.delay,
            )
            self._notify(False)
        else:
            log.debug("redis L2 still unavailable (%s: %s)", type(exc).__name__, exc)

    def _succeeded(self, probe: bool | None) -> None:
        if self._gate.record_success(probe):
            log.info(
                "redis L2 at %s available again after %.1fs",
                self._where,
                time.monotonic() - self._gate.down_since,
            )
            self._notify(True)

    def _notify(self, available: bool) -> None:
        if self.on_state_change is None:
            return
        try:
            self.on_state_change(available)
        except Exception:
            log.exception("redis L2 on_state_change(%s) hook failed", available)

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        """Warn on the first occurrence of each kind; repeats are in ``stats`` (and debug)."""
        if kind in self._warned:
            log.debug(message, *args)
        else:
            self._warned.add(kind)
            log.warning(message + " (further ones are only counted)", *args)
