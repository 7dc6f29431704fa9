"""The operator docs cannot rot: every marked example is run through the parser the product
uses, the API reference is the generator's output, and every relative link resolves.

Fenced blocks are marked in their info string: ```` ```yaml policy ```` (a scaling policy,
``parse_policy``), ```` ```yaml policy seed=NAME ```` (also compared with the seed fixture
NAME), ```` ```yaml policies-file ```` (``load_policy_file``), ```` ```yaml config ````
(``load_settings``) and ```` ```yaml workload ```` (a manifest whose Linescale annotations must
be valid).
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import shared.metric_names as metric_names
from controller.controls import WorkloadControls
from controller.engines.balancing.engine import (
    ROUTE_POLICY_ANNOTATION,
    ROUTE_PORT_ANNOTATION,
    service_spec,
)
from controller.engines.scaling.policy_sources import POLICY_ANNOTATION, load_policy_file
from shared.config import load_settings
from shared.quantities import parse_quantity
from shared.scaling_policy import ScalingPolicy, VerticalSpec, parse_policy, policy_to_json

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SEED_POLICIES = ROOT / "testing" / "fixtures" / "scalability_data" / "sample_scaling_policies.json"
FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"`[^`]*`")
EXPLICIT_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    kind: str
    attributes: dict[str, str]
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced code block with its info string split into language, kind, key=value."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, info = opening.group(1), opening.group(2).split()
        body: list[str] = []
        end = index + 1
        while end < len(lines) and not lines[end].startswith(fence):
            body.append(lines[end])
            end += 1
        words = [word for word in info[1:] if "=" not in word]
        blocks.append(
            Block(
                path=path,
                line=index + 1,
                language=info[0] if info else "",
                kind=words[0] if words else "",
                attributes=dict(word.split("=", 1) for word in info[1:] if "=" in word),
                text="\n".join(body) + "\n",
            )
        )
        index = end + 1
    return blocks


def blocks_of(kind: str) -> list[Block]:
    return [
        block for path in markdown_files() for block in fenced_blocks(path) if block.kind == kind
    ]


def by_where(blocks: list[Block]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("block", blocks, ids=[block.where for block in blocks])


def load_block(block: Block) -> Any:
    if block.language == "json":
        return json.loads(block.text)
    assert block.language == "yaml", f"{block.where}: mark a {block.kind} block json or yaml"
    return yaml.safe_load(block.text)


# --- examples ---------------------------------------------------------------------------------


def test_the_docs_carry_examples_of_every_checked_kind() -> None:
    """Guards the parametrised tests below against passing by finding nothing to check."""
    kinds = ("policy", "policies-file", "config", "workload", "controls-file")
    counts = {kind: len(blocks_of(kind)) for kind in kinds}
    counts["config copied from deploy/"] = len(CONFIG_COPIES)
    assert all(counts.values()), counts


@by_where(blocks_of("policy"))
def test_every_policy_example_is_accepted_by_the_policy_parser(block: Block) -> None:
    policy = parse_policy(load_block(block))
    assert isinstance(policy, ScalingPolicy)


@by_where(blocks_of("policies-file"))
def test_every_policies_file_example_loads_as_the_controller_loads_it(
    block: Block, tmp_path: Path
) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(block.text, encoding="utf-8")
    documents = [document for document in yaml.safe_load_all(block.text) if document]
    assert len(load_policy_file(path)) == len(documents)


@by_where(blocks_of("config"))
def test_every_config_example_loads_as_settings(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(block.text, encoding="utf-8")
    # The examples name the mounted Secret as token_file, which does not exist here: a token
    # in the environment is used first, as in a pod given LINESCALE_TOKEN.
    load_settings(path, environ={"LINESCALE_TOKEN": "docs-example-token-0123456789"})


CONFIG_COPIES = [block for block in blocks_of("config") if "source" in block.attributes]


@by_where(CONFIG_COPIES)
def test_configuration_shown_as_shipped_is_the_shipped_file(block: Block) -> None:
    shipped = ROOT / block.attributes["source"]
    assert yaml.safe_load(block.text) == yaml.safe_load(shipped.read_text(encoding="utf-8"))


@by_where(blocks_of("workload"))
def test_every_workload_example_carries_valid_linescale_annotations(block: Block) -> None:
    manifest = load_block(block)
    metadata = manifest["metadata"]
    assert metadata["labels"]["linescale.io/managed"] == "true", "unmanaged: the engines skip it"
    annotations: dict[str, str] = metadata.get("annotations", {})
    linescale = {POLICY_ANNOTATION, ROUTE_PORT_ANNOTATION, ROUTE_POLICY_ANNOTATION}
    assert linescale & set(annotations), "the example shows no Linescale annotation"
    if POLICY_ANNOTATION in annotations:
        parse_policy(annotations[POLICY_ANNOTATION])
    if ROUTE_PORT_ANNOTATION in annotations:
        spec = service_spec(annotations)
        assert spec is not None
        assert spec.error == ""


@by_where(blocks_of("controls-file"))
def test_every_controls_file_example_is_read_back_not_set_aside(
    block: Block, tmp_path: Path
) -> None:
    path = tmp_path / "controls.json"
    path.write_text(block.text, encoding="utf-8")
    document = load_block(block)
    controls = WorkloadControls(path)
    assert not path.with_name("controls.json.corrupt").exists()
    assert len(controls.policies) == len(document["policies"])
    assert len(controls.paused) == len(document["paused"])


# --- the seed policies, converted -------------------------------------------------------------

SEEDS: dict[str, dict[str, Any]] = {
    seed["name"]: seed for seed in json.loads(SEED_POLICIES.read_text(encoding="utf-8"))
}
# The seed's season is a period in seconds; ours names the season (README of the fixtures).
SEASON_NAMES = {86400: "daily", 604800: "weekly"}
# VPA update modes onto ours: InPlaceOrRecreate resizes in place and falls back (policies.md).
VERTICAL_MODES = {"Off": "Off", "InPlaceOrRecreate": "InPlace", "Recreate": "Recreate"}
HPA_FIELDS = ("minReplicas", "maxReplicas", "metrics", "behavior")


def converted(name: str) -> ScalingPolicy:
    blocks = [block for block in blocks_of("policy") if block.attributes.get("seed") == name]
    assert len(blocks) == 1, f"expected one policy block marked seed={name}, found {len(blocks)}"
    return parse_policy(load_block(blocks[0]))


def hpa_part(policy: ScalingPolicy) -> dict[str, Any]:
    document = policy_to_json(policy)
    return {field: document.get(field) for field in HPA_FIELDS}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_each_seed_policy_converts_to_the_same_hpa_spec(name: str) -> None:
    assert hpa_part(converted(name)) == hpa_part(parse_policy(SEEDS[name]["hpa"]))


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_each_seed_policy_keeps_its_season_and_lead_time(name: str) -> None:
    seed, predictive = SEEDS[name]["predictive"], converted(name).predictive
    if seed is None:
        assert not predictive.enabled
        return
    assert predictive.enabled
    assert predictive.seasonalities == [SEASON_NAMES[seed["season_seconds"]]]
    assert predictive.lead_time_seconds == seed["lead_seconds"]


def _millicores(quantity: str | None) -> Decimal | None:
    return None if quantity is None else parse_quantity(quantity) * 1000


def _bytes(quantity: str | None) -> Decimal | None:
    return None if quantity is None else parse_quantity(quantity)


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_each_seed_policy_keeps_its_vertical_mode_resources_and_bounds(name: str) -> None:
    seed, vertical = SEEDS[name]["vertical"], converted(name).vertical
    if seed is None:
        assert vertical == VerticalSpec()
        return
    assert vertical.mode == VERTICAL_MODES[seed["mode"]]
    assert vertical.controlled_resources == seed["controlled_resources"]
    low, high = vertical.min_allowed, vertical.max_allowed
    assert _millicores(low.cpu if low else None) == seed["min_cpu_millicores"]
    assert _millicores(high.cpu if high else None) == seed["max_cpu_millicores"]
    assert _bytes(low.memory if low else None) == seed["min_memory_bytes"]
    assert _bytes(high.memory if high else None) == seed["max_memory_bytes"]


# --- the generated API reference --------------------------------------------------------------


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_api", DOCS / "generate_api.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_api_reference_is_the_generators_output() -> None:
    expected = generator().current_reference()
    assert (DOCS / "api.md").read_text(encoding="utf-8") == expected, (
        "docs/api.md is stale: run .venv/bin/python docs/generate_api.py"
    )


def test_the_api_reference_lists_every_operation_of_the_openapi_document() -> None:
    from controller.openapi import openapi_document

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    document = openapi_document()
    for path, item in document["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text
    for name in document["components"]["schemas"]:
        assert f"\n### {name}\n" in text


# Expected slugs are what GitHub shows for these headings (its anchor rules: lower case, drop
# everything but letters, digits, '_', '-' and spaces, spaces to hyphens).
@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        pytest.param("Where a policy comes from", "where-a-policy-comes-from", id="words"),
        pytest.param("`GET /v1/status`", "get-v1status", id="code-and-slashes"),
        pytest.param(
            "`PUT /v1/workloads/{namespace}/{name}/policy`",
            "put-v1workloadsnamespacenamepolicy",
            id="braces",
        ),
        pytest.param("`hpa-defaults`", "hpa-defaults", id="hyphens-kept"),
        pytest.param("No scaling: why?", "no-scaling-why", id="punctuation"),
        pytest.param("schema_version 1", "schema_version-1", id="underscore-kept"),
    ],
)
def test_anchors_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert generator().github_anchor(heading) == anchor


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param(
            {"$ref": "#/components/schemas/Decision"}, "[Decision](#decision)", id="reference"
        ),
        pytest.param(
            {"anyOf": [{"type": "integer"}, {"type": "null"}]}, "integer or null", id="nullable"
        ),
        pytest.param({"type": ["string", "null"]}, "string or null", id="type-list"),
        pytest.param(
            {"type": "array", "items": {"$ref": "#/components/schemas/Pod"}},
            "[Pod](#pod)[]",
            id="array-of-reference",
        ),
        pytest.param(
            {"type": "object", "additionalProperties": {"type": "number"}},
            "map of number",
            id="map",
        ),
        pytest.param({"enum": ["a", "b"]}, '`"a"` \\| `"b"`', id="enum-pipe-escaped"),
    ],
)
def test_schema_types_read_as_written(schema: dict[str, Any], expected: str) -> None:
    assert generator().type_of(schema) == expected


# --- links ------------------------------------------------------------------------------------


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a file (repeats get -1, -2...) and explicit ones."""
    make = generator().github_anchor
    found: set[str] = set()
    seen: dict[str, int] = {}
    text = path.read_text(encoding="utf-8")
    in_code = False
    for line in text.splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code or not line.startswith("#"):
            continue
        heading = line.lstrip("#").strip()
        slug = make(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    found.update(EXPLICIT_ANCHOR.findall(text))
    return found


def relative_links(path: Path) -> list[str]:
    """Link targets outside fenced code, without external URLs."""
    targets: list[str] = []
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code:
            continue
        targets += [
            target
            for target in LINK.findall(CODE_SPAN.sub("", line))
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)
        ]
    return targets


