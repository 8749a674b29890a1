"""The golden gate, run by the reconciler before a release sends the candidate any traffic, and the
payload-log drift check run while it progresses. Shell: S3, the versions' endpoints; the verdicts
come from analysis/golden.py and analysis/drift.py.

A storage or endpoint outage holds the release (exit 3); a missing dataset or a version answering
errors is the policy's error, naming the object or the endpoint (exit 1); a failed check is an
objective result with onFail rollback, so the strategy rolls back with the evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyengine.analysis.drift import (
    DriftLimits,
    FeatureDrift,
    Value,
    assess_feature_drift,
    drift_results,
)
from policyengine.analysis.golden import (
    GoldenLimits,
    GoldenReport,
    GoldenRow,
    assess_golden,
    golden_results,
    schema_parity,
)
from policyengine.analysis.verdict import Assessment, ObjectiveResult
from policyengine.errors import InvalidPolicyError, StorageUnavailableError
from policyengine.golden.dataset import read_rows
from policyengine.golden.evidence import golden_markdown
from policyengine.golden.payload_logs import PREDICTION, read_logged_values
from policyengine.golden.replay import EndpointUnavailableError, replay
from policyengine.policy.duration import parse_duration
from policyengine.policy.golden import DriftCheck, GoldenTest
from policyengine.policy.models import ReleasePolicy
from policyengine.storage.s3 import S3Location, S3Settings, S3Store

log = logging.getLogger("policyengine")


@dataclass(frozen=True)
class GateResult:
    """What a golden gate or drift check adds to a policy's assessment."""

    results: tuple[ObjectiveResult, ...] = ()
    hold_reasons: tuple[str, ...] = ()
    markdown: str = ""
    unreachable: str | None = None

    def merged_into(self, assessment: Assessment) -> Assessment:
        return Assessment(
            results=assessment.results + self.results,
            hold_reasons=assessment.hold_reasons + self.hold_reasons,
            samples=assessment.samples,
        )


def golden_limits(golden: GoldenTest) -> GoldenLimits:
    floors: dict[str, float] = {}
    if golden.min_accuracy is not None:
        floors["accuracy"] = golden.min_accuracy
    if golden.min_f1 is not None:
        floors["f1"] = golden.min_f1
    if golden.max_mae is not None:
        floors["mae"] = golden.max_mae
    return GoldenLimits(
        metrics=tuple(golden.metrics),
        min_value=floors,
        max_degradation=golden.max_degradation,
        min_agreement=golden.min_agreement,
        agreement_tolerance=golden.agreement_tolerance,
        slice_by=tuple(golden.slice_by),
        min_slice_rows=golden.min_slice_rows,
        beat_trivial=golden.beat_trivial,
    )


def drift_limits(drift: DriftCheck, features: Sequence[str]) -> dict[str, DriftLimits]:
    limits = {}
    for feature in features:
        own = drift.per_feature.get(feature)
        limits[feature] = DriftLimits(
            max_psi=own.max_psi if own and own.max_psi is not None else drift.max_psi,
            min_ks_p_value=(
                own.min_ks_p_value
                if own and own.min_ks_p_value is not None
                else drift.min_ks_p_value
            ),
        )
    return limits


def store_for(golden: GoldenTest) -> S3Store:
    return S3Store(S3Settings.from_environment(golden.s3_endpoint_url))


