"""What the demo prints while it runs: a progress bar per release and, on change only, its weights
and verdicts. Pure: pass results in, lines out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from policyengine.analysis.verdict import ObjectiveResult, Verdict
from policyengine.reconciler import PolicyPlan
from policyengine.strategies import Phase

BAR_WIDTH = 20
_VERDICT_ORDER = (Verdict.FAIL, Verdict.ERROR, Verdict.INCONCLUSIVE, Verdict.PASS)
_PHASE_WORDS = {
    Phase.SUCCEEDED: "promoted",
    Phase.FAILED: "rolled back",
    Phase.INCONCLUSIVE: "inconclusive",
    Phase.PAUSED: "paused",
}
_CONCLUDED = ("promoted", "rolled back", "inconclusive")


@dataclass(frozen=True)
class ReleaseLine:
    """What one release looks like after a pass; a line is printed when it differs."""

    policy: str
    candidate_weight: int
    weights: str
    phase: str
    decision: str
    verdicts: str

    def differs_from(self, other: ReleaseLine | None) -> bool:
        if other is None:
            return True
        if self.phase == other.phase and self.phase in _CONCLUDED:
            return self.weights != other.weights  # nothing is assessed after a conclusion
        return (self.weights, self.phase, self.verdicts) != (
            other.weights,
            other.phase,
            other.verdicts,
        ) or self.decision not in ("hold", "done")


def release_line(plan: PolicyPlan, candidate: str) -> ReleaseLine:
    outcome = plan.outcome
    split = outcome.split if outcome is not None else plan.current
    status = plan.status
    phase = status.phase if status is not None else Phase.IDLE
    if plan.error:
        decision, verdicts = "error", plan.error
    elif plan.unreachable:
        decision, verdicts = "hold", f"unreachable: {plan.unreachable}"
    else:
        decision = str(outcome.decision) if outcome is not None else "-"
        verdicts = verdict_summary(plan.assessment.results) or "no objectives assessed"
    return ReleaseLine(
        policy=plan.key,
        candidate_weight=split.weight(candidate) if split is not None else 0,
        weights=split.trailer() if split is not None else "?",
        phase=_PHASE_WORDS.get(phase, str(phase)),
        decision=decision,
        verdicts=verdicts,
    )


def verdict_summary(results: Iterable[ObjectiveResult]) -> str:
    """One verdict per objective (the worst of its checks): `error-rate pass, slow-requests fail`."""
    by_objective: dict[str, list[Verdict]] = {}
    for result in results:
        by_objective.setdefault(result.objective, []).append(result.verdict)
    return ", ".join(
        f"{name} {next(v for v in _VERDICT_ORDER if v in verdicts)}"
        for name, verdicts in by_objective.items()
    )


def progress_bar(weight: int, phase: str, width: int = BAR_WIDTH) -> str:
    """The candidate's share of live traffic; a rolled-back release shows an empty bar marked x."""
    filled = round(width * max(0, min(100, weight)) / 100)
    bar = "#" * filled + "." * (width - filled)
    if phase == "rolled back":
        bar = "x" * width
    return f"[{bar}]"


def format_line(line: ReleaseLine, at: datetime, minute: int, policy_width: int) -> str:
    clock = f"{at:%H:%M} +{minute:>3}m"
    state = line.phase if line.phase not in ("progressing", "idle") else line.decision
    return (
        f"{clock}  {line.policy:<{policy_width}}  "
        f"{progress_bar(line.candidate_weight, line.phase)} {line.candidate_weight:>3} %  "
        f"{state:<12} {line.weights:<14} {line.verdicts}"
    )
