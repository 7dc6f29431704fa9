"""Read a load trace: a ``timestamp,value`` CSV, plain or gzipped.

The format is the one of the team's ``data/load-traces``: a header line ``timestamp,value``, then
one row per interval. ``timestamp`` is the *start* of the interval, either ISO-8601 (UTC, ``Z``) or
integer seconds from the start of the trace. An empty ``value`` means "no valid observation" (a log
gap, an outage) and becomes ``None``; ``0`` is a real zero. Rows must be sorted by time.

Reading is pure apart from opening the one file; a malformed row raises ``TraceError`` naming the
file and line, so the ``backtest`` command can exit 2 with a message the user can act on.
"""

from __future__ import annotations

import gzip
import itertools
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["LoadTrace", "TraceError", "parse_trace", "read_trace"]

_HEADER = ("timestamp", "value")


class TraceError(ValueError):
    """The trace cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class LoadTrace:
    """An evenly spaced series: ``values[i]`` is the load in ``[times[i], times[i] + step)``."""

    times: tuple[float, ...]
    values: tuple[float | None, ...]
    source: str

    @property
    def step_seconds(self) -> float:
        """The trace's own interval: the median spacing, so one late row does not change it."""
        if len(self.times) < 2:
            raise TraceError(f"{self.source}: needs at least two rows to know its interval")
        return float(statistics.median(b - a for a, b in itertools.pairwise(self.times)))

    @property
    def missing(self) -> int:
        return sum(value is None for value in self.values)


def _parse_time(text: str) -> float:
    """ISO-8601 (``Z`` or an offset; naive means UTC) or a plain number of seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)  # raises ValueError on anything else
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC).timestamp()
    return moment.timestamp()


def parse_trace(lines: Iterable[str], source: str = "<trace>") -> LoadTrace:
    """Parse the CSV text; ``source`` only labels error messages."""
    times: list[float] = []
    values: list[float | None] = []
    header_seen = False
    for line_number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if not header_seen:
            header = tuple(cell.strip().lower() for cell in line.split(","))
            if header != _HEADER:
                raise TraceError(
                    f"{source}:{line_number}: expected the header 'timestamp,value', got {line!r}"
                )
            header_seen = True
            continue
        cells = line.split(",")
        if len(cells) != 2:
            raise TraceError(
                f"{source}:{line_number}: expected 2 columns 'timestamp,value', got {line!r}"
            )
        time_text, value_text = cells[0].strip(), cells[1].strip()
        try:
            moment = _parse_time(time_text)
        except ValueError:
            raise TraceError(
                f"{source}:{line_number}: timestamp {time_text!r} is neither ISO-8601 nor seconds"
            ) from None
        if times and moment <= times[-1]:
            raise TraceError(
                f"{source}:{line_number}: timestamp {time_text!r} is not after the previous row"
            )
        value: float | None = None
        if value_text:
            try:
                value = float(value_text)
            except ValueError:
                raise TraceError(
                    f"{source}:{line_number}: value {value_text!r} is not a number"
                ) from None
            if not math.isfinite(value) or value < 0:
                raise TraceError(
                    f"{source}:{line_number}: value {value_text!r} must be a finite number >= 0"
                )
        times.append(moment)
        values.append(value)
    if not header_seen:
        raise TraceError(f"{source}: empty file, expected the header 'timestamp,value'")
    if not times:
        raise TraceError(f"{source}: no rows after the header")
    return LoadTrace(tuple(times), tuple(values), source)


def read_trace(path: str | Path) -> LoadTrace:
    """Read a trace file; ``.gz`` is decompressed. OS errors become ``TraceError`` too."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
                return parse_trace(handle, str(path))
        with path.open(encoding="utf-8", newline="") as handle:
            return parse_trace(handle, str(path))
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise TraceError(f"{path}: cannot read: {error}") from None
