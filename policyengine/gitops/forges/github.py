"""GitHub and GitHub Enterprise pull requests through the REST API (requests), with the engine's
backoff.

Every request carries GitHub's conventions: `Accept: application/vnd.github+json` and
`X-GitHub-Api-Version`. Lists follow the `Link` header's `next` page; rate limits (`Retry-After`,
`X-RateLimit-Remaining`/`-Reset`) are the backoff's. Endpoints used:
GET/POST /repos/{owner}/{repo}/pulls (the list with state=, head=, base=, sort=, direction=,
per_page=), GET/PATCH /repos/{owner}/{repo}/pulls/{n}, PUT /repos/{owner}/{repo}/pulls/{n}/merge
(with the head `sha` decided on), GET /repos/{owner}/{repo}/pulls/{n}/reviews,
POST /repos/{owner}/{repo}/pulls/{n}/requested_reviewers,
POST /repos/{owner}/{repo}/issues/{n}/labels (`{"labels": [...]}`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import requests

from policyengine.errors import ForgeConflictError, ForgeError
from policyengine.gitops.forges.backoff import DEFAULT_RETRY, Backoff, HttpFailure, RetryPolicy
from policyengine.gitops.forges.base import (
    PullRequest,
    PullRequestState,
    missing_labels,
    missing_reviewers,
)

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
MEDIA_TYPE = "application/vnd.github+json"
PAGE_SIZE = 100  # GitHub's largest per_page


class GitHubHttpError(Exception):
    """A non-2xx answer from the GitHub API (internal: turned into ForgeError by the backoff)."""

    def __init__(self, status: int, headers: Mapping[str, str], message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.failure = HttpFailure(status, dict(headers), message)


def classify_github_failure(exc: Exception) -> HttpFailure | None:
    if isinstance(exc, GitHubHttpError):
        return exc.failure
    if isinstance(exc, requests.RequestException):
        return HttpFailure(None, {}, type(exc).__name__)
    return None


def _status_of(error: ForgeError) -> int | None:
    cause = error.__cause__
    return cause.failure.status if isinstance(cause, GitHubHttpError) else None


def _pull_request_from(pull: Mapping[str, Any]) -> PullRequest:
    # merged_at is in both the list and the single representation; `merged` only in the latter.
    if pull.get("merged_at") is not None or pull.get("merged"):
        state = PullRequestState.MERGED
    elif pull.get("state") == "closed":
        state = PullRequestState.CLOSED
    else:
        state = PullRequestState.OPEN
    head = pull.get("head") or {}
    return PullRequest(
        number=int(pull["number"]),
        url=str(pull.get("html_url", "")),
        state=state,
        head=str(head.get("ref", "")),
        base=str((pull.get("base") or {}).get("ref", "")),
        title=str(pull.get("title") or ""),
        body=str(pull.get("body") or ""),
        merge_commit=pull.get("merge_commit_sha") if state is PullRequestState.MERGED else None,
        head_sha=str(head.get("sha") or ""),
        labels=tuple(str(label.get("name", "")) for label in pull.get("labels") or ()),
        reviewers=tuple(
            [str(user.get("login", "")) for user in pull.get("requested_reviewers") or ()]
            + [str(team.get("slug", "")) for team in pull.get("requested_teams") or ()]
        ),
    )


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    if not isinstance(body, dict):
        return response.reason or ""
    message = str(body.get("message", ""))
    details = [
        str(e.get("message") or e.get("code") or "") if isinstance(e, dict) else str(e)
        for e in body.get("errors") or ()
    ]
    details = [d for d in details if d]
    return f"{message} ({'; '.join(details)})" if details else message


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
        timeout: float = 30.0,
        seconds_between_requests: float | None = 0.25,
        seconds_between_writes: float | None = 1.0,
    ) -> None:
        if repository.count("/") != 1:
            raise ForgeError(f"a GitHub repository is owner/name, not {repository!r}")
        owner, name = repository.split("/")
        self._owner = owner
        self._repo_url = (
            f"{api_url.rstrip('/')}/repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        )
        self._session = requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": MEDIA_TYPE,
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "policyengine",
            }
        )
        self._timeout = timeout
        self._backoff = Backoff(classify_github_failure, retry, sleep)
        # GitHub's advice against secondary rate limits: space requests, and writes more.
        self._spacing = (seconds_between_requests or 0.0, seconds_between_writes or 0.0)
        self._last: tuple[float, float] = (0.0, 0.0)

    def __repr__(self) -> str:
        return f"GitHubForge({self._repo_url!r})"

    def _pace(self, method: str) -> None:
        write = method != "GET"
        now = time.monotonic()
        wait = max(
            self._last[0] + self._spacing[0], self._last[1] + self._spacing[1] if write else 0
        )
        if wait > now:
            time.sleep(wait - now)
            now = wait
        self._last = (now, now if write else self._last[1])

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> requests.Response:
        if any(self._spacing):
            self._pace(method)
        response = self._session.request(
            method, self._repo_url + path, params=params, json=json, timeout=self._timeout
        )
        if not response.ok:
            raise GitHubHttpError(response.status_code, response.headers, _reason(response))
        return response

    def _call(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        response = self._backoff.call(what, lambda: self._send(method, path, **kwargs))
        return response.json() if response.content else None

    def _pages(self, what: str, path: str, params: Mapping[str, Any]) -> Iterator[Any]:
        """Every item of a list, page by page along the `Link` header's `next`.

        Only the next link's query is used, on the engine's own URL: behind another hostname (a
        GitHub Enterprise proxy) or in GitHub's /repositories/{id} form, the token still goes
        only where it was configured to.
        """
        query: dict[str, Any] = {**params, "per_page": PAGE_SIZE}
        while True:
            response = self._backoff.call(
                what,
                lambda query=query: self._send("GET", path, params=query),  # type: ignore[misc]
            )
            items = response.json()
            if not isinstance(items, list):
                raise ForgeError(
                    f"{what}: GitHub answered with a {type(items).__name__}, not a list"
                )
            yield from items
            following = response.links.get("next", {}).get("url")
            if not following or not items:
                return
            query = dict(parse_qsl(urlsplit(following).query))

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        found = [
            _pull_request_from(p)
            for p in self._pages(
                f"listing pull requests from {head_branch}",
                "/pulls",
                {"state": "open", "head": f"{self._owner}:{head_branch}", "base": base_branch},
            )
        ]
        # Filter again: the head filter is advisory on some GitHub Enterprise versions.
        matching = [p for p in found if p.head == head_branch and p.base == base_branch]
        return min(matching, key=lambda p: p.number) if matching else None

    def latest_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        # Newest first, so the first match ends the listing even where the head filter is
        # ignored and every pull request of the repository comes back.
        pulls = self._pages(
            f"listing all pull requests from {head_branch}",
            "/pulls",
            {
                "state": "all",
                "sort": "created",
                "direction": "desc",
                "head": f"{self._owner}:{head_branch}",
                "base": base_branch,
            },
        )
        for pull in pulls:
            found = _pull_request_from(pull)
            if found.head == head_branch and found.base == base_branch:
                return found
        return None

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        created = self._call(
            f"opening a pull request from {head}",
            "POST",
            "/pulls",
            json={"head": head, "base": base, "title": title, "body": body},
        )
        return _pull_request_from(created)

    def complete_pull_request(
        self, pull: PullRequest, labels: Sequence[str], reviewers: Sequence[str]
    ) -> tuple[str, ...]:
        number = pull.number
        wanted_labels = missing_labels(pull, labels)
        if wanted_labels:
            self._call(
                f"labelling pull request #{number}",
                "POST",
                f"/issues/{number}/labels",
                json={"labels": wanted_labels},
            )
        wanted = missing_reviewers(pull, reviewers)
        if not wanted:
            return ()
        # A submitted review removes its author from the requests: never ask again after one.
        if next(
            iter(self._pages(f"listing reviews of #{number}", f"/pulls/{number}/reviews", {})), None
        ):
            return ()
        try:
            self._request_reviews(number, wanted)
            return ()
        except ForgeError as error:
            if _status_of(error) != 422 or len(wanted) == 1:
                if _status_of(error) == 422:
                    return (f"review request for {wanted[0]} refused: {error}",)
                raise
        # One refused name (not a collaborator) refuses the whole request: ask one by one.
        warnings = []
        for reviewer in wanted:
            try:
                self._request_reviews(number, [reviewer])
            except ForgeError as error:
                if _status_of(error) != 422:
                    raise
                warnings.append(f"review request for {reviewer} refused: {error}")
        return tuple(warnings)

    def _request_reviews(self, number: int, reviewers: Sequence[str]) -> None:
        users = [r for r in reviewers if "/" not in r]
        # "org/team" names a team; the API wants the team's slug alone.
        teams = [r.split("/", 1)[1] for r in reviewers if "/" in r]
        self._call(
            f"requesting reviews on pull request #{number}",
            "POST",
            f"/pulls/{number}/requested_reviewers",
            json={"reviewers": users, "team_reviewers": teams},
        )

    def update_pull_request(self, number: int, title: str, body: str) -> PullRequest:
        updated = self._call(
            f"updating pull request #{number}",
            "PATCH",
            f"/pulls/{number}",
            json={"title": title, "body": body},
        )
        return _pull_request_from(updated)

    def pull_request(self, number: int) -> PullRequest:
        return _pull_request_from(
            self._call(f"reading pull request #{number}", "GET", f"/pulls/{number}")
        )

    def merge(self, number: int, sha: str) -> None:
        try:
            self._call(
                f"merging pull request #{number}",
                "PUT",
                f"/pulls/{number}/merge",
                json={"sha": sha},
            )
        except ForgeError as error:
            if _status_of(error) == 409:  # "Head branch was modified"
                raise ForgeConflictError(
                    f"pull request #{number} not merged: its head is no longer {sha[:12]}, the "
                    f"commit the engine decided on ({error})"
                ) from error
            raise
