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

from policyengine.errors import ForgeConflictError, ForgeError, PolicyEngineError
from policyengine.gates.policy_gate import PolicyGate
from policyengine.gitops.branches import EngineGit, proposal_branch
from policyengine.gitops.forges import Forge, PullRequestState, redact_token
from policyengine.gitops.pullrequest_body import (
    ProposalText,
    chart_points,
    proposal_matches,
    pull_request_body,
    pull_request_title,
)
from policyengine.gitops.status import status_path
from policyengine.policy.models import ReleasePolicy
from policyengine.values import Outcome

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
    warnings: tuple[str, ...] = ()  # the pull request was written; something around it was not

    def line(self) -> str:
        if self.action is ProposalAction.FAILED:
            return f"{self.policy}: pull request not written: {self.detail}"
        return f"{self.policy}: {self.action} pull request #{self.number} {self.url}".rstrip()

    def warning_lines(self) -> list[str]:
        return [f"{self.policy}: warning: {warning}" for warning in self.warnings]


@dataclass(frozen=True)
class Proposal:
    """One policy's decision, as the write step hands it over."""

    policy: ReleasePolicy
    outcome: Outcome
    changes: Mapping[str, str]
    message: str
    evidence: str
    release_started_at: datetime


def unexpected(error: BaseException) -> str:
    """An exception the engine did not raise itself, as its type and message without credentials
    (a client library's AssertionError, KeyError on an odd answer, ...)."""
    text = redact_token(str(error)).strip()
    kind = type(error).__name__
    return f"unexpected {kind}: {text[:500]}" if text else f"unexpected {kind}"


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
        argocd_gated: bool = False,  # cluster access configured: steps start at Argo CD's sync
    ) -> None:
        self._argocd_gated = argocd_gated
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
        except Exception as error:  # a forge client's own failure is this policy's, not the pass's
            log.debug("%s: reading the pull request failed", policy.key, exc_info=True)
            return PolicyGate(
                hold=f"holding: cannot read the pull request from {branch}",
                error=f"cannot read the pull request from {branch}: {unexpected(error)}",
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
                head = commit
            assert head is not None  # the decision is on the branch: pushed now or before
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
                argocd_gated=self._argocd_gated,
                auto_merge=auto_merge,
            )
            title = pull_request_title(policy.key, outcome)
            body = pull_request_body(
                text, chart_points(policy.key, history, outcome, now, proposal.evidence)
            )
            existing = forge.find_open_pull_request(branch, self._base)
            if existing is None:
                pull = forge.open_pull_request(branch, self._base, title, body)
                action = ProposalAction.OPENED
            elif existing.title != title or existing.body != body:
                pull = forge.update_pull_request(existing.number, title, body)
                action = ProposalAction.UPDATED
            else:
                pull = existing
                action = ProposalAction.UPDATED if pushed else ProposalAction.UNCHANGED
        except PolicyEngineError as error:
            # The CLI prints the report's line; logging it too would say it twice.
            log.debug("%s: pull request not written: %s", policy.key, error)
            return ProposalReport(
                policy.key, ProposalAction.FAILED, detail=str(error), exit_code=error.exit_code
            )
        except Exception as error:  # a forge client's own failure is this policy's, not the pass's
            log.debug("%s: pull request not written", policy.key, exc_info=True)
            return ProposalReport(
                policy.key, ProposalAction.FAILED, detail=unexpected(error), exit_code=1
            )
        # From here the pull request is written: what fails around it is a warning on it, and the
        # next pass repairs it (labels and reviewers are reconciled on every pass).
        warnings: list[str] = []
        exit_code = 0
        try:
            warnings.extend(forge.complete_pull_request(pull, settings.labels, settings.reviewers))
        except PolicyEngineError as error:
            warnings.append(f"labels and review requests not set: {error}")
            exit_code = error.exit_code
        except Exception as error:  # a forge client's own failure is this policy's, not the pass's
            log.debug("%s: completing the pull request failed", policy.key, exc_info=True)
            warnings.append(f"labels and review requests not set: {unexpected(error)}")
            exit_code = 1
        if auto_merge:
            try:
                # Only the commit decided on: a person's push in between is never merged unseen.
                forge.merge(pull.number, head)
                action = ProposalAction.MERGED
            except ForgeConflictError as error:
                warnings.append(f"{error}; holding, the next pass plans again")
            except PolicyEngineError as error:
                warnings.append(f"not merged: {error}")
                exit_code = max(exit_code, error.exit_code)
            except Exception as error:  # as above: the policy's, not the pass's
                warnings.append(f"not merged: {unexpected(error)}")
                exit_code = max(exit_code, 1)
        for warning in warnings:
            log.debug("%s: pull request #%d: %s", policy.key, pull.number, warning)
        log.info("%s: %s pull request #%d %s", policy.key, action, pull.number, pull.url)
        return ProposalReport(
            policy.key, action, pull.number, pull.url, exit_code=exit_code, warnings=tuple(warnings)
        )
