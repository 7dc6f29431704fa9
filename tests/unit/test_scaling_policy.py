"""The scaling policy model: Kubernetes autoscaling/v2 defaults (defaults.go) and validation
(validation.go), the Linescale sections, and refusals that name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.scaling_policy import PolicyError, ScalingPolicy, parse_policy, policy_to_json

FIXTURES = Path(__file__).resolve().parents[2] / "testing/fixtures/scalability_data"


def spec(**fields: Any) -> dict[str, Any]:
    return {"maxReplicas": 10, **fields}


def test_defaults_follow_kubernetes() -> None:
    """SetDefaults_HorizontalPodAutoscaler: minReplicas 1, CPU Utilization 80 %, no behavior."""
    policy = parse_policy(spec())
    assert policy.min_replicas == 1
    assert policy.behavior is None
    (metric,) = policy.metrics
    assert (metric.type, metric.metric_name, metric.target.average_utilization) == (
        "Resource",
        "cpu",
        80,
    )
    assert policy.predictive.enabled is False
    assert policy.predictive.lead_time_seconds == 300
    assert policy.vertical.mode == "Off"
    assert policy.vertical.controlled_resources == [
        "cpu",
        "memory",
    ]


def test_behavior_defaults_are_filled_field_by_field() -> None:
    """GenerateHPAScaleUpRules / GenerateHPAScaleDownRules: only the unset fields change."""
    policy = parse_policy(
        spec(
            behavior={
                "scaleUp": {"stabilizationWindowSeconds": 60},
                "scaleDown": {"selectPolicy": "Min"},
            }
        )
    )
    assert policy.behavior is not None
    up, down = policy.behavior.scale_up, policy.behavior.scale_down
    assert up is not None
    assert down is not None
    assert up.stabilization_window_seconds == 60
    assert up.select_policy == "Max"
    assert [(p.type, p.value, p.period_seconds) for p in up.policies or ()] == [
        ("Pods", 4, 15),
        ("Percent", 100, 15),
    ]
    assert down.stabilization_window_seconds is None  # the controller flag (300 s) applies
    assert down.select_policy == "Min"
    assert [(p.type, p.value, p.period_seconds) for p in down.policies or ()] == [
        ("Percent", 100, 15)
    ]


def test_whole_hpa_object_and_yaml_text_are_accepted() -> None:
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": spec(
            minReplicas=2,
            scaleTargetRef={"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        ),
    }
    from_object = parse_policy(hpa)
    assert from_object.min_replicas == 2
    assert from_object.scale_target_ref is not None
    assert parse_policy(yaml.safe_dump(hpa)) == from_object
    assert parse_policy(json.dumps(hpa).encode()) == from_object


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(entry["hpa"], id=entry["name"])
        for entry in json.loads((FIXTURES / "sample_scaling_policies.json").read_text())
    ],
)
def test_sample_policies_parse_and_round_trip(raw: dict[str, Any]) -> None:
    policy = parse_policy(raw)
    assert parse_policy(policy_to_json(policy)) == policy


def test_round_trip_keeps_every_section() -> None:
    policy = parse_policy(
        spec(
            minReplicas=0,
            metrics=[
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "queue", "selector": {"matchLabels": {"q": "orders"}}},
                        "target": {"type": "AverageValue", "averageValue": "30"},
                    },
                }
            ],
            behavior={
                "scaleDown": {
                    "tolerance": "0.05",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }
            },
            predictive={"enabled": True, "seasonalities": ["daily"], "mode": "forecastAndScale"},
            vertical={
                "mode": "InPlace",
                "minAllowed": {"cpu": "100m"},
                "maxAllowed": {"cpu": "2", "memory": "4Gi"},
            },
        )
    )
    document = policy_to_json(policy)
    assert document["behavior"]["scaleDown"]["tolerance"] == "0.05"
    assert parse_policy(document) == policy
    assert isinstance(policy, ScalingPolicy)


REFUSALS = [
    (spec(maxReplicas=0), "spec.maxReplicas", "must be greater than 0"),
    (spec(minReplicas=11), "spec.maxReplicas", "must be greater than or equal to `minReplicas`"),
    (spec(minReplicas=-1), "spec.minReplicas", "greater than or equal to 0"),
    (spec(maxReplicas="10"), "spec.maxReplicas", "valid integer"),
    (
        spec(
            behavior={
                "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 1801}]}
            }
        ),
        "spec.behavior.scaleUp.policies.0.periodSeconds",
        "must be between 1 and 1800",
    ),
    (
        spec(
            behavior={"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}
        ),
        "spec.behavior.scaleUp.policies.0.value",
        "must be greater than zero",
    ),
    (
        spec(
            behavior={
                "scaleUp": {"policies": [{"type": "Replicas", "value": 1, "periodSeconds": 15}]}
            }
        ),
        "spec.behavior.scaleUp.policies.0.type",
        "'Pods' or 'Percent'",
    ),
    (
        spec(behavior={"scaleDown": {"policies": []}}),
        "spec.behavior.scaleDown.policies",
        "at least one Policy",
    ),
    (
        spec(behavior={"scaleDown": {"stabilizationWindowSeconds": 3601}}),
        "spec.behavior.scaleDown.stabilizationWindowSeconds",
        "between 0 and 3600",
    ),
    (
        spec(behavior={"scaleDown": {"selectPolicy": "Most"}}),
        "spec.behavior.scaleDown.selectPolicy",
        "'Max', 'Min' or 'Disabled'",
    ),
    (
        spec(behavior={"scaleUp": {"tolerance": "-0.1"}}),
        "spec.behavior.scaleUp.tolerance",
        "greater or equal to zero",
    ),
    (
        spec(
            behavior={
                "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}] * 11}
            }
        ),
        "spec.behavior.scaleUp.policies",
        "at most 10",
    ),
    (
        spec(
            metrics=[
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ]
            * 17
        ),
        "spec.metrics",
        "at most 16",
    ),
    (
        spec(
            metrics=[
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "qps"},
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ]
        ),
        "spec.metrics.0.pods.target.type",
        "AverageValue",
    ),
    (
        spec(
            metrics=[
                {
                    "type": "Object",
                    "object": {
                        "describedObject": {"kind": "Ingress", "name": "main"},
                        "metric": {"name": "rps"},
                        "target": {"type": "Utilization", "averageUtilization": 5},
                    },
                }
            ]
        ),
        "spec.metrics.0.object.target.type",
        "Value or AverageValue",
    ),
    (
        spec(
            metrics=[
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "AverageValue", "averageValue": "0"},
                    },
                }
            ]
        ),
        "spec.metrics.0.resource.target.averageValue",
        "must be positive",
    ),
    (
        spec(
            metrics=[
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}
            ]
        ),
        "spec.metrics.0.resource.target.averageUtilization",
        "required",
    ),
    (
        spec(
            metrics=[
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 0},
                    },
                }
            ]
        ),
        "spec.metrics.0.resource.target.averageUtilization",
        "greater than 0",
    ),
    (
        spec(
            metrics=[
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "q"},
                        "target": {"type": "Value", "value": "1", "averageValue": "1"},
                    },
                }
            ]
        ),
        "spec.metrics.0.external.target.averageValue",
        "may not be set",
    ),
    (
        spec(
            metrics=[
                {
                    "type": "External",
                    "external": {
                        "metric": {"name": "q"},
                        "target": {"type": "Value", "value": "lots"},
                    },
                }
            ]
        ),
        "spec.metrics.0.external.target.value",
        "invalid quantity",
    ),
    (spec(metrics=[{"type": "Resource"}]), "spec.metrics.0.resource", "must populate information"),
    (spec(metrics=[{"type": "CheddarCheese"}]), "spec.metrics.0.type", "Input should be"),
    (
        spec(
            metrics=[
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "a/b"},
                        "target": {"type": "AverageValue", "averageValue": "1"},
                    },
                }
            ]
        ),
        "spec.metrics.0.pods.metric.name",
        "may not",
    ),
    (spec(replicas=3), "spec.replicas", "Extra inputs"),
    (
        spec(predictive={"leadTimeSeconds": 7200}),
        "spec.predictive.leadTimeSeconds",
        "less than or equal to 3600",
    ),
    (
        spec(predictive={"seasonalities": ["hourly"]}),
        "spec.predictive.seasonalities.0",
        "'daily' or 'weekly'",
    ),
    (
        spec(predictive={"minHistorySeconds": 86400 * 30}),
        "spec.predictive.minHistorySeconds",
        "must not exceed",
    ),
    (spec(vertical={"mode": "Auto"}), "spec.vertical.mode", "Input should be"),
    (
        spec(vertical={"minAllowed": {"cpu": "2"}, "maxAllowed": {"cpu": "1"}}),
        "spec.vertical.minAllowed.cpu",
        "must not exceed",
    ),
    (
        {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "spec": spec()},
        "apiVersion",
        "autoscaling/v2",
    ),
]


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        pytest.param(
            raw, field, fragment, id=field.removeprefix("spec.") + "-" + fragment.split()[0]
        )
        for raw, field, fragment in REFUSALS
    ],
)
def test_refusals_name_the_field(raw: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(raw)
    fields = [problem[0] for problem in raised.value.problems]
    assert field in fields, raised.value.problems
    assert any(fragment in message for name, message in raised.value.problems if name == field)
    assert field in str(raised.value)


def test_scale_to_zero_is_allowed_with_an_object_metric() -> None:
    metric = {
        "type": "Object",
        "object": {
            "describedObject": {"kind": "Service", "name": "web"},
            "metric": {"name": "rps"},
            "target": {"type": "Value", "value": "100"},
        },
    }
    assert parse_policy(spec(minReplicas=0, metrics=[metric])).min_replicas == 0


def test_text_that_is_neither_json_nor_an_object_is_refused() -> None:
    with pytest.raises(PolicyError, match="spec: must be an object"):
        parse_policy("- just\n- a list\n")
