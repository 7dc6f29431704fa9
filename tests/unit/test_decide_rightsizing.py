"""``decide`` kind "rightsizing": the JSON in and out, and the 400 / 422 refusals."""

from __future__ import annotations

from typing import Any

import pytest

from controller.decide import evaluate
from controller.engines.decide_input import DecideInputError

NOW = 1_700_006_400  # 2023-11-15T00:00:00Z


def samples(cpu: Any = "1", memory: Any = "400Mi", hours: int = 48) -> list[dict[str, Any]]:
    """Every 10 minutes for ``hours`` hours before NOW."""
    return [{"time": NOW - 600 * i, "cpu": cpu, "memory": memory} for i in range(hours * 6, 0, -1)]


def body(**changes: Any) -> dict[str, Any]:
    container = {
        "namespace": "shop",
        "workload": "cart",
        "container": "app",
        "requests": {"cpu": "2", "memory": "1Gi"},
        "limits": {"cpu": "4", "memory": "1Gi"},
        "samples": samples(),
    }
    container.update(changes.pop("container", {}))
    raw: dict[str, Any] = {"kind": "rightsizing", "now": NOW, "containers": [container]}
    raw.update(changes)
    return raw


def test_recommendation_in_kubernetes_notation() -> None:
    answer = evaluate(body(), now=0)
    (result,) = answer["containers"]
    # Constant 1 core: P90 = upper edge of its VPA bucket (1016m) + 15 % = 1168m → 1170m.
    # Constant 400Mi: KRR max x 1.15 = 460Mi.
    assert result["cpu"]["target"] == "1170m"
    assert result["memory"]["target"] == "460Mi"
    assert set(result["cpu"]) == {"target", "lowerBound", "upperBound"}
    assert result["limits"] == {"cpu": None, "memory": "460Mi"}
    assert result["reason"] == "recommended"
    assert (result["namespace"], result["workload"], result["container"]) == (
        "shop",
        "cart",
        "app",
    )


def test_rfc3339_times_and_numeric_samples_are_accepted() -> None:
    raw = body(
        now="2023-11-15T00:00:00Z",
        container={"samples": samples(cpu=1.0, memory=400 * 2**20)},
        policy={"cpuLimit": "ratio"},
    )
    (result,) = evaluate(raw, now=0)["containers"]
    assert result["cpu"]["target"] == "1170m"
    assert result["limits"]["cpu"] == "2340m"  # limit/request 4/2 kept (VPA)


def test_oom_event_floors_memory() -> None:
    raw = body(container={"oomEvents": [{"time": NOW - 3600, "memory": "1Gi"}]})
    (result,) = evaluate(raw, now=0)["containers"]
    # max(1Gi x 1.2, 1Gi + 100Mi) = 1228.8Mi → rounded up to 1229Mi.
    assert result["memory"]["target"] == "1229Mi"
    assert result["floors"] == ["oom"]


def test_one_undefined_container_among_defined_ones() -> None:
    raw = body()
    short = dict(raw["containers"][0], container="sidecar", samples=samples(hours=2))
    raw["containers"].append(short)
    first, second = evaluate(raw, now=0)["containers"]
    assert first["reason"] == "recommended"
    assert second["reason"] == "insufficient_history"
    assert second["cpu"] is None
    assert second["memory"] is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(body(now="yesterday"), "now", id="bad-now"),
        pytest.param({"kind": "rightsizing", "now": NOW}, "containers", id="no-containers"),
        pytest.param(body(containers=[]), "containers", id="empty-containers"),
        pytest.param(body(extra=1), "extra", id="unknown-field"),
        pytest.param(body(container={"namespace": ""}), "containers.0.namespace", id="no-ns"),
        pytest.param(
            body(container={"requests": {"cpu": "lots"}}),
            "containers.0.requests.cpu",
            id="bad-quantity",
        ),
        pytest.param(
            body(container={"samples": [{"time": NOW, "cpu": "1"}]}),
            "containers.0.samples.0.memory",
            id="sample-without-memory",
        ),
        pytest.param(
            body(container={"samples": [{"time": NOW, "cpu": -1, "memory": 1}]}),
            "containers.0.samples.0.cpu",
            id="negative-cpu",
        ),
        pytest.param(
            body(container={"throttleEvents": [{"time": NOW, "throttledShare": 2, "cpu": 1}]}),
            "containers.0.throttleEvents.0.throttledShare",
            id="share-above-1",
        ),
        pytest.param(body(policy={"cpuLimit": "double"}), "policy.cpuLimit", id="bad-cpu-limit"),
        pytest.param(
            body(policy={"targetPercentile": 1.5}), "policy", id="percentile-out-of-range"
        ),
    ],
)
def test_malformed_input_is_400_naming_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(DecideInputError) as caught:
        evaluate(raw, now=0)
    assert caught.value.status == 400
    assert caught.value.fields[0][0] == field


def test_nothing_computable_is_422() -> None:
    with pytest.raises(DecideInputError) as caught:
        evaluate(body(container={"samples": samples(hours=3)}), now=0)
    assert caught.value.status == 422
    assert caught.value.fields == (
        ("containers.0.samples", "undefined: history spans 2.8h < 24h required"),
    )
