"""The pick pipeline (priority, zone, endpoint) and each policy, with a seeded RNG.

Statistical checks compare counts with the binomial expectation ``n * p`` and allow 4.5
standard deviations (``sqrt(n p (1 - p))``): a correct picker fails one in ~150 000 seeds, a
wrong share of a few points fails every time at these sample sizes.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

import pytest

from agent.dataplane.balancer import (
    Balancer,
    EndpointState,
    LeastRequestPicker,
    Policy,
    RouteShape,
    Upstream,
    choose_priority,
    choose_zone,
    weighted_index,
)
from agent.dataplane.ewma import PeakEwma

POLICIES: list[Policy] = ["p2c_peak_ewma", "round_robin", "least_request", "random"]


def upstream(
    name: str,
    *,
    zone: str = "a",
    weight: int = 100,
    state: EndpointState = "active",
    priority: int = 0,
    rtt: float | None = None,
) -> Upstream:
    ewma = PeakEwma(0.0)
    if rtt is not None:
        ewma.observe(rtt, 0.0)
    return Upstream(name, ewma, zone=zone, weight=weight, state=state, priority=priority)


def picks(balancer: Balancer, count: int, now: float = 0.0) -> Counter[str]:
    """Addresses of ``count`` picks at a fixed time (no decay: equal EWMAs stay equal)."""
    tally: Counter[str] = Counter()
    for _ in range(count):
        chosen = balancer.pick(now)
        assert chosen is not None
        tally[chosen.address] += 1
    return tally


def assert_share(count: int, total: int, expected: float) -> None:
    sigma = math.sqrt(total * expected * (1 - expected))
    assert abs(count - total * expected) <= 4.5 * sigma + 1, (count, total * expected, sigma)


@pytest.mark.parametrize("policy", POLICIES)
def test_weights_are_honoured(policy: Policy) -> None:
    # Weights 100:200:300 -> 1/6, 2/6, 3/6 of picks (equal costs and no load: weights decide).
    endpoints = [
        upstream("x:1", weight=100),
        upstream("y:1", weight=200),
        upstream("z:1", weight=300),
    ]
    tally = picks(Balancer(RouteShape(policy=policy), endpoints, random.Random(7)), 60_000)
    for address, share in (("x:1", 1 / 6), ("y:1", 2 / 6), ("z:1", 3 / 6)):
        assert_share(tally[address], 60_000, share)


@pytest.mark.parametrize("policy", ["round_robin", "least_request"])
def test_deterministic_policies_hit_exact_weight_proportions(policy: Policy) -> None:
    # Smooth WRR and EDF are exact over whole cycles: 600 picks of 1:2:3 = 100/200/300.
    endpoints = [upstream("x:1", weight=1), upstream("y:1", weight=2), upstream("z:1", weight=3)]
    tally = picks(Balancer(RouteShape(policy=policy), endpoints, random.Random(7)), 600)
    assert [tally["x:1"], tally["y:1"], tally["z:1"]] == pytest.approx([100, 200, 300], abs=1)


def test_smooth_round_robin_spreads_a_heavy_endpoint_like_nginx() -> None:
    # nginx's smooth weighted round robin, weights {a:5, b:1, c:1}: a a b a c a a.
    endpoints = [upstream("a:1", weight=5), upstream("b:1", weight=1), upstream("c:1", weight=1)]
    balancer = Balancer(RouteShape(policy="round_robin"), endpoints, random.Random(0))
    sequence = [balancer.pick(0.0) for _ in range(7)]
    assert [chosen.address[0] for chosen in sequence if chosen] == list("aabacaa")


def test_equal_weight_round_robin_visits_every_endpoint_once_per_cycle() -> None:
    endpoints = [upstream(f"h{i}:1") for i in range(5)]
    balancer = Balancer(RouteShape(policy="round_robin"), endpoints, random.Random(3))
    cycle = [balancer.pick(0.0) for _ in range(5)]
    assert {chosen.address for chosen in cycle if chosen} == {f"h{i}:1" for i in range(5)}


@pytest.mark.parametrize(
    "weights",
    [
        pytest.param((100, 100, 100), id="equal-weights"),
        pytest.param((900, 50, 50), id="heavy-slow"),
    ],
)
def test_peak_ewma_never_sends_to_the_costliest_endpoint(weights: tuple[int, int, int]) -> None:
    # Pairs are distinct (tower p2c sample_floyd2, Finagle), so the endpoint with the highest
    # cost loses every comparison it is drawn into, however heavy its weight.
    endpoints = [
        upstream("slow:1", rtt=0.2, weight=weights[0]),
        upstream("fast:1", rtt=0.01, weight=weights[1]),
        upstream("mid:1", rtt=0.02, weight=weights[2]),
    ]
    tally = picks(Balancer(RouteShape(), endpoints, random.Random(11)), 10_000)
    assert tally["slow:1"] == 0
    assert tally["fast:1"] > tally["mid:1"] > 0


def test_peak_ewma_cost_counts_in_flight_requests() -> None:
    # Same latency, but 3 requests pending on "busy": cost 4x, so it loses every comparison.
    busy, idle = upstream("busy:1", rtt=0.01), upstream("idle:1", rtt=0.01)
    busy.in_flight = 3
    tally = picks(Balancer(RouteShape(), [busy, idle], random.Random(5)), 5_000)
    assert tally == {"idle:1": 5_000}


def test_least_request_returns_the_busier_host_a_quarter_of_the_time() -> None:
    # Envoy least_request.proto: with 2 hosts, N choices returns the busier host 25 % of the time.
    busy, idle = upstream("busy:1"), upstream("idle:1")
    busy.in_flight = 5
    tally = picks(
        Balancer(RouteShape(policy="least_request"), [busy, idle], random.Random(2)), 40_000
    )
    assert_share(tally["busy:1"], 40_000, 0.25)


def test_least_request_dynamic_weight_matches_envoy_doc_example() -> None:
    # load_balancers.rst: weight 2 with 4 active requests -> 2 / (4 + 1) = 0.4.
    host = upstream("h:1", weight=2)
    host.in_flight = 4
    assert LeastRequestPicker._dynamic_weight(host) == pytest.approx(0.4)


def test_least_request_with_weights_shifts_load_away_from_a_loaded_heavy_host() -> None:
    # Weights 2:1; the heavy host has 3 in flight: dynamic weights 2/4 = 0.5 vs 1/1 = 1, so
    # over whole EDF cycles the light host gets 2/3 of picks (while in-flight stays put).
    heavy, light = upstream("heavy:1", weight=2), upstream("light:1", weight=1)
    heavy.in_flight = 3
    tally = picks(
        Balancer(RouteShape(policy="least_request"), [heavy, light], random.Random(1)), 300
    )
    assert tally["light:1"] == pytest.approx(200, abs=2)


@pytest.mark.parametrize(
    ("states", "panic", "eligible"),
    [
        pytest.param(["active", "draining", "ejected"], False, {"h0:1"}, id="active-only"),
        pytest.param(["draining", "draining"], False, set(), id="all-draining-none"),
        pytest.param(["ejected", "ejected"], False, set(), id="all-ejected-none"),
        pytest.param(
            ["active", "ejected", "draining"],
            True,
            {"h0:1", "h1:1"},
            id="panic-includes-ejected-not-draining",
        ),
    ],
)
def test_states_decide_who_takes_new_requests(
    states: Sequence[EndpointState], panic: bool, eligible: set[str]
) -> None:
    endpoints = [upstream(f"h{i}:1", state=state) for i, state in enumerate(states)]
    balancer = Balancer(RouteShape(panic=panic), endpoints, random.Random(0))
    if not eligible:
        assert balancer.pick(0.0) is None
        return
    assert set(picks(balancer, 2000)) == eligible


def test_locally_ejected_endpoints_are_skipped_until_rebuilt_back() -> None:
    endpoints = [upstream("h0:1"), upstream("h1:1")]
    balancer = Balancer(RouteShape(), endpoints, random.Random(0))
    endpoints[0].locally_ejected = True
    balancer.rebuild()
    assert set(picks(balancer, 500)) == {"h1:1"}
    endpoints[0].locally_ejected = False
    balancer.rebuild()
    assert set(picks(balancer, 500)) == {"h0:1", "h1:1"}


def test_weight_zero_takes_no_traffic() -> None:
    endpoints = [upstream("h0:1", weight=0), upstream("h1:1")]
    assert set(picks(Balancer(RouteShape(), endpoints, random.Random(0)), 500)) == {"h1:1"}


def test_priority_load_splits_between_levels() -> None:
    endpoints = [upstream("p0:1", priority=0), upstream("p1:1", priority=1)]
    balancer = Balancer(RouteShape(priority_load=(0.8, 0.2)), endpoints, random.Random(4))
    assert_share(picks(balancer, 20_000)["p1:1"], 20_000, 0.2)


def test_without_priority_load_the_lowest_level_with_active_endpoints_takes_all() -> None:
    endpoints = [
        upstream("p0:1", priority=0, state="ejected"),
        upstream("p1:1", priority=1),
        upstream("p2:1", priority=2),
    ]
    assert set(picks(Balancer(RouteShape(), endpoints, random.Random(0)), 500)) == {"p1:1"}


def test_zone_shares_of_the_callers_zone_split_priority_zero() -> None:
    endpoints = [upstream("a1:1", zone="a"), upstream("b1:1", zone="b"), upstream("b2:1", zone="b")]
    shape = RouteShape(own_zone="a", zone_shares={"a": {"a": 0.7, "b": 0.3}, "b": {"b": 1.0}})
    tally = picks(Balancer(shape, endpoints, random.Random(9)), 20_000)
    assert_share(tally["a1:1"], 20_000, 0.7)


def test_a_caller_zone_without_shares_splits_by_healthy_hosts() -> None:
    # Zone a has 1 host, zone b 3: without shares for caller zone "c", a gets 1/4.
    endpoints = [upstream("a1:1", zone="a")] + [upstream(f"b{i}:1", zone="b") for i in range(3)]
    shape = RouteShape(own_zone="c", zone_shares={"a": {"a": 1.0}})
    tally = picks(Balancer(shape, endpoints, random.Random(9)), 20_000)
    assert_share(tally["a1:1"], 20_000, 0.25)


def test_a_zone_with_nothing_eligible_gives_its_share_to_the_others() -> None:
    endpoints = [upstream("a1:1", zone="a", state="draining"), upstream("b1:1", zone="b")]
    shape = RouteShape(own_zone="a", zone_shares={"a": {"a": 0.9, "b": 0.1}})
    assert set(picks(Balancer(shape, endpoints, random.Random(0)), 500)) == {"b1:1"}


def test_zone_shares_apply_to_priority_zero_only() -> None:
    # Priority 1 takes its load over all its endpoints, whatever zone_shares say.
    endpoints = [upstream("a1:1", zone="a", priority=1), upstream("b1:1", zone="b", priority=1)]
    shape = RouteShape(own_zone="a", zone_shares={"a": {"a": 1.0}})
    tally = picks(Balancer(shape, endpoints, random.Random(3)), 20_000)
    assert_share(tally["b1:1"], 20_000, 0.5)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_retry_never_goes_to_a_tried_endpoint_when_another_exists(policy: Policy) -> None:
    endpoints = [upstream("h0:1"), upstream("h1:1"), upstream("h2:1")]
    balancer = Balancer(RouteShape(policy=policy), endpoints, random.Random(0))
    for _ in range(200):
        chosen = balancer.pick(0.0, exclude=endpoints[:2])
        assert chosen is endpoints[2]


def test_a_retry_goes_back_to_the_only_endpoint_there_is() -> None:
    only = upstream("h0:1")
    balancer = Balancer(RouteShape(), [only], random.Random(0))
    assert balancer.pick(0.0, exclude=[only]) is only


def test_a_retry_leaves_the_zone_when_its_zone_is_exhausted() -> None:
    local, remote = upstream("a1:1", zone="a"), upstream("b1:1", zone="b")
    shape = RouteShape(own_zone="a", zone_shares={"a": {"a": 1.0}})
    balancer = Balancer(shape, [local, remote], random.Random(0))
    assert balancer.pick(0.0) is local
    assert balancer.pick(0.0, exclude=[local]) is remote


@pytest.mark.parametrize(
    ("shares", "draw", "expected"),
    [
        pytest.param([0.5, 0.5], 0.49, 0, id="first-half"),
        pytest.param([0.5, 0.5], 0.5, 1, id="second-half"),
        pytest.param([0.0, 1.0], 0.0, 1, id="zero-share-never"),
        pytest.param([0.0, 0.0], 0.3, None, id="all-zero-none"),
        pytest.param([0.2, 0.8], 0.9999999, 1, id="top-end"),
    ],
)
def test_weighted_index(shares: list[float], draw: float, expected: int | None) -> None:
    assert weighted_index(shares, draw) == expected


@pytest.mark.parametrize(
    ("levels", "load", "draw", "expected"),
    [
        pytest.param({0, 1}, [], 0.9, 0, id="no-load-lowest-level"),
        pytest.param({1, 2}, [], 0.1, 1, id="no-load-lowest-available"),
        pytest.param({0, 1}, [0.7, 0.3], 0.69, 0, id="by-load-p0"),
        pytest.param({0, 1}, [0.7, 0.3], 0.71, 1, id="by-load-p1"),
        pytest.param({1}, [0.7, 0.3], 0.1, 1, id="loaded-level-empty-renormalised"),
        pytest.param({2}, [0.5, 0.5], 0.1, 2, id="no-loaded-level-available-lowest"),
        pytest.param(set(), [1.0], 0.1, None, id="nothing-available"),
    ],
)
def test_choose_priority(
    levels: set[int], load: list[float], draw: float, expected: int | None
) -> None:
    assert choose_priority(levels, load, draw) == expected


@pytest.mark.parametrize(
    ("available", "shares", "draw", "expected"),
    [
        pytest.param({"a", "b"}, {"a": 0.6, "b": 0.4}, 0.59, "a", id="own-share"),
        pytest.param({"a", "b"}, {"a": 0.6, "b": 0.4}, 0.61, "b", id="cross-zone-share"),
        pytest.param({"b"}, {"a": 0.6, "b": 0.4}, 0.1, "b", id="missing-zone-renormalised"),
        pytest.param({"c"}, {"a": 0.6, "b": 0.4}, 0.1, None, id="no-listed-zone-whole-level"),
        pytest.param({"a"}, {}, 0.1, None, id="no-shares-whole-level"),
    ],
)
def test_choose_zone(
    available: set[str], shares: dict[str, float], draw: float, expected: str | None
) -> None:
    assert choose_zone(available, shares, draw) == expected
