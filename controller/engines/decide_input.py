"""The error every ``decide`` kind raises for input it cannot evaluate, so the command and
``POST /v1/decide`` answer all kinds alike."""

from __future__ import annotations

from collections.abc import Sequence


class DecideInputError(ValueError):
    """A refused request: 400 for malformed input (the field is named), 422 when the input is
    well formed but no decision can be computed from it."""

    def __init__(self, status: int, message: str, fields: Sequence[tuple[str, str]] = ()) -> None:
        self.status = status
        self.message = message
        self.fields = tuple(fields)  # (field path, problem) pairs, when fields are at fault
        super().__init__(message)
