"""The forge interface the reconciler uses for pull-request write-back, and the one-PR-per-branch rule."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)


class PullRequestState(StrEnum):
    OPEN = "open"
    MERGED = "merged"  # the approval: the release goes on from merge_commit
    CLOSED = "closed"  # closed unmerged: the release holds


@dataclass(frozen=True)
class PullRequest:
    """A pull request (GitLab: merge request) as every forge reports it."""

    number: int  # GitHub/Gitea number, GitLab iid
    url: str  # the page a person opens
    state: PullRequestState
    head: str  # source branch
    base: str  # target branch
    title: str
    body: str
    merge_commit: str | None = None


class Forge(Protocol):
    """What the engine needs from GitHub, GitLab or Gitea/Forgejo; errors are ForgeError."""

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        """The open pull request from head_branch into base_branch, if there is one."""
        ...

    def latest_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        """The most recently created pull request from head_branch into base_branch in any state
        (open, merged or closed); None when the branch never had one."""
        ...

    def open_pull_request(
        self,
        head: str,
        base: str,
        title: str,
        body: str,
        labels: Sequence[str],
        reviewers: Sequence[str],
    ) -> PullRequest:
        """Open a pull request and put the labels and review requests on it."""
        ...

    def update_pull_request(self, number: int, title: str, body: str) -> PullRequest:
        """Replace the title and body of a pull request."""
        ...

    def pull_request(self, number: int) -> PullRequest:
        """The pull request as it is now (open, merged or closed)."""
        ...

    def merge(self, number: int) -> None:
        """Merge the pull request (auto-merge of decisions the policy marks as safe)."""
        ...


def open_or_update(
    forge: Forge,
    head: str,
    base: str,
    title: str,
    body: str,
    labels: Sequence[str] = (),
    reviewers: Sequence[str] = (),
) -> PullRequest:
    """The one open pull request for head → base, opened now or updated in place; never a second."""
    existing = forge.find_open_pull_request(head, base)
    if existing is None:
        opened = forge.open_pull_request(head, base, title, body, labels, reviewers)
        log.info("forge: opened pull request #%d %s", opened.number, opened.url)
        return opened
    if existing.title == title and existing.body == body:
        return existing
    updated = forge.update_pull_request(existing.number, title, body)
    log.info("forge: updated pull request #%d %s", updated.number, updated.url)
    return updated
