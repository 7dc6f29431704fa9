"""The replica calculator against Kubernetes' own table: replica_calculator_test.go.

Every case keeps the Go test's name as its id and its expected values. The Go fixture builds
pods named ``test-pod-<i>`` with two containers that each request the listed CPU and report
the listed usage, a zero start time, a Ready condition with a zero transition time, and
samples with a zero timestamp and a one-minute window; the calculator runs with tolerance
0.1, a 2-minute CPU initialisation period and a 10-second readiness delay.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from controller.engines.scaling.replica_calculator import (
    GO_ZERO_TIME,
    MAX_INT32,
    MAX_INT64,
    Container,
    MetricUnavailableError,
    MissingRequestError,
    Pod,
    Sample,
    Timing,
    Tolerances,
    calculate_requests,
    external_average_value_replicas,
    external_value_replicas,
    format_milli_quantity,
    group_pods,
    object_average_value_replicas,
    object_value_replicas,
    plain_metric_replicas,
    resource_utilization_replicas,
)

NOW = 1_700_000_000.0
TEST_TIMING = Timing(cpu_initialization_period=120.0, initial_readiness_delay=10.0)
TOL = Tolerances(0.1, 0.1)
HOT = NOW  # hotCPUCreationTime(): started now, inside the CPU initialisation period
COOL = NOW - 180  # coolCPUCreationTime(): started 3 minutes ago
T, F = True, False


def fixture_pods(
    count: int,
    requests: Sequence[int] = (),
    readiness: Sequence[bool] = (),
    start: Sequence[float] = (),
    phase: Sequence[str] = (),
    deleted: Sequence[bool] = (),
) -> tuple[Pod, ...]:
    """The Go fixture's pods; ``requests`` is each container's CPU request in millicores."""
    total = max(count, len(phase))
    pods = []
    for i in range(total):
        container_requests = {"cpu": requests[i]} if i < len(requests) else {}
        pods.append(
            Pod(
                name=f"test-pod-{i}",
                phase=phase[i] if phase else "Running",
                deleted=deleted[i] if deleted else False,
                ready=readiness[i] if i < len(readiness) else True,
                start_time=start[i] if start else GO_ZERO_TIME,
                containers=(
                    Container("container1", container_requests),
                    Container("container2", container_requests),
                ),
            )
        )
    return tuple(pods)


def levels(*per_pod: int) -> list[list[int]]:
    """makePodMetricLevels: both containers of pod i report per_pod[i]."""
    return [[value, value] for value in per_pod]


def resource_samples(
    container_levels: Sequence[Sequence[int]], container: str = "", names: Sequence[str] = ()
) -> dict[str, Sample]:
    """The resource metrics API: a pod whose asked-for container(s) report nothing is absent."""
    samples = {}
    for i, values in enumerate(container_levels):
        name = names[i] if i < len(names) else f"test-pod-{i}"
        if container:
            index = int(container[-1]) - 1
            if index >= len(values):
                continue
            value = values[index]
        else:
            if len(values) < 2:
                continue
            value = sum(values)
        samples[name] = Sample(value, GO_ZERO_TIME, 60.0)
    return samples


def plain_samples(values: Sequence[int]) -> dict[str, Sample]:
    return {f"test-pod-{i}": Sample(value, GO_ZERO_TIME, 60.0) for i, value in enumerate(values)}


ONE = (1000, 1000, 1000, 1000, 1000, 1000, 1000)
RESOURCE_CASES = [
    # (current, requests, levels, target, expected replicas, utilization, raw, extras)
    pytest.param(
        3, ONE[:3], levels(300, 500, 700), 30, 5, 50, 1000, {}, id="ResourceScale/scale-up"
    ),
    pytest.param(
        3,
        ONE[:3],
        [[1000, 300], [1000, 500], [1000, 700]],
        30,
        5,
        50,
        500,
        {"container": "container2"},
        id="ResourceScale/scale-up-container-metric",
    ),
    pytest.param(
        3,
        ONE[:3],
        levels(300, 500, 700),
        30,
        4,
        60,
        1200,
        {"readiness": (F, T, T)},
        id="ResourceScale/scale-up-unready-pod-scales-less",
    ),
    pytest.param(
        3,
        ONE[:3],
        [[0, 300], [0, 500], [0, 700]],
        30,
        4,
        60,
        600,
        {"start": (HOT, COOL, COOL), "container": "container2"},
        id="ResourceScale/scale-up-hot-cpu-container-scales-less",
    ),
    pytest.param(
        3,
        ONE[:3],
        levels(300, 500, 700),
        30,
        4,
        60,
        1200,
        {"start": (HOT, COOL, COOL)},
        id="ResourceScale/scale-up-hot-cpu-pod-scales-less",
    ),
    pytest.param(
        3,
        ONE[:3],
        levels(400, 500, 700),
        30,
        3,
        40,
        800,
        {"readiness": (T, F, F)},
        id="ResourceScale/no-scale-unready-pods-ignored",
    ),
    pytest.param(
        3,
        ONE[:3],
        levels(400, 500, 700),
        30,
        3,
        40,
        800,
        {"readiness": (T, F, F), "start": (COOL, HOT, HOT)},
        id="ResourceScale/no-scale-hot-cpu-pods-ignored",
    ),
    pytest.param(
        2,
        ONE[:4],
        levels(500, 700),
        30,
        4,
        60,
        1200,
        {"readiness": (T, T, F, F), "phase": ("Running", "Running", "Failed", "Failed")},
        id="ResourceScale/scale-up-failed-pods-ignored",
    ),
    pytest.param(
        2,
        ONE[:4],
        [[1000, 500], [9000, 700], [1000], [9000]],
        30,
        4,
        60,
        600,
        {
            "readiness": (T, T, F, F),
            "phase": ("Running", "Running", "Failed", "Failed"),
            "container": "container2",
        },
        id="ResourceScale/scale-up-failed-pods-ignored-with-missing-container-metric",
    ),
    pytest.param(
        2,
        ONE[:4],
        levels(500, 700),
        30,
        4,
        60,
        1200,
        {"readiness": (T, T, F, F), "deleted": (F, F, T, T)},
        id="ResourceScale/scale-up-pods-being-deleted-are-ignored",
    ),
    pytest.param(
        2,
        ONE[:4],
        levels(500, 700),
        30,
        4,
        60,
        600,
        {"readiness": (T, T, F, F), "deleted": (F, F, T, T), "container": "container1"},
        id="ResourceScale/scale-up-container-metrics-with-pods-being-deleted-ignored",
    ),
    pytest.param(
        5,
        ONE[:5],
        levels(100, 300, 500, 250, 250),
        50,
        3,
        28,
        560,
        {},
        id="ResourceScale/scale-down",
    ),
    pytest.param(
        5,
        ONE[:5],
        [[1000, 100], [1000, 300], [1000, 500], [1000, 250], [1000, 250]],
        50,
        3,
        28,
        280,
        {"container": "container2"},
        id="ResourceScale/scale-down-container-metric",
    ),
    pytest.param(
        5,
        ONE[:5],
        levels(100, 300, 500, 250, 250),
        50,
        2,
        30,
        600,
        {"readiness": (T, T, T, F, F)},
        id="ResourceScale/scale-down-exclude-unready-pods",
    ),
    pytest.param(
        5,
        ONE[:5],
        levels(100),
        50,
        1,
        10,
        200,
        {"readiness": (T, F, F, F, F), "phase": ("Running",) + ("Pending",) * 4},
        id="ResourceScale/scale-down-exclude-unscheduled-pods",
    ),
    pytest.param(
        5,
        ONE[:5],
        levels(100, 300, 500, 250, 250),
        50,
        2,
        30,
        600,
        {"start": (COOL, COOL, COOL, HOT, HOT)},
        id="ResourceScale/scale-down-ignore-hot-cpu-pods",
    ),
    pytest.param(
        5,
        ONE[:7],
        levels(100, 300, 500, 250, 250),
        50,
        3,
        28,
        560,
        {"readiness": (T,) * 5 + (F, F), "phase": ("Running",) * 5 + ("Failed",) * 2},
        id="ResourceScale/scale-down-failed-pods-ignored",
    ),
    pytest.param(
        5,
        ONE[:7],
        levels(100, 300, 500, 250, 250),
        50,
        3,
        28,
        560,
        {"readiness": (T,) * 5 + (F, F), "deleted": (F,) * 5 + (T, T)},
        id="ResourceScale/scale-down-pods-being-deleted-are-ignored",
    ),
    pytest.param(
        3,
        (900, 1000, 1100),
        levels(1010, 1030, 1020),
        100,
        3,
        102,
        2040,
        {},
        id="TestReplicaCalcTolerance",
    ),
    pytest.param(
        4,
        ONE[:4],
        levels(4000, 9500, 3000, 7000, 3200, 2000),
        100,
        24,
        587,
        11750,
        {},
        id="TestReplicaCalcSuperfluousMetrics",
    ),
    pytest.param(
        4, ONE[:4], levels(400, 95), 100, 3, 24, 495, {}, id="TestReplicaCalcMissingMetrics"
    ),
    pytest.param(
        2,
        ONE[:2],
        levels(1000),
        100,
        2,
        100,
        2000,
        {},
        id="TestReplicaCalcMissingMetricsNoChangeEq",
    ),
    pytest.param(
        2,
        ONE[:2],
        levels(1900),
        100,
        2,
        190,
        3800,
        {},
        id="TestReplicaCalcMissingMetricsNoChangeGt",
    ),
    pytest.param(
        2, ONE[:2], levels(600), 100, 2, 60, 1200, {}, id="TestReplicaCalcMissingMetricsNoChangeLt"
    ),
    pytest.param(
        3,
        ONE[:3],
        levels(100, 450),
        50,
        3,
        45,
        900,
        {"readiness": (F, T, T)},
        id="TestReplicaCalcMissingMetricsUnreadyChange",
    ),
    pytest.param(
        3,
        ONE[:3],
        levels(100, 450),
        50,
        3,
        45,
        900,
        {"start": (HOT, COOL, COOL)},
        id="TestReplicaCalcMissingMetricsHotCpuNoChange",
    ),
    pytest.param(
        3,
        ONE[:3],
        levels(100, 2000),
        50,
        4,
        200,
        4000,
        {"readiness": (F, T, T)},
        id="TestReplicaCalcMissingMetricsUnreadyScaleUp",
    ),
    pytest.param(
        3,
        ONE[:3],
        levels(100, 2000),
        50,
        4,
        200,
        4000,
        {"readiness": (F, T, T), "start": (HOT, COOL, COOL)},
        id="TestReplicaCalcMissingMetricsHotCpuScaleUp",
    ),
    pytest.param(
        4,
        ONE[:4],
        levels(100, 100, 100),
        50,
        3,
        10,
        200,
        {"readiness": (F, T, T, T)},
        id="TestReplicaCalcMissingMetricsUnreadyScaleDown",
    ),
    pytest.param(
        4,
        (1000, 1000, 2000, 2000),
        levels(200, 100, 100),
        300,
        2,
        6,
        200,
        {"readiness": (F, T, T, T)},
        id="TestReplicaCalcMissingMetricsScaleDownTargetOver100",
    ),
    pytest.param(
        2,
        ONE[:3],
        levels(100, 100),
        50,
        2,
        10,
        200,
        {"phase": ("Running",) * 3},
        id="TestReplicaCalcDuringRollingUpdateWithMaxSurge",
    ),
]


@pytest.mark.parametrize(
    (
        "current",
        "requests",
        "container_levels",
        "target",
        "replicas",
        "utilization",
        "raw",
        "extras",
    ),
    RESOURCE_CASES,
)
def test_resource_utilization_matches_kubernetes(
    current: int,
    requests: Sequence[int],
    container_levels: list[list[int]],
    target: int,
    replicas: int,
    utilization: int,
    raw: int,
    extras: dict[str, object],
) -> None:
    container = str(extras.get("container", ""))
    pods = fixture_pods(
        current,
        requests,
        readiness=extras.get("readiness", ()),  # type: ignore[arg-type]
        start=extras.get("start", ()),  # type: ignore[arg-type]
        phase=extras.get("phase", ()),  # type: ignore[arg-type]
        deleted=extras.get("deleted", ()),  # type: ignore[arg-type]
    )
    samples = resource_samples(container_levels, container)
    got = resource_utilization_replicas(
        current, target, "cpu", pods, samples, TOL, NOW, TEST_TIMING, container
    )
    assert (got.replicas, got.utilization, got.raw_average) == (replicas, utilization, raw)


# TestReplicaCalcConfigurableTolerance: requests 0.9/1.0/1.1 per container, target 100 %.
@pytest.mark.parametrize(
    ("tolerances", "usage", "replicas", "utilization", "raw"),
    [
        pytest.param(
            Tolerances(0.0, 0.0), (909, 1010, 1111), 4, 101, 2020, id="outside-0pct-tolerance"
        ),
        pytest.param(
            Tolerances(0.1, 2.0), (1890, 1910, 1900), 3, 190, 3800, id="within-200pct-scale-up"
        ),
        pytest.param(
            Tolerances(2.0, 0.08), (1100, 1080, 1090), 4, 109, 2180, id="outside-8pct-scale-up"
        ),
        pytest.param(
            Tolerances(0.36, 0.1), (660, 640, 650), 3, 65, 1300, id="within-36pct-scale-down"
        ),
        pytest.param(
            Tolerances(0.34, 0.1), (660, 640, 650), 2, 65, 1300, id="outside-34pct-scale-down"
        ),
    ],
)
def test_configurable_tolerance(
    tolerances: Tolerances, usage: tuple[int, int, int], replicas: int, utilization: int, raw: int
) -> None:
    pods = fixture_pods(3, (900, 1000, 1100))
    got = resource_utilization_replicas(
        3, 100, "cpu", pods, resource_samples(levels(*usage)), tolerances, NOW, TEST_TIMING
    )
    assert (got.replicas, got.utilization, got.raw_average) == (replicas, utilization, raw)


def test_computed_tolerance_alg_implementation() -> None:
    """TestReplicaCalcComputedToleranceAlgImplementation, evaluated by hand: 10 pods using
    150 m per container against 300 m (+-jitter) requests are at 50 %. A target of
    int32((1/(2 x 0.9) + 0.01) x 100) = 56 % is just outside the band: ceil(50/56 x 10) = 9;
    a target of int32((1/(2 x 0.9) + 0.004) x 100) = 55 % is inside (50/55 = 0.909): hold 10."""
    requests = [300 + jitter for jitter in (100, -100, 10, -10, 2, -2, 1, -1, 0, 0)]
    pods = fixture_pods(10, requests)
    samples = resource_samples(levels(*[150] * 10))
    outside = resource_utilization_replicas(10, 56, "cpu", pods, samples, TOL, NOW, TEST_TIMING)
    assert (outside.replicas, outside.utilization) == (9, 50)
    inside = resource_utilization_replicas(10, 55, "cpu", pods, samples, TOL, NOW, TEST_TIMING)
    assert inside.replicas == 10


@pytest.mark.parametrize(
    ("current", "requests", "samples", "message"),
    [
        pytest.param(
            1,
            (1000,),
            resource_samples(levels(100), names=("an-older-pod-name",)),
            "no metrics returned matched known pods",
            id="TestReplicaCalcDisjointResourcesMetrics",
        ),
        pytest.param(
            4,
            (1000, 1000, 1000),
            {},
            "no metrics returned from resource metrics API",
            id="TestReplicaCalcEmptyMetrics",
        ),
        pytest.param(
            1,
            (),
            resource_samples(levels(200)),
            "missing request for",
            id="TestReplicaCalcEmptyCPURequest",
        ),
    ],
)
def test_resource_errors(
    current: int, requests: Sequence[int], samples: dict[str, Sample], message: str
) -> None:
    pods = fixture_pods(current, requests)
    with pytest.raises(MetricUnavailableError, match=message):
        resource_utilization_replicas(current, 100, "cpu", pods, samples, TOL, NOW, TEST_TIMING)


@pytest.mark.parametrize(
    ("current", "values", "target", "replicas", "usage", "extras"),
    [
        pytest.param(3, (20000, 10000, 30000), 15000, 4, 20000, {}, id="TestReplicaCalcScaleUpCM"),
        pytest.param(
            3,
            (50000, 10000, 30000),
            15000,
            6,
            30000,
            {"readiness": (T, T, F), "start": (COOL, COOL, HOT)},
            id="TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale",
        ),
        pytest.param(
            3,
            (50000, 15000, 30000),
            15000,
            7,
            31666,
            {"readiness": (F, T, F), "start": (HOT, COOL, HOT)},
            id="TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown",
        ),
        pytest.param(5, (12000,) * 5, 20000, 3, 12000, {}, id="TestReplicaCalcScaleDownCM"),
        pytest.param(
            3, (20000, 21000, 21000), 20000, 3, 20666, {}, id="TestReplicaCalcToleranceCM"
        ),
        pytest.param(
            3,
            (20000, 21000, 21000),
            20000,
            4,
            20666,
            {"tolerances": Tolerances(0.1, 0.01)},
            id="TestReplicaCalcConfigurableToleranceCM",
        ),
        pytest.param(
            5,
            (20000, 19000, 21000),
            20000,
            5,
            20000,
            {},
            id="TestPlainMetricReplicaCalcMissingMetricsNoChangeEq",
        ),
        pytest.param(
            2,
            (10000, 10000),
            17000,
            2,
            10000,
            {"phase": ("Running",) * 3},
            id="TestReplicaCalcDuringRollingUpdateWithMaxSurgeCM",
        ),
    ],
)
def test_pods_metric_matches_kubernetes(
    current: int,
    values: Sequence[int],
    target: int,
    replicas: int,
    usage: int,
    extras: dict[str, object],
) -> None:
    pods = fixture_pods(
        current,
        readiness=extras.get("readiness", ()),  # type: ignore[arg-type]
        start=extras.get("start", ()),  # type: ignore[arg-type]
        phase=extras.get("phase", ()),  # type: ignore[arg-type]
    )
    tolerances = extras.get("tolerances", TOL)
    assert isinstance(tolerances, Tolerances)
    got = plain_metric_replicas(
        current, target, None, pods, plain_samples(values), tolerances, NOW, TEST_TIMING
    )
    assert (got.replicas, got.usage) == (replicas, usage)


@pytest.mark.parametrize(
    ("current", "value", "target", "replicas", "readiness", "tolerances"),
    [
        pytest.param(3, 20000, 15000, 4, (), TOL, id="TestReplicaCalcScaleUpCMObject"),
        pytest.param(
            3,
            50000,
            10000,
            5,
            (F, T, F),
            TOL,
            id="TestReplicaCalcScaleUpCMObjectIgnoresUnreadyPods",
        ),
        pytest.param(5, 12000, 20000, 3, (), TOL, id="TestReplicaCalcScaleDownCMObject"),
        pytest.param(3, 20666, 20000, 3, (), TOL, id="TestReplicaCalcToleranceCMObject"),
        pytest.param(
            3,
            20666,
            20000,
            4,
            (),
            Tolerances(0.1, 0.01),
            id="TestReplicaCalcConfigurableToleranceCMObject",
        ),
        pytest.param(3, MAX_INT64, 1, MAX_INT32, (), TOL, id="TestReplicaCalcScaleUpOverflow"),
    ],
)
def test_object_value_matches_kubernetes(
    current: int,
    value: int,
    target: int,
    replicas: int,
    readiness: Sequence[bool],
    tolerances: Tolerances,
) -> None:
    got = object_value_replicas(
        current, target, value, tolerances, fixture_pods(current, readiness=readiness)
    )
    assert (got.replicas, got.usage) == (replicas, value)


@pytest.mark.parametrize(
    ("current", "value", "target", "replicas", "usage", "tolerances"),
    [
        pytest.param(3, 20000, 5000, 4, 6667, TOL, id="TestReplicaCalcScaleUpCMPerPodObject"),
        pytest.param(5, 6000, 2000, 3, 1200, TOL, id="TestReplicaCalcScaleDownPerPodCMObject"),
        pytest.param(4, 20166, 5000, 4, 5042, TOL, id="TestReplicaCalcTolerancePerPodCMObject"),
        pytest.param(
            4,
            20208,
            5000,
            5,
            5052,
            Tolerances(0.1, 0.01),
            id="TestReplicaCalcConfigurableTolerancePerPodCMObject",
        ),
    ],
)
def test_object_average_value_matches_kubernetes(
    current: int, value: int, target: int, replicas: int, usage: int, tolerances: Tolerances
) -> None:
    got = object_average_value_replicas(current, target, value, tolerances)
    assert (got.replicas, got.usage) == (replicas, usage)


@pytest.mark.parametrize(
    ("current", "values", "target", "replicas", "usage", "readiness", "tolerances"),
    [
        pytest.param(
            3,
            (8600,),
            4400,
            2,
            8600,
            (F, T, F),
            TOL,
            id="TestReplicaCalcScaleUpCMExternalIgnoresUnreadyPods",
        ),
        pytest.param(5, (8600,), 14334, 3, 8600, (), TOL, id="TestReplicaCalcScaleDownCMExternal"),
        pytest.param(3, (8600,), 8888, 3, 8600, (), TOL, id="TestReplicaCalcToleranceCMExternal"),
        pytest.param(
            3,
            (8900,),
            8800,
            4,
            8900,
            (),
            Tolerances(0.1, 0.01),
            id="TestReplicaCalcConfigurableToleranceCMExternal",
        ),
        pytest.param(
            3,
            (MAX_INT64 // 2 + 1, MAX_INT64 // 2 + 1),
            MAX_INT64,
            3,
            MAX_INT64,
            (),
            TOL,
            id="TestReplicaCalcExternalMetricUsageOverflow",
        ),
    ],
)
def test_external_value_matches_kubernetes(
    current: int,
    values: Sequence[int],
    target: int,
    replicas: int,
    usage: int,
    readiness: Sequence[bool],
    tolerances: Tolerances,
) -> None:
    pods = fixture_pods(current, readiness=readiness)
    got = external_value_replicas(current, target, values, tolerances, pods)
    assert (got.replicas, got.usage) == (replicas, usage)


@pytest.mark.parametrize(
    ("current", "values", "target", "replicas", "usage", "tolerances"),
    [
        pytest.param(3, (8600,), 2150, 4, 2867, TOL, id="TestReplicaCalcScaleUpPerPodCMExternal"),
        pytest.param(5, (8600,), 2867, 3, 1720, TOL, id="TestReplicaCalcScaleDownPerPodCMExternal"),
        pytest.param(3, (8600,), 2900, 3, 2867, TOL, id="TestReplicaCalcTolerancePerPodCMExternal"),
        pytest.param(
            3,
            (8600,),
            2800,
            4,
            2867,
            Tolerances(0.1, 0.01),
            id="TestReplicaCalcConfigurableTolerancePerPodCMExternal",
        ),
        pytest.param(
            1,
            (MAX_INT64,),
            1,
            MAX_INT32,
            MAX_INT64,
            TOL,
            id="TestExternalPerPodMetricReplicaOverflow",
        ),
        pytest.param(
            1,
            (MAX_INT64,),
            MAX_INT64,
            1,
            MAX_INT64,
            TOL,
            id="TestExternalPerPodMetricUsageOverflow",
        ),
    ],
)
def test_external_average_value_matches_kubernetes(
    current: int,
    values: Sequence[int],
    target: int,
    replicas: int,
    usage: int,
    tolerances: Tolerances,
) -> None:
    got = external_average_value_replicas(current, target, values, tolerances)
    assert (got.replicas, got.usage) == (replicas, usage)


def test_object_value_from_zero_replicas_is_ceil_of_ratio() -> None:
    """getUsageRatioReplicaCount with current 0: ceil(ratio), no tolerance, no pods needed."""
    assert object_value_replicas(0, 10000, 25000, TOL, ()).replicas == 3
    assert object_value_replicas(0, 10000, 0, TOL, ()).replicas == 0


# --- TestGroupPods --------------------------------------------------------------------------


def _sample(timestamp: float = GO_ZERO_TIME, window: float = 60.0) -> Sample:
    return Sample(1, timestamp, window)


GROUP_CASES = [
    pytest.param([], {}, "cpu", 0, set(), set(), set(), id="void"),
    pytest.param(
        [Pod("bentham", phase="Succeeded", ready=None, start_time=None)],
        {"bentham": _sample(NOW, 60)},
        "memory",
        1,
        set(),
        set(),
        set(),
        id="count-in-a-ready-pod-memory",
    ),
    pytest.param(
        [Pod("lucretius", phase="Succeeded", ready=None, start_time=NOW)],
        {"lucretius": _sample()},
        "cpu",
        0,
        {"lucretius"},
        set(),
        set(),
        id="unready-a-pod-without-ready-condition-cpu",
    ),
    pytest.param(
        [Pod("bentham", phase="Succeeded", ready=True, ready_since=NOW - 30, start_time=NOW - 60)],
        {"bentham": _sample(NOW, 30)},
        "cpu",
        1,
        set(),
        set(),
        set(),
        id="count-in-a-ready-pod-with-fresh-metrics-during-initialization-period-cpu",
    ),
    pytest.param(
        [Pod("bentham", phase="Succeeded", ready=True, ready_since=NOW - 30, start_time=NOW - 60)],
        {"bentham": _sample(NOW, 60)},
        "cpu",
        0,
        {"bentham"},
        set(),
        set(),
        id="unready-a-ready-pod-without-fresh-metrics-during-initialization-period-cpu",
    ),
    pytest.param(
        [
            Pod(
                "lucretius",
                phase="Succeeded",
                ready=False,
                ready_since=NOW - 594,
                start_time=NOW - 600,
            )
        ],
        {"lucretius": _sample()},
        "cpu",
        0,
        {"lucretius"},
        set(),
        set(),
        id="unready-an-unready-pod-during-initialization-period-cpu",
    ),
    pytest.param(
        [
            Pod(
                "bentham",
                phase="Succeeded",
                ready=True,
                ready_since=NOW - 180,
                start_time=NOW - 180,
            )
        ],
        {"bentham": _sample(NOW - 120, 60)},
        "cpu",
        1,
        set(),
        set(),
        set(),
        id="count-in-a-ready-pod-without-fresh-metrics-after-initialization-period-cpu",
    ),
    pytest.param(
        [
            Pod(
                "lucretius",
                phase="Succeeded",
                ready=False,
                ready_since=NOW - 540,
                start_time=NOW - 600,
            )
        ],
        {"lucretius": _sample()},
        "cpu",
        1,
        set(),
        set(),
        set(),
        id="count-in-an-unready-pod-that-was-ready-after-initialization-period-cpu",
    ),
    pytest.param(
        [
            Pod(
                "lucretius",
                phase="Succeeded",
                ready=False,
                ready_since=NOW - 590,
                start_time=NOW - 600,
            )
        ],
        {"lucretius": _sample()},
        "cpu",
        1,
        set(),
        set(),
        set(),
        id="unready-pod-that-has-never-been-ready-after-initialization-period-cpu",
    ),
    pytest.param(
        [Pod("epicurus", phase="Succeeded", ready=None, start_time=NOW - 180)],
        {},
        "cpu",
        0,
        set(),
        {"epicurus"},
        set(),
        id="a-missing-pod",
    ),
    pytest.param(
        [
            Pod("lucretius", phase="Succeeded", ready=None, start_time=NOW),
            Pod(
                "niccolo",
                phase="Succeeded",
                ready=True,
                ready_since=NOW - 180,
                start_time=NOW - 180,
            ),
            Pod("epicurus", phase="Succeeded", ready=None, start_time=NOW - 180),
        ],
        {"lucretius": _sample(), "niccolo": _sample()},
        "cpu",
        1,
        {"lucretius"},
        {"epicurus"},
        set(),
        id="several-pods",
    ),
    pytest.param(
        [Pod("unscheduled", phase="Pending", ready=None, start_time=None)],
        {},
        "cpu",
        0,
        {"unscheduled"},
        set(),
        set(),
        id="pending-pods-are-unreadied",
    ),
    pytest.param(
        [Pod("deleted", phase="Pending", deleted=True)],
        {"deleted": _sample()},
        "cpu",
        0,
        set(),
        set(),
        {"deleted"},
        id="ignore-pods-with-deletion-timestamps",
    ),
    pytest.param(
        [Pod("failed", phase="Failed")],
        {"failed": _sample()},
        "cpu",
        0,
        set(),
        set(),
        {"failed"},
        id="ignore-pods-in-a-failed-state",
    ),
]


@pytest.mark.parametrize(
    ("pods", "samples", "resource", "ready", "unready", "missing", "ignored"), GROUP_CASES
)
def test_group_pods_matches_kubernetes(
    pods: list[Pod],
    samples: dict[str, Sample],
    resource: str,
    ready: int,
    unready: set[str],
    missing: set[str],
    ignored: set[str],
) -> None:
    """TestGroupPods. Note "never been ready after initialization": the Go expectation is 1
    because 10 s of readiness delay after start (-600 s) is still before the transition
    (-590 s), so the pod counts as having been ready."""
    groups = group_pods(pods, samples, resource, NOW, TEST_TIMING)
    assert (groups.ready_count, set(groups.unready), set(groups.missing), set(groups.ignored)) == (
        ready,
        unready,
        missing,
        ignored,
    )


# --- TestCalculateRequests ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "container", "expected"),
    [
        pytest.param(
            Pod(
                "test-pod",
                containers=(
                    Container("container1", {"cpu": 100}),
                    Container("container2", {"cpu": 50}),
                ),
            ),
            "",
            150,
            id="sum-container-requests",
        ),
        pytest.param(
            Pod(
                "test-pod",
                containers=(
                    Container("container1", {"cpu": 100}),
                    Container("container2", {"cpu": 50}),
                ),
                pod_requests={"cpu": 800},
            ),
            "",
            800,
            id="pod-level-resources-override-container-requests",
        ),
        pytest.param(
            Pod(
                "test-pod",
                containers=(Container("container1", {}), Container("container2", {"cpu": 50})),
                pod_requests={"cpu": 800},
            ),
            "",
            800,
            id="pod-level-resources-override-missing-container-requests",
        ),
        pytest.param(
            Pod(
                "test-pod",
                containers=(
                    Container("container1", {"cpu": 100}),
                    Container("container2", {"cpu": 50}),
                ),
            ),
            "container1",
            100,
            id="container-specified-uses-only-that-container",
        ),
        pytest.param(
            Pod(
                "test-pod",
                containers=(
                    Container("container1", {"cpu": 100}),
                    Container("container2", {"cpu": 50}),
                ),
                pod_requests={"cpu": 800},
            ),
            "container1",
            100,
            id="container-specified-ignores-pod-level-requests",
        ),
        pytest.param(
            Pod(
                "test-pod",
                containers=(
                    Container("container1", {"cpu": 100}),
                    Container("restartable-container1", {"cpu": 50}, restartable_init=True),
                ),
            ),
            "",
            150,
            id="pod-with-restartable-init-containers",
        ),
    ],
)
def test_calculate_requests(pod: Pod, container: str, expected: int) -> None:
    assert calculate_requests([pod], container, "cpu") == {"test-pod": expected}


@pytest.mark.parametrize(
    ("pod", "container", "message"),
    [
        pytest.param(
            Pod(
                "test-pod",
                containers=(Container("container1", {}), Container("container2", {"cpu": 50})),
            ),
            "",
            "missing request for cpu in container container1 of Pod test-pod",
            id="fail-if-a-container-is-missing-requests",
        ),
        pytest.param(
            Pod("test-pod", containers=(Container("container1", {"cpu": 100}),)),
            "non-existent-container",
            "container non-existent-container not found in Pod test-pod",
            id="TestCalculatePodRequestsFromContainers_NonExistentContainer",
        ),
    ],
)
def test_calculate_requests_errors(pod: Pod, container: str, message: str) -> None:
    with pytest.raises(MissingRequestError, match=message):
        calculate_requests([pod], container, "cpu")


@pytest.mark.parametrize(
    ("milli", "text"),
    [
        pytest.param(500, "500m", id="millis"),
        pytest.param(1000, "1", id="one"),
        pytest.param(1500, "1500m", id="fraction-stays-milli"),
        pytest.param(2_000_000, "2k", id="kilo"),
        pytest.param(1_500_000, "1500", id="no-kilo-when-fractional"),
        pytest.param(0, "0", id="zero"),
        pytest.param(-250, "-250m", id="negative"),
    ],
)
def test_format_milli_quantity_is_decimal_si(milli: int, text: str) -> None:
    assert format_milli_quantity(milli) == text
