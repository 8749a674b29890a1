"""Assessment of a release: every candidate against every objective, with always-valid evidence,
plus the sample-ratio and missing-data reasons that make a strategy hold (see docs/statistics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from policyengine.analysis.observations import (
    DataStatus,
    GaugePoint,
    MetricObservation,
    Observations,
    WindowCounts,
    observation_key,
)
from policyengine.analysis.sequential import (
    Interval,
    Levels,
    StratifiedComparison,
    compare_proportions,
    proportion_sequence,
    requests_to_show_under,
    windows_to_pass_margin,
)
from policyengine.analysis.srm import sample_ratio
from policyengine.analysis.verdict import Assessment, Evidence, ObjectiveResult, Verdict
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import MetricTemplate, Objective, ReleasePolicy
from policyengine.values import TrafficSplit

# Mixing precisions ρ of the confidence sequences, in expected events (the variance of a count of
# rare events is about the count), as multiples of analysis.minEvents. Harm is tested from the
# first window, so its ρ is small: a 3x error regression is caught within two minutes at
# 100 req/s. Safety is first acted upon at the end of the schedule, after hundreds of events, so
# its ρ is larger. docs/statistics.md has the tuning runs.
HARM_RHO_PER_MIN_EVENT = 0.3
SAFETY_RHO_PER_MIN_EVENT = 5.0

# Without maxIncrease, a relative margin never drops below this fraction of the objective's `max`.
RELATIVE_FLOOR_OF_MAX = 0.1

RELATIVE_CHECK = "vs baseline"
RANGE_CHECK = "range"


@dataclass(frozen=True)
class _Context:
    """What every objective of one assessment shares."""

    policy: ReleasePolicy
    baseline: str
    levels: Levels
    min_events: float
    interval: timedelta
    step_started_at: datetime
    now: datetime


def assess(
    policy: ReleasePolicy,
    metrics: dict[str, MetricTemplate],
    observations: Observations,
    split: TrafficSplit,
    step_started_at: datetime,
    now: datetime,
) -> Assessment:
    """Verdicts for every candidate and objective, the reasons to hold, and this step's requests."""
    analysis = policy.spec.analysis
    interval = parse_duration(analysis.interval)
    candidates = assessed_candidates(policy, split)
    # α is family-wise over every harm test of every candidate: with A/B/n, each candidate is
    # another chance to roll back wrongly.
    tests = len(candidates) * sum(
        _harm_tests(objective, metrics) for objective in policy.spec.objectives
    )
    min_events = float(max(analysis.min_events, 1))
    context = _Context(
        policy=policy,
        baseline=policy.spec.baseline.name,
        levels=Levels(
            lower_alpha=analysis.alpha / max(tests, 1),
            upper_alpha=analysis.beta,
            lower_rho=HARM_RHO_PER_MIN_EVENT * min_events,
            upper_rho=SAFETY_RHO_PER_MIN_EVENT * min_events,
        ),
        min_events=float(analysis.min_events),
        interval=interval,
        step_started_at=step_started_at,
        now=now,
    )
    hold_reasons: list[str] = []
    if observations.traffic_status is not DataStatus.OK:
        hold_reasons.append(
            f"traffic not measured ({observations.traffic_status}): {observations.message}".rstrip(
                ": "
            )
        )
    samples = _step_requests(observations, step_started_at, interval, now)
    mismatch = _sample_ratio_mismatch(observations, split, context, analysis.srm_p_value)
    if mismatch:
        hold_reasons.append(mismatch)

    results: list[ObjectiveResult] = []
    for objective in policy.spec.objectives:
        template = metrics.get(objective.metric)
        key = observation_key(
            objective.metric,
            objective.threshold if template is not None and template.type == "histogram" else None,
        )
        observation = observations.metrics.get(key)
        for candidate in candidates:
            outcome = _assess_objective(context, objective, template, observation, candidate)
            results.extend(outcome.results)
            hold_reasons.extend(r for r in outcome.hold_reasons if r not in hold_reasons)
    return Assessment(results=tuple(results), hold_reasons=tuple(hold_reasons), samples=samples)


