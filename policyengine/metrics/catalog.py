"""Metric sets: the built-in presets shipped in `policies/metricsets/` and those in a repository.

A policy names a set (`metrics.set`) and may add templates of its own; `metrics_of` merges them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

import yaml

from policyengine.errors import InvalidPolicyError
from policyengine.policy.models import MetricSet, MetricTemplate, ReleasePolicy

PRESETS_ENV = "POLICYENGINE_PRESETS"


def presets_dir() -> Path:
    """Where the built-in presets live: $POLICYENGINE_PRESETS, else `policies/` beside the package."""
    configured = os.environ.get(PRESETS_ENV)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "policies"


@cache
def builtin_metric_sets() -> Mapping[str, MetricSet]:
    """The MetricSet documents under the presets folder, by name."""
    return _metric_sets_in(sorted(presets_dir().rglob("*.yaml")))


def _metric_sets_in(paths: Iterable[Path]) -> dict[str, MetricSet]:
    sets: dict[str, MetricSet] = {}
    for path in paths:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "MetricSet":
                metric_set = MetricSet.model_validate(document)
                sets[metric_set.metadata.name] = metric_set
    return sets


def metric_set_named(
    name: str, repository_sets: Mapping[str, MetricSet] | None = None
) -> MetricSet | None:
    """A repository's own MetricSet wins over a built-in one of the same name."""
    if repository_sets and name in repository_sets:
        return repository_sets[name]
    return builtin_metric_sets().get(name)


def known_metric_set_names(repository_sets: Mapping[str, MetricSet] | None = None) -> list[str]:
    return sorted(set(builtin_metric_sets()) | set(repository_sets or {}))


def metrics_of(
    policy: ReleasePolicy, repository_sets: Mapping[str, MetricSet] | None = None
) -> tuple[MetricSet | None, dict[str, MetricTemplate]]:
    """The policy's metric set (if any) and every metric it can use, custom templates last."""
    source = policy.spec.metrics
    if source is None:
        return None, {}
    metric_set = None
    metrics: dict[str, MetricTemplate] = {}
    if source.set is not None:
        metric_set = metric_set_named(source.set, repository_sets)
        if metric_set is None:
            known = ", ".join(known_metric_set_names(repository_sets))
            raise InvalidPolicyError(f"unknown metric set {source.set!r} (known: {known})")
        metrics.update(metric_set.spec.metrics)
    metrics.update(source.templates)
    return metric_set, metrics
