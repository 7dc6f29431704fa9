"""Bin-packing: hand-checked optima, the exact solver as referee, and cases FFD loses.

Sizes are small integers on nodes of 10 CPU x 10 memory units (millicores and bytes are just
units here) so each optimum can be checked by hand in the comment next to it.
"""

from __future__ import annotations

import random

import pytest

from controller.engines.resources.binpack import (
    IDLE,
    PackedNode,
    Packing,
    PodRequest,
    best_fit_decreasing,
    consolidate,
    cost_by_namespace,
    downsize,
    exact_pack,
    first_fit_decreasing,
    pack,
)
from controller.engines.resources.capacity import NodeType

NODE = NodeType("n10", 10, 10, 1.0)
SMALL = NodeType("small", 4, 4, 1.0)
LARGE = NodeType("large", 10, 10, 2.0)


def pods(*sizes: tuple[int, int], namespace: str = "ns") -> list[PodRequest]:
    return [PodRequest(f"p{i}", namespace, cpu, mem) for i, (cpu, mem) in enumerate(sizes)]


def placed(packing: Packing) -> list[str]:
    return sorted(pod.name for node in packing.nodes for pod in node.pods)


@pytest.mark.parametrize(
    ("sizes", "nodes"),
    [
        # Four halves fill two nodes exactly.
        pytest.param([(5, 5)] * 4, 2, id="four-halves-two-nodes"),
        # 6+4 and 6+4 pair up; 7s each need their own node: 2 + 2.
        pytest.param([(6, 1), (4, 1), (6, 1), (4, 1), (7, 1), (7, 1)], 4, id="pairs-and-7s"),
        # Nothing shares with a 10.
        pytest.param([(10, 1), (1, 1)], 2, id="full-node"),
    ],
)
def test_hand_checked_optimum_reached_by_pack_and_exact(
    sizes: list[tuple[int, int]], nodes: int
) -> None:
    items = pods(*sizes)
    assert exact_pack(items, [NODE]).node_count == nodes
    plan = pack(items, [NODE])
    assert plan.best.node_count == nodes
    assert placed(plan.best) == sorted(pod.name for pod in items)


def test_ffd_in_cpu_order_loses_where_dominant_best_fit_wins() -> None:
    # FFD (CPU, then memory, descending): (5,1) (5,1) share node 1 = (10, 2); the (4,9)s can
    # join nothing (CPU full; 9 + 9 memory > 10) → 3 nodes. Optimum pairs each (5,1) with a
    # (4,9) = (9, 10) → 2 nodes. BFD by dominant share places the (4,9)s first and finds it.
    items = pods((5, 1), (5, 1), (4, 9), (4, 9))
    assert first_fit_decreasing(items, NODE).node_count == 3
    assert best_fit_decreasing(items, NODE).node_count == 2
    assert exact_pack(items, [NODE]).node_count == 2
    plan = pack(items, [NODE])
    assert (plan.baseline.node_count, plan.best.node_count) == (3, 2)


def test_consolidation_empties_the_least_utilised_nodes() -> None:
    # Three nodes at (2,2), (2,2) and (5,5): all nine units fit on one node.
    packing = Packing(
        "given",
        tuple(PackedNode(NODE, (pod,)) for pod in pods((2, 2), (2, 2), (5, 5))),
    )
    consolidated = consolidate(packing)
    assert consolidated.node_count == 1
    assert placed(consolidated) == ["p0", "p1", "p2"]


def test_consolidation_keeps_a_node_whose_pods_do_not_all_fit() -> None:
    # (6,6) and (6,6) cannot share; nothing to empty.
    packing = Packing("given", tuple(PackedNode(NODE, (pod,)) for pod in pods((6, 6), (6, 6))))
    assert consolidate(packing).node_count == 2


