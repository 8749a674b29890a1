"""The engine's document cache: walk order, config roots, YAML 1.2 scalars, and reuse by blob id."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from policyengine.cache import (
    DocumentCache,
    config_root_of,
    config_roots,
    is_policy_candidate,
    plain_documents,
    walk_order,
)
from policyengine.policy.loader import load_tree, policy_files
from policyengine.policy.validation import check_repository

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    ("scalar", "expected"),
    [
        ("on", "on"),  # YAML 1.1 would say True
        ("yes", "yes"),
        ("true", True),
        ("False", False),
        ("010", 10),  # YAML 1.1 would say 8
        ("0o10", 8),
        ("0x1f", 31),
        ("-3", -3),
        ("1e3", 1000.0),
        ("2.5", 2.5),
        ("1:30", "1:30"),  # YAML 1.1 would say 90
        ("~", None),
        ("fraud-detector-v1", "fraud-detector-v1"),
    ],
)
def test_plain_documents_read_scalars_as_yaml_1_2(scalar: str, expected: object) -> None:
    documents = plain_documents(f"value: {scalar}\n")
    assert documents is not None
    assert documents[0]["value"] == expected
    assert type(documents[0]["value"]) is type(expected)


def test_plain_documents_infinity_and_refusal() -> None:
    documents = plain_documents("a: .inf\n---\nb: 1\n")
    assert documents is not None and math.isinf(documents[0]["a"]) and documents[1] == {"b": 1}
    assert plain_documents("a: [1, 2\n") is None


@pytest.mark.parametrize(
    ("path", "candidate"),
    [
        ("policy.yaml", True),
        ("a/b/c.yml", True),
        (".policyengine/status/ns/p.yaml", False),
        ("a/.hidden/p.yaml", False),
        ("a/.p.yaml", True),  # only hidden folders are skipped, as the walk does
        ("a/readme.md", False),
    ],
)
def test_policy_candidates(path: str, candidate: bool) -> None:
    assert is_policy_candidate(path) is candidate


def test_walk_order_matches_policy_files(tmp_path: Path) -> None:
    paths = ["b.yaml", "a/z.yaml", "a/b/c.yaml", "a/a.yaml", "c/x.yaml", "a-b.yaml", "a/b.yaml"]
    for path in paths:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("a: 1\n")
    walked = [file.relative_to(tmp_path).as_posix() for file in policy_files([tmp_path])]
    assert sorted(paths, key=walk_order) == walked


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("examples/one/policy.yaml", "examples/one"),
        ("examples/one/deep/policy.yaml", "examples/one"),
        ("examples/two/policy.yaml", ""),
        ("policy.yaml", ""),
    ],
)
def test_config_root_of(path: str, expected: str) -> None:
    roots = config_roots([".policyengine/status/a/b.yaml", "examples/one/.policyengine/README"])
    assert roots == {"", "examples/one"}
    assert config_root_of(path, roots) == expected


def _tree(root: Path, blobs: dict[str, str]) -> dict[str, tuple[str, str]]:
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return {path: ("100644", blobs.get(path, "0" * 40)) for path in files}


def test_validated_equals_check_repository_and_reuses_unchanged_files(tmp_path: Path) -> None:
    source = EXAMPLES / "modelmesh-canary"
    for file in source.rglob("*"):
        if file.is_file():
            target = tmp_path / file.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    expected = check_repository(load_tree([tmp_path], tmp_path), tmp_path)
    cache = DocumentCache()

    first = cache.validated(tmp_path, _tree(tmp_path, {}))
    assert [p.key for p in first.policies] == [p.key for p in expected.policies]
    assert [str(e) for e in first.errors] == [str(e) for e in expected.errors]
    assert first.files == expected.files
    parsed = cache.stats.files_parsed
    assert parsed == expected.files and cache.stats.validations == 1

    again = cache.validated(tmp_path, _tree(tmp_path, {}))
    assert again is first  # nothing changed: not re-parsed, not re-validated
    assert cache.stats.files_parsed == parsed and cache.stats.validations == 1

    changed = cache.validated(tmp_path, _tree(tmp_path, {"policy.yaml": "1" * 40}))
    assert cache.stats.files_parsed == parsed + 1  # only the policy file whose blob moved
    assert cache.stats.validations == 2
    assert [p.key for p in changed.policies] == [p.key for p in expected.policies]


def test_status_and_manifests_are_reused_by_blob(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("not: a status\n")
    (tmp_path / "m.yaml").write_text("kind: VirtualService\n")
    cache = DocumentCache()
    cache.entries = {"m.yaml": ("100644", "b" * 40)}
    reads: list[str] = []

    def read() -> str:
        reads.append("m.yaml")
        return (tmp_path / "m.yaml").read_text()

    assert cache.manifest_documents("m.yaml", read) == ({"kind": "VirtualService"},)
    assert cache.manifest_documents("m.yaml", read) == ({"kind": "VirtualService"},)
    assert reads == ["m.yaml"]
    assert cache.status(tmp_path, "absent.yaml") is None  # not in the tree: no status yet
