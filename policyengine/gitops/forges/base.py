"""The forge interface the reconciler uses for pull-request write-back, and the one-PR-per-branch rule."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from policyengine.errors import ForgeError

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
    head_sha: str = ""  # the commit the pull request shows now (a person may have pushed)
    labels: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()  # review requests pending: "user" or "org/team" (team slug)


def missing_labels(pull: PullRequest, labels: Sequence[str]) -> list[str]:
    return [label for label in labels if label not in pull.labels]


def request_reviews(
    ask: Callable[[Sequence[str]], None],
    wanted: Sequence[str],
    refused: Callable[[ForgeError], bool],
) -> tuple[str, ...]:
    """Ask for reviews; when the forge refuses the request (one name is not a collaborator, which
    refuses them all), ask one by one and return a warning per refused name."""
    try:
        ask(wanted)
        return ()
    except ForgeError as error:
        if not refused(error):
            raise
        if len(wanted) == 1:
            return (f"review request for {wanted[0]} refused: {error}",)
    warnings = []
    for reviewer in wanted:
        try:
            ask([reviewer])
        except ForgeError as error:
            if not refused(error):
                raise
            warnings.append(f"review request for {reviewer} refused: {error}")
    return tuple(warnings)


def missing_reviewers(pull: PullRequest, reviewers: Sequence[str]) -> list[str]:
    """Reviewers without a pending request; teams compare by slug (forges report no org)."""
    pending = {r.rsplit("/", 1)[-1].lower() for r in pull.reviewers}
    return [r for r in reviewers if r.rsplit("/", 1)[-1].lower() not in pending]


class Forge(Protocol):
    """What the engine needs from GitHub, GitLab or Gitea/Forgejo; errors are ForgeError."""

    def find_open_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        """The open pull request from head_branch into base_branch, if there is one."""
        ...

    def latest_pull_request(self, head_branch: str, base_branch: str) -> PullRequest | None:
        """The most recently created pull request from head_branch into base_branch in any state
        (open, merged or closed); None when the branch never had one."""
        ...

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a pull request (labels and reviewers come after, in `complete_pull_request`)."""
        ...

    def complete_pull_request(
        self, pull: PullRequest, labels: Sequence[str], reviewers: Sequence[str]
    ) -> tuple[str, ...]:
        """Add the labels and review requests the pull request lacks (every pass, so that one
        opened halfway is repaired); reviewers are not asked again once someone has reviewed.
        Returns warnings: a reviewer the forge refused (not a collaborator) does not fail the
        pass. ForgeError when the forge fails."""
        ...

    def update_pull_request(self, number: int, title: str, body: str) -> PullRequest:
        """Replace the title and body of a pull request."""
        ...

    def pull_request(self, number: int) -> PullRequest:
        """The pull request as it is now (open, merged or closed)."""
        ...

    def merge(self, number: int, sha: str) -> None:
        """Merge the pull request (auto-merge of decisions the policy marks as safe) if its head is
        still `sha`, the commit the engine decided on; ForgeConflictError when it moved."""
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
        pull = forge.open_pull_request(head, base, title, body)
        log.info("forge: opened pull request #%d %s", pull.number, pull.url)
    elif existing.title == title and existing.body == body:
        pull = existing
    else:
        pull = forge.update_pull_request(existing.number, title, body)
        log.info("forge: updated pull request #%d %s", pull.number, pull.url)
    for warning in forge.complete_pull_request(pull, labels, reviewers):
        log.warning("forge: pull request #%d: %s", pull.number, warning)
    return pull
