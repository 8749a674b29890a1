"""Rules every strategy shares: pause, finished releases, failed objectives, missing data, dispatch.

Also holds the small builders the other strategy tests use.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policyengine.analysis.verdict import Assessment, Evidence, ObjectiveResult, Verdict
from policyengine.errors import InvalidPolicyError
from policyengine.policy.models import ReleasePolicy
from policyengine.strategies import (
    Decision,
    Phase,
    ReleaseStatus,
    TrafficSplit,
    apply,
    begin,
    bluegreen,
    canary,
    decide,
    mirror,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STABLE = TrafficSplit.of({"v1": 100, "v2": 0})

STRATEGIES: dict[str, dict[str, Any]] = {
    "canary": {"type": "canary", "steps": [10, 30, 60], "minDwell": "6m"},
    "blueGreen": {"type": "blueGreen", "validationWindow": "10m"},
    "mirror": {"type": "mirror", "percentage": 50, "observationWindow": "30m"},
}


def make_policy(
    strategy: dict[str, Any] | str = "canary",
    *,
    objectives: int = 1,
    paused: bool = False,
    on_inconclusive: str = "hold",
    max_duration: str = "2h",
    candidate: str = "v2",
    candidate_label: str | None = None,
    extra_versions: list[dict[str, Any]] | None = None,
) -> ReleasePolicy:
    spec_strategy = STRATEGIES[strategy] if isinstance(strategy, str) else strategy
    candidate_version: dict[str, Any] = {
        "name": candidate,
        "role": "candidate",
        "backend": {"header": f"model-{candidate}"},
    }
    if candidate_label:
        candidate_version["metricLabel"] = candidate_label
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "fraud", "namespace": "models"},
            "spec": {
                "paused": paused,
                "target": {"router": "istio-modelmesh", "manifests": [{"path": "vs.yaml"}]},
                "versions": [
                    {"name": "v1", "role": "baseline", "backend": {"header": "model-v1"}},
                    candidate_version,
                    *(extra_versions or []),
                ],
                "strategy": spec_strategy,
                "objectives": [
                    {"name": f"objective-{i}", "metric": "error_rate", "max": 0.01}
                    for i in range(objectives)
                ],
                "onInconclusive": on_inconclusive,
                "analysis": {"maxDuration": max_duration},
            },
        }
    )


def result(
    verdict: Verdict, objective: str = "objective-0", on_fail: str = "rollback"
) -> ObjectiveResult:
    return ObjectiveResult(
        objective=objective,
        version="v2",
        verdict=verdict,
        reason=f"upper bound vs margin 0.002 ({verdict})",
        evidence=Evidence(estimate=0.001, lower=-0.0005, upper=0.0031, samples=1200),
        on_fail=on_fail,
    )


def assessment(*verdicts: Verdict, samples: int = 10_000, **kwargs: Any) -> Assessment:
    return Assessment(
        results=tuple(result(v, f"objective-{i}") for i, v in enumerate(verdicts)),
        samples={"v1": samples, "v2": samples},
        **kwargs,
    )


PASSING = assessment(Verdict.PASS)


def started(policy: ReleasePolicy, at: datetime = T0) -> ReleaseStatus:
    """The status after the release's first decision (step 0 under way since `at`)."""
    status = begin(policy, None, STABLE, at)
    return apply(status, decide(policy, status, PASSING, at), at)


