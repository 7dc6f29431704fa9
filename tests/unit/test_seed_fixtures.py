"""Seed fixtures: policies are real autoscaling/v2 HPAs, and metric scenarios are consistent.

Each checker returns a list of problems instead of asserting at the first one. A failure then
names every field at fault. Each checker is also shown broken data, to prove it can fail.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from shared.wire import BottleneckFinding

FIXTURES = Path(__file__).resolve().parents[2] / "testing/fixtures/scalability_data"


def load(name: str) -> list[dict[str, Any]]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(data, list)
    return data


POLICIES = load("sample_scaling_policies.json")
SCENARIOS = load("sample_performance_metrics.json")


def by_name(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return copy.deepcopy(next(entry for entry in entries if entry["name"] == name))


# --- scaling policies: Kubernetes autoscaling/v2 HorizontalPodAutoscaler ---------------------

# Kubernetes resource.Quantity: a decimal with an optional SI, binary-SI or exponent suffix. The API
# server also accepts a bare JSON number on input, but it always returns a string. The fixture uses
# that returned form, so a consumer sees what it would read back from a cluster.
QUANTITY = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[numkMGTPE]|[KMGTPE]i)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
METRIC_SOURCES = {
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}
TARGET_TYPES = {  # which target types the API server accepts for each source
    "Resource": {"Utilization", "AverageValue"},
    "ContainerResource": {"Utilization", "AverageValue"},
    "Pods": {"AverageValue"},
    "Object": {"Value", "AverageValue"},
    "External": {"Value", "AverageValue"},
}
TARGET_FIELD = {
    "Utilization": "averageUtilization",
    "Value": "value",
    "AverageValue": "averageValue",
}
RULES_FIELDS = {"stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance"}
MAX_STABILIZATION_SECONDS = 3_600  # pkg/apis/autoscaling/validation
MAX_PERIOD_SECONDS = 1_800
VPA_MODES = {"Off", "Initial", "Recreate", "InPlaceOrRecreate", "InPlace"}  # "Auto" is deprecated


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def metric_problems(index: int, metric: dict[str, Any]) -> list[str]:
    where = f"spec.metrics[{index}]"
    kind = metric.get("type")
    if kind not in METRIC_SOURCES:
        return [f"{where}.type {kind!r} is not a metric source type"]
    field = METRIC_SOURCES[kind]
    problems = []
    if set(metric) != {"type", field}:
        problems.append(f"{where} must hold exactly 'type' and {field!r}, has {sorted(metric)}")
    source = metric.get(field, {})
    if kind in {"Resource", "ContainerResource"}:
        if source.get("name") not in {"cpu", "memory"}:
            problems.append(f"{where}.{field}.name must be cpu or memory")
        if kind == "ContainerResource" and not source.get("container"):
            problems.append(f"{where}.{field}.container is required")
    elif not source.get("metric", {}).get("name"):
        problems.append(f"{where}.{field}.metric.name is required")
    if kind == "Object" and not {"apiVersion", "kind", "name"} <= set(
        source.get("describedObject", {})
    ):
        problems.append(f"{where}.object.describedObject needs apiVersion, kind and name")
    target = source.get("target", {})
    target_type = target.get("type")
    if target_type not in TARGET_TYPES[kind]:
        problems.append(f"{where}.{field}.target.type {target_type!r} is not valid for {kind}")
        return problems
    value_field = TARGET_FIELD[target_type]
    if set(target) != {"type", value_field}:
        problems.append(f"{where}.{field}.target must hold exactly 'type' and {value_field!r}")
    value = target.get(value_field)
    if target_type == "Utilization":
        if not is_int(value) or value <= 0:
            problems.append(f"{where}.{field}.target.averageUtilization must be an int32 > 0")
    elif not isinstance(value, str) or not QUANTITY.match(value):
        problems.append(f"{where}.{field}.target.{value_field} must be a Quantity string")
    return problems


def rules_problems(direction: str, rules: dict[str, Any]) -> list[str]:
    where = f"spec.behavior.{direction}"
    problems = [
        f"{where}.{key} is not an HPAScalingRules field" for key in set(rules) - RULES_FIELDS
    ]
    window = rules.get("stabilizationWindowSeconds", 0)
    if not is_int(window) or not 0 <= window <= MAX_STABILIZATION_SECONDS:
        problems.append(f"{where}.stabilizationWindowSeconds must be an int in 0..3600")
    if rules.get("selectPolicy", "Max") not in {"Max", "Min", "Disabled"}:
        problems.append(f"{where}.selectPolicy must be Max, Min or Disabled")
    for i, policy in enumerate(rules.get("policies", [])):
        at = f"{where}.policies[{i}]"
        if set(policy) != {"type", "value", "periodSeconds"}:
            problems.append(f"{at} must hold exactly type, value, periodSeconds")
        if policy.get("type") not in {"Pods", "Percent"}:
            problems.append(f"{at}.type must be Pods or Percent")
        if not is_int(policy.get("value")) or policy["value"] <= 0:
            problems.append(f"{at}.value must be an int > 0")
        period = policy.get("periodSeconds")
        if not is_int(period) or not 1 <= period <= MAX_PERIOD_SECONDS:
            problems.append(f"{at}.periodSeconds must be an int in 1..1800")
    if "tolerance" in rules:
        tolerance = rules["tolerance"]
        if not isinstance(tolerance, str) or not QUANTITY.match(tolerance):
            problems.append(f"{where}.tolerance must be a non-negative Quantity, as a string")
    return problems


def hpa_problems(hpa: dict[str, Any]) -> list[str]:
    problems = []
    if hpa.get("apiVersion") != "autoscaling/v2":
        problems.append("apiVersion must be autoscaling/v2")
    if hpa.get("kind") != "HorizontalPodAutoscaler":
        problems.append("kind must be HorizontalPodAutoscaler")
    metadata = hpa.get("metadata", {})
    for key in ("name", "namespace"):
        if not DNS_LABEL.match(str(metadata.get(key, ""))):
            problems.append(f"metadata.{key} must be a DNS label")
    spec = hpa.get("spec", {})
    if not {"apiVersion", "kind", "name"} <= set(spec.get("scaleTargetRef", {})):
        problems.append("spec.scaleTargetRef needs apiVersion, kind and name")
    low, high = spec.get("minReplicas", 1), spec.get("maxReplicas")
    if not is_int(high) or not is_int(low) or not 1 <= low <= high:
        problems.append("spec needs int replicas with 1 <= minReplicas <= maxReplicas")
    for i, metric in enumerate(spec.get("metrics", [])):
        problems += metric_problems(i, metric)
    behavior = spec.get("behavior")
    if behavior is not None:
        problems += [
            f"spec.behavior.{key} is unknown" for key in set(behavior) - {"scaleUp", "scaleDown"}
        ]
        for direction in ("scaleUp", "scaleDown"):
            if direction in behavior:
                problems += rules_problems(direction, behavior[direction])
    return problems


def uses_cpu_utilization(hpa: dict[str, Any]) -> bool:
    for metric in hpa["spec"].get("metrics", []):
        source = metric.get("resource") or metric.get("containerResource") or {}
        if source.get("name") == "cpu" and source["target"]["type"] == "Utilization":
            return True
    return False


def extension_problems(policy: dict[str, Any]) -> list[str]:
    problems = []
    if set(policy) != {"name", "description", "hpa", "predictive", "vertical"}:
        problems.append(
            f"policy keys must be name, description, hpa, predictive, vertical: {sorted(policy)}"
        )
    predictive = policy.get("predictive")
    if predictive is not None:
        if set(predictive) != {"season_seconds", "horizon_seconds", "lead_seconds", "quantile"}:
            problems.append("predictive has unexpected keys")
        elif predictive["season_seconds"] not in {86_400, 604_800}:
            problems.append("predictive.season_seconds must be a day or a week")
        elif not 0 < predictive["lead_seconds"] <= predictive["horizon_seconds"]:
            problems.append("predictive.lead_seconds must be in (0, horizon_seconds]")
        elif not 0 < predictive["quantile"] < 1:
            problems.append("predictive.quantile must be in (0, 1)")
    vertical = policy.get("vertical")
    if vertical is not None:
        keys = {
            "mode", "controlled_resources", "target_percentile", "safety_margin",
            "min_cpu_millicores", "max_cpu_millicores", "min_memory_bytes", "max_memory_bytes",
        }  # fmt: skip
        if set(vertical) != keys:
            problems.append("vertical has unexpected keys")
            return problems
        if vertical["mode"] not in VPA_MODES:
            problems.append(f"vertical.mode {vertical['mode']!r} is not a VPA update mode")
        if not 0 < vertical["target_percentile"] <= 1 or vertical["safety_margin"] < 0:
            problems.append("vertical.target_percentile in (0, 1] and safety_margin >= 0")
        for low, high in (
            ("min_cpu_millicores", "max_cpu_millicores"),
            ("min_memory_bytes", "max_memory_bytes"),
        ):
            if None not in (vertical[low], vertical[high]) and vertical[low] > vertical[high]:
                problems.append(f"vertical.{low} must be <= vertical.{high}")
        # An HPA on CPU utilization plus a VPA that changes CPU requests is a feedback loop.
        if (
            "cpu" in vertical["controlled_resources"]
            and vertical["mode"] != "Off"
            and uses_cpu_utilization(policy["hpa"])
        ):
            problems.append("vertical must not resize CPU while the HPA scales on CPU utilization")
    return problems


@pytest.mark.parametrize("policy", POLICIES, ids=[p["name"] for p in POLICIES])
def test_policy_hpa_has_the_autoscaling_v2_shape(policy: dict[str, Any]) -> None:
    assert hpa_problems(policy["hpa"]) == []


@pytest.mark.parametrize("policy", POLICIES, ids=[p["name"] for p in POLICIES])
def test_policy_predictive_and_vertical_sections_are_sane(policy: dict[str, Any]) -> None:
    assert extension_problems(policy) == []


def test_policy_names_are_unique() -> None:
    names = [policy["name"] for policy in POLICIES]
    assert len(names) == len(set(names))


def all_rules(policy: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from policy["hpa"]["spec"].get("behavior", {}).items()


@pytest.mark.parametrize(
    "has_case",
    [
        pytest.param(
            lambda p: "behavior" not in p["hpa"]["spec"], id="hpa-defaults-without-behavior"
        ),
        pytest.param(
            lambda p: any(
                d == "scaleDown"
                and r.get("selectPolicy") != "Disabled"
                and (r.get("selectPolicy") == "Min" or r.get("stabilizationWindowSeconds", 0) > 300)
                for d, r in all_rules(p)
            ),
            id="conservative-scale-down",
        ),
        pytest.param(
            lambda p: any(r.get("selectPolicy") == "Disabled" for _, r in all_rules(p)),
            id="select-policy-disabled",
        ),
        pytest.param(lambda p: any("tolerance" in r for _, r in all_rules(p)), id="tolerance"),
        pytest.param(lambda p: p["predictive"] is not None, id="predictive-section"),
        pytest.param(lambda p: p["vertical"] is not None, id="vertical-section"),
    ]
    + [
        pytest.param(
            lambda p, source=source: any(
                m["type"] == source for m in p["hpa"]["spec"].get("metrics", [])
            ),
            id=f"metric-source-{source}",
        )
        for source in METRIC_SOURCES
    ],
)
def test_policy_fixture_covers_the_case(has_case: Callable[[dict[str, Any]], bool]) -> None:
    assert any(has_case(policy) for policy in POLICIES)


def set_path(document: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """Return a copy with one dotted path (list indexes as numbers) set, or deleted with ``...``."""
    changed = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = changed
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is ...:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return changed


RICH_HPA = by_name(POLICIES, "order-intake-conservative-scale-down")["hpa"]


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        pytest.param("apiVersion", "autoscaling/v2beta2", "apiVersion", id="old-api-version"),
        pytest.param("spec.minReplicas", 40, "minReplicas", id="min-above-max"),
        pytest.param("spec.minReplicas", 0, "minReplicas", id="scale-to-zero-needs-alpha-gate"),
        pytest.param("spec.maxReplicas", ..., "maxReplicas", id="missing-max-replicas"),
        pytest.param(
            "spec.behavior.scaleDown.selectPolicy",
            "max",
            "selectPolicy",
            id="lowercase-select-policy",
        ),
        pytest.param(
            "spec.behavior.scaleUp.policies.0.type", "Percentage", "type", id="unknown-policy-type"
        ),
        pytest.param(
            "spec.behavior.scaleUp.policies.0.periodSeconds",
            1801,
            "periodSeconds",
            id="period-over-1800",
        ),
        pytest.param(
            "spec.behavior.scaleDown.stabilizationWindowSeconds",
            3601,
            "stabilization",
            id="window-over-3600",
        ),
        pytest.param(
            "spec.behavior.scaleDown.tolerance",
            0.1,
            "tolerance",
            id="tolerance-as-bare-number-not-string",
        ),
        pytest.param("spec.behavior.scaleDown.cooldown", 60, "cooldown", id="unknown-rules-field"),
        pytest.param(
            "spec.metrics.1.pods.target",
            {"type": "Utilization", "averageUtilization": 50},
            "Pods",
            id="pods-metric-with-utilization",
        ),
        pytest.param(
            "spec.metrics.0.resource.target.averageUtilization",
            "70%",
            "averageUtilization",
            id="utilization-as-string",
        ),
    ],
)
def test_hpa_checker_refuses_broken_hpa(path: str, value: object, problem: str) -> None:
    problems = hpa_problems(set_path(RICH_HPA, path, value))
    assert any(problem in p for p in problems), problems


# --- performance scenarios ----------------------------------------------------------------------

REQUIRED_SCENARIOS = {
    "cpu-saturated-by-one-pod",
    "memory-pressure-with-oom",
    "io-bound-disk",
    "cfs-throttled-container",
    "healthy-idle",
    "network-retransmits",
    "fd-exhaustion",
}
CPU_MODES = {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}
PSI_RESOURCES = ("cpu", "memory", "io")
CONTAINER_CGROUP = re.compile(
    r"^/kubepods\.slice/(?:kubepods-(?P<qos>burstable|besteffort)\.slice/kubepods-(?P=qos)-"
    r"|kubepods-)pod(?P<uid>[0-9a-f_]{36})\.slice(?:/cri-containerd-(?P<cid>[0-9a-f]{64})\.scope)?$"
)
DISK_COUNTERS = (
    "reads_completed",
    "writes_completed",
    "read_bytes",
    "written_bytes",
    "read_time_ms",
    "write_time_ms",
    "io_time_ms",
    "weighted_io_time_ms",
)
PROCESS_COUNTERS = (
    "cpu_seconds",
    "read_bytes",
    "write_bytes",
    "voluntary_ctxt_switches",
    "nonvoluntary_ctxt_switches",
)
CPU_STAT_COUNTERS = (
    "usage_usec",
    "user_usec",
    "system_usec",
    "nr_periods",
    "nr_throttled",
    "throttled_usec",
)


def decreases(
    prev: dict[str, Any], cur: dict[str, Any], keys: tuple[str, ...] | set[str]
) -> list[str]:
    return [key for key in keys if cur[key] < prev[key]]


def node_problems(node: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    samples, cpus = node["samples"], node["cpu_count"]
    times = [sample["timestamp"] for sample in samples]
    if len(samples) < 2 or times != sorted(set(times)):
        problems.append("node: need >= 2 samples with strictly increasing timestamps")
    for sample in samples:
        at = f"node@{sample['timestamp']}"
        memory = sample["memory"]
        if not 0 <= memory["available_bytes"] <= memory["total_bytes"]:
            problems.append(f"{at}: memory available must be in [0, total]")
        if not 0 <= memory["swap_free_bytes"] <= memory["swap_total_bytes"]:
            problems.append(f"{at}: swap free must be in [0, swap total]")
        if not 0 <= sample["fds"]["allocated"] <= sample["fds"]["max"]:
            problems.append(f"{at}: open fds must be in [0, fd limit]")
        if min(sample["load1"], sample["load5"], sample["load15"], sample["procs_running"]) < 0:
            problems.append(f"{at}: load and run queue must be >= 0")
        if set(sample["cpu_seconds"]) != CPU_MODES:
            problems.append(f"{at}: cpu_seconds must have the /proc/stat modes")
        for resource in PSI_RESOURCES:
            some, full = sample["psi"][resource]["some"], sample["psi"][resource]["full"]
            for window in ("avg10", "avg60", "avg300"):
                if not 0 <= full[window] <= some[window] <= 100:
                    problems.append(
                        f"{at}: psi.{resource} needs 0 <= full <= some <= 100 ({window})"
                    )
        cpu_full = sample["psi"]["cpu"]["full"]
        if any(cpu_full[key] != 0 for key in ("avg10", "avg60", "avg300", "total")):
            problems.append(f"{at}: system-level psi.cpu.full is always zero (kernel >= 5.13)")
    for prev, cur in pairwise(samples):
        at, dt = f"node@{cur['timestamp']}", cur["timestamp"] - prev["timestamp"]
        if bad := decreases(prev["cpu_seconds"], cur["cpu_seconds"], CPU_MODES):
            problems.append(f"{at}: cpu_seconds decreased for {bad}")
        elapsed = sum(cur["cpu_seconds"][m] - prev["cpu_seconds"][m] for m in CPU_MODES)
        if abs(elapsed - dt * cpus) > 0.01 * dt * cpus:
            problems.append(
                f"{at}: cpu_seconds advanced {elapsed:.2f}, expected {dt * cpus} (dt x cpus)"
            )
        for resource in PSI_RESOURCES:
            lines = [
                cur["psi"][resource][k]["total"] - prev["psi"][resource][k]["total"]
                for k in ("some", "full")
            ]
            if not 0 <= lines[1] <= lines[0] <= dt * 1_000_000:
                problems.append(
                    f"{at}: psi.{resource} totals need 0 <= d(full) <= d(some) <= dt in usec"
                )
        disks = {d["device"]: d for d in prev["disks"]}
        for disk in cur["disks"]:
            before = disks[disk["device"]]
            if bad := decreases(before, disk, DISK_COUNTERS):
                problems.append(f"{at}: disk {disk['device']} counters decreased: {bad}")
                continue
            busy_ms = disk["io_time_ms"] - before["io_time_ms"]
            ios = sum(disk[k] - before[k] for k in ("reads_completed", "writes_completed"))
            wait = sum(disk[k] - before[k] for k in ("read_time_ms", "write_time_ms"))
            if busy_ms > dt * 1000 or abs(disk["util_percent"] - 100 * busy_ms / (dt * 1000)) > 0.1:
                problems.append(
                    f"{at}: disk {disk['device']} util_percent disagrees with io_time_ms"
                )
            if ios and abs(disk["await_ms"] - wait / ios) > 0.01:
                problems.append(f"{at}: disk {disk['device']} await_ms disagrees with the counters")
        interfaces = {i["name"]: i for i in prev["interfaces"]}
        for interface in cur["interfaces"]:
            keys = set(interface) - {"name"}
            if bad := decreases(interfaces[interface["name"]], interface, keys):
                problems.append(f"{at}: interface {interface['name']} counters decreased: {bad}")
        if bad := decreases(prev["tcp"], cur["tcp"], set(cur["tcp"])):
            problems.append(f"{at}: tcp counters decreased: {bad}")
        sent = cur["tcp"]["out_segs"] - prev["tcp"]["out_segs"]
        if cur["tcp"]["retrans_segs"] - prev["tcp"]["retrans_segs"] > sent:
            problems.append(f"{at}: more segments retransmitted than sent")
    return problems


def cgroup_identity_problems(path: str, pod_uid: str | None, container_id: str | None) -> list[str]:
    if pod_uid is None:
        return [] if "kubepods" not in path else [f"{path}: a kubepods cgroup needs a pod_uid"]
    match = CONTAINER_CGROUP.match(path)
    if match is None:
        return [f"{path}: not a cgroup v2 kubelet path (systemd driver, containerd)"]
    problems = []
    if match["uid"] != pod_uid.replace("-", "_"):
        problems.append(f"{path}: pod uid in the path does not match pod_uid {pod_uid}")
    if match["cid"] != container_id:
        problems.append(f"{path}: container id in the path does not match container_id")
    return problems


def process_problems(process: dict[str, Any], node_times: set[int], cpus: int) -> list[str]:
    at = f"pid {process['pid']}"
    problems = cgroup_identity_problems(
        process["cgroup"], process["pod_uid"], process["container_id"]
    )
    times = [sample["timestamp"] for sample in process["samples"]]
    if not times or times != sorted(set(times)) or not set(times) <= node_times:
        problems.append(f"{at}: samples must be at increasing node sample times")
    for sample in process["samples"]:
        if not 0 <= sample["fds"] <= process["fd_limit"]:
            problems.append(f"{at}: fds must be in [0, fd_limit]")
        if sample["threads"] < 1 or sample["rss_bytes"] <= 0:
            problems.append(f"{at}: needs >= 1 thread and some rss")
    for prev, cur in pairwise(process["samples"]):
        if bad := decreases(prev, cur, PROCESS_COUNTERS):
            problems.append(f"{at}@{cur['timestamp']}: counters decreased: {bad}")
        dt = cur["timestamp"] - prev["timestamp"]
        if cur["cpu_seconds"] - prev["cpu_seconds"] > dt * min(cpus, cur["threads"]):
            problems.append(
                f"{at}@{cur['timestamp']}: used more CPU than its threads or the node allow"
            )
    return problems


def cgroup_problems(cgroup: dict[str, Any], node_times: set[int], cpus: int) -> list[str]:
    at = cgroup["path"].rsplit("/", 1)[-1]
    problems = cgroup_identity_problems(cgroup["path"], cgroup["pod_uid"], cgroup["container_id"])
    quota, period = cgroup["cpu_max"]["quota_usec"], cgroup["cpu_max"]["period_usec"]
    limit = cgroup["memory_max_bytes"]
    times = [sample["timestamp"] for sample in cgroup["samples"]]
    if not times or times != sorted(set(times)) or not set(times) <= node_times:
        problems.append(f"{at}: samples must be at increasing node sample times")
    for sample in cgroup["samples"]:
        stat = sample["cpu_stat"]
        if stat["usage_usec"] != stat["user_usec"] + stat["system_usec"]:
            problems.append(f"{at}: usage_usec must be user_usec + system_usec")
        if stat["nr_throttled"] > stat["nr_periods"]:
            problems.append(f"{at}: nr_throttled must be <= nr_periods")
        if limit is not None and sample["memory_current_bytes"] > limit:
            problems.append(f"{at}: memory.current above memory.max")
    for prev, cur in pairwise(cgroup["samples"]):
        where, dt = f"{at}@{cur['timestamp']}", cur["timestamp"] - prev["timestamp"]
        if bad := decreases(prev["cpu_stat"], cur["cpu_stat"], CPU_STAT_COUNTERS):
            problems.append(f"{where}: cpu.stat decreased: {bad}")
        if bad := decreases(prev["memory_events"], cur["memory_events"], set(cur["memory_events"])):
            problems.append(f"{where}: memory.events decreased: {bad}")
        delta = {key: cur["cpu_stat"][key] - prev["cpu_stat"][key] for key in CPU_STAT_COUNTERS}
        if delta["usage_usec"] > dt * 1_000_000 * (cpus if quota is None else quota / period):
            problems.append(f"{where}: usage above what cpu.max and the node allow")
        if quota is None and (delta["nr_periods"] or delta["nr_throttled"]):
            problems.append(f"{where}: without a quota, CFS periods do not advance")
        if (
            delta["nr_periods"] > dt * 1_000_000 // period + 1
            or delta["nr_throttled"] > delta["nr_periods"]
        ):
            problems.append(f"{where}: more CFS periods or throttles than fit in the interval")
        if delta["throttled_usec"] > delta["nr_throttled"] * period * cpus:
            problems.append(f"{where}: throttled_usec grew more than its throttled periods allow")
    return problems


def cpu_deltas(
    samples: list[dict[str, Any]], read: Callable[[dict[str, Any]], float]
) -> dict[int, float]:
    """CPU seconds used in each interval, keyed by the interval's end time."""
    return {cur["timestamp"]: read(cur) - read(prev) for prev, cur in pairwise(samples)}


