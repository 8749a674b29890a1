"""A/B/n: the policy format, the bandit arithmetic (stratified lift, allocation, winner rule) and the
strategy's passes with the real assessment, from literal per-window counts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from policyengine.analysis import bandit
from policyengine.analysis.assessment import assess
from policyengine.analysis.observations import (
    DataStatus,
    MetricObservation,
    Observations,
    WindowCounts,
)
from policyengine.analysis.rewards import with_rewards
from policyengine.analysis.verdict import Assessment
from policyengine.metrics.catalog import metrics_of
from policyengine.policy.models import ReleasePolicy
from policyengine.policy.validation import format_field, policy_problems
from policyengine.strategies import Decision, Phase, TrafficSplit, apply, begin, decide
from policyengine.strategies.status import ReleaseStatus

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
NAMES = ("v1", "v2", "v3")


def abn_policy(
    strategy: dict[str, Any] | None = None,
    *,
    objectives: bool = True,
    rewards: list[dict[str, Any]] | None = None,
    versions: int = 3,
    **spec: Any,
) -> ReleasePolicy:
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "recommender", "namespace": "shop"},
            "spec": {
                "target": {"router": "istio-modelmesh", "manifests": [{"path": "vs.yaml"}]},
                "versions": [
                    {
                        "name": name,
                        "role": "baseline" if i == 0 else "candidate",
                        "backend": {"header": f"recommender-{name}"},
                    }
                    for i, name in enumerate(NAMES[:versions])
                ],
                "strategy": {"type": "abn", **(strategy or {})},
                "rewards": rewards if rewards is not None else [{"metric": "accepted"}],
                "objectives": (
                    [{"metric": "errors", "maxRelativeIncrease": 0.2, "max": 0.02}]
                    if objectives
                    else []
                ),
                "metrics": {
                    "templates": {
                        "errors": {"type": "proportion", "events": "e", "total": "t"},
                        "accepted": {"type": "proportion", "events": "a", "total": "s"},
                        "latency": {"type": "histogram", "buckets": "b"},
                    }
                },
                **spec,
            },
        }
    )


# --- policy format ------------------------------------------------------------------------------


def test_defaults_of_the_abn_strategy() -> None:
    strategy = abn_policy().spec.strategy
    assert strategy.type == "abn"
    assert (strategy.allocation, strategy.floor, strategy.holdout, strategy.max_change) == (
        "thompson",
        5,
        5,
        10,
    )
    assert (strategy.winner_probability, strategy.min_duration, strategy.on_winner) == (
        0.95,
        "30m",
        "promote",
    )


def test_unknown_allocation_is_refused() -> None:
    with pytest.raises(ValidationError, match="allocation"):
        abn_policy({"allocation": "epsilonGreedy"})


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        (abn_policy(rewards=[]), "spec.rewards", "strategy abn needs at least one reward"),
        (
            abn_policy({"floor": 40, "holdout": 30}),
            "spec.strategy.floor",
            "need 120 % of traffic",
        ),
        (
            abn_policy(rewards=[{"metric": "latency"}]),
            "spec.rewards[0].metric",
            "a reward needs a proportion metric",
        ),
        (
            abn_policy({"onWinner": "propose"}),
            "spec.strategy.onWinner",
            "needs writeBack.mode pullRequest",
        ),
        (
            abn_policy(target={"router": "kserve", "manifests": [{"path": "isvc.yaml"}]}),
            "spec.target.router",
            "router kserve splits traffic between two revisions",
        ),
    ],
    ids=[
        "no reward",
        "floors overflow",
        "histogram reward",
        "propose without pull requests",
        "kserve with three versions",
    ],
)
def test_abn_policy_problems(policy: ReleasePolicy, field: str, message: str) -> None:
    problems = policy_problems(policy, {})
    assert any(format_field(p.field) == field and message in p.message for p in problems), problems


def test_several_candidates_are_allowed_for_abn_only() -> None:
    assert policy_problems(abn_policy(), {}) == []


# --- bandit arithmetic ---------------------------------------------------------------------------


def test_stratified_lift_is_not_fooled_by_weights_moving_with_the_time_of_day() -> None:
    """Equal versions, conversion rising from 2 % to 8 % while traffic moves to v2: pooled rates
    say v2 is far better; the per-window comparison says there is no difference."""
    model = bandit.RewardModel()
    state = bandit.empty_state(1, 2)
    for minute in range(60):
        rate = 0.02 + 0.06 * minute / 59
        share = 0.1 + 0.8 * minute / 59
        totals = np.array([[1000 * (1 - share), 1000 * share]])
        state = bandit.fold(state, totals * rate, totals, model)
    pooled = bandit.level(state)[0]
    assert pooled[1] - pooled[0] > 0.015
    lift = state.score[0, 1] / state.weight[0, 1]
    assert abs(lift) < 1e-9
    assert state.lower[0, 1] < 0 < state.upper[0, 1]


def test_posterior_of_untried_versions_is_even() -> None:
    state = bandit.empty_state(1, 3)
    draws = np.random.default_rng(1).standard_normal((20_000, 3))
    p_best, _ = bandit.best_probabilities(
        bandit.posterior(state, bandit.RewardModel()), np.ones((1, 3), dtype=bool), draws
    )
    assert np.allclose(p_best, 1 / 3, atol=0.02)


@pytest.mark.parametrize("allocation", ["fixed", "thompson", "topTwoThompson"])
@pytest.mark.parametrize("current", [[34, 33, 33], [100, 0, 0], [5, 90, 5], [60, 5, 35]], ids=str)
def test_allocation_is_integers_summing_to_100_within_max_change(
    allocation: bandit.Allocation, current: list[int]
) -> None:
    rng = np.random.default_rng(7)
    p_best = rng.dirichlet([0.3, 0.3, 0.3], size=50)
    live = np.ones((50, 3), dtype=bool)
    start = np.repeat(np.array([current]), 50, axis=0)
    weights = bandit.allocate(allocation, p_best, live, start, floor=5, holdout=10, max_change=10)
    assert weights.dtype == np.int64
    assert (weights.sum(axis=1) == 100).all()
    assert (np.abs(weights - start) <= 10).all()
    settled = start.copy()
    for _ in range(30):  # repeated passes reach the floors and the holdout
        settled = bandit.allocate(
            allocation, p_best, live, settled, floor=5, holdout=10, max_change=10
        )
    assert (settled[:, 0] >= 10).all() and (settled >= 5).all()


def test_thompson_follows_p_best_and_fixed_stays_even() -> None:
    p_best = np.array([[0.02, 0.96, 0.02]])
    live = np.ones((1, 3), dtype=bool)
    even = np.array([[34, 33, 33]])
    args = {"floor": 5, "holdout": 10, "max_change": 100}
    assert bandit.allocate("thompson", p_best, live, even, **args).tolist() == [[12, 82, 6]]
    assert bandit.allocate("fixed", p_best, live, even, **args).tolist() == [[34, 33, 33]]
    top_two = bandit.allocate("topTwoThompson", p_best, live, even, **args)[0]
    # Top-two keeps more on the runners-up than Thompson does: it is after identification.
    assert top_two[1] < 82 and top_two[0] + top_two[2] > 18


def test_a_version_that_is_not_live_drops_to_zero_at_once() -> None:
    weights = bandit.allocate(
        "thompson",
        np.array([[0.5, 0.5, 0.0]]),
        np.array([[True, True, False]]),
        np.array([[30, 30, 40]]),
        floor=5,
        holdout=5,
        max_change=5,
    )
    assert weights[0, 2] == 0 and weights.sum() == 100


@pytest.mark.parametrize(
    ("change", "winner"),
    [
        ({}, 1),
        ({"p_best": [[0.04, 0.94, 0.02]]}, -1),
        ({"loss": [[0.01, 0.0006, 0.01]]}, -1),
        ({"lower": [[-np.inf, -0.0001, -0.01]]}, -1),
        ({"old_enough": [False]}, -1),
        ({"live": [[True, False, True]]}, -1),
        (
            {
                "p_best": [[0.97, 0.02, 0.01]],
                "loss": [[0.0001, 0.01, 0.01]],
                "upper": [[np.inf, -0.001, -0.002]],
            },
            0,
        ),
        (
            {
                "p_best": [[0.97, 0.02, 0.01]],
                "loss": [[0.0001, 0.01, 0.01]],
                "upper": [[np.inf, 0.001, -0.002]],
            },
            -1,
        ),
    ],
    ids=[
        "all conditions",
        "P(best) short",
        "expected loss too high",
        "interval touches 0",
        "before minDuration",
        "failed a guardrail",
        "baseline beats every candidate",
        "baseline not yet ahead of v2",
    ],
)
def test_winner_rule(change: dict[str, Any], winner: int) -> None:
    evidence: dict[str, Any] = {
        "p_best": [[0.02, 0.97, 0.01]],
        "loss": [[0.005, 0.0001, 0.007]],
        "lower": [[-np.inf, 0.001, -0.01]],
        "upper": [[np.inf, 0.009, 0.001]],
        "live": [[True, True, True]],
        "old_enough": [True],
        **change,
    }
    found = bandit.winners(
        np.array(evidence["p_best"]),
        np.array(evidence["loss"]),
        np.array(evidence["lower"]),
        np.array(evidence["upper"]),
        np.array(evidence["live"]),
        winner_probability=0.95,
        max_loss=np.array([0.0005]),
        old_enough=np.array(evidence["old_enough"]),
    )
    assert found.tolist() == [winner]


# --- the strategy, pass by pass, with the real assessment ---------------------------------------


class Fleet:
    """Per-minute counts of three versions at 100 req/s: requests follow the split in force."""

    def __init__(self, conversion: tuple[float, ...], errors: tuple[float, ...]) -> None:
        self.conversion = conversion
        self.errors = errors
        self.windows: dict[str, dict[str, list[WindowCounts]]] = {
            "accepted": {n: [] for n in NAMES},
            "errors": {n: [] for n in NAMES},
        }

    def serve(self, minute: int, split: TrafficSplit) -> None:
        start = T0 + minute * MINUTE
        for i, name in enumerate(NAMES):
            requests = 6000 * split.weight(name) / 100
            if requests <= 0:
                continue
            self.windows["accepted"][name].append(
                WindowCounts(start, round(requests * self.conversion[i]), requests)
            )
            self.windows["errors"][name].append(
                WindowCounts(start, round(requests * self.errors[i]), requests)
            )

    def observations(self) -> Observations:
        metrics = {
            metric: MetricObservation(
                metric,
                "proportion",
                DataStatus.OK,
                {n: tuple(w) for n, w in per.items() if w},
            )
            for metric, per in self.windows.items()
        }
        return Observations(metrics=metrics, traffic=metrics["errors"].windows)


def run(
    policy: ReleasePolicy, fleet: Fleet, minutes: int, failed: list[set[str]] | None = None
) -> list[tuple[int, ReleaseStatus, Decision, str]]:
    """One pass a minute, as the reconciler does: assess, add the reward evidence, decide, apply."""
    _, metrics = metrics_of(policy)
    status = begin(policy, None, TrafficSplit.of({"v1": 100, "v2": 0, "v3": 0}), T0)
    history = []
    for minute in range(minutes + 1):
        now = T0 + minute * MINUTE
        observations = fleet.observations()
        assessment = assess(
            policy, metrics, observations, status.split, status.step_started_at, now
        )
        assessment = with_rewards(policy, assessment, observations, status, now)
        if failed is not None:
            failed.append({r.version for r in assessment.failed})
        outcome = decide(policy, status, assessment, now)
        status = apply(status, outcome, now)
        history.append((minute, status, outcome.decision, outcome.reason))
        if status.phase is not Phase.PROGRESSING:
            break
        fleet.serve(minute, status.split)
    return history


def test_a_3x_error_version_gets_no_traffic_after_its_first_failing_assessment() -> None:
    policy = abn_policy()
    fleet = Fleet(conversion=(0.05, 0.05, 0.05), errors=(0.005, 0.005, 0.015))
    failed: list[set[str]] = []
    history = run(policy, fleet, 30, failed)
    first = next(minute for minute, versions in enumerate(failed) if "v3" in versions)
    assert first <= 5
    # The very pass whose assessment first fails v3 takes all its traffic away.
    assert "v3 failed a guardrail and gets no more traffic" in history[first][3]
    assert history[first - 1][1].split.weight("v3") > 0
    for minute, status, _, _ in history:
        if minute >= first:
            assert status.split.weight("v3") == 0, (minute, status.split)
    # The guardrail removed v3; the experiment goes on between v1 and v2.
    assert history[-1][1].phase is Phase.PROGRESSING
    assert history[-1][1].split.weight("v2") > 0


def test_a_better_version_wins_after_min_duration_and_is_promoted() -> None:
    policy = abn_policy()
    fleet = Fleet(conversion=(0.05, 0.06, 0.045), errors=(0.005, 0.005, 0.005))
    history = run(policy, fleet, 120)
    minute, status, decision, reason = history[-1]
    assert decision is Decision.PROMOTE, reason
    assert status.phase is Phase.SUCCEEDED
    assert status.split.as_dict() == {"v1": 0, "v2": 100, "v3": 0}
    assert 30 <= minute < 120
    assert "v2 wins the A/B/n test" in reason and "always valid" in reason
    # Before minDuration the evidence was already strong; the rule still waited.
    assert all(d is not Decision.PROMOTE for m, _, d, _ in history if m < 30)
    # Every weight change on the way stayed within maxChange and summed to 100.
    splits = [s.split for _, s, _, _ in history[1:-1]]
    for before, after in itertools.pairwise(splits):
        assert sum(after.as_dict().values()) == 100
        assert all(abs(after.weight(n) - before.weight(n)) <= 10 for n in NAMES)


def test_equal_versions_have_no_winner_and_hold_then_go_inconclusive() -> None:
    policy = abn_policy(analysis={"maxDuration": "1h"})
    fleet = Fleet(conversion=(0.05, 0.05, 0.05), errors=(0.005, 0.005, 0.005))
    history = run(policy, fleet, 90)
    assert all(d is not Decision.PROMOTE for _, _, d, _ in history)
    assert any("no winner yet" in reason for *_, reason in history)
    minute, status, _, reason = history[-1]
    assert status.phase is Phase.INCONCLUSIVE and minute == 60
    assert "no winner after maxDuration 1h" in reason


def test_a_minimised_reward_picks_the_lowest() -> None:
    policy = abn_policy(rewards=[{"metric": "accepted", "direction": "minimize"}])
    fleet = Fleet(conversion=(0.05, 0.04, 0.06), errors=(0.005, 0.005, 0.005))
    history = run(policy, fleet, 120)
    assert history[-1][2] is Decision.PROMOTE
    assert history[-1][1].split.weight("v2") == 100


def test_the_first_pass_opens_an_even_split() -> None:
    policy = abn_policy()
    status = begin(policy, None, TrafficSplit.of({"v1": 100, "v2": 0, "v3": 0}), T0)
    outcome = decide(policy, status, Assessment(), T0)
    assert outcome.decision is Decision.ADVANCE
    assert outcome.split.as_dict() == {"v1": 34, "v2": 33, "v3": 33}
    held = decide(abn_policy(paused=True), status, Assessment(), T0)
    assert held.decision is Decision.HOLD
