"""Write docs/api.md, the admin API reference, from the controller's own OpenAPI document.

The reference is generated rather than written so it cannot drift from what the handlers
accept: ``controller.openapi`` builds its schemas from the wire models, and
tests/unit/test_docs.py fails when docs/api.md differs from this script's output.

    .venv/bin/python docs/generate_api.py            # rewrite docs/api.md
    .venv/bin/python docs/generate_api.py --check    # exit 1 when docs/api.md is out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent / "api.md"
SCHEMA_PREFIX = "#/components/schemas/"
METHODS = ("get", "put", "post", "delete", "patch")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (one line, no bare pipes)."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: object) -> str:
    return "`" + json.dumps(value, sort_keys=True).replace("|", "\\|") + "`"


def type_of(schema: Mapping[str, Any]) -> str:
    """A short, human reading of a JSON Schema: ``string``, ``[Decision](#decision)[]``..."""
    if "$ref" in schema:
        name = str(schema["$ref"]).removeprefix(SCHEMA_PREFIX)
        return f"[{name}](#{github_anchor(name)})"
    if "enum" in schema:
        return " \\| ".join(_code(value) for value in schema["enum"])
    if "const" in schema:
        return _code(schema["const"])
    for combinator in ("anyOf", "oneOf"):
        if combinator in schema:
            return " or ".join(type_of(option) for option in schema[combinator])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(type_of({**schema, "type": one}) for one in kind)
    if kind == "array":
        items = schema.get("items")
        return f"{type_of(items)}[]" if isinstance(items, Mapping) else "array"
    if kind == "object":
        values = schema.get("additionalProperties")
        if isinstance(values, Mapping) and values:
            return f"map of {type_of(values)}"
        return "object"
    return str(kind) if kind else "any"


_CONSTRAINTS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length ≥ {}"),
    ("maxLength", "length ≤ {}"),
    ("minItems", "items ≥ {}"),
    ("maxItems", "items ≤ {}"),
    ("pattern", "pattern `{}`"),
)


def constraints_of(schema: Mapping[str, Any]) -> str:
    """Bounds and patterns, including those inside an ``anyOf`` (optional fields)."""
    found: list[str] = []
    for part in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
        for key, template in _CONSTRAINTS:
            if key in part:
                text = template.format(part[key])
                if text not in found:
                    found.append(text)
    return ", ".join(found)


def _describe(schema: Mapping[str, Any]) -> str:
    description = str(schema.get("description", ""))
    limits = constraints_of(schema)
    return "; ".join(part for part in (description, limits) if part)


def _properties_table(schema: Mapping[str, Any]) -> list[str]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    if not properties:
        return []
    required = set(schema.get("required", []))
    lines = ["| field | type | required | default | notes |", "|---|---|---|---|---|"]
    for name, field in properties.items():
        default = _code(field["default"]) if "default" in field else ""
        lines.append(
            f"| `{name}` | {type_of(field)} | {'yes' if name in required else 'no'} "
            f"| {default} | {_cell(_describe(field))} |"
        )
    return lines


