"""Human sentences for strategy reasons: durations, percentages and objective evidence with numbers."""

from __future__ import annotations

from datetime import timedelta

from policyengine.analysis.verdict import ObjectiveResult
from policyengine.policy.models import ReleasePolicy


def describe_duration(delta: timedelta) -> str:
    """A compact spelling of a duration, whole seconds: 45s, 4m12s, 6m, 1h2m."""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if seconds or not (hours or minutes):
        parts.append(f"{seconds}s")
    return "".join(parts)


def describe_percent(value: float) -> str:
    return f"{value:g} %"


def describe_number(value: float) -> str:
    return f"{value:.4g}"


def describe_result(result: ObjectiveResult) -> str:
    """One objective's verdict with its numbers: `error-rate on v2 fail, interval [..]: reason`."""
    evidence = result.evidence
    text = f"{result.objective} on {result.version} {result.verdict}"
    numbers = []
    if evidence.estimate is not None:
        numbers.append(f"estimate {describe_number(evidence.estimate)}")
    if evidence.lower is not None or evidence.upper is not None:
        lower = "-inf" if evidence.lower is None else describe_number(evidence.lower)
        upper = "+inf" if evidence.upper is None else describe_number(evidence.upper)
        numbers.append(f"interval [{lower}, {upper}]")
    if evidence.baseline is not None:
        numbers.append(f"baseline {describe_number(evidence.baseline)}")
    if evidence.samples or evidence.baseline_samples:
        numbers.append(f"n={evidence.samples} vs {evidence.baseline_samples}")
    if numbers:
        text += " (" + ", ".join(numbers) + ")"
    if result.reason:
        text += f": {result.reason}"
    return text


def describe_results(results: tuple[ObjectiveResult, ...] | list[ObjectiveResult]) -> str:
    return "; ".join(describe_result(r) for r in results)


def objectives_passed(policy: ReleasePolicy, without: str) -> str:
    """Why a release concludes: its objectives all pass, or `without` when it has none."""
    objectives = len(policy.spec.objectives)
    if not objectives:
        return without
    return f"all {objectives} objective{'s' if objectives != 1 else ''} pass"
