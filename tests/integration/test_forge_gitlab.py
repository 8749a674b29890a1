"""GitLab specifics through python-gitlab against the loopback fake (tests/support/fake_forges.py).

Endpoints: GET/POST /api/v4/projects/:id/merge_requests (id a URL-encoded group/subgroup/project;
the list with state=, source_branch=, target_branch=, order_by=, sort=),
GET /api/v4/users?username=.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from policyengine.gitops.forges import forge_from_url, open_or_update
from tests.support.fake_forges import FakeGitLab, running


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    with running(FakeGitLab(f"glpat-{secrets.token_hex(12)}")) as fake:
        assert isinstance(fake, FakeGitLab)
        yield fake


def test_a_subgroup_project_and_an_api_v4_url_are_accepted(gitlab: FakeGitLab) -> None:
    forge = forge_from_url("gitlab", gitlab.api_url, "ml/platform/models", gitlab.token)
    pr = open_or_update(forge, "b", "main", "t", "body", ["release", "policyengine"], ["bob"])

    assert gitlab.pulls[pr.number].labels == ["release", "policyengine"]
    assert gitlab.reviewer_ids[pr.number] == [12]
    assert gitlab.requests_to("POST", r"/api/v4/projects/ml%2Fplatform%2Fmodels/merge_requests")


def test_the_latest_merge_request_is_asked_for_newest_first_in_any_state(
    gitlab: FakeGitLab,
) -> None:
    forge = forge_from_url("gitlab", gitlab.root_url, gitlab.repository, gitlab.token)
    first = open_or_update(forge, "policyengine/prod/x", "main", "t", "b")
    gitlab.merge_by_person(first.number)
    second = open_or_update(forge, "policyengine/prod/x", "main", "t", "b")
    gitlab.close_by_person(second.number)

    latest = forge.latest_pull_request("policyengine/prod/x", "main")
    assert latest is not None and (latest.number, latest.state) == (second.number, "closed")
    listed = gitlab.requests_to("GET", r"/api/v4/projects/ml%2Fplatform%2Fmodels/merge_requests")
    assert {k: v for k, v in listed[-1].query.items() if k != "per_page"} == {
        "state": ["all"],
        "source_branch": ["policyengine/prod/x"],
        "target_branch": ["main"],
        "order_by": ["created_at"],
        "sort": ["desc"],
    }


def test_an_unknown_reviewer_is_a_warning_and_the_others_are_asked(gitlab: FakeGitLab) -> None:
    forge = forge_from_url("gitlab", gitlab.root_url, gitlab.repository, gitlab.token)
    pull = open_or_update(forge, "b", "main", "t", "body", ["release"], ["carol", "alice"])
    assert gitlab.pulls[pull.number].reviewers == ["alice"]
    assert gitlab.pulls[pull.number].labels == ["release"]
    warnings = forge.complete_pull_request(forge.pull_request(pull.number), [], ["carol"])
    assert len(warnings) == 1 and "no user 'carol'" in warnings[0]


def test_ratelimit_reset_is_honoured(gitlab: FakeGitLab) -> None:
    sleeps: list[float] = []
    gitlab.fail_next(
        429, {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + 20)}
    )
    forge = forge_from_url(
        "gitlab", gitlab.root_url, gitlab.repository, gitlab.token, sleep=sleeps.append
    )
    assert forge.find_open_pull_request("b", "main") is None
    assert len(sleeps) == 1 and 15 <= sleeps[0] <= 20
