"""The pull request a decision is proposed in: its title and its Markdown body (the evidence, the
reason, the next step and a chart of the release so far). Pure: text and values in, text out.

The chart is a Markdown table with Unicode block bars. GitHub, GitLab and Gitea/Forgejo all render
tables; none renders inline SVG in a description, relative image links in a description do not
resolve to the branch, and Mermaid's xychart is missing from the Mermaid versions that some of
them bundle. A table also reads well in notification e-mails and in `git log`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from policyengine.gitops.commits import engine_records
from policyengine.values import Decision, Outcome, Phase

BAR_WIDTH = 10
MARKER = "<!-- policyengine:pull-request -->"


@dataclass(frozen=True)
class ChartPoint:
    """One decision of the release: when, what, the weights, and the key metric if known."""

    at: datetime
    decision: str
    weights: Mapping[str, int]
    metric: str | None = None  # e.g. "error-rate v2 = 0.0041"
    proposed: bool = False  # this pull request's own decision, not live yet


@dataclass(frozen=True)
class ProposalText:
    """Everything the body says besides the chart."""

    policy_key: str
    outcome: Outcome
    evidence: str  # the Markdown evidence table (report.evidence_markdown)
    baseline: str  # the baseline version's name
    branch: str
    base_branch: str
    argocd_application: str | None = None  # "namespace/name" when the policy names one
    argocd_gated: bool = False  # the engine reads that Application (cluster access configured)
    auto_merge: bool = False


def pull_request_title(policy_key: str, outcome: Outcome) -> str:
    """The decision and the weights, as the commit subject says them."""
    return f"policyengine: {policy_key} {outcome.decision} {outcome.split.trailer()}"


def weights_of(trailer: str) -> dict[str, int]:
    """A `Weights:` trailer (v1=90,v2=10[,mirror=v2:10]) as weights per version."""
    weights: dict[str, int] = {}
    for item in trailer.split(","):
        name, sep, value = item.partition("=")
        if sep and name != "mirror":
            try:
                weights[name.strip()] = int(value)
            except ValueError:
                continue
    return weights


def key_metric(evidence: str) -> str | None:
    """The first estimate of an evidence table as "objective version = estimate".

    Columns are found by the table's header, so a column added to the report does not shift them.
    """
    columns: list[str] | None = None
    for line in evidence.splitlines():
        if not line.startswith("| "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if columns is None:
            columns = cells
            continue
        row = dict(zip(columns, cells, strict=False))
        estimate = row.get("estimate", "")
        if estimate not in ("", "–") and "version" in row and "objective" in row:
            return f"{row['objective']} {row['version']} = {estimate}"
    return None


def chart_points(
    policy_key: str,
    history: Sequence[tuple[datetime, str]],
    proposed: Outcome,
    now: datetime,
    evidence: str,
) -> list[ChartPoint]:
    """Points from engine commit messages (time, message) of the release, then the proposal."""
    points: list[ChartPoint] = []
    for at, message in history:
        for record in engine_records(message):
            if record.policy == policy_key:
                points.append(
                    ChartPoint(
                        record.evaluated_at or at,
                        record.decision,
                        weights_of(record.weights),
                        key_metric(message),
                    )
                )
    points.append(
        ChartPoint(
            now,
            str(proposed.decision),
            proposed.split.as_dict(),
            key_metric(evidence),
            proposed=True,
        )
    )
    return points


def _bar(share: int) -> str:
    filled = max(0, min(BAR_WIDTH, round(share * BAR_WIDTH / 100)))
    return "`" + "█" * filled + "░" * (BAR_WIDTH - filled) + "`"


def release_chart(points: Sequence[ChartPoint], baseline: str) -> str:
    """A table with one row per decision: weights, a bar of the candidates' share, the metric."""
    versions: list[str] = []
    for point in points:
        versions += [v for v in point.weights if v not in versions]
    header = ["time (UTC)", "decision", *versions, "candidates", "key metric"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in points:
        share = sum(w for v, w in point.weights.items() if v != baseline)
        when = point.at.strftime("%Y-%m-%d %H:%M")
        decision = f"**{point.decision}** (proposed)" if point.proposed else point.decision
        cells = [
            when,
            decision,
            *(str(point.weights.get(v, 0)) for v in versions),
            f"{_bar(share)} {share} %",
            point.metric or "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _next_step(text: ProposalText) -> str:
    outcome = text.outcome
    if text.argocd_application and text.argocd_gated:
        start = f"once Argo CD Application {text.argocd_application} has synced the merge"
    elif text.argocd_application:
        start = (
            "from the merge (the engine has no cluster access, `--kubeconfig` or `--in-cluster`, "
            f"so it does not wait for Argo CD Application {text.argocd_application} to sync it)"
        )
    else:
        start = "from the merge"
    if outcome.decision is Decision.ADVANCE:
        move = (
            f"Merging sends {outcome.split.trailer()} live. The step is measured {start}; when "
            "it has dwelt with no objective failing, the engine opens a new pull request for the "
            "next move. Should the decision change before this one is merged, the engine updates "
            "this pull request instead."
        )
    elif outcome.decision is Decision.PROMOTE:
        move = f"Merging sends all traffic to the candidate ({outcome.split.trailer()}): the release ends."
    elif outcome.decision is Decision.ROLLBACK:
        move = (
            f"Merging sends all traffic back to {text.baseline} ({outcome.split.trailer()}): the "
            "release ends as failed."
        )
    else:
        phase = outcome.phase.value if isinstance(outcome.phase, Phase) else str(outcome.phase)
        move = f"Merging records the release as {phase}."
    if text.auto_merge:
        move += (
            " The policy marks this decision as safe (`autoMerge`): the engine merges it itself."
        )
    return (
        f"{move}\n\nClosing this pull request without merging holds the release. To go on, reopen "
        f"it, or delete the branch `{text.branch}` and the engine proposes afresh."
    )


def pull_request_body(text: ProposalText, chart: Sequence[ChartPoint]) -> str:
    """The body: decision and reason, evidence table, next step, chart of the release so far."""
    outcome = text.outcome
    evidence = text.evidence.strip() or "_No objectives: this release progresses on time alone._"
    parts = [
        f"**{outcome.decision}** `{outcome.split.trailer()}` for `{text.policy_key}`, "
        f"proposed for `{text.base_branch}` from `{text.branch}`.",
        f"**Reason:** {outcome.reason}",
        "### Evidence\n\n" + evidence,
        "### Next step\n\n" + _next_step(text),
        "### The release so far\n\n" + release_chart(chart, text.baseline),
        MARKER,
    ]
    return "\n\n".join(parts) + "\n"


def proposal_matches(message: str, outcome: Outcome) -> bool:
    """True when an engine commit message proposes this same decision and split."""
    wanted = (str(outcome.decision), outcome.split.trailer())
    return any((r.decision, r.weights) == wanted for r in engine_records(message))
