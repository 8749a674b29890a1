"""Golden test assessment: the candidate's and the baseline's answers on a labelled dataset,
compared with the labels, with each other, per slice. Pure functions over replayed rows.

A golden set is replayed in full against both versions, so the comparison is paired and exact for
that dataset: no sampling error between the two versions, only the dataset's own coverage. Slices
with fewer rows than `min_slice_rows` are reported but not judged: one wrong answer in a five-row
slice is 20 points of accuracy and says nothing.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from policyengine.analysis.verdict import Evidence, ObjectiveResult, Verdict

Scalar = float | int | str | bool

HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "mae": False}


@dataclass(frozen=True)
class GoldenRow:
    """One replayed row: its label, its slice values, and both versions' predictions."""

    label: Scalar
    slices: dict[str, str]
    candidate: Scalar
    baseline: Scalar


@dataclass(frozen=True)
class OutputSchema:
    """What a V2 response declares for one output tensor."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class GoldenLimits:
    metrics: tuple[str, ...]  # accuracy, f1, mae
    min_value: dict[str, float]  # absolute floor (accuracy, f1) or ceiling (mae) per metric
    max_degradation: float | None  # candidate may be worse than the baseline by at most this
    min_agreement: float | None
    agreement_tolerance: float  # regression outputs closer than this agree
    slice_by: tuple[str, ...]
    min_slice_rows: int
    beat_trivial: bool


@dataclass(frozen=True)
class SliceScore:
    slice: str  # "overall" or "column=value"
    metric: str
    rows: int
    candidate: float
    baseline: float
    trivial: float | None
    verdict: Verdict
    reason: str

    @property
    def degradation(self) -> float:
        """How much worse the candidate is than the baseline (positive = worse)."""
        if HIGHER_IS_BETTER[self.metric]:
            return self.baseline - self.candidate
        return self.candidate - self.baseline


@dataclass(frozen=True)
class GoldenReport:
    rows: int
    scores: tuple[SliceScore, ...]
    agreement: float
    schema_problems: tuple[str, ...]
    verdict: Verdict
    reasons: tuple[str, ...]

    @property
    def failed_slices(self) -> tuple[SliceScore, ...]:
        return tuple(s for s in self.scores if s.verdict is Verdict.FAIL)


def metric_value(metric: str, labels: Sequence[Scalar], predictions: Sequence[Scalar]) -> float:
    if not labels:
        return math.nan
    if metric == "accuracy":
        return sum(_same(p, y) for p, y in zip(predictions, labels, strict=True)) / len(labels)
    if metric == "f1":
        return macro_f1(labels, predictions)
    if metric == "mae":
        return sum(
            abs(float(p) - float(y))
            for p, y in zip(predictions, labels, strict=True)  # type: ignore[arg-type]
        ) / len(labels)
    raise ValueError(f"unknown golden metric {metric!r}; known: accuracy, f1, mae")


def macro_f1(labels: Sequence[Scalar], predictions: Sequence[Scalar]) -> float:
    """Unweighted mean of the per-class F1 over the classes present in the labels."""
    classes = sorted({_key(y) for y in labels})
    scores = []
    for cls in classes:
        tp = sum(1 for p, y in zip(predictions, labels, strict=True) if _key(p) == cls == _key(y))
        fp = sum(1 for p, y in zip(predictions, labels, strict=True) if _key(p) == cls != _key(y))
        fn = sum(1 for p, y in zip(predictions, labels, strict=True) if _key(y) == cls != _key(p))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def trivial_value(metric: str, labels: Sequence[Scalar]) -> float:
    """The score of the model that ignores its input: the majority class, or the mean label."""
    if metric == "mae":
        mean = sum(float(y) for y in labels) / len(labels)  # type: ignore[arg-type]
        return sum(abs(float(y) - mean) for y in labels) / len(labels)  # type: ignore[arg-type]
    majority = Counter(_key(y) for y in labels).most_common(1)[0][0]
    return metric_value(metric, [_key(y) for y in labels], [majority] * len(labels))


def _key(value: Scalar) -> str:
    # Labels read from JSON or Parquet may be 1, 1.0 or "1" for the same class.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _same(a: Scalar, b: Scalar) -> bool:
    return _key(a) == _key(b)


def agreement(rows: Sequence[GoldenRow], metrics: Sequence[str], tolerance: float) -> float:
    if not rows:
        return math.nan
    regression = "mae" in metrics
    agreed = 0
    for row in rows:
        if regression:
            agreed += abs(float(row.candidate) - float(row.baseline)) <= tolerance  # type: ignore[arg-type]
        else:
            agreed += _same(row.candidate, row.baseline)
    return agreed / len(rows)


def schema_parity(
    candidate: Sequence[OutputSchema], baseline: Sequence[OutputSchema]
) -> tuple[str, ...]:
    """Differences between the output tensors the two versions declare (names, types, shapes).

    The batch dimension (the first) is ignored: both versions answered the same request.
    """
    problems: list[str] = []
    by_name_c = {o.name: o for o in candidate}
    by_name_b = {o.name: o for o in baseline}
    for name in sorted(by_name_b.keys() - by_name_c.keys()):
        problems.append(f"output {name!r} of the baseline is missing from the candidate")
    for name in sorted(by_name_c.keys() - by_name_b.keys()):
        problems.append(f"the candidate has an output {name!r} the baseline does not")
    for name in sorted(by_name_c.keys() & by_name_b.keys()):
        c, b = by_name_c[name], by_name_b[name]
        if c.datatype != b.datatype:
            problems.append(f"output {name!r}: datatype {c.datatype} (baseline {b.datatype})")
        if c.shape[1:] != b.shape[1:]:
            problems.append(f"output {name!r}: shape {list(c.shape)} (baseline {list(b.shape)})")
    return tuple(problems)


def assess_golden(
    rows: Sequence[GoldenRow],
    limits: GoldenLimits,
    schema_problems: Sequence[str] = (),
) -> GoldenReport:
    """Every metric overall and per slice, agreement and schema parity, against the limits."""
    if not rows:
        return GoldenReport(
            0,
            (),
            math.nan,
            tuple(schema_problems),
            Verdict.ERROR,
            ("the golden dataset has no rows",),
        )
    groups: dict[str, list[GoldenRow]] = {"overall": list(rows)}
    for column in limits.slice_by:
        by_value: dict[str, list[GoldenRow]] = defaultdict(list)
        for row in rows:
            by_value[f"{column}={row.slices.get(column, '')}"].append(row)
        for name in sorted(by_value):
            groups[name] = by_value[name]

    scores: list[SliceScore] = []
    for slice_name, members in groups.items():
        labels = [r.label for r in members]
        for metric in limits.metrics:
            scores.append(_score(slice_name, metric, members, labels, limits))

    agreed = agreement(rows, limits.metrics, limits.agreement_tolerance)
    reasons = [s.reason for s in scores if s.verdict is Verdict.FAIL]
    if limits.min_agreement is not None and agreed < limits.min_agreement:
        reasons.append(
            f"agreement with the baseline {agreed:.1%} < {limits.min_agreement:.1%} "
            f"on {len(rows)} rows"
        )
    reasons.extend(f"schema: {p}" for p in schema_problems)
    verdict = Verdict.FAIL if reasons else Verdict.PASS
    return GoldenReport(
        len(rows), tuple(scores), agreed, tuple(schema_problems), verdict, tuple(reasons)
    )


def _score(
    slice_name: str,
    metric: str,
    members: Sequence[GoldenRow],
    labels: Sequence[Scalar],
    limits: GoldenLimits,
) -> SliceScore:
    candidate = metric_value(metric, labels, [r.candidate for r in members])
    baseline = metric_value(metric, labels, [r.baseline for r in members])
    overall = slice_name == "overall"
    trivial = trivial_value(metric, labels) if overall and limits.beat_trivial else None
    score = SliceScore(
        slice_name, metric, len(members), candidate, baseline, trivial, Verdict.PASS, ""
    )
    higher = HIGHER_IS_BETTER[metric]
    breaches: list[str] = []
    if not overall and len(members) < limits.min_slice_rows:
        return replace(
            score,
            verdict=Verdict.INCONCLUSIVE,
            reason=f"{slice_name}: {len(members)} rows, fewer than {limits.min_slice_rows}: not judged",
        )
    floor = limits.min_value.get(metric)
    if floor is not None and (candidate < floor if higher else candidate > floor):
        breaches.append(f"{metric} {candidate:.4g} {'<' if higher else '>'} {floor:g}")
    if limits.max_degradation is not None and score.degradation > limits.max_degradation:
        breaches.append(
            f"{metric} {candidate:.4g} vs baseline {baseline:.4g}: worse by "
            f"{score.degradation:.4g}, more than the allowed {limits.max_degradation:g}"
        )
    if trivial is not None and not (candidate > trivial if higher else candidate < trivial):
        breaches.append(f"{metric} {candidate:.4g} no better than a trivial model ({trivial:.4g})")
    if breaches:
        return replace(
            score,
            verdict=Verdict.FAIL,
            reason=f"{slice_name} ({len(members)} rows): " + "; ".join(breaches),
        )
    return replace(
        score,
        verdict=Verdict.PASS,
        reason=f"{slice_name} ({len(members)} rows): {metric} {candidate:.4g} (baseline {baseline:.4g})",
    )


def golden_results(report: GoldenReport, candidate: str) -> tuple[ObjectiveResult, ...]:
    """The golden report as objective results: one per failing check, or one summary pass.

    Slices too small to judge are left to the evidence table: they neither pass nor block.
    """
    evidence = Evidence(
        estimate=report.agreement if not math.isnan(report.agreement) else None,
        samples=report.rows,
        baseline_samples=report.rows,
        test="golden replay (paired, every row against both versions)",
    )
    if report.verdict is Verdict.PASS:
        overall = [s for s in report.scores if s.slice == "overall"]
        summary = ", ".join(
            f"{s.metric} {s.candidate:.4g} (baseline {s.baseline:.4g})" for s in overall
        )
        return (
            ObjectiveResult(
                "golden test",
                candidate,
                Verdict.PASS,
                f"{report.rows} rows: {summary}",
                evidence,
                check="dataset",
            ),
        )
    results = [
        ObjectiveResult(
            f"golden {score.metric}",
            candidate,
            Verdict.FAIL,
            score.reason,
            Evidence(
                estimate=score.candidate,
                baseline=score.baseline,
                samples=score.rows,
                baseline_samples=score.rows,
                test="golden replay",
            ),
            check=score.slice,
        )
        for score in report.failed_slices
    ]
    other = [r for r in report.reasons if not any(r == s.reason for s in report.failed_slices)]
    results.extend(
        ObjectiveResult("golden test", candidate, report.verdict, reason, evidence, check="dataset")
        for reason in other
    )
    return tuple(results)
