"""Synthetic request-rate series from named load patterns.

The fixtures in ``testing/fixtures/scalability_data/sample_load_patterns.json`` store *parameters*,
not samples. That keeps them small enough to read. It also lets a test check a property against the
parameter that causes it, for example "the peak sits at the shift boundary".

``generate`` is pure and deterministic. Its only randomness is multiplicative noise drawn from
``random.Random(seed)``, so one pattern always gives the same series, on every run.

Time convention: ``t = 0`` is local midnight at the plant, and a Monday for ``weekly``. Step ``i``
holds the rate at the *start* of its interval, ``t = i * step_seconds``, the same convention as the
real traces in the team's ``data/load-traces``.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar, Literal, TypeAlias, assert_never

__all__ = [
    "DAY_SECONDS",
    "KINDS",
    "SHIFT_SECONDS",
    "WEEK_SECONDS",
    "FlashCrowd",
    "LoadPattern",
    "NightBatch",
    "PatternParams",
    "Ramp",
    "ShiftChangeSpike",
    "ThreeShiftDay",
    "Weekly",
    "generate",
    "load_patterns",
    "pattern_from_dict",
]

DAY_SECONDS = 86_400
WEEK_SECONDS = 7 * DAY_SECONDS
SHIFT_SECONDS = 8 * 3_600  # three shifts a day
_WEEKEND_DAYS = frozenset({5, 6})  # Saturday, Sunday when day 0 is a Monday

Kind: TypeAlias = Literal[
    "three_shift_day", "weekly", "shift_change_spike", "night_batch", "ramp", "flash_crowd"
]


def _check(field: str, value: float, *, low: float = 0.0, high: float = math.inf) -> None:
    """Refuse a value outside [low, high], naming the field. Every range rule goes through here."""
    if not math.isfinite(value):
        raise ValueError(f"field {field!r} must be a finite number, got {value!r}")
    if value < low or value > high:
        bound = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ValueError(f"field {field!r} must be {bound}, got {value!r}")


def _check_positive(field: str, value: float) -> None:
    """Refuse zero as well as negatives, for values that would divide or never advance."""
    _check(field, value)
    if value == 0:
        raise ValueError(f"field {field!r} must be > 0, got {value!r}")


# --- kind-specific parameters ----------------------------------------------------------------
# Each kind is its own frozen dataclass, so a mistyped or missing parameter is a type error in
# code and a named ValueError from JSON, never a silent default.


@dataclass(frozen=True, slots=True)
class ThreeShiftDay:
    """Three 8-h shifts with their own levels, and a break dip at the same offset in each shift."""

    kind: ClassVar[Kind] = "three_shift_day"
    first_shift_start_seconds: int  # time of day the first shift starts (21600 = 06:00)
    shift_levels: tuple[float, float, float]  # multiples of base_rps, in shift order
    break_offset_seconds: int  # from the start of each shift
    break_duration_seconds: int
    break_factor: float  # multiplier during the break

    def __post_init__(self) -> None:
        _check("first_shift_start_seconds", self.first_shift_start_seconds, high=DAY_SECONDS - 1)
        if len(self.shift_levels) != 3:
            raise ValueError(f"field 'shift_levels' must hold 3 levels, got {self.shift_levels!r}")
        for level in self.shift_levels:
            _check("shift_levels", level)
        _check("break_offset_seconds", self.break_offset_seconds)
        _check("break_duration_seconds", self.break_duration_seconds)
        _check(
            "break_duration_seconds",
            self.break_offset_seconds + self.break_duration_seconds,
            high=SHIFT_SECONDS,
        )
        _check("break_factor", self.break_factor)


@dataclass(frozen=True, slots=True)
class Weekly:
    """A diurnal cosine on weekdays, scaled down by ``weekend_factor`` on Saturday and Sunday."""

    kind: ClassVar[Kind] = "weekly"
    daily_amplitude: float  # relative swing around the daily mean; <= 1 keeps it non-negative
    peak_seconds: int  # time of day of the daily peak
    weekend_factor: float  # weekend level as a multiple of the weekday level

    def __post_init__(self) -> None:
        _check("daily_amplitude", self.daily_amplitude, high=1.0)
        _check("peak_seconds", self.peak_seconds, high=DAY_SECONDS - 1)
        _check("weekend_factor", self.weekend_factor)


@dataclass(frozen=True, slots=True)
class ShiftChangeSpike:
    """A Gaussian burst at every shift boundary (log-ins, hand-over reports, queued orders)."""

    kind: ClassVar[Kind] = "shift_change_spike"
    shift_seconds: int
    first_change_seconds: int  # one boundary; the others repeat every shift_seconds
    spike_factor: float  # peak rate as a multiple of base_rps
    spike_width_seconds: int  # standard deviation of the burst

    def __post_init__(self) -> None:
        _check_positive("shift_seconds", self.shift_seconds)
        _check("first_change_seconds", self.first_change_seconds)
        _check("spike_factor", self.spike_factor, low=1.0)
        _check_positive("spike_width_seconds", self.spike_width_seconds)


@dataclass(frozen=True, slots=True)
class NightBatch:
    """A daily plateau (a batch job) with linear edges. The window may wrap past midnight."""

    kind: ClassVar[Kind] = "night_batch"
    batch_start_seconds: int  # time of day
    batch_duration_seconds: int
    batch_factor: float  # plateau rate as a multiple of base_rps
    ramp_seconds: int  # length of each linear edge, inside the window

    def __post_init__(self) -> None:
        _check("batch_start_seconds", self.batch_start_seconds, high=DAY_SECONDS - 1)
        _check_positive("batch_duration_seconds", self.batch_duration_seconds)
        _check("batch_duration_seconds", self.batch_duration_seconds, high=DAY_SECONDS)
        _check("batch_factor", self.batch_factor)
        _check("ramp_seconds", self.ramp_seconds, high=self.batch_duration_seconds / 2)


@dataclass(frozen=True, slots=True)
class Ramp:
    """Flat, then a linear climb to ``target_factor`` x base, then flat at the new level."""

    kind: ClassVar[Kind] = "ramp"
    hold_seconds: int
    ramp_seconds: int  # 0 makes it a step
    target_factor: float

    def __post_init__(self) -> None:
        _check("hold_seconds", self.hold_seconds)
        _check("ramp_seconds", self.ramp_seconds)
        _check("target_factor", self.target_factor)


@dataclass(frozen=True, slots=True)
class FlashCrowd:
    """A sudden linear rise to ``peak_factor`` x base, then exponential decay back to base."""

    kind: ClassVar[Kind] = "flash_crowd"
    onset_seconds: int
    rise_seconds: int
    peak_factor: float
    decay_seconds: int  # e-folding time of the excess over base

    def __post_init__(self) -> None:
        _check("onset_seconds", self.onset_seconds)
        _check("rise_seconds", self.rise_seconds)
        _check("peak_factor", self.peak_factor, low=1.0)
        _check_positive("decay_seconds", self.decay_seconds)


PatternParams: TypeAlias = (
    ThreeShiftDay | Weekly | ShiftChangeSpike | NightBatch | Ramp | FlashCrowd
)

_PARAM_TYPES: dict[str, type[PatternParams]] = {
    cls.kind: cls for cls in (ThreeShiftDay, Weekly, ShiftChangeSpike, NightBatch, Ramp, FlashCrowd)
}
KINDS: frozenset[str] = frozenset(_PARAM_TYPES)


@dataclass(frozen=True, slots=True)
class LoadPattern:
    """One named pattern. ``kind`` is derived from ``params``, so the two can never disagree."""

    name: str
    description: str
    step_seconds: int
    duration_seconds: int
    base_rps: float
    params: PatternParams
    noise: float = 0.0  # relative standard deviation of multiplicative Gaussian noise
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("load pattern: field 'name' must not be empty")
        try:
            _check_positive("step_seconds", self.step_seconds)
            _check("duration_seconds", self.duration_seconds, low=self.step_seconds)
            _check("base_rps", self.base_rps)
            _check("noise", self.noise)
            _check("seed", self.seed)
        except ValueError as error:
            raise ValueError(f"load pattern {self.name!r}: {error}") from None

    @property
    def kind(self) -> Kind:
        return self.params.kind

    @property
    def steps(self) -> int:
        return self.duration_seconds // self.step_seconds


# --- shapes: multiplier of base_rps at time t, before noise ------------------------------------


def _three_shift_day(p: ThreeShiftDay, t: int) -> float:
    since_first = (t - p.first_shift_start_seconds) % DAY_SECONDS
    shift, into_shift = divmod(since_first, SHIFT_SECONDS)
    level = p.shift_levels[shift]
    in_break = (
        p.break_offset_seconds <= into_shift < p.break_offset_seconds + p.break_duration_seconds
    )
    return level * p.break_factor if in_break else level


def _weekly(p: Weekly, t: int) -> float:
    day, time_of_day = divmod(t, DAY_SECONDS)
    phase = 2.0 * math.pi * (time_of_day - p.peak_seconds) / DAY_SECONDS
    diurnal = 1.0 + p.daily_amplitude * math.cos(phase)
    return diurnal * (p.weekend_factor if day % 7 in _WEEKEND_DAYS else 1.0)


def _shift_change_spike(p: ShiftChangeSpike, t: int) -> float:
    offset = (t - p.first_change_seconds) % p.shift_seconds
    distance = min(offset, p.shift_seconds - offset)  # to the nearest boundary, either side
    return 1.0 + (p.spike_factor - 1.0) * math.exp(-0.5 * (distance / p.spike_width_seconds) ** 2)


def _night_batch(p: NightBatch, t: int) -> float:
    into_window = (t % DAY_SECONDS - p.batch_start_seconds) % DAY_SECONDS
    if into_window >= p.batch_duration_seconds:
        return 1.0
    edge = 1.0
    if p.ramp_seconds > 0:
        edge = min(1.0, into_window / p.ramp_seconds)
        edge = min(edge, (p.batch_duration_seconds - into_window) / p.ramp_seconds)
    return 1.0 + (p.batch_factor - 1.0) * edge


def _ramp(p: Ramp, t: int) -> float:
    if t <= p.hold_seconds:
        return 1.0
    if p.ramp_seconds == 0 or t >= p.hold_seconds + p.ramp_seconds:
        return p.target_factor
    return 1.0 + (p.target_factor - 1.0) * (t - p.hold_seconds) / p.ramp_seconds


def _flash_crowd(p: FlashCrowd, t: int) -> float:
    since_onset = t - p.onset_seconds
    if since_onset < 0:
        return 1.0
    if since_onset < p.rise_seconds:
        return 1.0 + (p.peak_factor - 1.0) * since_onset / p.rise_seconds
    decayed = math.exp(-(since_onset - p.rise_seconds) / p.decay_seconds)
    return 1.0 + (p.peak_factor - 1.0) * decayed


def _multiplier(params: PatternParams, t: int) -> float:
    match params:
        case ThreeShiftDay():
            return _three_shift_day(params, t)
        case Weekly():
            return _weekly(params, t)
        case ShiftChangeSpike():
            return _shift_change_spike(params, t)
        case NightBatch():
            return _night_batch(params, t)
        case Ramp():
            return _ramp(params, t)
        case FlashCrowd():
            return _flash_crowd(params, t)
        case _:
            assert_never(params)


def generate(pattern: LoadPattern) -> list[float]:
    """Return the request rate per step: ``duration_seconds // step_seconds`` values, all >= 0.

    Noise is multiplicative (``1 + noise * N(0, 1)``), so it scales with the level and a quiet
    night stays quiet. It is clipped at zero, because a negative request rate means nothing to a
    scaler.
    """
    rng = random.Random(pattern.seed)
    series: list[float] = []
    for step in range(pattern.steps):
        value = pattern.base_rps * _multiplier(pattern.params, step * pattern.step_seconds)
        if pattern.noise > 0:
            value *= 1.0 + pattern.noise * rng.gauss(0.0, 1.0)
        series.append(max(0.0, value))
    return series


# --- loading -------------------------------------------------------------------------------------

_COMMON_FIELDS = frozenset(
    {"name", "description", "kind", "step_seconds", "duration_seconds", "base_rps", "noise", "seed"}
)


class _Entry:
    """Typed reads from one JSON entry. JSON's ``true`` is refused where a number is expected."""

    def __init__(self, raw: Mapping[str, object]) -> None:
        self._raw = raw

    def _get(self, field: str) -> object:
        if field not in self._raw:
            raise ValueError(f"field {field!r} is missing")
        return self._raw[field]

    def text(self, field: str) -> str:
        value = self._get(field)
        if not isinstance(value, str):
            raise ValueError(f"field {field!r} must be a string, got {value!r}")
        return value

    def integer(self, field: str, default: int | None = None) -> int:
        if default is not None and field not in self._raw:
            return default
        value = self._get(field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"field {field!r} must be an integer, got {value!r}")
        return value

    def number(self, field: str, default: float | None = None) -> float:
        if default is not None and field not in self._raw:
            return default
        return self._as_number(field, self._get(field))

    def levels(self, field: str) -> tuple[float, float, float]:
        value = self._get(field)
        if not isinstance(value, list) or len(value) != 3:
            raise ValueError(f"field {field!r} must be a list of 3 numbers, got {value!r}")
        first, second, third = (self._as_number(field, item) for item in value)
        return (first, second, third)

    @staticmethod
    def _as_number(field: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"field {field!r} must be a number, got {value!r}")
        return float(value)


