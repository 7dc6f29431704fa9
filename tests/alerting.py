"""The shipped alerting configuration, made fast enough for tests: ``alerts/alertmanager.yml``
posting every receiver to a loopback sink, and ``alerts/linescale-alerts.yaml`` with chosen
rules' ``for:`` shortened. Only timings and URLs change, so the tests exercise the real rules,
routes and inhibitions."""

from __future__ import annotations

import json
import queue
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from services import AlertmanagerFactory, AlertmanagerServer

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "alerts"
RECORDING_RULES = ALERTS / "linescale-rules.yaml"


def example_config_for(sink_port: int) -> str:
    """``alerts/alertmanager.yml`` with every receiver posting to the sink at
    ``/<receiver name>`` and the grouping waits cut to 1s."""
    config = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            webhook["url"] = f"http://127.0.0.1:{sink_port}/{receiver['name']}"
    config["route"].update(group_wait="1s", group_interval="1s")
    return yaml.safe_dump(config, sort_keys=False)


def example_alertmanager(factory: AlertmanagerFactory, sink_port: int) -> AlertmanagerServer:
    """A real Alertmanager running the example configuration (see ``example_config_for``)."""
    alertmanager = factory(webhook_url=f"http://127.0.0.1:{sink_port}/unused")
    alertmanager.config_path.write_text(example_config_for(sink_port))
    reload = urllib.request.Request(f"{alertmanager.url}/-/reload", method="POST")
    with urllib.request.urlopen(reload, timeout=10) as response:
        assert response.status == 200
    return alertmanager


def rules_with_short_for(target: Path, alerts: Iterable[str], for_: str = "0s") -> Path:
    """The real alert rules written to ``target``, with the named alerts' ``for:`` set to
    ``for_``."""
    shortened = set(alerts)
    rules = yaml.safe_load((ALERTS / "linescale-alerts.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") in shortened:
                rule["for"] = for_
    target.write_text(yaml.safe_dump(rules, sort_keys=False))
    return target


def alertmanager_alerts(url: str, alertname: str) -> list[dict[str, Any]]:
    """The alerts named ``alertname`` Alertmanager holds (active, suppressed or not)."""
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as response:
        alerts: list[dict[str, Any]] = json.load(response)
    return [alert for alert in alerts if alert["labels"].get("alertname") == alertname]


def drain_notifications(
    received: queue.Queue[tuple[str, bytes]], alertname: str
) -> list[tuple[str, dict[str, Any]]]:
    """Webhook notifications the sink got so far, as (receiver path, alert) for ``alertname``."""
    found = []
    while not received.empty():
        path, body = received.get()
        for alert in json.loads(body)["alerts"]:
            if alert["labels"]["alertname"] == alertname:
                found.append((path, alert))
    return found
