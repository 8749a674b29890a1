"""A/B/n decision quality: how often a method names the right winner, a wrong one or none, how fast,
and how many conversions it loses on the way (regret), on simulated traffic to three versions.

Methods, all on the same simulated traffic model:

- `policyengine-<allocation>` — the engine's own A/B/n code (policyengine/analysis/bandit.py:
  stratified posterior, P(best), expected loss, always-valid interval against the baseline,
  allocation with floor/holdout/maxChange, winner rule), one pass a minute, policy defaults.
- `iter8` — Iter8 v0.7 (iter8-analytics v2, `iter8_analytics/api/v2/experiment.py`,
  get_winner_assessment_for_abn and get_weights): the winner is the feasible version with the best
  *point estimate* of the first reward (cumulative since the start, no statistical test); weights
  are 10 % uniform exploration + 90 % on the best version(s) (the baseline when there is none),
  each candidate's increase capped by maxCandidateWeightIncrement (10, the controller's default,
  excess to the baseline), rounded to integers summing to 100; an iteration every 20 s; at the end
  of the experiment (15 iterations = 5 minutes, the default) the winner is promoted. At 10 req/s
  five minutes hold ~1,000 requests, so it runs 60 minutes there (as an Iter8 user would set).
- `fixed` — an even split for the same duration as `iter8`, then the best point estimate promoted.

After a winner is promoted it serves 100 % for the rest of the 4-hour horizon; regret (expected
conversions lost against always serving the best version, over the 4 hours) counts that too.

Usage: python bench/abn.py --out abn.json [--trials 2000] [--seed 1]
The engine's constants (the holdout default of 5 %, ρ of the interval) were chosen on runs with
`--seed 1001` (100-2,000 trials); the published figures use `--seed 1`, whose random streams are
disjoint from those.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policyengine.analysis import bandit

SCENARIOS = {
    "5.0/5.5/4.8": (0.050, 0.055, 0.048),
    "5.0/5.0/5.0": (0.050, 0.050, 0.050),
    "5.0/5.25/5.0": (0.050, 0.0525, 0.050),
}
RATES = (10, 100)
HORIZON_MINUTES = 240
STEP_SECONDS = 20  # Iter8's iteration; the engine passes every third step (one minute)
STEPS_PER_PASS = 3
POSTERIOR_DRAWS = 200  # the engine draws 4,000 once per pass; 200 keeps 2,000 trials fast
DIURNAL_AMPLITUDE = 0.1  # conversion rates swing ±10 % over the day, in phase for every version

# Policy defaults (policyengine/policy/models.py AbnStrategy).
FLOOR, HOLDOUT, MAX_CHANGE = 5, 5, 10
WINNER_PROBABILITY = 0.95
RELATIVE_LOSS = 0.01
MIN_DURATION_MINUTES = 30
ALPHA = 0.05

ITER8_EXPLORATION = 0.10
ITER8_MAX_INCREMENT = 10
ITER8_ITERATIONS = 15  # × 20 s = 5 minutes


@dataclass
class Run:
    weights: np.typing.NDArray[np.int64]  # (trials, versions)
    winner: np.typing.NDArray[np.int64]  # -1 while none
    decided_at: np.typing.NDArray[np.float64]  # minutes, nan while none
    regret: np.typing.NDArray[np.float64]


def _even(trials: int, versions: int) -> np.typing.NDArray[np.int64]:
    share, extra = divmod(100, versions)
    weights = np.full((trials, versions), share, dtype=np.int64)
    weights[:, 0] += extra
    return weights


def simulate(
    rates: tuple[float, ...],
    rps: int,
    trials: int,
    rng: np.random.Generator,
    horizon_minutes: int,
    controller: Callable[
        [int, Run, np.typing.NDArray[np.float64], np.typing.NDArray[np.float64]], None
    ],
) -> Run:
    """Drive one method: traffic every 20 s, the controller sees each step's counts."""
    versions = len(rates)
    p = np.array(rates)
    best = p.max()
    run = Run(
        weights=_even(trials, versions),
        winner=np.full(trials, -1, dtype=np.int64),
        decided_at=np.full(trials, np.nan),
        regret=np.zeros(trials),
    )
    phase = rng.uniform(0, 2 * math.pi, size=(trials, 1))
    steps = horizon_minutes * 60 // STEP_SECONDS
    for step in range(steps):
        share = run.weights / 100.0
        expected = rps * STEP_SECONDS * share
        run.regret += (expected * (best - p)[None, :]).sum(axis=1)
        totals = rng.poisson(expected).astype(np.float64)
        hour = step * STEP_SECONDS / 3600.0
        swing = 1.0 + DIURNAL_AMPLITUDE * np.sin(2 * math.pi * hour / 24.0 + phase)
        events = rng.binomial(totals.astype(np.int64), np.clip(p[None, :] * swing, 0, 1))
        controller(step, run, events.astype(np.float64), totals)
    return run


