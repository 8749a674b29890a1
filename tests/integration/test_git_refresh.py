"""Workspace.refresh resets the cache clone only when something moved (real git: bare remote + clones)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.gitops.commits import engine_commit_message
from policyengine.gitops.repo import Workspace
from tests.support.gitrepos import git, human_push, make_remote

ENGINE = ("policyengine", "policyengine@example.com")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FILES = {"manifests/vs.yaml": "weights:\n  v1: 100\n", "README.md": "config repo\n"}
MESSAGE = engine_commit_message("risk/fraud", "advance", "v1=90,v2=10", "step 1 due", NOW)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path, FILES)


@pytest.mark.parametrize("left_behind", ["open batch", "flushed, unpushed"])
def test_refresh_after_an_interrupted_pass_resets_the_work_tree(
    remote: Path, tmp_path: Path, left_behind: str
) -> None:
    cache = tmp_path / "cache"
    workspace = Workspace.open(remote, cache)
    start = workspace.head()
    workspace.commit({"new.yaml": b"x: 1\n"}, MESSAGE, ENGINE, NOW)
    if left_behind == "flushed, unpushed":
        workspace.flush()
    (cache / "stray.yaml").write_text("left by the interrupted pass\n")
    workspace.refresh()
    assert workspace.head() == start
    assert not (cache / "new.yaml").exists()
    assert not (cache / "stray.yaml").exists()
    assert git(cache, "status", "--porcelain") == ""


def test_refresh_with_nothing_moved_keeps_the_checkout(remote: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    workspace = Workspace.open(remote, cache)
    # Only a write behind the engine's back could make the tree differ; refresh trusts the
    # invariant then, which this file (never written by the engine) makes visible.
    (cache / "untracked.txt").write_text("not the engine's\n")
    workspace.refresh()
    assert (cache / "untracked.txt").exists()
    human = human_push(remote, tmp_path / "humans", {"README.md": "human edit\n"}, "Edit readme")
    workspace.refresh()
    assert workspace.head() == human
    assert workspace.read("README.md") == b"human edit\n"
    assert not (cache / "untracked.txt").exists()


def test_refresh_after_a_push_keeps_a_clean_tree(remote: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    workspace = Workspace.open(remote, cache)
    workspace.commit({"README.md": b"engine edit\n"}, MESSAGE, ENGINE, NOW)
    assert workspace.push().pushed
    workspace.refresh()
    assert workspace.read("README.md") == b"engine edit\n"
    assert git(cache, "status", "--porcelain") == ""
    assert workspace.head() == git(remote, "rev-parse", "main").strip()
