"""A pass killed mid-git leaves lock files in the engine's cache clone: the next open carries on.

Real git: a bare remote and the engine's cache clone in a temporary folder.
"""

from __future__ import annotations

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
