"""The PerformanceEngine: service analysis with SLO burn rates, fleet bottleneck findings,
adaptive concurrency limits, and automatic TuningSet changes that are verified against their
target metric and rolled back when they make it worse.

``analysis``, ``findings``, ``concurrency`` and ``tuning`` are pure; ``engine`` is the reconcile
step that wires them to agent reports and the TuningSet publisher.
"""
