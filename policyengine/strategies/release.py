"""Release lifecycle around the strategies: which release a status belongs to, where a release
starts, and the status that follows an outcome."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime

from policyengine.policy.models import ReleasePolicy
from policyengine.routekey import SEED_KEY, release_seed
from policyengine.strategies.splits import released_candidate
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Outcome, Phase, TrafficSplit


def release_id(policy: ReleasePolicy) -> str:
    """A short stable fingerprint of the candidate version(s): names, metric labels and backends.

    Unset backend fields are left out so that a new optional field in the format does not restart
    every release in flight.
    """
    candidates = [
        {
            "name": version.name,
            "label": version.label_value,
            "backend": version.backend.model_dump(mode="json", exclude_none=True),
        }
        for version in policy.spec.candidates
    ]
    text = json.dumps(candidates, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def begin(
    policy: ReleasePolicy, previous: ReleaseStatus | None, current: TrafficSplit, now: datetime
) -> ReleaseStatus:
    """The status to decide from: `previous` when it is the same release, else a fresh one.

    `current` is the split the router read from the manifests.
    """
    identity = release_id(policy)
    if previous is not None and previous.release_id == identity and previous.policy == policy.key:
        return previous
    candidate = released_candidate(policy)
    stable = previous.stable if previous is not None else None
    if current.weight(candidate) == 100 and (previous is None or stable == candidate):
        # The candidate already serves everything (promoted earlier, or put there by a person before
        # the engine ever saw the policy): restarting a canary from 10 % would move traffic back.
        return ReleaseStatus(
            policy=policy.key,
            phase=Phase.SUCCEEDED,
            release_id=identity,
            step=-1,
            step_started_at=now,
            release_started_at=now,
            split=current,
            last_reason=f"{candidate} already serves 100 %",
            stable=candidate,
        )
    # A/B/n: the seed of sticky assignments (policyengine route-key) lives in the status file.
    extra = {SEED_KEY: release_seed(identity)} if policy.spec.strategy.type == "abn" else {}
    return ReleaseStatus(
        policy=policy.key,
        phase=Phase.PROGRESSING,
        release_id=identity,
        step=-1,
        step_started_at=now,
        release_started_at=now,
        split=current,
        stable=stable,
        extra=extra,
    )


def apply(status: ReleaseStatus, outcome: Outcome, now: datetime) -> ReleaseStatus:
    """The status after `outcome`: a new step starts its dwell clock at `now`."""
    stable = status.stable
    if outcome.decision is Decision.PROMOTE:
        stable = next((name for name, weight in outcome.split.weights if weight == 100), stable)
    return replace(
        status,
        phase=outcome.phase,
        step=outcome.step,
        step_started_at=now if outcome.step != status.step else status.step_started_at,
        split=outcome.split,
        last_decision=outcome.decision,
        last_reason=outcome.reason,
        evaluated_at=now,
        stable=stable,
    )
