"""``decide_horizontal`` (the JSON interface) against horizontal_test.go's controller cases and
a representative set of replica_calculator_test.go cases.

The Go controller fixture: pod i requests ``reportedCPURequests[i]`` and uses
``reportedLevels[i]`` milli-CPU, zero start time, Ready unless listed otherwise; the controller
runs with tolerance 0.1, a 2-minute CPU init period and a 10 s readiness delay (passed as
options here). Scale-down cases start from an empty recommendation log, as the Go tests do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from controller.engines.scaling.horizontal import DecideInputError, decide_horizontal

NOW = 1_700_000_000
OPTIONS = {
    "tolerance": 0.1,
    "cpuInitializationPeriodSeconds": 120,
    "initialReadinessDelaySeconds": 10,
}


def cpu(target: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": target},
        },
    }


def pods_metric(name: str, average: str) -> dict[str, Any]:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": name},
            "target": {"type": "AverageValue", "averageValue": average},
        },
    }


def object_metric(name: str, value: str) -> dict[str, Any]:
    return {
        "type": "Object",
        "object": {
            "describedObject": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "some-deployment",
            },
            "metric": {"name": name},
            "target": {"type": "Value", "value": value},
        },
    }


def external_metric(name: str, target_type: str, quantity: str) -> dict[str, Any]:
    key = "value" if target_type == "Value" else "averageValue"
    return {
        "type": "External",
        "external": {
            "metric": {"name": name, "selector": {}},
            "target": {"type": target_type, key: quantity},
        },
    }


def pods(
    levels: Sequence[int | None],
    requests: Sequence[str] | None = None,
    metric: str = "cpu",
    readiness: Sequence[bool] = (),
    phases: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The fixture's pods; ``None`` as a level means the pod reports no sample."""
    count = max(len(levels), len(phases), len(requests or ()))
    result = []
    for i in range(count):
        pod: dict[str, Any] = {"name": f"test-pod-{i}"}
        if requests is not None and i < len(requests):
            pod["requests"] = {"cpu": requests[i]}
        if i < len(levels) and levels[i] is not None:
            pod["metrics"] = {metric: f"{levels[i]}m"}
        if i < len(readiness):
            pod["ready"] = readiness[i]
        if i < len(phases):
            pod["phase"] = phases[i]
        result.append(pod)
    return result


def request(
    current: int,
    min_replicas: int | None,
    max_replicas: int,
    metrics: list[dict[str, Any]] | None,
    pod_list: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"maxReplicas": max_replicas}
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    if metrics is not None:
        spec["metrics"] = metrics
    spec.update(extra.pop("spec", {}))
    body: dict[str, Any] = {
        "kind": "horizontal",
        "now": NOW,
        "policy": spec,
        "currentReplicas": current,
        "options": OPTIONS,
    }
    if pod_list is not None:
        body["pods"] = pod_list
    body.update(extra)
    return body