# --- rules every strategy applies -------------------------------------------------------------


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_pause_holds_and_changes_nothing(strategy: str) -> None:
    running = started(make_policy(strategy))
    paused = make_policy(strategy, paused=True)
    # Even a failing objective does not override a person's pause.
    for evidence in (PASSING, assessment(Verdict.FAIL)):
        outcome = decide(paused, running, evidence, T0 + timedelta(hours=5))
        assert outcome.decision is Decision.HOLD
        assert outcome.reason == "paused by a person"
        assert (outcome.split, outcome.phase, outcome.step) == (
            running.split,
            running.phase,
            running.step,
        )


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_pause_before_the_first_step_does_not_start(strategy: str) -> None:
    fresh = begin(make_policy(strategy), None, STABLE, T0)
    outcome = decide(make_policy(strategy, paused=True), fresh, PASSING, T0)
    assert (outcome.decision, outcome.split, outcome.step) == (Decision.HOLD, STABLE, -1)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize(
    ("phase", "words"),
    [
        (Phase.SUCCEEDED, "succeeded"),
        (Phase.FAILED, "failed"),
        (Phase.INCONCLUSIVE, "waiting for a person"),
    ],
)
def test_terminal_phases_are_done_with_the_split_unchanged(
    strategy: str, phase: Phase, words: str
) -> None:
    status = replace(started(make_policy(strategy)), phase=phase, last_reason="earlier reason")
    # A failing objective after the end changes nothing either.
    for evidence in (PASSING, assessment(Verdict.FAIL)):
        outcome = decide(make_policy(strategy), status, evidence, T0 + timedelta(days=1))
        assert outcome.decision is Decision.DONE
        assert words in outcome.reason and "earlier reason" in outcome.reason
        assert (outcome.split, outcome.phase, outcome.step) == (status.split, phase, status.step)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_a_failed_objective_rolls_back_at_once_naming_it(strategy: str) -> None:
    policy = make_policy(strategy, objectives=2)
    status = started(policy)
    failing = assessment(Verdict.PASS, Verdict.FAIL)
    # One second into the step: no dwell or window protects a failing candidate.
    outcome = decide(policy, status, failing, T0 + timedelta(seconds=1))
    assert outcome.decision is Decision.ROLLBACK
    assert outcome.phase is Phase.FAILED
    assert outcome.split == TrafficSplit.of({"v1": 100, "v2": 0})
    assert outcome.split.mirror_to is None
    assert "objective-1 on v2 fail" in outcome.reason
    assert "interval [-0.0005, 0.0031]" in outcome.reason
    assert "objective-0" not in outcome.reason


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_a_failed_objective_with_on_fail_hold_holds(strategy: str) -> None:
    policy = make_policy(strategy)
    status = started(policy)
    failing = Assessment(
        results=(result(Verdict.FAIL, on_fail="hold"),), samples={"v1": 10**6, "v2": 10**6}
    )
    outcome = decide(policy, status, failing, T0 + timedelta(hours=1))
    assert outcome.decision is Decision.HOLD
    assert (outcome.split, outcome.phase, outcome.step) == (status.split, status.phase, status.step)
    assert "objective-0 on v2 fail" in outcome.reason


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_rollback_beats_hold_when_both_fail(strategy: str) -> None:
    policy = make_policy(strategy, objectives=2)
    failing = Assessment(
        results=(
            result(Verdict.FAIL, "objective-0", on_fail="hold"),
            result(Verdict.FAIL, "objective-1", on_fail="rollback"),
        )
    )
    outcome = decide(policy, started(policy), failing, T0 + timedelta(minutes=1))
    assert outcome.decision is Decision.ROLLBACK


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_hold_reasons_hold_even_when_everything_passes(strategy: str) -> None:
    policy = make_policy(strategy, on_inconclusive="promote")
    status = started(policy)
    suspect = assessment(Verdict.PASS, hold_reasons=("sample-ratio mismatch p=1e-06", "no data"))
    outcome = decide(policy, status, suspect, T0 + timedelta(hours=1))
    assert outcome.decision is Decision.HOLD
    assert outcome.reason.startswith("holding: sample-ratio mismatch p=1e-06; no data")
    assert (outcome.split, outcome.phase) == (status.split, status.phase)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize(
    ("on_inconclusive", "decision", "phase"),
    [
        ("hold", Decision.HOLD, Phase.INCONCLUSIVE),
        ("rollback", Decision.ROLLBACK, Phase.FAILED),
        ("promote", None, None),
    ],
)
def test_max_duration_bounds_holds_for_missing_data_and_sample_ratio(
    strategy: str, on_inconclusive: str, decision: Decision | None, phase: Phase | None
) -> None:
    # A hold for missing data or a sample-ratio mismatch is inconclusive evidence like any other:
    # past maxDuration onInconclusive applies (it used to hold for ever).
    policy = make_policy(strategy, on_inconclusive=on_inconclusive)
    status = started(policy)
    suspect = assessment(Verdict.PASS, hold_reasons=("sample-ratio mismatch p=1e-06",))
    outcome = decide(policy, status, suspect, T0 + timedelta(hours=10))
    assert "no conclusion after 10h (maxDuration 2h)" in outcome.reason
    assert "sample-ratio mismatch p=1e-06" in outcome.reason
    if decision is None:
        # promote: the strategy's next move, never a hold
        assert outcome.decision in (Decision.ADVANCE, Decision.PROMOTE, Decision.DONE)
        assert outcome.phase in (Phase.PROGRESSING, Phase.SUCCEEDED)
    else:
        assert (outcome.decision, outcome.phase) == (decision, phase)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_the_first_move_needs_no_evidence(strategy: str) -> None:
    # Before step 0 the candidate gets no traffic, so there can be no data: that must not block.
    policy = make_policy(strategy)
    fresh = begin(policy, None, STABLE, T0)
    outcome = decide(policy, fresh, Assessment(hold_reasons=("no data",)), T0)
    assert (outcome.decision, outcome.step, outcome.phase) == (
        Decision.ADVANCE,
        0,
        Phase.PROGRESSING,
    )


