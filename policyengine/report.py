"""Evidence as Markdown: the table in commit bodies, status files, `plan --output markdown` and PRs."""

from __future__ import annotations

from policyengine.analysis.rewards import RewardAssessment
from policyengine.analysis.verdict import Assessment, ObjectiveResult

_VERDICT_MARK = {
    "pass": "✅ pass",
    "fail": "❌ fail",
    "inconclusive": "⏳ inconclusive",
    "error": "⚠️ error",
}


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 0.01:
        return f"{value:.4g}"
    return f"{value:.2e}"


def _interval(result: ObjectiveResult) -> str:
    evidence = result.evidence
    if evidence.lower is None and evidence.upper is None:
        return "–"
    return f"[{_number(evidence.lower)}, {_number(evidence.upper)}]"


def _cell(text: str) -> str:
    """Keep a table cell on one line and free of column separators."""
    return text.replace("|", "\\|").replace("\n", " ")


def evidence_markdown(assessment: Assessment) -> str:
    """A compact table: one row per candidate version and objective, then any hold reasons."""
    lines: list[str] = []
    if assessment.results:
        lines.append(
            "| version | objective | check | verdict | estimate | interval | baseline | samples "
            "| test |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for result in assessment.results:
            evidence = result.evidence
            samples = str(evidence.samples)
            if evidence.baseline_samples:
                samples += f" / {evidence.baseline_samples}"
            lines.append(
                "| "
                + " | ".join(
                    _cell(cell)
                    for cell in (
                        result.version,
                        result.objective,
                        result.check or "–",
                        _VERDICT_MARK.get(str(result.verdict), str(result.verdict)),
                        _number(evidence.estimate),
                        _interval(result),
                        _number(evidence.baseline),
                        samples,
                        evidence.test or "–",
                    )
                )
                + " |"
            )
    if assessment.rewards is not None:
        if lines:
            lines.append("")
        lines.extend(reward_markdown(assessment.rewards))
    for reason in assessment.hold_reasons:
        lines.append(f"- hold: {reason}")
    if assessment.samples:
        counts = ", ".join(f"{version}={count}" for version, count in assessment.samples.items())
        lines.append(f"- requests this step: {counts}")
    return "\n".join(lines)


def reward_markdown(rewards: RewardAssessment) -> list[str]:
    """A/B/n evidence: per version its reward, lift over the baseline with its always-valid
    interval, P(best), expected loss, guardrails and requests."""
    lines = [
        f"| version | {_cell(rewards.metric)} ({rewards.direction}) | lift vs baseline "
        "| always-valid interval | P(best) | expected loss | guardrails | requests |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rewards.versions:
        interval = "–"
        if row.lower is not None or row.upper is not None:
            interval = f"[{_number(row.lower)}, {_number(row.upper)}]"
        loss = "–" if row.expected_loss == float("inf") else _number(row.expected_loss)
        lines.append(
            "| "
            + " | ".join(
                _cell(cell)
                for cell in (
                    row.version,
                    _number(row.estimate),
                    _number(row.lift),
                    interval,
                    f"{row.p_best:.3f}",
                    loss,
                    row.guardrail,
                    str(row.requests),
                )
            )
            + " |"
        )
    if rewards.hold_reason:
        lines.append(f"- reward: {rewards.hold_reason}")
    return lines
