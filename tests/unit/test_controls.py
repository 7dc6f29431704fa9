"""Workload controls survive a restart; a corrupt file is set aside, never fatal."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.controls import WorkloadControls
from controller.ports import WorkloadRef
from shared.scaling_policy import parse_policy

WEB = WorkloadRef("line", "web", "Deployment")
DB = WorkloadRef("line", "db", "StatefulSet")


def test_policies_and_pauses_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "controls.json"
    controls = WorkloadControls(path)
    policy = parse_policy({"minReplicas": 2, "maxReplicas": 8, "behavior": {}})
    controls.set_policy(WEB, policy)
    controls.set_paused(DB, True)
    controls.set_paused(WEB, True)
    controls.set_paused(WEB, False)

    reloaded = WorkloadControls(path)
    assert reloaded.policies == {WEB: policy}
    assert reloaded.paused == {DB}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("{not json", id="not-json"),
        pytest.param('{"version": 9, "policies": {}, "paused": []}', id="future-version"),
        pytest.param('{"version": 2, "policies": {"Job/a/b": {}}, "paused": []}', id="bad-kind"),
        pytest.param(
            '{"version": 2, "policies": {"Deployment/a/b": {"maxReplicas": 0}}, "paused": []}',
            id="invalid-policy",
        ),
        pytest.param(
            '{"version": 1, "policies": {"Deployment/a/b": {"max_replicas": 3}}, "paused": []}',
            id="pre-hpa-format",
        ),
    ],
)
def test_corrupt_file_is_set_aside_and_controls_start_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "controls.json"
    path.write_text(content)
    controls = WorkloadControls(path)
    assert (controls.policies, controls.paused) == ({}, set())
    assert (tmp_path / "controls.json.corrupt").read_text() == content
    controls.set_paused(WEB, True)
    assert WorkloadControls(path).paused == {WEB}


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    controls = WorkloadControls()
    controls.set_paused(WEB, True)
    assert list(tmp_path.iterdir()) == []
