"""Pull-request write-back: a policy's decisions go to its own branch and one pull request on the
forge; a merge is the approval, a close without merging holds the release.

What survives an engine restart is all on the remote: the branch (policyengine/<ns>/<name>) and
its engine commits, the tracked branch, and the forge's pull requests for that branch in every
state (a pending proposal whose branch has none, or only merged ones, was never opened: it is now).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from policyengine.errors import ForgeError, PolicyEngineError
from policyengine.gating import PolicyGate
from policyengine.gitops.branches import EngineGit, proposal_branch
from policyengine.gitops.forges import Forge, PullRequestState
from policyengine.gitops.pullrequest_body import (
    ProposalText,
    chart_points,
    proposal_matches,
    pull_request_body,
    pull_request_title,
)
from policyengine.gitops.status import status_path
from policyengine.policy.models import ReleasePolicy
from policyengine.strategies.decision import Outcome

log = logging.getLogger(__name__)

FORGE_ENV = "POLICYENGINE_FORGE"
FORGE_URL_ENV = "POLICYENGINE_FORGE_URL"
FORGE_REPO_ENV = "POLICYENGINE_FORGE_REPO"


class WriteMode(StrEnum):
    COMMIT = "commit"
    PULL_REQUEST = "pull-request"


class ProposalAction(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    MERGED = "merged"  # opened or updated, then merged at once (autoMerge)
    FAILED = "failed"


@dataclass(frozen=True)
class ProposalReport:
    """What the write step did with one policy's pull request."""

    policy: str
    action: ProposalAction
    number: int | None = None
    url: str = ""
    detail: str = ""
    exit_code: int = 0

    def line(self) -> str:
        if self.action is ProposalAction.FAILED:
            return f"{self.policy}: pull request not written: {self.detail}"
        return f"{self.policy}: {self.action} pull request #{self.number} {self.url}".rstrip()


@dataclass(frozen=True)
class Proposal:
    """One policy's decision, as the write step hands it over."""

    policy: ReleasePolicy
    outcome: Outcome
    changes: Mapping[str, str]
    message: str
    evidence: str
    release_started_at: datetime


def write_mode(policy: ReleasePolicy, override: WriteMode | None) -> WriteMode:
    """`reconcile --write` wins over the policy's writeBack.mode."""
    if override is not None:
        return override
    if policy.spec.write_back.mode == "pullRequest":
        return WriteMode.PULL_REQUEST
    return WriteMode.COMMIT


class PullRequestWriteBack:
    """Reads and writes proposals: branch in git, pull request on the forge."""

    def __init__(
        self,
        forge: Callable[[], Forge],
        author: tuple[str, str],
        base_branch: str,
    ) -> None:
        self._forge_factory = forge
        self._forge: Forge | None = None
        self._author = author
        self._base = base_branch

    def forge(self) -> Forge:
        if self._forge is None:
            self._forge = self._forge_factory()
        return self._forge

    def is_merged(self, git: EngineGit, head: str, base_head: str, policy_key: str) -> bool:
        """Merged by any method: a merge keeps the branch head, squash and rebase keep the status
        file the engine wrote."""
        if git.is_ancestor(head, base_head):
            return True
        path = status_path(policy_key)
        proposed = git.blob_id(head, path)
        return proposed is not None and proposed == git.blob_id(base_head, path)

    def gate(self, git: EngineGit, policy: ReleasePolicy, base_head: str) -> PolicyGate | None:
        """A hold when the policy's last proposal was closed without merging; else None.

        A pending proposal whose branch has no pull request, or only merged ones, was pushed by a
        pass that stopped before opening its pull request: no hold, this pass opens it.
        """
        branch = proposal_branch(policy.key)
        head = git.head_of(branch)
        if head is None or self.is_merged(git, head, base_head, policy.key):
            return None
        try:
            forge = self.forge()
            # The open one first: the common case, and one short listing on every forge.
            if forge.find_open_pull_request(branch, self._base) is not None:
                return None
            latest = forge.latest_pull_request(branch, self._base)
        except ForgeError as error:
            return PolicyGate(
                hold=f"holding: cannot read the pull request from {branch}: {error}",
                unreachable=str(error),
            )
        if latest is None or latest.state is PullRequestState.MERGED:
            log.warning(
                "%s: the proposal on %s has no pull request (%s): opening one with this pass's "
                "decision",
                policy.key,
                branch,
                "the branch never had one"
                if latest is None
                else f"#{latest.number} was merged and the branch moved on",
            )
            return None
        if latest.state is PullRequestState.OPEN:  # opened between the two listings
            return None
        return PolicyGate(
            hold=(
                f"holding: the pull request from {branch} was closed without merging; reopen it, "
                "or delete the branch to let the engine propose again"
            )
        )

    def propose(
        self, git: EngineGit, proposal: Proposal, base_head: str, now: datetime
    ) -> ProposalReport:
        """Put the decision on the policy's branch (a commit on top, never forced) and open or
        update its one pull request; merge at once when the policy marks the decision safe."""
        policy, outcome = proposal.policy, proposal.outcome
        branch = proposal_branch(policy.key)
        try:
            forge = self.forge()
            head = git.head_of(branch)
            pending = head is not None and not self.is_merged(git, head, base_head, policy.key)
            pushed = False
            if not (pending and head is not None and proposal_matches(git.message(head), outcome)):
                if head is None or git.is_ancestor(head, base_head):
                    parents = [base_head]
                elif git.is_ancestor(base_head, head):
                    parents = [head]
                else:
                    # The base moved (or a squash merge left the branch behind): merge it in.
                    parents = [head, base_head]
                commit = git.commit_proposal(
                    parents, base_head, proposal.changes, proposal.message, self._author, now
                )
                git.push_proposal(commit, branch)
                pushed = True
            settings = policy.spec.write_back.pull_request
            auto_merge = str(outcome.decision) in settings.auto_merge
            history = [
                (point.committed_at, point.message)
                for point in git.decisions(base_head, policy.key, proposal.release_started_at)
            ]
            text = ProposalText(
                policy_key=policy.key,
                outcome=outcome,
                evidence=proposal.evidence,
                baseline=policy.spec.baseline.name,
                branch=branch,
                base_branch=self._base,
                argocd_application=(
                    f"{policy.spec.argocd.namespace}/{policy.spec.argocd.application}"
                    if policy.spec.argocd
                    else None
                ),
                auto_merge=auto_merge,
            )
            title = pull_request_title(policy.key, outcome)
            body = pull_request_body(
                text, chart_points(policy.key, history, outcome, now, proposal.evidence)
            )
            existing = forge.find_open_pull_request(branch, self._base)
            if existing is None:
                pull = forge.open_pull_request(
                    branch, self._base, title, body, settings.labels, settings.reviewers
                )
                action = ProposalAction.OPENED
            elif existing.title != title or existing.body != body:
                pull = forge.update_pull_request(existing.number, title, body)
                action = ProposalAction.UPDATED
            else:
                pull = existing
                action = ProposalAction.UPDATED if pushed else ProposalAction.UNCHANGED
            if auto_merge:
                forge.merge(pull.number)
                action = ProposalAction.MERGED
        except PolicyEngineError as error:
            log.error("%s: pull request not written: %s", policy.key, error)
            return ProposalReport(
                policy.key, ProposalAction.FAILED, detail=str(error), exit_code=error.exit_code
            )
        log.info("%s: %s pull request #%d %s", policy.key, action, pull.number, pull.url)
        return ProposalReport(policy.key, action, pull.number, pull.url)
