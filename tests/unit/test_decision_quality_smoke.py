"""The decision-quality bench: its anchors follow their schedulers' rules, its engine rows go
through the engine's own collector, and a few trials already show the figures it exists for."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "decision_quality.py"
P, F = False, True  # a check that passes, a check that fails


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("decision_quality", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["decision_quality"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _flagger(bench: ModuleType, sequence: list[bool], interval: int = 1) -> tuple[object, list]:
    """Flagger's rule on a hand-made sequence of check results; records (tick, weight) seen."""
    seen: list[tuple[int, int]] = []

    def checks(tick: int, weight: int) -> bool:
        seen.append((tick, weight))
        return sequence[tick - 1]

    return bench.flagger(checks, interval, 5), seen


def test_flagger_advances_on_pass_and_holds_on_fail(bench: ModuleType) -> None:
    result, seen = _flagger(bench, [P, F, P, F, P, P, P])
    # A pass advances one step, a failure keeps the weight; a pass at maxWeight (50) promotes.
    assert seen == [(1, 10), (2, 20), (3, 20), (4, 30), (5, 30), (6, 40), (7, 50)]
    assert result == bench.Result("promote", 7)


def test_flagger_rolls_back_at_the_tick_after_the_threshold(bench: ModuleType) -> None:
    # failedChecks never resets: five failures, passes in between, then the next tick rolls back
    # before running any check.
    result, seen = _flagger(bench, [F, P, F, F, P, F, F, P, P, P])
    assert seen == [(1, 10), (2, 10), (3, 20), (4, 20), (5, 20), (6, 30), (7, 30)]
    assert result == bench.Result("rollback", 8)


def test_flagger_6m_is_the_same_30_minute_schedule(bench: ModuleType) -> None:
    result, seen = _flagger(bench, [P] * 5, interval=6)
    assert seen == [(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]
    assert result == bench.Result("promote", 30)


def test_a_check_fails_on_either_objective_or_on_no_requests(bench: ModuleType) -> None:
    minute = bench.Minute
    assert not bench.check_fails([minute(900, 4, 9, 100, 1, 4)])
    assert bench.check_fails([minute(900, 4, 9, 100, 2, 4)])  # 2 % errors
    assert bench.check_fails([minute(900, 4, 9, 100, 0, 6)])  # 6 % slow
    assert bench.check_fails([minute(900, 4, 9, 0, 0, 0)])  # "no values found"


def test_engine_observations_come_from_the_collector(bench: ModuleType) -> None:
    # The engine rows read what the reconciler would read: the modelmesh set's range queries,
    # answered per window and fanned out by collector.observations_from.
    policy = bench.bench_policy()
    needs = bench.needs_of(policy.policy, policy.metric_set, policy.metrics, bench.START)
    answers = bench.PrometheusAnswers(needs)
    answers.record(bench.START, bench.Minute(900, 4, 9, 100, 1, 3))
    observed = bench.observations_from(needs, answers.results(needs, bench.START + bench.MINUTE))
    metrics = observed[policy.policy.key].metrics
    assert metrics["error-rate"].windows["v2"][0].events == 1
    assert metrics["latency@200"].windows["v2"][0].events == 3
    assert metrics["latency@200"].windows["v1"][0].total == 900


def test_bench_writes_every_row_with_its_fields(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "dq.json"
    assert bench.main(["--out", str(out), "--trials", "1", "--processes", "1"]) == 0
    payload = json.loads(out.read_text(encoding="utf-8"))
    rows = payload["rows"]
    assert len(rows) == len(bench.SCENARIOS) * len(bench.RATES) * len(bench.METHODS)
    assert {(r["scenario"], r["rps"], r["method"]) for r in rows} == {
        (s.name, rps, m) for s in bench.SCENARIOS for rps in bench.RATES for m in bench.METHODS
    }
    keys = {
        "scenario",
        "rps",
        "method",
        "rollback_rate",
        "promote_rate",
        "promote_60_rate",
        "median_minutes_to_rollback",
        "median_minutes_to_promote",
    }
    assert all(keys <= set(row) for row in rows)
    assert payload["seed"] not in payload["tuning_seeds"]
    assert "acceptance seed" in payload["notes"][0]


def test_a_few_trials_show_what_the_bench_is_for(bench: ModuleType) -> None:
    # Seed 3, five trials each: the engine rolls back a 3x regression in minutes and leaves an
    # unchanged version and one within its tolerance alone; Argo's failureLimit 0 rolls the
    # unchanged version back.
    regress = bench.run_trials(("regress-3x", 100, 3, 0, 5))
    assert [r.decision for r in regress["policyengine"]] == ["rollback"] * 5
    assert sorted(r.minute for r in regress["policyengine"])[2] <= 3
    same = bench.run_trials(("aa-0.9pct", 100, 3, 0, 5))
    assert [r.decision for r in same["policyengine"]] == ["promote"] * 5
    assert all(bench.SCHEDULE_MINUTES <= r.minute <= 60 for r in same["policyengine"])
    assert sum(r.decision == "rollback" for r in same["argo"]) >= 4
    within = bench.run_trials(("within-margin", 100, 3, 0, 5))
    assert not any(r.decision == "rollback" for r in within["policyengine"])
