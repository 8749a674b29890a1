"""GitHub specifics through the engine's GitHub client against the loopback fake (tests/support/fake_forges.py).

Endpoints: GET/POST /repos/{o}/{r}/pulls (state=, head=, base=, sort=, direction=), GET /repos/{o}/{r}/pulls/{n},
POST /repos/{o}/{r}/pulls/{n}/requested_reviewers, under the Enterprise prefix /api/v3.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from policyengine.errors import ForgeError
from policyengine.gitops.forges import RetryPolicy, forge_from_url, open_or_update
from policyengine.gitops.forges.github import GitHubForge
from tests.support.fake_forges import FakeGitHub, running


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with running(FakeGitHub(f"ghp_{secrets.token_hex(16)}")) as fake:
        assert isinstance(fake, FakeGitHub)
        yield fake


def quick(fake: FakeGitHub, sleeps: list[float]) -> GitHubForge:
    return GitHubForge(
        fake.repository,
        fake.token,
        fake.api_url,
        sleep=sleeps.append,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )


def test_the_factory_reaches_github_enterprise_under_api_v3(github: FakeGitHub) -> None:
    forge = forge_from_url("github", github.api_url, github.repository, github.token)
    assert forge.find_open_pull_request("policyengine/prod/x", "main") is None
    listed = github.requests_to("GET", r"/api/v3/repos/acme/models/pulls")
    assert listed and listed[0].query["head"] == ["acme:policyengine/prod/x"]


def test_the_latest_pull_request_is_asked_for_newest_first_in_any_state(
    github: FakeGitHub,
) -> None:
    forge = quick(github, [])
    first = open_or_update(forge, "policyengine/prod/x", "main", "t", "b")
    github.close_by_person(first.number)
    second = open_or_update(forge, "policyengine/prod/x", "main", "t", "b")
    github.merge_by_person(second.number)

    latest = forge.latest_pull_request("policyengine/prod/x", "main")
    assert latest is not None and latest.number == second.number
    listed = github.requests_to("GET", r"/api/v3/repos/acme/models/pulls")[-1]
    assert {k: v for k, v in listed.query.items() if k != "per_page"} == {
        "state": ["all"],
        "head": ["acme:policyengine/prod/x"],
        "base": ["main"],
        "sort": ["created"],
        "direction": ["desc"],
    }


def test_org_team_reviewers_become_team_review_requests(github: FakeGitHub) -> None:
    pr = open_or_update(
        quick(github, []), "b", "main", "t", "body", (), ["alice", "acme/ml-reviewers"]
    )
    assert github.pulls[pr.number].reviewers == ["alice"]
    assert github.pulls[pr.number].team_reviewers == ["ml-reviewers"]


def test_a_primary_rate_limit_waits_until_the_reset(github: FakeGitHub) -> None:
    sleeps: list[float] = []
    reset = int(time.time()) + 30
    github.fail_next(
        403,
        {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        message="API rate limit exceeded for user ID 1.",
    )
    assert quick(github, sleeps).find_open_pull_request("b", "main") is None
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 30


def test_a_plain_403_is_a_missing_permission_and_not_retried(github: FakeGitHub) -> None:
    sleeps: list[float] = []
    github.fail_next(403, message="Resource not accessible by personal access token")
    with pytest.raises(ForgeError, match="Resource not accessible"):
        quick(github, sleeps).open_pull_request("b", "main", "t", "body")
    assert sleeps == []


def test_a_rate_limit_longer_than_the_engine_waits_fails_at_once(github: FakeGitHub) -> None:
    sleeps: list[float] = []
    github.fail_next(429, {"Retry-After": "3600"})
    forge = GitHubForge(
        github.repository,
        github.token,
        github.api_url,
        retry=RetryPolicy(max_delay=60),
        sleep=sleeps.append,
        seconds_between_requests=None,
    )
    with pytest.raises(ForgeError, match="rate limited for 3600s"):
        forge.find_open_pull_request("b", "main")
    assert sleeps == []
