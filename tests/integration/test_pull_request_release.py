"""A canary released through pull requests on GitHub, GitLab and Gitea, end to end.

Real git: a bare remote served over smart HTTP with a token (`git http-backend`), the engine's
clone, human clones. Real Prometheus: a simulated fleet serves what the remote's main branch says
and remote-writes each minute. The forges are the loopback fakes of tests/support/fake_forges.py,
reached by the production clients (the engine's own on requests, python-gitlab) over HTTP, and the
endpoints they fake are:

- GitHub (/api/v3): GET/POST /repos/{o}/{r}/pulls (open, or all newest first), GET/PATCH/PUT-merge /repos/{o}/{r}/pulls/{n},
  POST /repos/{o}/{r}/pulls/{n}/requested_reviewers, POST /repos/{o}/{r}/issues/{n}/labels;
- GitLab (/api/v4): GET/POST /projects/{id}/merge_requests (opened, or all newest first), GET/PUT /projects/{id}/merge_requests/
  {iid}, PUT .../merge, GET /users?username=;
- Gitea (/api/v1): GET/POST /repos/{o}/{r}/pulls (open or all, paged), GET/PATCH /repos/{o}/{r}/pulls/{n}, POST .../merge,
  POST .../requested_reviewers, GET /repos/{o}/{r}/labels, POST /repos/{o}/{r}/issues/{n}/labels.

A merge through a fake's API (a person's, or the engine's autoMerge) also merges the branch into
the bare remote's main for real, with `git merge --no-ff`, at a pinned time.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from policyengine.cli import main
from policyengine.gitops.forges.backoff import DEFAULT_RETRY
from policyengine.metrics.remote_write import RemoteWriteClient
from policyengine.sim.exposition import Exposition
from policyengine.sim.fleet import Fleet, FleetState
from policyengine.sim.manifests import split_in_manifest
from policyengine.sim.writer import FleetWriter
from tests.support.fake_forges import FakeForge, FakeGitea, FakeGitHub, FakeGitLab, FakePull
from tests.support.gitrepos import GitHttpServer, git, serve_git_over_http
from tests.support.incidents import (
    ERROR_RATE,
    MINUTE,
    POLICY,
    SERVICE,
    STATUS,
    T0,
    canary_policy,
    fleet,
    policy_model,
    release_repo,
    version,
)
from tests.support.prometheus import PrometheusServer
from tests.support.release_repos import ReleaseRepo, rfc3339, trailers_of

pytestmark = pytest.mark.prometheus

BRANCH = f"policyengine/{POLICY}"
# The evidence table's header: columns may be added to the report, these are the contract.
TABLE_HEADER = re.compile(
    r"^\| version \| objective \|.*verdict \| estimate \| interval \|.*samples", re.M
)
RPS = 200.0


class RealMerge:
    """Mixed into a fake forge: a merge also merges the branch into the bare remote's main."""

    remote: Path
    scratch: Path
    merge_at: datetime

    def _merge(self, pull: FakePull) -> None:
        super()._merge(pull)  # type: ignore[misc]
        work = self.scratch / f"merge-{pull.number}-{secrets.token_hex(4)}"
        git(self.scratch, "clone", "--quiet", str(self.remote), str(work))
        git(work, "fetch", "--quiet", "origin", f"refs/heads/{pull.head}")
        stamp = f"{int(self.merge_at.timestamp())} +0000"
        env = {**os.environ, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}
        subprocess.run(
            ["git", "merge", "--quiet", "--no-ff", "-m", f"Merge pull request #{pull.number}",
             "FETCH_HEAD"],
            cwd=work, env=env, check=True, capture_output=True,
        )  # fmt: skip
        git(work, "push", "--quiet", "origin", "HEAD:refs/heads/main")
        pull.merge_commit_sha = git(work, "rev-parse", "HEAD").strip()

    def branch_head(self, pull: FakePull) -> str:
        """The proposal branch's head in the bare remote: what a merge's `sha` must match."""
        return git(self.remote, "rev-parse", f"refs/heads/{pull.head}").strip()


class MergingGitHub(RealMerge, FakeGitHub):
    pass


class MergingGitLab(RealMerge, FakeGitLab):
    pass


class MergingGitea(RealMerge, FakeGitea):
    pass


