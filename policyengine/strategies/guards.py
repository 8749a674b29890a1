"""Rules every strategy applies the same way: pause, finished releases, failed objectives, missing
data, and what happens when the evidence stays inconclusive past `analysis.maxDuration`."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from policyengine.analysis.verdict import Assessment, Verdict
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import ReleasePolicy
from policyengine.strategies.reasons import describe_duration, describe_results
from policyengine.strategies.splits import baseline_only
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Outcome, Phase

TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.INCONCLUSIVE})

_TERMINAL_WORDS = {
    Phase.SUCCEEDED: "release succeeded",
    Phase.FAILED: "release failed and was rolled back",
    Phase.INCONCLUSIVE: "release inconclusive, waiting for a person",
}


def hold(status: ReleaseStatus, reason: str) -> Outcome:
    """Stay where the release is: same split, phase and step."""
    return Outcome(Decision.HOLD, reason, status.split, status.phase, status.step)


def rollback(policy: ReleasePolicy, status: ReleaseStatus, reason: str) -> Outcome:
    """All live traffic back to the baseline, mirroring off; the release has failed."""
    return Outcome(Decision.ROLLBACK, reason, baseline_only(policy), Phase.FAILED, status.step)


def preempt(policy: ReleasePolicy, status: ReleaseStatus, assessment: Assessment) -> Outcome | None:
    """The outcome that overrides the strategy's schedule, if any.

    A person's pause comes first, then a release that is over, then failed objectives (a rollback
    failure beats a hold failure, so one bad objective is enough to leave).
    """
    if policy.spec.paused:
        return hold(status, "paused by a person")
    # A release waiting for a person in phase inconclusive goes on when the person decides in
    # Git: a commit setting onInconclusive to promote or rollback lets the strategy conclude.
    decided = status.phase is Phase.INCONCLUSIVE and policy.spec.on_inconclusive != "hold"
    if status.phase in TERMINAL_PHASES and not decided:
        reason = f"{_TERMINAL_WORDS[status.phase]}; nothing to do"
        if status.last_reason:
            reason += f" (last decision: {status.last_reason})"
        return Outcome(Decision.DONE, reason, status.split, status.phase, status.step)
    failed = assessment.failed
    to_roll_back = tuple(r for r in failed if r.on_fail == "rollback")
    if to_roll_back:
        return rollback(policy, status, f"objective failed: {describe_results(to_roll_back)}")
    if failed:
        return hold(
            status,
            f"objective failed, holding as its onFail says: {describe_results(failed)}",
        )
    return None


def hold_for_data(
    policy: ReleasePolicy,
    status: ReleaseStatus,
    assessment: Assessment,
    now: datetime,
    success: Outcome | None,
) -> Outcome | None:
    """Missing data, a sample-ratio mismatch or a provider down: never move on such evidence —
    but not for ever either: past `analysis.maxDuration`, `onInconclusive` applies as it does to
    any evidence that stays inconclusive. `success` is the move the strategy would make on
    complete evidence, None while its own clock (dwell, window) still runs."""
    if not assessment.hold_reasons:
        return None
    reason = "holding: " + "; ".join(assessment.hold_reasons)
    if success is None:
        return hold(status, reason)
    return conclude_or_wait(policy, status, now, success, reason)


def evidence_gap(policy: ReleasePolicy, assessment: Assessment) -> str | None:
    """Why the objectives do not all pass yet, or None when they do (or there are none)."""
    if not policy.spec.objectives:
        return None
    if not assessment.results:
        # Objectives without results would make `all pass` vacuously true: never promote on that.
        names = ", ".join(o.display_name for o in policy.spec.objectives)
        return f"evidence not yet conclusive: no results yet for {names}"
    pending = tuple(r for r in assessment.results if r.verdict is not Verdict.PASS)
    if not pending:
        return None
    return f"evidence not yet conclusive: {describe_results(pending)}"


def conclude_or_wait(
    policy: ReleasePolicy,
    status: ReleaseStatus,
    now: datetime,
    success: Outcome,
    gap: str | None,
) -> Outcome:
    """`success` when nothing is missing; else hold until maxDuration, then onInconclusive."""
    if gap is None:
        return success
    elapsed = now - status.release_started_at
    limit = parse_duration(policy.spec.analysis.max_duration)
    if elapsed < limit:
        return hold(
            status,
            f"{gap} (release running {describe_duration(elapsed)} of at most "
            f"{describe_duration(limit)})",
        )
    over = (
        f"no conclusion after {describe_duration(elapsed)} (maxDuration {describe_duration(limit)})"
    )
    action = policy.spec.on_inconclusive
    if action == "promote":
        return replace(success, reason=f"{over}, onInconclusive promote: {success.reason}; {gap}")
    if action == "rollback":
        return rollback(policy, status, f"{over}, onInconclusive rollback; {gap}")
    return Outcome(
        Decision.HOLD,
        f"{over}, waiting for a person (onInconclusive hold); {gap}",
        status.split,
        Phase.INCONCLUSIVE,
        status.step,
    )


def samples_gap(min_samples: int, versions: list[str], assessment: Assessment) -> str | None:
    """Which versions have fewer than `min_samples` requests in the current step, if any."""
    short = [
        f"{name} {assessment.samples.get(name, 0)}"
        for name in versions
        if assessment.samples.get(name, 0) < min_samples
    ]
    if not short:
        return None
    return f"waiting for at least {min_samples} requests per version: {', '.join(short)}"
