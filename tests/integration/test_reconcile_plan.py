"""`plan` is a dry run: it prints each policy's decision and diff (text, Markdown, JSON) and writes
nothing, neither to the remote nor to a person's clone."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.gitrepos import clone, git
from tests.support.release_repos import (
    T0,
    ReleaseRepo,
    console_script,
    modelmesh_baseline_files,
    modelmesh_candidate_files,
    rfc3339,
)

CANARY = "fraud-detection/fraud-detector"
SERVICE = "manifests/virtualservice.yaml"


def clone_state(path: Path) -> tuple[str, str, str, str]:
    """HEAD, refs, porcelain status and the index of a working clone."""
    return (
        git(path, "rev-parse", "HEAD"),
        git(path, "for-each-ref"),
        git(path, "status", "--porcelain", "--untracked-files=all"),
        git(path, "ls-files", "--stage"),
    )


def work_tree(path: Path) -> dict[str, bytes]:
    return {
        f.relative_to(path).as_posix(): f.read_bytes()
        for f in path.rglob("*")
        if f.is_file() and ".git" not in f.relative_to(path).parts
    }


@pytest.fixture
def repo(tmp_path: Path) -> ReleaseRepo:
    repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
    repo.human_push(modelmesh_candidate_files(), "fraud-detector v2: canary release")
    return repo


def test_plan_writes_nothing_locally_or_remotely(repo: ReleaseRepo, tmp_path: Path) -> None:
    person = clone(repo.remote, tmp_path / "person")
    (person / "notes.txt").write_text("uncommitted work\n", encoding="utf-8")
    remote_refs, person_before = repo.refs(), clone_state(person)
    person_files = work_tree(person)

    text = repo.plan(T0, "text")
    markdown = repo.plan(T0, "markdown")
    as_json = repo.plan(T0, "json")
    # planning from the person's clone itself reads its commits and leaves the clone alone
    from_clone = repo.cli(
        "plan", "--repo", str(person), "--cache-dir", str(tmp_path / "c2"), "--now", rfc3339(T0)
    )

    for result in (text, markdown, as_json, from_clone):
        assert result.exit_code == 0, result.output
    assert repo.refs() == remote_refs
    assert clone_state(person) == person_before
    assert work_tree(person) == person_files
    # the engine's own clone has no commit of its own and no change in its work tree
    assert git(repo.cache, "rev-parse", "HEAD") == git(repo.remote, "rev-parse", "main")
    assert git(repo.cache, "status", "--porcelain", "--untracked-files=all") == ""

    lines = text.stdout.splitlines()
    assert lines[0] == f"plan at {rfc3339(T0)} on {repo.head()[:10]}"
    assert lines[1].startswith(f"{CANARY}: advance v1=90,v2=10 — release started")
    assert f"    --- a/{SERVICE}" in lines and f"    +++ b/{SERVICE}" in lines
    assert "    -          weight: 100  # stable" in lines
    assert "    +          weight: 90   # stable" in lines
    assert "    +          weight: 10" in lines
    assert from_clone.stdout.splitlines()[1:] == lines[1:]

    payload = json.loads(as_json.stdout)
    assert (payload["evaluatedAt"], payload["commit"], payload["exitCode"]) == (
        rfc3339(T0),
        repo.head(),
        0,
    )
    [policy] = payload["policies"]
    assert policy["policy"] == CANARY and policy["path"] == "policy.yaml"
    assert (policy["decision"], policy["weights"], policy["writes"]) == (
        "advance",
        {"v1": 90, "v2": 10},
        True,
    )
    assert (policy["phase"], policy["step"], policy["error"], policy["mirror"]) == (
        "progressing",
        0,
        None,
        None,
    )
    assert set(policy["diffs"]) == {SERVICE}
    assert "+          weight: 10\n" in policy["diffs"][SERVICE]
    assert payload["errors"] == []

    body = markdown.stdout
    assert body.startswith("# policyengine plan\n")
    assert f"## {CANARY}: advance `v1=90,v2=10`" in body
    assert f"`{SERVICE}`\n\n```diff\n--- a/{SERVICE}" in body
    assert body.count("```") % 2 == 0


def test_plan_through_the_console_script(repo: ReleaseRepo) -> None:
    repo.reconcile(T0)
    head = repo.head()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYENGINE_")}
    completed = subprocess.run(
        [
            str(console_script()),
            "plan",
            "--output",
            "json",
            *repo.engine_args(T0 + timedelta(minutes=10)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    [policy] = json.loads(completed.stdout)["policies"]
    assert (policy["decision"], policy["weights"]) == ("advance", {"v1": 80, "v2": 20})
    assert repo.head() == head
