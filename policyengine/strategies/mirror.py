"""Mirror (shadow): copy live traffic to the candidate for an observation window, then stop and
record the outcome; live weights never change."""

from __future__ import annotations

from datetime import datetime

from policyengine.analysis.verdict import Assessment
from policyengine.errors import InvalidPolicyError
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import MirrorStrategy, ReleasePolicy
from policyengine.strategies.guards import (
    conclude_or_wait,
    evidence_gap,
    hold,
    hold_for_data,
    preempt,
    samples_gap,
)
from policyengine.strategies.reasons import describe_duration, describe_percent, objectives_passed
from policyengine.strategies.splits import released_candidate, with_mirror
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Outcome, Phase

MIRRORING = 0  # the only step: mirroring on


def decide(
    policy: ReleasePolicy, status: ReleaseStatus, assessment: Assessment, now: datetime
) -> Outcome:
    """The next mirror move for `policy` from `status`, given the assessment at `now`."""
    strategy = policy.spec.strategy
    if not isinstance(strategy, MirrorStrategy):
        raise InvalidPolicyError(f"{policy.key}: mirror.decide got a {strategy.type} strategy")
    candidate = released_candidate(policy)
    window = parse_duration(strategy.observation_window)
    share = describe_percent(strategy.percentage)

    if (early := preempt(policy, status, assessment)) is not None:
        return early
    if status.step < MIRRORING:
        return Outcome(
            Decision.ADVANCE,
            f"mirroring {share} of live traffic to {candidate} for {describe_duration(window)}",
            with_mirror(status.split, candidate, strategy.percentage),
            Phase.PROGRESSING,
            MIRRORING,
        )
    observed = now - status.step_started_at
    why = objectives_passed(policy, "no objectives, observation window over")
    # A mirror has nothing to switch: success is recorded, and the mirror turned off.
    finished = Outcome(
        Decision.DONE,
        f"mirroring to {candidate} stopped after {describe_duration(observed)}: {why}",
        with_mirror(status.split, None, 0.0),
        Phase.SUCCEEDED,
        MIRRORING,
    )
    over = finished if observed >= window else None
    if (waiting := hold_for_data(policy, status, assessment, now, over)) is not None:
        return waiting
    if observed < window:
        return hold(
            status,
            f"mirroring {share} to {candidate}: observed {describe_duration(observed)} of "
            f"{describe_duration(window)}",
        )
    gap = (
        samples_gap(strategy.min_samples, [candidate], assessment) if strategy.min_samples else None
    )
    return conclude_or_wait(policy, status, now, finished, gap or evidence_gap(policy, assessment))
