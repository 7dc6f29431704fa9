"""The grants the controller runs with in the orchestrator tests: the API double enforces them,
so the tests prove they suffice, and ``deploy/daemonset/controller-rbac.yaml`` must grant the
same (``tests/unit/test_deploy_rbac.py``)."""

from __future__ import annotations

CONTROLLER_RBAC = {
    "list deployments",
    "get deployments",
    "patch deployments",
    "list statefulsets",
    "get statefulsets",
    "patch statefulsets",
    "patch deployments/scale",
    "patch statefulsets/scale",
    "list pods",
    "get pods",
    "patch pods/resize",
    "create events",
    "get leases",
    "create leases",
    "update leases",
}