def assessed_candidates(policy: ReleasePolicy, split: TrafficSplit) -> list[str]:
    """The candidates measured in this pass: the released one, and any other that receives live
    or mirrored traffic. A version listed for later sits at weight 0 and has nothing to measure:
    assessing it would hold the release for ever on "no requests measured"."""
    released = policy.spec.candidates[0].name if policy.spec.candidates else None
    weights = split.as_dict()
    return [
        c.name
        for c in policy.spec.candidates
        if c.name == released or weights.get(c.name, 0) > 0 or split.mirror_to == c.name
    ]


def _harm_tests(objective: Objective, metrics: dict[str, MetricTemplate]) -> int:
    """How many always-valid harm tests an objective runs (α is split between them)."""
    template = metrics.get(objective.metric)
    if template is None or template.type == "gauge":
        return 0
    relative = objective.max_increase is not None or objective.max_relative_increase is not None
    return int(relative) + int(objective.max is not None) + int(objective.min is not None)


@dataclass(frozen=True)
class _ObjectiveOutcome:
    results: tuple[ObjectiveResult, ...]
    hold_reasons: tuple[str, ...] = ()


def _result(
    objective: Objective,
    version: str,
    verdict: Verdict,
    reason: str,
    check: str,
    evidence: Evidence | None = None,
) -> ObjectiveResult:
    return ObjectiveResult(
        objective=objective.display_name,
        version=version,
        verdict=verdict,
        reason=reason,
        evidence=evidence or Evidence(),
        on_fail=objective.on_fail,
        check=check,
    )


def _checks(objective: Objective, gauge: bool) -> list[str]:
    checks = []
    if objective.max_increase is not None or objective.max_relative_increase is not None:
        checks.append(RELATIVE_CHECK)
    bounded = objective.max is not None or objective.min is not None
    if gauge and bounded:
        checks.append(RANGE_CHECK)
    if not gauge and objective.max is not None:
        checks.append(f"≤ {objective.max:g}")
    if not gauge and objective.min is not None:
        checks.append(f"≥ {objective.min:g}")
    return checks


def _unusable(
    objective: Objective,
    version: str,
    verdict: Verdict,
    reason: str,
    hold: bool,
    gauge: bool = False,
) -> _ObjectiveOutcome:
    """The same verdict for every check of an objective that cannot be evaluated at all."""
    checks = _checks(objective, gauge)
    results = tuple(_result(objective, version, verdict, reason, c) for c in checks)
    return _ObjectiveOutcome(results, (f"{objective.display_name}: {reason}",) if hold else ())


def _assess_objective(
    context: _Context,
    objective: Objective,
    template: MetricTemplate | None,
    observation: MetricObservation | None,
    candidate: str,
) -> _ObjectiveOutcome:
    if template is None:
        reason = f"metric {objective.metric!r} is not in the policy's metric set or templates"
        return _unusable(objective, candidate, Verdict.ERROR, reason, hold=True)
    gauge = template.type == "gauge"
    if template.type == "histogram" and objective.threshold is None:
        reason = f"histogram metric {objective.metric!r} needs a threshold (a bucket bound)"
        return _unusable(objective, candidate, Verdict.ERROR, reason, hold=True)
    if observation is None:
        reason = f"metric {objective.metric!r} was not measured"
        return _unusable(objective, candidate, Verdict.INCONCLUSIVE, reason, hold=True, gauge=gauge)
    if observation.status is DataStatus.NO_DATA:
        reason = f"no data: {observation.message or objective.metric}"
        return _unusable(objective, candidate, Verdict.INCONCLUSIVE, reason, hold=True, gauge=gauge)
    if observation.status is not DataStatus.OK:
        reason = f"{observation.status}: {observation.message or objective.metric}"
        return _unusable(objective, candidate, Verdict.ERROR, reason, hold=True, gauge=gauge)
    if template.type == "gauge":
        return _assess_gauge(context, objective, observation, candidate)
    return _assess_proportion(context, objective, observation, candidate)


def _complete(windows: tuple[WindowCounts, ...], context: _Context) -> list[WindowCounts]:
    latest = context.now - context.interval
    return [w for w in windows if w.start <= latest]


