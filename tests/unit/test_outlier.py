"""Outlier detection sweeps against Envoy's outlier_detection_impl.cc and outlier.rst
(envoyproxy/envoy source/common/upstream/, docs/root/intro/arch_overview/upstream/), with the
defaults of api/envoy/config/cluster/v3/outlier_detection.proto.

Expected values are worked by hand from the code: ejection for ``min(base * n, max)``, the
cap ``100 * (ejected + 1) / hosts <= max_ejection_percent``, success-rate threshold
``mean - 1.9 * population stdev``.
"""

from __future__ import annotations

import pytest

from controller.engines.balancing.outlier import (
    HostOutlierState,
    HostStats,
    OutlierSettings,
    success_rate_ejection_threshold,
    sweep,
)


def _hosts(count: int, **overrides: HostStats) -> list[HostStats]:
    return [overrides.get(f"h{i}", HostStats(f"h{i}")) for i in range(count)]


def test_five_consecutive_5xx_eject_for_30_seconds() -> None:
    states, events = sweep({}, _hosts(10, h0=HostStats("h0", 5, 5, 0, 5)), now=100.0)
    assert states["h0"].ejected
    assert (states["h0"].num_ejections, states["h0"].eject_time_multiplier) == (1, 1)
    assert [(e.address, e.action, e.reason) for e in events] == [
        ("h0", "ejected", "consecutive_5xx")
    ]
    assert "ejected for 30 s" in events[0].message


def test_four_consecutive_5xx_do_nothing() -> None:
    states, events = sweep({}, _hosts(10, h0=HostStats("h0", 4, 4, 0, 4)), now=0.0)
    assert not states["h0"].ejected
    assert events == ()


def test_gateway_failures_are_detected_but_not_enforced_by_default() -> None:
    # enforcing_consecutive_gateway_failure defaults to 0 %; the same run of five 503s is also
    # five consecutive 5xx, which is enforced at 100 %. Envoy charges the gateway counter first.
    stats = HostStats("h0", 5, 5, 5, 5, 5)
    states, events = sweep({}, _hosts(10, h0=stats), now=0.0)
    assert [(e.action, e.reason) for e in events] == [
        ("not_enforced", "consecutive_gateway_failure"),
        ("ejected", "consecutive_5xx"),
    ]
    assert states["h0"].ejected


@pytest.mark.parametrize(
    ("hosts", "settings", "action"),
    [
        # 1 of 10 = 10 % <= 10 %: allowed.
        pytest.param(10, OutlierSettings(), "ejected", id="10-hosts-one-ejectable"),
        # 1 of 9 = 11.1 % > 10 %, but one host is always ejectable (the documented default).
        pytest.param(9, OutlierSettings(), "ejected", id="9-hosts-one-always-ejectable"),
        pytest.param(3, OutlierSettings(), "ejected", id="3-hosts-one-always-ejectable"),
        # Current Envoy code's default: the switch off, so 1 of 9 is refused.
        pytest.param(
            9, OutlierSettings(always_eject_one_host=False), "overflow", id="envoy-code-default"
        ),
    ],
)
def test_max_ejection_percent(hosts: int, settings: OutlierSettings, action: str) -> None:
    states, events = sweep({}, _hosts(hosts, h0=HostStats("h0", 5, 5, 0, 5)), 0.0, settings)
    assert [e.action for e in events] == [action]
    assert states["h0"].ejected is (action == "ejected")


def test_cap_counts_hosts_already_ejected() -> None:
    # 20 hosts, 10 %: two may be out. A third is refused even with always_eject_one_host.
    failing = {f"h{i}": HostStats(f"h{i}", 5, 5, 0, 5) for i in range(3)}
    settings = OutlierSettings(always_eject_one_host=True)
    states, events = sweep({}, _hosts(20, **failing), 0.0, settings)
    assert [e.action for e in events] == ["ejected", "ejected", "overflow"]
    assert sum(s.ejected for s in states.values()) == 2


def test_unejection_after_base_time_and_growing_backoff() -> None:
    bad = _hosts(10, h0=HostStats("h0", 5, 5, 0, 5))
    quiet = _hosts(10)
    states, _ = sweep({}, bad, now=0.0)
    states, events = sweep(states, quiet, now=29.9)
    assert states["h0"].ejected
    assert events == ()
    states, events = sweep(states, quiet, now=30.0)
    assert not states["h0"].ejected
    assert [(e.action, e.reason) for e in events] == [("unejected", "ejection_expired")]
    # Ejected again straight away: multiplier 2 -> 60 s.
    states, events = sweep(states, bad, now=30.0)
    assert states["h0"].eject_time_multiplier == 2
    assert "ejected for 60 s" in events[0].message
    states, _ = sweep(states, quiet, now=89.0)
    assert states["h0"].ejected
    states, _ = sweep(states, quiet, now=90.0)
    assert not states["h0"].ejected


