"""The horizontal decision: Kubernetes ``reconcileAutoscaler`` minus the API calls.

``decide`` is the pure core (plain dataclasses in, a ``HorizontalDecision`` out): the
current==0 / above-max / below-min rules, a proposal per metric
(``computeReplicasForMetrics``: the maximum wins, a failed metric blocks a scale-down but not
a scale-up), then normalisation. ``decide_horizontal`` is the JSON face of the same thing;
its input format is documented on the function.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from controller.engines.decide_input import DecideInputError, as_quantity
from controller.engines.decide_input import as_list as _list
from controller.engines.decide_input import as_mapping as _mapping
from controller.engines.decide_input import as_number as _number
from controller.engines.decide_input import as_time as _time
from controller.engines.decide_input import bad as _bad
from controller.engines.decide_input import check_keys as _check_keys
from controller.engines.scaling.normalize import (
    Normalized,
    ScaleEvent,
    ScalingHistory,
    TimestampedRecommendation,
    normalize_replicas,
    record_scale_event,
)
from controller.engines.scaling.replica_calculator import (
    GO_ZERO_TIME,
    Container,
    MetricUnavailableError,
    MissingRequestError,
    Pod,
    Sample,
    Timing,
    Tolerances,
    external_average_value_replicas,
    external_value_replicas,
    format_milli_quantity,
    object_average_value_replicas,
    object_value_replicas,
    plain_metric_replicas,
    resource_utilization_replicas,
)
from shared.quantities import parse_quantity
from shared.scaling_policy import MetricSpec, PolicyError, ScalingPolicy, parse_policy

DEFAULT_TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DEFAULT_DOWNSCALE_STABILIZATION_SECONDS = 300.0
DEFAULT_METRICS_WINDOW_SECONDS = 30.0
MAX_PODS = 5000
MAX_HISTORY = 1000
MAX_NAMED_METRICS = 100
MAX_EXTERNAL_SAMPLES = 1000

_NO_HISTORY = ScalingHistory()
_DEFAULT_TIMING = Timing()
_FAILURE_REASON = {
    "Resource": "FailedGetResourceMetric",
    "ContainerResource": "FailedGetContainerResourceMetric",
    "Pods": "FailedGetPodsMetric",
    "Object": "FailedGetObjectMetric",
    "External": "FailedGetExternalMetric",
}


class NoMetricAvailableError(Exception):
    """Not one metric gave a proposal, or a Utilization target lacks a pod's request."""


@dataclass(frozen=True, slots=True)
class Observation:
    """What was measured: pods, per-pod samples by metric (or resource) name, per-container
    samples by (container, resource), Object values and External series, in milli-units."""

    pods: tuple[Pod, ...] = ()
    pod_samples: Mapping[str, Mapping[str, Sample]] = field(default_factory=dict)
    container_samples: Mapping[tuple[str, str], Mapping[str, Sample]] = field(default_factory=dict)
    object_values: Mapping[str, int] = field(default_factory=dict)
    external_values: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric's proposal and current value, or why it has none."""

    spec: MetricSpec
    proposal: int | None = None
    utilization: int | None = None  # percent, Utilization targets
    average_value: int | None = None  # milli-units per pod
    value: int | None = None  # milli-units, Object/External Value targets
    error: str | None = None
    reason: str | None = None  # FailedGet*Metric when error is set


@dataclass(frozen=True, slots=True)
class HorizontalDecision:
    desired_replicas: int
    reason: str
    message: str
    raw_recommendation: int | None = None
    normalized: Normalized | None = None
    metrics: tuple[MetricResult, ...] = ()
    history: ScalingHistory = field(default_factory=ScalingHistory)


@dataclass(frozen=True, slots=True)
class _MetricsOutcome:
    replicas: int | None  # None: no scaling (all failed, or a failure would allow a scale-down)
    metric: str
    results: tuple[MetricResult, ...]
    first_failure: MetricResult | None
    invalid: int


def tolerances_for(policy: ScalingPolicy, default: float = DEFAULT_TOLERANCE) -> Tolerances:
    """Per-direction tolerance from ``behavior`` (KEP-4951), else the controller default."""
    up = policy.scale_up_rules
    down = policy.scale_down_rules
    up_tolerance = up.tolerance_ratio if up is not None else None
    down_tolerance = down.tolerance_ratio if down is not None else None
    return Tolerances(
        scale_down=default if down_tolerance is None else down_tolerance,
        scale_up=default if up_tolerance is None else up_tolerance,
    )


