"""The evidence archive: each decision's evidence, as JSON and as a self-contained HTML page, kept
in S3 under `<prefix>/<namespace>/<name>/<release-id>/`, so the audit trail outlives pull requests
and squash merges that drop commit bodies."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from policyengine.gitops.commits import format_rfc3339
from policyengine.report_html import evidence_html, text
from policyengine.storage.s3 import S3Location, S3Settings, S3Store

if TYPE_CHECKING:
    from policyengine.reconciler import PolicyPlan


def evidence_document(plan: PolicyPlan, now: datetime) -> dict[str, object]:
    outcome = plan.outcome
    assert outcome is not None
    return {
        "policy": plan.key,
        "decision": str(outcome.decision),
        "weights": outcome.split.trailer(),
        "reason": outcome.reason,
        "evaluatedAt": format_rfc3339(now),
        "releaseId": plan.status.release_id if plan.status else None,
        "results": [
            {
                "objective": r.objective,
                "check": r.check,
                "version": r.version,
                "verdict": str(r.verdict),
                "reason": r.reason,
                "estimate": r.evidence.estimate,
                "lower": r.evidence.lower,
                "upper": r.evidence.upper,
                "baseline": r.evidence.baseline,
                "samples": r.evidence.samples,
                "baselineSamples": r.evidence.baseline_samples,
                "test": r.evidence.test,
            }
            for r in plan.assessment.results
        ],
        "holdReasons": list(plan.assessment.hold_reasons),
        "evidence": plan.evidence,
        "gates": plan.gate_evidence,
    }


def evidence_page(plan: PolicyPlan, now: datetime) -> str:
    outcome = plan.outcome
    assert outcome is not None
    title = f"{plan.key}: {outcome.decision} {outcome.split.trailer()}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{text(title)}</title></head><body>\n<h1>{text(title)}</h1>\n"
        f"<p>{text(outcome.reason)}</p>\n<p>Evaluated at {text(format_rfc3339(now))}.</p>\n"
        f"{evidence_html(plan.evidence)}\n</body></html>\n"
    )


def archive_evidence(
    prefix: S3Location, plan: PolicyPlan, now: datetime, store: S3Store | None = None
) -> S3Location:
    """Upload the evidence of `plan`; the JSON object's location (the HTML sits beside it)."""
    outcome = plan.outcome
    assert outcome is not None
    namespace, name = plan.key.split("/", 1)
    release = plan.status.release_id if plan.status and plan.status.release_id else "no-release"
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    folder = prefix.child(f"{namespace}/{name}/{release}")
    base = f"{stamp}-{outcome.decision}"
    store = store or S3Store(S3Settings.from_environment())
    document = json.dumps(evidence_document(plan, now), indent=2, sort_keys=True)
    store.put_many(
        folder,
        {
            f"{base}.json": (document.encode(), "application/json"),
            f"{base}.html": (evidence_page(plan, now).encode(), "text/html; charset=utf-8"),
        },
    )
    return folder.child(f"{base}.json")