FORGES: dict[str, type[FakeForge]] = {
    "github": MergingGitHub,
    "gitlab": MergingGitLab,
    "gitea": MergingGitea,
}
REVIEWERS = {"github": ["alice"], "gitlab": ["alice"], "gitea": ["alice"]}


def pull_request_policy(**write_back: Any) -> str:
    """The ModelMesh canary with an error-rate objective, steps 10/20/50, 5m dwell, PR mode."""
    text = canary_policy([ERROR_RATE], steps=(10, 20, 50), min_dwell="5m")
    yaml = YAML(typ="rt")
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(text)
    document["spec"]["writeBack"] = {"mode": "pullRequest", "pullRequest": write_back}
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


@dataclass
class PullRequestRelease:
    """The remote over HTTP, the forge, the fleet feeding Prometheus, and the engine's CLI."""

    kind: str
    repo: ReleaseRepo
    git_http: GitHttpServer
    git_token: str
    forge: FakeForge
    prometheus_url: str
    fleet: Fleet
    outputs: list[str]

    def __post_init__(self) -> None:
        self.policy = policy_model(self.repo.file("policy.yaml"))
        self._writer = FleetWriter(
            RemoteWriteClient(self.prometheus_url), self.fleet, (Exposition.MODELMESH,)
        )
        self._rng = random.Random(5)
        self.state: FleetState = self.fleet.start(T0)
        self._writer.write(self.state)
        self.minute = 0

    def serve_until(self, minute: int) -> None:
        """The fleet serves main's weights (Argo CD applies at once) minute by minute."""
        while self.minute < minute:
            split = split_in_manifest(self.policy, self.repo.file(SERVICE), SERVICE)
            self.state, _ = self.fleet.advance(self.state, {POLICY: split}, self._rng)
            self._writer.write(self.state)
            self.minute += 1

    def args(self, minute: int) -> list[str]:
        return [
            "--repo", self.git_http.url_of("remote.git"),
            "--cache-dir", str(self.repo.cache),
            "--prometheus", self.prometheus_url,
            "--now", rfc3339(T0 + minute * MINUTE),
            "--forge", self.kind,
            "--forge-url", self.forge.api_url,
            "--forge-repo", self.forge.repository,
        ]  # fmt: skip

    def run(self, command: str, minute: int, *extra: str, expect_exit: int = 0) -> Result:
        self.serve_until(minute)
        self.forge.merge_at = T0 + minute * MINUTE  # type: ignore[attr-defined]
        args = [command, *(["--once"] if command == "reconcile" else []), *self.args(minute)]
        result = CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)
        self.outputs.append(result.output)
        assert result.exit_code == expect_exit, (result.exit_code, result.output)
        return result

    def branch_log(self) -> list[str]:
        return git(self.repo.remote, "rev-list", "--first-parent", f"refs/heads/{BRANCH}").split()

    def merge_at(self, minute: int, number: int) -> None:
        self.forge.merge_at = T0 + minute * MINUTE  # type: ignore[attr-defined]
        self.forge.merge_by_person(number)


