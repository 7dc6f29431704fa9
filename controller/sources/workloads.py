"""Which workload a pod belongs to, from its name alone — in Python and in PromQL.

Why from the name: container metrics carry only ``namespace`` and ``pod`` labels, and both
metrics sources must group them by workload without asking the orchestrator. Kubernetes names
pods predictably:

* Deployment: ``<name>-<pod-template-hash>-<suffix>``; the hash is 5-10 characters and the
  suffix 5, both from the API server's "safe" alphabet (no vowels, no 0/1/3, so no words).
* StatefulSet: ``<name>-<ordinal>``; the local orchestrator names replicas ``<name>-<index>``.
* Anything else (a bare pod) is its own workload.

The Deployment form wins when both match (``web-5d4f8-22456`` is a Deployment pod, never
StatefulSet ``web-5d4f8``'s replica 22456). The same three regexes build :func:`workload_of` and
:func:`promql_workload`, and the tests run one table through both, so they cannot drift.
Prometheus anchors ``label_replace`` regexes (``^(?:re)$``) and, like Python, picks submatches
leftmost-first, so ``re.fullmatch`` sees exactly what Prometheus sees.
"""

from __future__ import annotations

import json
import re
from typing import Final

SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
"""Kubernetes' ``rand.SafeEncodeString`` alphabet, used for template hashes and name suffixes."""

DEPLOYMENT_POD_RE: Final = rf"(.+)-[{SAFE_ALPHABET}]{{5,10}}-[{SAFE_ALPHABET}]{{5}}"
ORDINAL_POD_RE: Final = r"(.+)-[0-9]+"
ANY_POD_RE: Final = r"(.+)"

# Applied in this order; a later match overrides an earlier one (the PromQL chain's semantics).
_RULES: Final = (ANY_POD_RE, ORDINAL_POD_RE, DEPLOYMENT_POD_RE)
_COMPILED: Final = tuple(re.compile(rule) for rule in reversed(_RULES))  # most specific first


def workload_of(pod_name: str) -> str:
    """The workload name a pod belongs to; the pod's own name when no convention matches."""
    for pattern in _COMPILED:
        match = pattern.fullmatch(pod_name)
        if match is not None:
            return match.group(1)
    return pod_name  # only "" gets here


def promql_workload(expr: str, *, pod_label: str = "pod", target_label: str = "workload") -> str:
    """Wrap a PromQL vector ``expr`` so each series gains ``target_label`` = workload_of(pod).

    Three chained ``label_replace`` calls: the pod name itself, then the ordinal form, then
    the Deployment form, each overriding the previous when it matches.
    """
    wrapped = expr
    for rule in _RULES:
        wrapped = (
            f"label_replace({wrapped}, {json.dumps(target_label)}, "
            f'"$1", {json.dumps(pod_label)}, {json.dumps(rule)})'
        )
    return wrapped
