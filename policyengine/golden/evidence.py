"""The golden test and drift evidence as Markdown tables, for commit bodies, status files and pull
requests: the failing slices and the worst features first."""

from __future__ import annotations

import math
from collections.abc import Sequence

from policyengine.analysis.drift import FeatureDrift
from policyengine.analysis.golden import GoldenReport
from policyengine.analysis.verdict import Verdict

_MARK = {Verdict.PASS: "pass", Verdict.FAIL: "**FAIL**", Verdict.INCONCLUSIVE: "not judged"}


def golden_markdown(
    candidate: str,
    baseline: str,
    report: GoldenReport | None,
    drifts: Sequence[FeatureDrift],
) -> str:
    lines: list[str] = []
    if report is not None:
        lines += [
            f"#### Golden test: {candidate} vs {baseline} ({report.rows} rows, agreement "
            f"{_percent(report.agreement)})",
            "",
            "| slice | metric | rows | candidate | baseline | worse by | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        ordered = sorted(
            report.scores,
            key=lambda s: (s.verdict is not Verdict.FAIL, s.slice != "overall", s.slice),
        )
        for score in ordered:
            lines.append(
                f"| {score.slice} | {score.metric} | {score.rows} | {score.candidate:.4g} | "
                f"{score.baseline:.4g} | {score.degradation:+.4g} | "
                f"{_MARK.get(score.verdict, str(score.verdict))} |"
            )
        lines.extend(f"- schema: {problem}" for problem in report.schema_problems)
        lines.append("")
    if drifts:
        lines += [
            f"#### Drift: {candidate} vs {baseline} (worst first)",
            "",
            "| feature | PSI | KS D | KS p | values (baseline / candidate) | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for drift in drifts:
            ks_d = f"{drift.ks.statistic:.3f}" if drift.ks else "–"
            ks_p = f"{drift.ks.p_value:.2g}" if drift.ks else "–"
            psi = "–" if math.isnan(drift.psi) else f"{drift.psi:.3f}"
            lines.append(
                f"| {drift.feature} | {psi} | {ks_d} | {ks_p} | {drift.reference_count} / "
                f"{drift.current_count} | {_MARK.get(drift.verdict, str(drift.verdict))} |"
            )
        lines.append("")
    return "\n".join(lines)


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.1%}"
