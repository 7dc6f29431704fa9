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
from pathlib import Path
from typing import Any

from alerting import (
    RECORDING_RULES,
    alertmanager_alerts,
    drain_notifications,
    example_alertmanager,
    rules_with_short_for,
)
from services import AlertmanagerFactory, PrometheusFactory, free_port, http_sink
from waiting import eventually

FIRED = "LinescaleControllerDown"


def test_controller_down_pages_and_its_warning_is_inhibited(
    prometheus_factory: PrometheusFactory,
    alertmanager_factory: AlertmanagerFactory,
    tmp_path: Path,
) -> None:
    dead_controller = f"127.0.0.1:{free_port()}"
    with http_sink() as (sink_port, received):
        alertmanager = example_alertmanager(alertmanager_factory, sink_port)
        prometheus_factory(
            {"linescale-controller": [dead_controller]},
            scrape_interval="1s",
            rule_files=[
                RECORDING_RULES,
                rules_with_short_for(tmp_path / "linescale-alerts.yaml", [FIRED]),
            ],
            alertmanager=alertmanager.address,
        )

        paged: list[dict[str, Any]] = []
        ticketed: list[dict[str, Any]] = []

        def controller_down_paged() -> bool:
            for path, alert in drain_notifications(received, FIRED):
                (paged if path == "/linescale-pager" else ticketed).append(alert)
            return bool(paged)

        eventually(controller_down_paged, within=60, what=f"{FIRED} at /linescale-pager")

        # The warning reached Alertmanager too, and is held back by the critical.
        def warning_suppressed() -> bool:
            warnings = [
                a
                for a in alertmanager_alerts(alertmanager.url, FIRED)
                if a["labels"]["severity"] == "warning"
            ]
            return bool(warnings) and all(a["status"]["state"] == "suppressed" for a in warnings)

        eventually(warning_suppressed, within=30, what="the warning inhibited by the critical")
        warning = next(
            a
            for a in alertmanager_alerts(alertmanager.url, FIRED)
            if a["labels"]["severity"] == "warning"
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
