"""The demo's ending: the summary figures, the printed summary and the report folder.

``build_summary`` is pure: it turns the load generator's buckets, the replica samples and the
decision log into the ``summary.json`` contract (another tool reads it; keys are only ever
added). ``write_report`` writes ``README.md``, the SVG charts and ``summary.json``.

Definitions: success is an HTTP 2xx answer; a request with no answer at all is an error too,
and is also counted as ``unanswered``. ``normal`` is every request sent while the offered rate
was at or below the run's median rate; ``peak`` every one sent while it was in the top 10 % of
offered rates. Cost is in simulated time: replicas running x simulated hours x the price.
``cache.hit_ratio`` is over the whole run, cold start included (every node's L1 starts empty);
``cache.warm_hit_ratio`` only over the requests sent after the first ``WARM_AFTER`` (25 %) of
the wall time, when the caches hold what the line looks up: the figure a running line sees.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.demo.loadgen import Bucket, LatencyHistogram
from controller.demo.scenarios import Timeline
from controller.engines.scaling.svg_chart import Line, line_chart_svg

PRICE_PER_REPLICA_HOUR = 0.048  # a quarter of the controller's default node price (0.192 /h)
ENGINES = {
    "scale": "scalability",
    "route": "balancing",
    "tune": "performance",
    "resize": "vertical",
    "cache": "caching",
}
CHARTS = ("load_replicas.svg", "latency.svg", "cache_hit_ratio.svg")
WARM_AFTER = 0.25  # share of the wall time after which the cache counts as warm


@dataclass(frozen=True, slots=True)
class ReplicaSample:
    at: float  # wall seconds since the load began
    desired: int
    ready: int
    running: int  # processes the orchestrator holds, ready or not


def group_stats(buckets: Iterable[Bucket]) -> dict[str, float | int]:
    """Requests sent, mean and p99 latency (ms) over ``buckets``."""
    chosen = list(buckets)
    latency = LatencyHistogram.merged(bucket.latency for bucket in chosen)
    return {
        "requests": sum(bucket.sent for bucket in chosen),
        "mean_ms": round(latency.mean, 3),
        "p99_ms": round(latency.quantile(0.99), 3),
    }


def split_normal_peak(buckets: Sequence[Bucket]) -> tuple[list[Bucket], list[Bucket]]:
    """(normal, peak): buckets at or below the median offered rate, and those in its top 10 %."""
    loaded = [bucket for bucket in buckets if bucket.sent > 0]
    if not loaded:
        return [], []
    rates = sorted(bucket.offered_rps for bucket in loaded)
    median = statistics.median(rates)
    top = max(1, math.ceil(len(rates) * 0.1))
    threshold = rates[-top]
    normal = [bucket for bucket in loaded if bucket.offered_rps <= median]
    peak = [bucket for bucket in loaded if bucket.offered_rps >= threshold]
    return normal, peak


def degradation(normal_mean_ms: float, peak_mean_ms: float, peak_requests: int) -> float:
    """Relative increase of the mean latency at peak over normal; 0 without data for both."""
    if peak_requests == 0 or normal_mean_ms <= 0:
        return 0.0
    return round((peak_mean_ms - normal_mean_ms) / normal_mean_ms, 4)


def decision_entry(decision: Mapping[str, Any], started_epoch: float) -> dict[str, Any]:
    """One decision of the controller's log, as the summary lists it."""
    reason = decision.get("reason", {})
    before, after = decision.get("from_value"), decision.get("to_value")
    return {
        "at": round(float(decision["decided_at"]) - started_epoch, 2),
        "engine": ENGINES.get(str(decision.get("kind")), str(decision.get("kind"))),
        "target": str(decision.get("target", "")),
        "reason": str(reason.get("code", "")),
        "summary": f"{before} -> {after}: {reason.get('message', '')}".strip(),
    }


def cache_figures(buckets: Sequence[Bucket], wall_seconds: float) -> dict[str, Any]:
    """Hits and misses by the answers' X-Cache (L1, L2, MISS): whole run, and warm."""

    def count(chosen: Iterable[Bucket]) -> Counter[str]:
        levels: Counter[str] = Counter()
        for bucket in chosen:
            levels.update(bucket.cache)
        return levels

    def ratio(levels: Counter[str]) -> float:
        hits, lookups = levels["L1"] + levels["L2"], levels["L1"] + levels["L2"] + levels["MISS"]
        return round(hits / lookups, 4) if lookups else 0.0

    warm_after = round(wall_seconds * WARM_AFTER, 2)
    every, warm = count(buckets), count(b for b in buckets if b.start >= warm_after)
    return {
        "hits": every["L1"] + every["L2"],
        "misses": every["MISS"],
        "hit_ratio": ratio(every),
        "l1_hits": every["L1"],
        "l2_hits": every["L2"],
        "warm_hit_ratio": ratio(warm),
        "warm_after_seconds": warm_after,
        "warm_lookups": warm["L1"] + warm["L2"] + warm["MISS"],
    }


