"""``decide`` kind ``routing`` (``decide_routing`` and ``controller.decide.evaluate``) on cases
from Envoy's round_robin_lb_test.cc, load_balancer_impl_base_test.cc and the load-balancing
docs (envoyproxy/envoy); expected values are worked by hand in the comments, as in
test_zone_aware.py and test_priority_load.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.decide import evaluate
from controller.engines.balancing.routing import MAX_ENDPOINTS, decide_routing
from controller.engines.decide_input import DecideInputError


def _endpoints(spec: dict[str, int], **extra: Any) -> list[dict[str, Any]]:
    """``{"A": 2}`` -> two endpoints in zone A named A0, A1."""
    return [
        {"address": f"{zone}{i}", "zone": zone, **extra}
        for zone, count in spec.items()
        for i in range(count)
    ]


def _request(**fields: Any) -> dict[str, Any]:
    return {"kind": "routing", **fields}


def test_residuals_mismatched_through_json() -> None:
    # ZoneAwareResidualsMismatched: 37.5 % stays in A, the rest by residual 2084/2084/1250.
    answer = decide_routing(
        _request(
            localZone="A",
            callersPerZone={"A": 2, "B": 2, "C": 1, "D": 1},
            endpoints=_endpoints({"A": 1, "C": 3, "D": 3, "E": 1}),
        )
    )
    assert answer["mode"] == "locality_residual"
    assert answer["zoneShares"] == {
        "A": pytest.approx(0.375),
        "C": pytest.approx(0.625 * 2084 / 5418),
        "D": pytest.approx(0.625 * 2084 / 5418),
        "E": pytest.approx(0.625 * 1250 / 5418),
    }
    assert (answer["priorityLoad"], answer["panic"]) == ([1.0], False)
    assert answer["localPercentToRouteBp"] == 3750
    assert answer["reason"].startswith("locality_residual: ")


def test_small_zone_with_min_cluster_size_5() -> None:
    answer = decide_routing(
        _request(
            localZone="A",
            callersPerZone={"A": 1, "B": 1, "C": 1},
            endpoints=_endpoints({"A": 1, "B": 2, "C": 2}),
            policy={"zoneAware": {"minClusterSize": 5}},
        )
    )
    assert answer["zoneShares"] == {
        "A": pytest.approx(0.6),
        "B": pytest.approx(0.2),
        "C": pytest.approx(0.2),
    }


def test_default_min_cluster_size_is_6() -> None:
    # The same 5 hosts with Envoy's default minimum: too small, plain split by healthy hosts.
    answer = decide_routing(
        _request(
            localZone="A",
            callersPerZone={"A": 1, "B": 1, "C": 1},
            endpoints=_endpoints({"A": 1, "B": 2, "C": 2}),
        )
    )
    assert answer["mode"] == "no_locality_routing"
    assert answer["reason"] == "cluster_too_small: 5 healthy hosts < minClusterSize 6"
    assert answer["zoneShares"] == {
        "A": pytest.approx(0.2),
        "B": pytest.approx(0.4),
        "C": pytest.approx(0.4),
    }


def test_direct_mode_when_own_zone_has_enough_hosts() -> None:
    answer = decide_routing(
        _request(
            localZone="a",
            callersPerZone={"a": 1, "b": 1},
            endpoints=_endpoints({"a": 3, "b": 3}),
        )
    )
    assert (answer["mode"], answer["zoneShares"]) == ("locality_direct", {"a": 1.0, "b": 0.0})


def test_panic_turns_zone_routing_off_and_uses_all_hosts() -> None:
    # MaxUnhealthyPanic: 2 of 6 healthy (33 % < 50 %) -> panic; Envoy routes over all P0 hosts,
    # so the zone split follows all hosts (a: 4 of 6), not the healthy ones (a: 2 of 2).
    endpoints = [
        *_endpoints({"a": 2}),
        *_endpoints({"a": 2}, healthy=False),
        *_endpoints({"b": 2}, healthy=False),
    ]
    for i, endpoint in enumerate(endpoints):
        endpoint["address"] = f"e{i}"
    answer = decide_routing(
        _request(localZone="a", callersPerZone={"a": 1, "b": 1}, endpoints=endpoints)
    )
    assert (answer["mode"], answer["panic"], answer["reasonCode"]) == (
        "no_locality_routing",
        True,
        "panic",
    )
    assert answer["zoneShares"] == {"a": pytest.approx(4 / 6), "b": pytest.approx(2 / 6)}
    assert answer["priorityLoad"] == [1.0]


def test_panic_threshold_0_disables_panic() -> None:
    endpoints = [*_endpoints({"a": 1}), *_endpoints({"b": 3}, healthy=False)]
    answer = decide_routing(_request(endpoints=endpoints, policy={"panicThresholdPct": 0}))
    assert answer["panic"] is False
    assert answer["zoneShares"] == {"a": 1.0, "b": 0.0}


@pytest.mark.parametrize(
    ("p0", "p1", "expected"),
    [
        pytest.param((2, 1), (2, 1), [0.7, 0.3], id="GentleFailover-70-30"),
        pytest.param((4, 1), (2, 2), [0.35, 0.65], id="GentleFailover-35-65"),
        pytest.param((100, 71), (100, 100), [0.99, 0.01], id="priority.rst-71pct"),
    ],
)
def test_priority_load_as_fractions(
    p0: tuple[int, int], p1: tuple[int, int], expected: list[float]
) -> None:
    endpoints = []
    for priority, (hosts, healthy) in enumerate((p0, p1)):
        endpoints += [
            {
                "address": f"p{priority}-{i}",
                "zone": "a",
                "priority": priority,
                "healthy": i < healthy,
            }
            for i in range(hosts)
        ]
    answer = decide_routing(_request(endpoints=endpoints))
    assert answer["priorityLoad"] == pytest.approx(expected)


def test_excluded_hosts_leave_the_denominator() -> None:
    # GentleFailover: P0 4 hosts, 1 healthy, 3 excluded -> fully available, 100 % on P0.
    endpoints = [
        {"address": "a0", "zone": "a"},
        *({"address": f"x{i}", "zone": "a", "healthy": False, "excluded": True} for i in range(3)),
        *({"address": f"p1-{i}", "zone": "a", "priority": 1, "healthy": i < 1} for i in range(5)),
    ]
    answer = decide_routing(_request(endpoints=endpoints))
    assert (answer["priorityLoad"], answer["panicPerPriority"]) == ([1.0, 0.0], [False, False])


def test_overprovisioning_factor_is_a_multiplier() -> None:
    # OverProvisioningFactor: 2 of 4 healthy per level; factor 1.0 -> 50/50.
    endpoints = [
        {"address": f"p{p}-{i}", "zone": "a", "priority": p, "healthy": i < 2}
        for p in (0, 1)
        for i in range(4)
    ]
    answer = decide_routing(_request(endpoints=endpoints, policy={"overprovisioningFactor": 1.0}))
    assert answer["priorityLoad"] == pytest.approx([0.5, 0.5])


def test_slow_start_scales_healthy_endpoint_weights() -> None:
    # SlowStartNoWait: 12 s into a 60 s window -> factor 0.2; the unhealthy endpoint keeps its
    # weight (Envoy applies slow start to healthy hosts only).
    endpoints = [
        {"address": "new", "zone": "a", "weight": 10, "ageSeconds": 12},
        {"address": "warm", "zone": "a", "weight": 10},
        {"address": "sick", "zone": "a", "weight": 10, "ageSeconds": 1, "healthy": False},
        {"address": "old", "zone": "a", "ageSeconds": 600},
    ]
    answer = decide_routing(
        _request(endpoints=endpoints, policy={"slowStart": {"windowSeconds": 60}})
    )
    assert answer["endpointWeights"] == {
        "new": pytest.approx(2.0),
        "warm": 10.0,
        "sick": 10.0,
        "old": 1.0,
    }


def test_slow_start_is_off_without_a_window() -> None:
    endpoints = [{"address": "new", "zone": "a", "ageSeconds": 1}]
    answer = decide_routing(_request(endpoints=endpoints, policy={"slowStart": {"aggression": 2}}))
    assert answer["endpointWeights"] == {"new": 1.0}


def test_routing_enabled_blend_through_json() -> None:
    answer = decide_routing(
        _request(
            localZone="A",
            callersPerZone={"A": 1, "B": 1, "C": 1},
            endpoints=_endpoints({"A": 1, "B": 2, "C": 2}),
            policy={"zoneAware": {"minClusterSize": 5, "routingEnabledPct": 50}},
        )
    )
    # 0.5 * (0.6, 0.2, 0.2) + 0.5 * (0.2, 0.4, 0.4)
    assert answer["zoneShares"] == {
        "A": pytest.approx(0.4),
        "B": pytest.approx(0.3),
        "C": pytest.approx(0.3),
    }


def test_evaluate_dispatches_the_routing_kind() -> None:
    answer = evaluate(_request(endpoints=_endpoints({"a": 1})), now=0.0)
    assert answer["mode"] == "no_locality_routing"
    assert answer["reasonCode"] == "too_few_upstream_zones"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param(_request(), 400, "endpoints", id="endpoints-required"),
        pytest.param(_request(endpoints=[]), 422, None, id="no-endpoints-422"),
        pytest.param(
            _request(endpoints=[{"zone": "a"}]), 400, "endpoints.0.address", id="address-required"
        ),
        pytest.param(
            _request(endpoints=[{"address": "x", "zone": "a", "weight": 0}]),
            400,
            "endpoints.0.weight",
            id="weight-at-least-1",
        ),
        pytest.param(
            _request(endpoints=[{"address": "x", "zone": "a", "healthy": "yes"}]),
            400,
            "endpoints.0.healthy",
            id="healthy-boolean",
        ),
        pytest.param(
            _request(endpoints=[{"address": "x", "zone": "a"}, {"address": "x", "zone": "b"}]),
            400,
            "endpoints.1.address",
            id="duplicate-address",
        ),
        pytest.param(
            _request(endpoints=[{"address": "x", "zone": "a", "colour": "red"}]),
            400,
            "endpoints.0.colour",
            id="unknown-endpoint-field",
        ),
        pytest.param(_request(endpoints=[], extra=1), 400, "extra", id="unknown-top-field"),
        pytest.param(
            _request(endpoints=_endpoints({"a": 1}), policy={"panicThresholdPct": 101}),
            400,
            "policy.panicThresholdPct",
            id="threshold-above-100",
        ),
        pytest.param(
            _request(endpoints=_endpoints({"a": 1}), policy={"overprovisioningFactor": 0}),
            400,
            "policy.overprovisioningFactor",
            id="factor-positive",
        ),
        pytest.param(
            _request(
                endpoints=_endpoints({"a": 1}),
                policy={"slowStart": {"windowSeconds": 10, "aggression": 0}},
            ),
            400,
            "policy.slowStart.aggression",
            id="aggression-positive",
        ),
        pytest.param(
            _request(endpoints=_endpoints({"a": 1}), callersPerZone={"a": -1}),
            400,
            "callersPerZone.a",
            id="callers-not-negative",
        ),
        pytest.param(
            _request(endpoints=_endpoints({"a": MAX_ENDPOINTS + 1})),
            400,
            "endpoints",
            id="too-many-endpoints",
        ),
        pytest.param(
            _request(endpoints=_endpoints({f"z{i}": 1 for i in range(65)})),
            400,
            "endpoints",
            id="too-many-zones",
        ),
        pytest.param({"kind": "horizontal", "endpoints": []}, 400, "kind", id="wrong-kind"),
    ],
)
def test_bad_input_is_refused(body: dict[str, Any], status: int, field: str | None) -> None:
    with pytest.raises(DecideInputError) as caught:
        decide_routing(body)
    assert caught.value.status == status
    if field is not None:
        assert [path for path, _ in caught.value.fields] == [field]
