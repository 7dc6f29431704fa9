"""workload_of: a pod name -> its workload, per Kubernetes' naming conventions.

``WORKLOAD_CASES`` is also run through the PromQL twin (``promql_workload``) against a real
Prometheus in tests/integration/test_metrics_sources.py, so the two cannot drift.
"""

from __future__ import annotations

import re

import pytest

from controller.sources.workloads import (
    DEPLOYMENT_POD_RE,
    SAFE_ALPHABET,
    promql_workload,
    workload_of,
)

# (id, pod name, expected workload)
WORKLOAD_CASES: list[tuple[str, str, str]] = [
    ("deployment", "order-intake-7d9f8b6c5-x2k4q", "order-intake"),
    ("deployment-5-char-hash", "web-5d4f8-b7rzm", "web"),
    ("deployment-10-char-hash", "api-6b7c8d9f2b-zx7km", "api"),
    ("deployment-dashes-in-name", "order-intake-v2-7d9f8b6c5-x2k4q", "order-intake-v2"),
    ("deployment-wins-over-ordinal", "web-5d4f8-22456", "web"),
    ("statefulset-ordinal-0", "ledger-0", "ledger"),
    ("statefulset-ordinal-12", "kafka-broker-12", "kafka-broker"),
    ("statefulset-name-like-hash", "svc-bcdfg-0", "svc-bcdfg"),
    ("statefulset-digits-in-name", "redis-2456789-0", "redis-2456789"),
    ("local-replica", "worker-3", "worker"),
    ("bare-pod", "standalone", "standalone"),
    ("bare-pod-with-dash", "my-cache", "my-cache"),
    ("vowels-are-not-a-hash", "web-abcde-fghij", "web-abcde-fghij"),
    ("hash-too-short", "web-bcdf-hjklm", "web-bcdf-hjklm"),
    ("hash-too-long", "web-bcdfghjklmn-x2k4q", "web-bcdfghjklmn-x2k4q"),
    ("suffix-too-short", "web-7d9f8b6c5-x2k4", "web-7d9f8b6c5-x2k4"),
    ("daemonset-not-derived", "node-exporter-x2k4q", "node-exporter-x2k4q"),
    ("empty", "", ""),
]


@pytest.mark.parametrize(
    ("pod", "workload"), [pytest.param(pod, want, id=name) for name, pod, want in WORKLOAD_CASES]
)
def test_workload_of(pod: str, workload: str) -> None:
    assert workload_of(pod) == workload


def test_safe_alphabet_has_no_vowels_or_lookalikes() -> None:
    assert not set(SAFE_ALPHABET) & set("aeiou013")
    assert re.fullmatch(DEPLOYMENT_POD_RE, "a-bcdfg-hjklm")


def test_promql_chain_applies_the_most_specific_rule_last() -> None:
    expr = promql_workload('up{job="x"}')
    # Outermost call (the one that wins) is the Deployment rule; innermost the identity.
    assert expr.startswith('label_replace(label_replace(label_replace(up{job="x"}, "workload"')
    assert expr.endswith(f'"pod", "{DEPLOYMENT_POD_RE}")')
    assert '"pod", "(.+)")' in expr
    assert '"pod", "(.+)-[0-9]+")' in expr