def _params(kind: str, entry: _Entry) -> PatternParams:
    if kind == "three_shift_day":
        return ThreeShiftDay(
            first_shift_start_seconds=entry.integer("first_shift_start_seconds"),
            shift_levels=entry.levels("shift_levels"),
            break_offset_seconds=entry.integer("break_offset_seconds"),
            break_duration_seconds=entry.integer("break_duration_seconds"),
            break_factor=entry.number("break_factor"),
        )
    if kind == "weekly":
        return Weekly(
            daily_amplitude=entry.number("daily_amplitude"),
            peak_seconds=entry.integer("peak_seconds"),
            weekend_factor=entry.number("weekend_factor"),
        )
    if kind == "shift_change_spike":
        return ShiftChangeSpike(
            shift_seconds=entry.integer("shift_seconds"),
            first_change_seconds=entry.integer("first_change_seconds"),
            spike_factor=entry.number("spike_factor"),
            spike_width_seconds=entry.integer("spike_width_seconds"),
        )
    if kind == "night_batch":
        return NightBatch(
            batch_start_seconds=entry.integer("batch_start_seconds"),
            batch_duration_seconds=entry.integer("batch_duration_seconds"),
            batch_factor=entry.number("batch_factor"),
            ramp_seconds=entry.integer("ramp_seconds"),
        )
    if kind == "ramp":
        return Ramp(
            hold_seconds=entry.integer("hold_seconds"),
            ramp_seconds=entry.integer("ramp_seconds"),
            target_factor=entry.number("target_factor"),
        )
    if kind == "flash_crowd":
        return FlashCrowd(
            onset_seconds=entry.integer("onset_seconds"),
            rise_seconds=entry.integer("rise_seconds"),
            peak_factor=entry.number("peak_factor"),
            decay_seconds=entry.integer("decay_seconds"),
        )
    raise ValueError(f"field 'kind' must be one of {sorted(KINDS)}, got {kind!r}")


