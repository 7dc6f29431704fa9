"""The shipped controller RBAC grants exactly what the orchestrator tests run with: the API
double enforces those grants, so a missing verb fails there and an extra one fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kube_rbac import CONTROLLER_RBAC

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "daemonset" / "controller-rbac.yaml"


def granted(documents: list[dict[str, Any]], *, kinds: tuple[str, ...]) -> set[str]:
    """``"verb resource"`` for every rule of the given role kinds."""
    grants: set[str] = set()
    for document in documents:
        if document.get("kind") not in kinds:
            continue
        for rule in document["rules"]:
            grants |= {
                f"{verb} {resource}" for verb in rule["verbs"] for resource in rule["resources"]
            }
    return grants


def test_the_controller_roles_grant_exactly_the_calls_the_code_makes() -> None:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert granted(documents, kinds=("ClusterRole", "Role")) == CONTROLLER_RBAC


def test_leases_are_granted_in_the_controllers_namespace_only() -> None:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    cluster_wide = granted(documents, kinds=("ClusterRole",))
    assert not any(grant.endswith(" leases") for grant in cluster_wide)
    (role,) = [d for d in documents if d["kind"] == "Role"]
    assert role["metadata"]["namespace"] == "linescale"