@pytest.mark.parametrize(
    ("strategy", "module"),
    [("canary", canary), ("blueGreen", bluegreen), ("mirror", mirror)],
)
def test_decide_dispatches_on_the_strategy_type(strategy: str, module: Any) -> None:
    policy = make_policy(strategy)
    status = started(policy)
    later = T0 + timedelta(hours=1)
    assert decide(policy, status, PASSING, later) == module.decide(policy, status, PASSING, later)


@pytest.mark.parametrize(
    ("module", "strategy"),
    [(canary, "mirror"), (bluegreen, "canary"), (mirror, "blueGreen")],
)
def test_a_strategy_refuses_another_strategys_policy(module: Any, strategy: str) -> None:
    policy = make_policy(strategy)
    with pytest.raises(InvalidPolicyError, match="got a"):
        module.decide(policy, begin(policy, None, STABLE, T0), PASSING, T0)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_decisions_are_deterministic(strategy: str) -> None:
    policy = make_policy(strategy)
    status = started(policy)
    now = T0 + timedelta(minutes=7)
    assert decide(policy, status, PASSING, now) == decide(policy, status, PASSING, now)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_objectives_without_results_never_conclude(strategy: str) -> None:
    # An empty result list must not count as "all objectives pass".
    policy = make_policy(strategy, objectives=2)
    status = started(policy)
    if strategy == "canary":
        status = replace(status, step=2)
    outcome = decide(
        policy, status, Assessment(samples={"v1": 10**6, "v2": 10**6}), T0 + timedelta(minutes=59)
    )
    assert outcome.decision is Decision.HOLD
    assert "no results yet for objective-0, objective-1" in outcome.reason


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize(
    ("decided", "decision", "phase"),
    [("promote", Decision.PROMOTE, Phase.SUCCEEDED), ("rollback", Decision.ROLLBACK, Phase.FAILED)],
)
def test_a_person_decides_an_inconclusive_release_by_committing_on_inconclusive(
    strategy: str, decided: str, decision: Decision, phase: Phase
) -> None:
    waiting = replace(started(make_policy(strategy, max_duration="1h")), phase=Phase.INCONCLUSIVE)
    if strategy == "canary":  # a canary waits for a person at its last step
        waiting = replace(waiting, step=2, split=TrafficSplit.of({"v1": 40, "v2": 60}))
    later = T0 + timedelta(hours=2)
    undecided = decide(make_policy(strategy, max_duration="1h"), waiting, PASSING, later)
    assert undecided.decision is Decision.DONE
    inconclusive = assessment(Verdict.INCONCLUSIVE)
    policy = make_policy(strategy, max_duration="1h", on_inconclusive=decided)
    outcome = decide(policy, waiting, inconclusive, later)
    if strategy == "mirror" and decided == "promote":
        # A mirror has no switch: "promote" ends the observation as a success.
        assert outcome.phase is Phase.SUCCEEDED
    else:
        assert (outcome.decision, outcome.phase) == (decision, phase)
    assert f"onInconclusive {decided}" in outcome.reason
