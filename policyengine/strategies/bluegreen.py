"""Blue-green: the candidate is validated at 0 % of live traffic, then all traffic switches at once."""

from __future__ import annotations

from datetime import datetime

from policyengine.analysis.verdict import Assessment
from policyengine.errors import InvalidPolicyError
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import BlueGreenStrategy, ReleasePolicy
from policyengine.strategies.guards import (
    conclude_or_wait,
    evidence_gap,
    hold,
    hold_for_data,
    preempt,
    samples_gap,
)
from policyengine.strategies.reasons import describe_duration, describe_percent, objectives_passed
from policyengine.strategies.splits import candidate_only, candidate_split, released_candidate
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Outcome, Phase

VALIDATING = 0  # step while the candidate is validated
SWITCHED = 1  # step after the switch


def decide(
    policy: ReleasePolicy, status: ReleaseStatus, assessment: Assessment, now: datetime
) -> Outcome:
    """The next blue-green move for `policy` from `status`, given the assessment at `now`."""
    strategy = policy.spec.strategy
    if not isinstance(strategy, BlueGreenStrategy):
        raise InvalidPolicyError(f"{policy.key}: bluegreen.decide got a {strategy.type} strategy")
    candidate = released_candidate(policy)
    mirrored = strategy.validation_traffic == "mirror"
    window = parse_duration(strategy.validation_window)

    if (early := preempt(policy, status, assessment)) is not None:
        return early
    if status.step < VALIDATING:
        traffic = (
            f"mirroring {describe_percent(strategy.mirror_percentage)} of live traffic to it"
            if mirrored
            else "no live traffic"
        )
        return Outcome(
            Decision.ADVANCE,
            f"validating {candidate} at 0 % of live traffic ({traffic}) for "
            f"{describe_duration(window)}",
            candidate_split(policy, 0, strategy.mirror_percentage if mirrored else 0.0),
            Phase.PROGRESSING,
            VALIDATING,
        )
    # The window runs from the moment the validation split was written (the release's first pass).
    validated = now - status.step_started_at
    why = objectives_passed(policy, "no objectives, switched on time alone")
    switch = Outcome(
        Decision.PROMOTE,
        f"switched all traffic to {candidate} after validating it for "
        f"{describe_duration(validated)}: {why}",
        candidate_only(policy),
        Phase.SUCCEEDED,
        SWITCHED,
    )
    over = switch if validated >= window else None
    if (waiting := hold_for_data(policy, status, assessment, now, over)) is not None:
        return waiting
    if validated < window:
        return hold(
            status,
            f"validating {candidate}: {describe_duration(validated)} of "
            f"{describe_duration(window)}",
        )
    gap = (
        samples_gap(strategy.min_samples, [candidate], assessment) if strategy.min_samples else None
    )
    return conclude_or_wait(policy, status, now, switch, gap or evidence_gap(policy, assessment))