def is_scaling_action(decision: Mapping[str, Any]) -> bool:
    return (
        decision.get("kind") == "scale"
        and decision.get("from_value") != decision.get("to_value")
        and decision.get("actuation", {}).get("state") in ("done", "pending")
    )


def is_ejection(decision: Mapping[str, Any]) -> bool:
    return decision.get("kind") == "route" and decision.get("to_value") == "ejected"


def replica_seconds(samples: Sequence[ReplicaSample], wall_seconds: float) -> float:
    """Wall replica-seconds: each sample's running count until the next sample (or the end)."""
    total = 0.0
    for index, sample in enumerate(samples):
        end = samples[index + 1].at if index + 1 < len(samples) else wall_seconds
        total += sample.running * max(0.0, end - sample.at)
    return total


def build_summary(
    *,
    timeline: Timeline,
    wall_seconds: float,
    buckets: Sequence[Bucket],
    replicas: Sequence[ReplicaSample],
    decisions: Sequence[Mapping[str, Any]],
    started_epoch: float,
    local_ejections: int = 0,
    interrupted: bool = False,
    price_per_replica_hour: float = PRICE_PER_REPLICA_HOUR,
) -> dict[str, Any]:
    """The summary.json contract (plus extra keys); pure."""
    sent = sum(bucket.sent for bucket in buckets)
    ok = sum(bucket.ok for bucket in buckets)
    unanswered = sum(bucket.unanswered for bucket in buckets)
    latency = LatencyHistogram.merged(bucket.latency for bucket in buckets)
    normal, peak = split_normal_peak(buckets)
    normal_stats, peak_stats = group_stats(normal), group_stats(peak)
    counts = [sample.running for sample in replicas] or [0]
    wall_replica_seconds = replica_seconds(replicas, wall_seconds)
    simulated_replica_seconds = wall_replica_seconds * timeline.speed
    replica_hours = simulated_replica_seconds / 3600
    simulated_seconds = wall_seconds * timeline.speed
    ordered = sorted(decisions, key=lambda d: float(d["decided_at"]))
    return {
        "pattern": timeline.scenario,
        "speed": round(timeline.speed, 4),
        "wall_seconds": round(wall_seconds, 2),
        "simulated_seconds": round(simulated_seconds, 1),
        "interrupted": interrupted,
        "requests": {
            "total": sent,
            "ok": ok,
            "errors": sent - ok,
            "unanswered": unanswered,
            "success_ratio": round(ok / sent, 5) if sent else 1.0,
        },
        "latency_ms": {
            "mean": round(latency.mean, 3),
            "p50": round(latency.quantile(0.5), 3),
            "p99": round(latency.quantile(0.99), 3),
        },
        "normal": normal_stats,
        "peak": peak_stats,
        "degradation_at_peak": degradation(
            float(normal_stats["mean_ms"]),
            float(peak_stats["mean_ms"]),
            int(peak_stats["requests"]),
        ),
        "scaling": {
            "actions": sum(1 for decision in ordered if is_scaling_action(decision)),
            "min_replicas": min(counts),
            "max_replicas": max(counts),
            "replica_seconds": round(simulated_replica_seconds, 1),
            "wall_replica_seconds": round(wall_replica_seconds, 1),
        },
        "cache": cache_figures(buckets, wall_seconds),
        "routing": {
            "ejections": sum(1 for decision in ordered if is_ejection(decision)),
            "local_ejections": local_ejections,
        },
        "cost": {
            "replica_hours": round(replica_hours, 4),
            "cost": round(replica_hours * price_per_replica_hour, 4),
            "static_peak_cost": round(
                max(counts) * simulated_seconds / 3600 * price_per_replica_hour, 4
            ),
            "price_per_replica_hour": price_per_replica_hour,
        },
        "decisions": [decision_entry(decision, started_epoch) for decision in ordered],
    }


