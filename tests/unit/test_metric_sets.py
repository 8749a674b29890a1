"""The built-in metric sets: exact upstream names and labels, and templates that render."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from policyengine.metrics import promql
from policyengine.metrics.catalog import builtin_metric_sets, presets_dir
from policyengine.policy.models import MetricSet

# From docs/serving-metrics.md: version label, namespace label, the metric names the
# templates may use, and labels they may match on besides the version/namespace labels.
EXPECTED = {
    "modelmesh": (
        "vModelId",
        None,
        {"modelmesh_api_request_milliseconds", "modelmesh_invoke_model_milliseconds"},
        {"code", "le"},
    ),
    "ovms": (
        "name",
        None,
        {
            "ovms_requests_success",
            "ovms_requests_fail",
            "ovms_request_time_us",
            "ovms_inference_time_us",
        },
        {"le", "__name__"},
    ),
    "kserve": (
        "revision_name",
        "namespace_name",
        {"revision_request_count", "revision_request_latencies", "revision_app_request_latencies"},
        {"response_code_class", "le"},
    ),
    "istio": (
        "destination_workload",
        "destination_workload_namespace",
        {"istio_requests_total", "istio_request_duration_milliseconds"},
        {"reporter", "response_code", "grpc_response_status", "le"},
    ),
    "trustyai": ("model", None, {"trustyai_spd", "trustyai_dir", "trustyai_meanshift"}, set()),
}
SERVING_SETS = ["modelmesh", "ovms", "kserve", "istio"]
METRIC_NAME = re.compile(r"\b((?:modelmesh|ovms|revision|istio|trustyai)_[a-z_]+)")
MATCHER_LABEL = re.compile(r"([a-zA-Z_]+)\s*(?:=~|!~|!=|=)\s*\"")


def base_name(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


def test_every_builtin_set_is_shipped() -> None:
    assert set(builtin_metric_sets()) == set(EXPECTED)
    files = {p.stem for p in (presets_dir() / "metricsets").glob("*.yaml")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_set_file_is_one_valid_metric_set(name: str) -> None:
    path = presets_dir() / "metricsets" / f"{name}.yaml"
    documents = list(yaml.safe_load_all(Path(path).read_text(encoding="utf-8")))
    assert len(documents) == 1
    metric_set = MetricSet.model_validate(documents[0])
    assert metric_set.metadata.name == name
    assert metric_set.spec.description


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_set_uses_upstream_names_and_labels(name: str) -> None:
    version_label, namespace_label, names, labels = EXPECTED[name]
    spec = builtin_metric_sets()[name].spec
    assert spec.version_label == version_label
    assert spec.namespace_label == namespace_label
    for metric in spec.metrics.values():
        for text in metric.queries().values():
            used = METRIC_NAME.findall(text)
            assert used, text
            for metric_name in used:
                assert metric_name in names or base_name(metric_name) in names, (name, text)
            assert set(MATCHER_LABEL.findall(text)) <= labels, (name, text)


@pytest.mark.parametrize("name", SERVING_SETS)
def test_serving_sets_have_error_rate_and_latency(name: str) -> None:
    metrics = builtin_metric_sets()[name].spec.metrics
    assert metrics["error-rate"].type == "proportion"
    assert metrics["latency"].type == "histogram"
    for metric in metrics.values():
        if metric.type == "histogram":
            assert metric.buckets is not None and "by (${groupBy}, le)" in metric.buckets
            assert metric.total is not None and "_count{" in metric.total


def test_trustyai_has_fairness_and_drift_gauges() -> None:
    metrics = builtin_metric_sets()["trustyai"].spec.metrics
    assert {n for n, m in metrics.items() if m.type == "gauge"} >= {"spd", "dir", "meanshift"}


@pytest.mark.parametrize(
    ("name", "caveat"),
    [
        ("modelmesh", "per_model_metrics=true"),
        ("ovms", "without a _total suffix"),
        ("kserve", "1.19"),
        ("istio", 'reporter="destination"'),
        ("trustyai", "modelId"),
    ],
)
def test_descriptions_carry_the_caveats(name: str, caveat: str) -> None:
    assert caveat in (builtin_metric_sets()[name].spec.description or "")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_templates_render_with_a_nasty_version(name: str) -> None:
    spec = builtin_metric_sets()[name].spec
    selector = promql.build_selector(
        spec.version_label, ['x"} or vector(1) #'], spec.namespace_label, ["team"]
    )
    for metric in spec.metrics.values():
        for text in metric.queries().values():
            rendered = promql.render(
                text,
                selector=selector,
                group_by_labels=promql.group_by(spec.version_label, spec.namespace_label),
                window="1m",
            )
            assert "$" not in rendered.replace("$$", "")
            assert selector in rendered
