"""``linescale decide`` and ``POST /v1/decide``: evaluate one decision input without acting.

The input's ``kind`` picks the engine; each kind validates its own input and answers JSON. Both
the command and the HTTP handler call ``evaluate``, so they cannot disagree. A bad input is a
``DecideInputError`` whose status (400 malformed, 422 well-formed but not computable) the HTTP
handler answers with and the command turns into exit code 1.

    linescale decide --input decision.json      # or --input - for stdin
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from controller.cli_input import read_json_input
from controller.engines.balancing.routing import decide_routing
from controller.engines.caching import CachingEngine, CachingSettings
from controller.engines.decide_input import DecideInputError
from controller.engines.resources.rightsizing import decide_rightsizing
from controller.engines.scaling.horizontal import decide_horizontal
from shared.wire import MissRatioPoint, WireModel

# cache_l1_size bounds: they keep one request's work small (the merge is grid x points).
MAX_DECIDE_CURVES = 64
MAX_DECIDE_POINTS_PER_CURVE = 64
MAX_DECIDE_POINTS = 1024
MAX_DECIDE_CAPACITY_BYTES = 2**53  # exact as a float
MAX_INPUT_BYTES = 8 * 2**20  # the command's own bound; the HTTP API has max_body_bytes


class CacheL1SizeInput(WireModel):
    """Recommend an L1 size from the given miss-ratio curves (one per node), without acting."""

    kind: Literal["cache_l1_size"]
    curves: Annotated[
        list[Annotated[list[MissRatioPoint], Field(max_length=MAX_DECIDE_POINTS_PER_CURVE)]],
        Field(max_length=MAX_DECIDE_CURVES),
    ]
    current_capacity_bytes: Annotated[int, Field(ge=0, le=MAX_DECIDE_CAPACITY_BYTES)]

    @field_validator("curves")
    @classmethod
    def _bounded(cls, curves: list[list[MissRatioPoint]]) -> list[list[MissRatioPoint]]:
        if sum(len(curve) for curve in curves) > MAX_DECIDE_POINTS:
            raise ValueError(f"at most {MAX_DECIDE_POINTS} points in all")
        if any(p.capacity_bytes > MAX_DECIDE_CAPACITY_BYTES for c in curves for p in c):
            raise ValueError(f"capacity_bytes must be at most {MAX_DECIDE_CAPACITY_BYTES}")
        return curves


def _cache_l1_size(raw: Mapping[str, Any], now: float) -> dict[str, Any]:
    try:
        body = CacheL1SizeInput.model_validate(raw, strict=True)
    except ValidationError as error:
        problems = [
            (".".join(str(part) for part in item["loc"]) or "(body)", str(item["msg"]))
            for item in error.errors(include_url=False)
        ]
        summary = "; ".join(f"{field}: {message}" for field, message in problems)
        raise DecideInputError(400, f"invalid cache_l1_size input: {summary}", problems) from None
    started = time.perf_counter()
    try:
        engine = CachingEngine(CachingSettings())
        decision = engine.recommend_from_curves(body.curves, body.current_capacity_bytes, now)
    except (ArithmeticError, ValueError) as error:  # ValidationError too
        raise DecideInputError(400, f"cannot evaluate this input: {error}") from None
    decision = decision.model_copy(update={"decide_seconds": time.perf_counter() - started})
    return decision.model_dump(mode="json")


def _horizontal(raw: Mapping[str, Any], now: float) -> dict[str, Any]:
    return decide_horizontal(raw)


KINDS: dict[str, Callable[[Mapping[str, Any], float], dict[str, Any]]] = {
    "horizontal": _horizontal,
    "cache_l1_size": _cache_l1_size,
    "routing": lambda raw, now: decide_routing(raw),
    "rightsizing": lambda raw, now: decide_rightsizing(raw),
}


def evaluate(raw: object, *, now: float) -> dict[str, Any]:
    """The decision ``raw`` asks for, as JSON; ``DecideInputError`` when it cannot be
    evaluated."""
    if not isinstance(raw, dict):
        raise DecideInputError(400, "the input must be a JSON object with a 'kind'")
    kind = raw.get("kind")
    handler = KINDS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        problem = f"must be one of {sorted(KINDS)}, got {kind!r}"
        raise DecideInputError(400, f"kind: {problem}", [("kind", problem)])
    return handler(raw, now)


def _read_input(path: str) -> object:
    return read_json_input(path, command="decide", max_bytes=MAX_INPUT_BYTES)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="linescale decide",
        description="Evaluate one decision input without acting; print the decision as JSON.",
    )
    parser.add_argument(
        "--input", default="-", help="JSON file with the input, or - for stdin (default)"
    )
    parser.add_argument("--compact", action="store_true", help="print JSON on one line")
    args = parser.parse_args(argv)
    raw = _read_input(args.input)
    indent = None if args.compact else 2
    try:
        answer = evaluate(raw, now=time.time())
    except DecideInputError as error:
        print(json.dumps({"error": error.message, "status": error.status}, indent=indent))
        print(f"linescale decide: {error.message}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(answer, indent=indent))


if __name__ == "__main__":
    main()
