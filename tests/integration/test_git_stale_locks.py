"""A pass killed mid-git leaves lock files in the engine's cache clone: the next open carries on.

Real git: a bare remote and the engine's cache clone in a temporary folder.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.gitops.repo import Workspace
from tests.support.gitrepos import human_push, make_remote

LOCKS = (
    "index.lock",
    "HEAD.lock",
    "packed-refs.lock",
    "refs/heads/main.lock",
    "refs/remotes/origin/main.lock",
)


@pytest.mark.parametrize("lock", LOCKS)
def test_a_stale_lock_does_not_block_the_next_open(tmp_path: Path, lock: str) -> None:
    remote = make_remote(tmp_path, {"a.yaml": "a: 1\n"})
    cache = tmp_path / "cache"
    Workspace.open(remote, cache).close()
    (cache / ".git" / lock).parent.mkdir(parents=True, exist_ok=True)
    (cache / ".git" / lock).write_text("")
    pushed = human_push(remote, tmp_path / "human", {"a.yaml": "a: 2\n"}, "a person's change")
    workspace = Workspace.open(remote, cache)
    assert workspace.head() == pushed
    assert workspace.read("a.yaml") == b"a: 2\n"
    workspace.close()


def test_a_stale_fast_import_scratch_ref_lock_does_not_block_the_next_commit(
    tmp_path: Path,
) -> None:
    """Found by the SIGKILL test: a pass killed while fast-import moved its scratch ref left
    refs/policyengine/import.lock, and every later pass failed in fast-import."""
    remote = make_remote(tmp_path, {"a.yaml": "a: 1\n"})
    cache = tmp_path / "cache"
    Workspace.open(remote, cache).close()
    lock = cache / ".git" / "refs" / "policyengine" / "import.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    workspace = Workspace.open(remote, cache)
    now = datetime(2024, 5, 1, tzinfo=UTC)
    assert workspace.commit({"a.yaml": b"a: 3\n"}, "engine change", ("e", "e@x"), now)
    assert workspace.push().pushed
    workspace.close()
