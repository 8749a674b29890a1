"""The shell around a pass for pull-request write-back, the Argo CD sync gate and the performance
gate: before deciding, what the forge, the cluster and a load test of the candidate say (one
PolicyGate per policy); after, the proposals.

The Engine works without one (every decision committed, nothing gated): the CLI builds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from policyengine.cluster.argocd import ApplicationReader
from policyengine.errors import ForgeError, PolicyEngineError
from policyengine.gates.argocd_sync import ArgoCDSyncGate
from policyengine.gates.policy_gate import PolicyGate, combine
from policyengine.gitops.branches import EngineGit
from policyengine.gitops.forges import Forge, forge_from_url, load_token
from policyengine.gitops.pullrequests import (
    Proposal,
    ProposalReport,
    PullRequestWriteBack,
    WriteMode,
    unexpected,
    write_mode,
)
from policyengine.gitops.repo import GitCredentials, Workspace
from policyengine.gitops.status import parse_status, status_path
from policyengine.limits import read_repository_text
from policyengine.loadtest.gate import PerformanceGates
from policyengine.policy.loader import LoadedPolicy
from policyengine.policy.models import ReleasePolicy
from policyengine.reconciler import PassPlan
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Phase

log = logging.getLogger(__name__)


def forge_factory(
    kind: str | None, api_url: str | None, repository: str | None
) -> Callable[[], Forge]:
    """The forge client, built on first use (so `plan` without a forge works for commit mode)."""

    def build() -> Forge:
        if not kind or not repository:
            raise ForgeError(
                "writeBack.mode pullRequest needs a forge: --forge and --forge-repo (or "
                "POLICYENGINE_FORGE and POLICYENGINE_FORGE_REPO), and a token in "
                "POLICYENGINE_FORGE_TOKEN or POLICYENGINE_FORGE_TOKEN_FILE"
            )
        return forge_from_url(kind, api_url, repository, load_token())

    return build


def cluster_reader(
    kubeconfig: str | None, in_cluster: bool
) -> Callable[[], ApplicationReader] | None:
    """How to read Applications, or None when no cluster access is configured (no gate)."""
    if kubeconfig:
        return lambda: ApplicationReader.from_environment(kubeconfig)
    if in_cluster:
        return ApplicationReader.in_cluster
    return None


class Gatekeeper:
    def __init__(
        self,
        *,
        base_branch: str = "main",
        write: WriteMode | None = None,
        forge: Callable[[], Forge] | None = None,
        cluster: Callable[[], ApplicationReader] | None = None,
        credentials: GitCredentials | None = None,
        author: tuple[str, str] = ("policyengine", "policyengine@users.noreply.local"),
        performance: PerformanceGates | None = None,
    ) -> None:
        self._write = write
        self._performance = performance or PerformanceGates()
        self._pull_requests = PullRequestWriteBack(
            forge or forge_factory(None, None, None),
            author,
            base_branch,
            argocd_gated=cluster is not None,
        )
        self._argocd = ArgoCDSyncGate(cluster) if cluster is not None else None
        self._credentials = credentials
        self._policies: dict[str, ReleasePolicy] = {}
        self._warned: set[str] = set()

    def proposes(self, policy_key: str) -> bool:
        """True when the policy's decisions go to a pull request rather than the branch."""
        policy = self._policies.get(policy_key)
        return policy is not None and write_mode(policy, self._write) is WriteMode.PULL_REQUEST

    def _git(self, workspace: Workspace) -> EngineGit:
        credentials = self._credentials or GitCredentials.from_environment()
        return EngineGit(workspace.root, workspace.remote, credentials)

    def gates(
        self, workspace: Workspace, loaded: Sequence[LoadedPolicy], now: datetime
    ) -> dict[str, PolicyGate]:
        """Every policy's gate at the workspace's head; reads git, the forge and the cluster."""
        self._policies = {item.key: item.policy for item in loaded}
        git = self._git(workspace)
        base = workspace.head()
        if any(self.proposes(key) for key in self._policies):
            git.fetch_proposals()
        gates: dict[str, PolicyGate] = {}
        for key, policy in self._policies.items():
            proposing = self.proposes(key)
            argocd = policy.spec.argocd is not None and self._argocd is not None
            if policy.spec.argocd is not None and self._argocd is None and key not in self._warned:
                self._warned.add(key)
                log.warning(
                    "%s names Argo CD Application %s but no cluster access is configured "
                    "(--kubeconfig or --in-cluster): measuring without the sync gate",
                    key,
                    policy.spec.argocd.application,
                )
            if not (proposing or argocd or policy.spec.performance is not None):
                continue
            try:
                found = [
                    g for g in self._gates_of(git, workspace, policy, base, proposing, now) if g
                ]
            except PolicyEngineError as error:  # one policy's git, forge or cluster trouble
                failed = f"holding: its gates could not be read: {error}"
                found = [
                    PolicyGate(hold=failed, unreachable=str(error))
                    if error.exit_code == 3
                    else PolicyGate(hold=failed, error=str(error))
                ]
            except Exception as error:  # a client library's own failure is this policy's too
                log.debug("%s: reading its gates failed", key, exc_info=True)
                found = [
                    PolicyGate(hold="holding: its gates could not be read", error=unexpected(error))
                ]
            if found:
                gate = found[0]
                for more in found[1:]:
                    gate = combine(gate, more)
                gates[key] = gate
        return gates

    def _gates_of(
        self,
        git: EngineGit,
        workspace: Workspace,
        policy: ReleasePolicy,
        base: str,
        proposing: bool,
        now: datetime,
    ) -> list[PolicyGate | None]:
        recorded = _recorded_status(workspace, policy.key)
        landing = git.landing(base, policy.key) if recorded is not None else None
        found: list[PolicyGate | None] = []
        if proposing:
            found.append(self._pull_requests.gate(git, policy, base))
            if landing is not None and recorded is not None and recorded.phase is Phase.PROGRESSING:
                # A merge is the approval: the step's dwell starts when it landed, not when the
                # engine proposed it.
                found.append(
                    PolicyGate(
                        step_started_at=landing.committed_at,
                        release_id=recorded.release_id,
                        step=recorded.step,
                    )
                )
        if self._argocd is not None:
            found.append(self._argocd.gate(policy, landing, recorded, now))
        if policy.spec.performance is not None:
            found.append(self._performance.gate(policy, recorded, workspace.root))
        return found

    def propose(
        self, workspace: Workspace, plan: PassPlan, now: datetime
    ) -> tuple[ProposalReport, ...]:
        """Open or update the pull request of every proposing policy whose decision writes."""
        reports: list[ProposalReport] = []
        git: EngineGit | None = None
        for policy_plan in plan.policies:
            if not policy_plan.writes or not self.proposes(policy_plan.key):
                continue
            assert policy_plan.outcome is not None and policy_plan.status is not None
            git = git or self._git(workspace)
            proposal = Proposal(
                policy=self._policies[policy_plan.key],
                outcome=policy_plan.outcome,
                changes=policy_plan.changes,
                message=policy_plan.message,
                evidence=policy_plan.evidence,
                release_started_at=policy_plan.status.release_started_at,
            )
            reports.append(self._pull_requests.propose(git, proposal, workspace.head(), now))
        return tuple(reports)

    def close(self) -> None:
        if self._argocd is not None:
            self._argocd.close()


def _recorded_status(workspace: Workspace, policy_key: str) -> ReleaseStatus | None:
    """The status the engine last landed on the branch; None when absent or unreadable (the plan
    reports an unreadable one)."""
    path = workspace.root / status_path(policy_key)
    if not path.is_file():
        return None
    try:
        return parse_status(read_repository_text(workspace.root, status_path(policy_key)))
    except PolicyEngineError:
        return None
