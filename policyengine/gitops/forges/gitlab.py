"""GitLab (gitlab.com or self-hosted) merge requests through python-gitlab, with the engine's backoff.

REST endpoints used (API v4): GET/POST /projects/:id/merge_requests (the list with state=,
source_branch=, target_branch=, order_by=, sort=),
GET/PUT /projects/:id/merge_requests/:iid (labels added with `add_labels`, reviewers as
`reviewer_ids`), PUT /projects/:id/merge_requests/:iid/merge (with `sha`, the head decided on),
GET /users?username=… (reviewers are user ids in the merge-request API).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gitlab
import requests
from gitlab.exceptions import GitlabError

from policyengine.errors import ForgeConflictError, ForgeError
from policyengine.gitops.forges.backoff import DEFAULT_RETRY, Backoff, HttpFailure, RetryPolicy
from policyengine.gitops.forges.base import (
    PullRequest,
    PullRequestState,
    missing_labels,
    missing_reviewers,
)

DEFAULT_URL = "https://gitlab.com"

# python-gitlab would otherwise sleep on 429 by itself, unbounded and outside the injected clock.
_ENGINE_RETRIES: dict[str, Any] = {"obey_rate_limit": False, "retry_transient_errors": False}

_STATES = {
    "opened": PullRequestState.OPEN,
    "locked": PullRequestState.OPEN,  # GitLab's transient state while a merge is in progress
    "merged": PullRequestState.MERGED,
    "closed": PullRequestState.CLOSED,
}


def _pull_request_from(mr: Mapping[str, Any]) -> PullRequest:
    state = _STATES.get(str(mr.get("state")))
    if state is None:
        raise ForgeError(f"merge request !{mr.get('iid')} has an unknown state {mr.get('state')!r}")
    merged = state is PullRequestState.MERGED
    return PullRequest(
        number=int(mr["iid"]),
        url=str(mr.get("web_url", "")),
        state=state,
        head=str(mr["source_branch"]),
        base=str(mr["target_branch"]),
        title=str(mr.get("title", "")),
        body=str(mr.get("description") or ""),
        merge_commit=(mr.get("merge_commit_sha") or mr.get("squash_commit_sha"))
        if merged
        else None,
        head_sha=str(mr.get("sha") or ""),
        labels=tuple(
            str(label.get("name", "") if isinstance(label, Mapping) else label)
            for label in mr.get("labels") or ()
        ),
        reviewers=tuple(str(user.get("username", "")) for user in mr.get("reviewers") or ()),
    )


def _instance_url(api_url: str) -> str:
    """python-gitlab wants the instance URL and adds /api/v4 itself; accept either spelling."""
    url = api_url.rstrip("/")
    return url.removesuffix("/api/v4")


class GitLabForge:
    """Merge requests on one GitLab project ("group/subgroup/project" or a numeric id)."""

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = DEFAULT_URL,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
    ) -> None:
        self._last_headers: dict[str, str] = {}
        session = requests.Session()
        # GitlabHttpError keeps no headers; remember them so Retry-After can be honoured.
        session.hooks["response"].append(self._remember_headers)
        self._gitlab = gitlab.Gitlab(
            url=_instance_url(api_url),
            private_token=token,
            session=session,
            timeout=timeout,
            retry_transient_errors=False,
        )
        self._project = self._gitlab.projects.get(repository, lazy=True)
        self._backoff = Backoff(self._classify, retry, sleep)

    def _remember_headers(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_headers = dict(response.headers)

    def _classify(self, exc: Exception) -> HttpFailure | None:
        if isinstance(exc, GitlabError):
            status = exc.response_code
            headers = self._last_headers if status is not None else {}
            return HttpFailure(status, headers, str(exc.error_message or ""))
        if isinstance(exc, requests.RequestException):
            return HttpFailure(None, {}, type(exc).__name__)
        return None

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        found = self._backoff.call(
            f"listing merge requests from {head_branch}",
            lambda: [
                _pull_request_from(mr.attributes)
                for mr in self._project.mergerequests.list(
                    state="opened",
                    source_branch=head_branch,
                    target_branch=base_branch,
                    get_all=True,
                    **_ENGINE_RETRIES,
                )
            ],
        )
        matching = [p for p in found if p.head == head_branch and p.base == base_branch]
        return min(matching, key=lambda p: p.number) if matching else None

    def latest_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        def find() -> PullRequest | None:
            # Newest first and page by page: the first match ends the listing.
            merge_requests = self._project.mergerequests.list(
                state="all",
                source_branch=head_branch,
                target_branch=base_branch,
                order_by="created_at",
                sort="desc",
                iterator=True,
                **_ENGINE_RETRIES,
            )
            for mr in merge_requests:
                found = _pull_request_from(mr.attributes)
                if found.head == head_branch and found.base == base_branch:
                    return found
            return None

        return self._backoff.call(f"listing all merge requests from {head_branch}", find)

    def _user_id(self, username: str) -> int:
        users = self._backoff.call(
            f"looking up reviewer {username}",
            lambda: self._gitlab.users.list(username=username, get_all=True, **_ENGINE_RETRIES),
        )
        for user in users:
            if str(user.attributes.get("username", "")).lower() == username.lower():
                return int(user.attributes["id"])
        raise ForgeError(f"GitLab has no user {username!r} to request a review from")

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        data: dict[str, Any] = {
            "source_branch": head,
            "target_branch": base,
            "title": title,
            "description": body,
        }
        created = self._backoff.call(
            f"opening a merge request from {head}",
            lambda: self._project.mergerequests.create(data, **_ENGINE_RETRIES),
        )
        return _pull_request_from(created.attributes)

    def complete_pull_request(
        self, pull: PullRequest, labels: Sequence[str], reviewers: Sequence[str]
    ) -> tuple[str, ...]:
        number = pull.number
        data: dict[str, Any] = {}
        wanted_labels = missing_labels(pull, labels)
        if wanted_labels:
            data["add_labels"] = ",".join(wanted_labels)
        warnings: list[str] = []
        wanted = missing_reviewers(pull, reviewers)
        if wanted:
            # GitLab keeps reviewers on the merge request after they review: whoever is missing
            # was never added. reviewer_ids replaces the list, so the current ones are kept.
            current = self._backoff.call(
                f"reading merge request !{number}",
                lambda: self._project.mergerequests.get(number, **_ENGINE_RETRIES),
            )
            ids = [int(user["id"]) for user in current.attributes.get("reviewers") or ()]
            added = []
            for name in wanted:
                try:
                    added.append(self._user_id(name))
                except ForgeError as error:
                    if error.exit_code == 3:
                        raise
                    warnings.append(f"review request for {name} refused: {error}")
            if added:
                data["reviewer_ids"] = ids + [i for i in added if i not in ids]
        if data:
            self._backoff.call(
                f"labelling merge request !{number} and requesting reviews",
                lambda: self._project.mergerequests.update(number, data, **_ENGINE_RETRIES),
            )
        return tuple(warnings)

    def update_pull_request(self, number: int, title: str, body: str) -> PullRequest:
        updated = self._backoff.call(
            f"updating merge request !{number}",
            lambda: self._project.mergerequests.update(
                number, {"title": title, "description": body}, **_ENGINE_RETRIES
            ),
        )
        return _pull_request_from(updated)

    def pull_request(self, number: int) -> PullRequest:
        mr = self._backoff.call(
            f"reading merge request !{number}",
            lambda: self._project.mergerequests.get(number, **_ENGINE_RETRIES),
        )
        return _pull_request_from(mr.attributes)

    def merge(self, number: int, sha: str) -> None:
        path = f"{self._project.mergerequests.path}/{number}/merge"
        try:
            self._backoff.call(
                f"merging merge request !{number}",
                lambda: self._gitlab.http_put(path, post_data={"sha": sha}, **_ENGINE_RETRIES),
            )
        except ForgeError as error:
            cause = error.__cause__
            if isinstance(cause, GitlabError) and cause.response_code == 409:
                raise ForgeConflictError(
                    f"merge request !{number} not merged: its head is no longer {sha[:12]}, the "
                    f"commit the engine decided on ({error})"
                ) from error
            raise
