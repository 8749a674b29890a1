"""Release lifecycle: release ids, where a release begins, and the status that follows an outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from policyengine.strategies import (
    Decision,
    Outcome,
    Phase,
    TrafficSplit,
    apply,
    begin,
    decide,
    release_id,
)
from tests.unit.test_strategy_common import PASSING, STABLE, T0, make_policy, started

LATER = T0 + timedelta(minutes=7)


def test_release_id_is_short_and_stable() -> None:
    first, second = release_id(make_policy()), release_id(make_policy())
    assert first == second
    assert len(first) == 12 and int(first, 16) >= 0


@pytest.mark.parametrize(
    "changed",
    [
        {"candidate": "v3"},
        {"candidate_label": "fraud-v2-label"},
        {"extra_versions": [{"name": "v3", "role": "candidate"}]},
    ],
    ids=["candidate name", "metric label", "another candidate"],
)
def test_release_id_changes_with_the_candidate(changed: dict[str, Any]) -> None:
    assert release_id(make_policy(**changed)) != release_id(make_policy())


@pytest.mark.parametrize(
    "unchanged",
    [{"paused": True}, {"objectives": 3}, {"max_duration": "5h"}, {"strategy": "mirror"}],
    ids=["pause", "objectives", "analysis", "strategy"],
)
def test_release_id_ignores_everything_but_the_candidate(unchanged: dict[str, Any]) -> None:
    assert release_id(make_policy(**unchanged)) == release_id(make_policy())


def test_release_id_changes_with_the_candidates_backend() -> None:
    policy = make_policy()
    versions = list(policy.spec.versions)
    moved = versions[1].model_copy(
        update={"backend": versions[1].backend.model_copy(update={"header": "elsewhere"})}
    )
    other = policy.model_copy(
        update={"spec": policy.spec.model_copy(update={"versions": [versions[0], moved]})}
    )
    assert release_id(other) != release_id(policy)


def test_begin_without_a_previous_status_starts_a_release() -> None:
    policy = make_policy()
    current = TrafficSplit.of({"v1": 100, "v2": 0})
    status = begin(policy, None, current, T0)
    assert status.policy == "models/fraud"
    assert (status.phase, status.step, status.split) == (Phase.PROGRESSING, -1, current)
    assert status.step_started_at == status.release_started_at == T0
    assert status.release_id == release_id(policy)
    assert (status.last_decision, status.stable) == (None, None)


def test_begin_keeps_the_status_of_the_same_release() -> None:
    policy = make_policy()
    previous = started(policy)
    # The manifests say otherwise (someone is mid-sync): the recorded status still wins.
    assert begin(policy, previous, STABLE, LATER) is previous


def test_begin_after_the_candidate_changed_starts_a_new_release() -> None:
    old = make_policy()
    finished = replace(started(old), phase=Phase.FAILED)
    new = make_policy(candidate="v3")
    current = TrafficSplit.of({"v1": 100, "v3": 0})
    status = begin(new, finished, current, LATER)
    assert status.release_id != finished.release_id
    assert (status.phase, status.step, status.split) == (Phase.PROGRESSING, -1, current)
    assert status.release_started_at == LATER
    outcome = decide(new, status, PASSING, LATER)
    assert (outcome.decision, outcome.split) == (
        Decision.ADVANCE,
        TrafficSplit.of({"v1": 90, "v3": 10}),
    )


def test_begin_finds_an_already_promoted_candidate_finished() -> None:
    # The candidate was promoted; a later edit (here its metric label) must not restart it.
    promoted = replace(started(make_policy()), phase=Phase.SUCCEEDED, stable="v2")
    relabelled = make_policy(candidate_label="v2-relabelled")
    at_full = TrafficSplit.of({"v1": 0, "v2": 100})
    status = begin(relabelled, promoted, at_full, LATER)
    assert (status.phase, status.split, status.stable) == (Phase.SUCCEEDED, at_full, "v2")
    assert status.release_id == release_id(relabelled)
    outcome = decide(relabelled, status, PASSING, LATER)
    assert (outcome.decision, outcome.split) == (Decision.DONE, at_full)
    assert "succeeded" in outcome.reason and "already serves 100 %" in outcome.reason


@pytest.mark.parametrize(
    ("stable", "current"),
    [
        ("v1", TrafficSplit.of({"v1": 0, "v2": 100})),
        ("v2", TrafficSplit.of({"v1": 50, "v2": 50})),
    ],
    ids=["not the stable version", "not at 100 %"],
)
def test_begin_restarts_unless_both_stable_and_at_full(stable: str, current: TrafficSplit) -> None:
    previous = replace(started(make_policy()), phase=Phase.SUCCEEDED, stable=stable)
    status = begin(make_policy(candidate_label="new"), previous, current, LATER)
    assert (status.phase, status.step) == (Phase.PROGRESSING, -1)
    assert status.stable == stable  # the last promotion is remembered across releases


def _outcome(decision: Decision, step: int, phase: Phase, weights: dict[str, int]) -> Outcome:
    return Outcome(decision, f"because {decision}", TrafficSplit.of(weights), phase, step)


# fmt: off
APPLY_CASES = [
    # id, outcome, expected step_started_at, expected stable
    ("hold keeps the clock", _outcome(Decision.HOLD, 0, Phase.PROGRESSING, {"v1": 90, "v2": 10}),
     T0, None),
    ("advance starts the clock", _outcome(Decision.ADVANCE, 1, Phase.PROGRESSING,
                                          {"v1": 70, "v2": 30}), LATER, None),
    ("promote records stable", _outcome(Decision.PROMOTE, 3, Phase.SUCCEEDED,
                                        {"v1": 0, "v2": 100}), LATER, "v2"),
    ("rollback keeps the step", _outcome(Decision.ROLLBACK, 0, Phase.FAILED,
                                         {"v1": 100, "v2": 0}), T0, None),
    ("done", _outcome(Decision.DONE, 0, Phase.SUCCEEDED, {"v1": 100, "v2": 0}), T0, None),
]
# fmt: on


@pytest.mark.parametrize(
    ("outcome", "step_started_at", "stable"),
    [case[1:] for case in APPLY_CASES],
    ids=[case[0] for case in APPLY_CASES],
)
def test_apply(outcome: Outcome, step_started_at: Any, stable: str | None) -> None:
    status = started(make_policy())  # step 0 since T0
    after = apply(status, outcome, LATER)
    assert (after.phase, after.step, after.split) == (outcome.phase, outcome.step, outcome.split)
    assert after.step_started_at == step_started_at
    assert (after.last_decision, after.last_reason) == (outcome.decision, outcome.reason)
    assert after.evaluated_at == LATER
    assert after.stable == stable
    assert (after.release_started_at, after.release_id) == (T0, status.release_id)


def test_a_restarted_engine_resumes_from_the_recorded_status() -> None:
    policy = make_policy({"type": "canary", "steps": [10, 50], "minDwell": "6m"})
    status = started(policy)
    status = apply(status, decide(policy, status, PASSING, T0 + timedelta(minutes=6)), LATER)
    # A new process gets the same recorded status back and carries on from step 2.
    resumed = begin(policy, replace(status), TrafficSplit.of({"v1": 50, "v2": 50}), LATER)
    assert resumed == status
    assert decide(policy, resumed, PASSING, LATER + timedelta(minutes=5)).decision is Decision.HOLD
    outcome = decide(policy, resumed, PASSING, LATER + timedelta(minutes=6))
    assert outcome.decision is Decision.PROMOTE