def _assess_proportion(
    context: _Context, objective: Objective, observation: MetricObservation, candidate: str
) -> _ObjectiveOutcome:
    candidate_windows = _complete(observation.windows.get(candidate, ()), context)
    if not candidate_windows or sum(w.total for w in candidate_windows) <= 0:
        reason = f"no data: no requests measured for {candidate} in {observation.metric}"
        return _unusable(objective, candidate, Verdict.INCONCLUSIVE, reason, hold=True)
    results: list[ObjectiveResult] = []
    holds: list[str] = []
    relative: ObjectiveResult | None = None
    if objective.max_increase is not None or objective.max_relative_increase is not None:
        baseline_windows = _complete(observation.windows.get(context.baseline, ()), context)
        by_start = {w.start: w for w in baseline_windows}
        pairs = [
            (b.events, b.total, c.events, c.total)
            for c in candidate_windows
            if (b := by_start.get(c.start)) is not None
        ]
        baseline_rate = _rate(sum(p[0] for p in pairs), sum(p[1] for p in pairs))
        comparison = compare_proportions(pairs, context.levels, _margin(objective, baseline_rate))
        if comparison.windows == 0:
            reason = f"no data: no window where both {context.baseline} and {candidate} served"
            relative = _result(objective, candidate, Verdict.INCONCLUSIVE, reason, RELATIVE_CHECK)
            holds.append(f"{objective.display_name}: {reason}")
        else:
            relative = _relative_verdict(context, objective, candidate, comparison)
        results.append(relative)
    total = sum(w.total for w in candidate_windows)
    counts = [(w.events, w.total) for w in candidate_windows]
    for upper_side, bound in ((True, objective.max), (False, objective.min)):
        if bound is None:
            continue
        levels = context.levels
        if not upper_side:
            # For a lower bound, harm is a rate below it: the upper side of the interval decides
            # a rollback, so it gets α (and the harm ρ), the lower side β.
            levels = Levels(
                lower_alpha=levels.upper_alpha,
                upper_alpha=levels.lower_alpha,
                lower_rho=levels.upper_rho,
                upper_rho=levels.lower_rho,
            )
        sequence = proportion_sequence(counts, levels, null_rate=bound)
        evidence = Evidence(
            estimate=sequence.estimate,
            lower=sequence.lower,
            upper=sequence.upper,
            samples=round(total),
            test=(
                f"always-valid CS on the rate (normal mixture, variance at {bound:g}; "
                f"α={context.levels.lower_alpha:.3g}, β={context.levels.upper_alpha:g})"
            ),
        )
        if upper_side:
            results.append(
                _upper_bound_verdict(
                    context,
                    objective,
                    candidate,
                    sequence,
                    total,
                    evidence,
                    relative,
                    candidate_windows[-1].total,
                )
            )
        else:
            results.append(
                _lower_bound_verdict(context, objective, candidate, sequence, total, evidence)
            )
    return _ObjectiveOutcome(tuple(results), tuple(holds))


def _rate(events: float, total: float) -> float:
    return events / total if total > 0 else 0.0


def _margin(objective: Objective, baseline_rate: float) -> float:
    """The declared tolerance m: the more lenient of `maxIncrease` and `maxRelativeIncrease` ×
    the baseline's rate. Without `maxIncrease`, a relative margin has an absolute floor of
    RELATIVE_FLOOR_OF_MAX × `max` (docs/statistics.md): 20 % of a 0.06 % rate is a difference no
    schedule can prove, while a tenth of the bound the user accepts is provable and harmless."""
    margins = []
    if objective.max_increase is not None:
        margins.append(objective.max_increase)
    if objective.max_relative_increase is not None:
        margins.append(objective.max_relative_increase * baseline_rate)
        if objective.max_increase is None and objective.max is not None and objective.max > 0:
            margins.append(RELATIVE_FLOOR_OF_MAX * objective.max)
    return max(margins)


def margin_of(objective: Objective, baseline_rate: float) -> float:
    """The margin a relative objective tests against, at this baseline rate (for plan output)."""
    return _margin(objective, baseline_rate)


def describe_margin(margin: float) -> str:
    """The tolerance in the user's words: "0.1 pp" for rates, the metric's unit otherwise."""
    return f"{100 * margin:.3g} pp"


