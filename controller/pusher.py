"""Pushes routing tables and tuning sets to agents, concurrently, with a per-agent timeout."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from shared.pushes import PushKind
from shared.wire import RoutingTable, TuningSet

log = logging.getLogger(__name__)

PushOutcome = Literal["applied", "stale", "failed"]


@dataclass(frozen=True)
class PushTarget:
    node: str
    endpoint: str


@dataclass(frozen=True)
class PushResult:
    node: str
    outcome: PushOutcome
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "outcome": self.outcome, "detail": self.detail}


async def push_one(
    session: aiohttp.ClientSession,
    target: PushTarget,
    kind: PushKind,
    body: str,
    token: str,
    timeout_seconds: float,
) -> PushResult:
    url = f"{target.endpoint}/v1/{kind}"
    try:
        async with session.put(
            url,
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        ) as response:
            text = await response.text()
            if response.status != 200:
                return PushResult(target.node, "failed", f"HTTP {response.status}: {text[:200]}")
            status = (await response.json(content_type=None)).get("status")
            if status in ("applied", "stale"):
                return PushResult(target.node, status, "")
            return PushResult(target.node, "failed", f"unexpected answer {text[:200]}")
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        return PushResult(target.node, "failed", f"{type(error).__name__}: {error}"[:300])


async def push_all(
    session: aiohttp.ClientSession,
    targets: list[PushTarget],
    kind: PushKind,
    message: RoutingTable | TuningSet,
    token: str,
    timeout_seconds: float,
) -> list[PushResult]:
    """One push per agent, all at once; one slow or dead agent delays nobody else."""
    body = message.model_dump_json()
    results = await asyncio.gather(
        *(push_one(session, target, kind, body, token, timeout_seconds) for target in targets)
    )
    for result in results:
        if result.outcome == "failed":
            log.warning(
                "push of %s v%d to %s failed: %s",
                kind,
                message.version,
                result.node,
                result.detail,
                extra={"node": result.node, "kind": kind},
            )
    return list(results)
