"""Zone-aware routing against Envoy's round_robin_lb_test.cc zone cases and the worked example
in load_balancer_impl.cc (envoyproxy/envoy, test/extensions/load_balancing_policies/round_robin/
and source/extensions/load_balancing_policies/common/).

Envoy's tests drive single requests with mocked random numbers; the expected shares here are
the fractions those draws converge to, computed by hand from Envoy's integer basis points:
``bp = 10000 * count // total``, ``local_percent_to_route = up_bp * 10000 // local_bp``,
residual ``max(0, up_bp - local_bp)``. Where a test mocks ``featureEnabled`` to true, we use
routingEnabledPct 100.
"""

from __future__ import annotations

import pytest

from controller.engines.balancing.zone_aware import (
    LocalityPercentages,
    ZoneAwareSettings,
    calculate_locality_percentages,
    zone_aware_routing,
)


def _approx(shares: dict[str, float]) -> dict[str, object]:
    return {zone: pytest.approx(share, abs=1e-12) for zone, share in shares.items()}


@pytest.mark.parametrize(
    ("local_zone", "callers", "upstream", "min_size", "mode", "local_bp", "expected"),
    [
        pytest.param(
            # A: 2L/1U, B: 2L/0U, C: 1L/3U, D: 1L/3U, E: 0L/1U. Local bp A 3333, up A 1250
            # -> 1250*10000//3333 = 3750 local; residual C 3750-1666 = 2084, D 2084, E 1250.
            "A",
            {"A": 2, "B": 2, "C": 1, "D": 1},
            {"A": 1, "C": 3, "D": 3, "E": 1},
            6,
            "locality_residual",
            3750,
            {
                "A": 0.375,
                "C": 0.625 * 2084 / 5418,
                "D": 0.625 * 2084 / 5418,
                "E": 0.625 * 1250 / 5418,
            },
            id="ZoneAwareResidualsMismatched",
        ),
        pytest.param(
            # Local B 5000 bp, upstream B 3333 -> 6666 local ("2/3 of the time": draw 6665 stays,
            # 6666 leaves); only C (3333 - 0) has residual.
            "B",
            {"B": 1, "A": 1},
            {"B": 1, "A": 1, "C": 1},
            3,
            "locality_residual",
            6666,
            {"B": 0.6666, "A": 0.0, "C": 0.3334},
            id="ZoneAwareDifferentZoneSize",
        ),
        pytest.param(
            # Local A 3333 bp, upstream A 2000 -> 2000*10000//3333 = 6000; B and C 4000-3333=667.
            "A",
            {"A": 1, "B": 1, "C": 1},
            {"A": 1, "B": 2, "C": 2},
            5,
            "locality_residual",
            6000,
            {"A": 0.6, "B": 0.2, "C": 0.2},
            id="ZoneAwareRoutingSmallZone",
        ),
        pytest.param(
            # Caller in B, which has no upstream: nothing local, A has no residual (5000-5000),
            # so all of it goes to C.
            "B",
            {"A": 1, "B": 1},
            {"A": 1, "C": 1},
            2,
            "locality_residual",
            0,
            {"A": 0.0, "C": 1.0},
            id="ZoneAwareZonesMismatched-zone-B",
        ),
        pytest.param(
            "A",
            {"A": 1, "B": 1},
            {"A": 1, "C": 1},
            2,
            "locality_direct",
            10000,
            {"A": 1.0, "C": 0.0},
            id="ZoneAwareZonesMismatched-zone-A-direct",
        ),
        pytest.param(
            # No caller zone has upstream hosts: residual 3333 each (draws 0-3332, -6665, -9998).
            "A",
            {"A": 1, "B": 1, "C": 1},
            {"D": 1, "E": 1, "F": 1},
            3,
            "locality_residual",
            0,
            {"D": 1 / 3, "E": 1 / 3, "F": 1 / 3},
            id="ZoneAwareNoMatchingZones",
        ),
        pytest.param(
            # Local 2500 bp each for A, C, D, F; upstream C 3333, E 1666, F 3333, H 1666 ->
            # residual C 833, E 1666, F 833, H 1666 (cumulative 833/2499/3332/4998 as the test).
            "A",
            {"A": 1, "C": 1, "D": 1, "F": 1},
            {"C": 2, "E": 1, "F": 2, "H": 1},
            3,
            "locality_residual",
            0,
            {"C": 833 / 4998, "E": 1666 / 4998, "F": 833 / 4998, "H": 1666 / 4998},
            id="ZoneAwareEmptyLocalities",
        ),
        pytest.param(
            "A",
            {"A": 1, "B": 1, "C": 1},
            {"A": 1, "B": 1, "C": 1},
            3,
            "locality_direct",
            10000,
            {"A": 1.0, "B": 0.0, "C": 0.0},
            id="ZoneAwareRoutingLargeZoneSwitchOnOff",
        ),
        pytest.param(
            # Force-local off: A local 5000, up 3333 -> 6666 local; C (3333 - 0) takes the rest.
            "A",
            {"A": 1, "B": 1},
            {"A": 1, "B": 1, "C": 1},
            3,
            "locality_residual",
            6666,
            {"A": 0.6666, "B": 0.0, "C": 0.3334},
            id="ZoneAwareForceLocalityDirect-residual-part",
        ),
        pytest.param(
            # Source comment: local 40/40/20 %, upstream 25/50/25 % -> residual 0/10/5 %, so
            # cross-zone traffic goes 2/3 and 1/3; local share 2500*10000//4000 = 6250.
            "a",
            {"a": 2, "b": 2, "c": 1},
            {"a": 1, "b": 2, "c": 1},
            0,
            "locality_residual",
            6250,
            {"a": 0.625, "b": 0.375 * 2 / 3, "c": 0.375 / 3},
            id="regenerateLocalityRoutingStructures-comment-example",
        ),
        pytest.param(
            # 45000/55000 callers vs 44999/55001 hosts: local bp 4500 vs up 4499 -> 9997 local,
            # B residual 5500-5500 = 0 -> lb_zone_no_capacity_left, random % 2 over A and B.
            # Envoy's uniform pick includes the caller's own zone, so A gets half the rest too.
            "A",
            {"A": 45000, "B": 55000},
            {"A": 44999, "B": 55001},
            1,
            "locality_residual",
            9997,
            {"A": 0.9997 + 0.0003 / 2, "B": 0.0003 / 2},
            id="LowPrecisionForDistribution",
        ),
    ],
)
def test_zone_split_matches_envoy(
    local_zone: str,
    callers: dict[str, int],
    upstream: dict[str, int],
    min_size: int,
    mode: str,
    local_bp: int,
    expected: dict[str, float],
) -> None:
    decision = zone_aware_routing(local_zone, callers, upstream, ZoneAwareSettings(min_size))
    assert decision.mode == mode
    assert decision.local_percent_to_route == local_bp
    assert dict(decision.zone_shares) == _approx(expected)
    assert sum(decision.zone_shares.values()) == pytest.approx(1.0)