LINKS = [(path, target) for path in markdown_files() for target in relative_links(path)]


def test_the_docs_link_to_each_other() -> None:
    """The README's Documentation section and the guides' cross-references exist at all."""
    readme_targets = {target.split("#")[0] for target in relative_links(ROOT / "README.md")}
    for guide in ("install", "policies", "api", "runbooks", "upgrade", "troubleshooting"):
        assert f"docs/{guide}.md" in readme_targets, guide


@pytest.mark.parametrize(
    ("path", "target"), LINKS, ids=[f"{p.relative_to(ROOT)}->{t}" for p, t in LINKS]
)
def test_every_relative_link_resolves(path: Path, target: str) -> None:
    file_part, _, anchor = target.partition("#")
    destination = (path.parent / file_part).resolve() if file_part else path
    assert destination.exists(), f"{path.relative_to(ROOT)}: {target}: no such file"
    if anchor:
        assert destination.is_file(), f"{target}: an anchor into a directory"
        assert anchor in anchors(destination), f"{path.relative_to(ROOT)}: {target}: no anchor"


# --- metric names -----------------------------------------------------------------------------

# How prometheus-client exposes a family: counters get _total, Info gets _info, histograms
# _bucket/_sum/_count.
EXPOSED_SUFFIXES = ("", "_total", "_info", "_bucket", "_sum", "_count")
KNOWN_METRICS = {
    value + suffix
    for name, value in vars(metric_names).items()
    if name.isupper() and isinstance(value, str)
    for suffix in EXPOSED_SUFFIXES
}
OPERATOR_GUIDES = ("install.md", "troubleshooting.md", "upgrade.md")


@pytest.mark.parametrize("guide", OPERATOR_GUIDES)
def test_operator_guides_name_only_metrics_the_product_exposes(guide: str) -> None:
    text = (DOCS / guide).read_text(encoding="utf-8")
    named = set(re.findall(r"\blinescale_[a-z0-9_]+", text))
    assert named - KNOWN_METRICS == set()
