"""Load-pattern generator: each fixture pattern has the shape it claims, deterministically.

The shape checks run on the fixture's own series, noise included. A property that held only
without noise would say little about the series a test or benchmark actually replays.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from statistics import fmean
from typing import Any

import pytest

from shared.load_patterns import (
    DAY_SECONDS,
    KINDS,
    SHIFT_SECONDS,
    WEEK_SECONDS,
    FlashCrowd,
    LoadPattern,
    NightBatch,
    Ramp,
    ShiftChangeSpike,
    ThreeShiftDay,
    Weekly,
    generate,
    load_patterns,
    pattern_from_dict,
)

FIXTURES = Path(__file__).resolve().parents[2] / "testing/fixtures/scalability_data"
PATTERNS = load_patterns(FIXTURES / "sample_load_patterns.json")


def window_mean(pattern: LoadPattern, series: list[float], start: int, length: int) -> float:
    """Mean over [start, start + length) in time of day. Windows may wrap past midnight."""
    step = pattern.step_seconds
    return fmean(series[((start + k) % DAY_SECONDS) // step] for k in range(0, length, step))


# --- the property each pattern claims --------------------------------------------------------


def night_shift_lowest_with_break_dips(pattern: LoadPattern, series: list[float]) -> None:
    p = pattern.params
    assert isinstance(p, ThreeShiftDay)
    assert pattern.duration_seconds == DAY_SECONDS
    starts = [(p.first_shift_start_seconds + i * SHIFT_SECONDS) % DAY_SECONDS for i in range(3)]

    def shift_of(time_of_day: int) -> int:
        return ((time_of_day - p.first_shift_start_seconds) % DAY_SECONDS) // SHIFT_SECONDS

    means = [window_mean(pattern, series, start, SHIFT_SECONDS) for start in starts]
    night, day = shift_of(0), shift_of(12 * 3_600)  # the shifts that cover midnight and noon
    assert means[night] < means[day]
    assert means[night] == min(means)
    for start in starts:
        break_start = start + p.break_offset_seconds
        before = window_mean(pattern, series, break_start - 3_600, 3_600)
        during = window_mean(pattern, series, break_start, p.break_duration_seconds)
        assert during / before == pytest.approx(p.break_factor, abs=0.05)


def weekend_below_weekdays_by_factor(pattern: LoadPattern, series: list[float]) -> None:
    p = pattern.params
    assert isinstance(p, Weekly)
    assert pattern.duration_seconds >= WEEK_SECONDS
    per_day = DAY_SECONDS // pattern.step_seconds
    days = [series[d * per_day : (d + 1) * per_day] for d in range(7)]
    weekdays = fmean(v for day in days[:5] for v in day)
    weekend = fmean(v for day in days[5:] for v in day)
    assert weekend / weekdays == pytest.approx(p.weekend_factor, rel=0.03)


def peak_at_each_shift_boundary(pattern: LoadPattern, series: list[float]) -> None:
    p = pattern.params
    assert isinstance(p, ShiftChangeSpike)
    step, half = pattern.step_seconds, p.shift_seconds // 2
    boundaries = [
        b
        for k in range(-1, pattern.duration_seconds // p.shift_seconds + 2)
        if half
        <= (b := p.first_change_seconds + k * p.shift_seconds)
        < pattern.duration_seconds - half
    ]
    assert boundaries
    for boundary in boundaries:
        lo, hi = (boundary - half) // step, (boundary + half) // step
        peak = max(range(lo, hi), key=series.__getitem__)
        assert abs(peak * step - boundary) <= p.spike_width_seconds
        assert series[peak] >= pattern.base_rps * (1 + 0.8 * (p.spike_factor - 1))


def plateau_inside_night_window(pattern: LoadPattern, series: list[float]) -> None:
    p = pattern.params
    assert isinstance(p, NightBatch)
    plateau, outside = [], []
    for i, value in enumerate(series):
        into = (i * pattern.step_seconds - p.batch_start_seconds) % DAY_SECONDS
        if p.ramp_seconds <= into <= p.batch_duration_seconds - p.ramp_seconds:
            plateau.append(value)
        elif into >= p.batch_duration_seconds:
            outside.append(value)
    assert fmean(plateau) == pytest.approx(pattern.base_rps * p.batch_factor, rel=0.02)
    assert fmean(outside) == pytest.approx(pattern.base_rps, rel=0.02)
    assert min(plateau) > max(outside)


def ramp_ends_at_target_factor(pattern: LoadPattern, series: list[float]) -> None:
    p = pattern.params
    assert isinstance(p, Ramp)
    assert pattern.duration_seconds > p.hold_seconds + p.ramp_seconds
    k = min(p.hold_seconds, pattern.duration_seconds - p.hold_seconds - p.ramp_seconds)
    k //= pattern.step_seconds
    first, last = fmean(series[:k]), fmean(series[-k:])
    assert last / first == pytest.approx(p.target_factor, rel=0.03)


def flash_crowd_decays_below_half_within_decay_time(
    pattern: LoadPattern, series: list[float]
) -> None:
    p = pattern.params
    assert isinstance(p, FlashCrowd)
    step, base = pattern.step_seconds, pattern.base_rps
    peak = max(range(len(series)), key=series.__getitem__)
    assert p.onset_seconds <= peak * step <= p.onset_seconds + p.rise_seconds + 2 * step
    assert fmean(series[: p.onset_seconds // step]) == pytest.approx(base, rel=0.02)
    half_excess = (series[peak] - base) / 2
    below = next(i for i in range(peak, len(series)) if series[i] - base < half_excess)
    assert (below - peak) * step <= p.decay_seconds


PROPERTY_CHECKS: dict[str, Callable[[LoadPattern, list[float]], None]] = {
    "three_shift_day": night_shift_lowest_with_break_dips,
    "weekly": weekend_below_weekdays_by_factor,
    "shift_change_spike": peak_at_each_shift_boundary,
    "night_batch": plateau_inside_night_window,
    "ramp": ramp_ends_at_target_factor,
    "flash_crowd": flash_crowd_decays_below_half_within_decay_time,
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("three-shift-day", id="three-shift-night-lower-and-break-dip"),
        pytest.param("work-week", id="weekend-mean-below-weekdays-by-factor"),
        pytest.param("shift-change-spike", id="spike-peaks-at-shift-boundary"),
        pytest.param("night-batch", id="night-batch-plateau-inside-window"),
        pytest.param("ramp-to-10x", id="ramp-ends-at-10x"),
        pytest.param("flash-crowd", id="flash-crowd-peaks-then-halves-within-decay-time"),
    ],
)
def test_fixture_pattern_has_the_shape_it_claims(name: str) -> None:
    pattern = PATTERNS[name]
    series = generate(pattern)
    assert len(series) == pattern.duration_seconds // pattern.step_seconds
    PROPERTY_CHECKS[pattern.kind](pattern, series)


def test_fixture_covers_every_generator_kind() -> None:
    assert {pattern.kind for pattern in PATTERNS.values()} == KINDS


# --- determinism, length and non-negativity --------------------------------------------------


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_same_pattern_gives_the_same_series(name: str) -> None:
    reloaded = load_patterns(FIXTURES / "sample_load_patterns.json")[name]
    assert generate(PATTERNS[name]) == generate(reloaded)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_a_different_seed_gives_a_different_series(name: str) -> None:
    pattern = PATTERNS[name]
    assert pattern.noise > 0
    other = dataclasses.replace(pattern, seed=pattern.seed + 1)
    assert generate(other) != generate(pattern)


def test_seed_is_irrelevant_without_noise() -> None:
    quiet = dataclasses.replace(PATTERNS["three-shift-day"], noise=0.0)
    assert generate(quiet) == generate(dataclasses.replace(quiet, seed=99))


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_fixture_series_is_never_negative(name: str) -> None:
    assert min(generate(PATTERNS[name])) >= 0.0


def test_heavy_noise_is_clipped_at_zero() -> None:
    wild = dataclasses.replace(PATTERNS["flash-crowd"], noise=3.0)
    series = generate(wild)
    assert min(series) == 0.0  # clipping happened, and nothing went below it


@pytest.mark.parametrize(
    ("duration", "step", "length"),
    [
        pytest.param(86_400, 60, 1_440, id="whole-day-of-minutes"),
        pytest.param(100, 30, 3, id="partial-last-step-is-dropped"),
        pytest.param(30, 30, 1, id="single-step"),
    ],
)
def test_series_length_is_duration_over_step(duration: int, step: int, length: int) -> None:
    pattern = dataclasses.replace(
        PATTERNS["ramp-to-10x"], duration_seconds=duration, step_seconds=step
    )
    assert len(generate(pattern)) == length


# --- validation names the pattern and the field ----------------------------------------------


def ramp_entry(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": "p",
        "description": "test ramp",
        "kind": "ramp",
        "step_seconds": 60,
        "duration_seconds": 3_600,
        "base_rps": 10,
        "hold_seconds": 600,
        "ramp_seconds": 1_200,
        "target_factor": 10,
    }
    for key, value in changes.items():
        if value is ...:
            del entry[key]
        else:
            entry[key] = value
    return entry


def of_kind(kind: str, **params: Any) -> dict[str, Any]:
    entry = ramp_entry(kind=kind, hold_seconds=..., ramp_seconds=..., target_factor=...)
    entry.update(params)
    return entry


SHIFT_DAY = {
    "first_shift_start_seconds": 21_600,
    "shift_levels": [1, 0.8, 0.3],
    "break_offset_seconds": 14_400,
    "break_duration_seconds": 1_800,
    "break_factor": 0.4,
}


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        pytest.param(ramp_entry(kind="sawtooth"), "kind", id="unknown-kind"),
        pytest.param(ramp_entry(kind=...), "kind", id="missing-kind"),
        pytest.param(ramp_entry(base_rps=...), "base_rps", id="missing-base-rps"),
        pytest.param(ramp_entry(base_rps=-1), "base_rps", id="negative-base-rps"),
        pytest.param(ramp_entry(base_rps="10"), "base_rps", id="base-rps-as-string"),
        pytest.param(ramp_entry(step_seconds=-60), "step_seconds", id="negative-step"),
        pytest.param(ramp_entry(step_seconds=0), "step_seconds", id="zero-step"),
        pytest.param(ramp_entry(step_seconds=1.5), "step_seconds", id="fractional-step"),
        pytest.param(ramp_entry(duration_seconds=30), "duration_seconds", id="shorter-than-step"),
        pytest.param(ramp_entry(ramp_seconds=-5), "ramp_seconds", id="negative-ramp"),
        pytest.param(ramp_entry(target_factor=...), "target_factor", id="missing-kind-param"),
        pytest.param(ramp_entry(noise=-0.1), "noise", id="negative-noise"),
        pytest.param(ramp_entry(seed=-1), "seed", id="negative-seed"),
        pytest.param(ramp_entry(seed=True), "seed", id="seed-as-bool"),
        pytest.param(ramp_entry(ramp_secs=60), "ramp_secs", id="misspelt-parameter"),
        pytest.param(ramp_entry(decay_seconds=60), "decay_seconds", id="parameter-of-other-kind"),
        pytest.param(
            of_kind("three_shift_day", **{**SHIFT_DAY, "shift_levels": [1, 0.5]}),
            "shift_levels",
            id="two-shift-levels",
        ),
        pytest.param(
            of_kind("three_shift_day", **{**SHIFT_DAY, "break_duration_seconds": 20_000}),
            "break_duration_seconds",
            id="break-runs-past-shift-end",
        ),
        pytest.param(
            of_kind("weekly", daily_amplitude=1.5, peak_seconds=0, weekend_factor=0.3),
            "daily_amplitude",
            id="amplitude-would-go-negative",
        ),
        pytest.param(
            of_kind(
                "shift_change_spike",
                shift_seconds=28_800,
                first_change_seconds=0,
                spike_factor=0.5,
                spike_width_seconds=60,
            ),
            "spike_factor",
            id="spike-below-base",
        ),
        pytest.param(
            of_kind(
                "night_batch",
                batch_start_seconds=0,
                batch_duration_seconds=600,
                batch_factor=5,
                ramp_seconds=400,
            ),
            "ramp_seconds",
            id="batch-edges-overlap",
        ),
        pytest.param(
            of_kind("flash_crowd", onset_seconds=0, rise_seconds=0, peak_factor=5, decay_seconds=0),
            "decay_seconds",
            id="zero-decay",
        ),
    ],
)
def test_invalid_pattern_is_refused_naming_pattern_and_field(
    entry: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=rf"load pattern 'p'.*'{re.escape(field)}'"):
        pattern_from_dict(entry)


def write(tmp_path: Path, entries: object) -> Path:
    path = tmp_path / "patterns.json"
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        pytest.param(
            [ramp_entry(), ramp_entry()], r"load pattern 'p'.*'name'", id="duplicate-name"
        ),
        pytest.param(
            [ramp_entry(), ramp_entry(name=...)], r"load pattern #1.*'name'", id="no-name"
        ),
        pytest.param([ramp_entry(name="")], r"load pattern #0.*'name'", id="empty-name"),
        pytest.param([ramp_entry(), 3], r"load pattern #1", id="entry-not-an-object"),
        pytest.param({"p": ramp_entry()}, r"expected a JSON list", id="top-level-not-a-list"),
    ],
)
def test_invalid_file_is_refused_naming_the_entry(
    tmp_path: Path, entries: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_patterns(write(tmp_path, entries))


def test_valid_file_loads_by_name(tmp_path: Path) -> None:
    patterns = load_patterns(write(tmp_path, [ramp_entry(), ramp_entry(name="q", seed=7)]))
    assert sorted(patterns) == ["p", "q"]
    assert patterns["q"].kind == "ramp"
    assert (patterns["q"].seed, patterns["p"].seed, patterns["p"].noise) == (7, 0, 0.0)