def run_golden_gate(
    policy: ReleasePolicy, cache_dir: Path, store: S3Store | None = None
) -> GateResult:
    """Replay the golden dataset against the baseline and every candidate, and judge it."""
    golden = policy.spec.golden
    if golden is None:
        return GateResult()
    baseline = policy.spec.baseline.name
    candidates = [v.name for v in policy.spec.candidates]
    missing = [v for v in (baseline, *candidates) if v not in golden.endpoints]
    if missing:
        raise InvalidPolicyError(
            f"{policy.key}: spec.golden.endpoints has no endpoint for {', '.join(missing)}"
        )
    store = store or store_for(golden)
    required = [*golden.features, golden.label, *golden.slice_by]
    try:
        local = store.fetch_cached(S3Location.parse(golden.dataset), cache_dir)
        rows = read_rows(local, golden.dataset, required)
        answers = replay(
            rows, golden, [baseline, *candidates], parse_duration(golden.timeout).total_seconds()
        )
    except (StorageUnavailableError, EndpointUnavailableError) as error:
        reason = f"golden test cannot run: {error}"
        return GateResult(hold_reasons=(reason,), unreachable=str(error))

    limits = golden_limits(golden)
    results: list[ObjectiveResult] = []
    sections: list[str] = []
    for candidate in candidates:
        golden_rows = [
            GoldenRow(
                row[golden.label],
                {column: str(row[column]) for column in golden.slice_by},
                _comparable(answers[candidate].predictions[i]),
                _comparable(answers[baseline].predictions[i]),
            )
            for i, row in enumerate(rows)
        ]
        problems = schema_parity(answers[candidate].outputs, answers[baseline].outputs)
        report = assess_golden(golden_rows, limits, problems)
        results.extend(golden_results(report, candidate))
        drifts: list[FeatureDrift] = []
        if golden.drift is not None:
            samples = _replay_samples(
                golden, rows, answers[baseline].predictions, answers[candidate].predictions
            )
            drifts = assess_feature_drift(
                samples, drift_limits(golden.drift, list(samples)), golden.drift.min_samples
            )
            results.extend(drift_results(drifts, candidate, "golden replay"))
        sections.append(golden_markdown(candidate, baseline, report, drifts))
        _log_report(policy.key, candidate, report)
    return GateResult(results=tuple(results), markdown="\n".join(sections))


def _comparable(value: Any) -> Any:
    # A row of probabilities compares by its arg-max class; a single value as it is.
    if isinstance(value, tuple):
        return max(range(len(value)), key=lambda i: value[i])
    return value


def _replay_samples(
    golden: GoldenTest,
    rows: Sequence[dict[str, Any]],
    baseline: Sequence[Any],
    candidate: Sequence[Any],
) -> dict[str, tuple[Sequence[Value], Sequence[Value]]]:
    # A replay sends both versions the same inputs: only their predictions can drift apart.
    assert golden.drift is not None
    samples: dict[str, tuple[Sequence[Value], Sequence[Value]]] = {}
    if PREDICTION in golden.drift.features:
        samples[PREDICTION] = (
            [_comparable(p) for p in baseline],
            [_comparable(p) for p in candidate],
        )
    return samples


def _log_report(key: str, candidate: str, report: GoldenReport) -> None:
    log.info(
        "%s golden %s: %s on %d rows%s",
        key,
        candidate,
        report.verdict,
        report.rows,
        ": " + "; ".join(report.reasons) if report.reasons else "",
    )


def run_payload_drift(policy: ReleasePolicy, store: S3Store | None = None) -> GateResult:
    """Drift between the candidate's and the baseline's logged production payloads."""
    golden = policy.spec.golden
    if golden is None or golden.drift is None or golden.drift.payload_logs is None:
        return GateResult()
    drift = golden.drift
    logs = drift.payload_logs
    assert logs is not None
    store = store or store_for(golden)
    try:
        reference = read_logged_values(
            store, S3Location.parse(logs.baseline), drift.features, logs.max_objects
        )
        current = read_logged_values(
            store, S3Location.parse(logs.candidate), drift.features, logs.max_objects
        )
    except StorageUnavailableError as error:
        return GateResult(
            hold_reasons=(f"payload drift cannot be judged: {error}",), unreachable=str(error)
        )
    samples: dict[str, tuple[Sequence[Value], Sequence[Value]]] = {
        f: (reference[f], current[f]) for f in drift.features
    }
    drifts = assess_feature_drift(samples, drift_limits(drift, drift.features), drift.min_samples)
    candidate = policy.spec.candidates[0].name
    results = drift_results(drifts, candidate, "payload logs")
    return GateResult(
        results=results,
        markdown=golden_markdown(candidate, policy.spec.baseline.name, None, drifts),
    )
