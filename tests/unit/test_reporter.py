from __future__ import annotations

import pytest

from agent.reporter import MAX_BACKOFF_SECONDS, next_report_delay


@pytest.mark.parametrize(
    ("interval", "failures", "expected"),
    [
        pytest.param(5.0, 0, 5.0, id="healthy-controller-keeps-interval"),
        pytest.param(5.0, 1, 10.0, id="first-failure-doubles"),
        pytest.param(5.0, 3, 40.0, id="third-failure-eight-times"),
        pytest.param(5.0, 50, MAX_BACKOFF_SECONDS, id="backoff-capped-at-a-minute"),
        pytest.param(120.0, 2, 120.0, id="never-shorter-than-interval"),
    ],
)
def test_next_report_delay(interval: float, failures: int, expected: float) -> None:
    assert next_report_delay(interval, failures) == expected
