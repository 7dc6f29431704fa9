"""``linescale report resources``: savings arithmetic, table, chart, bad input, and the pure
halves of the Prometheus usage history (grouping, queries)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from controller import report as command
from controller.engines.decide_input import DecideInputError
from controller.report import (
    ContainerRow,
    Prices,
    build_report,
    parse_duration,
    recommend,
    render_table,
    report_json,
)
from controller.sources.usage_history import (
    MAX_POINTS_PER_SERIES,
    ContainerHistory,
    ContainerKey,
    QueryName,
    UsageSample,
    choose_step,
    histories_from_results,
    usage_queries,
)

MIB = 2**20
GIB = 2**30
CORE_HOUR = 0.031611
GIB_HOUR = 0.004237
NOW = 1_700_000_000
SVG = "{http://www.w3.org/2000/svg}"


def container(
    workload: str,
    requests: Mapping[str, str] | None = None,
    *,
    namespace: str = "shop",
    name: str = "app",
    samples: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    return {
        "namespace": namespace,
        "workload": workload,
        "container": name,
        "requests": dict(requests or {}),
        "limits": {},
        "samples": samples or [],
    }


def recommended(workload: str, cpu: str | None, memory: str | None, **extra: Any) -> dict[str, Any]:
    def bounds(target: str | None) -> dict[str, str] | None:
        return (
            None
            if target is None
            else {"target": target, "lowerBound": target, "upperBound": target}
        )

    return {
        "namespace": extra.pop("namespace", "shop"),
        "workload": workload,
        "container": extra.pop("name", "app"),
        "cpu": bounds(cpu),
        "memory": bounds(memory),
        "reason": "recommended" if cpu else "insufficient_history",
        "message": extra.pop("message", ""),
        **extra,
    }


def one_row(
    requests: Mapping[str, str], cpu: str | None, memory: str | None, pods: int | None
) -> ContainerRow:
    report = build_report(
        {"containers": [container("web", requests)]},
        {"containers": [recommended("web", cpu, memory)]},
        pods=None if pods is None else {("shop", "web", "app"): pods},
    )
    (row,) = report.rows
    return row


# ------------------------------------------------------------------------- arithmetic


@pytest.mark.parametrize(
    ("requests", "cpu", "memory", "pods", "cores", "bytes_", "per_hour"),
    [
        pytest.param(
            {"cpu": "1", "memory": "1Gi"},
            "250m",
            "512Mi",
            2,
            1.5,
            1.0 * GIB,
            1.5 * CORE_HOUR + 1.0 * GIB_HOUR,
            id="over-provisioned-times-pods",
        ),
        pytest.param(
            {"cpu": "100m", "memory": "256Mi"},
            "300m",
            "512Mi",
            1,
            -0.2,
            -256.0 * MIB,
            -0.2 * CORE_HOUR - 0.25 * GIB_HOUR,
            id="under-provisioned-is-negative",
        ),
        pytest.param(
            {"cpu": "2"},
            "500m",
            "1Gi",
            3,
            4.5,
            None,
            4.5 * CORE_HOUR,
            id="no-memory-request-no-memory-waste",
        ),
        pytest.param({}, "500m", "1Gi", 3, None, None, None, id="no-requests-no-waste"),
        pytest.param(
            {"cpu": "1", "memory": "1Gi"},
            None,
            None,
            2,
            None,
            None,
            None,
            id="undefined-recommendation-no-waste",
        ),
        pytest.param(
            {"cpu": "1500m", "memory": "3Gi"},
            "1",
            "1Gi",
            None,
            0.5,
            2.0 * GIB,
            0.5 * CORE_HOUR + 2 * GIB_HOUR,
            id="unknown-pod-count-is-per-pod",
        ),
        pytest.param(
            {"cpu": "1", "memory": "1Gi"},
            "1",
            "1Gi",
            0,
            0.0,
            0.0,
            0.0,
            id="no-running-pods-wastes-nothing",
        ),
    ],
)
def test_waste_is_request_minus_target_times_pods_priced_per_hour(
    requests: dict[str, str],
    cpu: str | None,
    memory: str | None,
    pods: int | None,
    cores: float | None,
    bytes_: float | None,
    per_hour: float | None,
) -> None:
    row = one_row(requests, cpu, memory, pods)
    assert row.waste_cores == pytest.approx(cores)
    assert row.waste_bytes == bytes_
    assert row.waste_per_hour == pytest.approx(per_hour)


def test_savings_sum_rows_and_split_over_from_under() -> None:
    decide_input = {
        "containers": [
            container("web", {"cpu": "1", "memory": "2Gi"}),  # 0.6 cores, 1 GiB over (x2)
            container("db", {"cpu": "500m", "memory": "1Gi"}),  # 0.25 cores, 0.5 GiB under
            container("new", {"cpu": "1"}),  # undefined: counts nowhere
        ]
    }
    decision = {
        "containers": [
            recommended("web", "700m", "1536Mi"),
            recommended("db", "750m", "1536Mi"),
            recommended("new", None, None),
        ]
    }
    pods = {("shop", "web", "app"): 2, ("shop", "db", "app"): 1, ("shop", "new", "app"): 1}
    prices = Prices(per_core_hour=0.04, per_gib_hour=0.005)
    savings = build_report(decide_input, decision, pods=pods, prices=prices).savings
    assert savings.over_cores == pytest.approx(0.6)  # (1 - 0.7) x 2
    assert savings.over_bytes == GIB  # (2048 - 1536) MiB x 2
    assert savings.under_cores == pytest.approx(0.25)
    assert savings.under_bytes == GIB / 2
    assert savings.net_cores == pytest.approx(0.35)
    assert savings.net_bytes == GIB / 2
    # 0.35 x 0.04 + 0.5 x 0.005 = 0.0165 per hour; 730 hours a month.
    assert savings.net_per_hour == pytest.approx(0.0165)
    assert savings.net_per_month == pytest.approx(0.0165 * 730)


# ------------------------------------------------------------------------------ table


def test_table_has_a_row_per_container_in_column_order_then_the_savings() -> None:
    decide_input = {
        "containers": [
            container("web", {"cpu": "1", "memory": "1Gi"}),
            container("new", {"cpu": "100m"}, namespace="team-b", name="worker"),
        ]
    }
    decision = {
        "containers": [
            recommended("web", "250m", "512Mi", floors=["oom"]),
            recommended(
                "new",
                None,
                None,
                namespace="team-b",
                name="worker",
                message="undefined: history spans 1.0h < 24h required",
            ),
        ]
    }
    pods = {("shop", "web", "app"): 2, ("team-b", "new", "worker"): 3}
    text = render_table(build_report(decide_input, decision, pods=pods))
    header, web, new, blank, *footer = text.splitlines()
    assert header.split("  ")[0] == "WORKLOAD"
    assert [cell for cell in header.split("  ") if cell.strip()] == [
        "WORKLOAD",
        "CONTAINER",
        "PODS",
        "CPU REQ",
        "CPU LIM",
        "CPU REC",
        "MEM REQ",
        "MEM LIM",
        "MEM REC",
        "WASTE CPU",
        "WASTE MEM",
        "$/MONTH",
        "REASON",
    ]
    # 2 pods x 0.75 cores x $0.031611 + 2 pods x 0.5 GiB x $0.004237 = $0.0516... per hour.
    monthly = (1.5 * CORE_HOUR + 1.0 * GIB_HOUR) * 730
    assert web.split() == [
        "shop/web",
        "app",
        "2",
        "1",
        "-",
        "250m",
        "1Gi",
        "-",
        "512Mi",
        "+1.500",
        "+1.0Gi",
        f"+{monthly:.2f}",
        "recommended",
        "(oom",
        "floor)",
    ]
    assert new.split()[:12] == ["team-b/new", "worker", "3", "100m"] + ["-"] * 8
    assert new.endswith("undefined: history spans 1.0h < 24h required")
    assert blank == ""
    # Numeric columns are right-aligned: they end where their header ends.
    end = header.index("WASTE CPU") + len("WASTE CPU")
    assert web[end - len("+1.500") : end] == "+1.500"
    assert footer[0] == (
        f"savings if applied: 1.500 cores, 1.00 GiB = ${monthly / 730:.4f}/hour,"
        f" ${monthly:.2f}/month (730 h)"
    )
    assert "1 of 2 containers have no recommendation:" in footer
    assert "  1 x insufficient_history" in footer


def test_json_report_carries_rows_savings_prices_and_warnings() -> None:
    report = build_report(
        {"containers": [container("web", {"cpu": "2"})]},
        {"containers": [recommended("web", "1", "1Gi")]},
        warnings=["history of 120s is shorter than 24h"],
    )
    answer = json.loads(json.dumps(report_json(report)))
    assert answer["containers"][0]["wasteCores"] == 1.0
    assert answer["containers"][0]["pods"] is None
    assert answer["savings"]["netPerHour"] == pytest.approx(CORE_HOUR)
    assert answer["savings"]["netPerMonth"] == pytest.approx(CORE_HOUR * 730)
    assert answer["prices"] == {
        "perCoreHour": CORE_HOUR,
        "perGibHour": GIB_HOUR,
        "hoursPerMonth": 730,
    }
    assert answer["warnings"] == ["history of 120s is shorter than 24h"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("14d", 14 * 86400, id="days"),
        pytest.param("2m", 120, id="minutes"),
        pytest.param("1h30m", 5400, id="compound"),
        pytest.param("1w", 7 * 86400, id="week"),
        pytest.param("500ms", 0.5, id="milliseconds-not-minutes"),
    ],
)
def test_durations_read_as_prometheus_reads_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "14", "d", "1.5h", "-2m", "2 m", "2mm"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


# ------------------------------------------------------------------ recommend plumbing


def test_a_422_becomes_undefined_rows_with_each_containers_reason() -> None:
    def refuse(raw: Mapping[str, Any]) -> dict[str, Any]:
        raise DecideInputError(
            422, "no container can be right-sized", [("containers.1.samples", "too short")]
        )

    decide_input = {"containers": [container("web"), container("db")]}
    decision, warnings = recommend(refuse, decide_input, by_workload=False)
    assert [(c["workload"], c["cpu"], c["message"]) for c in decision["containers"]] == [
        ("web", None, "no container can be right-sized"),
        ("db", None, "too short"),
    ]
    assert warnings == []


def test_by_workload_one_refused_workload_does_not_sink_the_others() -> None:
    calls: list[list[str]] = []

    def decide(raw: Mapping[str, Any]) -> dict[str, Any]:
        names = [c["container"] for c in raw["containers"]]
        calls.append(names)
        if any(c["workload"] == "bad" for c in raw["containers"]):
            raise DecideInputError(400, "containers.0.samples: at most 200000 samples in all")
        return {
            "containers": [
                recommended(c["workload"], "1", "1Gi", name=c["container"])
                for c in raw["containers"]
            ]
        }

    decide_input = {
        "containers": [
            container("web", name="app"),
            container("bad"),
            container("web", name="sidecar"),
        ]
    }
    decision, warnings = recommend(decide, decide_input, by_workload=True)
    assert calls == [["app", "sidecar"], ["app"]]  # a workload's containers go together
    assert [(c["workload"], c["container"], c["reason"]) for c in decision["containers"]] == [
        ("web", "app", "recommended"),
        ("web", "sidecar", "recommended"),
        ("bad", "app", "not_evaluated"),
    ]
    assert warnings == [
        "shop/bad not evaluated: containers.0.samples: at most 200000 samples in all"
    ]
    with pytest.raises(DecideInputError):
        recommend(decide, decide_input, by_workload=False)


# --------------------------------------------------------------- the command (--input)


def steady_samples(hours: float, cpu: float, memory: float) -> list[dict[str, float]]:
    """One sample every 15 minutes for ``hours``, ending at NOW."""
    count = int(hours * 4)
    return [{"time": NOW - (count - i) * 900, "cpu": cpu, "memory": memory} for i in range(count)]


def write_input(path: Path, containers: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"kind": "rightsizing", "now": NOW, "containers": containers}))
    return path


def test_command_reports_the_engines_recommendation_and_writes_the_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_input(
        tmp_path / "in.json",
        [
            container(
                "web", {"cpu": "1", "memory": "1Gi"}, samples=steady_samples(48, 0.2, 400 * MIB)
            ),
            container("new", {"cpu": "100m"}, samples=steady_samples(2, 0.05, 100 * MIB)),
            container("batch", namespace="jobs", samples=steady_samples(48, 1, GIB)),
        ],
    )
    chart = tmp_path / "chart.svg"
    command.main(
        [
            "resources",
            "--input",
            str(source),
            "--chart",
            str(chart),
            "--namespace",
            "shop",
            "--format",
            "json",
        ]
    )
    captured = capsys.readouterr()
    rows = {row["workload"]: row for row in json.loads(captured.out)["containers"]}
    assert rows.keys() == {"web", "new"}  # --namespace filters the input too
    web = rows["web"]
    # Constant 0.2 cores: VPA's CPU histogram bucket 14 ([0.19598, 0.21579) cores: first bucket
    # 0.01, each 5 % wider) holds every sample; P90 is its end, x 1.15 = 0.2482, up to 5m: 250m.
    # Memory 400 MiB x 1.15 (KRR's buffer) = 460 MiB.
    assert (web["cpuTarget"], web["memoryTarget"]) == ("250m", "460Mi")
    assert web["wasteCores"] == pytest.approx(0.75)
    assert web["wasteBytes"] == 564 * MIB
    assert rows["new"]["cpuTarget"] is None
    assert "< 24h" in rows["new"]["message"]
    assert "[1/2] computing recommendations" in captured.err
    svg = ET.parse(chart).getroot()
    panels = [t.text for t in svg.iter(f"{SVG}text") if t.text and t.text.startswith("shop/")]
    assert panels == [
        "shop/web: cpu per pod (cores)",
        "shop/web: memory per pod (GiB)",
        "shop/new: cpu per pod (cores)",
        "shop/new: memory per pod (GiB)",
    ]
    # web: usage, request and recommendation in each panel; new has no recommendation.
    lines = [t.text for t in svg.iter(f"{SVG}title")]
    assert lines.count("recommendation") == 2
    assert lines.count("request") == 3  # new has no memory request


def test_command_prints_undefined_rows_when_no_container_has_enough_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_input(
        tmp_path / "in.json",
        [container("new", {"cpu": "100m"}, samples=steady_samples(2, 0.05, 100 * MIB))],
    )
    command.main(["resources", "--input", str(source)])
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("shop/new")
    assert "1 of 1 containers have no recommendation:" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--input", "{missing}"], "cannot read", id="missing-file"),
        pytest.param(["--input", "{not_json}"], "is not JSON", id="not-json"),
        pytest.param(["--input", "{wrong_kind}"], '"kind": "rightsizing"', id="wrong-kind"),
        pytest.param(
            ["--input", "{negative}"],
            "cannot compute recommendations: containers.0.samples.0.cpu: must not be negative",
            id="engine-refuses-the-input",
        ),
        pytest.param(
            ["--input", "{negative}", "--history", "1d"],
            "go with --prometheus",
            id="history-with-input",
        ),
        pytest.param(
            ["--prometheus", "http://x", "--history", "2x"], "not a duration", id="bad-history"
        ),
        pytest.param(
            ["--prometheus", "http://x", "--history", "0s"], "longer than 0", id="zero-history"
        ),
        pytest.param(
            ["--input", "{negative}", "--price-per-core-hour", "-1"], ">= 0", id="negative-price"
        ),
        pytest.param(
            ["--input", "x", "--prometheus", "http://x"], "not allowed with", id="two-sources"
        ),
        pytest.param(
            ["--prometheus", "http://x", "--policy", "{not_json}"], "is not JSON", id="bad-policy"
        ),
    ],
)
def test_bad_input_exits_2_with_the_reason(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not.json").write_text("{oops")
    (tmp_path / "kind.json").write_text(json.dumps({"kind": "horizontal"}))
    negative = container("web", samples=[{"time": NOW, "cpu": -1, "memory": 1}])
    write_input(tmp_path / "negative.json", [negative])
    paths = {
        "missing": tmp_path / "missing.json",
        "not_json": tmp_path / "not.json",
        "wrong_kind": tmp_path / "kind.json",
        "negative": tmp_path / "negative.json",
    }
    with pytest.raises(SystemExit) as exit_info:
        command.main(["resources", *(arg.format(**paths) for arg in argv)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_price_help_names_its_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        command.main(["resources", "--help"])
    assert "AWS us-east-1 on-demand vCPU-hour of m5" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------ usage history (pure part)


def matrix(pod: str, points: list[tuple[float, float]], **labels: str) -> dict[str, Any]:
    return {
        "metric": {"namespace": "shop", "pod": pod, "container": "app", **labels},
        "values": [[t, str(v)] for t, v in points],
    }


def vector(pod: str, resource: str, value: float) -> dict[str, Any]:
    metric = {"namespace": "shop", "pod": pod, "container": "app", "resource": resource}
    return {"metric": metric, "value": [NOW, str(value)]}


OLD, NEW = "web-7d9f8b6c5-x2k4q", "web-5c4b7d9f8-b7rzm"  # two ReplicaSets of Deployment web


def test_pods_group_into_workload_containers_with_paired_samples() -> None:
    results: dict[QueryName, list[dict[str, Any]]] = {
        "cpu": [
            matrix(OLD, [(10, 0.1), (20, 0.2)]),
            matrix(NEW, [(20, 0.3), (30, 0.4)]),
            matrix("ledger-0", [(30, 1.0)]),
        ],
        "memory": [matrix(OLD, [(10, 100), (20, 200)]), matrix(NEW, [(30, 300)])],
        "requests": [
            vector(OLD, "cpu", 0.5),  # the old ReplicaSet asked for more ...
            vector(NEW, "cpu", 0.25),  # ... the running pod's request wins
            vector(OLD, "memory", 2 * GIB),  # only the old pod says: it is used
        ],
        "limits": [vector(NEW, "memory", GIB)],
    }
    ledger, web = histories_from_results(results, step_seconds=10)  # sorted
    assert web.key == ContainerKey("shop", "web", "app")
    assert ledger.key == ContainerKey("shop", "ledger", "app")
    assert web.samples == (
        UsageSample(10, OLD, 0.1, 100),
        UsageSample(20, NEW, 0.3, None),
        UsageSample(20, OLD, 0.2, 200),
        UsageSample(30, NEW, 0.4, 300),
    )
    assert web.replicas == 1  # only NEW has a sample at the newest step (30)
    assert web.requests == {"cpu": 0.25, "memory": 2 * GIB}
    assert web.limits == {"memory": GIB}
    entry = web.decide_entry()
    assert entry["requests"] == {"cpu": "250m", "memory": "2Gi"}
    assert entry["limits"] == {"memory": "1Gi"}
    # The (20, NEW) sample lacks memory: the decide input pairs CPU with memory, so it goes.
    assert [s["time"] for s in entry["samples"]] == [10, 20, 30]


def test_an_oom_is_one_event_per_run_of_steps_at_the_containers_limit() -> None:
    results: dict[QueryName, list[dict[str, Any]]] = {
        "memory": [matrix(OLD, [(10, 100), (20, 900)]), matrix(NEW, [(10, 50), (40, 70)])],
        "limits": [vector(OLD, "memory", 1000)],
        "oom": [
            matrix(OLD, [(20, 1), (30, 1), (40, 1), (70, 1)]),  # two kills: 20, then 70
            matrix(NEW, [(40, 1)]),  # no limit: the peak seen until then
        ],
    }
    (web,) = histories_from_results(results, step_seconds=10)
    assert [(e.time, e.pod, e.memory_bytes) for e in web.oom_events] == [
        (20, OLD, 1000),
        (40, NEW, 70),
        (70, OLD, 1000),
    ]


def test_containers_with_neither_usage_nor_requests_are_left_out() -> None:
    results: dict[QueryName, list[dict[str, Any]]] = {
        "oom": [matrix(OLD, [(10, 1)])],
        "limits": [vector(NEW, "memory", GIB)],
    }
    assert histories_from_results(results, step_seconds=10) == ()


def test_one_query_per_metric_for_every_container_with_both_metric_sets() -> None:
    queries = usage_queries(["shop", "a.b"], history_seconds=86400, step_seconds=60)
    assert set(queries) == {"cpu", "memory", "requests", "limits", "oom"}
    for query in queries.values():
        assert 'namespace=~"a\\\\.b|shop"' in query  # escaped, sorted, exact names
        assert 'container!=""' in query
    assert "rate(container_cpu_usage_seconds_total" in queries["cpu"]
    assert "rate(linescale_container_cpu_usage_seconds_total" in queries["cpu"]
    assert "[300s]" in queries["cpu"]  # the 5-minute window, longer than the step
    assert "container_memory_working_set_bytes" in queries["memory"]
    assert "linescale_container_memory_usage_bytes" in queries["memory"]
    assert "kube_pod_container_resource_requests" in queries["requests"]
    assert "[86400s]" in queries["requests"]  # requests seen anywhere in the history
    assert 'reason="OOMKilled"' in queries["oom"]
    assert "linescale_container_oom_kills_total" in queries["oom"]
    every = usage_queries([], history_seconds=3600, step_seconds=900)
    assert 'namespace=~".+"' in every["cpu"]
    assert "[900s]" in every["cpu"]  # a step longer than the window widens the window


@pytest.mark.parametrize(
    ("history", "requested", "step"),
    [
        pytest.param(14 * 86400, None, 14 * 86400 / MAX_POINTS_PER_SERIES, id="14d-auto"),
        pytest.param(120, None, 1.0, id="short-history-floor-1s"),
        pytest.param(3600, 60, 60, id="requested"),
        pytest.param(14 * 86400, 1, 14 * 86400 / MAX_POINTS_PER_SERIES, id="too-fine-is-coarsened"),
    ],
)
def test_step_keeps_series_within_the_point_budget(
    history: float, requested: float | None, step: float
) -> None:
    assert choose_step(history, requested) == pytest.approx(step)


def test_usage_history_is_the_decide_input() -> None:
    history = ContainerHistory(
        ContainerKey("shop", "web", "app"),
        requests={"cpu": 0.1},
        samples=(UsageSample(5, "web-0", 0.05, 2 * MIB),),
    )
    entry = history.decide_entry()
    assert entry == {
        "namespace": "shop",
        "workload": "web",
        "container": "app",
        "requests": {"cpu": "100m"},
        "limits": {},
        "samples": [{"time": 5, "cpu": 0.05, "memory": 2 * MIB}],
        "oomEvents": [],
    }
