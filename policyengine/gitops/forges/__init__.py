"""Pull-request forges (GitHub, GitLab, Gitea/Forgejo) behind one Forge interface."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from policyengine.errors import ForgeError
from policyengine.gitops.forges.backoff import DEFAULT_RETRY, RetryPolicy
from policyengine.gitops.forges.base import Forge, PullRequest, PullRequestState, open_or_update
from policyengine.gitops.forges.token import TOKEN_ENV, TOKEN_FILE_ENV, load_token, redact_token

ForgeKind = Literal["github", "gitlab", "gitea", "forgejo"]
FORGE_KINDS: tuple[str, ...] = ("github", "gitlab", "gitea", "forgejo")

__all__ = [
    "FORGE_KINDS",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "Forge",
    "ForgeKind",
    "PullRequest",
    "PullRequestState",
    "RetryPolicy",
    "forge_from_url",
    "load_token",
    "open_or_update",
    "redact_token",
]


def forge_from_url(
    kind: str,
    api_url: str | None,
    repository: str,
    token: str,
    *,
    retry: RetryPolicy = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> Forge:
    """The client for one repository on one forge; api_url None means the public service.

    api_url: GitHub https://api.github.com or https://HOST/api/v3 (Enterprise); GitLab the instance
    URL (https://gitlab.example.com, /api/v4 optional); Gitea/Forgejo https://HOST (/api/v1 optional).
    """
    if kind == "github":
        from policyengine.gitops.forges.github import DEFAULT_API_URL, GitHubForge

        return GitHubForge(repository, token, api_url or DEFAULT_API_URL, retry=retry, sleep=sleep)
    if kind == "gitlab":
        from policyengine.gitops.forges.gitlab import DEFAULT_URL, GitLabForge

        return GitLabForge(repository, token, api_url or DEFAULT_URL, retry=retry, sleep=sleep)
    if kind in ("gitea", "forgejo"):
        from policyengine.gitops.forges.gitea import GiteaForge

        if not api_url:
            raise ForgeError(f"{kind} has no public default: give the API URL of the instance")
        return GiteaForge(repository, token, api_url, retry=retry, sleep=sleep)
    raise ForgeError(f"unknown forge kind {kind!r} (expected one of {', '.join(FORGE_KINDS)})")
