"""Decision log: append and query, pagination, rotation bounds, restart, corrupt lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.decision_log import DecisionLog
from shared.wire import Actuation, Decision, DecisionReason


@dataclass
class FakeClock:
    now: float = 5000.0

    def __call__(self) -> float:
        return self.now


def decision(
    n: int,
    kind: str = "scale",
    target: str = "local/web",
    reason: str = "cpu_above_target",
    decided_at: float | None = None,
    message: str = "",
) -> Decision:
    return Decision(
        id=f"d{n}",
        kind=kind,  # type: ignore[arg-type]
        target=target,
        from_value=float(n),
        to_value=float(n + 1),
        reason=DecisionReason(code=reason, message=message or f"decision {n}"),
        decided_at=decided_at if decided_at is not None else 1000.0 + n,
        decide_seconds=0.001,
        actuation=Actuation(state="pending"),
    )


# Ten decisions: d0..d9 at 1000..1009; kinds, targets and reasons vary with n.
MIXED = [
    decision(
        n,
        kind="scale" if n % 2 == 0 else "resize",
        target="local/web" if n < 5 else "local/api",
        reason="cpu_above_target" if n % 3 == 0 else "within_tolerance",
    )
    for n in range(10)
]


def ids(decisions: list[Decision]) -> list[str]:
    return [d.id for d in decisions]


def disk_lines(path: Path) -> list[bytes]:
    lines: list[bytes] = []
    for segment in (path.with_name(path.name + ".1"), path):
        if segment.exists():
            lines.extend(segment.read_bytes().splitlines())
    return lines


def disk_bytes(path: Path) -> int:
    return sum(
        segment.stat().st_size
        for segment in (path.with_name(path.name + ".1"), path)
        if segment.exists()
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({}, ["d9", "d8", "d7", "d6", "d5", "d4", "d3", "d2", "d1", "d0"], id="all"),
        pytest.param({"kind": "resize"}, ["d9", "d7", "d5", "d3", "d1"], id="kind"),
        pytest.param({"target": "local/web"}, ["d4", "d3", "d2", "d1", "d0"], id="target"),
        pytest.param({"reason": "cpu_above_target"}, ["d9", "d6", "d3", "d0"], id="reason-code"),
        pytest.param({"since": 1007.0}, ["d9", "d8", "d7"], id="since-inclusive"),
        pytest.param({"until": 1002.0}, ["d1", "d0"], id="until-exclusive"),
        pytest.param({"since": 1003.0, "until": 1006.0}, ["d5", "d4", "d3"], id="window"),
        pytest.param(
            {"kind": "scale", "target": "local/api", "reason": "within_tolerance"},
            ["d8"],
            id="combined",
        ),
        pytest.param({"kind": "route"}, [], id="no-match"),
        pytest.param({"limit": 3}, ["d9", "d8", "d7"], id="limit"),
    ],
)
def test_query_filters_newest_first(
    clock: FakeClock, filters: dict[str, Any], expected: list[str]
) -> None:
    log = DecisionLog(None, clock=clock)
    for d in MIXED:
        log.append(d)
    page, _ = log.query(**filters)
    assert ids(page) == expected


@pytest.mark.parametrize(
    ("filters", "limit", "pages"),
    [
        pytest.param(
            {}, 4, [["d9", "d8", "d7", "d6"], ["d5", "d4", "d3", "d2"], ["d1", "d0"]], id="uneven"
        ),
        pytest.param(
            {},
            5,
            [["d9", "d8", "d7", "d6", "d5"], ["d4", "d3", "d2", "d1", "d0"]],
            id="exact-no-empty-last-page",
        ),
        pytest.param({"kind": "resize"}, 2, [["d9", "d7"], ["d5", "d3"], ["d1"]], id="filtered"),
        pytest.param({}, 50, [[f"d{n}" for n in range(9, -1, -1)]], id="one-page"),
    ],
)
def test_pagination_walks_every_match_once(
    clock: FakeClock, filters: dict[str, Any], limit: int, pages: list[list[str]]
) -> None:
    log = DecisionLog(None, clock=clock)
    for d in MIXED:
        log.append(d)
    seen: list[list[str]] = []
    cursor: str | None = None
    while True:
        page, cursor = log.query(**filters, limit=limit, cursor=cursor)
        seen.append(ids(page))
        if cursor is None:
            break
    assert seen == pages


def test_cursor_is_stable_while_new_decisions_arrive(clock: FakeClock) -> None:
    log = DecisionLog(None, clock=clock)
    for n in range(6):
        log.append(decision(n))
    first, cursor = log.query(limit=3)
    log.append(decision(6))
    log.append(decision(7))
    second, end = log.query(limit=3, cursor=cursor)
    assert (ids(first), ids(second), end) == (["d5", "d4", "d3"], ["d2", "d1", "d0"], None)
    newest, _ = log.query(limit=1)
    assert ids(newest) == ["d7"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"limit": 0}, "limit", id="zero-limit"),
        pytest.param({"cursor": "abc"}, "cursor", id="non-numeric-cursor"),
        pytest.param({"cursor": "-1"}, "cursor", id="negative-cursor"),
        pytest.param({"cursor": "²"}, "cursor", id="unicode-digit-cursor"),
    ],
)
def test_bad_query_arguments_are_refused(
    clock: FakeClock, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        DecisionLog(None, clock=clock).query(**kwargs)


def test_index_keeps_only_the_newest(clock: FakeClock) -> None:
    log = DecisionLog(None, clock=clock, index_size=3)
    for n in range(10):
        log.append(decision(n))
    page, cursor = log.query()
    assert (ids(page), cursor, len(log)) == (["d9", "d8", "d7"], None, 3)
    assert log.get("d0") is None


def test_appending_an_existing_id_replaces_it_in_place(clock: FakeClock) -> None:
    log = DecisionLog(None, clock=clock)
    for n in range(3):
        log.append(decision(n))
    log.append(decision(1, message="revised"))
    page, _ = log.query()
    assert ids(page) == ["d2", "d1", "d0"]
    assert page[1].reason.message == "revised"


@pytest.mark.parametrize(
    ("actuation", "expected"),
    [
        pytest.param(
            Actuation(state="done"), Actuation(state="done", finished_at=5000.0), id="stamped"
        ),
        pytest.param(
            Actuation(state="failed", finished_at=42.0, error="422"),
            Actuation(state="failed", finished_at=42.0, error="422"),
            id="given-time-kept",
        ),
        pytest.param(Actuation(state="pending"), Actuation(state="pending"), id="pending"),
    ],
)
def test_update_actuation(
    tmp_path: Path, clock: FakeClock, actuation: Actuation, expected: Actuation
) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, clock=clock)
    log.append(decision(1))
    log.append(decision(2))
    updated = log.update_actuation("d1", actuation)
    assert updated is not None
    assert updated.actuation == expected
    stored = log.get("d1")
    assert stored is not None
    assert stored.actuation == expected
    # Read back: the update wins, and d1 keeps its place (before d2).
    reloaded = DecisionLog(path, clock=clock)
    page, _ = reloaded.query()
    assert ids(page) == ["d2", "d1"]
    assert page[1].actuation == expected
    assert reloaded.stats.loaded == 2


def test_update_actuation_of_an_unknown_id_is_none(clock: FakeClock) -> None:
    assert DecisionLog(None, clock=clock).update_actuation("nope", Actuation(state="done")) is None


def test_every_record_is_on_disk_as_soon_as_it_is_appended(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, clock=clock, fsync=True)
    log.append(decision(1))
    lines = disk_lines(path)
    assert len(lines) == 1
    assert json.loads(lines[0])["id"] == "d1"


@pytest.mark.parametrize(
    ("max_records", "max_bytes", "count"),
    [
        pytest.param(10, 10**9, 95, id="record-bound"),
        pytest.param(10_000, 4000, 95, id="byte-bound"),
        pytest.param(3, 10**9, 20, id="odd-record-bound"),
        pytest.param(10, 10**9, 4, id="under-bounds"),
    ],
)
def test_rotation_keeps_disk_within_bounds_and_the_newest(
    tmp_path: Path, clock: FakeClock, max_records: int, max_bytes: int, count: int
) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, clock=clock, max_records=max_records, max_bytes=max_bytes)
    for n in range(count):
        log.append(decision(n))
        lines = disk_lines(path)
        assert len(lines) <= max_records
        assert disk_bytes(path) <= max_bytes
    on_disk = [json.loads(line)["id"] for line in disk_lines(path)]
    # Oldest first on disk, a contiguous run ending at the newest, at least half the bound.
    assert on_disk == [f"d{n}" for n in range(count - len(on_disk), count)]
    line_bytes = max(len(line) + 1 for line in disk_lines(path))
    assert len(on_disk) >= min(count, max_records // 2, (max_bytes // 2) // line_bytes)
    stats = log.stats
    assert (stats.disk_records, stats.disk_bytes) == (len(on_disk), disk_bytes(path))


def test_restart_reloads_the_tail_and_keeps_appending(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state" / "decisions.jsonl"
    log = DecisionLog(path, clock=clock, max_records=20)
    for n in range(25):
        log.append(decision(n))
    reloaded = DecisionLog(path, clock=clock, max_records=20)
    page, _ = reloaded.query(limit=1000)
    on_disk = len(disk_lines(path))
    assert ids(page) == [f"d{n}" for n in range(24, 24 - on_disk, -1)]
    assert reloaded.stats.loaded == on_disk
    reloaded.append(decision(25))
    assert ids(DecisionLog(path, clock=clock, max_records=20).query(limit=1)[0]) == ["d25"]


def test_restart_with_an_index_smaller_than_the_disk(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, clock=clock)
    for n in range(10):
        log.append(decision(n))
    reloaded = DecisionLog(path, clock=clock, index_size=4)
    assert ids(reloaded.query()[0]) == ["d9", "d8", "d7", "d6"]


def _valid_line(n: int) -> bytes:
    return decision(n).model_dump_json().encode() + b"\n"


@pytest.mark.parametrize(
    ("content", "loaded", "corrupt", "truncated", "repaired"),
    [
        pytest.param(
            _valid_line(1) + _valid_line(2) + _valid_line(3)[:40],
            ["d2", "d1"],
            0,
            1,
            _valid_line(1) + _valid_line(2),
            id="torn-last-line-cut",
        ),
        pytest.param(
            _valid_line(1) + _valid_line(2).rstrip(b"\n"),
            ["d2", "d1"],
            0,
            0,
            _valid_line(1) + _valid_line(2),
            id="whole-last-line-missing-newline-completed",
        ),
        pytest.param(
            _valid_line(1) + b"{not json\n" + _valid_line(2) + b"\xff\xfe\n",
            ["d2", "d1"],
            2,
            0,
            None,
            id="garbage-lines-skipped",
        ),
        pytest.param(
            _valid_line(1) + b'{"id": "x", "kind": "scale"}\n' + b"[]\n" + b"\n",
            ["d1"],
            3,
            0,
            None,
            id="schema-invalid-and-blank-skipped",
        ),
        pytest.param(
            _valid_line(1).replace(b'"schema_version":1', b'"schema_version":2'),
            [],
            1,
            0,
            None,
            id="future-schema-skipped",
        ),
        pytest.param(b"", [], 0, 0, None, id="empty-file"),
        pytest.param(b"\x00" * 64, [], 0, 1, b"", id="only-a-torn-line"),
    ],
)
def test_corrupt_and_torn_lines_are_counted_and_skipped(
    tmp_path: Path,
    clock: FakeClock,
    content: bytes,
    loaded: list[str],
    corrupt: int,
    truncated: int,
    repaired: bytes | None,
) -> None:
    path = tmp_path / "decisions.jsonl"
    path.write_bytes(content)
    log = DecisionLog(path, clock=clock)
    assert ids(log.query()[0]) == loaded
    assert (log.stats.corrupt_lines, log.stats.truncated_lines) == (corrupt, truncated)
    if repaired is not None:
        assert path.read_bytes() == repaired
    # The next record starts on a line of its own and reads back.
    log.append(decision(7))
    assert ids(DecisionLog(path, clock=clock).query(limit=1)[0]) == ["d7"]


def test_corrupt_previous_segment_is_read_but_never_rewritten(
    tmp_path: Path, clock: FakeClock
) -> None:
    path = tmp_path / "decisions.jsonl"
    previous = tmp_path / "decisions.jsonl.1"
    content = _valid_line(1) + b"garbage\n" + _valid_line(2)[:30]
    previous.write_bytes(content)
    path.write_bytes(_valid_line(3))
    log = DecisionLog(path, clock=clock)
    assert ids(log.query()[0]) == ["d3", "d1"]
    assert (log.stats.corrupt_lines, log.stats.truncated_lines) == (1, 1)
    assert previous.read_bytes() == content


def test_lowered_bounds_are_enforced_on_start(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, clock=clock, max_records=100)
    for n in range(100):
        log.append(decision(n))
    smaller = DecisionLog(path, clock=clock, max_records=10)
    assert len(disk_lines(path)) <= 10
    smaller.append(decision(100))
    assert len(disk_lines(path)) <= 10
    assert json.loads(disk_lines(path)[-1])["id"] == "d100"


def test_oversized_record_stays_in_memory_only(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, clock=clock, max_bytes=1000)
    log.append(decision(1, message="x" * 600))
    assert log.stats.oversized == 1
    assert log.get("d1") is not None
    assert disk_lines(path) == []


def test_a_failing_disk_is_counted_not_raised(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path, clock=clock)
    path.mkdir()  # appending to a directory fails
    log.append(decision(1))
    log.append(decision(2))
    assert log.stats.write_errors == 2
    assert ids(log.query()[0]) == ["d2", "d1"]


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_records": 1}, id="records"),
        pytest.param({"max_bytes": 1}, id="bytes"),
        pytest.param({"index_size": 0}, id="index"),
    ],
)
def test_bad_bounds_are_refused(clock: FakeClock, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="at least"):
        DecisionLog(None, clock=clock, **kwargs)