def _relative_verdict(
    context: _Context, objective: Objective, candidate: str, comparison: StratifiedComparison
) -> ObjectiveResult:
    sequence = comparison.interval
    margin = _margin(objective, comparison.baseline_rate)
    evidence = Evidence(
        estimate=sequence.estimate,
        lower=sequence.lower,
        upper=sequence.upper,
        baseline=comparison.baseline_rate,
        samples=round(comparison.candidate_total),
        baseline_samples=round(comparison.baseline_total),
        test=(
            f"always-valid CS on Δ (normal mixture, stratified over {comparison.windows} "
            f"windows; harm α={context.levels.lower_alpha:.3g}, margin β={context.levels.upper_alpha:g})"
        ),
    )
    expected = min(comparison.expected_candidate_events, comparison.expected_baseline_events)
    if sequence.lower > margin:
        # Proven worse than the declared tolerance. Valid at any sample size: while V is small
        # next to ρ the boundary is wide, so this is also the catastrophic rule below minEvents.
        verdict, reason = (
            Verdict.FAIL,
            f"{candidate} is worse than {context.baseline} by more than the allowed "
            f"{describe_margin(margin)}: Δ ≥ {sequence.lower:.4g} > {margin:.4g}",
        )
    elif expected < context.min_events:
        verdict, reason = (
            Verdict.INCONCLUSIVE,
            f"{expected:.1f} expected events, fewer than minEvents {context.min_events:g}",
        )
    elif sequence.upper < margin:
        verdict, reason = (
            Verdict.PASS,
            f"no worse than {context.baseline}: Δ ≤ {sequence.upper:.4g} < margin {margin:.4g}",
        )
    else:
        verdict, reason = (
            Verdict.INCONCLUSIVE,
            f"Δ up to {sequence.upper:.4g} is not yet below the margin {margin:.4g}; "
            + _expected_pass(
                context,
                windows_to_pass_margin(comparison, margin, context.levels.upper_alpha),
                f"the estimate {sequence.estimate:.4g} is too close to the margin {margin:.4g}",
            ),
        )
    return _result(objective, candidate, verdict, reason, RELATIVE_CHECK, evidence)


def _expected_pass(context: _Context, windows: float, why_not: str) -> str:
    """When the test is expected to pass at the current rates and traffic, in words."""
    if math.isinf(windows) or windows > 1e6:
        return f"not expected to pass at the current rates ({why_not})"
    minutes = max(1.0, math.ceil(windows) * context.interval.total_seconds() / 60.0)
    if minutes >= 120:
        return f"expected to pass in ~{minutes / 60:.0f} h at the current traffic"
    return f"expected to pass in ~{minutes:.0f} min at the current traffic"


def _enough_events(total: float, bound: float, context: _Context) -> bool:
    return total * min(bound, 1.0 - bound) >= context.min_events


def _upper_bound_verdict(
    context: _Context,
    objective: Objective,
    candidate: str,
    sequence: Interval,
    total: float,
    evidence: Evidence,
    relative: ObjectiveResult | None,
    latest_requests: float,
) -> ObjectiveResult:
    assert objective.max is not None
    bound = objective.max
    check = f"≤ {bound:g}"
    if sequence.lower > bound:
        return _result(
            objective,
            candidate,
            Verdict.FAIL,
            f"rate ≥ {sequence.lower:.4g}, above the bound {bound:g}",
            check,
            evidence,
        )
    enough = _enough_events(total, bound, context)
    if enough and sequence.upper <= bound:
        reason = f"rate ≤ {sequence.upper:.4g}, within the bound {bound:g}"
        return _result(objective, candidate, Verdict.PASS, reason, check, evidence)
    if relative is not None and relative.verdict is Verdict.PASS and sequence.estimate <= bound:
        # A candidate as good as a baseline that itself runs close to the bound would otherwise
        # need endless traffic to prove it is under the bound: promoting it changes nothing.
        reason = (
            f"rate {sequence.estimate:.4g} under the bound {bound:g} and no worse than "
            f"{context.baseline} (its rate {relative.evidence.baseline or 0:.4g})"
        )
        return _result(objective, candidate, Verdict.PASS, reason, check, evidence)
    if not enough:
        reason = f"too few requests ({total:.0f}) to show a rate under {bound:g}"
    else:
        reason = f"rate up to {sequence.upper:.4g} is not yet below the bound {bound:g}"
    needed = max(
        requests_to_show_under(sequence.estimate, bound, total, context.levels),
        context.min_events / max(min(bound, 1.0 - bound), 1e-12),
    )
    per_window = latest_requests if latest_requests > 0 else math.inf
    reason += "; " + _expected_pass(
        context,
        max(needed - total, 0.0) / per_window,
        f"the rate {sequence.estimate:.4g} is not under {bound:g}",
    )
    return _result(objective, candidate, Verdict.INCONCLUSIVE, reason, check, evidence)