def accounting_problems(scenario: dict[str, Any]) -> list[str]:
    """Work is counted once: process <= its cgroup <= its pod slice, all of it <= node busy."""
    problems = []
    cgroups = {c["path"]: c for c in scenario["cgroups"]}

    def cgroup_cpu(cgroup: dict[str, Any]) -> dict[int, float]:
        return cpu_deltas(cgroup["samples"], lambda s: s["cpu_stat"]["usage_usec"] / 1e6)

    busy_modes = CPU_MODES - {"idle", "iowait"}
    busy = cpu_deltas(
        scenario["node"]["samples"], lambda s: sum(s["cpu_seconds"][m] for m in busy_modes)
    )
    used: dict[int, float] = dict.fromkeys(busy, 0.0)
    for process in scenario["processes"]:
        own = cpu_deltas(process["samples"], lambda s: s["cpu_seconds"])
        for t, seconds in own.items():
            used[t] += seconds
        if process["pod_uid"] is None:
            continue
        if process["cgroup"] not in cgroups:
            problems.append(f"pid {process['pid']}: its cgroup is not in cgroups")
            continue
        container = cgroup_cpu(cgroups[process["cgroup"]])
        if any(seconds > container.get(t, seconds) + 0.01 for t, seconds in own.items()):
            problems.append(f"pid {process['pid']}: used more CPU than its cgroup")
    for path, cgroup in cgroups.items():
        parent = cgroups.get(path.rsplit("/", 1)[0])
        if cgroup["container_id"] is not None and parent is not None:
            pod = cgroup_cpu(parent)
            if any(
                seconds > pod.get(t, seconds) + 1e-6 for t, seconds in cgroup_cpu(cgroup).items()
            ):
                problems.append(f"{path}: container used more CPU than its pod slice")
    for t, seconds in used.items():
        if seconds > busy[t] + 0.05:
            problems.append(
                f"@{t}: processes used {seconds:.2f} CPU-s, node was busy {busy[t]:.2f}"
            )
    return problems


