"""Where a workload's scaling policy comes from, and which one wins.

Three sources, most specific first: the admin API (an operator's explicit override, kept
across restarts), the workload's ``linescale.io/scaling-policy`` annotation (the owner's
choice, versioned with the manifest), and the controller's policy file (cluster defaults,
written as ordinary ``HorizontalPodAutoscaler`` objects so existing HPA manifests can be
pointed at as they are). A workload no source names is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from controller.ports import WorkloadRef, WorkloadState
from shared.scaling_policy import PolicyError, ScalingPolicy, parse_policy

POLICY_ANNOTATION = "linescale.io/scaling-policy"
MAX_POLICY_FILE_BYTES = 4 * 2**20

Origin = Literal["api", "annotation", "file"]


class PolicyFileError(ValueError):
    """The policy file cannot be used; the message names the document and field."""


@dataclass(frozen=True, slots=True)
class ResolvedPolicy:
    """The policy in force for one workload and where it came from, or why there is none
    usable (``error``: the annotation is invalid, which the owner must fix)."""

    policy: ScalingPolicy | None
    origin: Origin | None
    error: str = ""


NO_POLICY = ResolvedPolicy(None, None)


@dataclass(frozen=True, slots=True)
class FilePolicyKey:
    namespace: str
    name: str
    kind: str  # "" matches any kind


def load_policy_file(path: Path) -> dict[FilePolicyKey, ScalingPolicy]:
    """Every ``HorizontalPodAutoscaler`` in a (multi-document) YAML file, by its target.

    The target is ``spec.scaleTargetRef`` in ``metadata.namespace`` (default ``default``);
    a ``kind`` of ``Deployment``, ``StatefulSet`` or ``Local`` must match, another kind is
    refused. Raises ``PolicyFileError`` naming the document and field of the first problem.
    """
    try:
        if path.stat().st_size > MAX_POLICY_FILE_BYTES:
            raise PolicyFileError(f"{path}: larger than {MAX_POLICY_FILE_BYTES} bytes")
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as error:
        raise PolicyFileError(f"{path}: cannot read: {error.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise PolicyFileError(f"{path}: not YAML: {error}") from None
    policies: dict[FilePolicyKey, ScalingPolicy] = {}
    for index, document in enumerate(documents):
        if document is None:
            continue
        where = f"{path}: document {index}"
        key = _target(document, where)
        try:
            policy = parse_policy(document)
        except PolicyError as error:
            raise PolicyFileError(f"{where}: {error}") from None
        if key in policies:
            raise PolicyFileError(f"{where}: a second policy for {key.namespace}/{key.name}")
        policies[key] = policy
    return policies


def _target(document: Any, where: str) -> FilePolicyKey:
    if not isinstance(document, Mapping) or document.get("kind") != "HorizontalPodAutoscaler":
        raise PolicyFileError(f"{where}: kind: must be HorizontalPodAutoscaler")
    metadata = document.get("metadata") or {}
    spec = document.get("spec")
    target = spec.get("scaleTargetRef") if isinstance(spec, Mapping) else None
    if not isinstance(metadata, Mapping) or not isinstance(target, Mapping):
        raise PolicyFileError(f"{where}: spec.scaleTargetRef: required (the workload it scales)")
    namespace, name, kind = (
        metadata.get("namespace", "default"),
        target.get("name"),
        target.get("kind", ""),
    )
    if not isinstance(namespace, str) or not isinstance(name, str) or not name:
        raise PolicyFileError(f"{where}: spec.scaleTargetRef.name: required")
    if kind not in ("", "Deployment", "StatefulSet", "Local"):
        raise PolicyFileError(
            f"{where}: spec.scaleTargetRef.kind: must be Deployment, StatefulSet or Local"
        )
    return FilePolicyKey(namespace, name, kind)


def resolve_policy(
    state: WorkloadState,
    api_policies: Mapping[WorkloadRef, ScalingPolicy],
    file_policies: Mapping[FilePolicyKey, ScalingPolicy],
) -> ResolvedPolicy:
    """The admin API's policy, else the annotation's, else the file's; pure."""
    ref = state.ref
    if (policy := api_policies.get(ref)) is not None:
        return ResolvedPolicy(policy, "api")
    if (annotation := state.annotations.get(POLICY_ANNOTATION)) is not None:
        try:
            return ResolvedPolicy(parse_policy(annotation), "annotation")
        except PolicyError as error:
            return ResolvedPolicy(None, "annotation", f"annotation {POLICY_ANNOTATION}: {error}")
    for kind in (ref.kind, ""):
        if (policy := file_policies.get(FilePolicyKey(ref.namespace, ref.name, kind))) is not None:
            return ResolvedPolicy(policy, "file")
    return NO_POLICY