def _lower_bound_verdict(
    context: _Context,
    objective: Objective,
    candidate: str,
    sequence: Interval,
    total: float,
    evidence: Evidence,
) -> ObjectiveResult:
    assert objective.min is not None
    bound = objective.min
    check = f"≥ {bound:g}"
    if sequence.upper < bound:
        reason = f"rate ≤ {sequence.upper:.4g}, below the bound {bound:g}"
        return _result(objective, candidate, Verdict.FAIL, reason, check, evidence)
    if _enough_events(total, bound, context) and sequence.lower >= bound:
        reason = f"rate ≥ {sequence.lower:.4g}, within the bound {bound:g}"
        return _result(objective, candidate, Verdict.PASS, reason, check, evidence)
    reason = f"rate down to {sequence.lower:.4g} is not yet above the bound {bound:g}"
    return _result(objective, candidate, Verdict.INCONCLUSIVE, reason, check, evidence)


GAUGE_RECENT_WINDOWS = 3
# A gauge passes only on at least this many values from the current step: one value is one batch
# of predictions, and a value from before the step describes other weights.
GAUGE_MIN_VALUES = 3


def _recent(points: tuple[GaugePoint, ...], context: _Context) -> list[GaugePoint]:
    """The gauge values of the current step (never older ones)."""
    return [p for p in points if context.step_started_at <= p.at <= context.now]


def _assess_gauge(
    context: _Context, objective: Objective, observation: MetricObservation, candidate: str
) -> _ObjectiveOutcome:
    """Fairness gauges (SPD, DIR) are already statistics over a batch of predictions: they are
    checked as values against their range, not tested as means."""
    recent = _recent(observation.gauges.get(candidate, ()), context)
    if not recent:
        reason = f"no data: no value of {observation.metric} for {candidate} in this step"
        return _unusable(objective, candidate, Verdict.INCONCLUSIVE, reason, hold=True, gauge=True)
    values = [p.value for p in recent]
    mean = math.fsum(values) / len(values)
    results: list[ObjectiveResult] = []
    holds: list[str] = []
    if objective.max_increase is not None or objective.max_relative_increase is not None:
        baseline_recent = _recent(observation.gauges.get(context.baseline, ()), context)
        if not baseline_recent:
            reason = (
                f"no data: no value of {observation.metric} for {context.baseline} in this step"
            )
            results.append(
                _result(objective, candidate, Verdict.INCONCLUSIVE, reason, RELATIVE_CHECK)
            )
            holds.append(f"{objective.display_name}: {reason}")
        else:
            baseline = math.fsum(p.value for p in baseline_recent) / len(baseline_recent)
            margin = _margin(objective, abs(baseline))
            evidence = Evidence(
                estimate=mean - baseline,
                baseline=baseline,
                samples=len(values),
                baseline_samples=len(baseline_recent),
                test="difference of recent means",
            )
            worse = mean - baseline > margin
            verdict = Verdict.FAIL if worse else Verdict.PASS
            reason = (
                f"increase {mean - baseline:.4g} {'above' if worse else 'within'} margin "
                f"{margin:.4g}"
            )
            if not worse and min(len(values), len(baseline_recent)) < GAUGE_MIN_VALUES:
                verdict, reason = Verdict.INCONCLUSIVE, _too_few_values(values, baseline_recent)
            results.append(_result(objective, candidate, verdict, reason, RELATIVE_CHECK, evidence))
    if objective.max is not None or objective.min is not None:
        low = -math.inf if objective.min is None else objective.min
        high = math.inf if objective.max is None else objective.max
        evidence = Evidence(
            estimate=mean,
            lower=min(values),
            upper=max(values),
            samples=len(values),
            test=f"range of the {len(values)} recent value(s)",
        )
        text = f"[{objective.min if objective.min is not None else '-inf'}, "
        text += f"{objective.max if objective.max is not None else '+inf'}]"
        # A drift must not hide behind the fair values earlier in the step: the latest few
        # windows decide a breach (each gauge value already summarises a batch of predictions).
        cut = context.now - GAUGE_RECENT_WINDOWS * context.interval
        latest = [p.value for p in recent if p.at > cut] or [recent[-1].value]
        latest_mean = math.fsum(latest) / len(latest)
        if not low <= latest_mean <= high:
            verdict, reason = (
                Verdict.FAIL,
                f"mean of the last {len(latest)} value(s) {latest_mean:.4g} outside {text}",
            )
        elif not low <= mean <= high:
            verdict, reason = Verdict.FAIL, f"mean {mean:.4g} outside {text}"
        elif len(values) < GAUGE_MIN_VALUES:
            verdict, reason = Verdict.INCONCLUSIVE, _too_few_values(values)
        elif all(low <= v <= high for v in values):
            verdict, reason = Verdict.PASS, f"all recent values within {text}"
        else:
            verdict, reason = (
                Verdict.INCONCLUSIVE,
                f"mean {mean:.4g} within {text}, some values not",
            )
        results.append(_result(objective, candidate, verdict, reason, RANGE_CHECK, evidence))
    return _ObjectiveOutcome(tuple(results), tuple(holds))


