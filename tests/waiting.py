"""Waiting for a condition in tests: poll until it holds, fail with what was awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def eventually(
    check: Callable[[], bool], within: float, what: str = "", poll: float = 0.1
) -> float:
    """Seconds until ``check()`` held; fails after ``within`` seconds."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"not true within {within}s: {what}"
        time.sleep(poll)
    return time.monotonic() - started


async def eventually_async(
    check: Callable[[], Awaitable[bool]], within: float, what: str = "", poll: float = 0.2
) -> float:
    """``eventually`` for a coroutine check, sleeping on the event loop between polls."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, f"not true within {within}s: {what}"
        await asyncio.sleep(poll)
    return time.monotonic() - started
