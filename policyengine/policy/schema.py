"""JSON Schemas of the policy formats, generated from the pydantic models and checked in.

`python -m policyengine.policy.schema` rewrites `schemas/`; a test fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from policyengine.policy.models import MetricSet, ReleasePolicy

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE_URL = "https://policyengine.io/schemas/"
SCHEMA_FILES: dict[str, tuple[str, type[BaseModel]]] = {
    "ReleasePolicy": ("releasepolicy-v1alpha1.json", ReleasePolicy),
    "MetricSet": ("metricset-v1alpha1.json", MetricSet),
}


def schemas_dir() -> Path:
    """`schemas/` at the repository root, beside the package."""
    return Path(__file__).resolve().parents[2] / "schemas"


def generate_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one document kind (ReleasePolicy or MetricSet), as a dict."""
    file_name, model = SCHEMA_FILES[kind]
    generated = model.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": SCHEMA_BASE_URL + file_name,
        "title": f"{kind} (policyengine.io/v1alpha1)",
        **{key: value for key, value in generated.items() if key != "title"},
    }


def render_schema(kind: str) -> str:
    """The checked-in text of a schema: stable key order, two-space indent, final newline."""
    return json.dumps(generate_schema(kind), indent=2, ensure_ascii=False) + "\n"


@cache
def schema_for(kind: str) -> dict[str, Any]:
    """The schema validation uses: the checked-in file, or the models' when it is not shipped."""
    path = schemas_dir() / SCHEMA_FILES[kind][0]
    if path.is_file():
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    return generate_schema(kind)


def field_rows(kind: str) -> list[tuple[str, str, str, str]]:
    """(field, type, default, description) of every field of a kind, depth first."""
    schema = generate_schema(kind)
    rows: list[tuple[str, str, str, str]] = []
    _walk_fields(schema, schema, "", rows)
    return rows


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][str(node["$ref"]).rsplit("/", 1)[-1]]
    return node


def _without_null(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(schema, node)
    branches = [b for b in node.get("anyOf", []) if _resolve(schema, b).get("type") != "null"]
    return _resolve(schema, branches[0]) if len(branches) == 1 else node


def _type_name(schema: dict[str, Any], node: dict[str, Any]) -> str:
    node = _resolve(schema, node)
    if "anyOf" in node:
        names = [_type_name(schema, b) for b in node["anyOf"] if b.get("type") != "null"]
        return " or ".join(names)
    if "const" in node:
        return f"`{node['const']}`"
    if "enum" in node:
        return " \\| ".join(f"`{value}`" for value in node["enum"])
    if "oneOf" in node:
        return "one of " + ", ".join(node.get("discriminator", {}).get("mapping", {}))
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type_name(schema, node.get('items', {}))}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        return f"map of {_type_name(schema, node['additionalProperties'])}"
    if kind == "object":
        return "object"
    bounds = [
        f"{symbol} {node[key]}"
        for key, symbol in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        )
        if key in node
    ]
    text = str(kind or "any")
    if node.get("examples"):
        text = "duration"
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _walk_fields(
    schema: dict[str, Any],
    node: dict[str, Any],
    prefix: str,
    rows: list[tuple[str, str, str, str]],
) -> None:
    node = _without_null(schema, node)
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        default = json.dumps(child["default"]) if child.get("default") is not None else ""
        if name in required:
            default = "required"
        description = str(child.get("description", "")).replace("|", "\\|").replace("\n", " ")
        rows.append((f"`{path}`", _type_name(schema, child), default, description))
        target = _without_null(schema, child)
        if target.get("type") == "array":
            target = _without_null(schema, target.get("items", {}))
            path += "[]"
        if isinstance(target.get("additionalProperties"), dict):
            target = _without_null(schema, target["additionalProperties"])
            path += ".<name>"
        if "oneOf" in target:
            for tag, ref in target.get("discriminator", {}).get("mapping", {}).items():
                _walk_fields(schema, {"$ref": ref}, f"{path}({tag})", rows)
        elif target.get("properties"):
            _walk_fields(schema, target, path, rows)


def reference_table(kind: str) -> str:
    """The Markdown table of every field of a kind, as docs/policy-reference.md holds it."""
    lines = ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in field_rows(kind)]
    return "\n".join(lines) + "\n"


def reference_doc() -> Path:
    return schemas_dir().parent / "docs" / "policy-reference.md"


def with_tables(document: str) -> str:
    """`document` with the text between each kind's table markers regenerated."""
    for kind in SCHEMA_FILES:
        start, end = f"<!-- fields:{kind}:start -->\n", f"<!-- fields:{kind}:end -->"
        if start in document and end in document:
            head, rest = document.split(start, 1)
            _, tail = rest.split(end, 1)
            document = head + start + reference_table(kind) + end + tail
    return document


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into `directory`; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, (file_name, _) in SCHEMA_FILES.items():
        path = directory / file_name
        path.write_text(render_schema(kind), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    directory = Path(arguments[0]) if arguments else schemas_dir()
    for path in write_schemas(directory):
        print(f"wrote {path}")
    doc = reference_doc()
    if not arguments and doc.is_file():
        doc.write_text(with_tables(doc.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote {doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