def _too_few_values(*series: list[float] | list[GaugePoint]) -> str:
    fewest = min(len(values) for values in series)
    return f"only {fewest} value(s) in this step, {GAUGE_MIN_VALUES} needed to pass"


def _step_requests(
    observations: Observations, step_started_at: datetime, interval: timedelta, now: datetime
) -> dict[str, int]:
    latest = now - interval
    return {
        version: round(sum(w.total for w in windows if step_started_at <= w.start <= latest))
        for version, windows in observations.traffic.items()
    }


def _sample_ratio_mismatch(
    observations: Observations, split: TrafficSplit, context: _Context, p_value: float
) -> str | None:
    """The hold reason when traffic in this step does not follow the split, else None.

    The step's first window is skipped: Argo CD may not have applied the new weights yet.
    """
    weights = split.as_dict()
    latest = context.now - context.interval
    counts: dict[str, dict[datetime, float]] = {
        name: {
            w.start: w.total
            for w in observations.traffic.get(name, ())
            if context.step_started_at <= w.start <= latest
        }
        for name, weight in weights.items()
        if weight > 0
    }
    starts = sorted({start for per_version in counts.values() for start in per_version})[1:]
    if not starts:
        return None
    requests = {name: [per.get(s, 0.0) for s in starts] for name, per in counts.items()}
    result = sample_ratio(requests, weights, p_value)
    if result is None or not result.mismatch:
        return None
    return result.describe()


def evidence_rows(assessment: Assessment) -> list[dict[str, str]]:
    """One row per version and objective test, formatted for a Markdown table."""

    def number(value: float | None) -> str:
        if value is None:
            return "–"
        if math.isinf(value):
            return "+inf" if value > 0 else "-inf"
        return f"{value:.4g}"

    rows = []
    for result in assessment.results:
        evidence = result.evidence
        interval = "–"
        if evidence.lower is not None or evidence.upper is not None:
            interval = f"[{number(evidence.lower)}, {number(evidence.upper)}]"
        samples = str(evidence.samples)
        if evidence.baseline_samples:
            samples += f" / {evidence.baseline_samples}"
        rows.append(
            {
                "version": result.version,
                "objective": result.objective,
                "check": result.check,
                "verdict": str(result.verdict),
                "estimate": number(evidence.estimate),
                "interval": interval,
                "baseline": number(evidence.baseline),
                "samples": samples,
                "test": evidence.test,
                "reason": result.reason,
            }
        )
    return rows
