"""Per-workload controls set through the admin API: scaling policies and pauses.

They must survive a controller restart (an operator who paused a workload expects it to stay
paused), so with a path they are written to one JSON file, atomically (temp file + rename),
on every change and read back at start. A corrupt or foreign file is logged and set aside,
never fatal.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from controller.ports import WorkloadRef
from shared.scaling_policy import ScalingPolicy, parse_policy, policy_to_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: policies are HPA specs (camelCase)


def _ref_key(ref: WorkloadRef) -> str:
    return f"{ref.kind}/{ref.namespace}/{ref.name}"


def _ref_of(key: str) -> WorkloadRef:
    kind, namespace, name = key.split("/", 2)
    if kind not in ("Deployment", "StatefulSet", "Local"):
        raise ValueError(f"unknown workload kind {kind!r}")
    return WorkloadRef(namespace, name, kind)  # type: ignore[arg-type]


class WorkloadControls:
    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self.policies: dict[WorkloadRef, ScalingPolicy] = {}
        self.paused: set[WorkloadRef] = set()
        if path is not None and path.exists():
            self._load(path)

    def set_policy(self, ref: WorkloadRef, policy: ScalingPolicy) -> None:
        self.policies[ref] = policy
        self._save()

    def set_paused(self, ref: WorkloadRef, paused: bool) -> None:
        if paused:
            self.paused.add(ref)
        else:
            self.paused.discard(ref)
        self._save()

    def _document(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "policies": {
                _ref_key(ref): policy_to_json(policy)
                for ref, policy in sorted(self.policies.items())
            },
            "paused": sorted(_ref_key(ref) for ref in self.paused),
        }

    def _save(self) -> None:
        if self._path is None:
            return
        temporary = self._path.with_name(self._path.name + ".tmp")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(self._document(), indent=1), encoding="utf-8")
            os.replace(temporary, self._path)
        except OSError as error:
            log.error("could not save workload controls to %s: %s", self._path, error)

    def _load(self, path: Path) -> None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown format version {document.get('version')!r}")
            policies = {
                _ref_of(key): parse_policy(value) for key, value in document["policies"].items()
            }
            paused = {_ref_of(key) for key in document["paused"]}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ValidationError) as error:
            aside = path.with_name(path.name + ".corrupt")
            log.error(
                "ignoring unreadable workload controls %s (%s); kept as %s", path, error, aside
            )
            os.replace(path, aside)
            return
        self.policies, self.paused = policies, paused
