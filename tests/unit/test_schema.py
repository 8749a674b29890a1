"""The checked-in JSON Schemas: up to date, described field by field, and in step with the models."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from policyengine.metrics.catalog import PRESETS_ENV, builtin_metric_sets
from policyengine.policy.models import POLICY_KINDS, ReleasePolicy
from policyengine.policy.schema import (
    SCHEMA_FILES,
    field_rows,
    main,
    render_schema,
    schemas_dir,
    with_tables,
)
from policyengine.policy.validation import check_document, policy_problems
from tests.unit.test_loader import METRIC_SET, POLICY


@pytest.mark.parametrize("kind", sorted(SCHEMA_FILES))
def test_checked_in_schema_is_up_to_date(kind: str) -> None:
    path = schemas_dir() / SCHEMA_FILES[kind][0]
    assert path.read_text(encoding="utf-8") == render_schema(kind), (
        f"{path} is stale: run `.venv/bin/python -m policyengine.policy.schema`"
    )


def properties(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (location, property schema) pair anywhere in a schema."""
    if isinstance(node, dict):
        for name, child in node.get("properties", {}).items():
            yield f"{where}.{name}", child
        for key, child in node.items():
            yield from properties(child, f"{where}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from properties(child, f"{where}[{index}]")


@pytest.mark.parametrize("kind", sorted(SCHEMA_FILES))
def test_every_field_has_a_description(kind: str) -> None:
    schema = json.loads((schemas_dir() / SCHEMA_FILES[kind][0]).read_text(encoding="utf-8"))
    found = list(properties(schema))
    assert len(found) >= 16
    undocumented = [where for where, child in found if not child.get("description")]
    assert undocumented == []
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(SCHEMA_FILES[kind][0])
    assert schema["title"].startswith(kind)
    jsonschema.Draft202012Validator.check_schema(schema)


def test_the_module_writes_the_schemas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for kind, (name, _) in SCHEMA_FILES.items():
        assert (tmp_path / name).read_text(encoding="utf-8") == render_schema(kind)
        assert f"wrote {tmp_path / name}" in printed


Edit = Callable[[dict[str, Any]], None]


def set_at(path: str, value: Any) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def delete(path: str) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return edit


# The models are the gate at run time; the schema editors and CI tools use must agree with them.
# (One known difference: JSON Schema counts 10.0 as an integer, the strict models do not.)
AGREEMENT: list[tuple[str, str, Edit | None, bool]] = [
    ("policy as is", "ReleasePolicy", None, True),
    ("metric set as is", "MetricSet", None, True),
    ("snake_case key", "ReleasePolicy", set_at("spec.strategy.min_dwell", "5m"), False),
    ("unknown key", "ReleasePolicy", set_at("spec.target.routr", "x"), False),
    ("string for integer", "ReleasePolicy", set_at("spec.strategy.minSamples", "3"), False),
    ("integer for number", "ReleasePolicy", set_at("spec.objectives.0.max", 1), True),
    ("string for boolean", "ReleasePolicy", set_at("spec.paused", "yes"), False),
    ("weight above 100", "ReleasePolicy", set_at("spec.strategy.steps", [10, 101]), False),
    ("bad duration", "ReleasePolicy", set_at("spec.strategy.minDwell", "6 minutes"), False),
    ("bad name", "ReleasePolicy", set_at("metadata.name", "Fraud_Detector"), False),
    ("missing target", "ReleasePolicy", delete("spec.target"), False),
    ("unknown strategy", "ReleasePolicy", set_at("spec.strategy.type", "rainbow"), False),
    ("wrong api version", "ReleasePolicy", set_at("apiVersion", "policyengine.io/v1"), False),
    ("blue-green", "ReleasePolicy", set_at("spec.strategy", {"type": "blueGreen"}), True),
    ("mirror", "ReleasePolicy", set_at("spec.strategy", {"type": "mirror", "percentage": 5}), True),
    (
        "mirror over 100 %",
        "ReleasePolicy",
        set_at("spec.strategy", {"type": "mirror", "percentage": 150}),
        False,
    ),
    ("null optional", "ReleasePolicy", set_at("spec.metrics.set", None), True),
    ("one version", "ReleasePolicy", set_at("spec.versions", []), False),
    ("pull request mode", "ReleasePolicy", set_at("spec.writeBack", {"mode": "pullRequest"}), True),
    ("unknown metric type", "MetricSet", set_at("spec.metrics.latency.type", "summary"), False),
    ("label with a dash", "MetricSet", set_at("spec.versionLabel", "v-model"), False),
]


@pytest.mark.parametrize(
    ("kind", "edit", "valid"),
    [case[1:] for case in AGREEMENT],
    ids=[case[0] for case in AGREEMENT],
)
def test_schema_and_models_agree(kind: str, edit: Edit | None, valid: bool) -> None:
    document = copy.deepcopy(yaml.safe_load(POLICY if kind == "ReleasePolicy" else METRIC_SET))
    if edit is not None:
        edit(document)
    schema = json.loads((schemas_dir() / SCHEMA_FILES[kind][0]).read_text(encoding="utf-8"))
    schema_errors = list(jsonschema.Draft202012Validator(schema).iter_errors(document))
    model_check = check_document(document, kind)
    assert (not schema_errors) == valid, schema_errors
    assert (model_check.model is not None) == valid, model_check.problems
    assert set(POLICY_KINDS) == set(SCHEMA_FILES)


REFERENCE = schemas_dir().parent / "docs" / "policy-reference.md"


def test_the_reference_tables_are_in_step_with_the_models() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert with_tables(text) == text, "run `.venv/bin/python -m policyengine.policy.schema`"
    for kind in SCHEMA_FILES:
        for row in field_rows(kind):
            assert f"| {row[0]} |" in text


def yaml_blocks(text: str) -> list[str]:
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


@pytest.fixture
def shipped_presets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(PRESETS_ENV, raising=False)
    builtin_metric_sets.cache_clear()
    yield
    builtin_metric_sets.cache_clear()


@pytest.mark.usefixtures("shipped_presets")
def test_the_reference_examples_are_valid() -> None:
    documents = [yaml.safe_load(block) for block in yaml_blocks(REFERENCE.read_text("utf-8"))]
    policies = [d for d in documents if d.get("kind") == "ReleasePolicy"]
    assert {p["spec"]["strategy"]["type"] for p in policies} == {
        "canary",
        "blueGreen",
        "mirror",
        "abn",
    }
    assert any(d.get("kind") == "MetricSet" for d in documents)
    for document in documents:
        if "kind" not in document:
            template = {"apiVersion": "policyengine.io/v1alpha1", **yaml.safe_load(POLICY)}
            template["spec"]["metrics"] = document["metrics"]
            document = template
        checked = check_document(document, document["kind"])
        assert checked.problems == ()
        if isinstance(checked.model, ReleasePolicy):
            assert policy_problems(checked.model) == []