ONE = ["1.0"] * 6
CONTROLLER_CASES = [
    pytest.param(
        request(3, 2, 6, [cpu(30)], pods([300, 500, 700], ONE[:3])),
        5,
        "DesiredWithinRange",
        id="TestScaleUp",
    ),
    # minReplicas 0 with a CPU target: idle pods scale to zero (the controller allows it).
    pytest.param(
        request(3, 0, 5, [cpu(90)], pods([0, 0, 0], ONE[:3])),
        0,
        "DesiredWithinRange",
        id="TestZeroMinReplicasDesiredZero",
    ),
    # pod 0 never became ready: left out, then counted at 0 on the scale-up: 40 % / 30 -> 4
    pytest.param(
        request(3, 2, 6, [cpu(30)], pods([300, 500, 700], ONE[:3], readiness=[False, True, True])),
        4,
        "DesiredWithinRange",
        id="TestScaleUpUnreadyLessScale",
    ),
    pytest.param(
        request(3, 2, 6, [cpu(30)], pods([400, 500, 700], ONE[:3], readiness=[True, False, False])),
        3,
        "DesiredWithinRange",
        id="TestScaleUpUnreadyNoScale",
    ),
    pytest.param(
        request(
            2,
            2,
            6,
            [cpu(30)],
            pods(
                [500, 700],
                ONE[:4],
                readiness=[True, True, False, False],
                phases=["Running", "Running", "Failed", "Failed"],
            ),
        ),
        4,
        "DesiredWithinRange",
        id="TestScaleUpIgnoresFailedPods",
    ),
    pytest.param(
        request(3, 2, 6, [pods_metric("qps", "15.0")], pods([20000, 10000, 30000], metric="qps")),
        4,
        "DesiredWithinRange",
        id="TestScaleUpCM",
    ),
    pytest.param(
        request(
            3,
            2,
            6,
            [object_metric("qps", "15.0")],
            pods([None, None, None]),
            objectMetrics={"qps": "20"},
        ),
        4,
        "DesiredWithinRange",
        id="TestScaleUpCMObject",
    ),
    # External Value 6666m against 8600m: ceil(1.29 x 3 ready pods) = 4
    pytest.param(
        request(
            3,
            2,
            6,
            [external_metric("qps", "Value", "6666m")],
            pods([None, None, None]),
            externalMetrics={"qps": ["8600m"]},
        ),
        4,
        "DesiredWithinRange",
        id="TestScaleUpCMExternal",
    ),
    pytest.param(
        request(
            3,
            2,
            6,
            [external_metric("qps", "AverageValue", "2222m")],
            [],
            externalMetrics={"qps": ["8600m"]},
        ),
        4,
        "DesiredWithinRange",
        id="TestScaleUpPerPodCMExternal",
    ),
    pytest.param(
        request(5, 2, 6, [cpu(50)], pods([100, 300, 500, 250, 250], ONE[:5])),
        3,
        "DesiredWithinRange",
        id="TestScaleDown",
    ),
    pytest.param(
        request(5, 2, 6, [pods_metric("qps", "20.0")], pods([12000] * 5, metric="qps")),
        3,
        "DesiredWithinRange",
        id="TestScaleDownCM",
    ),
    pytest.param(
        request(3, 1, 5, [cpu(100)], pods([1010, 1030, 1020], ["0.9", "1.0", "1.1"])),
        3,
        "DesiredWithinRange",
        id="TestTolerance",
    ),
    # 115 m of 3000 m = 3 % of a 90 % target -> 1, below minReplicas
    pytest.param(
        request(3, 2, 5, [cpu(90)], pods([10, 95, 10], ["0.9", "1.0", "1.1"])),
        2,
        "TooFewReplicas",
        id="TestMinReplicas",
    ),
    pytest.param(
        request(3, 2, 5, [cpu(90)], pods([0, 0, 0], ["0.9", "1.0", "1.1"])),
        2,
        "TooFewReplicas",
        id="TestMinReplicasDesiredZero",
    ),
    # 18500 m / 3000 m = 616 % of 90 % -> 21: capped by max(2 x 3, 4) = 6, then maxReplicas 5
    pytest.param(
        request(3, 2, 5, [cpu(90)], pods([8000, 9500, 1000], ["0.9", "1.0", "1.1"])),
        5,
        "TooManyReplicas",
        id="TestMaxReplicas",
    ),
    pytest.param(
        request(4, 2, 6, [cpu(100)], pods([400, 95, None, None], ONE[:4])),
        3,
        "DesiredWithinRange",
        id="TestMissingMetrics",
    ),
    pytest.param(
        request(1, 2, 6, [cpu(30)], pods([0, 0, 0, 0], ONE[:4])),
        2,
        "TooFewReplicas",
        id="TestScaleUpRCImmediately",
    ),
    pytest.param(
        request(6, 2, 5, [cpu(50)], pods([8000, 9500, 1000], ["0.9", "1.0", "1.1"])),
        5,
        "TooManyReplicas",
        id="TestScaleDownRCImmediately",
    ),
    pytest.param(request(0, 3, 5, [cpu(90)], []), 0, "ScalingDisabled", id="TestZeroReplicas"),
    pytest.param(request(2, 3, 5, [cpu(90)], []), 3, "TooFewReplicas", id="TestTooFewReplicas"),
    pytest.param(request(10, 3, 5, [cpu(90)], []), 5, "TooManyReplicas", id="TestTooManyReplicas"),
    # 600 m / 300 m = 200 % of a 10 % target -> 60; a 700 % / 60 s policy allows ceil(3 x 8) = 24
    pytest.param(
        request(
            3,
            1,
            100,
            [cpu(10)],
            pods([100, 200, 300], ["0.1"] * 3),
            spec={
                "behavior": {
                    "scaleUp": {
                        "policies": [{"type": "Percent", "value": 700, "periodSeconds": 60}]
                    }
                }
            },
        ),
        24,
        "ScaleUpLimit",
        id="TestUpscaleCap",
    ),
    pytest.param(
        request(
            3,
            1,
            20,
            [cpu(10)],
            pods([100, 200, 300], ["0.1"] * 3),
            spec={
                "behavior": {
                    "scaleUp": {
                        "policies": [{"type": "Percent", "value": 700, "periodSeconds": 60}]
                    }
                }
            },
        ),
        20,
        "TooManyReplicas",
        id="TestUpscaleCapGreaterThanMaxReplicas",
    ),
    # Without behavior the legacy cap is max(2 x 3, 4) = 6.
    pytest.param(
        request(3, 1, 100, [cpu(10)], pods([100, 200, 300], ["0.1"] * 3)),
        6,
        "ScaleUpLimit",
        id="legacy-upscale-cap",
    ),
    # 50 % of 100 % -> 2, but a recommendation of 4 a minute ago holds 4 (10 min ago is too old)
    pytest.param(
        request(
            4,
            1,
            5,
            [cpu(100)],
            pods([50, 50, 50], ["0.1"] * 3),
            history={
                "recommendations": [
                    {"replicas": 10, "time": NOW - 600},
                    {"replicas": 4, "time": NOW - 60},
                ]
            },
        ),
        4,
        "ScaleDownStabilized",
        id="TestStabilizeDownscale",
    ),
    # CPU asks for 4 (40 % of 30 %), the external metric fails: the scale-up goes ahead
    pytest.param(
        request(
            3,
            2,
            6,
            [cpu(30), external_metric("qps", "Value", "100m")],
            pods([300, 400, 500], ONE[:3]),
        ),
        4,
        "FailedGetExternalMetric",
        id="TestScaleUpOneMetricEmpty",
    ),
    # CPU asks for 3 (28 % of 50 %), the external metric fails: no scale-down
    pytest.param(
        request(
            5,
            2,
            6,
            [cpu(50), external_metric("qps", "Value", "1")],
            pods([100, 300, 500, 250, 250], ONE[:5]),
        ),
        5,
        "FailedGetExternalMetric",
        id="TestNoScaleDownOneMetricEmpty",
    ),
    pytest.param(
        request(
            3,
            1,
            5,
            [cpu(10), pods_metric("qps", "15.0")],
            [
                {
                    "name": f"test-pod-{i}",
                    "requests": {"cpu": "1.0"},
                    "metrics": {"cpu": f"{c}m", "qps": f"{q}m"},
                }
                for i, (c, q) in enumerate([(300, 20000), (500, 10000), (700, 30000)])
            ],
        ),
        5,
        "TooManyReplicas",
        id="TestNoBackoffUpscaleCMNoBackoffCpu",
    ),
    pytest.param(
        request(5, 1, 10, [cpu(50)], rawRecommendation=2),
        2,
        "DesiredWithinRange",
        id="raw-recommendation-normalised-only",
    ),
]