@functools.lru_cache(maxsize=4096)
def _milli(quantity: str) -> int:
    """A target quantity in milli-units, rounded up as ``Quantity.MilliValue()``; cached
    because policies repeat the same few targets on every decision."""
    return int((parse_quantity(quantity) * 1000).to_integral_value(rounding=ROUND_CEILING))


def compute_metric(
    spec: MetricSpec,
    current_replicas: int,
    observation: Observation,
    tolerances: Tolerances,
    now: float,
    timing: Timing,
) -> MetricResult:
    """``computeReplicasForMetric`` for one metric spec; ``MissingRequestError`` propagates."""
    source = spec.source
    target = source.target
    try:
        if spec.type in ("Resource", "ContainerResource"):
            resource = source.name  # type: ignore[union-attr]
            container = getattr(source, "container", "")
            if container:
                samples = observation.container_samples.get((container, resource), {})
            else:
                samples = observation.pod_samples.get(resource, {})
            if target.average_value is not None:
                plain = plain_metric_replicas(
                    current_replicas,
                    _milli(target.average_value),
                    resource,
                    observation.pods,
                    samples,
                    tolerances,
                    now,
                    timing,
                )
                return MetricResult(spec, plain.replicas, average_value=plain.usage)
            assert target.average_utilization is not None  # policy validation
            proposal = resource_utilization_replicas(
                current_replicas,
                target.average_utilization,
                resource,
                observation.pods,
                samples,
                tolerances,
                now,
                timing,
                container,
            )
            return MetricResult(
                spec,
                proposal.replicas,
                utilization=proposal.utilization,
                average_value=proposal.raw_average,
            )
        name = spec.metric_name
        if spec.type == "Pods":
            assert target.average_value is not None
            plain = plain_metric_replicas(
                current_replicas,
                _milli(target.average_value),
                None,
                observation.pods,
                observation.pod_samples.get(name, {}),
                tolerances,
                now,
                timing,
            )
            return MetricResult(spec, plain.replicas, average_value=plain.usage)
        if spec.type == "Object":
            value = observation.object_values.get(name)
            if value is None:
                raise MetricUnavailableError(
                    f"unable to get metric {name}: no value for the object"
                )
            if target.value is not None:
                usage = object_value_replicas(
                    current_replicas, _milli(target.value), value, tolerances, observation.pods
                )
                return MetricResult(spec, usage.replicas, value=usage.usage)
            assert target.average_value is not None
            usage = object_average_value_replicas(
                current_replicas, _milli(target.average_value), value, tolerances
            )
            return MetricResult(spec, usage.replicas, average_value=usage.usage)
        series = observation.external_values.get(name, ())
        if target.average_value is not None:
            usage = external_average_value_replicas(
                current_replicas, _milli(target.average_value), series, tolerances
            )
            return MetricResult(spec, usage.replicas, average_value=usage.usage)
        assert target.value is not None
        usage = external_value_replicas(
            current_replicas, _milli(target.value), series, tolerances, observation.pods
        )
        return MetricResult(spec, usage.replicas, value=usage.usage)
    except MissingRequestError:
        raise
    except MetricUnavailableError as error:
        kind = spec.type.lower() if spec.type != "ContainerResource" else "container resource"
        return MetricResult(
            spec,
            error=f"failed to get {spec.metric_name} {kind} metric: {error}",
            reason=_FAILURE_REASON[spec.type],
        )


def _metric_label(spec: MetricSpec) -> str:
    if spec.type == "Resource":
        return f"{spec.metric_name} resource"
    if spec.type == "ContainerResource":
        return f"{spec.metric_name} container resource"
    return f"{spec.type.lower()} metric {spec.metric_name}"


def compute_replicas_for_metrics(
    policy: ScalingPolicy,
    current_replicas: int,
    observation: Observation,
    tolerances: Tolerances,
    now: float,
    timing: Timing,
) -> _MetricsOutcome:
    """``computeReplicasForMetrics``: the highest proposal; with any failure, no scale-down."""
    replicas = 0
    metric = ""
    results: list[MetricResult] = []
    first_failure: MetricResult | None = None
    invalid = 0
    for spec in policy.metrics:
        result = compute_metric(spec, current_replicas, observation, tolerances, now, timing)
        results.append(result)
        if result.proposal is None:
            invalid += 1
            first_failure = first_failure or result
            continue
        if replicas == 0 or result.proposal > replicas:
            replicas = result.proposal
            metric = _metric_label(spec)
    if invalid >= len(policy.metrics) or (invalid > 0 and replicas < current_replicas):
        return _MetricsOutcome(None, metric, tuple(results), first_failure, invalid)
    return _MetricsOutcome(replicas, metric, tuple(results), first_failure, invalid)


