"""Mirror: mirroring on for the observation window, then off, recording the outcome."""

from __future__ import annotations

from datetime import timedelta

import pytest

from policyengine.analysis.verdict import Assessment, Verdict
from policyengine.strategies import Decision, Phase, TrafficSplit, apply, begin
from policyengine.strategies.mirror import decide
from tests.unit.test_strategy_common import PASSING, STABLE, T0, assessment, make_policy, started

MIRROR = {"type": "mirror", "percentage": 50, "observationWindow": "30m", "minSamples": 1000}
P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741
MIRRORING = TrafficSplit.of({"v1": 100, "v2": 0}, "v2", 50)
OFF = TrafficSplit.of({"v1": 100, "v2": 0})

# fmt: off
CASES: list[tuple[str, timedelta, Assessment, Decision, TrafficSplit, Phase, str]] = [
    # id, since mirroring began, assessment -> decision, split, phase, reason part
    ("observing", timedelta(minutes=12), PASSING, Decision.HOLD, MIRRORING, Phase.PROGRESSING,
     "mirroring 50 % to v2: observed 12m of 30m"),
    ("one second short", timedelta(minutes=29, seconds=59), PASSING, Decision.HOLD, MIRRORING,
     Phase.PROGRESSING, "observed 29m59s of 30m"),
    ("window over, pass", timedelta(minutes=30), PASSING, Decision.DONE, OFF, Phase.SUCCEEDED,
     "mirroring to v2 stopped after 30m: all 1 objective pass"),
    ("too few mirrored requests", timedelta(minutes=30), assessment(P, samples=999),
     Decision.HOLD, MIRRORING, Phase.PROGRESSING, "at least 1000 requests per version: v2 999"),
    ("inconclusive", timedelta(minutes=45), assessment(I), Decision.HOLD, MIRRORING,
     Phase.PROGRESSING, "evidence not yet conclusive: objective-0 on v2 inconclusive"),
    ("fail", timedelta(minutes=5), assessment(F), Decision.ROLLBACK, OFF, Phase.FAILED,
     "objective failed: objective-0 on v2 fail"),
    ("provider down", timedelta(minutes=40), assessment(P, hold_reasons=("prometheus down",)),
     Decision.HOLD, MIRRORING, Phase.PROGRESSING, "holding: prometheus down"),
]
# fmt: on


@pytest.mark.parametrize(
    ("elapsed", "evidence", "decision", "split", "phase", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_mirror_transitions(
    elapsed: timedelta,
    evidence: Assessment,
    decision: Decision,
    split: TrafficSplit,
    phase: Phase,
    reason: str,
) -> None:
    policy = make_policy(MIRROR)
    outcome = decide(policy, started(policy), evidence, T0 + elapsed)
    assert (outcome.decision, outcome.split, outcome.phase) == (decision, split, phase)
    assert reason in outcome.reason


def test_mirror_first_decision_turns_mirroring_on_without_moving_live_traffic() -> None:
    policy = make_policy(MIRROR)
    outcome = decide(policy, begin(policy, None, STABLE, T0), PASSING, T0)
    assert (outcome.decision, outcome.split, outcome.step) == (Decision.ADVANCE, MIRRORING, 0)
    assert outcome.reason == "mirroring 50 % of live traffic to v2 for 30m"
    assert outcome.split.trailer() == "v1=100,v2=0,mirror=v2:50"


@pytest.mark.parametrize(
    ("on_inconclusive", "decision", "phase"),
    [
        ("hold", Decision.HOLD, Phase.INCONCLUSIVE),
        ("rollback", Decision.ROLLBACK, Phase.FAILED),
        # A mirror has no switch: promote means "done, succeeded", with mirroring off.
        ("promote", Decision.DONE, Phase.SUCCEEDED),
    ],
)
def test_mirror_after_max_duration_follows_on_inconclusive(
    on_inconclusive: str, decision: Decision, phase: Phase
) -> None:
    policy = make_policy(MIRROR, on_inconclusive=on_inconclusive, max_duration="1h")
    status = started(policy)
    held = decide(policy, status, assessment(I), T0 + timedelta(minutes=59))
    assert (held.decision, held.phase) == (Decision.HOLD, Phase.PROGRESSING)
    outcome = decide(policy, status, assessment(I), T0 + timedelta(hours=1))
    assert (outcome.decision, outcome.phase) == (decision, phase)
    expected = MIRRORING if on_inconclusive == "hold" else OFF
    assert outcome.split == expected


@pytest.mark.parametrize(
    ("evidence", "phase", "last"),
    [
        (Assessment(samples={"v2": 1000}), Phase.SUCCEEDED, Decision.DONE),
        (assessment(F), Phase.FAILED, Decision.ROLLBACK),
    ],
    ids=["no objectives", "failing"],
)
def test_mirror_walks_its_whole_course(evidence: Assessment, phase: Phase, last: Decision) -> None:
    policy = make_policy(MIRROR, objectives=0 if phase is Phase.SUCCEEDED else 1)
    status = begin(policy, None, STABLE, T0)
    moves = []
    for minute in range(0, 40, 5):
        now = T0 + timedelta(minutes=minute)
        # Before mirroring is on there is nothing to assess.
        outcome = decide(policy, status, evidence if status.step >= 0 else PASSING, now)
        status = apply(status, outcome, now)
        if outcome.decision is not Decision.HOLD:
            moves.append(outcome.decision)
    assert moves[:2] == [Decision.ADVANCE, last]
    assert set(moves[2:]) == {Decision.DONE}
    assert (status.phase, status.split) == (phase, OFF)
    # Mirroring records an outcome; it promotes nothing.
    assert status.stable is None
