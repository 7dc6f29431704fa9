"""What the benchmark scripts share: waiting for a server and reading percentiles."""

from __future__ import annotations

import time
import urllib.request


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
