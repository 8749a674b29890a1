"""`release_history` over a real repository: engine commits of several policies, human commits
between them, single and grouped commits, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policyengine.errors import GitError
from policyengine.gitops.commits import (
    PolicyDecisionNote,
    engine_commit_message,
    grouped_commit_message,
)
from policyengine.gitops.history import release_history
from policyengine.gitops.repo import Workspace
from policyengine.gitops.status import dump_status, status_path
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Phase, TrafficSplit
from tests.support.gitrepos import human_push, make_remote

ENGINE = ("policyengine", "policyengine@example.com")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_history_of_several_policies(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"a.yaml": "w: 100\n", "b.yaml": "w: 100\n"})
    workspace = Workspace.open(remote, tmp_path / "cache", sleep=lambda _: None)
    workspace.commit(
        {"a.yaml": b"w: 90\n"},
        engine_commit_message("ns/a", "advance", "v1=90,v2=10", "step 1", T0),
        ENGINE,
        T0,
    )
    workspace.push()
    human_push(remote, tmp_path / "humans", {"notes.md": "Policy: ns/a is fine\n"}, "Notes")
    workspace = Workspace.open(remote, tmp_path / "cache", sleep=lambda _: None)
    later = T0 + timedelta(minutes=10)
    workspace.commit(
        {"a.yaml": b"w: 0\n", "b.yaml": b"w: 0\n"},
        grouped_commit_message(
            [
                PolicyDecisionNote("ns/a", "promote", "v2=100", "all steps passed"),
                PolicyDecisionNote("ns/b", "rollback", "v1=100,v2=0", "errors"),
            ],
            later,
        ),
        ENGINE,
        later,
    )
    workspace.push()

    everything = release_history(workspace.root, "main")
    assert [(e.policy, e.decision, e.time) for e in everything] == [
        ("ns/a", "advance", T0),
        ("ns/a", "promote", later),
        ("ns/b", "rollback", later),
    ]
    only_a = release_history(workspace.root, "main", "ns/a")
    assert [e.decision for e in only_a] == ["advance", "promote"]
    assert only_a[0].reason == "step 1" and only_a[1].reason == "all steps passed"
    assert only_a[1].commit == workspace.head()
    # A bare remote works too: history reads refs, not the work tree.
    assert release_history(remote, "main", "ns/b")[0].reason == "errors"


def test_unknown_branch(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"a.yaml": "x\n"})
    with pytest.raises(GitError):
        release_history(remote, "nope")


def test_a_squash_merge_without_trailers_is_read_from_the_status_file(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, {"a.yaml": "w: 100\n"})
    evaluated = T0 + timedelta(minutes=3)
    status = ReleaseStatus(
        policy="ns/a",
        phase=Phase.PROGRESSING,
        release_id="r1",
        step=0,
        step_started_at=evaluated,
        release_started_at=T0,
        split=TrafficSplit.of({"v1": 90, "v2": 10}),
        last_decision=Decision.ADVANCE,
        last_reason="release started",
        evaluated_at=evaluated,
    )
    # What a squash merge of the engine's pull request leaves on main: its files, a person's
    # message without the engine's trailers.
    squash = human_push(
        remote,
        tmp_path / "humans",
        {"a.yaml": "w: 90\n", status_path("ns/a"): dump_status(status)},
        "Release ns/a: first step (#7)",
    )
    human_push(remote, tmp_path / "humans", {"notes.md": "unrelated\n"}, "Notes")

    [entry] = release_history(remote, "main", "ns/a")
    assert (entry.decision, entry.weights, entry.time) == ("advance", "v1=90,v2=10", evaluated)
    assert (entry.commit, entry.source, entry.reason) == (squash, "status", "release started")
    assert [e.commit for e in release_history(remote, "main")] == [squash]