def summary_text(summary: Mapping[str, Any], report_dir: Path | None) -> str:
    """The summary printed at the end, one figure a line."""
    requests, latency = summary["requests"], summary["latency_ms"]
    scaling, cache, cost = summary["scaling"], summary["cache"], summary["cost"]
    saving = cost["static_peak_cost"] - cost["cost"]
    lines = [
        f"summary: {summary['pattern']} for {summary['wall_seconds']:.1f}s "
        f"({summary['simulated_seconds'] / 60:.0f} simulated min at {summary['speed']:g}x)"
        + (" - interrupted" if summary.get("interrupted") else ""),
        f"  requests:      {requests['total']} sent, {requests['ok']} ok, "
        f"{requests['errors']} errors ({requests['unanswered']} unanswered); "
        f"success {requests['success_ratio'] * 100:.2f}%",
        f"  latency:       p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, "
        f"mean {latency['mean']:.1f} ms; at peak {summary['peak']['mean_ms']:.1f} ms vs "
        f"{summary['normal']['mean_ms']:.1f} ms normal "
        f"({summary['degradation_at_peak'] * 100:+.0f}%)",
        f"  scaling:       {scaling['actions']} actions, replicas {scaling['min_replicas']}.."
        f"{scaling['max_replicas']}",
        f"  cost:          {cost['replica_hours']:.2f} replica-hours = {cost['cost']:.3f} vs "
        f"{cost['static_peak_cost']:.3f} for a static fleet sized for the peak "
        f"(saves {saving:.3f})",
        f"  cache:         hit ratio {cache['hit_ratio'] * 100:.1f}%, warm "
        f"{cache['warm_hit_ratio'] * 100:.1f}% after {cache['warm_after_seconds']:g}s "
        f"({cache['hits']} hits: {cache['l1_hits']} L1, {cache['l2_hits']} L2; "
        f"{cache['misses']} misses)",
        f"  routing:       {summary['routing']['ejections']} ejections by the controller, "
        f"{summary['routing']['local_ejections']} local ones by the agents",
        f"  decisions:     {len(summary['decisions'])}",
    ]
    if harness := summary.get("harness"):
        lines.append(f"  harness:       {harness_text(harness)}")
    if report_dir is not None:
        lines.append(f"  report:        {report_dir}/README.md")
    return "\n".join(lines)


def harness_text(harness: Mapping[str, Any]) -> str:
    """How healthy the demo itself was, so a latency figure can be trusted (or not)."""
    loop, cpu = harness["controller_loop_lag_ms"], harness["cpu_percent"]
    generator = harness["generator_loop_lag_ms"]
    return (
        f"controller loop lag p99 {loop['p99']:g} ms (max {loop['max']:g}); load generator "
        f"lag max {generator['max']:g} ms; machine CPU mean {cpu['mean']:g} % "
        f"(max {cpu['max']:g} %, {cpu['seconds_at_or_over_95']} s at >= 95 %)"
    )


# --- charts ----------------------------------------------------------------------------------


def elapsed_labeller(span_seconds: float) -> Callable[[float], str]:
    """X-axis tick labels in the unit that suits the span: minutes, hours, or days."""
    if span_seconds >= 2 * 86400:
        unit_seconds, unit = 86400.0, "d"
    elif span_seconds >= 2 * 3600:
        unit_seconds, unit = 3600.0, "h"
    else:
        unit_seconds, unit = 60.0, "min"
    return lambda seconds: f"{seconds / unit_seconds:.3g} {unit}"


def charts(
    timeline: Timeline, buckets: Sequence[Bucket], replicas: Sequence[ReplicaSample]
) -> dict[str, str]:
    """The report's SVG charts over simulated time, by file name."""
    if not buckets:
        return {}
    width = buckets[1].start - buckets[0].start if len(buckets) > 1 else 1.0
    times = [timeline.sim_at(bucket.start) for bucket in buckets]
    x_labeller = elapsed_labeller(times[-1] - times[0])

    def running_at(at: float) -> float:
        current = math.nan
        for sample in replicas:
            if sample.at > at:
                break
            current = sample.running
        return current

    offered = [bucket.offered_rps for bucket in buckets]
    served = [bucket.ok / width for bucket in buckets]
    failed = [bucket.failed / width for bucket in buckets]
    running = [running_at(bucket.start + width) for bucket in buckets]
    p50 = [bucket.latency.quantile(0.5) if bucket.latency.count else math.nan for bucket in buckets]
    p99 = [
        bucket.latency.quantile(0.99) if bucket.latency.count else math.nan for bucket in buckets
    ]

    def hit_ratio(bucket: Bucket) -> float:
        total = sum(bucket.cache.values())
        return (bucket.cache["L1"] + bucket.cache["L2"]) / total if total else math.nan

    title = f"{timeline.scenario} at {timeline.speed:g}x"
    return {
        "load_replicas.svg": line_chart_svg(
            f"{title}: load and replicas",
            times,
            [
                Line("offered req/s", offered, "#888888"),
                Line("served ok req/s", served, "#1f77b4"),
                Line("failed req/s", failed, "#d62728"),
                Line("replicas", running, "#2ca02c", right_axis=True),
            ],
            left_label="req/s",
            right_label="replicas",
            x_labeller=x_labeller,
        ),
        "latency.svg": line_chart_svg(
            f"{title}: latency",
            times,
            [Line("p50 ms", p50, "#1f77b4"), Line("p99 ms", p99, "#ff7f0e")],
            left_label="ms",
            right_label="",
            x_labeller=x_labeller,
        ),
        "cache_hit_ratio.svg": line_chart_svg(
            f"{title}: cache hit ratio",
            times,
            [Line("hit ratio", [hit_ratio(bucket) for bucket in buckets], "#9467bd")],
            left_label="hit ratio",
            right_label="",
            x_labeller=x_labeller,
        ),
    }