def decide(
    policy: ScalingPolicy,
    current_replicas: int,
    now: float,
    *,
    observation: Observation | None = None,
    raw_recommendation: int | None = None,
    history: ScalingHistory = _NO_HISTORY,
    tolerance: float = DEFAULT_TOLERANCE,
    timing: Timing = _DEFAULT_TIMING,
    downscale_stabilization_seconds: float = DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
) -> HorizontalDecision:
    """One reconcile step. Raises ``NoMetricAvailableError`` when no metric gives a proposal."""
    min_replicas = policy.min_replicas
    if current_replicas == 0 and min_replicas != 0:
        return HorizontalDecision(
            0,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
            history=history,
        )
    if current_replicas > policy.max_replicas:
        return _rescaled(
            policy,
            current_replicas,
            policy.max_replicas,
            "TooManyReplicas",
            "Current number of replicas above Spec.MaxReplicas",
            history,
            now,
        )
    if current_replicas < min_replicas:
        return _rescaled(
            policy,
            current_replicas,
            min_replicas,
            "TooFewReplicas",
            "Current number of replicas below Spec.MinReplicas",
            history,
            now,
        )

    results: tuple[MetricResult, ...] = ()
    failure: MetricResult | None = None
    failure_message = ""
    if raw_recommendation is None:
        outcome = compute_replicas_for_metrics(
            policy,
            current_replicas,
            observation or Observation(),
            tolerances_for(policy, tolerance),
            now,
            timing,
        )
        results = outcome.results
        failure = outcome.first_failure
        if failure is not None:
            failure_message = (
                f"invalid metrics ({outcome.invalid} invalid out of {len(policy.metrics)}), "
                f"first error is: {failure.error}"
            )
        if outcome.replicas is None:
            if outcome.invalid >= len(policy.metrics):
                raise NoMetricAvailableError(failure_message)
            assert failure is not None
            assert failure.reason is not None
            return HorizontalDecision(
                current_replicas,
                failure.reason,
                f"{failure_message}; not scaling down while a metric is unavailable",
                metrics=results,
                history=history,
            )
        raw_recommendation = outcome.replicas

    normalized = normalize_replicas(
        policy,
        current_replicas,
        raw_recommendation,
        history,
        now,
        downscale_stabilization_seconds=downscale_stabilization_seconds,
    )
    desired = normalized.replicas
    stored = record_scale_event(policy, normalized.history, current_replicas, desired, now)
    reason, message = normalized.reason, normalized.message
    if failure is not None and failure.reason is not None:
        reason, message = failure.reason, f"{failure_message}; scaling on the other metrics"
    return HorizontalDecision(
        desired, reason, message, raw_recommendation, normalized, results, stored
    )


def _rescaled(
    policy: ScalingPolicy,
    current: int,
    desired: int,
    reason: str,
    message: str,
    history: ScalingHistory,
    now: float,
) -> HorizontalDecision:
    stored = record_scale_event(policy, history, current, desired, now)
    return HorizontalDecision(desired, reason, message, history=stored)


# --- the JSON interface ----------------------------------------------------------------------


def _int(value: object, path: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, "must be an integer")
    if value < minimum or value > 2**31 - 1:
        raise _bad(path, f"must be between {minimum} and {2**31 - 1}")
    return value


def _quantity_milli(value: object, path: str) -> int:
    exact = as_quantity(value, path)
    return int((exact * Decimal(1000)).to_integral_value(rounding=ROUND_CEILING))


