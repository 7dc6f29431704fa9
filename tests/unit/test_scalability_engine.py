"""The ScalabilityEngine's step: policy resolution, observations from workload readings,
scaling through the orchestrator, holds on missing data, and decisions with their reasons.

The orchestrator and source here are in-memory implementations of our own ports, so each
case can state exactly what the world looks like; the real adapters are exercised in
tests/integration/test_scalability_loop.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from controller.engines.scaling.engine import ScalabilityEngine, ScalabilitySettings, reason_code
from controller.engines.scaling.policy_sources import (
    POLICY_ANNOTATION,
    FilePolicyKey,
    PolicyFileError,
    load_policy_file,
    resolve_policy,
)
from controller.ports import (
    ActionResult,
    ContainerState,
    PodState,
    Resources,
    WorkloadRef,
    WorkloadState,
)
from controller.reconcile import StepContext
from shared.scaling_policy import ScalingPolicy, parse_policy
from shared.wire import Decision

from engine_fakes import Cluster, Metrics

WEB = WorkloadRef("line", "web", "Deployment")
NOW = 1_700_000_000.0


def cpu_policy(target: int = 50, **spec: object) -> ScalingPolicy:
    metric = {"type": "Utilization", "averageUtilization": target}
    return parse_policy(
        {
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": metric}}],
            **spec,
        }
    )


def workload(replicas: int, *, ready: int | None = None, cpu_request: int = 500) -> WorkloadState:
    ready = replicas if ready is None else ready
    pods = tuple(
        PodState(
            f"web-{i}",
            ready=i < ready,
            containers=(ContainerState("app", Resources(cpu_millicores=cpu_request)),),
        )
        for i in range(replicas)
    )
    return WorkloadState(WEB, replicas, ready, pods)


def rescaled(ref: WorkloadRef, replicas: int, old: WorkloadState) -> WorkloadState:
    return replace(workload(replicas), annotations=old.annotations)


@dataclass
class World:
    cluster: Cluster
    metrics: Metrics
    api_policies: dict[WorkloadRef, ScalingPolicy] = field(default_factory=dict)
    paused: set[WorkloadRef] = field(default_factory=set)
    past: list[Decision] = field(default_factory=list)
    now: float = NOW

    def engine(self, **kwargs: object) -> ScalabilityEngine:
        return ScalabilityEngine(
            orchestrator=lambda: self.cluster,
            source=lambda: self.metrics,
            api_policies=lambda: self.api_policies,
            paused=lambda ref: ref in self.paused,
            past_decisions=lambda ref, since: [d for d in self.past if d.decided_at >= since],
            clock=lambda: self.now,
            **kwargs,  # type: ignore[arg-type]
        )

    def context(self) -> StepContext:
        return StepContext(now=self.now, backed_off=frozenset())


def world(replicas: int, cpu_cores: float | None, policy: ScalingPolicy | None = None) -> World:
    values = {} if cpu_cores is None else {"cpu_cores": {WEB: cpu_cores}}
    result = World(Cluster({WEB: workload(replicas)}, rescaled), Metrics(values))  # type: ignore[dict-item]
    result.api_policies[WEB] = policy or cpu_policy()
    return result


async def test_scales_up_on_cpu_like_the_hpa_with_its_reason_recorded() -> None:
    # 2 pods of 500m each use 1.6 cores: 160 % against a 50 % target -> 7, but without a
    # behavior the HPA caps a scale-up at max(2 x current, 4) = 4.
    w = world(2, 1.6)
    (outcome,) = await w.engine().step(w.context())
    assert (outcome.result, w.cluster.scaled) == ("acted", [(WEB, 4)])
    decision = outcome.decision
    assert decision is not None
    assert (decision.from_value, decision.to_value, decision.reason.code) == (
        2,
        4,
        "scale_up_limit",
    )
    assert decision.reason.inputs["cpu_utilization_percent"] == 160
    assert decision.reason.inputs["raw_recommendation"] == 7
    assert decision.reason.policy == "api policy"
    assert decision.actuation.state == "done"


async def test_within_tolerance_nothing_changes_and_nothing_is_logged() -> None:
    w = world(4, 1.05)  # 52 % against 50 %: inside the 10 % band
    (outcome,) = await w.engine().step(w.context())
    assert (outcome.result, outcome.decision, w.cluster.scaled) == ("unchanged", None, [])


async def test_a_source_that_cannot_answer_never_scales_down_and_says_so_once() -> None:
    w = world(4, 0.1)
    w.metrics.down = True
    engine = w.engine()
    first = await engine.step(w.context())
    w.now += 15
    second = await engine.step(w.context())
    assert w.cluster.scaled == []
    assert [o.reason for o in first + second] == ["metrics_unavailable"] * 2
    assert first[0].decision is not None
    assert first[0].decision.reason.code == "metrics_unavailable"
    assert second[0].decision is None  # the same hold is recorded once, not every pass


async def test_a_missing_series_blocks_scale_down_but_not_scale_up() -> None:
    rps = {
        "type": "Pods",
        "pods": {
            "metric": {"name": "requests_per_second"},
            "target": {"type": "AverageValue", "averageValue": "10"},
        },
    }
    cpu = {"type": "Utilization", "averageUtilization": 50}
    policy = parse_policy(
        {
            "maxReplicas": 10,
            "metrics": [rps, {"type": "Resource", "resource": {"name": "cpu", "target": cpu}}],
        }
    )
    low = world(4, 0.2, policy)  # CPU alone asks for 1; requests/s is missing
    (held,) = await low.engine().step(low.context())
    assert (held.result, low.cluster.scaled) == ("unchanged", [])
    assert held.decision is not None
    assert held.decision.reason.code == "failed_get_pods_metric"
    high = world(2, 1.6, policy)  # CPU asks for more: scale up on the metric that remains
    (acted,) = await high.engine().step(high.context())
    assert (acted.result, high.cluster.scaled) == ("acted", [(WEB, 4)])


async def test_a_new_controller_does_not_scale_down_before_the_stabilization_window() -> None:
    w = world(4, 0.2)  # asks for 1
    engine = w.engine()
    (held,) = await engine.step(w.context())
    assert (held.result, w.cluster.scaled) == ("unchanged", [])
    w.now += 301  # the current count, seeded as a recommendation, has aged out
    (acted,) = await engine.step(w.context())
    assert (acted.result, w.cluster.scaled) == ("acted", [(WEB, 1)])


async def test_paused_and_unmanaged_workloads_are_left_alone() -> None:
    w = world(2, 1.6)
    w.paused.add(WEB)
    (paused,) = await w.engine().step(w.context())
    assert (paused.result, paused.reason) == ("skipped", "paused")
    w.api_policies.clear()
    assert await w.engine().step(w.context()) == []
    assert w.cluster.scaled == []


async def test_an_invalid_annotation_is_an_error_naming_the_field() -> None:
    w = world(2, 1.6)
    w.api_policies.clear()
    annotated = replace(
        w.cluster.states[WEB], annotations={POLICY_ANNOTATION: '{"maxReplicas": 0}'}
    )
    w.cluster.states[WEB] = annotated
    (outcome,) = await w.engine().step(w.context())
    assert outcome.result == "error"
    assert "maxReplicas" in outcome.reason
    assert w.cluster.scaled == []


@pytest.mark.parametrize(
    ("answer", "result", "state"),
    [
        pytest.param(ActionResult(ok=True, dry_run=True), "acted", "skipped", id="dry-run"),
        pytest.param(
            ActionResult(ok=False, detail="409", retry_after_seconds=2.0),
            "error",
            "failed",
            id="transient-failure",
        ),
    ],
)
async def test_the_actuation_is_recorded_as_it_happened(
    answer: ActionResult, result: str, state: str
) -> None:
    w = world(2, 1.6)
    w.cluster.answer = answer
    (outcome,) = await w.engine().step(w.context())
    assert outcome.result == result
    assert outcome.decision is not None
    assert outcome.decision.actuation.state == state
    if result == "error":
        assert outcome.retry_after_seconds == 2.0


async def test_scale_decisions_logged_before_a_restart_still_limit_the_rate() -> None:
    # behavior: at most +1 pod per 60 s. The previous controller scaled 2 -> 3 just now.
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    w = world(3, 3.0, cpu_policy(behavior=behavior))  # 200 % of 1.5 cores: asks for 6
    first = world(2, 3.0, cpu_policy(behavior=behavior))
    (earlier,) = await first.engine().step(first.context())
    assert earlier.decision is not None
    assert first.cluster.scaled == [(WEB, 3)]
    w.past = [earlier.decision]
    (outcome,) = await w.engine().step(w.context())
    assert (outcome.result, w.cluster.scaled) == ("unchanged", [])  # the budget is spent


async def test_forecast_ahead_raises_replicas_before_the_load_arrives() -> None:
    # Three days of a daily cycle, one sample a minute: 0.5 core at midnight, 4.5 at noon.
    # At 05:00 the load climbs steeply; the forecast 15 minutes ahead asks for more than the
    # reactive rule does, at a 100 % target of 500m pods.
    def load(t: float) -> float:
        return 2.5 - 2.0 * math.cos(2 * math.pi * (t % 86400) / 86400)

    now = NOW - NOW % 86400 + 5 * 3600
    points = [(now - 3 * 86400 + 60 * i, load(now - 3 * 86400 + 60 * i)) for i in range(3 * 1440)]
    predictive = {"enabled": True, "mode": "forecastAndScale", "leadTimeSeconds": 900}
    w = world(1, load(now), cpu_policy(target=100, predictive=predictive))
    w.now = now
    w.metrics.history_points[WEB] = points
    reactive = math.ceil(load(now) / 0.5)
    w.cluster.states[WEB] = workload(reactive)
    engine = w.engine(settings=ScalabilitySettings(forecast_step_seconds=60))
    (outcome,) = await engine.step(w.context())
    decision = outcome.decision
    assert decision is not None, outcome
    assert decision.reason.code == "forecast_ahead", decision.reason.message
    assert decision.reason.inputs["reactive_recommendation"] == reactive
    ahead = math.ceil(load(now + 900) / 0.5)
    assert decision.reason.inputs["forecast_replicas"] == pytest.approx(ahead, abs=1)
    assert decision.to_value == decision.reason.inputs["forecast_replicas"]


def test_reason_codes_are_snake_case() -> None:
    assert [
        reason_code(r) for r in ("DesiredWithinRange", "ScaleUpLimit", "FailedGetPodsMetric")
    ] == [
        "desired_within_range",
        "scale_up_limit",
        "failed_get_pods_metric",
    ]


# --- policy sources -----------------------------------------------------------------------------


def test_the_admin_api_beats_the_annotation_which_beats_the_file() -> None:
    api, filed = cpu_policy(10), cpu_policy(30)
    state = replace(workload(1), annotations={POLICY_ANNOTATION: json.dumps({"maxReplicas": 3})})
    by_file = {FilePolicyKey("line", "web", ""): filed}
    assert resolve_policy(state, {WEB: api}, by_file).origin == "api"
    from_annotation = resolve_policy(state, {}, by_file)
    assert from_annotation.origin == "annotation"
    assert from_annotation.policy is not None
    assert from_annotation.policy.max_replicas == 3
    assert resolve_policy(workload(1), {}, by_file).policy == filed
    assert resolve_policy(workload(1), {}, {}).origin is None


def test_a_policy_file_holds_ordinary_hpa_objects(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
        "metadata: {name: web, namespace: line}\n"
        "spec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n"
        "  minReplicas: 2\n  maxReplicas: 7\n"
    )
    policies = load_policy_file(path)
    assert policies[FilePolicyKey("line", "web", "Deployment")].max_replicas == 7


@pytest.mark.parametrize(
    ("text", "named"),
    [
        pytest.param("kind: Deployment\n", "kind", id="not-an-hpa"),
        pytest.param(
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nspec: {maxReplicas: 2}\n",
            "scaleTargetRef",
            id="no-target",
        ),
        pytest.param(
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n"
            "spec: {scaleTargetRef: {name: web}, maxReplicas: 0}\n",
            "maxReplicas",
            id="invalid-spec",
        ),
        pytest.param("a: [unclosed\n", "not YAML", id="not-yaml"),
    ],
)
def test_a_bad_policy_file_names_the_document_and_field(
    tmp_path: Path, text: str, named: str
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    with pytest.raises(PolicyFileError, match=named):
        load_policy_file(path)
