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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
