"""The Forge contract, run against GitHub, GitLab and Gitea fakes over real HTTP on loopback.

The production clients (the engine's GitHub and Gitea clients, python-gitlab) talk to the servers in
tests/support/fake_forges.py, which implement only the documented endpoints listed there: GitHub
pulls (list in any state, newest first/create/get/update/merge), requested_reviewers and issue
labels; GitLab merge_requests (list in any state, newest first/create/get/update/merge) and users;
Gitea pulls (list in any state, paged/create/get/update/merge), requested_reviewers, repository
labels and issue labels.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from policyengine.errors import ForgeError
from policyengine.gitops.forges import (
    Forge,
    PullRequestState,
    RetryPolicy,
    forge_from_url,
    load_token,
    open_or_update,
)
from policyengine.gitops.forges.github import GitHubForge
from tests.support.fake_forges import FakeForge, FakeGitea, FakeGitHub, FakeGitLab, running

HEAD = "policyengine/prod/fraud-detector"
BASE = "main"


@dataclass
class ForgeUnderTest:
    kind: str
    fake: FakeForge
    forge: Forge
    sleeps: list[float]
    token: str


def make_forge(kind: str, fake: FakeForge, token: str, sleeps: list[float]) -> Forge:
    retry = RetryPolicy(max_attempts=4, first_delay=1.0, max_delay=60.0)
    if kind == "github":
        # The client spaces requests (0.25 s) and writes (1 s) by default; no need in a test.
        return GitHubForge(
            fake.repository,
            token,
            fake.api_url,
            retry=retry,
            sleep=sleeps.append,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
    return forge_from_url(
        kind, fake.api_url, fake.repository, token, retry=retry, sleep=sleeps.append
    )


FAKES = {"github": FakeGitHub, "gitlab": FakeGitLab, "gitea": FakeGitea}


@pytest.fixture(params=sorted(FAKES))
def subject(request: pytest.FixtureRequest) -> Iterator[ForgeUnderTest]:
    kind = request.param
    token = f"tok-{secrets.token_hex(12)}"
    with running(FAKES[kind](token)) as fake:
        sleeps: list[float] = []
        yield ForgeUnderTest(kind, fake, make_forge(kind, fake, token, sleeps), sleeps, token)


def test_first_pass_opens_exactly_one_pull_request_with_the_body(subject: ForgeUnderTest) -> None:
    body = "| version | objective | estimate |\n|---|---|---|\n| v2 | error rate | 0.2 % |"
    pr = open_or_update(subject.forge, HEAD, BASE, "advance: v1=90,v2=10", body)

    assert [p.number for p in subject.fake.pulls.values()] == [pr.number]
    stored = subject.fake.pulls[pr.number]
    assert (stored.head, stored.base, stored.title, stored.body) == (
        HEAD,
        BASE,
        "advance: v1=90,v2=10",
        body,
    )
    assert (pr.state, pr.head, pr.base, pr.body) == (PullRequestState.OPEN, HEAD, BASE, body)
    assert pr.url.startswith("http://127.0.0.1:")
    assert pr.merge_commit is None


def test_a_later_pass_updates_the_open_pull_request_instead_of_opening_another(
    subject: ForgeUnderTest,
) -> None:
    first = open_or_update(subject.forge, HEAD, BASE, "advance: v1=90,v2=10", "evidence 1")
    second = open_or_update(subject.forge, HEAD, BASE, "advance: v1=80,v2=20", "evidence 2")

    assert second.number == first.number
    assert len(subject.fake.pulls) == 1
    stored = subject.fake.pulls[first.number]
    assert (stored.title, stored.body) == ("advance: v1=80,v2=20", "evidence 2")
    assert (second.title, second.body) == ("advance: v1=80,v2=20", "evidence 2")


def test_an_unchanged_pass_writes_nothing(subject: ForgeUnderTest) -> None:
    open_or_update(subject.forge, HEAD, BASE, "hold", "same evidence")
    writes_before = [r for r in subject.fake.seen if r.method != "GET"]
    again = open_or_update(subject.forge, HEAD, BASE, "hold", "same evidence")

    assert again.state is PullRequestState.OPEN
    assert [r for r in subject.fake.seen if r.method != "GET"] == writes_before


def test_a_merged_pull_request_reads_back_as_merged_with_its_commit(
    subject: ForgeUnderTest,
) -> None:
    pr = open_or_update(subject.forge, HEAD, BASE, "promote", "evidence")
    subject.fake.merge_by_person(pr.number)

    merged = subject.forge.pull_request(pr.number)
    assert merged.state is PullRequestState.MERGED
    assert merged.merge_commit == subject.fake.pulls[pr.number].merge_commit_sha
    assert merged.merge_commit is not None
    assert subject.forge.find_open_pull_request(HEAD, BASE) is None


def test_a_pull_request_closed_unmerged_reads_back_as_closed(subject: ForgeUnderTest) -> None:
    pr = open_or_update(subject.forge, HEAD, BASE, "advance", "evidence")
    subject.fake.close_by_person(pr.number)

    closed = subject.forge.pull_request(pr.number)
    assert (closed.state, closed.merge_commit) == (PullRequestState.CLOSED, None)
    assert subject.forge.find_open_pull_request(HEAD, BASE) is None
    # A closed pull request does not count: the next release step opens a new one.
    reopened = open_or_update(subject.forge, HEAD, BASE, "advance", "evidence")
    assert reopened.number != pr.number
    assert len(subject.fake.open_pulls()) == 1


def test_a_branch_that_never_had_a_pull_request_has_no_latest_one(
    subject: ForgeUnderTest,
) -> None:
    assert subject.forge.latest_pull_request(HEAD, BASE) is None
    open_or_update(subject.forge, "policyengine/prod/other-model", BASE, "x", "y")
    open_or_update(subject.forge, HEAD, "release-1.0", "into another base", "y")

    assert subject.forge.latest_pull_request(HEAD, BASE) is None


def test_the_latest_pull_request_is_found_in_every_state(subject: ForgeUnderTest) -> None:
    forge, fake = subject.forge, subject.fake
    first = open_or_update(forge, HEAD, BASE, "advance", "evidence")
    latest = forge.latest_pull_request(HEAD, BASE)
    assert latest is not None and (latest.number, latest.state) == (first.number, "open")

    fake.close_by_person(first.number)
    latest = forge.latest_pull_request(HEAD, BASE)
    assert latest is not None
    assert (latest.number, latest.state, latest.merge_commit) == (
        first.number,
        PullRequestState.CLOSED,
        None,
    )

    second = open_or_update(forge, HEAD, BASE, "advance again", "evidence 2")
    fake.merge_by_person(second.number)
    latest = forge.latest_pull_request(HEAD, BASE)
    assert latest is not None
    assert (latest.number, latest.state, latest.head, latest.base, latest.title) == (
        second.number,
        PullRequestState.MERGED,
        HEAD,
        BASE,
        "advance again",
    )
    assert latest.merge_commit == fake.pulls[second.number].merge_commit_sha

    # Newer pull requests of another branch or into another base are not this branch's.
    open_or_update(forge, "policyengine/prod/other-model", BASE, "x", "y")
    open_or_update(forge, HEAD, "release-1.0", "into another base", "y")
    latest = forge.latest_pull_request(HEAD, BASE)
    assert latest is not None and latest.number == second.number

    third = open_or_update(forge, HEAD, BASE, "rollback", "evidence 3")
    latest = forge.latest_pull_request(HEAD, BASE)
    assert latest is not None and (latest.number, latest.state) == (third.number, "open")
    assert not fake.bad_requests


def test_listing_the_latest_pull_request_is_retried_after_a_502(subject: ForgeUnderTest) -> None:
    pr = open_or_update(subject.forge, HEAD, BASE, "advance", "evidence")
    subject.fake.fail_next(502, message="Bad Gateway")

    latest = subject.forge.latest_pull_request(HEAD, BASE)
    assert latest is not None and latest.number == pr.number
    assert subject.sleeps == [1.0]


def test_labels_and_reviewers_are_set_when_opening(subject: ForgeUnderTest) -> None:
    reviewers = ["alice", "bob"]
    pr = open_or_update(
        subject.forge, HEAD, BASE, "advance", "evidence", ["release", "policyengine"], reviewers
    )

    stored = subject.fake.pulls[pr.number]
    assert stored.labels == ["release", "policyengine"]
    assert stored.reviewers == reviewers


def test_other_branches_pull_requests_are_not_ours(subject: ForgeUnderTest) -> None:
    other = open_or_update(subject.forge, "policyengine/prod/other-model", BASE, "x", "y")
    mine = open_or_update(subject.forge, HEAD, BASE, "advance", "evidence")

    assert mine.number != other.number
    found = subject.forge.find_open_pull_request(HEAD, BASE)
    assert found is not None and found.number == mine.number
    assert subject.forge.find_open_pull_request(HEAD, "release-1.0") is None


def test_merge_merges_and_a_closed_one_cannot_be_merged(subject: ForgeUnderTest) -> None:
    pr = open_or_update(subject.forge, HEAD, BASE, "rollback", "evidence")
    subject.forge.merge(pr.number, pr.head_sha)
    assert subject.fake.pulls[pr.number].merged

    with pytest.raises(ForgeError, match="405"):
        subject.forge.merge(pr.number, pr.head_sha)
    assert subject.sleeps == []  # a refusal is not retried


def test_a_502_is_retried_after_a_backoff(subject: ForgeUnderTest) -> None:
    subject.fake.fail_next(502, message="Bad Gateway")
    pr = open_or_update(subject.forge, HEAD, BASE, "advance", "evidence")

    assert subject.sleeps == [1.0]
    assert len(subject.fake.pulls) == 1 and pr.number in subject.fake.pulls


def test_a_429_is_retried_after_the_time_the_forge_asks_for(subject: ForgeUnderTest) -> None:
    subject.fake.fail_next(429, {"Retry-After": "7"}, message="Too Many Requests")
    assert subject.forge.find_open_pull_request(HEAD, BASE) is None

    assert subject.sleeps == [7.0]
    assert len(subject.fake.requests_to("GET", r".*")) >= 2


def test_persistent_5xx_gives_up_with_a_forge_error_after_bounded_attempts(
    subject: ForgeUnderTest,
) -> None:
    subject.fake.fail_next(503, times=10)
    with pytest.raises(ForgeError, match="after 4 attempts") as caught:
        subject.forge.find_open_pull_request(HEAD, BASE)

    assert subject.sleeps == [1.0, 2.0, 4.0]
    assert caught.value.__cause__ is not None


def test_a_wrong_token_is_a_forge_error_and_not_retried(subject: ForgeUnderTest) -> None:
    sleeps: list[float] = []
    wrong = make_forge(subject.kind, subject.fake, "not-the-token", sleeps)
    with pytest.raises(ForgeError, match="401"):
        wrong.find_open_pull_request(HEAD, BASE)
    assert sleeps == []
    assert subject.fake.unauthorized == 1


def test_the_token_never_appears_in_logs_or_errors(
    subject: ForgeUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pr = open_or_update(subject.forge, HEAD, BASE, "advance", "evidence", ["release"], ["alice"])
    subject.fake.fail_next(500, {"Retry-After": "1"}, message="boom")
    subject.forge.update_pull_request(pr.number, "hold", "evidence 2")
    subject.fake.fail_next(500, times=10)
    with pytest.raises(ForgeError) as caught:
        subject.forge.pull_request(pr.number)

    # The token was sent (the fake refused nothing), yet nothing the engine prints shows it.
    assert subject.fake.unauthorized == 0
    assert caplog.records, "the exchange should have logged something to check"
    assert subject.token not in caplog.text
    assert subject.token not in str(caught.value)
    assert subject.token not in "".join(traceback.format_exception(caught.value))
    assert subject.token not in repr(subject.forge)


def test_an_unknown_forge_kind_is_an_error() -> None:
    with pytest.raises(ForgeError, match="unknown forge kind 'bitbucket'"):
        forge_from_url("bitbucket", "https://example.invalid", "a/b", "t")


@pytest.mark.parametrize(
    ("environ", "files", "expected"),
    [
        ({"POLICYENGINE_FORGE_TOKEN": "from-env"}, {}, "from-env"),
        ({"POLICYENGINE_FORGE_TOKEN_FILE": "{dir}/token"}, {"token": "from-file\n"}, "from-file"),
        (
            {"POLICYENGINE_FORGE_TOKEN": "env-wins", "POLICYENGINE_FORGE_TOKEN_FILE": "{dir}/t"},
            {"t": "file"},
            "env-wins",
        ),
    ],
)
def test_the_token_comes_from_the_environment_or_a_file(
    tmp_path: pytest.TempPathFactory,
    environ: dict[str, str],
    files: dict[str, str],
    expected: str,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)  # type: ignore[operator]
    env = {k: v.format(dir=tmp_path) for k, v in environ.items()}
    assert load_token(env) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "set POLICYENGINE_FORGE_TOKEN or POLICYENGINE_FORGE_TOKEN_FILE"),
        ({"POLICYENGINE_FORGE_TOKEN_FILE": "/nonexistent/token"}, "cannot read"),
    ],
)
def test_a_missing_token_is_a_forge_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ForgeError, match=message):
        load_token(environ)
