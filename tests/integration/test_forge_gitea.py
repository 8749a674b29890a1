"""Gitea/Forgejo specifics through the engine's REST v1 client against the loopback fake.

Endpoints (tests/support/fake_forges.py): GET /api/v1/repos/{o}/{r}/pulls?state=&page=&limit=,
POST /api/v1/repos/{o}/{r}/pulls, GET /api/v1/repos/{o}/{r}/labels, POST .../issues/{n}/labels.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator

import pytest

from policyengine.errors import ForgeError
from policyengine.gitops.forges import RetryPolicy, forge_from_url, open_or_update
from policyengine.gitops.forges.gitea import PAGE_SIZE
from tests.support.fake_forges import FakeGitea, running


@pytest.fixture
def gitea() -> Iterator[FakeGitea]:
    with running(FakeGitea(secrets.token_hex(20))) as fake:
        assert isinstance(fake, FakeGitea)
        yield fake


def test_the_open_pull_request_is_found_beyond_the_first_page(gitea: FakeGitea) -> None:
    forge = forge_from_url("forgejo", gitea.root_url, gitea.repository, gitea.token)
    for n in range(PAGE_SIZE + 10):
        open_or_update(forge, f"feature/{n}", "main", "t", "b")
    mine = open_or_update(forge, "policyengine/prod/fraud", "main", "t", "b")

    found = forge.find_open_pull_request("policyengine/prod/fraud", "main")
    assert found is not None and found.number == mine.number
    assert set(gitea.page_sizes) == {PAGE_SIZE}


def test_the_latest_pull_request_is_found_beyond_the_first_page(gitea: FakeGitea) -> None:
    forge = forge_from_url("gitea", gitea.api_url, gitea.repository, gitea.token)
    old = open_or_update(forge, "policyengine/prod/fraud", "main", "t", "b")
    gitea.close_by_person(old.number)
    for n in range(PAGE_SIZE + 10):
        gitea.close_by_person(open_or_update(forge, f"feature/{n}", "main", "t", "b").number)
    mine = open_or_update(forge, "policyengine/prod/fraud", "main", "t", "b")
    gitea.merge_by_person(mine.number)

    latest = forge.latest_pull_request("policyengine/prod/fraud", "main")
    assert latest is not None and (latest.number, latest.state) == (mine.number, "merged")
    listed = gitea.requests_to("GET", r"/api/v1/repos/acme/models/pulls")[-2:]
    assert [r.query["state"] for r in listed] == [["all"], ["all"]]
    assert [r.query["page"] for r in listed] == [["1"], ["2"]]


def test_labels_are_sent_as_ids_and_an_unknown_label_is_an_error_on_the_opened_one(
    gitea: FakeGitea,
) -> None:
    forge = forge_from_url("gitea", gitea.api_url, gitea.repository, gitea.token)
    pr = open_or_update(forge, "b", "main", "t", "body", ["needs-review"])
    assert gitea.pulls[pr.number].labels == ["needs-review"]
    assert gitea.requests_to("POST", r".*/issues/\d+/labels")[0].body == {"labels": [3]}

    # Labels go on after opening (and on every pass): the pull request exists, the error says why
    # it has no label, and the next pass does not open a second one.
    for _ in range(2):
        with pytest.raises(ForgeError, match="labels not found in the repository"):
            open_or_update(forge, "other", "main", "t", "body", ["nope"])
    assert len(gitea.pulls) == 2 and gitea.pulls[2].labels == []


def test_an_unreachable_forge_is_retried_then_a_forge_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []
    forge = forge_from_url(
        "gitea",
        f"http://127.0.0.1:{port}",
        "acme/models",
        "secret-token",
        retry=RetryPolicy(max_attempts=3, first_delay=0.5),
        sleep=sleeps.append,
    )
    with pytest.raises(ForgeError, match="after 3 attempts: no answer") as caught:
        forge.find_open_pull_request("b", "main")
    assert sleeps == [0.5, 1.0]
    assert "secret-token" not in str(caught.value)


def test_gitea_needs_an_api_url() -> None:
    with pytest.raises(ForgeError, match="give the API URL"):
        forge_from_url("gitea", None, "acme/models", "t")
