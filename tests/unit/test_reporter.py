from __future__ import annotations

import pytest

from agent.reporter import MAX_BACKOFF_SECONDS, kinds_to_fetch, next_report_delay


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


@pytest.mark.parametrize(
    ("held", "answer", "expected"),
    [
        pytest.param(
            {"routing": 3, "tuning": 1},
            {"routing_version": 3, "tuning_version": 1},
            [],
            id="in-step",
        ),
        pytest.param(
            {"routing": 0, "tuning": 0},
            {"routing_version": 2, "tuning_version": 5},
            ["routing", "tuning"],
            id="restarted-agent",
        ),
        pytest.param(
            {"routing": 4, "tuning": 1},
            {"routing_version": 3, "tuning_version": 2},
            ["tuning"],
            id="only-newer-kind",
        ),
        pytest.param(
            {"routing": 0, "tuning": 0},
            {"routing_version": "9", "tuning_version": True},
            [],
            id="malformed-answer-ignored",
        ),
        pytest.param({"routing": 0, "tuning": 0}, {}, [], id="old-controller-without-versions"),
    ],
)
def test_kinds_to_fetch(
    held: dict[str, int], answer: dict[str, object], expected: list[str]
) -> None:
    assert kinds_to_fetch(held, answer) == expected  # type: ignore[arg-type]