@pytest.mark.parametrize(("body", "desired", "reason"), CONTROLLER_CASES)
def test_decide_matches_kubernetes_controller(
    body: dict[str, Any], desired: int, reason: str
) -> None:
    answer = decide_horizontal(body)
    assert (answer["desiredReplicas"], answer["reason"]) == (desired, reason)
    assert answer["scale"] is (desired != body["currentReplicas"])


def test_metric_status_uses_kubernetes_units() -> None:
    """TestScaleUp's statuses: 50 % utilization and an average of 500 m per pod."""
    answer = decide_horizontal(request(3, 2, 6, [cpu(30)], pods([300, 500, 700], ONE[:3])))
    assert answer["metrics"] == [
        {
            "type": "Resource",
            "name": "cpu",
            "proposal": 5,
            "currentUtilization": 50,
            "currentAverageValue": "500m",
        }
    ]
    assert answer["rawRecommendation"] == 5
    assert answer["history"]["recommendations"] == [{"replicas": 5, "time": float(NOW)}]


def test_failed_metric_is_reported_with_its_reason() -> None:
    body = request(
        5,
        2,
        6,
        [cpu(50), external_metric("qps", "Value", "1")],
        pods([100, 300, 500, 250, 250], ONE[:5]),
    )
    answer = decide_horizontal(body)
    failed = answer["metrics"][1]
    assert failed["reason"] == "FailedGetExternalMetric"
    assert "qps" in failed["error"]
    assert answer["metrics"][0]["proposal"] == 3
    assert answer["history"]["recommendations"] == []  # no normalisation ran, as in Kubernetes


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(
            request(4, 2, 6, [cpu(100)], pods([None, None, None], ONE[:3])),
            "no metrics returned from resource metrics API",
            id="TestReplicaCalcEmptyMetrics",
        ),
        pytest.param(
            request(1, 1, 6, [cpu(100)], pods([200])),
            "needs pod requests",
            id="TestReplicaCalcEmptyCPURequest",
        ),
        pytest.param(
            request(3, 1, 6, [object_metric("qps", "15")], pods([None] * 3)),
            "failed to get qps object metric",
            id="TestConditionFailedGetMetrics/FailedGetObjectMetric",
        ),
        pytest.param(
            request(3, 1, 6, [pods_metric("qps", "15")], pods([None] * 3)),
            "failed to get qps pods metric",
            id="TestConditionFailedGetMetrics/FailedGetPodsMetric",
        ),
    ],
)
def test_nothing_computable_is_422(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DecideInputError) as raised:
        decide_horizontal(body)
    assert raised.value.status == 422
    assert fragment in raised.value.message


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        pytest.param(lambda b: b.update(kind="vertical"), "kind", id="unknown-kind"),
        pytest.param(
            lambda b: b.update(currentReplicas="3"), "currentReplicas", id="replicas-as-string"
        ),
        pytest.param(
            lambda b: b.update(currentReplicas=True), "currentReplicas", id="replicas-as-bool"
        ),
        pytest.param(lambda b: b.pop("now"), "now", id="missing-now"),
        pytest.param(lambda b: b.update(now="yesterday"), "now", id="bad-time"),
        pytest.param(
            lambda b: b["pods"][0]["metrics"].update(cpu="lots"),
            "pods.0.metrics.cpu",
            id="bad-quantity",
        ),
        pytest.param(
            lambda b: b["pods"][0].update(color="blue"), "pods.0.color", id="unknown-pod-field"
        ),
        pytest.param(
            lambda b: b["pods"].append(dict(b["pods"][0])), "pods.3.name", id="duplicate-pod"
        ),
        pytest.param(lambda b: b.update(extra=1), "extra", id="unknown-top-level-field"),
        pytest.param(
            lambda b: b["policy"].update(maxReplicas=0),
            "policy.maxReplicas",
            id="invalid-policy",
        ),
        pytest.param(
            lambda b: b.update(history={"recommendations": [{"replicas": 1}]}),
            "history.recommendations.0.time",
            id="bad-history",
        ),
        pytest.param(
            lambda b: b.update(pods=[{"name": f"p{i}"} for i in range(5001)]),
            "pods",
            id="too-many-pods",
        ),
        pytest.param(
            lambda b: b.update(rawRecommendation=3), "pods", id="raw-recommendation-with-pods"
        ),
        pytest.param(
            lambda b: b.update(options={"tolerance": -1}),
            "options.tolerance",
            id="negative-tolerance",
        ),
    ],
)
def test_malformed_input_is_400_naming_the_field(mutate: Any, field: str) -> None:
    body = request(3, 2, 6, [cpu(30)], pods([300, 500, 700], ONE[:3]))
    mutate(body)
    with pytest.raises(DecideInputError) as raised:
        decide_horizontal(body)
    assert raised.value.status == 400
    assert raised.value.message.startswith(f"{field}:"), raised.value.message


