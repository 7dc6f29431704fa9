"""Kubelet cgroups: who a cgroup path belongs to, and the v2 files of each pod and container.

The kubelet names pod cgroups after the pod UID and the runtime names container cgroups after
the container ID, under both cgroup drivers:

- systemd: ``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>
  .slice/cri-containerd-<id>.scope`` (``crio-<id>.scope``, ``docker-<id>.scope``); guaranteed pods
  sit directly under ``kubepods.slice`` as ``kubepods-pod<uid>.slice``. A ``--cgroup-root`` adds
  a prefix (kind: ``kubelet-kubepods-...``).
- cgroupfs: ``/kubepods/burstable/pod<uid>/<id>``; guaranteed pods as ``/kubepods/pod<uid>``.
  containerd and Docker use the bare 64-hex ID, so the runtime is not in the path; CRI-O still
  writes ``crio-<id>``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TypeVar

from agent.observe.model import CgroupSample, ContainerRef, Pressure, PressureResource, Runtime
from agent.observe.procfs import parse_pressure, read_text

_SYSTEMD_POD = re.compile(
    r"^(?:[a-z0-9_]+-)?kubepods(?:-(burstable|besteffort))?-pod([0-9a-fA-F_]+)\.slice$"
)
_CGROUPFS_POD = re.compile(r"^pod([0-9a-fA-F-]+)$")
_SCOPE = re.compile(r"^(cri-containerd|crio-conmon|crio|docker)-([0-9a-f]{12,})\.scope$")
_CRIO_CGROUPFS = re.compile(r"^(crio-conmon|crio)-([0-9a-f]{12,})$")
_BARE_ID = re.compile(r"^[0-9a-f]{64}$")
_RUNTIMES: dict[str, Runtime] = {
    "cri-containerd": "containerd",
    "crio": "cri-o",
    "crio-conmon": "cri-o",
    "docker": "docker",
}
_QOS_SEGMENTS = {"burstable", "besteffort"}
_T = TypeVar("_T")

# kubepods[.slice] / qos / pod / container: four levels below the (possibly prefixed) root.
MAX_WALK_DEPTH = 6
PRESSURE_RESOURCES: tuple[PressureResource, ...] = ("cpu", "memory", "io")


class Level(Enum):
    """Where in the kubelet hierarchy a path points."""

    POD = "pod"
    CONTAINER = "container"
    OTHER = "other"  # below a pod but not a workload container (conmon, unknown children)


@dataclass(frozen=True, slots=True)
class Classified:
    ref: ContainerRef
    level: Level


def _pod_segment(segment: str, previous: str) -> tuple[str, str] | None:
    """(dashed uid, qos) if ``segment`` names a pod cgroup under either driver."""
    match = _SYSTEMD_POD.match(segment)
    if match:
        qos = match.group(1) or "guaranteed"
        return match.group(2).replace("_", "-").lower(), qos
    match = _CGROUPFS_POD.match(segment)
    if match and ("kubepods" in previous or previous in _QOS_SEGMENTS):
        qos = previous if previous in _QOS_SEGMENTS else "guaranteed"
        return match.group(1).lower(), qos
    return None


def _container_segment(segment: str) -> tuple[str, Runtime, Level]:
    match = _SCOPE.match(segment) or _CRIO_CGROUPFS.match(segment)
    if match:
        kind, container_id = match.groups()
        if kind == "crio-conmon":  # CRI-O's monitor: the pod's overhead, not a container
            return "", "cri-o", Level.OTHER
        return container_id, _RUNTIMES[kind], Level.CONTAINER
    if _BARE_ID.match(segment):
        return segment, "", Level.CONTAINER
    return "", "", Level.OTHER


def classify(cgroup_path: str) -> Classified | None:
    """Like :func:`container_ref`, also telling a pod's own cgroup from its children."""
    segments = [s for s in cgroup_path.split("/") if s]
    if not any("kubepods" in s for s in segments):
        return None
    for i, segment in enumerate(segments):
        pod = _pod_segment(segment, segments[i - 1] if i else "")
        if pod is None:
            continue
        uid, qos = pod
        if i + 1 == len(segments):
            return Classified(ContainerRef(pod_uid=uid, qos=qos), Level.POD)
        container_id, runtime, level = _container_segment(segments[i + 1])
        ref = ContainerRef(pod_uid=uid, container_id=container_id, runtime=runtime, qos=qos)
        return Classified(ref, level)
    return None


