"""What the shell learned before a decision (Argo CD's sync, a pull request's fate) and how it bends
the release status and the outcome. Pure: the reconciler applies a gate before `decide`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from policyengine.policy.models import ReleasePolicy
from policyengine.strategies.guards import hold, rollback
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Outcome, Phase


@dataclass(frozen=True)
class PolicyGate:
    """One policy's gate for one pass.

    `release_id`/`step` name the release step the gate was computed for (from the status file the
    engine last landed): a gate about an older step never bends a newer one. None: any step.
    """

    hold: str | None = None  # neither measure nor decide: hold with this reason
    rollback: str | None = None  # roll back with this reason (Argo CD reports Degraded)
    step_started_at: datetime | None = None  # the step really began here (Argo CD sync, merge)
    release_id: str | None = None
    step: int | None = None
    unreachable: str | None = None  # a dependency (cluster, forge) could not be read: exit 3
    evidence: str = ""  # Markdown the decision carries (commit body, status file): a load test
    extra: tuple[tuple[str, str], ...] = ()  # status-file `extra` entries the gate records
    error: str | None = None  # reading it failed otherwise: the policy's error (exit 1)

    def applies_to(self, status: ReleaseStatus) -> bool:
        if status.phase is not Phase.PROGRESSING:
            return False
        if self.release_id is not None and self.release_id != status.release_id:
            return False
        return self.step is None or self.step == status.step

    def measures(self, status: ReleaseStatus) -> bool:
        """False when the metrics would describe a split that is not live yet: do not query."""
        return not self.applies_to(status) or (self.hold is None and self.rollback is None)


OPEN_GATE = PolicyGate()


def gated_status(status: ReleaseStatus, gate: PolicyGate) -> ReleaseStatus:
    """The status with the step's start moved to when it really went live (never earlier)."""
    start = gate.step_started_at
    if start is None or not gate.applies_to(status) or status.step < 0:
        return status
    if start <= status.step_started_at:
        return status
    return replace(status, step_started_at=start)


def gated_outcome(policy: ReleasePolicy, status: ReleaseStatus, gate: PolicyGate) -> Outcome | None:
    """The outcome the gate imposes, or None to let the strategy decide.

    A person's pause still wins (the strategy says so itself); a rollback beats a hold.
    """
    if policy.spec.paused or not gate.applies_to(status):
        return None
    if gate.rollback is not None:
        return rollback(policy, status, gate.rollback)
    if gate.hold is not None:
        return hold(status, gate.hold)
    return None


def combine(first: PolicyGate, second: PolicyGate) -> PolicyGate:
    """Two gates on one policy: both holds are told, a rollback wins, the later start counts.

    The scope narrows to the more specific of the two (a gate for any step defers to one for a
    given step).
    """
    holds = [h for h in (first.hold, second.hold) if h]
    starts = [s for s in (first.step_started_at, second.step_started_at) if s is not None]
    unreachable = [u for u in (first.unreachable, second.unreachable) if u]
    evidence = "\n".join(e for e in (first.evidence, second.evidence) if e)
    errors = [e for e in (first.error, second.error) if e]
    return PolicyGate(
        hold="; ".join(holds) or None,
        rollback=first.rollback or second.rollback,
        step_started_at=max(starts) if starts else None,
        release_id=first.release_id if first.release_id is not None else second.release_id,
        step=first.step if first.step is not None else second.step,
        unreachable="; ".join(unreachable) or None,
        evidence=evidence,
        extra=first.extra + second.extra,
        error="; ".join(errors) or None,
    )
