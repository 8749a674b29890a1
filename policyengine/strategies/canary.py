"""Canary: the candidate's weight climbs step by step, each held for a minimum dwell, then promoted."""

from __future__ import annotations

from datetime import datetime

from policyengine.analysis.verdict import Assessment
from policyengine.errors import InvalidPolicyError
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import CanaryStrategy, ReleasePolicy
from policyengine.strategies.guards import (
    conclude_or_wait,
    evidence_gap,
    hold,
    hold_for_data,
    preempt,
    samples_gap,
)
from policyengine.strategies.reasons import describe_duration, objectives_passed
from policyengine.strategies.splits import candidate_only, candidate_split, released_candidate
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Outcome, Phase


def decide(
    policy: ReleasePolicy, status: ReleaseStatus, assessment: Assessment, now: datetime
) -> Outcome:
    """The next canary move for `policy` from `status`, given the assessment at `now`."""
    strategy = policy.spec.strategy
    if not isinstance(strategy, CanaryStrategy):
        raise InvalidPolicyError(f"{policy.key}: canary.decide got a {strategy.type} strategy")
    weights = strategy.weights()
    total = len(weights)
    candidate = released_candidate(policy)

    if (early := preempt(policy, status, assessment)) is not None:
        return early
    if status.step < 0:
        # Not gated on evidence: the candidate gets no traffic before step 1, so none can exist.
        return Outcome(
            Decision.ADVANCE,
            f"release started: step 1/{total} sends {weights[0]} % to {candidate}",
            candidate_split(policy, weights[0]),
            Phase.PROGRESSING,
            0,
        )
    # A policy edited to fewer steps mid-release continues from its last step.
    step = min(status.step, total - 1)
    at = f"step {step + 1}/{total} ({weights[step]} %)"
    dwell = parse_duration(strategy.min_dwell)
    held = now - status.step_started_at
    if step < total - 1:
        following = weights[step + 1]
        move = Outcome(
            Decision.ADVANCE,
            f"step {step + 2}/{total} sends {following} % to {candidate} after {at} held "
            f"{describe_duration(held)} with no objective failing",
            candidate_split(policy, following),
            Phase.PROGRESSING,
            step + 1,
        )
    else:
        move = _promotion(policy, at, total)
    if waiting := hold_for_data(policy, status, assessment, now, move if held >= dwell else None):
        return waiting
    if held < dwell:
        return hold(status, f"{at} held {describe_duration(held)} of {describe_duration(dwell)}")

    serving = [name for name, weight in status.split.weights if weight > 0]
    if strategy.min_samples and (short := samples_gap(strategy.min_samples, serving, assessment)):
        # The inconclusive clock applies: a step that never gets traffic must not wait forever.
        # onInconclusive promote then moves to the next step, never past the schedule: only the
        # last step promotes.
        return conclude_or_wait(policy, status, now, move, f"{at} {short}")
    if step < total - 1:
        return move
    gap = evidence_gap(policy, assessment)
    return conclude_or_wait(policy, status, now, move, gap)


def _promotion(policy: ReleasePolicy, at: str, total: int) -> Outcome:
    candidate = released_candidate(policy)
    why = objectives_passed(policy, "no objectives, promoted on time alone")
    return Outcome(
        Decision.PROMOTE,
        f"promoted {candidate} to 100 % after {at}: {why}",
        candidate_only(policy),
        Phase.SUCCEEDED,
        total,
    )
