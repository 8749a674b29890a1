"""A/B/n: every version serves, traffic learns which earns the best reward, and a winner is declared
only on evidence (P(best), expected loss, minimum duration and an always-valid interval against the
baseline). Objectives are guardrails: a version that fails one gets no more traffic and cannot win.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from policyengine.analysis import bandit
from policyengine.analysis.rewards import RewardAssessment
from policyengine.analysis.verdict import Assessment
from policyengine.errors import InvalidPolicyError
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import AbnStrategy, ReleasePolicy
from policyengine.strategies.guards import hold, hold_for_data, preempt, rollback
from policyengine.strategies.reasons import describe_duration, describe_number, describe_results
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Outcome, Phase, TrafficSplit

# A winner's expected loss must stay under this fraction of the baseline's reward unless the
# policy sets maxExpectedLoss.
DEFAULT_RELATIVE_LOSS = 0.01


def names(policy: ReleasePolicy) -> list[str]:
    """Versions in bandit order: the baseline first, then the candidates as listed."""
    return [policy.spec.baseline.name] + [v.name for v in policy.spec.candidates]


def split_of(policy: ReleasePolicy, weights: dict[str, int]) -> TrafficSplit:
    """Weights in the policy's order, so that equal splits compare equal."""
    return TrafficSplit.of({v.name: weights.get(v.name, 0) for v in policy.spec.versions})


def even_split(policy: ReleasePolicy, live: list[str]) -> TrafficSplit:
    """The opening split: live versions share 100 evenly, the baseline takes the remainder."""
    share, extra = divmod(100, len(live))
    weights = {name: share for name in live}
    weights[policy.spec.baseline.name] += extra
    return split_of(policy, weights)


def excluded_versions(
    policy: ReleasePolicy, status: ReleaseStatus, assessment: Assessment
) -> set[str]:
    """Versions out of the experiment: a failed guardrail now, or one that cut them to 0 earlier
    (with a floor, no live version is ever at 0 once the experiment has started)."""
    strategy = _strategy(policy)
    out = {r.version for r in assessment.failed}
    if strategy.floor > 0 and status.step >= 0:
        out |= {n for n in names(policy)[1:] if status.split.weight(n) == 0}
    return out


def decide(
    policy: ReleasePolicy, status: ReleaseStatus, assessment: Assessment, now: datetime
) -> Outcome:
    """The next A/B/n move for `policy` from `status`, given the assessment at `now`."""
    strategy = _strategy(policy)
    # Failed objectives exclude a version here instead of rolling the release back.
    if (early := preempt(policy, status, replace(assessment, results=()))) is not None:
        return early
    order = names(policy)
    out = excluded_versions(policy, status, assessment)
    live = [n for n in order if n not in out]
    if len(live) == 1:
        why = describe_results(assessment.failed) or "no candidate left"
        return rollback(policy, status, f"every candidate failed a guardrail: {why}")
    if status.step < 0:
        opening = even_split(policy, live)
        return Outcome(
            Decision.ADVANCE,
            f"A/B/n experiment started: {opening.trailer()} ({strategy.allocation} allocation)",
            opening,
            Phase.PROGRESSING,
            0,
        )
    serving_dropped = [n for n in out if status.split.weight(n) > 0]
    if serving_dropped:
        # Safety first: a failing version stops serving in this very pass, whatever the data.
        weights = status.split.as_dict()
        baseline = order[0]
        for name in serving_dropped:
            weights[baseline] += weights[name]
            weights[name] = 0
        dropped = split_of(policy, weights)
        failed = describe_results([r for r in assessment.failed if r.version in serving_dropped])
        return Outcome(
            Decision.ADVANCE,
            f"{', '.join(sorted(serving_dropped))} failed a guardrail and gets no more traffic: "
            f"{failed}",
            dropped,
            Phase.PROGRESSING,
            status.step + 1,
        )
    elapsed = now - status.release_started_at
    limit = parse_duration(policy.spec.analysis.max_duration)
    rewards = assessment.rewards
    if rewards is not None and elapsed >= limit and assessment.hold_reasons:
        # Data that never comes must not hold the experiment for ever either.
        why = "; ".join(assessment.hold_reasons)
        return _inconclusive(policy, status, rewards, order, elapsed, f"holding: {why}")
    if (waiting := hold_for_data(policy, status, assessment, now, None)) is not None:
        return waiting
    if rewards is None or rewards.hold_reason:
        why = "reward not assessed" if rewards is None else rewards.hold_reason
        return hold(status, f"holding: {why}")

    arrays = _arrays(rewards, order)
    min_duration = parse_duration(strategy.min_duration)
    winner = int(
        bandit.winners(
            arrays.p_best,
            arrays.loss,
            arrays.lower,
            arrays.upper,
            arrays.live,
            winner_probability=strategy.winner_probability,
            max_loss=np.array([_max_loss(strategy, rewards, order[0])]),
            old_enough=np.array([elapsed >= min_duration]),
        )[0]
    )
    if winner >= 0:
        return _win(policy, status, rewards, order[winner], elapsed)

    summary = _summary(rewards)
    if elapsed >= limit:
        return _inconclusive(policy, status, rewards, order, elapsed, summary)
    current = np.array([[status.split.weight(n) for n in order]], dtype=np.int64)
    weights = bandit.allocate(
        strategy.allocation,
        arrays.p_best,
        arrays.live,
        current,
        floor=strategy.floor,
        holdout=strategy.holdout,
        max_change=strategy.max_change,
    )[0]
    following = split_of(policy, {n: int(w) for n, w in zip(order, weights, strict=True)})
    why = f"no winner yet after {describe_duration(elapsed)}: {summary}"
    if following.same_as(status.split):
        return hold(status, why)
    return Outcome(
        Decision.ADVANCE,
        f"{why}; {strategy.allocation} allocation moves traffic to {following.trailer()}",
        following,
        Phase.PROGRESSING,
        status.step + 1,
    )


