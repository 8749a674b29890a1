"""The performance gate's decision: a pure assessment of a load test's result against the
policy's SLOs, as a PolicyGate (pass: evidence only; miss: roll back or hold, with the report).
"""

from __future__ import annotations

from policyengine.gates.policy_gate import PolicyGate
from policyengine.loadtest.result import LoadTestResult, render_markdown, summary_line
from policyengine.loadtest.slo import assess, checks_markdown, parse_all
from policyengine.policy.performance import PerformanceGate

STATUS_KEY = "performance"


def _where(step: int) -> str:
    return "before the first traffic step" if step < 0 else f"at step {step + 1}"


def performance_gate(
    spec: PerformanceGate, result: LoadTestResult, release_id: str, step: int
) -> PolicyGate:
    checks = assess(result.metrics(), parse_all(spec.slos))
    missed = [check for check in checks if not check.passed]
    rate = (
        f"{spec.rate:g} req/s"
        if spec.end_rate is None
        else f"{spec.rate:g}→{spec.end_rate:g} req/s"
    )
    heading = (
        f"**Performance gate** {_where(step)}: {'passed' if not missed else 'FAILED'} "
        f"({len(checks) - len(missed)}/{len(checks)} SLOs met at {rate} against "
        f"`{spec.endpoint}`)"
    )
    evidence = f"{heading}\n\n{checks_markdown(checks)}\n{render_markdown(result)}"
    summary = summary_line(result)
    verdict = "SLOs met" if not missed else "missed " + "; ".join(c.slo.text for c in missed)
    extra = ((STATUS_KEY, f"{_where(step)}: {summary}; {verdict}"),)
    scope = {"release_id": release_id, "step": step, "evidence": evidence, "extra": extra}
    if not missed:
        return PolicyGate(**scope)  # type: ignore[arg-type]
    reason = (
        f"performance gate {_where(step)}: the candidate missed "
        + "; ".join(check.describe() for check in missed)
        + f" under {rate} ({summary})"
    )
    if spec.on_fail == "hold":
        return PolicyGate(hold=reason, **scope)  # type: ignore[arg-type]
    return PolicyGate(rollback=reason, **scope)  # type: ignore[arg-type]


def unreachable_gate(spec: PerformanceGate, why: str, release_id: str, step: int) -> PolicyGate:
    """The endpoint could not be load-tested at all: hold (and exit 3), never promote blind."""
    reason = f"holding: performance gate {_where(step)} cannot load-test {spec.endpoint}: {why}"
    return PolicyGate(
        hold=reason,
        release_id=release_id,
        step=step,
        unreachable=f"candidate endpoint {spec.endpoint}: {why}",
    )
