"""What the benchmark scripts share: waiting for a server and reading percentiles."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable


def wait_healthy(url: str, within_seconds: float = 20) -> None:
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} not healthy")


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of an already sorted list, nearest rank."""
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def paced(rate: float, seconds: float, call: Callable[[], None]) -> list[float]:
    """Run ``call`` at a steady ``rate`` per second for ``seconds`` (open-loop pacing, so a
    slow answer does not lower the offered load) and return each call's duration."""
    samples: list[float] = []
    gap = 1.0 / rate
    started = time.perf_counter()
    next_at = started
    while time.perf_counter() - started < seconds:
        now = time.perf_counter()
        if now < next_at:
            time.sleep(max(0.0, next_at - now - 0.0002))
            continue
        begin = time.perf_counter()
        call()
        samples.append(time.perf_counter() - begin)
        next_at += gap
    return samples
