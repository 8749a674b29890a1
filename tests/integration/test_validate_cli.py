"""`policyengine validate` end to end: output formats, exit codes, repository roots (real git)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from policyengine.cli import EngineGroup, main
from policyengine.errors import GitUnreachableError, InvalidPolicyError, ProviderUnavailableError
from tests.unit.test_loader import POLICY, VIRTUAL_SERVICE, line_of, presets, write_repo

__all__ = ["presets"]  # the fixture, imported for its name

pytestmark = pytest.mark.usefixtures("presets")


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def test_a_valid_repository_exits_0_with_a_summary(runner: CliRunner, tmp_path: Path) -> None:
    root = write_repo(tmp_path)
    result = runner.invoke(main, ["validate", str(root), "--repo", str(root)])
    assert result.exit_code == 0, result.output
    assert result.output == "1 policy and 0 metric sets valid in 2 files\n"


def test_errors_are_printed_one_per_line_and_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    broken = POLICY.replace("minDwell: 6m", "minDwel: 6m").replace("set: modelmesh", "set: nope")
    root = write_repo(tmp_path, {"policies/fraud.yaml": broken, "policies/empty.yaml": ""})
    result = runner.invoke(main, ["validate", str(root), "--repo", str(root)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines == [
        "policies/empty.yaml:1:1: error: empty file: no YAML document in it",
        f"policies/fraud.yaml:{line_of(POLICY, 'minDwell')}:5: error: spec.strategy.minDwel: "
        "unknown field 'minDwel'; did you mean 'minDwell'?",
    ]
    assert result.stderr == "2 errors in 3 files\n"


def test_json_output_for_ci_tools(runner: CliRunner, tmp_path: Path) -> None:
    root = write_repo(tmp_path, {"policies/bad.yaml": "a: [\n"})
    result = runner.invoke(main, ["validate", str(root), "--repo", str(root), "--output", "json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["valid"] is False
    assert (document["policies"], document["metricSets"], document["files"]) == (1, 0, 3)
    [error] = document["errors"]
    assert set(error) == {"path", "line", "column", "field", "message"}
    assert (error["path"], error["line"]) == ("policies/bad.yaml", 2)

    (root / "policies/bad.yaml").unlink()
    result = runner.invoke(main, ["validate", str(root), "--repo", str(root), "--output", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "valid": True,
        "errors": [],
        "policies": 1,
        "metricSets": 0,
        "files": 2,
    }


def test_usage_errors_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(main, ["validate"]).exit_code == 2
    assert runner.invoke(main, ["validate", str(tmp_path / "missing.yaml")]).exit_code == 2
    assert runner.invoke(main, ["validate", str(tmp_path), "--output", "xml"]).exit_code == 2


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_the_default_root_is_the_git_top_level(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_repo(tmp_path / "repo")
    git(root, "init", "--quiet")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["validate", str(root / "policies")])
    assert result.exit_code == 0, result.output
    assert "1 policy" in result.output

    monkeypatch.chdir(root / "policies")  # outside git: the current folder is the root
    (root / ".git").rename(root / "not-git")
    result = runner.invoke(main, ["validate", "fraud.yaml"])
    assert result.exit_code == 1
    assert "fraud.yaml:10:9: error: spec.target.manifests[0].path: manifest" in result.output


def test_a_folder_holding_policyengine_is_the_root_of_its_policies(
    runner: CliRunner, tmp_path: Path
) -> None:
    outer = tmp_path / "outer"
    for name in ("one", "two"):
        write_repo(
            outer / "examples" / name,
            {"policies/fraud.yaml": POLICY.replace("fraud-detector,", f"{name},")},
        )
        (outer / "examples" / name / ".policyengine").mkdir()
    git(outer, "init", "--quiet")
    result = runner.invoke(main, ["validate", str(outer / "examples")])
    assert result.exit_code == 1  # the same name in one namespace, but not the same manifest
    assert {line.split(":")[0] for line in result.stdout.splitlines()} == {
        "examples/one/policies/fraud.yaml",
        "examples/two/policies/fraud.yaml",
    }
    assert all("metadata.name" in line for line in result.stdout.splitlines())


def test_a_symlinked_manifest_leaving_the_repository_is_an_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "secret.yaml").write_text(VIRTUAL_SERVICE, encoding="utf-8")
    root = write_repo(tmp_path / "repo")
    (root / "manifests/virtualservice.yaml").unlink()
    (root / "manifests/virtualservice.yaml").symlink_to(tmp_path / "secret.yaml")
    result = runner.invoke(main, ["validate", str(root), "--repo", str(root)])
    assert result.exit_code == 1
    assert "outside the repository" in result.stdout


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidPolicyError("bad"), 1),
        (ProviderUnavailableError("prometheus down"), 3),
        (GitUnreachableError("remote down"), 3),
    ],
)
def test_engine_errors_map_to_exit_codes_without_a_traceback(
    runner: CliRunner, error: Exception, code: int
) -> None:
    group = EngineGroup()

    @group.command()
    def fail() -> None:
        raise error

    result = runner.invoke(group, ["fail"])
    assert result.exit_code == code
    assert result.stderr == f"error: {error}\n"
    assert "Traceback" not in result.output
    assert isinstance(group, click.Group)


def test_the_console_script_runs(tmp_path: Path, presets: Path) -> None:
    root = write_repo(tmp_path)
    script = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "policyengine"
    completed = subprocess.run(
        [str(script), "validate", "policies", "--repo", "."],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (completed.returncode, completed.stdout) == (
        0,
        "1 policy and 0 metric sets valid in 1 file\n",
    ), completed.stderr