def container_ref(cgroup_path: str) -> ContainerRef | None:
    """The pod (and container, if any) a kubelet cgroup path belongs to; None outside kubepods.

    Processes deeper than the container cgroup (e.g. crun's ``.../container``) map to that
    container; CRI-O's ``crio-conmon-<id>`` maps to its pod with an empty ``container_id``.
    """
    classified = classify(cgroup_path)
    return classified.ref if classified else None


# ---------------------------------------------------------------------------------------------
# cgroup v2 files


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``cpu.stat`` and ``memory.events``: one ``key value`` per line."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        if line.strip():
            key, value = line.split()
            values[key] = int(value)
    return values


def parse_memory_max(text: str) -> int | None:
    """``max`` means no limit."""
    value = text.strip()
    return None if value == "max" else int(value)


def unified_root(cgroup_root: Path) -> Path:
    """The v2 hierarchy: the root itself, or ``unified/`` on a v1 hybrid host."""
    if not os.path.exists(cgroup_root / "cgroup.controllers"):
        hybrid = cgroup_root / "unified"
        if os.path.exists(hybrid / "cgroup.controllers"):
            return hybrid
    return cgroup_root


def _read_file(path: str, parse: Callable[[str], _T], errors: Counter[str]) -> _T | None:
    """A missing file is normal (controller not enabled here, cgroup just removed); any other
    unreadable or unparsable file is counted under ``cgroup``."""
    try:
        return parse(read_text(path))
    except (FileNotFoundError, ProcessLookupError):
        return None
    except (OSError, ValueError, LookupError):
        errors["cgroup"] += 1
        return None


def read_cgroup(root: Path, rel_path: str, ref: ContainerRef, errors: Counter[str]) -> CgroupSample:
    """One cgroup's throttling, memory, OOM and pressure files; unreadable parts stay None."""
    base = f"{root}{rel_path}"
    cpu = _read_file(f"{base}/cpu.stat", parse_flat_keyed, errors) or {}
    events = _read_file(f"{base}/memory.events", parse_flat_keyed, errors) or {}
    pressure: dict[PressureResource, Pressure] = {}
    for resource in PRESSURE_RESOURCES:
        psi = _read_file(f"{base}/{resource}.pressure", parse_pressure, errors)
        if psi is not None:
            pressure[resource] = psi
    return CgroupSample(
        path=rel_path,
        container=ref,
        usage_usec=cpu.get("usage_usec"),
        nr_periods=cpu.get("nr_periods"),
        nr_throttled=cpu.get("nr_throttled"),
        throttled_usec=cpu.get("throttled_usec"),
        memory_current_bytes=_read_file(f"{base}/memory.current", int, errors),
        memory_max_bytes=_read_file(f"{base}/memory.max", parse_memory_max, errors),
        oom=events.get("oom"),
        oom_kill=events.get("oom_kill"),
        pressure=pressure,
    )


def find_kube_cgroups(root: Path, errors: Counter[str]) -> list[tuple[str, Classified]]:
    """Pod and container cgroups below ``root`` (a v2 hierarchy), as paths relative to it.

    Above the pods only the kubelet's directories are entered (names containing ``kube``, and
    cgroupfs QoS directories under kubepods); below a pod, only its container cgroups are
    taken; never deeper than :data:`MAX_WALK_DEPTH`. So system.slice and friends cost nothing.
    """
    found: list[tuple[str, Classified]] = []
    stack: list[tuple[str, int]] = [("", 0)]
    while stack:
        rel, depth = stack.pop()
        try:
            entries = list(os.scandir(f"{root}{rel}"))
        except (FileNotFoundError, NotADirectoryError):  # pod deleted since listed; no cgroupfs
            continue
        except OSError:
            errors["cgroup"] += 1
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            child = f"{rel}/{entry.name}"
            classified = classify(child)
            if classified is None:
                # Not a pod yet: enter kubepods[.slice], QoS slices and --cgroup-root prefixes.
                enter = "kube" in entry.name or ("kubepods" in rel and entry.name in _QOS_SEGMENTS)
            else:
                if classified.level is not Level.OTHER:  # conmon and strangers are not sampled
                    found.append((child, classified))
                enter = classified.level is Level.POD
            if enter and depth + 1 < MAX_WALK_DEPTH:
                stack.append((child, depth + 1))
    found.sort(key=lambda item: item[0])
    return found


def read_kube_cgroups(cgroup_root: Path, errors: Counter[str]) -> list[CgroupSample]:
    """Every pod and container cgroup's sample, in path order."""
    root = unified_root(cgroup_root)
    return [read_cgroup(root, rel, c.ref, errors) for rel, c in find_kube_cgroups(root, errors)]
