"""The scaling policy of one workload: a Kubernetes ``autoscaling/v2`` HPA spec, as written.

An operator can paste the ``spec`` of an existing HorizontalPodAutoscaler (or the whole
object) and get the same behaviour, so field names, defaults and validation follow
Kubernetes itself (``pkg/apis/autoscaling/v2/defaults.go`` and
``pkg/apis/autoscaling/validation/validation.go``). Two optional Linescale sections ride along:
``predictive`` (seasonal forecasting ahead of the load) and ``vertical`` (VPA-style sizing).

Refusals name the field in camelCase under ``spec.``, e.g.
``spec.behavior.scaleUp.policies.0.periodSeconds: must be between 1 and 1800``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from shared.quantities import parse_quantity

MAX_METRICS = 16
MAX_POLICIES = 10
MAX_STABILIZATION_WINDOW_SECONDS = 3600  # validation.go MaxStabilizationWindowSeconds
MAX_PERIOD_SECONDS = 1800  # validation.go MaxPeriodSeconds
DEFAULT_CPU_UTILIZATION = 80  # autoscaling.DefaultCPUUtilization
_MAX_NAME = 253


def _quantity(value: object) -> str:
    """A Kubernetes Quantity as its canonical input text; refuses what the API server would."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a quantity (string like '500m' or a number)")
    try:
        parse_quantity(value)
    except ValueError as error:
        raise ValueError(f"invalid quantity {value!r}") from error
    return value if isinstance(value, str) else str(value)


Quantity = Annotated[str, BeforeValidator(_quantity)]


@functools.lru_cache(maxsize=1024)
def _ratio(quantity: str) -> float:
    return float(parse_quantity(quantity))