@pytest.fixture(params=sorted(FORGES))
def release(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    prometheus_server: PrometheusServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[PullRequestRelease]:
    kind: str = request.param
    prometheus_server.start()
    repo = release_repo(
        tmp_path / "srv",
        pull_request_policy(labels=["release"], reviewers=REVIEWERS[kind], autoMerge=["rollback"]),
    )
    git_token = f"gittok-{secrets.token_hex(12)}"
    forge_token = f"forgetok-{secrets.token_hex(12)}"
    monkeypatch.setenv("POLICYENGINE_GIT_TOKEN", git_token)
    monkeypatch.setenv("POLICYENGINE_FORGE_TOKEN", forge_token)
    fake = FORGES[kind](forge_token)
    fake.remote = repo.remote  # type: ignore[attr-defined]
    fake.scratch = tmp_path  # type: ignore[attr-defined]
    simulated = fleet(version("v1", "fraud-detector-v1"), version("v2", "fraud-detector-v2"), RPS)
    fake.start()
    try:
        with serve_git_over_http(tmp_path / "srv", git_token) as git_http:
            yield PullRequestRelease(
                kind, repo, git_http, git_token, fake, prometheus_server.url, simulated, []
            )
    finally:
        fake.stop()


def test_a_release_goes_through_one_pull_request_per_step(
    release: PullRequestRelease, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    forge, repo = release.forge, release.repo
    main_before = repo.head()

    # The first step: one pull request, main untouched, the evidence in the body.
    first = release.run("reconcile", 0)
    assert repo.head() == main_before, "the engine must not touch main in pullRequest mode"
    assert len(forge.pulls) == 1 and forge.open_pulls(BRANCH)
    pull = forge.pulls[1]
    assert pull.title == f"policyengine: {POLICY} advance v1=90,v2=10"
    assert TABLE_HEADER.search(pull.body) and "### The release so far" in pull.body
    assert pull.labels == ["release"] and pull.reviewers == ["alice"]
    assert "opened pull request #1" in first.output
    [proposed] = release.branch_log()[:1]
    trailers = trailers_of(git(repo.remote, "log", "-1", "--format=%B", proposed))
    assert (trailers["Policy"], trailers["Decision"], trailers["Weights"]) == (
        POLICY,
        "advance",
        "v1=90,v2=10",
    )

    # The same decision a pass later: no new commit, still one pull request.
    release.run("reconcile", 1)
    assert release.branch_log()[0] == proposed and len(forge.pulls) == 1

    # A person edits the policy on main before merging: the decision changes, the same pull
    # request follows it with a commit on top of the branch (main merged in), never a force push.
    repo.human_push(
        {"policy.yaml": repo.file("policy.yaml").replace("- 10\n", "- 15\n")}, "first step 15 %"
    )
    release.run("reconcile", 2)
    assert len(forge.pulls) == 1, "a changed decision updates the pull request, never a second"
    assert pull.title == f"policyengine: {POLICY} advance v1=85,v2=15"
    updated = release.branch_log()[0]
    git(repo.remote, "merge-base", "--is-ancestor", proposed, updated)
    git(repo.remote, "merge-base", "--is-ancestor", repo.head(), updated)
    assert repo.head() != updated and repo.engine_commits(since=main_before) == []

    # Merged at minute 3: the step is live from then on, and its 5m dwell starts there.
    release.merge_at(3, 1)
    # `history` shows the proposal replaced before the merge as such, and the merged one.
    shown = CliRunner().invoke(
        main,
        ["history", POLICY, "--repo", str(repo.remote), "--cache-dir",
         str(repo.cache.parent / "history-cache"), "--output", "json"],
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert [(e["weights"], e["replaced"]) for e in json.loads(shown.output)] == [
        ("v1=90,v2=10", True),
        ("v1=85,v2=15", False),
    ]
    assert repo.file(STATUS) == git(repo.remote, "show", f"{updated}:{STATUS}")
    early = release.run("reconcile", 7)
    assert f"{POLICY}: hold" in early.output and "held 4m" in early.output, early.output
    assert len(forge.pulls) == 1

    # Dwell done: the next step opens a new pull request (the first one is merged).
    release.run("reconcile", 9)
    assert len(forge.pulls) == 2 and [p.number for p in forge.open_pulls()] == [2]
    second = forge.pulls[2]
    assert second.title == f"policyengine: {POLICY} advance v1=80,v2=20"
    assert TABLE_HEADER.search(second.body) and "| v2 | error-rate |" in second.body

    # Closed without merging: the release holds and says why, and nothing else is opened.
    forge.close_by_person(2)
    held = release.run("reconcile", 12)
    assert "closed without merging" in held.output
    assert len(forge.pulls) == 2 and not forge.open_pulls()
    plan = release.run("plan", 13)
    assert "closed without merging" in plan.output

    # A token never appears in a commit, the logs, or anything printed.
    everything = git(repo.remote, "log", "-p", "--all") + "\n".join(release.outputs) + caplog.text
    everything += "\n".join(p.body + p.title for p in forge.pulls.values())
    everything += (repo.cache / ".git" / "config").read_text()
    for token in (release.git_token, forge.token):
        assert token not in everything
    assert any(a.startswith("Basic ") for a in release.git_http.seen_authorizations)
    assert forge.unauthorized == 0 and not forge.bad_requests


def fail_opening(release: PullRequestRelease) -> None:
    """The forge answers 500 to every attempt to open a pull request in the next pass: the engine
    has pushed the branch by then, as when it dies between the push and the open."""
    release.forge.fail_next(
        500,
        {"Retry-After": "0"},
        "Internal Server Error",
        times=DEFAULT_RETRY.max_attempts,
        method="POST",
        path=r".*/(pulls|merge_requests)",
    )


def test_a_branch_pushed_without_its_pull_request_gets_one_on_the_next_pass(
    release: PullRequestRelease, caplog: pytest.LogCaptureFixture
) -> None:
    forge, repo = release.forge, release.repo
    main_before = repo.head()

    # The first step: the branch is pushed, the pull request is not opened.
    fail_opening(release)
    # A forge outage while writing is a dependency unreachable (3), as before deciding; said once.
    failed = release.run("reconcile", 0, expect_exit=3)
    assert failed.output.count(f"{POLICY}: pull request not written") == 1, failed.output
    [proposed] = release.branch_log()[:1]
    assert forge.pulls == {} and repo.head() == main_before

    # The next pass opens it (the branch never had one): exactly one, no hold, no new commit.
    opened = release.run("reconcile", 1)
    assert "closed without merging" not in opened.output
    assert "opened pull request #1" in opened.output, opened.output
    assert list(forge.pulls) == [1] and forge.pulls[1].state == "open"
    assert forge.pulls[1].title == f"policyengine: {POLICY} advance v1=90,v2=10"
    assert forge.pulls[1].labels == ["release"] and forge.pulls[1].reviewers == ["alice"]
    assert release.branch_log()[0] == proposed

    # The next step, after the first was merged: pushed on top of the branch, not opened. The
    # branch's latest pull request is the merged one, which is no reason to hold either.
    release.merge_at(2, 1)
    fail_opening(release)
    release.run("reconcile", 8, expect_exit=3)
    assert len(forge.pulls) == 1 and release.branch_log()[0] != proposed
    caplog.clear()
    reopened = release.run("reconcile", 9)
    assert "closed without merging" not in reopened.output
    assert "opened pull request #2" in reopened.output, reopened.output
    assert len(forge.pulls) == 2 and [p.number for p in forge.open_pulls(BRANCH)] == [2]
    assert forge.pulls[2].title == f"policyengine: {POLICY} advance v1=80,v2=20"
    assert "#1 was merged and the branch moved on" in caplog.text
    assert any(r.query.get("state") == ["all"] for r in forge.requests_to("GET", r".*"))
    assert forge.unauthorized == 0 and not forge.bad_requests


@pytest.mark.parametrize("release", ["gitea"], indirect=True)
def test_a_rollback_the_policy_marks_safe_is_merged_at_once(release: PullRequestRelease) -> None:
    forge, repo = release.forge, release.repo
    release.run("reconcile", 0)
    release.merge_at(1, 1)
    # From minute 1 the candidate fails one request in five.
    release.fleet = fleet(
        version("v1", "fraud-detector-v1"),
        version("v2", "fraud-detector-v2", error_rate=0.2),
        RPS,
    )
    result = release.run("reconcile", 4)
    assert "merged pull request #2" in result.output, result.output
    rollback = forge.pulls[2]
    assert rollback.merged and rollback.title == f"policyengine: {POLICY} rollback v1=100,v2=0"
    assert "❌ fail" in rollback.body and "(`autoMerge`)" in rollback.body
    assert split_in_manifest(release.policy, repo.file(SERVICE), SERVICE).as_dict() == {
        "v1": 100,
        "v2": 0,
    }
    # The release is over: nothing more is proposed.
    release.run("reconcile", 5)
    assert len(forge.pulls) == 2


@pytest.mark.parametrize("release", ["github"], indirect=True)
def test_a_forge_client_failure_is_that_policys_error_and_the_next_pass_recovers(
    release: PullRequestRelease,
) -> None:
    forge = release.forge
    # A garbled answer makes the client itself fail (not an HTTP error the engine expects).
    forge.answer_next(200, [{"number": "seven", "head": "x"}], method="GET", path=r".*/pulls")
    failed = release.run("reconcile", 0, expect_exit=1)
    assert f"{POLICY}: pull request not written: unexpected " in failed.output, failed.output
    assert "Traceback" not in failed.output and forge.token not in failed.output
    assert forge.pulls == {}

    opened = release.run("reconcile", 1)
    assert "opened pull request #1" in opened.output, opened.output

    # The same while reading the pull request before deciding: that policy's error, no crash.
    forge.answer_next(200, [{"number": 1, "head": "x"}], method="GET", path=r".*/pulls")
    gated = release.run("reconcile", 2, expect_exit=1)
    assert "cannot read the pull request" in gated.output and "unexpected" in gated.output
    assert forge.token not in gated.output
    assert release.run("reconcile", 3).exit_code == 0


@pytest.mark.parametrize("release", ["github", "gitea"], indirect=True)
def test_a_partly_opened_pull_request_is_repaired_and_a_refused_reviewer_is_a_warning(
    release: PullRequestRelease,
) -> None:
    forge = release.forge
    # The labels cannot be written while the pull request is opened: an outage (exit 3), but
    # the pull request is written.
    forge.fail_next(
        503, {"Retry-After": "0"}, times=DEFAULT_RETRY.max_attempts, method="POST",
        path=r".*/issues/\d+/labels",
    )  # fmt: skip
    partly = release.run("reconcile", 0, expect_exit=3)
    assert "opened pull request #1" in partly.output, partly.output
    assert "not written" not in partly.output
    assert "warning: labels and review requests not set" in partly.output
    assert forge.pulls[1].labels == [] and forge.pulls[1].reviewers == []

    # The next pass puts them on; a reviewer the forge refuses is only a warning.
    if isinstance(forge, FakeGitHub):
        forge.collaborators = {"alice"}
    repaired = release.run("reconcile", 1)
    assert forge.pulls[1].labels == ["release"] and forge.pulls[1].reviewers == ["alice"]
    assert len(forge.pulls) == 1 and "warning" not in repaired.output, repaired.output


@pytest.mark.parametrize("release", ["github"], indirect=True)
def test_a_reviewer_the_forge_refuses_is_a_warning_not_a_failure(
    release: PullRequestRelease,
) -> None:
    forge, repo = release.forge, release.repo
    assert isinstance(forge, FakeGitHub)
    forge.collaborators = {"alice"}
    yaml = YAML(typ="rt")
    document = yaml.load(repo.file("policy.yaml"))
    document["spec"]["writeBack"]["pullRequest"]["reviewers"].append("mallory")
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    repo.human_push({"policy.yaml": buffer.getvalue()}, "mallory reviews too")
    result = release.run("reconcile", 0)
    assert "opened pull request #1" in result.output and "not written" not in result.output
    assert "warning: review request for mallory refused" in result.output, result.output
    assert forge.pulls[1].reviewers == ["alice"] and forge.pulls[1].labels == ["release"]


@pytest.mark.parametrize("release", ["github"], indirect=True)
def test_an_auto_merge_never_merges_a_push_it_did_not_decide_on(
    release: PullRequestRelease, tmp_path: Path
) -> None:
    forge, repo = release.forge, release.repo
    assert isinstance(forge, FakeGitHub)
    release.run("reconcile", 0)
    release.merge_at(1, 1)
    release.fleet = fleet(
        version("v1", "fraud-detector-v1"),
        version("v2", "fraud-detector-v2", error_rate=0.2),
        RPS,
    )

    def someone_pushes(pull: FakePull) -> None:
        work = tmp_path / "person"
        git(tmp_path, "clone", "--quiet", "--branch", pull.head, str(repo.remote), str(work))
        (work / "NOTES.md").write_text("a person's change on the proposal branch\n")
        git(work, "add", "NOTES.md")
        git(work, "-c", "user.name=Person", "-c", "user.email=person@example.invalid",
            "commit", "--quiet", "-m", "a person's commit")  # fmt: skip
        git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{pull.head}")
        forge.before_merge = None

    forge.before_merge = someone_pushes
    held = release.run("reconcile", 4)
    assert "not merged: its head is no longer" in held.output, held.output
    assert "holding, the next pass plans again" in held.output
    assert not forge.pulls[2].merged
    assert split_in_manifest(release.policy, repo.file(SERVICE), SERVICE).as_dict()["v2"] > 0

    # The next pass decides again on top of the person's commit, and merges what it decided on.
    again = release.run("reconcile", 5)
    assert "merged pull request #2" in again.output, again.output
    assert forge.pulls[2].merged
    merged_head = release.branch_log()[0]
    assert trailers_of(git(repo.remote, "log", "-1", "--format=%B", merged_head))["Decision"] == (
        "rollback"
    )
    assert split_in_manifest(release.policy, repo.file(SERVICE), SERVICE).as_dict()["v2"] == 0
