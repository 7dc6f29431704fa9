"""``linescale bench cache``: replay a public cache trace through an L1 policy.

    python -m agent.cache.bench cache --trace ../shared/data/cache-traces/arc/OLTP.lis.gz \\
        --capacity 1000 --policy wtinylfu

prints one JSON object: ``{"trace", "format", "policy", "capacity", "requests", "hits",
"hit_ratio"}``, where ``hit_ratio`` is the **fraction** ``hits / requests`` (0.0 to 1.0) and
every first request of a key (a compulsory miss) counts as a request. Each key has weight 1 and
the capacity is in entries, so the figures compare directly with the published hit ratios in
``shared/data/cache-traces/README.md`` (which are percentages: multiply by 100).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

from agent.cache.policy import LRU, WTinyLFU
from agent.cache.policy_api import K, Policy
from agent.cache.traces import FORMATS, TraceFormat, detect_format, read_trace

POLICIES: Final = ("wtinylfu", "lru", "wtinylfu-fixed")


def make_policy(name: str, capacity: int, seed: int) -> Policy[int]:
    """``wtinylfu`` (adaptive window), ``wtinylfu-fixed`` (1 % window) or ``lru``; entries
    have weight 1, and ``seed`` makes W-TinyLFU's random admission reproducible."""
    if name == "lru":
        return LRU(capacity)
    if name in ("wtinylfu", "wtinylfu-fixed"):
        return WTinyLFU(capacity, rng=random.Random(seed), adaptive=name == "wtinylfu")
    raise ValueError(f"unknown policy {name!r}; expected one of {POLICIES}")


def replay(keys: Iterable[K], policy: Policy[K]) -> tuple[int, int]:
    """Request every key in order; returns ``(requests, hits)``. A hit is reported with
    ``access``; a miss with ``record_miss`` and then ``insert(key, 1)``."""
    access, record_miss, insert = policy.access, policy.record_miss, policy.insert
    requests = hits = 0
    for key in keys:
        requests += 1
        if key in policy:
            hits += 1
            access(key)
        else:
            record_miss(key)
            insert(key, 1)
    return requests, hits


def bench_cache(
    trace: str,
    capacity: int,
    policy: str = "wtinylfu",
    fmt: TraceFormat | None = None,
    seed: int = 1,
) -> dict[str, Any]:
    """Replay ``trace`` and return the JSON-ready result (``hit_ratio`` is a fraction)."""
    trace_format = detect_format(trace) if fmt is None else fmt
    requests, hits = replay(read_trace(trace, trace_format), make_policy(policy, capacity, seed))
    return {
        "trace": trace,
        "format": trace_format,
        "policy": policy,
        "capacity": capacity,
        "requests": requests,
        "hits": hits,
        "hit_ratio": hits / requests if requests else 0.0,
    }


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="linescale bench", description="Offline benchmarks of the node agent's parts."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="{cache}")
    cache = commands.add_parser(
        "cache",
        help="replay a cache trace through the L1 policy and print the hit ratio",
        description=(
            "Replay a trace (one request per key, weight 1, capacity in entries) and print "
            "JSON {trace, format, policy, capacity, requests, hits, hit_ratio}. hit_ratio is "
            "a fraction from 0 to 1 (hits / requests, cold misses included), not a percentage."
        ),
    )
    cache.add_argument("--trace", required=True, help="trace file (.gz and .xz are read as such)")
    cache.add_argument(
        "--capacity", required=True, type=_positive_int, help="cache size in entries"
    )
    cache.add_argument(
        "--policy",
        choices=POLICIES,
        default="wtinylfu",
        help="wtinylfu (adaptive window, default), lru, or wtinylfu-fixed (1%% window)",
    )
    cache.add_argument(
        "--format", choices=FORMATS, default=None, help="trace format (default: from the path)"
    )
    cache.add_argument(
        "--seed", type=int, default=1, help="seed of W-TinyLFU's random admission (default 1)"
    )
    return top


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        fmt = cast("TraceFormat | None", args.format)  # argparse checked the choice
        result = bench_cache(args.trace, args.capacity, args.policy, fmt, args.seed)
    except (OSError, ValueError) as exc:
        print(f"linescale bench cache: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(result))


if __name__ == "__main__":
    main()
