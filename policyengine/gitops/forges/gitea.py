"""Gitea and Forgejo pull requests through their REST API v1 (requests), with the engine's backoff.

Endpoints used: GET/POST /repos/{owner}/{repo}/pulls (the list with state=, page=, limit=),
GET/PATCH /repos/{owner}/{repo}/pulls/{index}, POST /repos/{owner}/{repo}/pulls/{index}/merge (with
`head_commit_id`, the head decided on), GET /repos/{owner}/{repo}/pulls/{index}/reviews,
POST /repos/{owner}/{repo}/pulls/{index}/requested_reviewers, GET /repos/{owner}/{repo}/labels,
POST /repos/{owner}/{repo}/issues/{index}/labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

from policyengine.errors import ForgeConflictError, ForgeError
from policyengine.gitops.forges.backoff import DEFAULT_RETRY, Backoff, HttpFailure, RetryPolicy
from policyengine.gitops.forges.base import (
    PullRequest,
    PullRequestState,
    missing_labels,
    missing_reviewers,
    request_reviews,
)

PAGE_SIZE = 50  # Gitea caps `limit` at its MAX_RESPONSE_ITEMS (50 by default)


class GiteaHttpError(Exception):
    """A non-2xx answer from the Gitea API (internal: turned into ForgeError by the backoff)."""

    def __init__(self, status: int, headers: Mapping[str, str], message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.failure = HttpFailure(status, dict(headers), message)


def _classify(exc: Exception) -> HttpFailure | None:
    if isinstance(exc, GiteaHttpError):
        return exc.failure
    if isinstance(exc, requests.RequestException):
        return HttpFailure(None, {}, type(exc).__name__)
    return None


def _status_of(error: ForgeError) -> int | None:
    cause = error.__cause__
    return cause.failure.status if isinstance(cause, GiteaHttpError) else None


def _pull_request_from(pull: Mapping[str, Any]) -> PullRequest:
    if pull.get("merged"):
        state = PullRequestState.MERGED
    elif pull.get("state") == "closed":
        state = PullRequestState.CLOSED
    else:
        state = PullRequestState.OPEN
    return PullRequest(
        number=int(pull["number"]),
        url=str(pull.get("html_url", "")),
        state=state,
        head=str(pull["head"]["ref"]),
        base=str(pull["base"]["ref"]),
        title=str(pull.get("title", "")),
        body=str(pull.get("body") or ""),
        merge_commit=pull.get("merge_commit_sha") if state is PullRequestState.MERGED else None,
        head_sha=str(pull["head"].get("sha") or ""),
        labels=tuple(str(label.get("name", "")) for label in pull.get("labels") or ()),
        reviewers=tuple(
            [str(user.get("login", "")) for user in pull.get("requested_reviewers") or ()]
            + [str(team.get("name", "")) for team in pull.get("requested_reviewers_teams") or ()]
        ),
    )


def _api_url(api_url: str) -> str:
    url = api_url.rstrip("/")
    return url if url.endswith("/api/v1") else f"{url}/api/v1"


class GiteaForge:
    """Pull requests on one Gitea or Forgejo repository ("owner/name")."""

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
    ) -> None:
        if repository.count("/") != 1:
            raise ForgeError(f"a Gitea repository is owner/name, not {repository!r}")
        owner, name = repository.split("/")
        self._repo_url = f"{_api_url(api_url)}/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"token {token}"
        self._session.headers["Accept"] = "application/json"
        self._timeout = timeout
        self._backoff = Backoff(_classify, retry, sleep)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        response = self._session.request(
            method, self._repo_url + path, params=params, json=json, timeout=self._timeout
        )
        if not response.ok:
            try:
                message = str(response.json().get("message", ""))
            except (ValueError, AttributeError):
                message = response.reason or ""
            raise GiteaHttpError(response.status_code, response.headers, message)
        return response.json() if response.content else None

    def _pages(self, what: str, path: str, params: Mapping[str, Any]) -> list[Any]:
        items: list[Any] = []
        page = 1
        while True:
            batch = self._backoff.call(
                what,
                lambda page=page: self._request(  # type: ignore[misc]
                    "GET", path, params={**params, "page": page, "limit": PAGE_SIZE}
                ),
            )
            items.extend(batch)
            if len(batch) < PAGE_SIZE:
                return items
            page += 1

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        # The list endpoint has no head filter that Gitea and Forgejo share; filter here.
        pulls = self._pages(
            f"listing pull requests from {head_branch}", "/pulls", {"state": "open"}
        )
        matching = [
            _pull_request_from(p)
            for p in pulls
            if p["head"]["ref"] == head_branch and p["base"]["ref"] == base_branch
        ]
        return min(matching, key=lambda p: p.number) if matching else None

    def latest_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        # No head filter here either, and the default order is not documented: every page is read
        # and the highest number (numbers only grow) is the newest. The engine asks this only
        # when no pull request is open for a pending proposal, which is rare.
        pulls = self._pages(
            f"listing all pull requests from {head_branch}", "/pulls", {"state": "all"}
        )
        matching = [
            _pull_request_from(p)
            for p in pulls
            if p["head"]["ref"] == head_branch and p["base"]["ref"] == base_branch
        ]
        return max(matching, key=lambda p: p.number) if matching else None

    def _label_ids(self, names: Sequence[str]) -> list[int]:
        # Older Gitea and Forgejo accept only label ids on issues; names are resolved here.
        existing = self._pages("listing labels", "/labels", {})
        by_name = {str(label["name"]): int(label["id"]) for label in existing}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ForgeError(
                f"labels not found in the repository (create them first): {', '.join(missing)}"
            )
        return [by_name[n] for n in names]

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        created = self._backoff.call(
            f"opening a pull request from {head}",
            lambda: self._request(
                "POST", "/pulls", json={"head": head, "base": base, "title": title, "body": body}
            ),
        )
        return _pull_request_from(created)

    def complete_pull_request(
        self, pull: PullRequest, labels: Sequence[str], reviewers: Sequence[str]
    ) -> tuple[str, ...]:
        number = pull.number
        wanted_labels = missing_labels(pull, labels)
        if wanted_labels:
            label_ids = self._label_ids(wanted_labels)
            self._backoff.call(
                f"labelling pull request #{number}",
                lambda: self._request(
                    "POST", f"/issues/{number}/labels", json={"labels": label_ids}
                ),
            )
        wanted = missing_reviewers(pull, reviewers)
        if not wanted:
            return ()
        reviews = self._pages(f"listing reviews of #{number}", f"/pulls/{number}/reviews", {})
        # A submitted review ends the requests (Gitea lists pending requests as reviews too).
        if any(r.get("state") != "REQUEST_REVIEW" for r in reviews):
            return ()

        def ask(names: Sequence[str]) -> None:
            self._backoff.call(
                f"requesting reviews on pull request #{number}",
                lambda: self._request(
                    "POST",
                    f"/pulls/{number}/requested_reviewers",
                    json={
                        "reviewers": [r for r in names if "/" not in r],
                        "team_reviewers": [r.split("/", 1)[1] for r in names if "/" in r],
                    },
                ),
            )

        return request_reviews(ask, wanted, lambda error: _status_of(error) == 422)

    def update_pull_request(self, number: int, title: str, body: str) -> PullRequest:
        updated = self._backoff.call(
            f"updating pull request #{number}",
            lambda: self._request("PATCH", f"/pulls/{number}", json={"title": title, "body": body}),
        )
        return _pull_request_from(updated)

    def pull_request(self, number: int) -> PullRequest:
        return _pull_request_from(
            self._backoff.call(
                f"reading pull request #{number}",
                lambda: self._request("GET", f"/pulls/{number}"),
            )
        )

    def merge(self, number: int, sha: str) -> None:
        try:
            self._backoff.call(
                f"merging pull request #{number}",
                lambda: self._request(
                    "POST", f"/pulls/{number}/merge", json={"Do": "merge", "head_commit_id": sha}
                ),
            )
        except ForgeError as error:
            if _status_of(error) == 409:
                raise ForgeConflictError(
                    f"pull request #{number} not merged: its head is no longer {sha[:12]}, the "
                    f"commit the engine decided on ({error})"
                ) from error
            raise