class _Spec(BaseModel):
    """Kubernetes field names (camelCase) on the wire, snake_case in Python; strict and frozen."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        alias_generator=to_camel,
        populate_by_name=True,
        allow_inf_nan=False,
    )


class CrossVersionObjectReference(_Spec):
    kind: Annotated[str, Field(min_length=1, max_length=_MAX_NAME)]
    name: Annotated[str, Field(min_length=1, max_length=_MAX_NAME)]
    api_version: Annotated[str, Field(max_length=_MAX_NAME)] | None = None


class MetricIdentifier(_Spec):
    name: Annotated[str, Field(min_length=1, max_length=_MAX_NAME)]
    # A LabelSelector (matchLabels / matchExpressions); kept as given, used by the metric source.
    selector: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _path_segment(cls, name: str) -> str:
        # pathvalidation.IsValidPathSegmentName
        if name in (".", "..") or "/" in name or "%" in name:
            raise ValueError("may not be '.' or '..' and may not contain '/' or '%'")
        return name


class MetricTarget(_Spec):
    type: Literal["Utilization", "Value", "AverageValue"]
    value: Quantity | None = None
    average_value: Quantity | None = None
    average_utilization: int | None = None

    @model_validator(mode="after")
    def _positive_and_consistent(self) -> MetricTarget:
        if self.value is not None and parse_quantity(self.value) <= 0:
            raise ValueError("value: must be positive")
        if self.average_value is not None and parse_quantity(self.average_value) <= 0:
            raise ValueError("averageValue: must be positive")
        if self.average_utilization is not None and self.average_utilization < 1:
            raise ValueError("averageUtilization: must be greater than 0")
        # The field a target type reads must be set, and no other (the controller reads one).
        wanted = {
            "Utilization": "averageUtilization",
            "Value": "value",
            "AverageValue": "averageValue",
        }[self.type]
        present = {
            name
            for name, given in (
                ("value", self.value),
                ("averageValue", self.average_value),
                ("averageUtilization", self.average_utilization),
            )
            if given is not None
        }
        if wanted not in present:
            raise ValueError(f"{wanted}: required for a target of type {self.type}")
        if extra := sorted(present - {wanted}):
            raise ValueError(f"{extra[0]}: may not be set for a target of type {self.type}")
        return self


def _target_types(target: MetricTarget, allowed: tuple[str, ...], source: str) -> MetricTarget:
    if target.type not in allowed:
        raise ValueError(f"type: must be {' or '.join(allowed)} for a {source} metric")
    return target


class ResourceMetricSource(_Spec):
    name: Annotated[str, Field(min_length=1, max_length=_MAX_NAME)]
    target: MetricTarget

    @field_validator("target")
    @classmethod
    def _types(cls, target: MetricTarget) -> MetricTarget:
        return _target_types(target, ("Utilization", "AverageValue"), "Resource")


class ContainerResourceMetricSource(_Spec):
    name: Annotated[str, Field(min_length=1, max_length=_MAX_NAME)]
    container: Annotated[
        str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    ]
    target: MetricTarget

    @field_validator("target")
    @classmethod
    def _types(cls, target: MetricTarget) -> MetricTarget:
        return _target_types(target, ("Utilization", "AverageValue"), "ContainerResource")


class PodsMetricSource(_Spec):
    metric: MetricIdentifier
    target: MetricTarget

    @field_validator("target")
    @classmethod
    def _types(cls, target: MetricTarget) -> MetricTarget:
        return _target_types(target, ("AverageValue",), "Pods")


class ObjectMetricSource(_Spec):
    described_object: CrossVersionObjectReference
    metric: MetricIdentifier
    target: MetricTarget

    @field_validator("target")
    @classmethod
    def _types(cls, target: MetricTarget) -> MetricTarget:
        return _target_types(target, ("Value", "AverageValue"), "Object")


class ExternalMetricSource(_Spec):
    metric: MetricIdentifier
    target: MetricTarget

    @field_validator("target")
    @classmethod
    def _types(cls, target: MetricTarget) -> MetricTarget:
        return _target_types(target, ("Value", "AverageValue"), "External")


MetricSourceType = Literal["Resource", "ContainerResource", "Pods", "Object", "External"]
_SOURCE_FIELD = {
    "Resource": "resource",
    "ContainerResource": "container_resource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}


class MetricSpec(_Spec):
    type: MetricSourceType
    resource: ResourceMetricSource | None = None
    container_resource: ContainerResourceMetricSource | None = None
    pods: PodsMetricSource | None = None
    object: ObjectMetricSource | None = None
    external: ExternalMetricSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> MetricSpec:
        wanted = _SOURCE_FIELD[self.type]
        if getattr(self, wanted) is None:
            raise ValueError(
                f"{to_camel(wanted)}: must populate information for the given metric source"
            )
        for field in _SOURCE_FIELD.values():
            if field != wanted and getattr(self, field) is not None:
                raise ValueError(f"{to_camel(field)}: must populate the given metric source only")
        return self

    @property
    def source(
        self,
    ) -> (
        ResourceMetricSource
        | ContainerResourceMetricSource
        | PodsMetricSource
        | ObjectMetricSource
        | ExternalMetricSource
    ):
        source = getattr(self, _SOURCE_FIELD[self.type])
        assert source is not None  # guaranteed by _one_source
        return source  # type: ignore[no-any-return]

    @property
    def target(self) -> MetricTarget:
        return self.source.target

    @property
    def metric_name(self) -> str:
        """The resource name (Resource kinds) or the metric name (the others)."""
        source = self.source
        if isinstance(source, ResourceMetricSource | ContainerResourceMetricSource):
            return source.name
        return source.metric.name


class HPAScalingPolicy(_Spec):
    type: Literal["Pods", "Percent"]
    value: int
    period_seconds: int

    @field_validator("value")
    @classmethod
    def _value(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be greater than zero")
        return value

    @field_validator("period_seconds")
    @classmethod
    def _period(cls, period: int) -> int:
        if not 1 <= period <= MAX_PERIOD_SECONDS:
            raise ValueError(f"must be between 1 and {MAX_PERIOD_SECONDS}")
        return period


class HPAScalingRules(_Spec):
    stabilization_window_seconds: int | None = None
    select_policy: Literal["Max", "Min", "Disabled"] | None = None
    policies: Annotated[list[HPAScalingPolicy], Field(max_length=MAX_POLICIES)] | None = None
    tolerance: Quantity | None = None

    @field_validator("stabilization_window_seconds")
    @classmethod
    def _window(cls, window: int | None) -> int | None:
        if window is not None and not 0 <= window <= MAX_STABILIZATION_WINDOW_SECONDS:
            raise ValueError(f"must be between 0 and {MAX_STABILIZATION_WINDOW_SECONDS}")
        return window

    @field_validator("policies")
    @classmethod
    def _at_least_one(
        cls, policies: list[HPAScalingPolicy] | None
    ) -> list[HPAScalingPolicy] | None:
        if policies is not None and not policies:
            raise ValueError("must specify at least one Policy")
        return policies

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, tolerance: str | None) -> str | None:
        if tolerance is not None and parse_quantity(tolerance) < 0:
            raise ValueError("must be greater or equal to zero")
        return tolerance

    @property
    def tolerance_ratio(self) -> float | None:
        return None if self.tolerance is None else _ratio(self.tolerance)


class HorizontalPodAutoscalerBehavior(_Spec):
    scale_up: HPAScalingRules | None = None
    scale_down: HPAScalingRules | None = None


# defaults.go: filled field by field, and only when spec.behavior is present.
_DEFAULT_SCALE_UP: dict[str, Any] = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
_DEFAULT_SCALE_DOWN: dict[str, Any] = {
    # stabilizationWindowSeconds stays unset: the controller flag (300 s) applies.
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def _with_rule_defaults(given: object, defaults: Mapping[str, Any]) -> object:
    if given is None:
        return dict(defaults)
    if not isinstance(given, Mapping):
        return given  # let validation name the type error
    merged = dict(given)
    for camel, default in defaults.items():
        snake = _snake(camel)
        if merged.get(camel) is None and merged.get(snake) is None:
            merged.pop(snake, None)
            merged[camel] = default
    return merged


def _snake(camel: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in camel)


class PredictiveSpec(_Spec):
    """Seasonal forecasting that scales ahead of the load (AWS predictive scaling semantics)."""

    enabled: bool = False
    history_window_seconds: Annotated[int, Field(ge=3600, le=90 * 86400)] = 14 * 86400
    seasonalities: Annotated[
        list[Literal["daily", "weekly"]], Field(min_length=1, max_length=2)
    ] = [
        "daily",
        "weekly",
    ]
    lead_time_seconds: Annotated[int, Field(ge=0, le=3600)] = 300
    mode: Literal["forecastOnly", "forecastAndScale"] = "forecastOnly"
    max_error_percent: Annotated[float, Field(gt=0, le=1000)] = 30.0
    min_history_seconds: Annotated[int, Field(ge=3600, le=90 * 86400)] = 86400

    @model_validator(mode="after")
    def _history_fits(self) -> PredictiveSpec:
        if self.min_history_seconds > self.history_window_seconds:
            raise ValueError("minHistorySeconds: must not exceed historyWindowSeconds")
        if len(set(self.seasonalities)) != len(self.seasonalities):
            raise ValueError("seasonalities: must not repeat a value")
        return self


class ResourceBounds(_Spec):
    cpu: Quantity | None = None
    memory: Quantity | None = None

    @model_validator(mode="after")
    def _positive(self) -> ResourceBounds:
        for name in ("cpu", "memory"):
            value = getattr(self, name)
            if value is not None and parse_quantity(value) <= 0:
                raise ValueError(f"{name}: must be positive")
        return self


class VerticalSpec(_Spec):
    """VPA-style right-sizing of requests; "InPlace" resizes through ``pods/resize``."""

    mode: Literal["Off", "Recommend", "InPlace", "Recreate"] = "Off"
    controlled_resources: Annotated[
        list[Literal["cpu", "memory"]], Field(min_length=1, max_length=2)
    ] = ["cpu", "memory"]
    min_allowed: ResourceBounds | None = None
    max_allowed: ResourceBounds | None = None
    containers: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=63)]], Field(max_length=64)]
        | None
    ) = None

    @model_validator(mode="after")
    def _bounds_ordered(self) -> VerticalSpec:
        if self.min_allowed is None or self.max_allowed is None:
            return self
        for name in ("cpu", "memory"):
            low, high = getattr(self.min_allowed, name), getattr(self.max_allowed, name)
            if low is not None and high is not None and parse_quantity(low) > parse_quantity(high):
                raise ValueError(f"minAllowed.{name}: must not exceed maxAllowed.{name}")
        return self


class ScalingPolicy(_Spec):
    """One workload's policy: an HPA ``spec`` with Kubernetes defaults applied."""

    scale_target_ref: CrossVersionObjectReference | None = None
    min_replicas: int = 1
    max_replicas: int
    metrics: Annotated[list[MetricSpec], Field(max_length=MAX_METRICS)]
    behavior: HorizontalPodAutoscalerBehavior | None = None
    predictive: PredictiveSpec = PredictiveSpec()
    vertical: VerticalSpec = VerticalSpec()

    @model_validator(mode="before")
    @classmethod
    def _kubernetes_defaults(cls, raw: object) -> object:
        if not isinstance(raw, Mapping):
            return raw
        spec = dict(raw)
        if spec.get("minReplicas") is None and spec.get("min_replicas") is None:
            spec["minReplicas"] = 1
        if not spec.get("metrics"):
            spec.pop("metrics", None)
            spec["metrics"] = [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": DEFAULT_CPU_UTILIZATION,
                        },
                    },
                }
            ]
        behavior = spec.get("behavior")
        if isinstance(behavior, Mapping):
            filled = dict(behavior)
            for camel, defaults in (
                ("scaleUp", _DEFAULT_SCALE_UP),
                ("scaleDown", _DEFAULT_SCALE_DOWN),
            ):
                given = filled.pop(camel, filled.pop(_snake(camel), None))
                filled[camel] = _with_rule_defaults(given, defaults)
            spec["behavior"] = filled
        return spec

    @field_validator("min_replicas")
    @classmethod
    def _min(cls, value: int) -> int:
        if value < 0:
            raise ValueError("must be greater than or equal to 0")
        return value

    @field_validator("max_replicas")
    @classmethod
    def _max(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be greater than 0")
        return value

    @model_validator(mode="after")
    def _replica_bounds(self) -> ScalingPolicy:
        # minReplicas 0 is accepted with any metric (the HPA controller itself computes it:
        # TestZeroMinReplicasDesiredZero). Kubernetes' API validation refuses it unless the
        # HPAScaleToZero gate is on and an Object or External metric exists, because pod
        # metrics vanish at zero replicas; README says so for operators.
        if self.max_replicas < self.min_replicas:
            raise ValueError("maxReplicas: must be greater than or equal to `minReplicas`")
        return self

    @property
    def scale_up_rules(self) -> HPAScalingRules | None:
        return None if self.behavior is None else self.behavior.scale_up

    @property
    def scale_down_rules(self) -> HPAScalingRules | None:
        return None if self.behavior is None else self.behavior.scale_down


class PolicyError(ValueError):
    """A policy was refused; ``problems`` lists (field path in camelCase, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(
            "invalid scaling policy: "
            + "; ".join(f"{field}: {message}" for field, message in problems)
        )


def _problem(location: tuple[int | str, ...], message: str) -> tuple[str, str]:
    path = ["spec", *(str(part) for part in location)]
    message = message.removeprefix("Value error, ")
    # Validators that name a sub-field ("averageValue: must be positive") extend the path.
    head, separator, rest = message.partition(": ")
    if separator and head and " " not in head and not head.startswith("`"):
        path.append(head)
        message = rest
    return ".".join(path), message


def _as_mapping(raw: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(raw, str | bytes):
        text = raw.decode() if isinstance(raw, bytes) else raw
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError:
            try:
                loaded = yaml.safe_load(text)
            except yaml.YAMLError as error:
                raise PolicyError([("spec", f"neither JSON nor YAML: {error}")]) from None
        raw = loaded
    if not isinstance(raw, Mapping):
        raise PolicyError([("spec", "must be an object")])
    if raw.get("kind") == "HorizontalPodAutoscaler" or "apiVersion" in raw:
        if raw.get("kind") != "HorizontalPodAutoscaler":
            raise PolicyError([("kind", "must be HorizontalPodAutoscaler")])
        if raw.get("apiVersion") != "autoscaling/v2":
            raise PolicyError([("apiVersion", "must be autoscaling/v2")])
        unknown = sorted(set(raw) - {"apiVersion", "kind", "metadata", "spec", "status"})
        if unknown:
            raise PolicyError([(unknown[0], "unknown field")])
        spec = raw.get("spec")
        if not isinstance(spec, Mapping):
            raise PolicyError([("spec", "must be an object")])
        return spec
    return raw


def parse_policy(raw: Mapping[str, Any] | str | bytes) -> ScalingPolicy:
    """A validated policy from an HPA spec (or whole HPA object), as a dict or JSON/YAML text."""
    spec = _as_mapping(raw)
    try:
        return ScalingPolicy.model_validate(spec, by_alias=True, by_name=False)
    except ValidationError as error:
        raise PolicyError(
            [
                _problem(tuple(item["loc"]), str(item["msg"]))
                for item in error.errors(include_url=False)
            ]
        ) from None


def policy_to_json(policy: ScalingPolicy) -> dict[str, Any]:
    """The policy in Kubernetes camelCase, defaults included; ``parse_policy`` reads it back."""
    return policy.model_dump(mode="json", by_alias=True, exclude_none=True)
