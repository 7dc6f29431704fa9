"""Slow-start factors against Envoy's round_robin_lb_test.cc slow-start tests and
docs/root/intro/arch_overview/upstream/load_balancing/slow_start.rst (envoyproxy/envoy).

Factor = ``max(min_weight_percent, (max(t, 1 ms) / window) ** (1 / aggression))`` inside the
window, 1 outside it; Envoy counts whole milliseconds.
"""

from __future__ import annotations

import pytest

from controller.engines.balancing.slow_start import (
    SlowStartSettings,
    slow_start_factor,
    slow_start_weight,
)


@pytest.mark.parametrize(
    ("age", "settings", "expected"),
    [
        # SlowStartNoWait: "max(12 / 60, 0.1) = 0.2" and "20 / 60 == 0.33".
        pytest.param(12, SlowStartSettings(60), 0.2, id="SlowStartNoWait-12s-of-60s"),
        pytest.param(20, SlowStartSettings(60), 20 / 60, id="SlowStartNoWait-20s-of-60s"),
        # SlowStartWithActiveHC: "max(6/10, 0.1) = 0.6" and "max(5/10, 0.1) = 0.5".
        pytest.param(6, SlowStartSettings(10), 0.6, id="SlowStartWithActiveHC-6s-of-10s"),
        pytest.param(5, SlowStartSettings(10), 0.5, id="SlowStartWithActiveHC-5s-of-10s"),
        # Aggression 1.5 at 9 s of 10 s: 0.9 ** (1 / 1.5) = 0.9322.
        pytest.param(9, SlowStartSettings(10, 1.5), 0.9 ** (2 / 3), id="aggression-1.5-9-of-10"),
        # Aggression 2 at 6 s of 60 s: sqrt(0.1) = 0.3162.
        pytest.param(6, SlowStartSettings(60, 2.0), 0.1**0.5, id="aggression-2-6-of-60"),
        # min_weight_percent 35 % beats 12/60 = 0.2.
        pytest.param(12, SlowStartSettings(60, 1.0, 35.0), 0.35, id="min-weight-35pct"),
        # Just turned healthy: max(0 ms, 1 ms) / window is tiny, the 10 % floor applies.
        pytest.param(0, SlowStartSettings(60), 0.1, id="just-healthy-floor-10pct"),
        # Envoy truncates to milliseconds: 11.9999 s is 11999 ms.
        pytest.param(11.9999, SlowStartSettings(60), 11999 / 60000, id="truncates-to-ms"),
        # in_healthy_state_duration < window applies slow start; at the window it is over.
        pytest.param(60, SlowStartSettings(60), 1.0, id="end-of-window"),
        pytest.param(3600, SlowStartSettings(60), 1.0, id="long-after-window"),
        pytest.param(1, SlowStartSettings(0), 1.0, id="window-0-disables"),
        pytest.param(None, SlowStartSettings(60), 1.0, id="no-age-means-not-new"),
        pytest.param(5, None, 1.0, id="slow-start-off"),
        # Invalid runtime aggression falls back to 1.0 (applySlowStartFactor).
        pytest.param(30, SlowStartSettings(60, 0.0), 0.5, id="aggression-0-falls-back-linear"),
        pytest.param(
            30, SlowStartSettings(60, float("nan")), 0.5, id="aggression-nan-falls-back-linear"
        ),
    ],
)
def test_slow_start_factor(
    age: float | None, settings: SlowStartSettings | None, expected: float
) -> None:
    assert slow_start_factor(age, settings) == pytest.approx(expected, rel=1e-12)


def test_slow_start_weight_scales_the_endpoint_weight() -> None:
    # SlowStartNoWait: the host 12 s into a 60 s window weighs 0.2 against a warm host's 1.
    assert slow_start_weight(1, 12, SlowStartSettings(60)) == pytest.approx(0.2)
    assert slow_start_weight(1, None, SlowStartSettings(60)) == 1.0
    assert slow_start_weight(100, 30, SlowStartSettings(60)) == pytest.approx(50.0)
