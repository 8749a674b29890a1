"""Push semantics against a real bare remote with receive.denyNonFastForwards: fetch, replay,
retry; a human commit on the same lines wins; never a force push."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from policyengine.errors import GitError
from policyengine.gitops.commits import engine_commit_message, policies_of
from policyengine.gitops.repo import Workspace
from tests.support.gitrepos import git, human_push, make_remote, remote_file, remote_log

ENGINE = ("policyengine", "policyengine@example.com")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LONG_MANIFEST = "".join(f"line {i}\n" for i in range(40))
FILES = {
    "manifests/fraud.yaml": "# fraud route\nweights:\n  v1: 100\n  v2: 0\n",
    "manifests/churn.yaml": "# churn route\nweights:\n  v1: 100\n  v2: 0\n",
    "manifests/long.yaml": LONG_MANIFEST,
    "README.md": "config repo\n",
}
FRAUD_90 = b"# fraud route\nweights:\n  v1: 90\n  v2: 10\n"
CHURN_90 = b"# churn route\nweights:\n  v1: 90\n  v2: 10\n"


def _message(policy: str, weights: str = "v1=90,v2=10") -> str:
    return engine_commit_message(policy, "advance", weights, "step due", NOW)


def _no_sleep(_: float) -> None:
    pass


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    return make_remote(tmp_path, FILES)


def _open(remote: Path, tmp_path: Path) -> Workspace:
    return Workspace.open(remote, tmp_path / "cache", sleep=_no_sleep)


def _is_ancestor(remote: Path, ancestor: str, descendant: str = "main") -> bool:
    merge_base = git(remote, "merge-base", ancestor, descendant).strip()
    return merge_base == ancestor


def test_push_fast_forward(remote: Path, tmp_path: Path) -> None:
    workspace = _open(remote, tmp_path)
    sha = workspace.commit({"manifests/fraud.yaml": FRAUD_90}, _message("risk/fraud"), ENGINE, NOW)
    result = workspace.push()
    assert result.pushed and result.commits == (sha,) and result.attempts == 1
    assert result.dropped == ()
    assert remote_log(remote)[-1].sha == sha
    assert workspace.pushes == 1
    assert workspace.unpushed() == []


def test_nothing_to_push_runs_no_push(remote: Path, tmp_path: Path) -> None:
    workspace = _open(remote, tmp_path)
    result = workspace.push()
    assert (result.pushed, result.commits, result.attempts) == (False, (), 0)
    assert workspace.pushes == 0


def test_human_push_between_fetch_and_push_is_kept(remote: Path, tmp_path: Path) -> None:
    workspace = _open(remote, tmp_path)
    engine_sha = workspace.commit(
        {"manifests/fraud.yaml": FRAUD_90}, _message("risk/fraud"), ENGINE, NOW
    )
    human = human_push(remote, tmp_path / "humans", {"README.md": "edited by a human\n"}, "Docs")

    result = workspace.push()

    assert result.pushed and result.attempts == 2 and result.dropped == ()
    log = remote_log(remote)
    assert [c.sha for c in log[-2:-1]] == [human]  # the human commit, untouched, first
    replayed = log[-1]
    assert replayed.sha == result.commits[0] != engine_sha
    assert policies_of(replayed.message) == ("risk/fraud",)
    assert remote_file(remote, "manifests/fraud.yaml").encode() == FRAUD_90
    assert remote_file(remote, "README.md") == "edited by a human\n"
    assert workspace.head() == replayed.sha
    assert git(workspace.root, "status", "--porcelain") == ""
    assert workspace.read("README.md") == b"edited by a human\n"


def test_human_edit_elsewhere_in_the_same_file_merges(remote: Path, tmp_path: Path) -> None:
    workspace = _open(remote, tmp_path)
    engine_version = LONG_MANIFEST.replace("line 35\n", "line 35 engine\n")
    workspace.commit(
        {"manifests/long.yaml": engine_version.encode()}, _message("risk/long"), ENGINE, NOW
    )
    human_version = LONG_MANIFEST.replace("line 2\n", "line 2 human\n")
    human = human_push(remote, tmp_path / "humans", {"manifests/long.yaml": human_version}, "Tweak")

    result = workspace.push()

    assert result.pushed and result.dropped == ()
    merged = remote_file(remote, "manifests/long.yaml")
    assert "line 2 human\n" in merged and "line 35 engine\n" in merged
    assert _is_ancestor(remote, human)


def test_human_wins_on_the_same_lines(remote: Path, tmp_path: Path) -> None:
    workspace = _open(remote, tmp_path)
    fraud = workspace.commit(
        {"manifests/fraud.yaml": FRAUD_90}, _message("risk/fraud"), ENGINE, NOW
    )
    later = NOW + timedelta(minutes=5)
    workspace.commit(
        {"manifests/fraud.yaml": FRAUD_90.replace(b"90", b"50").replace(b"10", b"50")},
        _message("risk/fraud", "v1=50,v2=50"),
        ENGINE,
        later,
    )
    workspace.commit({"manifests/churn.yaml": CHURN_90}, _message("risk/churn"), ENGINE, NOW)
    human_fraud = "# fraud route\nweights:\n  v1: 100\n  v2: 0  # frozen by on-call\n"
    human = human_push(
        remote, tmp_path / "humans", {"manifests/fraud.yaml": human_fraud}, "Freeze fraud"
    )

    result = workspace.push()

    assert result.pushed
    assert result.dropped_policies == ("risk/fraud",)
    assert len(result.dropped) == 2
    assert result.dropped[0].commit == fraud
    assert "manifests/fraud.yaml" in result.dropped[0].reason
    assert len(result.commits) == 1
    assert remote_file(remote, "manifests/fraud.yaml") == human_fraud
    assert remote_file(remote, "manifests/churn.yaml").encode() == CHURN_90
    assert _is_ancestor(remote, human)
    assert [policies_of(c.message) for c in remote_log(remote)[-1:]] == [("risk/churn",)]


def test_all_engine_commits_dropped_pushes_nothing(remote: Path, tmp_path: Path) -> None:
    workspace = _open(remote, tmp_path)
    workspace.commit({"manifests/fraud.yaml": FRAUD_90}, _message("risk/fraud"), ENGINE, NOW)
    human = human_push(
        remote, tmp_path / "humans", {"manifests/fraud.yaml": "weights: {}\n"}, "Rewrite"
    )
    result = workspace.push()
    assert not result.pushed and result.dropped_policies == ("risk/fraud",)
    assert remote_log(remote)[-1].sha == human
    assert workspace.head() == human
    assert workspace.unpushed() == []


def test_same_change_made_by_a_human_is_not_duplicated(remote: Path, tmp_path: Path) -> None:
    workspace = _open(remote, tmp_path)
    workspace.commit({"manifests/fraud.yaml": FRAUD_90}, _message("risk/fraud"), ENGINE, NOW)
    human = human_push(
        remote, tmp_path / "humans", {"manifests/fraud.yaml": FRAUD_90.decode()}, "Same"
    )
    result = workspace.push()
    assert not result.pushed and result.dropped == ()
    assert remote_log(remote)[-1].sha == human


RACING_HOOK = """#!/bin/sh
# A person who always pushes first: move the branch before our update is applied.
unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES
export GIT_AUTHOR_NAME=Racer GIT_AUTHOR_EMAIL=racer@example.com
export GIT_COMMITTER_NAME=Racer GIT_COMMITTER_EMAIL=racer@example.com
old=$(git rev-parse refs/heads/main)
new=$(git commit-tree -p "$old" -m "racing human" "$old^{tree}")
git update-ref refs/heads/main "$new" "$old"
exit 0
"""


def test_retries_are_bounded_then_a_clear_error(remote: Path, tmp_path: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(RACING_HOOK)
    hook.chmod(0o755)
    sleeps: list[float] = []
    workspace = Workspace.open(remote, tmp_path / "cache", sleep=sleeps.append)
    workspace.commit({"manifests/fraud.yaml": FRAUD_90}, _message("risk/fraud"), ENGINE, NOW)

    with pytest.raises(GitError) as raised:
        workspace.push(max_attempts=3)

    assert "rejected 3 times" in str(raised.value)
    assert workspace.pushes == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] * 0.3  # backoff grows (with jitter)
    racers = [c for c in remote_log(remote) if c.subject == "racing human"]
    assert len(racers) == 3  # every human commit still on the branch: nothing was forced
    assert all(c.author_email != ENGINE[1] for c in remote_log(remote))


def test_a_refusing_hook_is_not_retried(remote: Path, tmp_path: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    workspace = _open(remote, tmp_path)
    workspace.commit({"manifests/fraud.yaml": FRAUD_90}, _message("risk/fraud"), ENGINE, NOW)
    with pytest.raises(GitError) as raised:
        workspace.push()
    assert "refused" in str(raised.value)
    assert workspace.pushes == 1