def scenario_problems(scenario: dict[str, Any]) -> list[str]:
    node = scenario["node"]
    node_times = {sample["timestamp"] for sample in node["samples"]}
    problems = node_problems(node)
    for process in scenario["processes"]:
        problems += process_problems(process, node_times, node["cpu_count"])
    for cgroup in scenario["cgroups"]:
        problems += cgroup_problems(cgroup, node_times, node["cpu_count"])
    return problems + accounting_problems(scenario)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_performance_scenario_is_internally_consistent(scenario: dict[str, Any]) -> None:
    assert scenario_problems(scenario) == []


# Evidence: the fixture field a detector should read, and the test that it really shows a problem.


def series(samples: list[dict[str, Any]], *path: str) -> list[Any]:
    values = []
    for sample in samples:
        value: Any = sample
        for key in path:
            value = value[key]
        values.append(value)
    return values


def psi_high(resource: str, line: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: max(series(s["node"]["samples"], "psi", resource, line, "avg10")) >= 10


def cgroup_counter_rises(
    key: str, *path: str, per_second: float
) -> Callable[[dict[str, Any]], bool]:
    def check(scenario: dict[str, Any]) -> bool:
        for cgroup in scenario["cgroups"]:
            for prev, cur in pairwise(cgroup["samples"]):
                rate = (cur[key][path[-1]] - prev[key][path[-1]]) / (
                    cur["timestamp"] - prev["timestamp"]
                )
                if rate >= per_second:
                    return True
        return False

    return check


def retransmit_ratio_high(scenario: dict[str, Any]) -> bool:
    samples = scenario["node"]["samples"]
    sent = samples[-1]["tcp"]["out_segs"] - samples[0]["tcp"]["out_segs"]
    resent = samples[-1]["tcp"]["retrans_segs"] - samples[0]["tcp"]["retrans_segs"]
    return bool(resent / sent >= 0.01)


def fds_near_limit(scenario: dict[str, Any]) -> bool:
    return any(s["fds"] >= 0.9 * p["fd_limit"] for p in scenario["processes"] for s in p["samples"])


EVIDENCE: dict[str, Callable[[dict[str, Any]], bool]] = {
    "node.psi.cpu.some": psi_high("cpu", "some"),
    "node.psi.memory.some": psi_high("memory", "some"),
    "node.psi.memory.full": psi_high("memory", "full"),
    "node.psi.io.some": psi_high("io", "some"),
    "node.psi.io.full": psi_high("io", "full"),
    "cgroups.cpu_stat.throttled_usec": cgroup_counter_rises(
        "cpu_stat",
        "throttled_usec",
        per_second=100_000,  # throttled 10% of wall time or more
    ),
    "cgroups.memory_events.oom_kill": cgroup_counter_rises(
        "memory_events", "oom_kill", per_second=1e-9
    ),
    "node.tcp.retrans_segs": retransmit_ratio_high,
    "processes.fds": fds_near_limit,
}


def subject_exists(scenario: dict[str, Any], subject: str) -> bool:
    kind, _, rest = subject.partition("/")
    node = scenario["node"]
    refs = {(p["namespace"], p["pod"], p["container"]) for p in scenario["processes"]}
    if kind == "node":
        return bool(rest == node["name"])
    if kind == "disk":
        return any(d["device"] == rest for s in node["samples"] for d in s["disks"])
    if kind == "pod":
        return tuple(rest.split("/")) in {r[:2] for r in refs}
    if kind == "container":
        return tuple(rest.split("/")) in refs
    if kind == "process":
        return any(str(p["pid"]) == rest for p in scenario["processes"])
    return False


def expected_problems(scenario: dict[str, Any]) -> list[str]:
    expected = scenario["expected"]
    if expected is None:
        fired = [evidence for evidence, shows in EVIDENCE.items() if shows(scenario)]
        return [f"healthy scenario shows {evidence}" for evidence in fired]
    problems = []
    if set(expected) != {"resource", "kind", "subject", "evidence", "culprit"}:
        return [
            f"expected must hold resource, kind, subject, evidence, culprit: {sorted(expected)}"
        ]
    finding = {k: expected[k] for k in ("resource", "kind", "subject")}
    try:  # the expected finding must be sendable in an AgentReport as it is
        BottleneckFinding(
            **finding,
            severity="critical",
            rule="fixture",
            since=0.0,
            evidence=[{"signal": expected["evidence"], "value": 1.0, "threshold": 0.0}],
            message="fixture",
        )
    except ValueError as error:
        problems.append(f"expected does not fit the wire BottleneckFinding: {error}")
    if not subject_exists(scenario, expected["subject"]):
        problems.append(f"expected.subject {expected['subject']!r} is not in the scenario")
    if expected["evidence"] not in EVIDENCE:
        problems.append(f"expected.evidence {expected['evidence']!r} is not a known signal path")
    elif not EVIDENCE[expected["evidence"]](scenario):
        problems.append(f"the data does not show {expected['evidence']}")
    culprit = expected["culprit"]
    keys = ("namespace", "pod", "container", "pod_uid", "container_id")
    if culprit is not None and not any(
        all(p[k] == culprit.get(k) for k in keys) for p in scenario["processes"]
    ):
        problems.append("expected.culprit does not match any process in the scenario")
    return problems


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_performance_scenario_names_an_expected_finding_its_data_shows(
    scenario: dict[str, Any],
) -> None:
    assert expected_problems(scenario) == []


def test_performance_fixture_has_every_required_scenario() -> None:
    names = [scenario["name"] for scenario in SCENARIOS]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED_SCENARIOS
    assert [s["name"] for s in SCENARIOS if s["expected"] is None] == ["healthy-idle"]


def pod_uid_swapped(scenario: dict[str, Any]) -> None:
    process = next(p for p in scenario["processes"] if p["pod_uid"])
    process["pod_uid"] = "00000000-0000-4000-8000-000000000000"


def psi_total_goes_back(scenario: dict[str, Any]) -> None:
    scenario["node"]["samples"][-1]["psi"]["io"]["some"]["total"] = 0


def throttled_usec_goes_back(scenario: dict[str, Any]) -> None:
    scenario["cgroups"][0]["samples"][-1]["cpu_stat"]["throttled_usec"] = 0


def available_above_total(scenario: dict[str, Any]) -> None:
    memory = scenario["node"]["samples"][0]["memory"]
    memory["available_bytes"] = memory["total_bytes"] + 1


def system_cpu_full_nonzero(scenario: dict[str, Any]) -> None:
    scenario["node"]["samples"][1]["psi"]["cpu"]["full"]["avg10"] = 1.0


def oom_kill_goes_back(scenario: dict[str, Any]) -> None:
    pod_slice = scenario["cgroups"][0]  # the kill shows only in the last sample
    pod_slice["samples"][0]["memory_events"]["oom_kill"] = 5


def process_outruns_cgroup(scenario: dict[str, Any]) -> None:
    scenario["processes"][0]["samples"][-1]["cpu_seconds"] += 5


@pytest.mark.parametrize(
    ("name", "corrupt", "problem"),
    [
        pytest.param("healthy-idle", pod_uid_swapped, "pod uid", id="pod-uid-not-in-cgroup-path"),
        pytest.param("io-bound-disk", psi_total_goes_back, "psi.io", id="psi-total-not-monotonic"),
        pytest.param(
            "cfs-throttled-container",
            throttled_usec_goes_back,
            "throttled_usec",
            id="throttled-usec-not-monotonic",
        ),
        pytest.param(
            "memory-pressure-with-oom",
            available_above_total,
            "available",
            id="available-above-total",
        ),
        pytest.param(
            "cpu-saturated-by-one-pod",
            system_cpu_full_nonzero,
            "psi.cpu.full",
            id="system-cpu-full-nonzero",
        ),
        pytest.param(
            "memory-pressure-with-oom", oom_kill_goes_back, "oom_kill", id="oom-kill-not-monotonic"
        ),
        pytest.param(
            "cfs-throttled-container",
            process_outruns_cgroup,
            "more CPU than its cgroup",
            id="process-cpu-above-cgroup",
        ),
    ],
)
def test_scenario_checker_refuses_inconsistent_data(
    name: str, corrupt: Callable[[dict[str, Any]], None], problem: str
) -> None:
    scenario = by_name(SCENARIOS, name)
    corrupt(scenario)
    problems = scenario_problems(scenario)
    assert any(problem in p for p in problems), problems
