"""Loading policy files: documents found, documents ignored, and every bad input located."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from policyengine.metrics.catalog import PRESETS_ENV, builtin_metric_sets
from policyengine.policy.loader import (
    LoadedPolicy,
    display_path,
    load_file,
    load_tree,
    parse_field,
    policy_files,
)
from policyengine.policy.validation import PolicyIssue, format_field

POLICY = """\
apiVersion: policyengine.io/v1alpha1
kind: ReleasePolicy
metadata:
  name: fraud-detector
  namespace: models
spec:
  target:
    router: istio-modelmesh
    manifests:
      - path: manifests/virtualservice.yaml
  versions:
    - name: v1
      role: baseline
      metricLabel: fraud-detector-v1
      backend: {host: modelmesh-serving.models.svc.cluster.local, header: fraud-detector-v1}
    - name: v2
      role: candidate
      metricLabel: fraud-detector-v2
      backend: {host: modelmesh-serving.models.svc.cluster.local, header: fraud-detector-v2}
  strategy:
    type: canary
    steps: [10, 20, 30, 40, 50]
    minDwell: 6m
  objectives:
    - {metric: error-rate, max: 0.01, maxRelativeIncrease: 0.2}
    - {metric: latency, threshold: 500, max: 0.01}
  metrics:
    set: modelmesh
    provider: {url: "http://prometheus.monitoring:9090"}
"""
"""A valid policy; its line numbers are relied on by the tests below."""

METRIC_SET = """\
apiVersion: policyengine.io/v1alpha1
kind: MetricSet
metadata: {name: modelmesh}
spec:
  versionLabel: vModelId
  metrics:
    error-rate:
      type: proportion
      events: sum(increase(requests_total{code!="OK"}[${window}])) by (vModelId)
      total: sum(increase(requests_total[${window}])) by (vModelId)
    latency:
      type: histogram
      buckets: sum(increase(latency_bucket[${window}])) by (vModelId, le)
    fairness:
      type: gauge
      query: max(spd) by (vModelId)
"""

VIRTUAL_SERVICE = """\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: fraud-detector, namespace: models}
spec:
  hosts: [modelmesh-serving]
  http:
    - route:
        - destination: {host: modelmesh-serving.models.svc.cluster.local}
          weight: 100
"""


@pytest.fixture
def presets(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Built-in metric sets from a folder of our own, not the shipped `policies/`."""
    folder = tmp_path_factory.mktemp("presets")
    (folder / "modelmesh.yaml").write_text(METRIC_SET, encoding="utf-8")
    monkeypatch.setenv(PRESETS_ENV, str(folder))
    builtin_metric_sets.cache_clear()
    yield folder
    builtin_metric_sets.cache_clear()


def write_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    """A repository with the valid policy and its manifest, plus `files` (path -> text)."""
    contents = {"policies/fraud.yaml": POLICY, "manifests/virtualservice.yaml": VIRTUAL_SERVICE}
    contents.update(files or {})
    for name, text in contents.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


def test_valid_policy_loads_with_its_path_and_index(tmp_path: Path) -> None:
    write_repo(tmp_path)
    loaded = load_file(tmp_path / "policies/fraud.yaml", tmp_path)
    assert loaded.errors == ()
    [policy] = loaded.policies
    assert isinstance(policy, LoadedPolicy)
    assert (policy.path, policy.doc_index, policy.key) == (
        "policies/fraud.yaml",
        0,
        "models/fraud-detector",
    )
    assert policy.policy.spec.strategy.type == "canary"


def test_manifests_are_ignored_and_metric_sets_found_in_multi_document_files(
    tmp_path: Path,
) -> None:
    text = VIRTUAL_SERVICE + "---\n" + METRIC_SET + "---\n" + POLICY + "---\n"
    (tmp_path / "all.yaml").write_text(text, encoding="utf-8")
    loaded = load_file(tmp_path / "all.yaml", tmp_path)
    assert loaded.errors == ()
    assert [d.doc_index for d in loaded.documents] == [1, 2]
    assert [s.metric_set.metadata.name for s in loaded.metric_sets] == ["modelmesh"]
    policy = loaded.policies[0]
    offset = line_of(text, "kind: ReleasePolicy") - 2
    assert policy.locate("spec.strategy.steps[2]") == (offset + line_of(POLICY, "steps:"), 21)
    assert policy.locate(("spec", "versions", 1)) == (offset + line_of(POLICY, "name: v2"), 7)


def test_a_file_of_manifests_only_has_nothing_to_report(tmp_path: Path) -> None:
    (tmp_path / "vs.yaml").write_text(VIRTUAL_SERVICE, encoding="utf-8")
    loaded = load_file(tmp_path / "vs.yaml", tmp_path)
    assert (loaded.documents, loaded.errors) == ((), ())


