"""Open-loop steady load for reliability tests.

Requests leave at a fixed rate whether or not earlier ones have been answered: a closed loop
would slow down exactly when the system under test does, and hide the failures these tests
look for. Every request sent ends in exactly one outcome, an HTTP status or the name of the
client-side error (a timeout included), so once the load has stopped ``sent`` equals the
number of outcomes: no request can vanish without being counted.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import aiohttp


@dataclass(frozen=True, slots=True)
class Outcome:
    sent_at: float  # time.monotonic() when the request left
    status: int | None  # None: no HTTP answer
    error: str = ""  # the client-side error's type name when there was no answer

    @property
    def label(self) -> str:
        return str(self.status) if self.status is not None else self.error

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def tally(outcomes: Iterable[Outcome]) -> Counter[str]:
    """Outcomes by status code or error name, e.g. ``{"200": 2997, "502": 1}``."""
    return Counter(outcome.label for outcome in outcomes)


def success_ratio(outcomes: Iterable[Outcome]) -> float:
    """The fraction of 2xx answers; 0 when nothing was sent (a test must not pass on no load)."""
    counted = list(outcomes)
    return sum(1 for o in counted if o.succeeded) / len(counted) if counted else 0.0


class SteadyLoad:
    """``rate`` GET requests per second to ``url`` until stopped; use as an async context
    manager, then read ``outcomes()``. Each request gives up after ``timeout_seconds``."""

    def __init__(self, url: str, rate: float, *, timeout_seconds: float = 5.0) -> None:
        if not rate > 0:
            raise ValueError("rate must be > 0")
        self.url = url
        self.rate = rate
        self.timeout_seconds = timeout_seconds
        self.sent = 0
        self._outcomes: list[Outcome] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._pacer: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._pacer is not None:
            raise RuntimeError("load already started")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout_seconds)
        )
        self._pacer = asyncio.create_task(self._pace(), name="steady-load")

    async def stop(self) -> None:
        """Stop sending and wait for every request in flight to end (each is bounded by the
        client timeout, so this cannot hang on a silent upstream)."""
        if self._pacer is not None:
            self._pacer.cancel()
            await asyncio.gather(self._pacer, return_exceptions=True)
            self._pacer = None
        if self._in_flight:
            await asyncio.wait_for(
                asyncio.gather(*self._in_flight), timeout=self.timeout_seconds + 5
            )
        if self._session is not None:
            await self._session.close()
            self._session = None

    def outcomes(self, since: float = -math.inf, until: float = math.inf) -> list[Outcome]:
        """The finished requests sent in ``[since, until)`` (monotonic seconds)."""
        return [o for o in self._outcomes if since <= o.sent_at < until]

    async def _pace(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(max(0.0, started + self.sent / self.rate - time.monotonic()))
            task = asyncio.create_task(self._one(time.monotonic()))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            self.sent += 1

    async def _one(self, sent_at: float) -> None:
        assert self._session is not None
        try:
            async with self._session.get(self.url) as response:
                await response.read()
                outcome = Outcome(sent_at, response.status)
        except Exception as error:  # every failure is an outcome; none may escape the count
            outcome = Outcome(sent_at, None, type(error).__name__)
        self._outcomes.append(outcome)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