_TOP_KEYS = frozenset(
    {
        "kind",
        "now",
        "policy",
        "currentReplicas",
        "pods",
        "objectMetrics",
        "externalMetrics",
        "history",
        "options",
        "rawRecommendation",
    }
)
_POD_KEYS = frozenset(
    {
        "name",
        "phase",
        "ready",
        "deleted",
        "startTime",
        "readySince",
        "requests",
        "metrics",
        "metricsTime",
        "metricsWindowSeconds",
        "containers",
    }
)
_CONTAINER_KEYS = frozenset({"name", "requests", "metrics", "sidecar"})
_OPTION_KEYS = frozenset(
    {
        "tolerance",
        "cpuInitializationPeriodSeconds",
        "initialReadinessDelaySeconds",
        "downscaleStabilizationSeconds",
    }
)
_PHASES = frozenset({"Pending", "Running", "Succeeded", "Failed", "Unknown"})


def _quantities(raw: object, path: str) -> dict[str, int]:
    values = _mapping(raw, path)
    if len(values) > MAX_NAMED_METRICS:
        raise _bad(path, f"at most {MAX_NAMED_METRICS} entries")
    return {str(name): _quantity_milli(value, f"{path}.{name}") for name, value in values.items()}


def _parse_pods(raw: object, now: float) -> Observation:
    pods: list[Pod] = []
    pod_samples: dict[str, dict[str, Sample]] = {}
    container_samples: dict[tuple[str, str], dict[str, Sample]] = {}
    seen: set[str] = set()
    for index, item in enumerate(_list(raw, "pods", MAX_PODS)):
        path = f"pods.{index}"
        entry = _mapping(item, path)
        _check_keys(entry, _POD_KEYS, path)
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{path}.name", "must be a non-empty string")
        if name in seen:
            raise _bad(f"{path}.name", f"duplicate pod name {name!r}")
        seen.add(name)
        phase = entry.get("phase", "Running")
        if phase not in _PHASES:
            raise _bad(f"{path}.phase", f"must be one of {sorted(_PHASES)}")
        ready = entry.get("ready", True)
        if ready is not None and not isinstance(ready, bool):
            raise _bad(f"{path}.ready", "must be true, false or null (no Ready condition)")
        deleted = entry.get("deleted", False)
        if not isinstance(deleted, bool):
            raise _bad(f"{path}.deleted", "must be a boolean")
        start_raw = entry.get("startTime", GO_ZERO_TIME)
        start = None if start_raw is None else _time(start_raw, f"{path}.startTime")
        # A pod becomes ready after it starts: without readySince, its start time is the
        # best estimate of the Ready condition's last transition.
        ready_since_raw = entry.get("readySince")
        if ready_since_raw is None:
            ready_since = start if start is not None else GO_ZERO_TIME
        else:
            ready_since = _time(ready_since_raw, f"{path}.readySince")
        sample_time = _time(entry.get("metricsTime", now), f"{path}.metricsTime")
        window = _number(
            entry.get("metricsWindowSeconds", DEFAULT_METRICS_WINDOW_SECONDS),
            f"{path}.metricsWindowSeconds",
        )
        pod_requests = (
            _quantities(entry["requests"], f"{path}.requests") if "requests" in entry else None
        )
        metrics = _quantities(entry.get("metrics", {}), f"{path}.metrics")
        containers: list[Container] = []
        summed: dict[str, int] | None = None
        if "containers" in entry:
            summed = {}
            per_container: list[dict[str, int]] = []
            for c_index, c_item in enumerate(_list(entry["containers"], f"{path}.containers", 64)):
                c_path = f"{path}.containers.{c_index}"
                c_entry = _mapping(c_item, c_path)
                _check_keys(c_entry, _CONTAINER_KEYS, c_path)
                c_name = c_entry.get("name")
                if not isinstance(c_name, str) or not c_name:
                    raise _bad(f"{c_path}.name", "must be a non-empty string")
                sidecar = c_entry.get("sidecar", False)
                if not isinstance(sidecar, bool):
                    raise _bad(f"{c_path}.sidecar", "must be a boolean")
                c_requests = _quantities(c_entry.get("requests", {}), f"{c_path}.requests")
                c_metrics = _quantities(c_entry.get("metrics", {}), f"{c_path}.metrics")
                containers.append(Container(c_name, c_requests, sidecar))
                per_container.append(c_metrics)
                for resource, value in c_metrics.items():
                    container_samples.setdefault((c_name, resource), {})[name] = Sample(
                        value, sample_time, window
                    )
            # A pod's resource usage is the sum over its containers, when all report it.
            for resource in set().union(*per_container) if per_container else set():
                if all(resource in c_metrics for c_metrics in per_container):
                    summed[resource] = sum(c_metrics[resource] for c_metrics in per_container)
        else:  # one container carrying the pod's requests; none given means none set
            containers.append(Container("main", pod_requests or {}))
        for metric_name, value in {**(summed or {}), **metrics}.items():
            pod_samples.setdefault(metric_name, {})[name] = Sample(value, sample_time, window)
        pods.append(
            Pod(
                name,
                phase,
                deleted,
                ready,
                ready_since,
                start,
                tuple(containers),
                pod_requests if "containers" in entry else None,
            )
        )
    return Observation(tuple(pods), pod_samples, container_samples)


