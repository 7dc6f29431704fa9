"""The decision log: every ``Decision`` the engines make, bounded in memory and on disk.

On disk it is JSON lines, one complete ``Decision`` per line (readable with ``jq``), written
and flushed (and fsync'd unless told otherwise) per record. A change of actuation appends the
whole updated record again; when the log is read back, the last line of an id wins and the
record keeps the place of its first line.

Rotation keeps two segments, ``<path>`` (active) and ``<path>.1`` (previous): the active one
is rotated before it would exceed half of ``max_records`` lines or half of ``max_bytes``, so
the disk never holds more than the bounds and always the newest records. A record larger than
half of ``max_bytes`` stays in memory only (counted as ``oversized``).

On start the segments are read back, oldest first: blank, corrupt and schema-invalid lines are
counted and skipped, and a torn last line (a crash mid-write) is cut off the active segment.
Nothing read from disk makes the log fail to start.

Queries see the newest ``index_size`` records, newest first, with an opaque cursor that stays
valid while new records arrive (it is not meant to survive a restart). Time comes from the
injected clock; it stamps ``finished_at`` on a finished actuation that lacks one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.wire import Actuation, Decision, WireError, parse

log = logging.getLogger(__name__)

MAX_QUERY_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class DecisionLogStats:
    loaded: int  # records read back on start (after de-duplication by id)
    corrupt_lines: int  # lines on disk that were not a valid Decision (skipped)
    truncated_lines: int  # torn last lines cut off on start
    oversized: int  # records too large to write (kept in memory only)
    write_errors: int
    disk_records: int  # lines in both segments now
    disk_bytes: int
    indexed: int  # records answerable by ``query``


@dataclass(slots=True)
class _Entry:
    seq: int
    decision: Decision


@dataclass(frozen=True, slots=True)
class _Files:
    active: Path
    previous: Path


@dataclass(slots=True)
class _Segment:
    records: int = 0
    bytes: int = 0


class DecisionLog:
    """Append, update and query decisions; ``path=None`` keeps them in memory only."""

    def __init__(
        self,
        path: Path | None,
        *,
        clock: Callable[[], float],
        max_records: int = 20_000,
        max_bytes: int = 64 * 2**20,
        index_size: int = 5_000,
        fsync: bool = True,
    ) -> None:
        if max_records < 2:
            raise ValueError("max_records must be at least 2")
        if max_bytes < 2:
            raise ValueError("max_bytes must be at least 2")
        if index_size < 1:
            raise ValueError("index_size must be at least 1")
        self._files = _Files(path, path.with_name(path.name + ".1")) if path is not None else None
        self._clock = clock
        self._segment_records = max_records // 2
        self._segment_bytes = max_bytes // 2
        self._index_size = index_size
        self._fsync = fsync
        self._index: OrderedDict[str, _Entry] = OrderedDict()
        self._seq = 0
        self._active = _Segment()
        self._previous = _Segment()
        self._loaded = 0
        self._corrupt = 0
        self._truncated = 0
        self._oversized = 0
        self._write_errors = 0
        self._failing = False
        if self._files is not None:
            self._files.active.parent.mkdir(parents=True, exist_ok=True)
            self._load(self._files)

    # --- writing -----------------------------------------------------------------------------

    def append(self, decision: Decision) -> None:
        """Record a decision; an id already present is replaced in place. Never raises on
        I/O: a failed write is logged and counted, and the record stays queryable."""
        self._remember(decision)
        self._write(decision)

    def update_actuation(self, decision_id: str, actuation: Actuation) -> Decision | None:
        """Set a decision's actuation; None when the id is unknown (or no longer indexed).
        A finished actuation without ``finished_at`` is stamped with the clock."""
        entry = self._index.get(decision_id)
        if entry is None:
            return None
        if actuation.state != "pending" and actuation.finished_at is None:
            actuation = actuation.model_copy(update={"finished_at": self._clock()})
        updated = entry.decision.model_copy(update={"actuation": actuation})
        entry.decision = updated
        self._write(updated)
        return updated

    # --- reading -----------------------------------------------------------------------------

    def get(self, decision_id: str) -> Decision | None:
        entry = self._index.get(decision_id)
        return entry.decision if entry is not None else None

    def query(
        self,
        kind: str | None = None,
        target: str | None = None,
        reason: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Decision], str | None]:
        """Newest first. ``reason`` matches the reason code; ``since`` is inclusive and
        ``until`` exclusive on ``decided_at``. Returns the page and the cursor of the next
        page (None at the end). Raises ValueError on a bad limit or cursor."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        limit = min(limit, MAX_QUERY_LIMIT)
        before = _parse_cursor(cursor) if cursor is not None else None
        page: list[Decision] = []
        last_seq = 0
        for entry in reversed(self._index.values()):
            if before is not None and entry.seq >= before:
                continue
            decision = entry.decision
            if (
                (kind is not None and decision.kind != kind)
                or (target is not None and decision.target != target)
                or (reason is not None and decision.reason.code != reason)
                or (since is not None and decision.decided_at < since)
                or (until is not None and decision.decided_at >= until)
            ):
                continue
            if len(page) == limit:  # one more match exists: there is a next page
                return page, str(last_seq)
            page.append(decision)
            last_seq = entry.seq
        return page, None

    def __len__(self) -> int:
        return len(self._index)

    @property
    def stats(self) -> DecisionLogStats:
        return DecisionLogStats(
            loaded=self._loaded,
            corrupt_lines=self._corrupt,
            truncated_lines=self._truncated,
            oversized=self._oversized,
            write_errors=self._write_errors,
            disk_records=self._active.records + self._previous.records,
            disk_bytes=self._active.bytes + self._previous.bytes,
            indexed=len(self._index),
        )

    # --- internals ---------------------------------------------------------------------------

    def _remember(self, decision: Decision) -> None:
        entry = self._index.get(decision.id)
        if entry is not None:
            entry.decision = decision
            return
        self._seq += 1
        self._index[decision.id] = _Entry(self._seq, decision)
        while len(self._index) > self._index_size:
            self._index.popitem(last=False)

    def _write(self, decision: Decision) -> None:
        files = self._files
        if files is None:
            return
        line = decision.model_dump_json().encode() + b"\n"
        if len(line) > self._segment_bytes:
            self._oversized += 1
            log.warning(
                "decision %s is %d bytes, over half the log's byte bound: kept in memory only",
                decision.id,
                len(line),
            )
            return
        try:
            if (
                self._active.records >= self._segment_records
                or self._active.bytes + len(line) > self._segment_bytes
            ):
                self._rotate(files)
            self._append_line(files.active, line)
        except OSError:
            self._write_errors += 1
            if not self._failing:  # once per run of failures, not once per record
                log.exception("cannot write the decision log at %s", files.active)
            self._failing = True
            return
        self._failing = False
        self._active.records += 1
        self._active.bytes += len(line)

    def _append_line(self, path: Path, line: bytes) -> None:
        with path.open("ab") as file:
            try:
                file.write(line)
                file.flush()
                if self._fsync:
                    os.fsync(file.fileno())
            except OSError:
                # Cut a partial write off, so that the next record starts on its own line.
                with contextlib.suppress(OSError):
                    file.truncate(self._active.bytes)
                raise

    def _rotate(self, files: _Files) -> None:
        if files.active.exists():
            os.replace(files.active, files.previous)
            self._previous = self._active
        self._active = _Segment()
        if self._fsync:
            _fsync_directory(files.active.parent)

    def _load(self, files: _Files) -> None:
        self._previous = self._read_segment(files.previous, active=False)
        self._active = self._read_segment(files.active, active=True)
        self._loaded = len(self._index)
        if self._corrupt or self._truncated:
            log.warning(
                "decision log %s: skipped %d corrupt and %d torn lines",
                files.active,
                self._corrupt,
                self._truncated,
            )
        try:  # bounds lowered since the segments were written
            if (
                self._active.records > self._segment_records
                or self._active.bytes > self._segment_bytes
            ):
                self._rotate(files)
            if (
                self._previous.records > self._segment_records
                or self._previous.bytes > self._segment_bytes
            ):
                self._trim_previous(files.previous)
        except OSError:
            self._write_errors += 1
            log.exception("cannot enforce the decision log's bounds at %s", files.active)

    def _read_segment(self, path: Path, *, active: bool) -> _Segment:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return _Segment()
        except OSError:
            log.exception("cannot read the decision log segment %s", path)
            return _Segment()
        *lines, tail = data.split(b"\n")
        kept = len(data) - len(tail)
        if tail.strip():
            decision = _parse_line(tail)
            if decision is not None:  # a whole record that only lacks its newline
                lines.append(tail)
                if active:
                    self._complete_line(path)
                kept = len(data) + 1 if active else len(data)
            else:
                self._truncated += 1
                if active:
                    self._cut(path, kept)
        else:
            kept = len(data)
        for line in lines:
            decision = _parse_line(line)
            if decision is None:
                self._corrupt += 1
                continue
            self._remember(decision)
        return _Segment(records=len(lines), bytes=kept)

    def _complete_line(self, path: Path) -> None:
        try:
            with path.open("ab") as file:
                file.write(b"\n")
        except OSError:
            self._write_errors += 1
            log.exception("cannot repair the decision log segment %s", path)

    def _cut(self, path: Path, size: int) -> None:
        try:
            os.truncate(path, size)
        except OSError:
            self._write_errors += 1
            log.exception("cannot repair the decision log segment %s", path)

    def _trim_previous(self, previous: Path) -> None:
        """Keep the newest lines of the previous segment that fit its bounds."""
        lines = previous.read_bytes().splitlines(keepends=True)
        kept: list[bytes] = []
        size = 0
        for line in reversed(lines):
            if len(kept) >= self._segment_records or size + len(line) > self._segment_bytes:
                break
            kept.append(line)
            size += len(line)
        temporary = previous.with_name(previous.name + ".tmp")
        with temporary.open("wb") as file:
            file.writelines(reversed(kept))
            file.flush()
            if self._fsync:
                os.fsync(file.fileno())
        os.replace(temporary, previous)
        self._previous = _Segment(records=len(kept), bytes=size)


def _parse_line(line: bytes) -> Decision | None:
    if not line.strip():
        return None
    try:
        return parse(Decision, line)
    except WireError:
        return None


def _parse_cursor(cursor: str) -> int:
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
        raise ValueError(f"invalid cursor {cursor!r}")
    return int(cursor)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