def _parameters_table(parameters: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = ["| parameter | in | type | required | notes |", "|---|---|---|---|---|"]
    for parameter in parameters:
        schema = parameter.get("schema", {})
        notes = "; ".join(
            part for part in (str(parameter.get("description", "")), constraints_of(schema)) if part
        )
        lines.append(
            f"| `{parameter['name']}` | {parameter['in']} | {type_of(schema)} "
            f"| {'yes' if parameter.get('required') else 'no'} | {_cell(notes)} |"
        )
    return lines


def _body_type(content: Mapping[str, Any] | None) -> str:
    if not content:
        return "—"
    parts = []
    for media, body in content.items():
        schema = body.get("schema", {})
        parts.append(f"{type_of(schema)} (`{media}`)" if schema else f"`{media}`")
    return ", ".join(parts)


def _inline_object(schema: Mapping[str, Any]) -> list[str]:
    """Responses described inline (not a named schema) get their fields listed too."""
    if "$ref" in schema or schema.get("type") != "object":
        return []
    return _properties_table(schema)


def operation_title(method: str, path: str) -> str:
    return f"`{method.upper()} {path}`"


def _operation(method: str, path: str, operation: Mapping[str, Any]) -> list[str]:
    lines = [f"### {operation_title(method, path)}", "", str(operation.get("summary", "")), ""]
    secured = bool(operation.get("security"))
    lines += [
        "Token: "
        + (
            "`Authorization: Bearer <token>` (401 without it, 403 with a wrong one)."
            if secured
            else "none (with `controller.read_token` set, `GET /v1/*` needs it)."
        ),
        "",
    ]
    if operation.get("parameters"):
        lines += [*_parameters_table(operation["parameters"]), ""]
    request = operation.get("requestBody")
    if request:
        lines += [f"Request body: {_body_type(request.get('content'))}.", ""]
    lines += ["| status | meaning | body |", "|---|---|---|"]
    inline: list[tuple[str, list[str]]] = []
    for status, response in operation.get("responses", {}).items():
        content = response.get("content")
        lines.append(
            f"| {status} | {_cell(str(response.get('description', '')))} | {_body_type(content)} |"
        )
        for body in (content or {}).values():
            table = _inline_object(body.get("schema", {}))
            if table:
                inline.append((status, table))
    lines.append("")
    for status, table in inline:
        lines += [f"Fields of the {status} answer:", "", *table, ""]
    return lines


def _schema(name: str, schema: Mapping[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    description = str(schema.get("description", "")).strip()
    if description:
        lines += [" ".join(description.split()), ""]
    table = _properties_table(schema)
    if table:
        lines += [*table, ""]
    else:
        lines += [f"Type: {type_of(schema)}.", ""]
    return lines


def render(document: Mapping[str, Any]) -> str:
    """The whole reference as Markdown; deterministic for a given document."""
    info = document.get("info", {})
    lines = [
        "# Controller admin API reference",
        "",
        "<!-- Generated by docs/generate_api.py from controller.openapi.openapi_document(). "
        "Do not edit: run `.venv/bin/python docs/generate_api.py`. -->",
        "",
        f"{info.get('title', 'API')} {info.get('version', '')}, OpenAPI "
        f"{document.get('openapi', '')}. The running controller serves the same document at "
        "`GET /openapi.json` (port 9500). Mutating calls need the bearer token "
        "(`LINESCALE_TOKEN` or `token_file`); a malformed body is a 400 whose `fields` name "
        "each bad field, and nothing is half-applied. How to use the policy endpoints: "
        "[policies.md](policies.md).",
        "",
        "## Endpoints",
        "",
        "| method | path | token | what |",
        "|---|---|---|---|",
    ]
    operations: list[tuple[str, str, Mapping[str, Any]]] = [
        (method, path, item[method])
        for path, item in document.get("paths", {}).items()
        for method in METHODS
        if method in item
    ]
    for method, path, operation in operations:
        anchor = github_anchor(operation_title(method, path))
        lines.append(
            f"| {method.upper()} | [`{path}`](#{anchor}) | "
            f"{'yes' if operation.get('security') else 'no'} | "
            f"{_cell(str(operation.get('summary', '')))} |"
        )
    lines.append("")
    for method, path, operation in operations:
        lines += _operation(method, path, operation)
    lines += ["## Schemas", ""]
    schemas: Mapping[str, Any] = document.get("components", {}).get("schemas", {})
    for name in sorted(schemas):
        lines += _schema(name, schemas[name])
    return "\n".join(lines).rstrip() + "\n"


def current_reference() -> str:
    """The reference for the controller in this tree."""
    from controller.openapi import openapi_document

    return render(openapi_document())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    text = current_reference()
    if args.check:
        stale = not args.output.exists() or args.output.read_text(encoding="utf-8") != text
        if stale:
            print(f"{args.output} is out of date: run docs/generate_api.py", file=sys.stderr)
        return 1 if stale else 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
