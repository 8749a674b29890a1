"""GitHub's REST conventions, and a moved head refused at merge time, against the loopback fakes of
tests/support/fake_forges.py (GitHub, GitLab, Gitea stand-ins over real HTTP: no forge runs here).

The GitHub fake enforces what GitHub documents: `Accept: application/vnd.github+json` and a
supported `X-GitHub-Api-Version` on every request, labels as `{"labels": [...]}`, lists paged with a
`Link` header, a merge's `sha` checked against the head (409), reviewers only among collaborators
(422). Endpoints: GET/POST /repos/{o}/{r}/pulls, GET/PUT-merge /repos/{o}/{r}/pulls/{n},
GET /repos/{o}/{r}/pulls/{n}/reviews, POST /repos/{o}/{r}/pulls/{n}/requested_reviewers,
POST /repos/{o}/{r}/issues/{n}/labels; GitLab PUT .../merge_requests/{iid}[/merge]; Gitea
POST .../pulls/{n}/merge.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from policyengine.errors import ForgeConflictError
from policyengine.gitops.forges import RetryPolicy, forge_from_url, open_or_update
from policyengine.gitops.forges.github import GitHubForge
from tests.support.fake_forges import FakeForge, FakeGitea, FakeGitHub, FakeGitLab, running

HEAD = "policyengine/prod/fraud-detector"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with running(FakeGitHub(f"ghp_{secrets.token_hex(16)}")) as fake:
        assert isinstance(fake, FakeGitHub)
        yield fake


def quick(fake: FakeGitHub) -> GitHubForge:
    return GitHubForge(
        fake.repository,
        fake.token,
        fake.api_url,
        sleep=lambda _: None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def test_every_github_request_follows_the_documented_conventions(github: FakeGitHub) -> None:
    forge = quick(github)
    pull = open_or_update(forge, HEAD, "main", "advance", "evidence", ["release"], ["alice"])
    forge.merge(pull.number, pull.head_sha)

    assert not github.bad_requests, github.bad_requests
    [labelled] = github.requests_to("POST", r".*/issues/\d+/labels")
    assert labelled.body == {"labels": ["release"]}
    [merged] = github.requests_to("PUT", r".*/pulls/\d+/merge")
    assert merged.body == {"sha": pull.head_sha}
    assert github.pulls[pull.number].merged


def test_lists_follow_the_link_header_and_send_the_token_only_to_the_configured_host(
    github: FakeGitHub,
) -> None:
    # A GitHub Enterprise behind another hostname names that host in its links and `url` fields
    # (PyGithub failed there with an AssertionError), and ignores the head filter.
    github.public_api_url = "https://github.proxy.invalid/api/v3"
    github.ignore_list_filters = True
    for index in range(150):
        github._new_pull(f"policyengine/team/model-{index}", "main", "t", "b")

    # Newest first, 100 a page: the oldest pull request is on the second page.
    found = quick(github).find_open_pull_request("policyengine/team/model-0", "main")
    assert found is not None and found.number == 1
    pages = [r.query.get("page") for r in github.requests_to("GET", r"/api/v3/.*/pulls")]
    assert pages == [None, ["2"]], pages
    assert github.unauthorized == 0 and not github.bad_requests


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_a_merge_is_refused_when_someone_pushed_after_the_decision(kind: str) -> None:
    fakes: dict[str, type[FakeForge]] = {
        "github": FakeGitHub,
        "gitlab": FakeGitLab,
        "gitea": FakeGitea,
    }
    token = f"tok-{secrets.token_hex(12)}"
    with running(fakes[kind](token)) as fake:
        forge = forge_from_url(
            kind, fake.api_url, fake.repository, token, retry=RetryPolicy(), sleep=lambda _: None
        )
        pull = open_or_update(forge, HEAD, "main", "rollback", "evidence")
        assert pull.head_sha
        fake.push_by_person(pull.number)

        with pytest.raises(ForgeConflictError, match="no longer"):
            forge.merge(pull.number, pull.head_sha)
        assert not fake.pulls[pull.number].merged

        now = forge.pull_request(pull.number)
        forge.merge(pull.number, now.head_sha)
        assert fake.pulls[pull.number].merged


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_labels_and_reviewers_missing_on_an_open_pull_request_are_added(kind: str) -> None:
    fakes: dict[str, type[FakeForge]] = {
        "github": FakeGitHub,
        "gitlab": FakeGitLab,
        "gitea": FakeGitea,
    }
    token = f"tok-{secrets.token_hex(12)}"
    with running(fakes[kind](token)) as fake:
        forge = forge_from_url(
            kind, fake.api_url, fake.repository, token, retry=RetryPolicy(), sleep=lambda _: None
        )
        # Opened by a pass that stopped before labelling it.
        bare = open_or_update(forge, HEAD, "main", "advance", "evidence")
        assert fake.pulls[bare.number].labels == [] and fake.pulls[bare.number].reviewers == []

        again = open_or_update(forge, HEAD, "main", "advance", "evidence", ["release"], ["alice"])
        assert again.number == bare.number
        assert fake.pulls[bare.number].labels == ["release"]
        assert fake.pulls[bare.number].reviewers == ["alice"]

        # Nothing missing: nothing written.
        writes = len([r for r in fake.seen if r.method != "GET"])
        open_or_update(forge, HEAD, "main", "advance", "evidence", ["release"], ["alice"])
        assert len([r for r in fake.seen if r.method != "GET"]) == writes


def test_a_reviewer_who_is_not_a_collaborator_is_a_warning_and_the_others_are_asked(
    github: FakeGitHub,
) -> None:
    github.collaborators = {"alice"}
    forge = quick(github)
    pull = forge.open_pull_request(HEAD, "main", "advance", "evidence")

    warnings = forge.complete_pull_request(pull, ["release"], ["alice", "mallory"])
    assert len(warnings) == 1 and "mallory" in warnings[0] and "collaborator" in warnings[0]
    assert github.pulls[pull.number].reviewers == ["alice"]
    assert github.pulls[pull.number].labels == ["release"]


def test_no_one_is_asked_again_once_the_pull_request_was_reviewed(github: FakeGitHub) -> None:
    forge = quick(github)
    pull = open_or_update(forge, HEAD, "main", "advance", "evidence", (), ["alice"])
    github.review_by_person(pull.number, "alice")

    open_or_update(forge, HEAD, "main", "advance", "evidence", (), ["alice"])
    assert github.pulls[pull.number].reviewers == []
    assert len(github.requests_to("POST", r".*/requested_reviewers")) == 1