def engine(
    allocation: bandit.Allocation, rates: tuple[float, ...], seed: int
) -> Callable[..., None]:
    """The engine's A/B/n pass, once a minute, on every undecided trial."""
    versions = len(rates)
    model = bandit.RewardModel(kind="rate", sign=1.0, alpha=ALPHA / (versions - 1))
    draws_rng = np.random.default_rng(seed + 7)
    state: dict[str, object] = {}
    window: dict[str, np.typing.NDArray[np.float64]] = {}

    def control(
        step: int,
        run: Run,
        events: np.typing.NDArray[np.float64],
        totals: np.typing.NDArray[np.float64],
    ) -> None:
        if "state" not in state:
            state["state"] = bandit.empty_state(events.shape[0], versions)
            window["events"] = np.zeros_like(events)
            window["totals"] = np.zeros_like(totals)
        window["events"] += events
        window["totals"] += totals
        if (step + 1) % STEPS_PER_PASS:
            return
        minutes = (step + 1) * STEP_SECONDS / 60.0
        current = state["state"]
        assert isinstance(current, bandit.RewardState)
        folded = bandit.fold(current, window["events"], window["totals"], model)
        state["state"] = folded
        window["events"] = np.zeros_like(events)
        window["totals"] = np.zeros_like(totals)
        active = np.flatnonzero(run.winner < 0)
        if active.size == 0:
            return
        sub = _rows(folded, active)
        post = bandit.posterior(sub, model)
        live = np.ones((active.size, versions), dtype=bool)
        draws = draws_rng.standard_normal((POSTERIOR_DRAWS, versions))
        p_best, loss = bandit.best_probabilities(post, live, draws)
        baseline_level = np.abs(bandit.level(sub)[:, 0])
        max_loss = RELATIVE_LOSS * np.nan_to_num(baseline_level)
        lower, upper = bandit.favourable(sub, model)
        found = bandit.winners(
            p_best,
            loss,
            lower,
            upper,
            live,
            winner_probability=WINNER_PROBABILITY,
            max_loss=max_loss,
            old_enough=np.full(active.size, minutes >= MIN_DURATION_MINUTES),
        )
        won = found >= 0
        if won.any():
            rows = active[won]
            run.winner[rows] = found[won]
            run.decided_at[rows] = minutes
            run.weights[rows] = 0
            run.weights[rows, found[won]] = 100
        rest = active[~won]
        if rest.size:
            run.weights[rest] = bandit.allocate(
                allocation,
                p_best[~won],
                live[~won],
                run.weights[rest],
                floor=FLOOR,
                holdout=HOLDOUT,
                max_change=MAX_CHANGE,
            )

    return control


def _rows(state: bandit.RewardState, rows: np.typing.NDArray[np.intp]) -> bandit.RewardState:
    return bandit.RewardState(
        **{name: getattr(state, name)[rows] for name in bandit.RewardState.__dataclass_fields__}
    )


def point_estimate_winner(
    events: np.typing.NDArray[np.float64], totals: np.typing.NDArray[np.float64]
) -> tuple[np.typing.NDArray[np.int64], np.typing.NDArray[np.bool_]]:
    """Iter8's winner: the unique best cumulative point estimate (ties: no unique winner)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(totals > 0, events / np.maximum(totals, 1), -np.inf)
    top = value.max(axis=1, keepdims=True)
    best = (value == top) & np.isfinite(value)
    return value.argmax(axis=1), best


def iter8(duration_steps: int) -> Callable[..., None]:
    """Iter8 v0.7 analytics (v2): best point estimate, 10 % exploration, capped increments."""
    cumulative: dict[str, np.typing.NDArray[np.float64]] = {}

    def control(
        step: int,
        run: Run,
        events: np.typing.NDArray[np.float64],
        totals: np.typing.NDArray[np.float64],
    ) -> None:
        if "events" not in cumulative:
            cumulative["events"] = np.zeros_like(events)
            cumulative["totals"] = np.zeros_like(totals)
        cumulative["events"] += events
        cumulative["totals"] += totals
        if step + 1 > duration_steps:
            return
        leader, best = point_estimate_winner(cumulative["events"], cumulative["totals"])
        trials, versions = events.shape
        if step + 1 == duration_steps:
            unique = best.sum(axis=1) == 1
            # The controller promotes the winner; without one the baseline keeps everything.
            chosen = np.where(unique, leader, 0)
            run.winner[:] = np.where(unique, leader, -1)
            run.decided_at[:] = np.where(unique, (step + 1) * STEP_SECONDS / 60.0, np.nan)
            run.weights[:] = 0
            run.weights[np.arange(trials), chosen] = 100
            return
        exploitation = np.where(
            best.any(axis=1, keepdims=True),
            best / np.maximum(best.sum(axis=1, keepdims=True), 1),
            np.eye(versions)[0][None, :],
        )
        mix = 100.0 * (ITER8_EXPLORATION / versions + (1 - ITER8_EXPLORATION) * exploitation)
        old = run.weights.astype(float)
        increase = mix[:, 1:] - old[:, 1:]
        excess = np.maximum(0.0, np.maximum(increase - ITER8_MAX_INCREMENT, mix[:, 1:] - 100.0))
        mix[:, 1:] -= excess
        mix[:, 0] += excess.sum(axis=1)
        run.weights[:] = bandit.largest_remainder(mix)

    return control


def fixed(duration_steps: int) -> Callable[..., None]:
    """An even split for the experiment's duration, then the best point estimate promoted."""
    cumulative: dict[str, np.typing.NDArray[np.float64]] = {}

    def control(
        step: int,
        run: Run,
        events: np.typing.NDArray[np.float64],
        totals: np.typing.NDArray[np.float64],
    ) -> None:
        if "events" not in cumulative:
            cumulative["events"] = np.zeros_like(events)
            cumulative["totals"] = np.zeros_like(totals)
        cumulative["events"] += events
        cumulative["totals"] += totals
        if step + 1 != duration_steps:
            return
        leader, best = point_estimate_winner(cumulative["events"], cumulative["totals"])
        unique = best.sum(axis=1) == 1
        trials = events.shape[0]
        chosen = np.where(unique, leader, 0)
        run.winner[:] = np.where(unique, leader, -1)
        run.decided_at[:] = np.where(unique, (step + 1) * STEP_SECONDS / 60.0, np.nan)
        run.weights[:] = 0
        run.weights[np.arange(trials), chosen] = 100

    return control


