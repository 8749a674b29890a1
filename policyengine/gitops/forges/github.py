"""GitHub and GitHub Enterprise pull requests through PyGithub, with the engine's own backoff.

REST endpoints used: GET/POST /repos/{owner}/{repo}/pulls (the list with state=, head=, base=,
sort=, direction=), GET/PATCH /repos/{owner}/{repo}/pulls/{n},
PUT /repos/{owner}/{repo}/pulls/{n}/merge, POST /repos/{owner}/{repo}/pulls/{n}/requested_reviewers,
POST /repos/{owner}/{repo}/issues/{n}/labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import requests
from github import Auth, Github, GithubException
from github.GithubObject import NotSet

from policyengine.errors import ForgeError
from policyengine.gitops.forges.backoff import DEFAULT_RETRY, Backoff, HttpFailure, RetryPolicy
from policyengine.gitops.forges.base import PullRequest, PullRequestState

DEFAULT_API_URL = "https://api.github.com"


def classify_github_failure(exc: Exception) -> HttpFailure | None:
    if isinstance(exc, GithubException):
        data = exc.data if isinstance(exc.data, dict) else {}
        return HttpFailure(exc.status, dict(exc.headers or {}), str(data.get("message", "")))
    if isinstance(exc, requests.RequestException):
        return HttpFailure(None, {}, type(exc).__name__)
    return None


def _pull_request_from(pull: Any) -> PullRequest:
    # merged_at is in both the list and the single representation; `merged` only in the latter.
    if pull.merged_at is not None:
        state = PullRequestState.MERGED
    elif pull.state == "closed":
        state = PullRequestState.CLOSED
    else:
        state = PullRequestState.OPEN
    return PullRequest(
        number=pull.number,
        url=pull.html_url,
        state=state,
        head=pull.head.ref,
        base=pull.base.ref,
        title=pull.title,
        body=pull.body or "",
        merge_commit=pull.merge_commit_sha if state is PullRequestState.MERGED else None,
    )


class GitHubForge:
    """Pull requests on one GitHub repository ("owner/name")."""

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        timeout: int = 30,
        seconds_between_requests: float | None = 0.25,
        seconds_between_writes: float | None = 1.0,
    ) -> None:
        if repository.count("/") != 1:
            raise ForgeError(f"a GitHub repository is owner/name, not {repository!r}")
        self._owner = repository.split("/")[0]
        # PyGithub's own retries (urllib3) would sleep outside our bounds: the engine retries.
        self._github = Github(
            auth=Auth.Token(token),
            base_url=api_url.rstrip("/"),
            timeout=timeout,
            retry=None,
            # PyGithub's pacing follows GitHub's advice against secondary rate limits.
            seconds_between_requests=seconds_between_requests,
            seconds_between_writes=seconds_between_writes,
            lazy=True,
        )
        self._repo = self._github.get_repo(repository)
        self._backoff = Backoff(classify_github_failure, retry, sleep)

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        def find() -> list[PullRequest]:
            pulls = self._repo.get_pulls(
                state="open", head=f"{self._owner}:{head_branch}", base=base_branch
            )
            return [_pull_request_from(p) for p in pulls]

        found = self._backoff.call(f"listing pull requests from {head_branch}", find)
        # Filter again: the head filter is advisory on some GitHub Enterprise versions.
        matching = [p for p in found if p.head == head_branch and p.base == base_branch]
        return min(matching, key=lambda p: p.number) if matching else None

    def latest_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        def find() -> PullRequest | None:
            # Newest first, so the first match ends the listing even where the head filter is
            # ignored and every pull request of the repository comes back.
            pulls = self._repo.get_pulls(
                state="all",
                sort="created",
                direction="desc",
                head=f"{self._owner}:{head_branch}",
                base=base_branch,
            )
            for pull in pulls:
                if pull.head.ref == head_branch and pull.base.ref == base_branch:
                    return _pull_request_from(pull)
            return None

        return self._backoff.call(f"listing all pull requests from {head_branch}", find)

    def open_pull_request(
        self,
        head: str,
        base: str,
        title: str,
        body: str,
        labels: Sequence[str],
        reviewers: Sequence[str],
    ) -> PullRequest:
        pull = self._backoff.call(
            f"opening a pull request from {head}",
            lambda: self._repo.create_pull(base=base, head=head, title=title, body=body),
        )
        if labels:
            self._backoff.call(
                f"labelling pull request #{pull.number}", lambda: pull.add_to_labels(*labels)
            )
        users = [r for r in reviewers if "/" not in r]
        # "org/team" names a team; the API wants the team's slug alone.
        teams = [r.split("/", 1)[1] for r in reviewers if "/" in r]
        if users or teams:
            self._backoff.call(
                f"requesting reviews on pull request #{pull.number}",
                lambda: pull.create_review_request(
                    reviewers=users or NotSet, team_reviewers=teams or NotSet
                ),
            )
        return _pull_request_from(pull)

    def update_pull_request(self, number: int, title: str, body: str) -> PullRequest:
        def update() -> PullRequest:
            pull = self._repo.get_pull(number)
            pull.edit(title=title, body=body)
            return _pull_request_from(pull)

        return self._backoff.call(f"updating pull request #{number}", update)

    def pull_request(self, number: int) -> PullRequest:
        return self._backoff.call(
            f"reading pull request #{number}",
            lambda: _pull_request_from(self._repo.get_pull(number)),
        )

    def merge(self, number: int) -> None:
        self._backoff.call(
            f"merging pull request #{number}", lambda: self._repo.get_pull(number).merge()
        )
