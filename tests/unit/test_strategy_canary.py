"""Canary: steps, minimum dwell, minimum samples, promotion and the inconclusive end."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from policyengine.analysis.verdict import Assessment, Verdict
from policyengine.strategies import Decision, Phase, TrafficSplit, apply, begin
from policyengine.strategies.canary import decide
from tests.unit.test_strategy_common import PASSING, STABLE, T0, assessment, make_policy, started

CANARY = {"type": "canary", "steps": [10, 30, 60], "minDwell": "6m", "minSamples": 500}
P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741


def split(candidate: int) -> TrafficSplit:
    return TrafficSplit.of({"v1": 100 - candidate, "v2": candidate})


# fmt: off
CASES: list[tuple[str, int, timedelta, Assessment, Decision, int, int, Phase, str]] = [
    # id, step, held, assessment -> decision, step after, candidate weight, phase, reason part
    ("start", -1, timedelta(0), PASSING, Decision.ADVANCE, 0, 10, Phase.PROGRESSING,
     "release started: step 1/3 sends 10 % to v2"),
    ("dwell not over", 1, timedelta(minutes=4, seconds=12), PASSING, Decision.HOLD, 1, 30,
     Phase.PROGRESSING, "step 2/3 (30 %) held 4m12s of 6m"),
    ("one second short", 0, timedelta(minutes=5, seconds=59), PASSING, Decision.HOLD, 0, 10,
     Phase.PROGRESSING, "held 5m59s of 6m"),
    ("dwell exactly over", 0, timedelta(minutes=6), PASSING, Decision.ADVANCE, 1, 30,
     Phase.PROGRESSING, "step 2/3 sends 30 % to v2 after step 1/3 (10 %) held 6m"),
    ("inconclusive still advances", 1, timedelta(minutes=7), assessment(I), Decision.ADVANCE, 2,
     60, Phase.PROGRESSING, "step 3/3 sends 60 %"),
    ("too few samples", 1, timedelta(minutes=7), assessment(P, samples=499), Decision.HOLD, 1,
     30, Phase.PROGRESSING, "waiting for at least 500 requests per version: v1 499, v2 499"),
    ("exactly enough samples", 1, timedelta(minutes=7), assessment(P, samples=500),
     Decision.ADVANCE, 2, 60, Phase.PROGRESSING, "step 3/3"),
    ("last step passes", 2, timedelta(minutes=6), PASSING, Decision.PROMOTE, 3, 100,
     Phase.SUCCEEDED, "promoted v2 to 100 % after step 3/3 (60 %): all 1 objective pass"),
    ("last step inconclusive", 2, timedelta(minutes=6), assessment(I), Decision.HOLD, 2, 60,
     Phase.PROGRESSING,
     "evidence not yet conclusive: objective-0 on v2 inconclusive (estimate 0.001, "
     "interval [-0.0005, 0.0031], n=1200 vs 0): upper bound vs margin 0.002 (inconclusive)"),
    ("last step error verdict", 2, timedelta(minutes=6), assessment(Verdict.ERROR),
     Decision.HOLD, 2, 60, Phase.PROGRESSING, "objective-0 on v2 error"),
    ("fail at step 1", 0, timedelta(seconds=30), assessment(F), Decision.ROLLBACK, 0, 0,
     Phase.FAILED, "objective failed: objective-0 on v2 fail"),
    ("fail at last step", 2, timedelta(minutes=30), assessment(F), Decision.ROLLBACK, 2, 0,
     Phase.FAILED, "objective failed"),
    ("no data", 1, timedelta(minutes=30), assessment(P, hold_reasons=("no data for v2",)),
     Decision.HOLD, 1, 30, Phase.PROGRESSING, "holding: no data for v2"),
]
# fmt: on


@pytest.mark.parametrize(
    ("step", "held", "evidence", "decision", "step_after", "weight", "phase", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_canary_transitions(
    step: int,
    held: timedelta,
    evidence: Assessment,
    decision: Decision,
    step_after: int,
    weight: int,
    phase: Phase,
    reason: str,
) -> None:
    policy = make_policy(CANARY)
    weights = [0, 10, 30, 60]
    status = replace(
        begin(policy, None, split(weights[step + 1]), T0), step=step, step_started_at=T0
    )
    outcome = decide(policy, status, evidence, T0 + held)
    assert outcome.decision is decision
    assert outcome.step == step_after
    assert outcome.split == split(weight)
    assert outcome.phase is phase
    assert reason in outcome.reason


@pytest.mark.parametrize(
    ("on_inconclusive", "decision", "weight", "phase"),
    [
        ("hold", Decision.HOLD, 60, Phase.INCONCLUSIVE),
        ("rollback", Decision.ROLLBACK, 0, Phase.FAILED),
        ("promote", Decision.PROMOTE, 100, Phase.SUCCEEDED),
    ],
)
@pytest.mark.parametrize(
    ("evidence", "why"),
    [(assessment(I), "evidence not yet conclusive"), (assessment(P, samples=3), "requests")],
    ids=["inconclusive verdict", "too few samples"],
)
def test_canary_after_max_duration_follows_on_inconclusive(
    on_inconclusive: str,
    decision: Decision,
    weight: int,
    phase: Phase,
    evidence: Assessment,
    why: str,
) -> None:
    policy = make_policy(CANARY, on_inconclusive=on_inconclusive, max_duration="1h")
    status = replace(started(policy), step=2, split=split(60))
    before = decide(policy, status, evidence, T0 + timedelta(minutes=59, seconds=59))
    assert before.decision is Decision.HOLD and before.phase is Phase.PROGRESSING
    assert "release running 59m59s of at most 1h" in before.reason
    after = decide(policy, status, evidence, T0 + timedelta(hours=1))
    assert (after.decision, after.split, after.phase) == (decision, split(weight), phase)
    assert "no conclusion after 1h (maxDuration 1h)" in after.reason
    assert why in after.reason


def test_canary_samples_count_only_versions_serving_traffic() -> None:
    policy = make_policy({"type": "canary", "steps": [0, 50], "minDwell": "1m", "minSamples": 10})
    status = replace(started(policy), split=split(0))
    only_baseline = Assessment(samples={"v1": 10})
    outcome = decide(policy, status, only_baseline, T0 + timedelta(minutes=1))
    assert (outcome.decision, outcome.split) == (Decision.ADVANCE, split(50))


def test_canary_step_weight_and_max_weight() -> None:
    policy = make_policy({"type": "canary", "stepWeight": 20, "maxWeight": 60, "minDwell": "1m"})
    walk = _walk(policy, PASSING, timedelta(minutes=1))
    assert [(o.decision, o.split.weight("v2")) for o in walk] == [
        (Decision.ADVANCE, 20),
        (Decision.ADVANCE, 40),
        (Decision.ADVANCE, 60),
        (Decision.PROMOTE, 100),
    ]


def test_canary_without_objectives_promotes_on_time_alone() -> None:
    policy = make_policy(CANARY, objectives=0)
    walk = _walk(policy, Assessment(samples={"v1": 500, "v2": 500}), timedelta(minutes=6))
    assert [o.decision for o in walk] == [Decision.ADVANCE] * 3 + [Decision.PROMOTE]
    assert walk[-1].reason.endswith("no objectives, promoted on time alone")


def test_canary_walks_from_start_to_promotion_holding_between_steps() -> None:
    policy = make_policy(CANARY)
    status = begin(policy, None, STABLE, T0)
    seen: list[tuple[int, Decision, int, int]] = []
    for minute in range(0, 40):
        now = T0 + timedelta(minutes=minute)
        outcome = decide(policy, status, PASSING, now)
        status = apply(status, outcome, now)
        if outcome.decision is not Decision.HOLD:
            seen.append((minute, outcome.decision, status.split.weight("v2"), status.step))
        if outcome.decision is Decision.DONE:
            break
    assert seen == [
        (0, Decision.ADVANCE, 10, 0),
        (6, Decision.ADVANCE, 30, 1),
        (12, Decision.ADVANCE, 60, 2),
        (18, Decision.PROMOTE, 100, 3),
        (19, Decision.DONE, 100, 3),
    ]
    assert status.phase is Phase.SUCCEEDED
    assert status.stable == "v2"
    assert status.split == split(100)


@pytest.mark.parametrize("failing_at_step", [0, 1, 2])
def test_canary_rolls_back_from_any_step(failing_at_step: int) -> None:
    policy = make_policy(CANARY)
    status = begin(policy, None, STABLE, T0)
    now = T0
    for _ in range(failing_at_step + 1):
        status = apply(status, decide(policy, status, PASSING, now), now)
        now += timedelta(minutes=6)
    assert status.step == failing_at_step
    outcome = decide(policy, status, assessment(F), now - timedelta(minutes=3))
    status = apply(status, outcome, now)
    assert (outcome.decision, status.phase, status.split) == (
        Decision.ROLLBACK,
        Phase.FAILED,
        split(0),
    )
    assert status.stable is None
    assert decide(policy, status, PASSING, now).decision is Decision.DONE


def test_canary_with_fewer_steps_after_an_edit_continues_from_the_last() -> None:
    policy = make_policy({"type": "canary", "steps": [10, 30], "minDwell": "6m"})
    status = replace(started(policy), step=4, split=split(60))
    outcome = decide(policy, status, PASSING, T0 + timedelta(minutes=6))
    assert (outcome.decision, outcome.split) == (Decision.PROMOTE, split(100))


def test_canary_extra_candidates_stay_at_zero() -> None:
    policy = make_policy(
        CANARY, extra_versions=[{"name": "v3", "role": "candidate", "backend": {"header": "m3"}}]
    )
    outcome = decide(policy, begin(policy, None, STABLE, T0), PASSING, T0)
    assert outcome.split.weights == (("v1", 90), ("v2", 10), ("v3", 0))


def _walk(policy: Any, evidence: Assessment, every: timedelta) -> list[Any]:
    """Every decision that is not a hold, deciding each `every` until the release is done."""
    status = begin(policy, None, STABLE, T0)
    now, moves = T0, []
    while status.phase is Phase.PROGRESSING:
        outcome = decide(policy, status, evidence, now)
        status = apply(status, outcome, now)
        if outcome.decision is not Decision.HOLD:
            moves.append(outcome)
        now += every
        assert now < T0 + timedelta(days=1), "release never finished"
    return moves
