"""The Argo CD sync gate as the reconciler uses it: read the policy's Application for the commit
that landed its step, and turn the answer into a PolicyGate (hold, roll back, or start the step
at the sync).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from policyengine.cluster.argocd import ApplicationReader, SyncState, check_sync
from policyengine.errors import ClusterError
from policyengine.gates.policy_gate import PolicyGate
from policyengine.gitops.branches import Landing
from policyengine.policy.models import ReleasePolicy
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Phase

log = logging.getLogger(__name__)


class ArgoCDSyncGate:
    """One reader for the engine's lifetime, created on first use."""

    def __init__(self, reader: Callable[[], ApplicationReader]) -> None:
        self._reader_factory = reader
        self._reader: ApplicationReader | None = None
        # When Argo CD had nothing to apply for a commit it reports no finishedAt for it: the step
        # starts when the engine first sees it synced. Kept in memory: after a restart the step
        # starts again at the first sighting, which only makes the dwell longer.
        self._first_seen: dict[tuple[str, str], datetime] = {}

    def _read_with(self) -> ApplicationReader:
        if self._reader is None:
            self._reader = self._reader_factory()
        return self._reader

    def gate(
        self,
        policy: ReleasePolicy,
        landing: Landing | None,
        recorded: ReleaseStatus | None,
        now: datetime,
    ) -> PolicyGate | None:
        """None when the policy names no Application or the engine has not moved its release yet."""
        spec = policy.spec.argocd
        if spec is None or landing is None or recorded is None:
            return None
        if recorded.phase is not Phase.PROGRESSING or recorded.step < 0:
            return None
        name = f"{spec.namespace}/{spec.application}"
        commit = landing.commit
        try:
            sync = check_sync(
                self._read_with(),
                spec,
                commit,
                landing.committed_at,
                now,
                accepted_revisions=landing.later,
            )
        except ClusterError as error:
            return PolicyGate(
                hold=f"holding: cannot read Argo CD Application {name}: {error}",
                release_id=recorded.release_id,
                step=recorded.step,
                unreachable=f"Argo CD Application {name}: {error}",
            )
        scoped = PolicyGate(release_id=recorded.release_id, step=recorded.step)
        if sync.state is SyncState.SYNCED:
            start = sync.synced_at or self._first_seen.setdefault((policy.key, commit), now)
            return replace(scoped, step_started_at=start)
        if sync.state is SyncState.DEGRADED:
            return replace(scoped, rollback=sync.reason)
        if sync.state is SyncState.TIMED_OUT:
            return replace(scoped, hold=sync.reason)
        waiting = f"waiting for Argo CD Application {name} to sync {commit[:10]}: {sync.reason}"
        return replace(scoped, hold=waiting)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
