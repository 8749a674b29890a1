"""A pass's plan as people and tools read it: text for terminals, Markdown for PRs, JSON for CI."""

from __future__ import annotations

import json

from policyengine.gitops.commits import format_rfc3339
from policyengine.reconciler import PassPlan, PolicyPlan


def _headline(policy: PolicyPlan) -> str:
    if policy.error:
        return f"{policy.key}: error: {policy.error}"
    assert policy.outcome is not None
    outcome = policy.outcome
    written = "" if policy.writes else " (nothing to write)"
    return f"{policy.key}: {outcome.decision} {outcome.split.trailer()}{written} — {outcome.reason}"


def plan_text(plan: PassPlan, diffs: bool = True) -> str:
    lines = [f"plan at {format_rfc3339(plan.now)} on {plan.head[:10] or 'working tree'}"]
    for policy in plan.policies:
        lines.append(_headline(policy))
        if diffs:
            for diff in policy.diffs.values():
                lines.extend("    " + line for line in diff.rstrip("\n").splitlines())
    if not plan.policies:
        lines.append("no valid policies found")
    return "\n".join(lines) + "\n"


def plan_markdown(plan: PassPlan) -> str:
    parts = [
        f"# policyengine plan\n\nEvaluated at {format_rfc3339(plan.now)}, commit `{plan.head[:10]}`."
    ]
    for policy in plan.policies:
        if policy.error:
            parts.append(f"## {policy.key}: error\n\n`{policy.path}`: {policy.error}")
            continue
        assert policy.outcome is not None
        outcome = policy.outcome
        section = [
            f"## {policy.key}: {outcome.decision} `{outcome.split.trailer()}`",
            outcome.reason,
        ]
        if policy.evidence:
            section.append(policy.evidence)
        for path, diff in policy.diffs.items():
            section.append(f"`{path}`\n\n```diff\n{diff.rstrip()}\n```")
        parts.append("\n\n".join(section))
    if plan.load_errors:
        errors = "\n".join(f"- `{issue}`" for issue in plan.load_errors)
        parts.append(f"## invalid policy files\n\n{errors}")
    return "\n\n".join(parts) + "\n"


def plan_json(plan: PassPlan) -> str:
    def one(policy: PolicyPlan) -> dict[str, object]:
        outcome = policy.outcome
        return {
            "policy": policy.key,
            "path": policy.path,
            "decision": str(outcome.decision) if outcome else None,
            "weights": outcome.split.as_dict() if outcome else None,
            "mirror": (
                {"to": outcome.split.mirror_to, "percent": outcome.split.mirror_percent}
                if outcome and outcome.split.mirror_to
                else None
            ),
            "phase": str(outcome.phase) if outcome else None,
            "step": outcome.step if outcome else None,
            "reason": outcome.reason if outcome else None,
            "writes": policy.writes,
            "diffs": dict(policy.diffs),
            "evidence": policy.evidence,
            "error": policy.error,
            "unreachable": policy.unreachable,
        }

    payload = {
        "evaluatedAt": format_rfc3339(plan.now),
        "commit": plan.head,
        "policies": [one(p) for p in plan.policies],
        "errors": [issue.to_dict() for issue in plan.load_errors],
        "exitCode": plan.exit_code,
    }
    return json.dumps(payload, indent=2) + "\n"
