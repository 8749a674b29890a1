"""Evidence of an A/B/n test on its reward: for every version its reward, its lift over the
baseline with an always-valid interval, P(best), expected loss, guardrail state and requests.

`assess_rewards` turns the windows the collector measured into that evidence with the same array
code bench/abn.py runs (analysis/bandit.py). Pure: `seed` fixes the posterior draws, so a pass
replayed at the same instant decides the same.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from policyengine.analysis import bandit
from policyengine.analysis.observations import (
    DataStatus,
    MetricObservation,
    Observations,
    WindowCounts,
    observation_key,
)
from policyengine.analysis.verdict import Assessment, ObjectiveResult, Verdict
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import ReleasePolicy

if TYPE_CHECKING:  # the strategies import this module; the status is only read here
    from policyengine.strategies.status import ReleaseStatus

POSTERIOR_DRAWS = 4000


@dataclass(frozen=True)
class VersionReward:
    version: str
    live: bool  # False once a guardrail failed: no more traffic, cannot win
    requests: int
    estimate: float | None  # the version's reward (events per request, or mean value)
    lift: float | None  # stratified estimate of version − baseline (None for the baseline)
    lower: float | None  # always-valid interval on version − baseline
    upper: float | None
    p_best: float
    expected_loss: float
    guardrail: str  # "pass", "pending" or "failed: <objective>"


@dataclass(frozen=True)
class RewardAssessment:
    metric: str
    direction: str
    kind: str  # rate or mean
    versions: tuple[VersionReward, ...]
    windows: int = 0
    hold_reason: str = ""  # why no statistical statement can be made yet (no data)

    def of(self, version: str) -> VersionReward | None:
        return next((v for v in self.versions if v.version == version), None)


def draw_seed(release_id: str, now: datetime) -> int:
    """A seed fixed by the release and the instant of the pass."""
    digest = hashlib.sha256(f"{release_id}@{now.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def model_of(policy: ReleasePolicy) -> bandit.RewardModel:
    reward = policy.spec.rewards[0]
    candidates = max(len(policy.spec.versions) - 1, 1)
    return bandit.RewardModel(
        kind=reward.type,
        sign=1.0 if reward.direction == "maximize" else -1.0,
        # α is split over the candidates: each "v_i beats the baseline" statement holds at α/(N−1).
        alpha=policy.spec.analysis.alpha / candidates,
    )


def fold_windows(
    names: list[str],
    windows: dict[str, tuple[WindowCounts, ...]],
    model: bandit.RewardModel,
    since: datetime,
    latest: datetime,
) -> tuple[bandit.RewardState, int]:
    """Fold every complete window since `since`, in time order, into one experiment's state."""
    by_start: dict[datetime, dict[str, WindowCounts]] = {}
    for name in names:
        for window in windows.get(name, ()):
            if since <= window.start <= latest:
                by_start.setdefault(window.start, {})[name] = window
    state = bandit.empty_state(1, len(names))
    for start in sorted(by_start):
        row = by_start[start]
        events = np.array([[row[n].events if n in row else 0.0 for n in names]])
        totals = np.array([[row[n].total if n in row else 0.0 for n in names]])
        state = bandit.fold(state, events, totals, model)
    return state, len(by_start)