def test_rfc3339_times_and_behavior_tolerance() -> None:
    """A 5 % scale-up tolerance from behavior beats the 10 % option: 108 % -> ceil(1.08 x 3)."""
    body = request(
        3,
        1,
        10,
        [cpu(100)],
        pods([1080, 1080, 1080], ONE[:3]),
        spec={"behavior": {"scaleUp": {"tolerance": "0.05"}}},
    )
    body["now"] = "2023-11-14T22:13:20Z"
    assert decide_horizontal(body)["desiredReplicas"] == 4
    body["policy"]["behavior"]["scaleUp"]["tolerance"] = "0.1"
    assert decide_horizontal(body)["desiredReplicas"] == 3


def test_hot_cpu_pod_uses_start_time_and_metrics_time() -> None:
    """TestReplicaCalc "scale up: hot-CPU pod scales less": a pod started now whose sample is
    not a window past its readiness is left out (-> 4); sampled 60 s later it counts (-> 5)."""
    pod_list = pods([300, 500, 700], ONE[:3])
    pod_list[0]["startTime"] = NOW
    for pod in pod_list[1:]:
        pod["startTime"] = NOW - 180
    body = request(3, 1, 10, [cpu(30)], pod_list)
    assert decide_horizontal(body)["desiredReplicas"] == 4
    pod_list[0]["metricsTime"] = NOW + 60
    assert decide_horizontal(body)["desiredReplicas"] == 5


