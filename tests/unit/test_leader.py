"""``decide_lease``: acquire, renew or wait, on constant inputs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kubernetes import client

from controller.orchestrators.leader import (
    LeaseAction,
    LeaseElector,
    LeaseRecord,
    decide_lease,
    lease_record,
)

ME = "controller-a"
OTHER = "controller-b"


def held(holder: str, renewed: float | None = 100.0, duration: int = 15) -> LeaseRecord:
    return LeaseRecord(holder=holder, lease_duration_seconds=duration, renew_time=renewed)


@pytest.mark.parametrize(
    ("lease", "now", "observed_at", "action", "reason"),
    [
        pytest.param(None, 100.0, None, "acquire", "no lease yet", id="absent"),
        pytest.param(held(ME), 100.0, None, "renew", "we hold", id="ours"),
        pytest.param(held(ME), 1000.0, None, "renew", "we hold", id="ours-even-if-expired"),
        pytest.param(held(""), 100.0, None, "acquire", "released", id="released"),
        pytest.param(held(OTHER), 110.0, None, "wait", "held by controller-b for 5.0s", id="held"),
        pytest.param(held(OTHER), 114.9, None, "wait", "for 0.1s more", id="just-before-expiry"),
        pytest.param(held(OTHER), 115.0, None, "acquire", "expired 0.0s ago", id="at-expiry"),
        pytest.param(held(OTHER), 120.0, None, "acquire", "expired 5.0s ago", id="expired"),
        pytest.param(
            held(OTHER, None), 100.0, None, "acquire", "never renewed", id="never-renewed"
        ),
        pytest.param(
            held(OTHER, duration=0), 109.0, None, "wait", "for 1.0s", id="own-duration-missing"
        ),
        pytest.param(
            held(OTHER, duration=0), 110.0, None, "acquire", "expired", id="default-duration"
        ),
        # Expiry counts from when we first saw the record, not from the holder's clock.
        pytest.param(held(OTHER, 0.0), 120.0, 110.0, "wait", "for 5.0s", id="skewed-holder-clock"),
        pytest.param(held(OTHER, 0.0), 125.0, 110.0, "acquire", "expired", id="observed-expiry"),
        pytest.param(held(OTHER, None), 120.0, 110.0, "wait", "for 5.0s", id="observed-no-renew"),
    ],
)
def test_decide_lease(
    lease: LeaseRecord | None,
    now: float,
    observed_at: float | None,
    action: LeaseAction,
    reason: str,
) -> None:
    decided, why = decide_lease(lease, ME, now, 10.0, observed_at=observed_at)
    assert decided == action
    assert reason in why


def test_lease_record_reads_a_v1_lease() -> None:
    at = datetime(2026, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="x", resource_version="42"),
        spec=client.V1LeaseSpec(
            holder_identity=OTHER,
            lease_duration_seconds=15,
            acquire_time=at,
            renew_time=at,
            lease_transitions=3,
        ),
    )
    assert lease_record(lease) == LeaseRecord(
        holder=OTHER,
        lease_duration_seconds=15,
        acquire_time=at.timestamp(),
        renew_time=at.timestamp(),
        transitions=3,
        resource_version="42",
    )
    assert lease_record(client.V1Lease(metadata=client.V1ObjectMeta(resource_version="1"))) == (
        LeaseRecord(holder="", resource_version="1")
    )


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"),
    [
        pytest.param(10, 10, 2, id="deadline-not-below-duration"),
        pytest.param(15, 2, 2, id="retry-not-below-deadline"),
        pytest.param(15, 10, 0, id="no-retry-period"),
    ],
)
def test_elector_refuses_inconsistent_timings(duration: int, deadline: float, retry: float) -> None:
    with pytest.raises(ValueError, match="retry_period_seconds"):
        LeaseElector(None, "ns", "lease", ME, duration, deadline, retry)
