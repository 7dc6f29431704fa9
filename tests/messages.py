"""Valid wire messages as plain dicts, for tests to change one field at a time."""

from __future__ import annotations

from typing import Any

TOKEN = "test-token-0123456789abcdef"


def routing(**changes: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "schema_version": 1,
        "version": 3,
        "generated_at": 1700000000.5,
        "services": [
            {
                "name": "order-intake",
                "policy": "p2c_peak_ewma",
                "endpoints": [
                    {"address": "10.0.0.1:8080", "zone": "a", "weight": 100, "state": "active"},
                    {"address": "10.0.1.1:8080", "zone": "b", "state": "draining"},
                ],
            }
        ],
    }
    table.update(changes)
    return table


def tuning(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": 1,
        "generated_at": 1.0,
        "cache": {"capacity_bytes": 1048576, "default_ttl_seconds": 30, "max_ttl_seconds": 300},
        "dataplane": {
            "connect_timeout_ms": 100,
            "request_timeout_ms": 1000,
            "retry_budget_percent": 20,
            "max_concurrency": 64,
        },
        "collector_interval_seconds": 5,
    }
    body.update(changes)
    return body


def report(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "node": "node-1",
        "zone": "a",
        "endpoint": "http://10.0.0.1:9400",
        "sent_at": 1.0,
        "sequence": 0,
        "health": "ok",
        "capacity": {"cpu_cores": 4, "memory_bytes": 8 * 2**30},
    }
    body.update(changes)
    return body


def decision(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "d-1",
        "kind": "scale",
        "target": "line/order-intake",
        "from_value": 3,
        "to_value": 5,
        "reason": {"code": "cpu_above_target", "message": "cpu 90% > 60%", "inputs": {"cpu": 0.9}},
        "decided_at": 10.0,
        "decide_seconds": 0.002,
        "actuation": {"state": "done", "finished_at": 11.0},
    }
    body.update(changes)
    return body


def finding(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resource": "cpu",
        "kind": "saturation",
        "severity": "warning",
        "rule": "cpu_psi",
        "subject": "node/node-1",
        "since": 1.0,
        "evidence": [{"signal": "node.psi.cpu.some.avg10", "value": 40.0, "threshold": 25.0}],
        "culprits": [{"pid": 42, "command": "burn", "share": 0.5}],
        "message": "cpu pressure",
    }
    body.update(changes)
    return body
