"""The error every ``decide`` kind raises for input it cannot evaluate, so the command and
``POST /v1/decide`` answer all kinds alike, and the field readers that raise it naming the
field (``path``) at fault."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.quantities import parse_quantity


class DecideInputError(ValueError):
    """A refused request: 400 for malformed input (the field is named), 422 when the input is
    well formed but no decision can be computed from it."""

    def __init__(self, status: int, message: str, fields: Sequence[tuple[str, str]] = ()) -> None:
        self.status = status
        self.message = message
        self.fields = tuple(fields)  # (field path, problem) pairs, when fields are at fault
        super().__init__(message)


def bad(path: str, message: str) -> DecideInputError:
    """A 400 naming the field."""
    return DecideInputError(400, f"{path}: {message}", [(path, message)])


def as_mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise bad(path, "must be an object")
    return value


def as_list(value: object, path: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise bad(path, "must be a list")
    if len(value) > limit:
        raise bad(path, f"at most {limit} entries")
    return value


def check_keys(raw: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    """Unknown fields are refused, so a typo is never silently ignored."""
    for key in raw:
        if key not in allowed:
            raise bad(f"{path}.{key}" if path else str(key), "unknown field")


def as_number(value: object, path: str, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(path, "must be a number")
    if value < minimum:
        raise bad(path, f"must be at least {minimum:g}")
    return float(value)


def as_time(value: object, path: str) -> float:
    """Unix seconds, or an RFC 3339 string (UTC when no offset is given)."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise bad(path, "must be unix seconds or an RFC 3339 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad(path, "must be unix seconds or an RFC 3339 time")
    return float(value)


def as_quantity(value: object, path: str) -> Decimal:
    """A Kubernetes quantity (string) or a plain number, exact, in base units."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise bad(path, "must be a quantity")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad(path, "must be a finite quantity")
    try:
        return parse_quantity(value)
    except ValueError:
        raise bad(path, f"invalid quantity {value!r}") from None