def pattern_from_dict(raw: Mapping[str, object], where: str = "entry") -> LoadPattern:
    """Build one pattern from its JSON object. Errors name the pattern (or ``where``) and the field.

    Unknown fields are refused rather than ignored. A misspelt parameter would otherwise be
    silently dropped, and the shape would differ from what its author meant.
    """
    name = raw.get("name")
    label = repr(name) if isinstance(name, str) and name else where
    entry = _Entry(raw)
    try:
        name = entry.text("name")
        if not name:
            raise ValueError("field 'name' must not be empty")
        kind = entry.text("kind")
        params = _params(kind, entry)
        allowed = _COMMON_FIELDS | {field.name for field in fields(params)}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValueError(f"field {unknown[0]!r} is not a parameter of kind {kind!r}")
        description = entry.text("description")
        step_seconds = entry.integer("step_seconds")
        duration_seconds = entry.integer("duration_seconds")
        base_rps = entry.number("base_rps")
        noise = entry.number("noise", default=0.0)
        seed = entry.integer("seed", default=0)
    except ValueError as error:
        raise ValueError(f"load pattern {label}: {error}") from None
    # LoadPattern checks the common ranges itself, and its errors already carry the name.
    return LoadPattern(
        name=name,
        description=description,
        step_seconds=step_seconds,
        duration_seconds=duration_seconds,
        base_rps=base_rps,
        params=params,
        noise=noise,
        seed=seed,
    )


def load_patterns(path: str | os.PathLike[str]) -> dict[str, LoadPattern]:
    """Read a JSON list of patterns into a dict keyed by name; refuse duplicate names."""
    with open(path, encoding="utf-8") as file:
        raw: object = json.load(file)
    if not isinstance(raw, list):
        raise ValueError(f"{os.fspath(path)}: expected a JSON list of load patterns")
    patterns: dict[str, LoadPattern] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"load pattern #{index}: expected a JSON object, got {item!r}")
        pattern = pattern_from_dict(item, where=f"#{index}")
        if pattern.name in patterns:
            raise ValueError(f"load pattern {pattern.name!r}: field 'name' is a duplicate")
        patterns[pattern.name] = pattern
    return patterns