def test_ejection_time_is_capped_at_max_ejection_time() -> None:
    # The multiplier grows while multiplier * 30 < 300 + 30, i.e. up to 11; the time is
    # min(30 * 11, 300) = 300 s.
    state = HostOutlierState("h0", eject_time_multiplier=10, num_ejections=10)
    states, events = sweep({"h0": state}, _hosts(10, h0=HostStats("h0", 5, 5, 0, 5)), 0.0)
    assert states["h0"].eject_time_multiplier == 11
    assert "ejected for 300 s" in events[0].message
    state = HostOutlierState("h0", eject_time_multiplier=11, num_ejections=11)
    states, _ = sweep({"h0": state}, _hosts(10, h0=HostStats("h0", 5, 5, 0, 5)), 0.0)
    assert states["h0"].eject_time_multiplier == 11


def test_multiplier_decays_one_step_per_healthy_interval() -> None:
    state = HostOutlierState("h0", eject_time_multiplier=3, num_ejections=3, last_unejection_at=0)
    states, _ = sweep({"h0": state}, _hosts(10), now=5.0)  # back less than one interval
    assert states["h0"].eject_time_multiplier == 3
    states, _ = sweep(states, _hosts(10), now=10.0)
    assert states["h0"].eject_time_multiplier == 2
    states, _ = sweep(states, _hosts(10), now=20.0)
    states, _ = sweep(states, _hosts(10), now=30.0)
    states, _ = sweep(states, _hosts(10), now=40.0)
    assert states["h0"].eject_time_multiplier == 0


def test_success_rate_threshold_matches_envoy_comment() -> None:
    # successRateEjectionThreshold comment: {50, 100, 100, 100, 100} -> mean 90, stdev 20,
    # threshold 90 - 1.9 * 20 = 52.
    mean, threshold = success_rate_ejection_threshold([50, 100, 100, 100, 100], 1.9)
    assert mean == pytest.approx(90.0)
    assert threshold == pytest.approx(52.0)


def test_success_rate_ejects_the_outlier() -> None:
    # 10 hosts x 100 requests, h0 at 50 %: mean 95, variance (45^2 + 9 * 5^2) / 10 = 225,
    # stdev 15, threshold 95 - 28.5 = 66.5 -> h0 is out, the others (100 %) stay.
    stats = [HostStats(f"h{i}", 100, 50 if i == 0 else 0) for i in range(10)]
    _, events = sweep({}, stats, now=0.0)
    assert [(e.address, e.action, e.reason) for e in events] == [("h0", "ejected", "success_rate")]
    assert "threshold 66.50 %" in events[0].message


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        pytest.param(
            [HostStats(f"h{i}", 99, 50 if i == 0 else 0) for i in range(10)],
            "below success_rate_request_volume 100",
            id="request-volume-below-100",
        ),
        pytest.param(
            [HostStats(f"h{i}", 100, 50 if i == 0 else 0) for i in range(4)],
            "fewer than success_rate_minimum_hosts 5",
            id="four-hosts",
        ),
    ],
)
def test_success_rate_needs_volume_and_hosts(stats: list[HostStats], reason: str) -> None:
    states, events = sweep({}, stats, now=0.0)
    assert events == (), reason
    assert not any(s.ejected for s in states.values())


def test_failure_percentage_is_off_by_default_and_ejects_when_enforced() -> None:
    # h0 fails 90 % of 60 requests: under success_rate_request_volume, over the failure
    # percentage volume 50, and 90 >= 85.
    stats = [HostStats(f"h{i}", 60, 54 if i == 0 else 0) for i in range(10)]
    _, events = sweep({}, stats, now=0.0)
    assert [(e.action, e.reason) for e in events] == [("not_enforced", "failure_percentage")]
    states, events = sweep({}, stats, 0.0, OutlierSettings(enforcing_failure_percentage=100))
    assert [(e.action, e.reason) for e in events] == [("ejected", "failure_percentage")]
    assert states["h0"].ejected


def test_an_ejected_host_is_not_ejected_again() -> None:
    states, _ = sweep({}, _hosts(10, h0=HostStats("h0", 5, 5, 0, 5)), now=0.0)
    states, events = sweep(states, _hosts(10, h0=HostStats("h0", 5, 5, 0, 5)), now=10.0)
    assert events == ()
    assert states["h0"].num_ejections == 1


def test_hosts_that_left_are_dropped_and_duplicates_refused() -> None:
    states, _ = sweep({"gone": HostOutlierState("gone", ejected=True)}, _hosts(3), now=0.0)
    assert set(states) == {"h0", "h1", "h2"}
    with pytest.raises(ValueError, match="duplicate"):
        sweep({}, [HostStats("a"), HostStats("a")], now=0.0)


def test_max_ejection_time_below_base_is_refused() -> None:
    with pytest.raises(ValueError, match="max_ejection_time"):
        OutlierSettings(base_ejection_seconds=60, max_ejection_seconds=30)