def test_locator_falls_back_to_the_deepest_existing_field(tmp_path: Path) -> None:
    write_repo(tmp_path)
    [policy] = load_file(tmp_path / "policies/fraud.yaml", tmp_path).policies
    assert policy.locate("spec.strategy.stepWeight") == (line_of(POLICY, "strategy:"), 3)
    issue = policy.issue(("spec", "metrics", "set"), "boom")
    assert (
        str(issue)
        == f"policies/fraud.yaml:{line_of(POLICY, 'set: modelmesh')}:5: error: spec.metrics.set: boom"
    )


def bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        aliases = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{aliases}]")
    return "\n".join(lines) + "\n"


BIG = 2 * 1024 * 1024


def replace(old: str, new: str) -> str:
    assert old in POLICY
    return POLICY.replace(old, new, 1)


# name, file bytes, expected line (0: any), expected field, words in the message
BAD_INPUTS: list[tuple[str, bytes, int, str, tuple[str, ...]]] = [
    (
        "yaml syntax error",
        replace("  name: fraud-detector\n", "  name: [fraud-detector\n").encode(),
        5,
        "",
        ("YAML syntax error",),
    ),
    (
        "wrong type",
        replace("minDwell: 6m", "minDwell: 6m\n    minSamples: many").encode(),
        line_of(POLICY, "minDwell") + 1,
        "spec.strategy.minSamples",
        ("must be a valid integer",),
    ),
    (
        "wrong list item type",
        replace("[10, 20, 30, 40, 50]", "[10, twenty]").encode(),
        line_of(POLICY, "steps:"),
        "spec.strategy.steps[1]",
        ("valid integer",),
    ),
    (
        "missing required field",
        replace("    router: istio-modelmesh\n", "").encode(),
        line_of(POLICY, "target:"),
        "spec.target.router",
        ("required field is missing",),
    ),
    (
        "missing strategy type",
        replace("    type: canary\n", "").encode(),
        line_of(POLICY, "strategy:"),
        "spec.strategy.type",
        ("required field is missing", "canary"),
    ),
    (
        "unknown field",
        replace("    minDwell: 6m\n", "    minDwell: 6m\n    stpes: [1]\n").encode(),
        line_of(POLICY, "minDwell") + 1,
        "spec.strategy.stpes",
        ("unknown field 'stpes'", "did you mean 'steps'?"),
    ),
    (
        "snake_case field",
        replace("    minDwell: 6m\n", "    min_dwell: 6m\n").encode(),
        line_of(POLICY, "minDwell"),
        "spec.strategy.min_dwell",
        ("did you mean 'minDwell'?", "camelCase"),
    ),
    (
        "unknown strategy type",
        replace("type: canary", "type: canry").encode(),
        line_of(POLICY, "type: canary"),
        "spec.strategy.type",
        ("unknown type 'canry'", "did you mean 'canary'?"),
    ),
    (
        "unknown enum value",
        replace("router: istio-modelmesh", "router: gateway-api").encode(),
        line_of(POLICY, "router:"),
        "spec.target.router",
        ("'gateway-api'", "did you mean 'gatewayapi'?"),
    ),
    (
        "unknown kind in our API group",
        replace("kind: ReleasePolicy", "kind: ReleasePolcy").encode(),
        2,
        "kind",
        ("unknown kind", "did you mean 'ReleasePolicy'?"),
    ),
    ("empty file", b"", 1, "", ("empty file",)),
    ("only comments", b"# nothing here\n---\n", 1, "", ("empty file",)),
    (
        "non-UTF-8 file",
        replace("fraud-detector\n", "fraud-d\xe9tector\n").encode("latin-1"),
        line_of(POLICY, "name: fraud-detector"),
        "",
        ("not UTF-8", "0xe9"),
    ),
    (
        "10 MB file",
        b"# " + b"x" * (10 * 1024 * 1024) + b"\n",
        1,
        "",
        ("above the limit", "1048576"),
    ),
    ("alias bomb, no kind", bomb().encode(), 2, "", ("alias",)),
    (
        "alias bomb in a policy",
        (
            POLICY
            + "  annotations:\n"
            + "".join("    " + line + "\n" for line in bomb().splitlines())
        ).encode(),
        len(POLICY.splitlines()) + 3,
        "",
        ("aliases", "not allowed"),
    ),
    (
        "alias in a policy",
        replace(
            "steps: [10, 20, 30, 40, 50]", "steps: &steps [10, 20]\n    maxWeight: *steps"
        ).encode(),
        line_of(POLICY, "steps:") + 1,
        "",
        ("aliases", "not allowed"),
    ),
    (
        "recursive alias",
        b"a: &a [*a]\n",
        1,
        "",
        ("alias",),
    ),
    (
        "duplicate key",
        replace("    minDwell: 6m\n", "    minDwell: 6m\n    minDwell: 7m\n").encode(),
        line_of(POLICY, "minDwell") + 1,
        "spec.strategy.minDwell",
        ("duplicate key 'minDwell'", f"line {line_of(POLICY, 'minDwell')}"),
    ),
    (
        "duplicate key in a list item",
        replace("name: v2\n", "name: v2\n      name: v3\n").encode(),
        line_of(POLICY, "name: v2") + 1,
        "spec.versions[1].name",
        ("duplicate key 'name'",),
    ),
    (
        "not a mapping under spec",
        replace("spec:\n", "spec: 3\nignored:\n").encode(),
        line_of(POLICY, "spec:"),
        "spec",
        ("valid dictionary",),
    ),
]


