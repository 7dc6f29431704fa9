"""The shape of the demo's ``summary.json``: what the validation runner
(``testing/scripts/week10_targets.py``) reads. Extra keys are allowed; these must be there with
these types."""

from __future__ import annotations

SUMMARY_CONTRACT: dict[str, object] = {
    "pattern": str,
    "speed": float,
    "wall_seconds": float,
    "simulated_seconds": float,
    "requests": {"total": int, "ok": int, "errors": int, "success_ratio": float},
    "latency_ms": {"mean": float, "p50": float, "p99": float},
    "normal": {"requests": int, "mean_ms": float, "p99_ms": float},
    "peak": {"requests": int, "mean_ms": float, "p99_ms": float},
    "degradation_at_peak": float,
    "scaling": {"actions": int, "min_replicas": int, "max_replicas": int, "replica_seconds": float},
    "cache": {"hits": int, "misses": int, "hit_ratio": float},
    "routing": {"ejections": int},
    "cost": {"replica_hours": float, "cost": float, "static_peak_cost": float},
}


def conforms(value: object, shape: object) -> bool:
    """Whether ``value`` has every key of ``shape`` with its type (an int passes for float)."""
    if isinstance(shape, dict):
        return isinstance(value, dict) and all(
            key in value and conforms(value[key], sub) for key, sub in shape.items()
        )
    if shape is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, shape)  # type: ignore[arg-type]
