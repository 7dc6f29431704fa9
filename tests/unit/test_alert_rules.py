"""The alerting and recording rules, their promtool unit tests, the runbooks they point at,
and the example Alertmanager configuration: checked with the real promtool and amtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import require_binary

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
RULE_FILES = (ALERTS / "linescale-rules.yaml", ALERTS / "linescale-alerts.yaml")
TEST_FILES = tuple(sorted((ALERTS / "tests").glob("*.yaml")))
ALERTMANAGER = ALERTS / "alertmanager.yml"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
RUNBOOK_BASE = "https://github.com/linescale/linescale/blob/main/docs/runbooks.md#"
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z_]+:[a-z0-9_]+$")  # level:metric:operation


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def rules(kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(rule for rule in group["rules"] if kind in rule)
    return found


def github_anchor(heading: str) -> str:
    """GitHub's heading slug: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {
        github_anchor(line.lstrip("#"))
        for line in RUNBOOKS.read_text().splitlines()
        if line.startswith("## ")
    }


def test_promtool_check_rules_accepts_every_rule_file() -> None:
    result = run(require_binary("promtool", "prometheus"), "check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass_at_every_for_boundary() -> None:
    assert TEST_FILES, "no promtool test files under alerts/tests/"
    result = run(require_binary("promtool", "prometheus"), "test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_before_and_at_its_for_boundary() -> None:
    """Each alert name has a test with no alert one interval before a firing expectation."""
    tested: dict[str, set[str]] = {}
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                state = "firing" if check.get("exp_alerts") else "quiet"
                tested.setdefault(check["alertname"], set()).add(state)
    for rule in rules("alert"):
        assert tested.get(rule["alert"]) == {"firing", "quiet"}, rule["alert"]


@pytest.mark.parametrize("rule", rules("alert"), ids=lambda rule: rule["alert"])
def test_alert_has_severity_for_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    annotations = rule["annotations"]
    assert annotations["summary"]
    assert "{{" in annotations["description"], "description must be templated"
    assert annotations["runbook_url"].startswith(RUNBOOK_BASE)


@pytest.mark.parametrize("rule", rules("alert"), ids=lambda rule: rule["alert"])
def test_runbook_url_points_at_an_existing_section(rule: dict[str, Any]) -> None:
    anchor = rule["annotations"]["runbook_url"].removeprefix(RUNBOOK_BASE)
    assert anchor == github_anchor(rule["alert"])
    assert anchor in runbook_anchors()


@pytest.mark.parametrize("rule", rules("record"), ids=lambda rule: rule["record"])
def test_recording_rule_is_named_level_metric_operation(rule: dict[str, Any]) -> None:
    assert RECORD_NAME.fullmatch(rule["record"])
    level = rule["record"].split(":")[0].split("_")
    assert all(label in rule["expr"] for label in level), "the level names the kept labels"


def test_amtool_check_config_accepts_the_example() -> None:
    result = run(
        require_binary("amtool", "prometheus-alertmanager"), "check-config", str(ALERTMANAGER)
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        pytest.param(
            ("severity=critical", "alertname=LinescaleControllerDown"),
            "linescale-pager",
            id="critical-pages",
        ),
        pytest.param(
            ("severity=warning", "alertname=LinescaleCacheL2Down"),
            "linescale-tickets",
            id="warning-tickets",
        ),
        pytest.param(("alertname=Watchdog",), "linescale-default", id="no-severity-default"),
    ],
)
def test_routes_by_severity(labels: tuple[str, ...], receiver: str) -> None:
    result = run(
        require_binary("amtool", "prometheus-alertmanager"),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receiver}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_critical_inhibits_the_warning_of_the_same_alert_and_labels() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    generic = config["inhibit_rules"][0]
    assert generic["source_matchers"] == ['severity="critical"']
    assert generic["target_matchers"] == ['severity="warning"']
    assert {"alertname", "job", "instance"} <= set(generic["equal"])
