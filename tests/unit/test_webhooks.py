"""Webhook authentication and interpretation for GitHub, GitLab and Gitea/Forgejo.

The GitHub signature is checked against the example in GitHub's documentation ("Validating
webhook deliveries": secret "It's a Secret to Everybody", payload "Hello, World!").
"""

from __future__ import annotations

import json

import pytest

from policyengine.controller.webhooks import authentic, interpret, sign

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"
GITHUB_DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_signature_matches_githubs_documented_example() -> None:
    assert f"sha256={sign(SECRET, BODY)}" == GITHUB_DOC_SIGNATURE
    assert authentic("github", SECRET, {"x-hub-signature-256": GITHUB_DOC_SIGNATURE}, BODY)
    assert not authentic(
        "github", SECRET, {"x-hub-signature-256": GITHUB_DOC_SIGNATURE}, BODY + b"!"
    )
    assert not authentic("github", b"other", {"x-hub-signature-256": GITHUB_DOC_SIGNATURE}, BODY)
    assert not authentic("github", SECRET, {}, BODY)


def test_gitlab_token_is_the_secret_itself() -> None:
    assert authentic("gitlab", SECRET, {"x-gitlab-token": SECRET.decode()}, BODY)
    assert not authentic("gitlab", SECRET, {"x-gitlab-token": "It's a secret"}, BODY)
    assert not authentic("gitlab", SECRET, {}, BODY)


def test_gitea_and_forgejo_sign_with_bare_hex_and_forgejo_wins() -> None:
    good = sign(SECRET, BODY)
    assert authentic("gitea", SECRET, {"x-gitea-signature": good}, BODY)
    assert authentic("gitea", SECRET, {"x-forgejo-signature": good}, BODY)
    assert not authentic("gitea", SECRET, {"x-gitea-signature": f"sha256={good}"}, BODY)
    # A bad Forgejo signature is not rescued by a good Gitea one.
    both = {"x-forgejo-signature": "0" * 64, "x-gitea-signature": good}
    assert not authentic("gitea", SECRET, both, BODY)


def test_an_empty_secret_authenticates_nothing() -> None:
    assert not authentic("gitlab", b"", {"x-gitlab-token": ""}, BODY)
    assert not authentic("github", b"", {"x-hub-signature-256": f"sha256={sign(b'', BODY)}"}, BODY)


def test_unknown_forge_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown forge"):
        authentic("bitbucket", SECRET, {}, BODY)


def _json(payload: object) -> bytes:
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("forge", "headers", "payload", "trigger"),
    [
        ("github", {"x-github-event": "push"}, {"ref": "refs/heads/main"}, True),
        ("github", {"x-github-event": "push"}, {"ref": "refs/heads/feature"}, False),
        ("github", {"x-github-event": "ping"}, {"zen": "x"}, False),
        (
            "github",
            {"x-github-event": "pull_request"},
            {"action": "closed", "pull_request": {"merged": True, "base": {"ref": "main"}}},
            True,
        ),
        (
            "github",
            {"x-github-event": "pull_request"},
            {"action": "closed", "pull_request": {"merged": False, "base": {"ref": "main"}}},
            False,
        ),
        (
            "github",
            {"x-github-event": "pull_request"},
            {"action": "opened", "pull_request": {"merged": False, "base": {"ref": "main"}}},
            False,
        ),
        ("gitlab", {"x-gitlab-event": "Push Hook"}, {"ref": "refs/heads/main"}, True),
        (
            "gitlab",
            {"x-gitlab-event": "Merge Request Hook"},
            {"object_attributes": {"action": "merge", "target_branch": "main"}},
            True,
        ),
        (
            "gitlab",
            {"x-gitlab-event": "Merge Request Hook"},
            {"object_attributes": {"action": "open", "target_branch": "main"}},
            False,
        ),
        ("gitea", {"x-gitea-event": "push"}, {"ref": "refs/heads/main"}, True),
        ("gitea", {"x-forgejo-event": "push"}, {"ref": "refs/heads/release"}, False),
        (
            "gitea",
            {"x-forgejo-event": "pull_request"},
            {"action": "closed", "pull_request": {"merged": True, "base": {"ref": "main"}}},
            True,
        ),
    ],
)
def test_pushes_and_merges_into_the_branch_trigger_and_nothing_else(
    forge: str, headers: dict[str, str], payload: object, trigger: bool
) -> None:
    assert interpret(forge, headers, _json(payload), "main").trigger is trigger


def test_a_body_that_is_not_json_never_triggers() -> None:
    delivery = interpret("github", {"x-github-event": "push"}, b"{not json", "main")
    assert not delivery.trigger and "not JSON" in delivery.detail
    assert not interpret("github", {"x-github-event": "push"}, b"[1]", "main").trigger
