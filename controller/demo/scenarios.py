"""The demo's stories: a named scenario becomes a timeline of offered rates and fault events.

Pure: nothing here reads the clock or starts anything. The shapes come from the fixture load
patterns (``testing/fixtures/scalability_data/sample_load_patterns.json``), replayed in
compressed time (``speed`` simulated seconds per wall second) and scaled so the peak is what one
laptop can serve. Faults are placed at fractions of the run, so a shorter or faster run still
tells the whole story.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from shared.load_patterns import LoadPattern, generate

FIXTURE_PATTERNS = (
    Path(__file__).resolve().parents[2]
    / "testing"
    / "fixtures"
    / "scalability_data"
    / "sample_load_patterns.json"
)
DEFAULT_SCENARIO = "shift-change"
DEFAULT_PEAK_RPS = 150.0

FaultKind = Literal["slow_replica", "cpu_burner"]


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault from ``start`` to ``end``, as fractions of the run (0..1)."""

    kind: FaultKind
    start: float
    end: float
    target: str  # the node it is attributed to


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    story: str
    pattern: str  # the fixture pattern giving the shape
    window_seconds: float  # simulated seconds the story needs (sets the default speed)
    centre_seconds: float | None = None  # pattern time the window centres on; None: its start
    steady: bool = False  # a constant rate at ``peak_fraction`` of the peak, not the shape
    peak_fraction: float = 1.0
    faults: tuple[Fault, ...] = ()


SCENARIOS: Mapping[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            name="shift-change",
            story=(
                "06:00 shift change at the MES gateway: log-ins and hand-over reports burst to "
                "5x for a few minutes, then settle. Replicas should follow the spike up and down."
            ),
            pattern="shift-change-spike",
            window_seconds=1800,
            centre_seconds=21600,
        ),
        Scenario(
            name="slow-replica",
            story=(
                "Steady load; a third of the way in, one replica (on line-node-a) gets into "
                "trouble: it answers slowly and fails half its requests. Peak-EWMA steers around "
                "it, the dataplane retries elsewhere and outlier detection ejects it; it heals "
                "near the end."
            ),
            pattern="shift-change-spike",
            window_seconds=3600,
            steady=True,
            peak_fraction=0.4,
            faults=(Fault("slow_replica", 1 / 3, 5 / 6, "line-node-a"),),
        ),
        Scenario(
            name="noisy-neighbour",
            story=(
                "Steady load; a third of the way in, a CPU burner lands on line-node-b and "
                "saturates the CPU. The agents report the bottleneck and latency rises; the "
                "request rate does not, so the autoscaler rightly holds."
            ),
            pattern="shift-change-spike",
            window_seconds=3600,
            steady=True,
            peak_fraction=0.4,
            faults=(Fault("cpu_burner", 1 / 3, 2 / 3, "line-node-b"),),
        ),
    )
}


class UnknownScenarioError(ValueError):
    """Not a scenario nor a fixture pattern; ``choices`` lists every accepted name."""

    def __init__(self, name: str, choices: list[str]) -> None:
        super().__init__(f"unknown pattern {name!r}; choose one of: {', '.join(choices)}")
        self.choices = choices


def scenario_names(patterns: Mapping[str, LoadPattern]) -> list[str]:
    return [*SCENARIOS, *sorted(name for name in patterns if name not in SCENARIOS)]


def resolve_scenario(name: str, patterns: Mapping[str, LoadPattern]) -> Scenario:
    """A named story, or a fixture pattern replayed whole (load shape only)."""
    if name in SCENARIOS:
        return SCENARIOS[name]
    if name in patterns:
        pattern = patterns[name]
        return Scenario(
            name=name,
            story=f"{pattern.description} (the whole pattern, compressed)",
            pattern=name,
            window_seconds=pattern.duration_seconds,
        )
    raise UnknownScenarioError(name, scenario_names(patterns))


def default_speed(scenario: Scenario, wall_seconds: float) -> float:
    """Simulated seconds per wall second so the story fits the run."""
    return scenario.window_seconds / wall_seconds