def summarise(
    scenario: str, rps: int, method: str, run: Run, rates: tuple[float, ...]
) -> dict[str, object]:
    best = int(np.argmax(rates))
    unique_best = sum(1 for r in rates if r == rates[best]) == 1
    decided = run.winner >= 0
    correct = decided & (run.winner == best) if unique_best else np.zeros_like(decided)
    wrong = decided & ~correct
    times = run.decided_at[decided]
    return {
        "scenario": scenario,
        "rps": rps,
        "method": method,
        "correct_winner_rate": round(float(correct.mean()), 4),
        "wrong_winner_rate": round(float(wrong.mean()), 4),
        "no_winner_rate": round(float((~decided).mean()), 4),
        "median_minutes_to_winner": round(float(np.median(times)), 1) if times.size else None,
        "regret": round(float(run.regret.mean()), 1),
    }


METHODS = (
    "policyengine-thompson",
    "policyengine-topTwoThompson",
    "policyengine-fixed",
    "iter8",
    "fixed",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument(
        "--seed", type=int, default=1, help="1 for the published figures; 1001 for tuning"
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="a subset, for smoke runs")
    parser.add_argument("--rates", default=",".join(str(r) for r in RATES))
    parser.add_argument("--horizon", type=int, default=HORIZON_MINUTES, help="minutes")
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    rows = []
    began = time.monotonic()
    wanted_scenarios = args.scenarios.split(",")
    wanted_rates = [int(r) for r in args.rates.split(",")]
    for s_index, (scenario, rates) in enumerate(SCENARIOS.items()):
        if scenario not in wanted_scenarios:
            continue
        for rps in wanted_rates:
            duration_steps = ITER8_ITERATIONS if rps >= 100 else 60 * 60 // STEP_SECONDS
            for m_index, method in enumerate(methods):
                seed = args.seed * 1_000_003 + s_index * 1009 + rps * 17 + m_index
                rng = np.random.default_rng(seed)
                if method.startswith("policyengine-"):
                    allocation = method.removeprefix("policyengine-")
                    assert allocation in ("fixed", "thompson", "topTwoThompson")
                    control = engine(allocation, rates, seed)  # type: ignore[arg-type]
                elif method == "iter8":
                    control = iter8(duration_steps)
                elif method == "fixed":
                    control = fixed(duration_steps)
                else:
                    raise SystemExit(f"unknown method {method}")
                run = simulate(rates, rps, args.trials, rng, args.horizon, control)
                row = summarise(scenario, rps, method, run, rates)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    result = {
        "trials": args.trials,
        "seed": args.seed,
        "tuning_seed": "1001 (constants chosen there; the published figures use seed 1)",
        "horizon_minutes": args.horizon,
        "seconds": round(time.monotonic() - began, 1),
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(rows))
    return 0


def markdown(rows: list[dict[str, object]]) -> str:
    lines = [
        "| scenario | req/s | method | correct winner | wrong winner | no winner | median minutes to winner | regret (conversions) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        minutes = (
            "–" if r["median_minutes_to_winner"] is None else f"{r['median_minutes_to_winner']}"
        )
        lines.append(
            f"| {r['scenario']} | {r['rps']} | {r['method']} | {float(r['correct_winner_rate']):.1%} "  # type: ignore[arg-type]
            f"| {float(r['wrong_winner_rate']):.1%} | {float(r['no_winner_rate']):.1%} | {minutes} | {r['regret']} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
