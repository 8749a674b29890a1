"""Strategies: pure decisions (canary, blue-green, mirror, A/B/n) over a release status, and its lifecycle."""

from __future__ import annotations

from datetime import datetime

from policyengine.analysis.verdict import Assessment
from policyengine.policy.models import ReleasePolicy
from policyengine.strategies import abn, bluegreen, canary, mirror
from policyengine.strategies.release import apply, begin, release_id
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Outcome, Phase, TrafficSplit

__all__ = [
    "Decision",
    "Outcome",
    "Phase",
    "ReleaseStatus",
    "TrafficSplit",
    "apply",
    "begin",
    "decide",
    "release_id",
]


def decide(
    policy: ReleasePolicy, status: ReleaseStatus, assessment: Assessment, now: datetime
) -> Outcome:
    """The next move of `policy`'s release, by its strategy type. Pure: no I/O, no clock."""
    match policy.spec.strategy.type:
        case "canary":
            return canary.decide(policy, status, assessment, now)
        case "blueGreen":
            return bluegreen.decide(policy, status, assessment, now)
        case "mirror":
            return mirror.decide(policy, status, assessment, now)
        case "abn":
            return abn.decide(policy, status, assessment, now)