@pytest.mark.parametrize(
    ("content", "line", "field", "words"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_is_reported_with_its_location(
    tmp_path: Path, content: bytes, line: int, field: str, words: tuple[str, ...]
) -> None:
    (tmp_path / "bad.yaml").write_bytes(content)
    loaded = load_file(tmp_path / "bad.yaml", tmp_path)
    assert loaded.policies == []
    assert loaded.errors, "no error reported"
    issue = loaded.errors[0]
    assert (issue.path, issue.line, issue.field) == ("bad.yaml", line, field), str(issue)
    for word in words:
        assert word in issue.message, str(issue)
    assert str(issue).startswith(f"bad.yaml:{line}:{issue.column}: error: ")


def test_an_alias_bomb_is_refused_fast_with_bounded_memory(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(bomb(levels=12), encoding="utf-8")
    tracemalloc.start()
    started = time.perf_counter()
    loaded = load_file(tmp_path / "bomb.yaml", tmp_path)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "alias" in loaded.errors[0].message
    assert elapsed < 0.25
    assert peak < 5 * 1024 * 1024


def test_a_large_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("wb") as sparse:
        sparse.truncate(BIG)
    tracemalloc.start()
    loaded = load_file(path, tmp_path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert f"{BIG} bytes" in loaded.errors[0].message
    assert peak < BIG / 4


def test_every_error_of_a_document_is_reported(tmp_path: Path) -> None:
    text = replace("minDwell: 6m", "minDwell: soon\n    stpes: [1]").replace(
        "max: 0.01}", "max: low}"
    )
    assert "max: low}" in text
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    fields = {issue.field for issue in load_file(tmp_path / "p.yaml", tmp_path).errors}
    assert fields == {
        "spec.strategy.minDwell",
        "spec.strategy.stpes",
        "spec.objectives[1].max",
    }


def test_documents_before_a_syntax_error_still_load(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY + "---\nkey: [unclosed\n", encoding="utf-8")
    loaded = load_file(tmp_path / "p.yaml", tmp_path)
    assert len(loaded.policies) == 1
    assert [e.line for e in loaded.errors] == [line_of(POLICY, "provider:") + 3]


def test_load_tree_collects_files_recursively_and_errors_of_every_file(tmp_path: Path) -> None:
    write_repo(
        tmp_path,
        {
            "sets/modelmesh.yml": METRIC_SET,
            "broken/one.yaml": "a: [\n",
            "broken/two.yaml": "",
            ".hidden/skip.yaml": "a: [\n",
            "notes.txt": "a: [\n",
        },
    )
    result = load_tree([tmp_path], tmp_path)
    assert result.files == 5
    assert [p.path for p in result.policies] == ["policies/fraud.yaml"]
    assert list(result.metric_sets) == ["modelmesh"]
    assert [e.path for e in result.errors] == ["broken/one.yaml", "broken/two.yaml"]


def test_a_metric_set_defined_twice_is_reported_at_both_places(tmp_path: Path) -> None:
    write_repo(tmp_path, {"a.yaml": METRIC_SET, "b.yaml": METRIC_SET})
    result = load_tree([tmp_path / "a.yaml", tmp_path / "b.yaml"], tmp_path)
    assert sorted(str(e) for e in result.errors) == [
        "a.yaml:3:12: error: metadata.name: metric set modelmesh is also defined at b.yaml:3:12",
        "b.yaml:3:12: error: metadata.name: metric set modelmesh is also defined at a.yaml:3:12",
    ]


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("spec.strategy.steps[2]", ("spec", "strategy", "steps", 2)),
        ("spec.versions[0].backend", ("spec", "versions", 0, "backend")),
        ("kind", ("kind",)),
        ("a[1][2]", ("a", 1, 2)),
    ],
)
def test_field_paths_round_trip(text: str, parts: tuple[str | int, ...]) -> None:
    assert parse_field(text) == parts
    assert format_field(parts) == text


def test_issue_renders_without_a_field_for_file_errors() -> None:
    assert str(PolicyIssue("a.yaml", 1, 1, "", "empty file")) == "a.yaml:1:1: error: empty file"


def test_display_path_is_repository_relative_inside_and_as_given_outside(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    assert display_path(tmp_path / "repo" / "x.yaml", tmp_path / "repo") == "x.yaml"
    assert display_path(tmp_path / "y.yaml", tmp_path / "repo") == str(tmp_path / "y.yaml")


def test_policy_files_are_sorted_unique_and_yaml_only(tmp_path: Path) -> None:
    write_repo(tmp_path, {"b.yml": "", "a.yaml": "", "c.json": "{}"})
    files = policy_files([tmp_path, tmp_path / "a.yaml"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a.yaml",
        "b.yml",
        "manifests/virtualservice.yaml",
        "policies/fraud.yaml",
    ]
