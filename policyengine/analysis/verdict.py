"""What an assessment says: a verdict per version and objective, with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rewards.py reads verdicts; at run time the annotation stays a string
    from policyengine.analysis.rewards import RewardAssessment


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class Evidence:
    """The numbers behind a verdict, as shown in commit bodies and pull requests."""

    estimate: float | None = None  # candidate value (or candidate - baseline for comparisons)
    lower: float | None = None  # confidence-sequence bounds on the same quantity
    upper: float | None = None
    baseline: float | None = None  # the baseline's value, when compared
    samples: int = 0  # candidate requests (or observations) behind the estimate
    baseline_samples: int = 0
    test: str = ""  # e.g. "confidence sequence (mixture, stratified by 1m windows)"


@dataclass(frozen=True)
class ObjectiveResult:
    objective: str  # display name of the objective
    version: str  # the candidate version it is about
    verdict: Verdict
    reason: str
    evidence: Evidence = field(default_factory=Evidence)
    on_fail: str = "rollback"
    # Which test of the objective this is ("vs baseline", "≤ 0.01", "range"): an objective with a
    # relative and an absolute bound yields one result per test.
    check: str = ""


@dataclass(frozen=True)
class Assessment:
    """Everything the strategy needs to know about the metrics, for one policy and one pass."""

    results: tuple[ObjectiveResult, ...] = ()
    # Set when the routing itself is suspect (sample-ratio mismatch) or data is missing:
    # these always hold, whatever the objectives say.
    hold_reasons: tuple[str, ...] = ()
    # Requests seen per version in the current step (for minSamples).
    samples: dict[str, int] = field(default_factory=dict)
    # A/B/n: the evidence on the reward (strategy abn only).
    rewards: RewardAssessment | None = None

    @property
    def failed(self) -> tuple[ObjectiveResult, ...]:
        return tuple(r for r in self.results if r.verdict is Verdict.FAIL)

    @property
    def all_pass(self) -> bool:
        return all(r.verdict is Verdict.PASS for r in self.results) and not self.hold_reasons


NO_OBJECTIVES = Assessment()
