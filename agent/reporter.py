"""Posts an AgentReport to the controller every few seconds, and keeps going when it is away."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared import metric_names
from shared.pushes import PushKind
from shared.wire import AgentReport

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0


def next_report_delay(interval_seconds: float, consecutive_failures: int) -> float:
    """The interval while the controller answers; doubling up to a minute while it does not."""
    if consecutive_failures <= 0:
        return interval_seconds
    backoff = interval_seconds * 2.0 ** min(consecutive_failures, 16)
    return max(interval_seconds, min(backoff, MAX_BACKOFF_SECONDS))


class ReportMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reports = Counter(
            metric_names.AGENT_REPORTS,
            "Reports posted to the controller, by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("sent", "refused", "unreachable"):
            self.reports.labels(outcome)
        self.duration = Histogram(
            metric_names.AGENT_REPORT_DURATION,
            "Time to post one report to the controller.",
            registry=registry,
        )
        self.last_success = Gauge(
            metric_names.AGENT_LAST_REPORT_SUCCESS,
            "Unix time of the last report the controller accepted.",
            registry=registry,
        )


@dataclass(frozen=True)
class ReportTarget:
    url: str
    token: str
    timeout_seconds: float


async def post_report(
    session: aiohttp.ClientSession, target: ReportTarget, report: AgentReport
) -> tuple[str, dict[str, Any]]:
    """Post one report; returns the outcome label ("sent", "refused" or "unreachable") and,
    when sent, the controller's answer (which carries the versions it holds)."""
    try:
        async with session.post(
            target.url,
            data=report.model_dump_json(),
            headers={
                "Authorization": f"Bearer {target.token}",
                "Content-Type": "application/json",
            },
            timeout=aiohttp.ClientTimeout(total=target.timeout_seconds),
        ) as response:
            if response.status == 200:
                answer = await response.json(content_type=None)
                return "sent", answer if isinstance(answer, dict) else {}
            body = (await response.text())[:300]
            log.warning("controller refused report: HTTP %s %s", response.status, body)
            return "refused", {}
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        log.info("controller unreachable: %s", error or type(error).__name__)
        return "unreachable", {}


def kinds_to_fetch(held: Mapping[PushKind, int], answer: Mapping[str, Any]) -> list[PushKind]:
    """What the controller holds newer than we do: an agent that was away (or restarted)
    catches up from its report's answer instead of waiting for the next push."""
    wanted: list[PushKind] = []
    for kind in ("routing", "tuning"):
        version = answer.get(f"{kind}_version")
        if isinstance(version, int) and not isinstance(version, bool) and version > held[kind]:
            wanted.append(kind)
    return wanted


async def report_loop(
    session: aiohttp.ClientSession,
    target: ReportTarget,
    build_report: Callable[[int], AgentReport],
    interval_seconds: float,
    metrics: ReportMetrics,
    on_answer: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Runs until cancelled; a failing controller only lengthens the delay."""
    sequence = 0
    failures = 0
    while True:
        started = time.monotonic()
        outcome, answer = await post_report(session, target, build_report(sequence))
        metrics.duration.observe(time.monotonic() - started)
        metrics.reports.labels(outcome).inc()
        sequence += 1
        if outcome == "sent":
            failures = 0
            metrics.last_success.set_to_current_time()
            if on_answer is not None:
                await on_answer(answer)
        else:
            failures += 1
        await sleep(next_report_delay(interval_seconds, failures))
