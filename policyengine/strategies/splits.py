"""Traffic splits the strategies move between: baseline only, candidate at a weight, mirroring."""

from __future__ import annotations

from policyengine.policy.models import ReleasePolicy
from policyengine.values import TrafficSplit


def released_candidate(policy: ReleasePolicy) -> str:
    """The candidate these strategies release: the first one (extra candidates are A/B/n's, at 0)."""
    return policy.spec.candidates[0].name


def candidate_split(
    policy: ReleasePolicy, candidate_weight: int, mirror_percent: float = 0.0
) -> TrafficSplit:
    """The released candidate at `candidate_weight` %, the baseline at the rest, in policy order.

    Versions are listed in the policy's order so that equal splits compare equal.
    """
    candidate = released_candidate(policy)
    weights: dict[str, int] = {}
    for version in policy.spec.versions:
        if version.role == "baseline":
            weights[version.name] = 100 - candidate_weight
        elif version.name == candidate:
            weights[version.name] = candidate_weight
        else:
            weights[version.name] = 0
    mirror_to = candidate if mirror_percent > 0 else None
    return TrafficSplit.of(weights, mirror_to, mirror_percent)


def baseline_only(policy: ReleasePolicy) -> TrafficSplit:
    """Rollback target: all live traffic to the baseline, no mirroring."""
    return candidate_split(policy, 0)


def candidate_only(policy: ReleasePolicy) -> TrafficSplit:
    """Promotion target: all live traffic to the candidate, no mirroring."""
    return candidate_split(policy, 100)


def with_mirror(split: TrafficSplit, mirror_to: str | None, mirror_percent: float) -> TrafficSplit:
    """The same weights with mirroring set (or turned off when `mirror_to` is None)."""
    return TrafficSplit(split.weights, mirror_to, mirror_percent if mirror_to else 0.0)