def _parse_history(raw: object) -> ScalingHistory:
    history = _mapping(raw, "history")
    _check_keys(
        history, frozenset({"recommendations", "scaleUpEvents", "scaleDownEvents"}), "history"
    )
    recommendations = []
    for index, item in enumerate(
        _list(history.get("recommendations", []), "history.recommendations", MAX_HISTORY)
    ):
        path = f"history.recommendations.{index}"
        entry = _mapping(item, path)
        _check_keys(entry, frozenset({"replicas", "time"}), path)
        recommendations.append(
            TimestampedRecommendation(
                _int(entry.get("replicas"), f"{path}.replicas"),
                _time(entry.get("time"), f"{path}.time"),
            )
        )
    events: dict[str, list[ScaleEvent]] = {"scaleUpEvents": [], "scaleDownEvents": []}
    for key, parsed in events.items():
        for index, item in enumerate(_list(history.get(key, []), f"history.{key}", MAX_HISTORY)):
            path = f"history.{key}.{index}"
            entry = _mapping(item, path)
            _check_keys(entry, frozenset({"change", "time"}), path)
            parsed.append(
                ScaleEvent(
                    _int(entry.get("change"), f"{path}.change"),
                    _time(entry.get("time"), f"{path}.time"),
                )
            )
    return ScalingHistory(
        tuple(recommendations), tuple(events["scaleUpEvents"]), tuple(events["scaleDownEvents"])
    )


def history_to_json(history: ScalingHistory) -> dict[str, Any]:
    return {
        "recommendations": [
            {"replicas": r.replicas, "time": r.time} for r in history.recommendations
        ],
        "scaleUpEvents": [{"change": e.change, "time": e.time} for e in history.scale_up_events],
        "scaleDownEvents": [
            {"change": e.change, "time": e.time} for e in history.scale_down_events
        ],
    }


def _metric_to_json(result: MetricResult) -> dict[str, Any]:
    spec = result.spec
    entry: dict[str, Any] = {"type": spec.type, "name": spec.metric_name}
    container = getattr(spec.source, "container", None)
    if container:
        entry["container"] = container
    if result.error is not None:
        entry["error"] = result.error
        entry["reason"] = result.reason
        return entry
    entry["proposal"] = result.proposal
    if result.utilization is not None:
        entry["currentUtilization"] = result.utilization
    if result.average_value is not None:
        entry["currentAverageValue"] = format_milli_quantity(result.average_value)
    if result.value is not None:
        entry["currentValue"] = format_milli_quantity(result.value)
    return entry


