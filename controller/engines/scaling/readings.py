"""From workload-level readings to the per-pod observation the HPA calculation expects.

Our metrics sources answer per workload (one batched query per metric family), not per pod as
the Kubernetes metrics API does. The total is spread evenly over the workload's pods, so the
HPA's utilisation and averages come out as Kubernetes would compute them from equal pods;
what is lost is per-pod skew, which the HPA averages away anyway. Pods are taken as started
long ago (our pod states carry no start time), so the CPU initialisation period does not apply;
a pod that is not ready counts as never-ready for CPU, as Kubernetes counts it after start-up.

A workload the source has no fresh value for gets no samples at all, so its metric fails and
the HPA rules apply: no scale-down on missing data, scale-up on the metrics that remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from controller.engines.scaling.horizontal import Observation
from controller.engines.scaling.replica_calculator import Container, Pod, Sample
from controller.ports import (
    ContainerState,
    MetricFamily,
    PodState,
    Reading,
    WorkloadRef,
    WorkloadState,
)
from shared.scaling_policy import MetricSpec, ScalingPolicy

FAMILIES: frozenset[str] = frozenset(get_args(MetricFamily))
RESOURCE_FAMILIES: Mapping[str, MetricFamily] = {"cpu": "cpu_cores", "memory": "memory_bytes"}
# Families whose workload value is a sum over pods (spread per pod); the others are already
# per-pod figures (a latency percentile), given to every pod as they are.
SUMMED_FAMILIES = frozenset({"cpu_cores", "memory_bytes", "requests_per_second"})
SAMPLE_WINDOW_SECONDS = 60.0


def family_of(spec: MetricSpec) -> MetricFamily | None:
    """The source family a metric spec reads, or None when no source serves it."""
    name = spec.metric_name
    if spec.type in ("Resource", "ContainerResource"):
        return RESOURCE_FAMILIES.get(name)
    return name if name in FAMILIES else None  # type: ignore[return-value]


def families_for(policy: ScalingPolicy) -> set[MetricFamily]:
    return {family for spec in policy.metrics if (family := family_of(spec)) is not None}


def _requests(container: ContainerState) -> dict[str, int]:
    """Requests in milli-units, as Kubernetes' ``MilliValue`` gives them."""
    requests: dict[str, int] = {}
    if container.requests.cpu_millicores is not None:
        requests["cpu"] = container.requests.cpu_millicores
    if container.requests.memory_bytes is not None:
        requests["memory"] = container.requests.memory_bytes * 1000
    return requests


def _pod(state: PodState) -> Pod:
    containers = tuple(Container(c.name, _requests(c)) for c in state.containers)
    return Pod(state.name, ready=state.ready, containers=containers)


def observation_from_readings(
    state: WorkloadState, policy: ScalingPolicy, readings: Mapping[MetricFamily, Reading | None]
) -> Observation:
    """The HPA observation of one workload; pure."""
    pods = tuple(_pod(pod) for pod in state.pods)
    pod_samples: dict[str, dict[str, Sample]] = {}
    container_samples: dict[tuple[str, str], dict[str, Sample]] = {}
    object_values: dict[str, int] = {}
    external_values: dict[str, tuple[int, ...]] = {}
    for spec in policy.metrics:
        family = family_of(spec)
        total = _value(readings, family, state.ref)
        if family is None or total is None:
            continue
        milli = round(total * 1000)
        if spec.type in ("Object", "External"):
            if spec.type == "Object":
                object_values[spec.metric_name] = milli
            else:
                external_values[spec.metric_name] = (milli,)
            continue
        if not pods:
            continue
        at = readings[family].at  # type: ignore[union-attr]
        each = round(milli / len(pods)) if family in SUMMED_FAMILIES else milli
        samples = {pod.name: Sample(each, at, SAMPLE_WINDOW_SECONDS) for pod in pods}
        if spec.type == "ContainerResource":
            container = getattr(spec.source, "container", "")
            # Only a pod's sole container can be credited with the pod's usage.
            if all(len(p.containers) == 1 and p.containers[0].name == container for p in pods):
                container_samples[(container, spec.metric_name)] = samples
            continue
        pod_samples[spec.metric_name] = samples
    return Observation(pods, pod_samples, container_samples, object_values, external_values)


def _value(
    readings: Mapping[MetricFamily, Reading | None], family: MetricFamily | None, ref: WorkloadRef
) -> float | None:
    if family is None:
        return None
    reading = readings.get(family)
    if reading is None:
        return None
    return reading.values.get(ref)