# --- the folder ------------------------------------------------------------------------------


def readme(summary: Mapping[str, Any], story: str, chart_names: Iterable[str]) -> str:
    """The report's Markdown: the story, the figures, the charts, every decision."""
    requests, latency = summary["requests"], summary["latency_ms"]
    scaling, cache, cost = summary["scaling"], summary["cache"], summary["cost"]
    rows = [
        ("requests sent", f"{requests['total']}"),
        ("success ratio (2xx)", f"{requests['success_ratio'] * 100:.2f} %"),
        ("errors / unanswered", f"{requests['errors']} / {requests['unanswered']}"),
        ("latency p50 / p99 / mean", f"{latency['p50']} / {latency['p99']} / {latency['mean']} ms"),
        (
            "mean latency normal / peak",
            f"{summary['normal']['mean_ms']} / {summary['peak']['mean_ms']} ms "
            f"({summary['degradation_at_peak'] * 100:+.1f} %)",
        ),
        ("scaling actions", f"{scaling['actions']}"),
        ("replicas min / max", f"{scaling['min_replicas']} / {scaling['max_replicas']}"),
        ("replica-hours (simulated)", f"{cost['replica_hours']}"),
        ("cost / static fleet at peak", f"{cost['cost']} / {cost['static_peak_cost']}"),
        (
            "cache hit ratio (whole run / warm)",
            f"{cache['hit_ratio'] * 100:.1f} % / {cache['warm_hit_ratio'] * 100:.1f} % "
            f"({cache['hits']} hits: {cache['l1_hits']} L1, {cache['l2_hits']} L2)",
        ),
        (
            "ejections (controller / agents)",
            f"{summary['routing']['ejections']} / {summary['routing']['local_ejections']}",
        ),
    ]
    if "active_parts" in cache:
        rows.append(
            (
                "cache sizing",
                f"{cache['active_parts']} active parts (Zipf), TTL "
                f"{cache['part_ttl_simulated_seconds'] / 60:g} simulated min = "
                f"{cache['part_ttl_wall_seconds']:g} s of wall time; warm after "
                f"{cache['warm_after_seconds']:g} s",
            )
        )
    if harness := summary.get("harness"):
        rows.append(("harness (is the latency the service's?)", harness_text(harness)))
    lines = [
        f"# Linescale demo: {summary['pattern']}",
        "",
        story,
        "",
        f"{summary['wall_seconds']} s of wall time replayed {summary['simulated_seconds']} "
        f"simulated seconds at {summary['speed']}x."
        + (" The run was interrupted before its end." if summary.get("interrupted") else ""),
        "",
        "| figure | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        "Cost is in simulated time at "
        f"{cost['price_per_replica_hour']} per replica-hour; the static fleet runs the run's "
        "maximum replica count throughout.",
        "",
        "## Charts",
        "",
        *[f"![{name}]({name})" for name in chart_names],
        "",
        "## Decisions",
        "",
        "| at (s) | engine | target | reason | what |",
        "|---|---|---|---|---|",
    ]
    for decision in summary["decisions"]:
        what = str(decision["summary"]).replace("|", "/")
        lines.append(
            f"| {decision['at']} | {decision['engine']} | {decision['target']} | "
            f"{decision['reason']} | {what} |"
        )
    if not summary["decisions"]:
        lines.append("| - | - | - | - | no decisions |")
    return "\n".join(lines) + "\n"


def write_report(
    directory: Path, summary: Mapping[str, Any], story: str, svgs: Mapping[str, str]
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, svg in svgs.items():
        (directory / name).write_text(svg, encoding="utf-8")
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (directory / "README.md").write_text(readme(summary, story, svgs), encoding="utf-8")