def decide_horizontal(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Decide one workload's replica count from a JSON request (already parsed).

    Input::

        {"kind": "horizontal", "now": <unix s | RFC 3339>, "policy": <HPA spec or object>,
         "currentReplicas": 3,
         "pods": [{"name", "phase" ("Running"), "ready" (true; null = no Ready condition),
                   "deleted" (false), "startTime" (long ago; null = none),
                   "readySince" (= startTime), "requests": {"cpu": "500m"},
                   "metrics": {"cpu": "250m", "<pods metric>": "12"},
                   "metricsTime" (= now), "metricsWindowSeconds" (30),
                   "containers": [{"name", "requests", "metrics", "sidecar"}] (optional)}],
         "objectMetrics": {"<name>": "<quantity>"},
         "externalMetrics": {"<name>": ["<quantity>", ...]},
         "history": {"recommendations": [{"replicas", "time"}],
                     "scaleUpEvents": [{"change", "time"}], "scaleDownEvents": [...]},
         "options": {"tolerance" (0.1), "cpuInitializationPeriodSeconds" (300),
                     "initialReadinessDelaySeconds" (30), "downscaleStabilizationSeconds" (300)}}

    ``"rawRecommendation": N`` instead of pods and metrics applies normalisation only.
    Raises ``DecideInputError`` (400 malformed, 422 nothing computable).
    """
    body = _mapping(raw, "(body)")
    _check_keys(body, _TOP_KEYS, "")
    if body.get("kind") != "horizontal":
        raise _bad("kind", "must be 'horizontal'")
    if "now" not in body:
        raise _bad("now", "required")
    now = _time(body["now"], "now")
    if "policy" not in body:
        raise _bad("policy", "required")
    try:
        policy = parse_policy(_mapping(body["policy"], "policy"))
    except PolicyError as error:
        problems = [
            (f"policy.{field_path.removeprefix('spec.')}", message)
            for field_path, message in error.problems
        ]
        summary = "; ".join(f"{field_path}: {message}" for field_path, message in problems)
        raise DecideInputError(400, summary, problems) from None
    if "currentReplicas" not in body:
        raise _bad("currentReplicas", "required")
    current = _int(body["currentReplicas"], "currentReplicas")

    options = _mapping(body.get("options", {}), "options")
    _check_keys(options, _OPTION_KEYS, "options")
    tolerance_raw = options.get("tolerance", DEFAULT_TOLERANCE)
    tolerance = (
        float(_quantity_milli(tolerance_raw, "options.tolerance")) / 1000
        if isinstance(tolerance_raw, str)
        else _number(tolerance_raw, "options.tolerance")
    )
    if tolerance < 0:
        raise _bad("options.tolerance", "must be at least 0")
    timing = Timing(
        _number(
            options.get("cpuInitializationPeriodSeconds", 300.0),
            "options.cpuInitializationPeriodSeconds",
        ),
        _number(
            options.get("initialReadinessDelaySeconds", 30.0),
            "options.initialReadinessDelaySeconds",
        ),
    )
    downscale_window = _number(
        options.get("downscaleStabilizationSeconds", DEFAULT_DOWNSCALE_STABILIZATION_SECONDS),
        "options.downscaleStabilizationSeconds",
    )
    history = _parse_history(body.get("history", {}))

    raw_recommendation: int | None = None
    observation = Observation()
    if "rawRecommendation" in body:
        raw_recommendation = _int(body["rawRecommendation"], "rawRecommendation")
        for key in ("pods", "objectMetrics", "externalMetrics"):
            if body.get(key):
                raise _bad(key, "give either rawRecommendation or pods and metrics, not both")
    else:
        pods_observation = _parse_pods(body.get("pods", []), now)
        object_values = _quantities(body.get("objectMetrics", {}), "objectMetrics")
        external_raw = _mapping(body.get("externalMetrics", {}), "externalMetrics")
        if len(external_raw) > MAX_NAMED_METRICS:
            raise _bad("externalMetrics", f"at most {MAX_NAMED_METRICS} entries")
        external_values = {
            str(name): tuple(
                _quantity_milli(value, f"externalMetrics.{name}.{index}")
                for index, value in enumerate(
                    _list(series, f"externalMetrics.{name}", MAX_EXTERNAL_SAMPLES)
                )
            )
            for name, series in external_raw.items()
        }
        observation = Observation(
            pods_observation.pods,
            pods_observation.pod_samples,
            pods_observation.container_samples,
            object_values,
            external_values,
        )

    try:
        decision = decide(
            policy,
            current,
            now,
            observation=observation,
            raw_recommendation=raw_recommendation,
            history=history,
            tolerance=tolerance,
            timing=timing,
            downscale_stabilization_seconds=downscale_window,
        )
    except MissingRequestError as error:
        raise DecideInputError(422, f"a Utilization target needs pod requests: {error}") from None
    except NoMetricAvailableError as error:
        raise DecideInputError(422, f"no metric could be computed: {error}") from None

    answer: dict[str, Any] = {
        "desiredReplicas": decision.desired_replicas,
        "currentReplicas": current,
        "reason": decision.reason,
        "message": decision.message,
        "scale": decision.desired_replicas != current,
        "metrics": [_metric_to_json(result) for result in decision.metrics],
        "history": history_to_json(decision.history),
    }
    if decision.raw_recommendation is not None:
        answer["rawRecommendation"] = decision.raw_recommendation
    if decision.normalized is not None:
        answer["normalization"] = decision.normalized.reason
        answer["normalizationMessage"] = decision.normalized.message
    return answer
