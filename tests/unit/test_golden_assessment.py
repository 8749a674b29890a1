"""Golden-test assessment: metrics, slices, agreement, schema parity, trivial model."""

from __future__ import annotations

import pytest

from policyengine.analysis.golden import (
    GoldenLimits,
    GoldenRow,
    OutputSchema,
    assess_golden,
    macro_f1,
    metric_value,
    schema_parity,
    trivial_value,
)
from policyengine.analysis.verdict import Verdict


def limits(**overrides: object) -> GoldenLimits:
    values: dict[str, object] = {
        "metrics": ("accuracy",),
        "min_value": {},
        "max_degradation": 0.02,
        "min_agreement": None,
        "agreement_tolerance": 0.0,
        "slice_by": ("region",),
        "min_slice_rows": 10,
        "beat_trivial": True,
    }
    values.update(overrides)
    return GoldenLimits(**values)  # type: ignore[arg-type]


def rows(region: str, n: int, candidate_wrong: int, baseline_wrong: int) -> list[GoldenRow]:
    out = []
    for i in range(n):
        label = i % 3
        candidate = (label + 1) % 3 if i < candidate_wrong else label
        baseline = (label + 1) % 3 if i < baseline_wrong else label
        out.append(GoldenRow(label, {"region": region}, candidate, baseline))
    return out


def test_metric_values() -> None:
    assert metric_value("accuracy", [1, 0, 1, 1], [1, 1, 1, 0]) == 0.5
    assert metric_value("mae", [1.0, 2.0], [2.0, 2.0]) == 0.5
    # classes 0 and 1: F1(0) = 2*1/(2+0+1) = 2/3, F1(1) = 2*1/(2+1+0) = 2/3
    assert macro_f1([0, 0, 1], [0, 1, 1]) == pytest.approx(2 / 3)
    # labels 1.0 and "1" are one class
    assert metric_value("accuracy", [1.0, "2"], ["1", 2]) == 1.0
    assert trivial_value("accuracy", [0, 0, 1]) == pytest.approx(2 / 3)


def test_a_candidate_worse_on_one_slice_only_fails_that_slice_by_name() -> None:
    data = rows("eu", 60, 0, 0) + rows("us", 60, 12, 0)
    # overall: 108/120 = 0.90 vs 1.0: degradation 0.10 overall too, so make the overall pass by
    # a generous bound and check the slice is named.
    report = assess_golden(data, limits(max_degradation=0.15))
    assert report.verdict is Verdict.FAIL
    failed = report.failed_slices
    assert [s.slice for s in failed] == ["region=us"]
    assert "worse by 0.2" in failed[0].reason and "region=us (60 rows)" in failed[0].reason


def test_small_slices_are_reported_not_judged() -> None:
    data = rows("eu", 60, 0, 0) + rows("tiny", 5, 5, 0)
    report = assess_golden(data, limits(max_degradation=0.1))
    tiny = next(s for s in report.scores if s.slice == "region=tiny")
    assert tiny.verdict is Verdict.INCONCLUSIVE
    # Overall the candidate is 5/65 ≈ 0.077 worse: within 0.1, so only the tiny slice stands out.
    assert report.verdict is Verdict.PASS
    assert "fewer than 10: not judged" in tiny.reason


def test_agreement_and_absolute_floor_and_trivial_model() -> None:
    data = [GoldenRow(0, {}, 0, 1) for _ in range(40)] + [GoldenRow(1, {}, 0, 1) for _ in range(10)]
    report = assess_golden(
        data,
        limits(slice_by=(), min_agreement=0.9, min_value={"accuracy": 0.9}, max_degradation=None),
    )
    text = " ".join(report.reasons)
    assert "agreement with the baseline 0.0%" in text
    assert "accuracy 0.8 < 0.9" in text
    assert "no better than a trivial model (0.8)" in text


def test_schema_parity_ignores_the_batch_dimension() -> None:
    base = [OutputSchema("predict", "INT64", (32,)), OutputSchema("proba", "FP64", (32, 3))]
    same = [OutputSchema("predict", "INT64", (7,)), OutputSchema("proba", "FP64", (7, 3))]
    assert schema_parity(same, base) == ()
    changed = [OutputSchema("predict", "FP32", (7,)), OutputSchema("scores", "FP64", (7, 3))]
    problems = schema_parity(changed, base)
    assert "output 'proba' of the baseline is missing from the candidate" in problems
    assert "the candidate has an output 'scores' the baseline does not" in problems
    assert "output 'predict': datatype FP32 (baseline INT64)" in problems


def test_no_rows_is_an_error() -> None:
    assert assess_golden([], limits()).verdict is Verdict.ERROR