def test_scale_event_is_recorded_when_behavior_is_set() -> None:
    body = request(10, 1, 1000, [cpu(100)], rawRecommendation=50, spec={"behavior": {}})
    answer = decide_horizontal(body)
    assert (answer["desiredReplicas"], answer["reason"]) == (20, "ScaleUpLimit")
    assert answer["history"]["scaleUpEvents"] == [{"change": 10, "time": float(NOW)}]
    body["history"] = answer["history"]
    body["now"] = NOW + 5  # the 15 s budget is spent: hold at 20 (from 20, +100 % of 10)
    body["currentReplicas"] = 20
    assert decide_horizontal(body)["desiredReplicas"] == 20


def test_container_resource_metric_uses_one_container() -> None:
    """ "scale up: container metric": container2 uses 300/500/700 m of 1 core -> 50 % of 30 %."""
    metric = {
        "type": "ContainerResource",
        "containerResource": {
            "name": "cpu",
            "container": "container2",
            "target": {"type": "Utilization", "averageUtilization": 30},
        },
    }
    pod_list = [
        {
            "name": f"test-pod-{i}",
            "containers": [
                {"name": "container1", "requests": {"cpu": "1"}, "metrics": {"cpu": "1"}},
                {"name": "container2", "requests": {"cpu": "1"}, "metrics": {"cpu": f"{usage}m"}},
            ],
        }
        for i, usage in enumerate([300, 500, 700])
    ]
    answer = decide_horizontal(request(3, 1, 10, [metric], pod_list))
    assert answer["desiredReplicas"] == 5
    assert answer["metrics"][0]["currentUtilization"] == 50
    assert answer["metrics"][0]["container"] == "container2"


def test_scale_from_zero_with_an_object_metric() -> None:
    """minReplicas 0 with an Object metric: from 0 replicas the proposal is ceil(25/10) = 3."""
    body = request(0, 0, 10, [object_metric("qps", "10")], [], objectMetrics={"qps": "25"})
    assert decide_horizontal(body)["desiredReplicas"] == 3
