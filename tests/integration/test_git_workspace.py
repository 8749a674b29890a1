"""Workspace against real git: clone, fetch-and-reset, reads by blob id, cheap commits."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.errors import GitError, GitUnreachableError
from policyengine.gitops.commits import engine_commit_message, is_engine_commit
from policyengine.gitops.repo import Workspace
from tests.support.gitrepos import git, human_push, make_remote, remote_log

ENGINE = ("policyengine", "policyengine@example.com")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FILES = {
    "policies/fraud.yaml": "kind: ReleasePolicy\nname: fraud\n",
    "manifests/vs.yaml": "# routes\nweights:\n  v1: 100\n  v2: 0\n",
    "README.md": "config repo\n",
}


def _message(decision: str = "advance") -> str:
    return engine_commit_message("risk/fraud", decision, "v1=90,v2=10", "step 1 due", NOW)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path, FILES)


def test_open_clones_into_the_cache_folder(remote: Path, tmp_path: Path) -> None:
    workspace = Workspace.open(remote, tmp_path / "cache" / "repo")
    assert workspace.root == tmp_path / "cache" / "repo"
    assert workspace.read("manifests/vs.yaml") == FILES["manifests/vs.yaml"].encode()
    assert workspace.head() == git(remote, "rev-parse", "main").strip()
    assert workspace.unpushed() == []


@pytest.mark.parametrize("spelling", ["path", "file-url", "string-path"])
def test_remote_spellings(remote: Path, tmp_path: Path, spelling: str) -> None:
    spellings: dict[str, str | Path] = {
        "path": remote,
        "file-url": remote.as_uri(),
        "string-path": str(remote),
    }
    location = spellings[spelling]
    workspace = Workspace.open(location, tmp_path / "cache")
    assert workspace.read("README.md") == b"config repo\n"


def test_reopen_fetches_and_discards_local_leftovers(remote: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = Workspace.open(remote, cache)
    first.commit({"README.md": b"unpushed engine edit\n"}, _message(), ENGINE, NOW)
    (cache / "stray.yaml").write_text("left by a killed pass\n")
    (cache / ".git" / "index.lock").write_text("")  # as a SIGKILLed git leaves it
    first.close()
    human = human_push(remote, tmp_path / "humans", {"README.md": "human edit\n"}, "Edit readme")

    again = Workspace.open(remote, cache)
    assert again.head() == human
    assert again.read("README.md") == b"human edit\n"
    assert not (cache / "stray.yaml").exists()
    assert again.unpushed() == []


def test_blob_ids_and_read_blobs(remote: Path, tmp_path: Path) -> None:
    workspace = Workspace.open(remote, tmp_path / "cache")
    everything = workspace.blob_ids()
    assert set(everything) == set(FILES)
    under = workspace.blob_ids(["policies/"])
    assert set(under) == {"policies/fraud.yaml"}
    contents = workspace.read_blobs(under.values())
    assert contents[under["policies/fraud.yaml"]] == FILES["policies/fraud.yaml"].encode()
    before = everything["manifests/vs.yaml"]
    workspace.commit({"manifests/vs.yaml": b"weights: {v1: 90, v2: 10}\n"}, _message(), ENGINE, NOW)
    after = workspace.blob_ids()
    assert after["manifests/vs.yaml"] != before
    assert after["policies/fraud.yaml"] == everything["policies/fraud.yaml"]


def test_commit_writes_one_commit_with_author_time_and_message(
    remote: Path, tmp_path: Path
) -> None:
    workspace = Workspace.open(remote, tmp_path / "cache")
    parent = workspace.head()
    sha = workspace.commit(
        {
            "manifests/vs.yaml": b"weights:\n  v1: 90\n  v2: 10\n",
            ".policyengine/status/risk/fraud.yaml": b"phase: progressing\n",
            "README.md": None,
        },
        _message(),
        ENGINE,
        NOW,
    )
    assert sha is not None and workspace.head() == sha
    workspace.flush()  # the batch's commits reach the branch and the index
    root = workspace.root
    assert git(root, "rev-parse", f"{sha}^").strip() == parent
    assert git(root, "log", "-1", "--format=%an <%ae> %at|%cn %ct", sha).strip() == (
        f"policyengine <policyengine@example.com> {int(NOW.timestamp())}|policyengine "
        f"{int(NOW.timestamp())}"
    )
    assert is_engine_commit(git(root, "log", "-1", "--format=%B", sha))
    changed = git(root, "diff-tree", "-r", "--name-status", "--no-commit-id", sha).split("\n")
    assert sorted(line for line in changed if line) == [
        "A\t.policyengine/status/risk/fraud.yaml",
        "D\tREADME.md",
        "M\tmanifests/vs.yaml",
    ]
    # The invariant callers rely on: work tree and index equal HEAD.
    assert git(root, "status", "--porcelain") == ""
    assert workspace.unpushed() == [sha]


def test_no_commit_for_empty_or_identical_changes(remote: Path, tmp_path: Path) -> None:
    workspace = Workspace.open(remote, tmp_path / "cache")
    head = workspace.head()
    assert workspace.commit({}, _message(), ENGINE, NOW) is None
    same = FILES["README.md"].encode()
    assert workspace.commit({"README.md": same}, _message(), ENGINE, NOW) is None
    assert workspace.head() == head
    assert git(workspace.root, "rev-parse", "HEAD").strip() == head


def test_commit_leaves_other_files_untouched(remote: Path, tmp_path: Path) -> None:
    workspace = Workspace.open(remote, tmp_path / "cache")
    untouched = workspace.root / "policies/fraud.yaml"
    os.utime(untouched, ns=(1_000_000_000, 1_000_000_000))
    workspace.commit({"manifests/vs.yaml": b"v: 1\n"}, _message(), ENGINE, NOW)
    assert untouched.stat().st_mtime_ns == 1_000_000_000


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside", ".git/config", "a/../b", ""])
def test_commit_refuses_paths_outside_the_tree(remote: Path, tmp_path: Path, bad: str) -> None:
    workspace = Workspace.open(remote, tmp_path / "cache")
    with pytest.raises(ValueError):
        workspace.commit({bad: b"x"}, _message(), ENGINE, NOW)


def test_inherited_git_variables_do_not_leak(
    remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoy = tmp_path / "decoy"
    git(tmp_path, "init", "--quiet", str(decoy))
    monkeypatch.setenv("GIT_DIR", str(decoy / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "decoy-index"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Leaked Author")
    workspace = Workspace.open(remote, tmp_path / "cache")
    sha = workspace.commit({"README.md": b"changed\n"}, _message(), ENGINE, NOW)
    assert sha is not None
    workspace.flush()
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert git(workspace.root, "log", "-1", "--format=%an", sha).strip() == "policyengine"
    assert not (tmp_path / "decoy-index").exists()


def test_unreachable_remote(tmp_path: Path) -> None:
    with pytest.raises(GitUnreachableError) as raised:
        Workspace.open(tmp_path / "no-such-remote.git", tmp_path / "cache")
    assert "no-such-remote.git" in str(raised.value)
    assert raised.value.exit_code == 3


def test_missing_branch_is_a_git_error_not_unreachable(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(GitError) as raised:
        Workspace.open(remote, tmp_path / "cache", branch="nope")
    assert not isinstance(raised.value, GitUnreachableError)


def test_non_clone_cache_folder_is_refused(remote: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "precious.txt").write_text("someone's file")
    with pytest.raises(GitError):
        Workspace.open(remote, cache)
    assert (cache / "precious.txt").exists()


def test_many_commits_are_cheap_and_linear(remote: Path, tmp_path: Path) -> None:
    """Per-commit cost is a handful of plumbing processes (figures in docs/gitops.md)."""
    workspace = Workspace.open(remote, tmp_path / "cache")
    for step in range(30):
        workspace.commit(
            {f"manifests/m{step % 5}.yaml": f"w: {step}\n".encode()}, _message(), ENGINE, NOW
        )
    assert len(workspace.unpushed()) == 30
    result = workspace.push()
    assert result.pushed and result.attempts == 1 and len(result.commits) == 30
    assert len(remote_log(remote)) == 31
    count = subprocess.run(
        ["git", "rev-list", "--count", "main"], cwd=remote, capture_output=True, check=True
    )
    assert count.stdout.strip() == b"31"
