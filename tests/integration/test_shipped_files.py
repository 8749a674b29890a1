"""What ships is valid: every YAML file under examples/ and policies/, and `validate examples/`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyengine.cli import main
from policyengine.metrics.catalog import PRESETS_ENV, builtin_metric_sets
from policyengine.policy.loader import CONFIG_ROOT_MARKER, load_tree, policy_files
from policyengine.policy.validation import check_repository

REPO = Path(__file__).resolve().parents[2]
SHIPPED = policy_files([REPO / "examples", REPO / "policies"])
EXAMPLES = sorted(path for path in (REPO / "examples").iterdir() if path.is_dir())
EXAMPLE_POLICIES = sorted(
    file
    for file in SHIPPED
    if file.is_relative_to(REPO / "examples") and "kind: ReleasePolicy" in file.read_text("utf-8")
)


@pytest.fixture(autouse=True)
def shipped_presets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The built-in metric sets are the shipped ones under policies/."""
    monkeypatch.delenv(PRESETS_ENV, raising=False)
    builtin_metric_sets.cache_clear()
    yield
    builtin_metric_sets.cache_clear()


def test_there_is_something_to_check() -> None:
    assert len(SHIPPED) >= 10
    assert {example.name for example in EXAMPLES} >= {
        "modelmesh-canary",
        "kserve-bluegreen",
        "gateway-mirror",
    }
    assert len(EXAMPLE_POLICIES) >= 3


@pytest.mark.parametrize("file", SHIPPED, ids=[f.relative_to(REPO).as_posix() for f in SHIPPED])
def test_shipped_file_is_valid(file: Path) -> None:
    report = check_repository(load_tree([file], REPO), REPO)
    assert report.errors == [], "\n".join(str(error) for error in report.errors)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_each_example_is_a_config_repository_root(example: Path) -> None:
    # Examples are templates of whole config repositories (manifest paths start at the example),
    # so inside this repository each one marks its root.
    assert (example / CONFIG_ROOT_MARKER).exists(), (
        f"add {example.relative_to(REPO)}/{CONFIG_ROOT_MARKER}/ (e.g. a README) so that manifest "
        "paths resolve from the example's folder"
    )


def test_validate_examples_exits_0() -> None:
    result = CliRunner().invoke(main, ["validate", str(REPO / "examples")])
    assert result.exit_code == 0, result.output
    assert f"{len(EXAMPLE_POLICIES)} policies" in result.output


def test_validate_examples_through_the_console_script() -> None:
    completed = subprocess.run(
        [str(REPO / ".venv" / "bin" / "policyengine"), "validate", "examples/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "valid in" in completed.stdout


def copy_of_example(policy: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the policy's example, as its own repository; returns (root, policy copy)."""
    example = next(e for e in EXAMPLES if policy.is_relative_to(e))
    root = tmp_path / example.name
    shutil.copytree(example, root)
    return root, root / policy.relative_to(example)


def insert_line(path: Path, before: str, line: str) -> int:
    """Insert `line` above the first line starting with `before`; returns its 1-based number."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    number = next(n for n, text in enumerate(lines, 1) if text.startswith(before))
    lines.insert(number - 1, line + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return number


@pytest.mark.parametrize(
    ("inserted", "words"),
    [
        ("  tagret: {}", "unknown field 'tagret'; did you mean 'target'?"),
        ("  strategy: type: canary", "YAML syntax error"),
    ],
    ids=["unknown field", "syntax error"],
)
@pytest.mark.parametrize(
    "policy",
    EXAMPLE_POLICIES,
    ids=[p.relative_to(REPO / "examples").as_posix() for p in EXAMPLE_POLICIES],
)
def test_a_broken_line_of_an_example_is_reported_with_its_number(
    tmp_path: Path, policy: Path, inserted: str, words: str
) -> None:
    root, copy = copy_of_example(policy, tmp_path)
    number = insert_line(copy, "  target:", inserted)
    shown = copy.relative_to(root).as_posix()
    result = CliRunner().invoke(main, ["validate", str(root), "--repo", str(root)])
    assert result.exit_code == 1
    assert f"{shown}:{number}:" in result.stdout, result.output
    assert words in result.stdout