def _strategy(policy: ReleasePolicy) -> AbnStrategy:
    strategy = policy.spec.strategy
    if not isinstance(strategy, AbnStrategy):
        raise InvalidPolicyError(f"{policy.key}: abn.decide got a {strategy.type} strategy")
    return strategy


@dataclass(frozen=True)
class _Evidence:
    """One experiment's reward evidence as the bandit's arrays (a single row, baseline first)."""

    p_best: bandit.Array
    loss: bandit.Array
    lower: bandit.Array  # interval on (version − baseline), in "better" units
    upper: bandit.Array
    live: bandit.Mask


def _arrays(rewards: RewardAssessment, order: list[str]) -> _Evidence:
    rows = [rewards.of(n) for n in order]
    lower = np.array([[-np.inf if r is None or r.lower is None else r.lower for r in rows]])
    upper = np.array([[np.inf if r is None or r.upper is None else r.upper for r in rows]])
    if rewards.direction == "minimize":
        lower, upper = -upper, -lower
    return _Evidence(
        p_best=np.array([[0.0 if r is None else r.p_best for r in rows]]),
        loss=np.array([[np.inf if r is None else r.expected_loss for r in rows]]),
        lower=lower,
        upper=upper,
        live=np.array([[r is not None and r.live for r in rows]]),
    )


def _max_loss(strategy: AbnStrategy, rewards: RewardAssessment, baseline: str) -> float:
    if strategy.max_expected_loss is not None:
        return strategy.max_expected_loss
    row = rewards.of(baseline)
    level = 0.0 if row is None or row.estimate is None else abs(row.estimate)
    return DEFAULT_RELATIVE_LOSS * level


def _summary(rewards: RewardAssessment) -> str:
    parts = []
    for row in rewards.versions:
        text = f"{row.version} P(best) {row.p_best:.2f}"
        if row.estimate is not None:
            text += f", {rewards.metric} {describe_number(row.estimate)}"
        if not row.live:
            text += f" ({row.guardrail})"
        parts.append(text)
    return "; ".join(parts)


def _win(
    policy: ReleasePolicy,
    status: ReleaseStatus,
    rewards: RewardAssessment,
    winner: str,
    elapsed: object,
) -> Outcome:
    strategy = _strategy(policy)
    row = rewards.of(winner)
    assert row is not None
    baseline = policy.spec.baseline.name
    if winner == baseline:
        versus = "every candidate's always-valid interval on (candidate − baseline) excludes 0"
    else:
        versus = (
            f"{winner} − {baseline} in [{describe_number(row.lower or 0.0)}, "
            f"{describe_number(row.upper or 0.0)}], always valid"
        )
    verb = "promoted" if strategy.on_winner == "promote" else "proposed"
    reason = (
        f"{winner} wins the A/B/n test and is {verb} to 100 %: P(best) {row.p_best:.3f}, expected "
        f"loss {describe_number(row.expected_loss)} on {rewards.metric}, {versus}"
    )
    return Outcome(
        Decision.PROMOTE,
        reason,
        split_of(policy, {winner: 100}),
        Phase.SUCCEEDED,
        status.step + 1,
    )


def _inconclusive(
    policy: ReleasePolicy,
    status: ReleaseStatus,
    rewards: RewardAssessment,
    order: list[str],
    elapsed: object,
    summary: str,
) -> Outcome:
    limit = policy.spec.analysis.max_duration
    over = f"no winner after maxDuration {limit}: {summary}"
    action = policy.spec.on_inconclusive
    if action == "rollback":
        return rollback(policy, status, f"{over}; onInconclusive rollback")
    if action == "promote":
        live = [r for r in rewards.versions if r.live]
        leader = max(live, key=lambda r: r.p_best).version
        return Outcome(
            Decision.PROMOTE,
            f"{over}; onInconclusive promote: the likeliest best, {leader}, gets 100 %",
            split_of(policy, {leader: 100}),
            Phase.SUCCEEDED,
            status.step + 1,
        )
    return Outcome(
        Decision.HOLD,
        f"{over}; waiting for a person (onInconclusive hold)",
        status.split,
        Phase.INCONCLUSIVE,
        status.step,
    )