def test_residual_capacity_is_envoys_basis_points() -> None:
    # ZoneAwareResidualsMismatched: sampled values 0-2083 -> C, 2084-4167 -> D, 4168-5417 -> E.
    decision = zone_aware_routing(
        "A", {"A": 2, "B": 2, "C": 1, "D": 1}, {"A": 1, "C": 3, "D": 3, "E": 1}
    )
    assert dict(decision.residual_capacity) == {"C": 2084, "D": 2084, "E": 1250}


def test_no_capacity_left_is_named_in_the_reason() -> None:
    decision = zone_aware_routing(
        "A", {"A": 45000, "B": 55000}, {"A": 44999, "B": 55001}, ZoneAwareSettings(1)
    )
    assert decision.reason_code == "no_capacity_left"


@pytest.mark.parametrize(
    ("local_zone", "callers", "upstream", "min_size", "code"),
    [
        pytest.param(
            "A",
            {"A": 1},
            {"A": 1, "B": 1},
            2,
            "too_few_caller_zones",
            id="NoZoneAwareNotEnoughLocalZones",
        ),
        pytest.param(
            "A",
            {"A": 1, "B": 1},
            {"A": 1},
            1,
            "too_few_upstream_zones",
            id="NoZoneAwareNotEnoughUpstreamZones",
        ),
        pytest.param(
            "A",
            {"B": 1, "C": 1},
            {"A": 1, "B": 1},
            1,
            "local_cluster_not_ok",
            id="NoZoneAwareRoutingNoLocalLocality",
        ),
        pytest.param(
            "A",
            {"A": 0, "B": 1, "C": 1},
            {"A": 1, "B": 1},
            1,
            "local_cluster_not_ok",
            id="NoZoneAwareRoutingLocalEmpty",
        ),
        pytest.param(
            "A",
            {"A": 1, "B": 1, "C": 1},
            {"A": 1, "B": 1, "C": 1},
            7,
            "cluster_too_small",
            id="ZoneAwareSmallCluster",
        ),
        pytest.param(
            None, None, {"A": 1, "B": 1}, 0, "no_local_cluster", id="no-local-cluster-configured"
        ),
    ],
)
def test_preconditions_fall_back_to_the_plain_split(
    local_zone: str | None,
    callers: dict[str, int] | None,
    upstream: dict[str, int],
    min_size: int,
    code: str,
) -> None:
    decision = zone_aware_routing(local_zone, callers, upstream, ZoneAwareSettings(min_size))
    assert decision.mode == "no_locality_routing"
    assert decision.reason_code == code
    total = sum(upstream.values())
    assert dict(decision.zone_shares) == _approx({z: n / total for z, n in upstream.items()})


