"""`validate` reads a kserve-canary policy's InferenceService: a broken spec.canary[] is reported
at its line and column in the manifest, and the policy is left out of the valid ones."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyengine.cli import main
from policyengine.policy.loader import load_tree
from policyengine.policy.validation import check_repository

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kserve-standard-canary"
MANIFEST = "manifests/inferenceservice.yaml"


def copy_example(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root)
    return root


def line_col(text: str, needle: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number, line.index(needle.strip()) + 1
    raise AssertionError(f"{needle!r} not in the manifest")


def test_the_example_validates(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    report = check_repository(load_tree([root], root), root)
    assert report.errors == []
    assert [loaded.key for loaded in report.policies] == ["payments/fraud-scorer"]


@pytest.mark.parametrize(
    ("edit", "needle", "field", "message"),
    [
        (
            ("trafficPercent: 0 ", "trafficPercent: 120 "),
            "trafficPercent: 120",
            "spec.canary[0].trafficPercent",
            "120 is not a percentage 0-100",
        ),
        (
            ("        name: v2\n", "        name: v2-retrained\n"),
            "name: v2-retrained",
            "spec.canary[0].predictor.name",
            "predictor 'v2-retrained' is none of policy payments/fraud-scorer's predictors",
        ),
    ],
    ids=["percent-120", "unknown-predictor"],
)
def test_a_broken_canary_list_is_reported_at_its_line(
    tmp_path: Path, edit: tuple[str, str], needle: str, field: str, message: str
) -> None:
    root = copy_example(tmp_path)
    manifest = root / MANIFEST
    text = manifest.read_text(encoding="utf-8")
    assert edit[0] in text
    manifest.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    line, column = line_col(manifest.read_text(encoding="utf-8"), needle)

    result = CliRunner().invoke(main, ["validate", str(root), "--repo", str(root)])

    assert result.exit_code == 1, result.output
    [error] = result.stdout.splitlines()
    assert error.startswith(f"{MANIFEST}:{line}:{column}: error: {field}: "), error
    assert message in error
    report = check_repository(load_tree([root], root), root)
    assert report.policies == []  # the policy is not reconciled while its manifest is broken