@pytest.mark.parametrize(
    ("sizes", "cost", "types"),
    [
        # Three (3,3): three smalls cost 3, one large holding all (9,9) costs 2.
        pytest.param([(3, 3)] * 3, 2.0, {"large": 1}, id="one-large-beats-three-small"),
        # (6,6) + (4,4) = (10,10): one large (2) beats large + small (3).
        pytest.param([(6, 6), (4, 4)], 2.0, {"large": 1}, id="exact-fill-large"),
        # One (2,2): a small (1) is enough.
        pytest.param([(2, 2)], 1.0, {"small": 1}, id="small-enough"),
        # (6,6) + (3,3) + (3,3): large(6,6)+... (12 > 10) so large(6,3..)? best: large holds
        # (6,6)+(3,3) = (9,9), small holds (3,3) → 3; two smalls + large for (6,6) → 4.
        pytest.param([(6, 6), (3, 3), (3, 3)], 3.0, {"large": 1, "small": 1}, id="mix"),
    ],
)
def test_cheapest_node_type_mix(
    sizes: list[tuple[int, int]], cost: float, types: dict[str, int]
) -> None:
    items = pods(*sizes)
    exact = exact_pack(items, [SMALL, LARGE])
    assert exact.cost_per_hour == pytest.approx(cost)
    best = pack(items, [SMALL, LARGE]).best
    assert best.cost_per_hour == pytest.approx(cost)
    assert best.count_by_type() == types


def test_downsize_moves_each_node_to_the_cheapest_type_that_holds_it() -> None:
    packing = Packing("given", (PackedNode(LARGE, tuple(pods((2, 2)))),))
    assert downsize(packing, [SMALL, LARGE]).nodes[0].node_type == SMALL


def test_pods_that_fit_no_node_type_are_unplaced() -> None:
    items = pods((11, 1), (2, 2))
    plan = pack(items, [NODE])
    assert [pod.name for pod in plan.best.unplaced] == ["p0"]
    assert plan.best.node_count == 1
    assert [pod.name for pod in exact_pack(items, [NODE]).unplaced] == ["p0"]


@pytest.mark.parametrize("seed", range(12), ids=[f"seed-{s}" for s in range(12)])
def test_never_cheaper_than_exact_never_worse_than_ffd(seed: int) -> None:
    rng = random.Random(seed)
    items = pods(*[(rng.randint(1, 7), rng.randint(1, 7)) for _ in range(rng.randint(3, 8))])
    types = [LARGE, SMALL]  # the baseline is FFD on the first (the pool's own) type
    exact = exact_pack(items, types)
    plan = pack(items, types)
    assert exact.cost_per_hour <= plan.best.cost_per_hour + 1e-9
    assert plan.best.cost_per_hour <= plan.baseline.cost_per_hour + 1e-9
    assert not plan.best.unplaced
    assert placed(plan.best) == placed(exact) == sorted(pod.name for pod in items)
    for node in plan.best.nodes:
        assert node.node_type.fits(node.cpu_millicores, node.memory_bytes)


def test_exact_refuses_more_than_eight_pods() -> None:
    with pytest.raises(ValueError, match="at most 8"):
        exact_pack(pods(*[(1, 1)] * 9), [NODE])


def test_cost_by_namespace_adds_up_to_the_node_price() -> None:
    # One 10x10 node at 1.0/h; "a" requests (5, 0) and "b" (0, 5): with the OpenCost split
    # the two halves of CPU and memory are priced separately, the rest is idle.
    node = NodeType("n", 10_000, 10 * 2**30, 1.0)
    packing = Packing(
        "given",
        (
            PackedNode(
                node,
                (PodRequest("x", "a", 5_000, 0), PodRequest("y", "b", 0, 5 * 2**30)),
            ),
        ),
    )
    costs = cost_by_namespace(packing)
    assert sum(costs.values()) == pytest.approx(1.0)
    # 10 cores x 0.031611 = 0.31611, 10 GiB x 0.004237 = 0.04237 → CPU share 0.88181.
    cpu_share = 0.31611 / (0.31611 + 0.04237)
    assert costs["a"] == pytest.approx(cpu_share / 2)
    assert costs["b"] == pytest.approx((1 - cpu_share) / 2)
    assert costs[IDLE] == pytest.approx(0.5)