@dataclass(frozen=True, slots=True)
class FaultEvent:
    kind: FaultKind
    start_wall: float
    end_wall: float
    target: str

    def active(self, wall: float) -> bool:
        return self.start_wall <= wall < self.end_wall


@dataclass(frozen=True, slots=True)
class Timeline:
    """Offered rate (req/s) at each wall second of the run, and when faults start and end."""

    scenario: str
    speed: float
    wall_seconds: float
    start_sim: float  # pattern time at wall 0
    step_sim: float  # simulated seconds between two rates
    rates: tuple[float, ...]
    faults: tuple[FaultEvent, ...] = ()

    @property
    def simulated_seconds(self) -> float:
        return self.wall_seconds * self.speed

    @property
    def peak_rate(self) -> float:
        return max(self.rates, default=0.0)

    def sim_at(self, wall: float) -> float:
        return self.start_sim + wall * self.speed

    def rate_at(self, wall: float) -> float:
        """Linear between the pattern's steps; the last rate holds after the end."""
        if not self.rates:
            return 0.0
        position = max(0.0, wall * self.speed / self.step_sim)
        index = int(position)
        if index >= len(self.rates) - 1:
            return self.rates[-1]
        fraction = position - index
        return self.rates[index] * (1 - fraction) + self.rates[index + 1] * fraction

    def active_faults(self, wall: float) -> list[FaultEvent]:
        return [fault for fault in self.faults if fault.active(wall)]


def build_timeline(
    scenario: Scenario,
    pattern: LoadPattern,
    wall_seconds: float,
    speed: float,
    peak_rps: float = DEFAULT_PEAK_RPS,
) -> Timeline:
    """The run's timeline: ``wall_seconds x speed`` simulated seconds of the pattern, around
    the scenario's centre, scaled so the highest rate is ``peak_rps``."""
    if wall_seconds <= 0 or speed <= 0 or peak_rps <= 0:
        raise ValueError("wall_seconds, speed and peak_rps must be positive")
    run_sim = wall_seconds * speed
    start = 0.0
    if scenario.centre_seconds is not None:
        start = max(0.0, scenario.centre_seconds - run_sim / 2)
    series = generate(pattern)
    step = float(pattern.step_seconds)
    count = max(2, math.ceil(run_sim / step) + 1)
    raw = [series[int((start + i * step) // step) % len(series)] for i in range(count)]
    if scenario.steady:
        rates = tuple(peak_rps * scenario.peak_fraction for _ in raw)
    else:
        highest = max(raw) or 1.0
        rates = tuple(value * peak_rps * scenario.peak_fraction / highest for value in raw)
    faults = tuple(
        FaultEvent(fault.kind, fault.start * wall_seconds, fault.end * wall_seconds, fault.target)
        for fault in scenario.faults
    )
    return Timeline(
        scenario=scenario.name,
        speed=speed,
        wall_seconds=wall_seconds,
        start_sim=start,
        step_sim=step,
        rates=rates,
        faults=faults,
    )


def timeline_to_json(timeline: Timeline) -> dict[str, Any]:
    """The timeline as plain JSON, for the load generator's own process."""
    return {
        "scenario": timeline.scenario,
        "speed": timeline.speed,
        "wall_seconds": timeline.wall_seconds,
        "start_sim": timeline.start_sim,
        "step_sim": timeline.step_sim,
        "rates": list(timeline.rates),
        "faults": [
            {
                "kind": fault.kind,
                "start_wall": fault.start_wall,
                "end_wall": fault.end_wall,
                "target": fault.target,
            }
            for fault in timeline.faults
        ],
    }


def timeline_from_json(data: dict[str, Any]) -> Timeline:
    return Timeline(
        scenario=str(data["scenario"]),
        speed=float(data["speed"]),
        wall_seconds=float(data["wall_seconds"]),
        start_sim=float(data["start_sim"]),
        step_sim=float(data["step_sim"]),
        rates=tuple(float(rate) for rate in data["rates"]),
        faults=tuple(
            FaultEvent(
                cast(FaultKind, fault["kind"]),
                float(fault["start_wall"]),
                float(fault["end_wall"]),
                str(fault["target"]),
            )
            for fault in data["faults"]
        ),
    )