def assess_rewards(
    policy: ReleasePolicy,
    observation: MetricObservation | None,
    guardrails: dict[str, str],
    since: datetime,
    interval: timedelta,
    now: datetime,
    seed: int,
) -> RewardAssessment:
    """The evidence on the policy's first reward. `guardrails`: per version, "pass", "pending"
    or "failed: ..." (a failed version is not live)."""
    reward = policy.spec.rewards[0]
    baseline = policy.spec.baseline.name
    names = [baseline] + [v.name for v in policy.spec.candidates]
    model = model_of(policy)
    live = np.array([[not guardrails.get(n, "pass").startswith("failed") for n in names]])
    if observation is None or observation.status is not DataStatus.OK:
        why = "not measured" if observation is None else observation.message or observation.status
        return _empty(policy, names, live, guardrails, f"reward {reward.metric}: {why}")
    state, windows = fold_windows(names, observation.windows, model, since, now - interval)
    post = bandit.posterior(state, model)
    draws = np.random.default_rng(seed).standard_normal((POSTERIOR_DRAWS, len(names)))
    p_best, loss = bandit.best_probabilities(post, live, draws)
    levels = bandit.level(state)
    versions = []
    for i, name in enumerate(names):
        requests = int(state.total[0, i] + 0.5)
        estimate = float(levels[0, i])
        lift = None
        if i > 0 and state.weight[0, i] > 0:
            lift = float(state.score[0, i] / state.weight[0, i])
        versions.append(
            VersionReward(
                version=name,
                live=bool(live[0, i]),
                requests=requests,
                estimate=None if math.isnan(estimate) else estimate,
                lift=lift,
                lower=_finite(state.lower[0, i]) if i > 0 else None,
                upper=_finite(state.upper[0, i]) if i > 0 else None,
                p_best=float(p_best[0, i]),
                expected_loss=float(loss[0, i]),
                guardrail=guardrails.get(name, "pass"),
            )
        )
    hold = "" if windows else f"reward {reward.metric}: no complete window yet"
    return RewardAssessment(
        metric=reward.metric,
        direction=reward.direction,
        kind=reward.type,
        versions=tuple(versions),
        windows=windows,
        hold_reason=hold,
    )


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _empty(
    policy: ReleasePolicy,
    names: list[str],
    live: np.typing.NDArray[np.bool_],
    guardrails: dict[str, str],
    why: str,
) -> RewardAssessment:
    alive = max(int(live.sum()), 1)
    reward = policy.spec.rewards[0]
    return RewardAssessment(
        metric=reward.metric,
        direction=reward.direction,
        kind=reward.type,
        versions=tuple(
            VersionReward(
                version=name,
                live=bool(live[0, i]),
                requests=0,
                estimate=None,
                lift=None,
                lower=None,
                upper=None,
                p_best=1.0 / alive if live[0, i] else 0.0,
                expected_loss=math.inf,
                guardrail=guardrails.get(name, "pass"),
            )
            for i, name in enumerate(names)
        ),
        hold_reason=why,
    )


def guardrail_states(policy: ReleasePolicy, results: tuple[ObjectiveResult, ...]) -> dict[str, str]:
    """Per version: "failed: <objectives>", "pass" (every objective passes) or "pending"."""
    states = {policy.spec.baseline.name: "pass"}
    for version in policy.spec.candidates:
        mine = [r for r in results if r.version == version.name]
        failed = sorted({r.objective for r in mine if r.verdict is Verdict.FAIL})
        if failed:
            states[version.name] = "failed: " + ", ".join(failed)
        elif all(r.verdict is Verdict.PASS for r in mine):
            states[version.name] = "pass"
        else:
            states[version.name] = "pending"
    return states


def reward_observation(
    policy: ReleasePolicy, observations: Observations
) -> MetricObservation | None:
    return observations.metrics.get(observation_key(policy.spec.rewards[0].metric))


def with_rewards(
    policy: ReleasePolicy,
    assessment: Assessment,
    observations: Observations,
    status: ReleaseStatus,
    now: datetime,
) -> Assessment:
    """`assessment` with the reward evidence of an A/B/n release added."""
    guardrails = guardrail_states(policy, assessment.results)
    strategy = policy.spec.strategy
    if strategy.type == "abn" and strategy.floor > 0 and status.step >= 0:
        # With a floor no live version is ever at 0 once the experiment runs: one at 0 failed a
        # guardrail earlier. It is no longer assessed (no traffic), but it must stay out.
        for version in policy.spec.candidates:
            if status.split.weight(version.name) == 0:
                guardrails[version.name] = "failed earlier: no more traffic"
    evidence = assess_rewards(
        policy,
        reward_observation(policy, observations),
        guardrails,
        status.release_started_at,
        parse_duration(policy.spec.analysis.interval),
        now,
        draw_seed(status.release_id, now),
    )
    return replace(assessment, rewards=evidence)
