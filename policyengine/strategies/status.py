"""Release status: where a release stands, as the engine last recorded it in Git.

The file format lives in gitops/status.py; this is the value the pure strategies read and return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from policyengine.values import Decision, Phase, TrafficSplit


@dataclass(frozen=True)
class ReleaseStatus:
    policy: str  # namespace/name
    phase: Phase
    # Fingerprint of the candidate versions (names + backends) the release is about. A human commit
    # that changes it starts a new release.
    release_id: str
    step: int  # index into the strategy's steps; -1 before the first step
    step_started_at: datetime  # when the current step began (dwell and metric windows start here)
    release_started_at: datetime
    split: TrafficSplit
    last_decision: Decision | None = None
    last_reason: str = ""
    evaluated_at: datetime | None = None
    stable: str | None = None  # version recorded as stable after a promotion
    evidence: str = ""  # Markdown evidence table of the last decision
    extra: dict[str, str] = field(default_factory=dict)  # room for later issues (PR number, sync)
