"""The committed Grafana dashboards: generated from ``dashboards/generate.py`` only, with stable
UIDs, a unit on every panel and every target on the ``datasource`` template variable.

Why: dashboards are linked by UID from runbooks and alerts, a panel without a unit is misread,
and a target pinned to one datasource breaks in every other Grafana.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from dashboard_generator import load_generator

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "dashboards"

# The published UIDs (URLs /d/<uid>): changing one breaks every link to it, so they are pinned
# here by hand, not read from the generator.
PUBLISHED_UIDS = {
    "linescale-fleet",
    "linescale-workload",
    "linescale-routing",
    "linescale-cache",
    "linescale-node",
}
# Grafana 12's classic dashboard model; an older number makes Grafana migrate on every load.
CURRENT_SCHEMA_VERSION = 42
DATASOURCE_UID = "${datasource}"


GENERATE = load_generator()
RENDERED: dict[str, str] = GENERATE.rendered_files()
COMMITTED = sorted(DASHBOARD_DIR.glob("*.json"))


def _committed(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
    return loaded


def _targets(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in dashboard["panels"] for t in p["targets"]]


BY_FILE = pytest.mark.parametrize("name", sorted(RENDERED), ids=sorted(RENDERED))


def test_committed_files_are_exactly_the_generated_ones() -> None:
    assert sorted(p.name for p in COMMITTED) == sorted(RENDERED)


@BY_FILE
def test_committed_json_equals_generator_output(name: str) -> None:
    text = (DASHBOARD_DIR / name).read_text(encoding="utf-8")
    assert text == RENDERED[name], "run: .venv/bin/python dashboards/generate.py"


def test_uids_are_the_published_ones_and_unique() -> None:
    uids = [_committed(name)["uid"] for name in RENDERED]
    assert sorted(uids) == sorted(PUBLISHED_UIDS)
    assert len(set(uids)) == len(uids)


@BY_FILE
def test_file_is_named_after_its_uid(name: str) -> None:
    assert name == f"{_committed(name)['uid']}.json"


@BY_FILE
def test_schema_version_is_current(name: str) -> None:
    assert _committed(name)["schemaVersion"] == CURRENT_SCHEMA_VERSION


@BY_FILE
def test_every_panel_has_a_unit(name: str) -> None:
    missing = [
        p["title"]
        for p in _committed(name)["panels"]
        if not p["fieldConfig"]["defaults"].get("unit")
    ]
    assert missing == []


@BY_FILE
def test_panel_ids_are_unique(name: str) -> None:
    ids = [p["id"] for p in _committed(name)["panels"]]
    assert len(ids) == len(set(ids))


@BY_FILE
def test_panels_do_not_overlap_on_the_grid(name: str) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in _committed(name)["panels"]:
        grid = panel["gridPos"]
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & mine, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells |= mine


@BY_FILE
def test_datasource_variable_is_defined(name: str) -> None:
    variables = _committed(name)["templating"]["list"]
    datasource = [v for v in variables if v["name"] == "datasource"]
    assert len(datasource) == 1
    assert (datasource[0]["type"], datasource[0]["query"]) == ("datasource", "prometheus")


@BY_FILE
def test_every_panel_and_target_uses_the_datasource_variable(name: str) -> None:
    dashboard = _committed(name)
    wrong = [p["title"] for p in dashboard["panels"] if p["datasource"]["uid"] != DATASOURCE_UID]
    wrong += [title for title, t in _targets(dashboard) if t["datasource"]["uid"] != DATASOURCE_UID]
    assert wrong == []
    assert all(t["expr"].strip() for _, t in _targets(dashboard))


@BY_FILE
def test_target_ref_ids_are_unique_per_panel(name: str) -> None:
    for panel in _committed(name)["panels"]:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


@BY_FILE
def test_query_variables_are_used_only_as_regex_matchers(name: str) -> None:
    """``label=~"$var"`` is the one form that works with "All" (``.*``) and multi-select."""
    dashboard = _committed(name)
    names = {v["name"] for v in dashboard["templating"]["list"] if v["type"] == "query"}
    used: set[str] = set()
    for title, target in _targets(dashboard):
        for var in re.findall(r"\$(\w+)", target["expr"]):
            if var == "__rate_interval":
                continue
            assert var in names, f"{title}: undefined ${var}"
            assert f'=~"${var}"' in target["expr"], f"{title}: ${var} not in a =~ matcher"
            used.add(var)
    assert used == names, "a variable no panel uses"


@pytest.mark.parametrize(
    ("edit", "expected_exit"),
    [
        pytest.param(None, 0, id="fresh-files-pass"),
        pytest.param("drift", 1, id="edited-file-fails"),
        pytest.param("delete", 1, id="missing-file-fails"),
    ],
)
def test_check_mode_detects_drift(tmp_path: Path, edit: str | None, expected_exit: int) -> None:
    assert GENERATE.main(["--out", str(tmp_path)]) == 0
    victim = tmp_path / sorted(RENDERED)[0]
    if edit == "drift":
        victim.write_text(victim.read_text(encoding="utf-8").replace("Linescale", "Linescal"))
    elif edit == "delete":
        victim.unlink()
    assert GENERATE.main(["--check", "--out", str(tmp_path)]) == expected_exit
