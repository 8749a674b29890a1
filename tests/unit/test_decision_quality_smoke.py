"""The decision-quality bench runs end to end on a few trials, through the engine's own code."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "decision_quality.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decision_quality", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["decision_quality"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_bench_writes_every_row(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "dq.json"
    assert bench.main(["--out", str(out), "--trials", "2", "--processes", "1"]) == 0
    rows = json.loads(out.read_text(encoding="utf-8"))["rows"]
    assert len(rows) == len(bench.SCENARIOS) * len(bench.RATES) * len(bench.METHODS)
    keys = {
        "scenario",
        "rps",
        "method",
        "trials",
        "rollback_rate",
        "promote_rate",
        "median_minutes_to_rollback",
        "median_minutes_to_promote",
    }
    for row in rows:
        assert keys <= set(row)
        assert row["trials"] == 2
        assert row["rollback_rate"] + row["promote_rate"] <= 1.0


def test_engine_rolls_back_a_3x_regression_quickly(bench: ModuleType) -> None:
    results = bench.run_trials(("regress-3x", 100, 5, 0, 4))
    assert [r.decision for r in results["policyengine"]] == ["rollback"] * 4
    assert all(r.minute <= 6 for r in results["policyengine"])


def test_engine_promotes_an_unchanged_model_after_the_schedule(bench: ModuleType) -> None:
    results = bench.run_trials(("aa-0.9pct", 100, 5, 0, 3))
    engine = results["policyengine"]
    assert sum(r.decision == "promote" for r in engine) >= 2
    assert all(r.minute >= bench.SCHEDULE_MINUTES for r in engine if r.decision == "promote")
    # Argo's failureLimit 0 rolls an unchanged model at 0.9 % back almost always.
    assert sum(r.decision == "rollback" for r in results["argo"]) >= 2


def test_anchor_semantics_on_a_fixed_stream(bench: ModuleType) -> None:
    class Bad:
        """A stream whose candidate always breaks the 1 % bound."""

        scenario = bench.SCENARIOS[0]

        def minute(self, index: int, weight: int) -> object:
            return bench.Minute(900, 0, 0, 100, 5, 0, math.nan)

    assert bench.run_anchor(Bad(), 5) == bench.Result("rollback", 5)
    assert bench.run_anchor(Bad(), 1) == bench.Result("rollback", 1)


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0], 250.0 - 50.0 * 0.01),
        ([100] + [0] * 12, 9.9),
        ([0] * 12 + [100], 1000.0),  # in the +Inf bucket: the highest finite bound
    ],
)
def test_histogram_quantile(bench: ModuleType, counts: list[int], expected: float) -> None:
    assert bench.histogram_quantile(0.99, counts) == pytest.approx(expected)


def test_latency_model_puts_the_threshold_near_the_baseline_p99(bench: ModuleType) -> None:
    assert 0.005 < bench.slow_fraction(1.0) < 0.01
    assert bench.slow_fraction(2.0) > 0.05
    assert sum(bench.bucket_probabilities(1.0)) == pytest.approx(1.0)
