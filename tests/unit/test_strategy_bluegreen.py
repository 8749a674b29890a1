"""Blue-green: validation at 0 % (optionally mirrored), one switch, rollback switches back."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from policyengine.analysis.verdict import Assessment, Verdict
from policyengine.strategies import Decision, Phase, TrafficSplit, apply, begin
from policyengine.strategies.bluegreen import decide
from tests.unit.test_strategy_common import PASSING, STABLE, T0, assessment, make_policy, started

PLAIN = {"type": "blueGreen", "validationWindow": "10m", "minSamples": 100}
MIRRORED = {**PLAIN, "validationTraffic": "mirror", "mirrorPercentage": 25}
P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741

VALIDATING = TrafficSplit.of({"v1": 100, "v2": 0})
VALIDATING_MIRRORED = TrafficSplit.of({"v1": 100, "v2": 0}, "v2", 25)
SWITCHED = TrafficSplit.of({"v1": 0, "v2": 100})

# fmt: off
CASES: list[tuple[str, dict[str, object], timedelta, Assessment, Decision, TrafficSplit, Phase, str]] = [
    # id, strategy, since validation began, assessment -> decision, split, phase, reason part
    ("window running", PLAIN, timedelta(minutes=9, seconds=59), PASSING, Decision.HOLD,
     VALIDATING, Phase.PROGRESSING, "validating v2: 9m59s of 10m"),
    ("window over, pass", PLAIN, timedelta(minutes=10), PASSING, Decision.PROMOTE, SWITCHED,
     Phase.SUCCEEDED, "switched all traffic to v2 after validating it for 10m: all 1 objective pass"),
    ("mirrored, window over", MIRRORED, timedelta(minutes=10), PASSING, Decision.PROMOTE, SWITCHED,
     Phase.SUCCEEDED, "switched all traffic to v2"),
    ("mirrored, window running", MIRRORED, timedelta(minutes=3), PASSING, Decision.HOLD,
     VALIDATING_MIRRORED, Phase.PROGRESSING, "validating v2: 3m of 10m"),
    ("too few samples", PLAIN, timedelta(minutes=10), assessment(P, samples=99), Decision.HOLD,
     VALIDATING, Phase.PROGRESSING, "waiting for at least 100 requests per version: v2 99"),
    ("inconclusive", PLAIN, timedelta(minutes=20), assessment(I), Decision.HOLD, VALIDATING,
     Phase.PROGRESSING, "evidence not yet conclusive: objective-0 on v2 inconclusive"),
    ("fail, plain", PLAIN, timedelta(minutes=1), assessment(F), Decision.ROLLBACK, VALIDATING,
     Phase.FAILED, "objective failed: objective-0 on v2 fail"),
    ("fail, mirror off", MIRRORED, timedelta(minutes=1), assessment(F), Decision.ROLLBACK,
     VALIDATING, Phase.FAILED, "objective failed"),
]
# fmt: on


@pytest.mark.parametrize(
    ("strategy", "elapsed", "evidence", "decision", "split", "phase", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bluegreen_transitions(
    strategy: dict[str, object],
    elapsed: timedelta,
    evidence: Assessment,
    decision: Decision,
    split: TrafficSplit,
    phase: Phase,
    reason: str,
) -> None:
    policy = make_policy(strategy)
    status = started(policy)
    outcome = decide(policy, status, evidence, T0 + elapsed)
    assert (outcome.decision, outcome.split, outcome.phase) == (decision, split, phase)
    assert reason in outcome.reason


@pytest.mark.parametrize(
    ("strategy", "split", "words"),
    [
        (PLAIN, VALIDATING, "validating v2 at 0 % of live traffic (no live traffic) for 10m"),
        (MIRRORED, VALIDATING_MIRRORED, "(mirroring 25 % of live traffic to it)"),
    ],
)
def test_bluegreen_starts_validation_with_the_candidate_at_zero(
    strategy: dict[str, object], split: TrafficSplit, words: str
) -> None:
    policy = make_policy(strategy)
    # Whatever the manifests said (here a stray 5 %), validation is at 0 % of live traffic.
    fresh = begin(policy, None, TrafficSplit.of({"v1": 95, "v2": 5}), T0)
    outcome = decide(policy, fresh, PASSING, T0)
    assert (outcome.decision, outcome.split, outcome.step) == (Decision.ADVANCE, split, 0)
    assert words in outcome.reason


@pytest.mark.parametrize(
    ("on_inconclusive", "decision", "split", "phase"),
    [
        ("hold", Decision.HOLD, VALIDATING_MIRRORED, Phase.INCONCLUSIVE),
        ("rollback", Decision.ROLLBACK, VALIDATING, Phase.FAILED),
        ("promote", Decision.PROMOTE, SWITCHED, Phase.SUCCEEDED),
    ],
)
def test_bluegreen_after_max_duration_follows_on_inconclusive(
    on_inconclusive: str, decision: Decision, split: TrafficSplit, phase: Phase
) -> None:
    policy = make_policy(MIRRORED, on_inconclusive=on_inconclusive, max_duration="30m")
    status = started(policy)
    assert decide(policy, status, assessment(I), T0 + timedelta(minutes=29)).phase is (
        Phase.PROGRESSING
    )
    outcome = decide(policy, status, assessment(I), T0 + timedelta(minutes=30))
    assert (outcome.decision, outcome.split, outcome.phase) == (decision, split, phase)
    assert "no conclusion after 30m (maxDuration 30m)" in outcome.reason


def test_bluegreen_walks_to_one_switch_and_records_the_stable_version() -> None:
    policy = make_policy(MIRRORED, objectives=0)
    status = begin(policy, None, STABLE, T0)
    moves, reasons = [], []
    for minute in range(0, 15):
        now = T0 + timedelta(minutes=minute)
        outcome = decide(policy, status, Assessment(samples={"v2": 100}), now)
        status = apply(status, outcome, now)
        if outcome.decision is not Decision.HOLD:
            moves.append((minute, outcome.decision, outcome.split))
            reasons.append(outcome.reason)
    assert moves[:2] == [
        (0, Decision.ADVANCE, VALIDATING_MIRRORED),
        (10, Decision.PROMOTE, SWITCHED),
    ]
    assert {decision for _, decision, _ in moves[2:]} == {Decision.DONE}
    assert (status.phase, status.stable, status.step) == (Phase.SUCCEEDED, "v2", 1)
    assert reasons[1].endswith("no objectives, switched on time alone")


def test_bluegreen_rollback_switches_back_after_a_late_failure() -> None:
    policy = make_policy(MIRRORED)
    status = replace(started(policy), split=VALIDATING_MIRRORED)
    outcome = decide(policy, status, assessment(F), T0 + timedelta(minutes=9))
    assert outcome.split == VALIDATING and outcome.split.mirror_to is None