def test_cluster_too_small_reason_names_both_numbers() -> None:
    decision = zone_aware_routing("a", {"a": 1, "b": 1}, {"a": 3, "b": 2})
    assert decision.reason == "cluster_too_small: 5 healthy hosts < minClusterSize 6"


@pytest.mark.parametrize(
    ("enabled_pct", "expected"),
    [
        # ZoneAwareRoutingSmallZone: zone-aware 0.6/0.2/0.2, plain (1/5, 2/5, 2/5).
        pytest.param(50.0, {"A": 0.4, "B": 0.3, "C": 0.3}, id="half-enabled-blends"),
        # Percent fields round to whole percents: 49.5 -> 50 (PROTOBUF_PERCENT_TO_ROUNDED_...).
        pytest.param(49.5, {"A": 0.4, "B": 0.3, "C": 0.3}, id="percent-rounds-half-up"),
        pytest.param(
            98.0,
            {
                "A": 0.98 * 0.6 + 0.02 * 0.2,
                "B": 0.98 * 0.2 + 0.02 * 0.4,
                "C": 0.98 * 0.2 + 0.02 * 0.4,
            },
            id="routing-enabled-98",
        ),
    ],
)
def test_routing_enabled_blends_zone_aware_and_plain(
    enabled_pct: float, expected: dict[str, float]
) -> None:
    decision = zone_aware_routing(
        "A", {"A": 1, "B": 1, "C": 1}, {"A": 1, "B": 2, "C": 2}, ZoneAwareSettings(5, enabled_pct)
    )
    assert decision.mode == "locality_residual"
    assert dict(decision.zone_shares) == _approx(expected)


def test_routing_enabled_zero_turns_zone_routing_off() -> None:
    decision = zone_aware_routing(
        "A", {"A": 1, "B": 1, "C": 1}, {"A": 1, "B": 2, "C": 2}, ZoneAwareSettings(5, 0.4)
    )
    assert (decision.mode, decision.reason_code) == ("no_locality_routing", "routing_disabled")
    assert dict(decision.zone_shares) == _approx({"A": 0.2, "B": 0.4, "C": 0.4})


def test_locality_percentages_floor_to_basis_points() -> None:
    # calculateLocalityPercentages: 10000 * 1 // 3 = 3333; an upstream zone with no healthy
    # host gets (0, 0) whatever its callers.
    assert calculate_locality_percentages({"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 0}) == {
        "a": LocalityPercentages(3333, 3333),
        "b": LocalityPercentages(6666, 6666),
        "c": LocalityPercentages(0, 0),
    }
