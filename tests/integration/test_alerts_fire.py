"""A Linescale alert fires in a real Prometheus and is routed by a real Alertmanager running
``alerts/alertmanager.yml`` to a webhook on loopback.

The controller scrape target is a loopback port nobody listens on, so ``up`` is 0: both
``LinescaleControllerDown`` rules hold (the per-instance warning and the "none up" critical).
The rule file is the real one with only those rules' ``for:`` shortened to 0s, so the test
takes seconds. The critical must page (``linescale-pager``); the warning must be inhibited by
it (same alertname and job), so the ticket receiver hears nothing of it.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from services import AlertmanagerFactory, PrometheusFactory, free_port, http_sink
from waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
FIRED = "LinescaleControllerDown"


def example_config_for(sink_port: int) -> str:
    """``alerts/alertmanager.yml`` with every receiver posting to the sink at
    ``/<receiver name>`` and the grouping waits cut to 1s."""
    config = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            webhook["url"] = f"http://127.0.0.1:{sink_port}/{receiver['name']}"
    config["route"].update(group_wait="1s", group_interval="1s")
    return yaml.safe_dump(config, sort_keys=False)


def rules_firing_at_once(target: Path) -> Path:
    """The real alert rules, with the fired alert's ``for:`` set to 0s."""
    rules = yaml.safe_load((ALERTS / "linescale-alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == FIRED:
                rule["for"] = "0s"
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def alertmanager_alerts(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
        alerts: list[dict[str, Any]] = json.load(response)
    return [alert for alert in alerts if alert["labels"].get("alertname") == FIRED]


def test_controller_down_pages_and_its_warning_is_inhibited(
    prometheus_factory: PrometheusFactory,
    alertmanager_factory: AlertmanagerFactory,
    tmp_path: Path,
) -> None:
    dead_controller = f"127.0.0.1:{free_port()}"
    with http_sink() as (sink_port, received):
        alertmanager = alertmanager_factory(webhook_url=f"http://127.0.0.1:{sink_port}/unused")
        alertmanager.config_path.write_text(example_config_for(sink_port))
        reload = urllib.request.Request(f"{alertmanager.url}/-/reload", method="POST")
        with urllib.request.urlopen(reload, timeout=10) as response:
            assert response.status == 200
        prometheus_factory(
            {"linescale-controller": [dead_controller]},
            scrape_interval="1s",
            rule_files=[
                ALERTS / "linescale-rules.yaml",
                rules_firing_at_once(tmp_path / "linescale-alerts.yaml"),
            ],
            alertmanager=alertmanager.address,
        )

        paged: list[dict[str, Any]] = []
        ticketed: list[dict[str, Any]] = []

        def controller_down_paged() -> bool:
            while not received.empty():
                path, body = received.get()
                payload = json.loads(body)
                fired = [a for a in payload["alerts"] if a["labels"]["alertname"] == FIRED]
                (paged if path == "/linescale-pager" else ticketed).extend(fired)
            return bool(paged)

        eventually(controller_down_paged, within=60, what=f"{FIRED} at /linescale-pager")

        # The warning reached Alertmanager too, and is held back by the critical.
        def warning_suppressed() -> bool:
            warnings = [
                a
                for a in alertmanager_alerts(alertmanager.url)
                if a["labels"]["severity"] == "warning"
            ]
            return bool(warnings) and all(a["status"]["state"] == "suppressed" for a in warnings)

        eventually(warning_suppressed, within=30, what="the warning inhibited by the critical")
        warning = next(
            a for a in alertmanager_alerts(alertmanager.url) if a["labels"]["severity"] == "warning"
        )
        controller_down_paged()  # drain what arrived meanwhile

    (alert,) = {json.dumps(a["labels"], sort_keys=True): a for a in paged}.values()
    assert alert["status"] == "firing"
    assert alert["labels"] == {
        "alertname": FIRED,
        "severity": "critical",
        "job": "linescale-controller",
    }
    assert alert["annotations"]["runbook_url"].endswith("runbooks.md#linescalecontrollerdown")
    assert "No target of job linescale-controller" in alert["annotations"]["description"]
    assert warning["labels"]["instance"] == dead_controller
    assert warning["status"]["inhibitedBy"]
    assert ticketed == []
