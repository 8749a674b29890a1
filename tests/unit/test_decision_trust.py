"""Decisions that mean what the policy says (issue 9): rollback only beyond the declared tolerance,
an absolute floor for relative margins, α split over objectives and candidates, α on the harm
side of a `min` bound, gauges from the current step with a minimum count, versions listed for
later, and "too few samples" that never skips the rest of the schedule. Each test fails on the
code before the fix."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

from policyengine.analysis.assessment import RELATIVE_FLOOR_OF_MAX, margin_of
from policyengine.analysis.observations import DataStatus, GaugePoint, MetricObservation
from policyengine.analysis.sequential import Levels, proportion_sequence
from policyengine.analysis.verdict import Verdict
from policyengine.policy.models import ReleasePolicy
from policyengine.strategies import Decision, Phase, TrafficSplit
from policyengine.strategies.canary import decide
from tests.unit.test_assessment import (
    ERRORS_RELATIVE,
    MINUTE,
    START,
    _assess,
    _policy,
    _proportion,
    _verdicts,
    _windows,
)
from tests.unit.test_strategy_common import assessment, make_policy, started


def test_a_difference_inside_the_tolerance_is_not_rolled_back() -> None:
    # 0.5 % against 0.55 %: +0.05 pp, half the allowed +0.1 pp. With 2 million requests per
    # version the difference itself is proven (Δ > 0), but not that it exceeds the tolerance.
    observation = _proportion(_windows(100, 100.0, 20_000.0), _windows(100, 110.0, 20_000.0))
    result = _assess(_policy(ERRORS_RELATIVE), observation, 100).results[0]
    assert result.evidence.lower is not None and 0.0 < result.evidence.lower < 0.001
    assert result.verdict is Verdict.PASS, result.reason


def test_a_difference_beyond_the_tolerance_is_rolled_back_with_the_margin_named() -> None:
    # 0.5 % against 0.8 %: +0.3 pp, three times the allowed +0.1 pp.
    observation = _proportion(_windows(60, 25.0, 5000.0), _windows(60, 40.0, 5000.0))
    result = _assess(_policy(ERRORS_RELATIVE), observation, 60).results[0]
    assert result.verdict is Verdict.FAIL
    assert "worse than v1 by more than the allowed 0.1 pp" in result.reason
    assert result.evidence.lower is not None and result.evidence.lower > 0.001


def test_the_catastrophic_rule_still_acts_before_min_events() -> None:
    # 100 % errors on the first 50 requests: far fewer than minEvents expected at the baseline's
    # rate, rolled back in the first window all the same.
    observation = _proportion(_windows(1, 0.0, 50.0), _windows(1, 50.0, 50.0))
    assert _verdicts(_assess(_policy(ERRORS_RELATIVE), observation, 1)) == {
        "vs baseline": Verdict.FAIL
    }


def test_a_relative_margin_has_an_absolute_floor_from_max() -> None:
    rare = _policy({"metric": "errors", "max": 0.05, "maxRelativeIncrease": 0.2})
    (objective,) = rare.spec.objectives
    # 20 % of a 0.06 % rate would be 0.012 pp; the floor is a tenth of the bound, 0.5 pp.
    assert margin_of(objective, 0.0006) == RELATIVE_FLOOR_OF_MAX * 0.05
    assert margin_of(objective, 0.5) == 0.1
    # An explicit maxIncrease is the user's floor: the default does not override it.
    explicit = _policy({"metric": "errors", "max": 0.05, "maxIncrease": 0.0001})
    assert margin_of(explicit.spec.objectives[0], 0.0006) == 0.0001
    # With the floor, an unchanged rare-event candidate is shown no worse within the hour.
    observation = _proportion(_windows(60, 3.0, 5000.0), _windows(60, 3.0, 5000.0))
    assert _verdicts(_assess(rare, observation, 60))["vs baseline"] is Verdict.PASS


def test_alpha_is_split_over_candidates_too() -> None:
    policy = ReleasePolicy.model_validate(
        {
            **_policy(ERRORS_RELATIVE).model_dump(by_alias=True, exclude_none=True),
        }
    )
    document: dict[str, Any] = policy.model_dump(by_alias=True, exclude_none=True)
    document["spec"]["versions"].append({"name": "v3", "role": "candidate"})
    three = ReleasePolicy.model_validate(document)
    windows = _windows(5, 25.0, 5000.0)
    observation = MetricObservation(
        "errors", "proportion", DataStatus.OK, {"v1": windows, "v2": windows, "v3": windows}
    )
    split = TrafficSplit.of({"v1": 50, "v2": 25, "v3": 25})
    tests = {r.evidence.test for r in _assess(three, observation, 5, split=split).results}
    assert len(tests) == 1 and "harm α=0.025" in tests.pop()


def test_a_candidate_listed_for_later_at_weight_0_does_not_hold() -> None:
    document: dict[str, Any] = _policy(ERRORS_RELATIVE).model_dump(by_alias=True, exclude_none=True)
    document["spec"]["versions"].append({"name": "v3", "role": "candidate"})
    policy = ReleasePolicy.model_validate(document)
    observation = _proportion(_windows(60, 25.0, 5000.0), _windows(60, 25.0, 5000.0))
    split = TrafficSplit.of({"v1": 50, "v2": 50, "v3": 0})
    result = _assess(policy, observation, 60, split=split)
    assert result.hold_reasons == ()
    assert {r.version for r in result.results} == {"v2"}
    assert result.all_pass


def test_a_min_bound_rolls_back_at_alpha_not_beta() -> None:
    # A lenient β (0.3) and a strict α (0.01): the interval side that decides a rollback for a
    # `min` bound must be the α side. 9,870 successes in 10,000 against min 0.99: below the bound
    # at β's width, not at α's.
    policy = _policy({"metric": "errors", "min": 0.99}, alpha=0.01, beta=0.3)
    observation = _proportion(_windows(1, 9870.0, 10_000.0), _windows(1, 9870.0, 10_000.0))
    beta_side = proportion_sequence([(9870.0, 10_000.0)], Levels(0.01, 0.3, 3.0, 50.0), 0.99)
    alpha_side = proportion_sequence([(9870.0, 10_000.0)], Levels(0.3, 0.01, 50.0, 3.0), 0.99)
    assert beta_side.upper < 0.99 <= alpha_side.upper  # the case this test is about
    result = _assess(policy, observation, 1).results[0]
    assert result.verdict is Verdict.INCONCLUSIVE, result.reason


def _gauge(values: list[float], first_minute: int = 0) -> MetricObservation:
    points = tuple(GaugePoint(START + (first_minute + k) * MINUTE, v) for k, v in enumerate(values))
    return MetricObservation("spd", "gauge", DataStatus.OK, gauges={"v2": points})


def test_a_gauge_needs_values_from_the_current_step() -> None:
    policy = _policy({"metric": "spd", "min": -0.1, "max": 0.1})
    # Three fair values, all before the step began at minute 5: nothing is known of this step.
    before = _assess(
        policy,
        _gauge([0.0, 0.01, 0.02]),
        8,
        key="spd",
        traffic={},
        step_started_at=START + 5 * MINUTE,
    )
    assert _verdicts(before) == {"range": Verdict.INCONCLUSIVE}
    assert before.hold_reasons and "in this step" in before.hold_reasons[0]


def test_a_gauge_needs_a_minimum_count_to_pass() -> None:
    policy = _policy({"metric": "spd", "min": -0.1, "max": 0.1})
    two = _assess(policy, _gauge([0.0, 0.01]), 2, key="spd", traffic={})
    assert _verdicts(two) == {"range": Verdict.INCONCLUSIVE}
    assert "only 2 value(s)" in two.results[0].reason
    three = _assess(policy, _gauge([0.0, 0.01, 0.02]), 3, key="spd", traffic={})
    assert _verdicts(three) == {"range": Verdict.PASS}
    # Failing does not wait for the count: one value far outside is enough.
    assert _verdicts(_assess(policy, _gauge([0.5]), 1, key="spd", traffic={})) == {
        "range": Verdict.FAIL
    }


def test_too_few_samples_with_on_inconclusive_promote_never_skips_the_schedule() -> None:
    strategy = {"type": "canary", "steps": [10, 30, 60], "minDwell": "6m", "minSamples": 500}
    policy = make_policy(strategy, on_inconclusive="promote", max_duration="1h")
    status = replace(started(policy), step=0)
    short = assessment(Verdict.PASS, samples=10)
    before = decide(policy, status, short, status.release_started_at + timedelta(minutes=59))
    assert before.decision is Decision.HOLD
    after = decide(policy, status, short, status.release_started_at + timedelta(hours=1))
    # Past maxDuration the schedule goes on to its next step; only the last step promotes.
    assert (after.decision, after.split.weight("v2"), after.phase) == (
        Decision.ADVANCE,
        30,
        Phase.PROGRESSING,
    )
    last = decide(
        policy, replace(status, step=2), short, status.release_started_at + timedelta(hours=1)
    )
    assert last.decision is Decision.PROMOTE


def _minutes_expected(reason: str) -> int:
    match = re.search(r"expected to pass in ~(\d+) min at the current traffic", reason)
    assert match, reason
    return int(match.group(1))


def test_an_inconclusive_margin_test_predicts_when_it_will_pass() -> None:
    # 5,000 requests per version per minute, both at 0.5 %: after 10 minutes the margin test
    # is not there yet, and says when it will be; at that many minutes (rates unchanged) it is.
    policy = _policy(ERRORS_RELATIVE)
    early = _proportion(_windows(10, 25.0, 5000.0), _windows(10, 25.0, 5000.0))
    result = _assess(policy, early, 10).results[0]
    assert result.verdict is Verdict.INCONCLUSIVE
    wait = _minutes_expected(result.reason)
    later = 10 + wait
    ready = _proportion(_windows(later, 25.0, 5000.0), _windows(later, 25.0, 5000.0))
    assert _assess(policy, ready, later).results[0].verdict is Verdict.PASS
    before = _proportion(_windows(later - 3, 25.0, 5000.0), _windows(later - 3, 25.0, 5000.0))
    assert _assess(policy, before, later - 3).results[0].verdict is Verdict.INCONCLUSIVE


def test_a_candidate_at_the_margin_is_not_expected_to_pass() -> None:
    # 0.6 % against 0.5 % with a +0.1 pp margin: no amount of traffic proves it within.
    observation = _proportion(_windows(30, 25.0, 5000.0), _windows(30, 30.0, 5000.0))
    reason = _assess(_policy(ERRORS_RELATIVE), observation, 30).results[0].reason
    assert "not expected to pass at the current rates" in reason


def test_an_inconclusive_bound_predicts_when_it_will_pass() -> None:
    policy = _policy({"metric": "errors", "max": 0.01})
    early = _proportion(_windows(2, 2.0, 1000.0), _windows(2, 2.0, 1000.0))
    result = _assess(policy, early, 2).results[0]
    assert result.verdict is Verdict.INCONCLUSIVE
    later = 2 + _minutes_expected(result.reason)
    ready = _proportion(_windows(later, 2.0, 1000.0), _windows(later, 2.0, 1000.0))
    assert _assess(policy, ready, later).results[0].verdict is Verdict.PASS
