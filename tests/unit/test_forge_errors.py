"""How a forge client's own exception is reported: its type and message, never a credential."""

from __future__ import annotations

import pytest

from policyengine.gitops.pullrequests import unexpected


def test_an_unexpected_exception_is_described_without_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POLICYENGINE_FORGE_TOKEN", "ghp_secret123")
    error = AssertionError(
        "https://ghe.example.com/api/v3/repos/a/b/pulls?page=2 sent with "
        "{'Authorization': 'token ghp_secret123'}; retry with Bearer other-secret"
    )
    text = unexpected(error)
    assert text.startswith("unexpected AssertionError: https://ghe.example.com/api/v3/")
    assert "ghp_secret123" not in text and "other-secret" not in text
    assert unexpected(KeyError()) == "unexpected KeyError"


def test_without_a_configured_token_credential_headers_are_still_blanked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POLICYENGINE_FORGE_TOKEN", raising=False)
    monkeypatch.delenv("POLICYENGINE_FORGE_TOKEN_FILE", raising=False)
    assert "s3cr3t" not in unexpected(ValueError("PRIVATE-TOKEN: s3cr3t rejected"))
