"""The demo's scenarios: names resolve, timelines follow the fixture shapes, faults land where
the story puts them."""

from __future__ import annotations

import pytest

from controller.demo.scenarios import (
    DEFAULT_SCENARIO,
    FIXTURE_PATTERNS,
    SCENARIOS,
    UnknownScenarioError,
    build_timeline,
    default_speed,
    resolve_scenario,
    scenario_names,
)
from shared.load_patterns import LoadPattern, load_patterns


@pytest.fixture(scope="module")
def patterns() -> dict[str, LoadPattern]:
    return load_patterns(FIXTURE_PATTERNS)


def test_every_scenario_names_a_fixture_pattern(patterns: dict[str, LoadPattern]) -> None:
    assert DEFAULT_SCENARIO in SCENARIOS
    for scenario in SCENARIOS.values():
        assert scenario.pattern in patterns, scenario.name


def test_a_fixture_pattern_name_is_a_scenario_of_its_whole_shape(
    patterns: dict[str, LoadPattern],
) -> None:
    scenario = resolve_scenario("flash-crowd", patterns)
    assert (scenario.pattern, scenario.window_seconds, scenario.faults) == (
        "flash-crowd",
        patterns["flash-crowd"].duration_seconds,
        (),
    )


def test_an_unknown_name_lists_every_choice(patterns: dict[str, LoadPattern]) -> None:
    with pytest.raises(UnknownScenarioError) as raised:
        resolve_scenario("lunch-break", patterns)
    assert "lunch-break" in str(raised.value)
    assert raised.value.choices == scenario_names(patterns)
    for name in [*SCENARIOS, *patterns]:
        assert name in str(raised.value)


@pytest.mark.parametrize(
    ("wall_seconds", "expected_speed"), [(120.0, 15.0), (25.0, 72.0), (1800.0, 1.0)]
)
def test_default_speed_fits_the_story_into_the_run(
    patterns: dict[str, LoadPattern], wall_seconds: float, expected_speed: float
) -> None:
    assert default_speed(SCENARIOS["shift-change"], wall_seconds) == pytest.approx(expected_speed)


def test_shift_change_peaks_mid_run_at_the_asked_rate(patterns: dict[str, LoadPattern]) -> None:
    scenario = SCENARIOS["shift-change"]
    timeline = build_timeline(scenario, patterns[scenario.pattern], 120, 15, peak_rps=150)
    assert timeline.start_sim == 21600 - 900  # centred on the 06:00 boundary
    assert timeline.simulated_seconds == 1800
    assert timeline.peak_rate == pytest.approx(150)
    peak_wall = max(range(121), key=timeline.rate_at)
    assert 55 <= peak_wall <= 65  # the boundary is mid-run
    assert timeline.rate_at(0) < 150 / 4  # the spike is 5x the base


def test_rate_is_linear_between_steps_and_holds_after_the_end(
    patterns: dict[str, LoadPattern],
) -> None:
    scenario = SCENARIOS["shift-change"]
    timeline = build_timeline(scenario, patterns[scenario.pattern], 10, 3, peak_rps=100)
    # step 15 simulated s = 5 wall s at 3x
    middle = (timeline.rates[0] + timeline.rates[1]) / 2
    assert timeline.rate_at(2.5) == pytest.approx(middle)
    assert timeline.rate_at(1_000) == timeline.rates[-1]


@pytest.mark.parametrize(
    ("name", "kind", "starts_at", "ends_at"),
    [("slow-replica", "slow_replica", 20.0, 50.0), ("noisy-neighbour", "cpu_burner", 20.0, 40.0)],
)
def test_faults_land_at_their_fraction_of_the_run(
    patterns: dict[str, LoadPattern], name: str, kind: str, starts_at: float, ends_at: float
) -> None:
    scenario = SCENARIOS[name]
    timeline = build_timeline(scenario, patterns[scenario.pattern], 60, 10)
    (fault,) = timeline.faults
    assert (fault.kind, fault.start_wall, fault.end_wall) == (kind, starts_at, ends_at)
    assert timeline.active_faults(starts_at - 0.1) == []
    assert timeline.active_faults(starts_at) == [fault]
    assert timeline.active_faults(ends_at) == []


def test_steady_scenarios_offer_one_rate(patterns: dict[str, LoadPattern]) -> None:
    scenario = SCENARIOS["slow-replica"]
    timeline = build_timeline(scenario, patterns[scenario.pattern], 60, 10, peak_rps=100)
    assert set(timeline.rates) == {100 * scenario.peak_fraction}


@pytest.mark.parametrize(("wall", "speed", "peak"), [(0, 1, 1), (10, 0, 1), (10, 1, -5)])
def test_a_timeline_refuses_non_positive_inputs(
    patterns: dict[str, LoadPattern], wall: float, speed: float, peak: float
) -> None:
    scenario = SCENARIOS["shift-change"]
    with pytest.raises(ValueError, match="must be positive"):
        build_timeline(scenario, patterns[scenario.pattern], wall, speed, peak)
