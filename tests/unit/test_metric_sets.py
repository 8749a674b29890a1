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
    # Java service (trustyai-explainability@v0.28.0): p-values, except fouriermmd
    "trustyai": (
        "model",
        None,
        {
            "trustyai_spd",
            "trustyai_dir",
            "trustyai_meanshift",
            "trustyai_kstest",
            "trustyai_approxkstest",
            "trustyai_fouriermmd",
        },
        set(),
    ),
    # Python service (trustyai-service v0.30.0+rhaiv.1): test statistics
    "trustyai-py": (
        "modelId",
        None,
        {
            "trustyai_spd",
            "trustyai_dir",
            "trustyai_comparemeans",
            "trustyai_kstest",
            "trustyai_ksteststreaming",
            "trustyai_mmd",
            "trustyai_jensenshannon",
            "trustyai_batchmean",
        },
        set(),
    ),
    # vLLM vllm/v1/metrics/loggers.py: names keep their colon, counters get _total
    "vllm": (
        "model_name",
        None,
        {
            "vllm:request_success_total",
            "vllm:time_to_first_token_seconds",
            "vllm:inter_token_latency_seconds",
            "vllm:time_per_output_token_seconds",
            "vllm:e2e_request_latency_seconds",
            "vllm:num_requests_waiting",
        },
        {"finished_reason"},
    ),
}
SERVING_SETS = ["modelmesh", "ovms", "kserve", "istio"]
METRIC_NAME = re.compile(r"\b((?:modelmesh|ovms|revision|istio|trustyai)_[a-z_]+|vllm:[a-z0-9_]+)")
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


# Which way each drift gauge gets worse: the Java service publishes p-values (low is drift, the
# worst column is the smallest) except fouriermmd, a probability of drift; the Python service
# publishes test statistics (high is drift, the worst column is the largest).
DIRECTIONS = {
    ("trustyai", "meanshift"): ("lowerIsWorse", "min by"),
    ("trustyai", "kstest"): ("lowerIsWorse", "min by"),
    ("trustyai", "approxkstest"): ("lowerIsWorse", "min by"),
    ("trustyai", "fouriermmd"): ("higherIsWorse", "max by"),
    ("trustyai-py", "comparemeans"): ("higherIsWorse", "max by"),
    ("trustyai-py", "kstest"): ("higherIsWorse", "max by"),
    ("trustyai-py", "ksteststreaming"): ("higherIsWorse", "max by"),
    ("trustyai-py", "mmd"): ("higherIsWorse", "max by"),
    ("trustyai-py", "jensenshannon"): ("higherIsWorse", "max by"),
}


@pytest.mark.parametrize(("set_name", "metric"), sorted(DIRECTIONS))
def test_drift_gauges_know_which_way_is_worse(set_name: str, metric: str) -> None:
    direction, aggregation = DIRECTIONS[(set_name, metric)]
    template = builtin_metric_sets()[set_name].spec.metrics[metric]
    assert template.type == "gauge"
    assert template.direction == direction
    assert template.query is not None and template.query.startswith(aggregation)


def test_fairness_gauges_have_no_direction() -> None:
    for set_name in ("trustyai", "trustyai-py"):
        metrics = builtin_metric_sets()[set_name].spec.metrics
        assert metrics["spd"].direction is None and metrics["dir"].direction is None


def test_vllm_objectives_are_fractions_slower_and_an_error_rate() -> None:
    metrics = builtin_metric_sets()["vllm"].spec.metrics
    assert {n for n, m in metrics.items() if m.type == "histogram"} == {
        "ttft",
        "inter-token-latency",
        "time-per-output-token",
        "e2e-latency",
    }
    errors = metrics["error-rate"]
    assert errors.type == "proportion"
    assert errors.events is not None and 'finished_reason=~"abort|error"' in errors.events


@pytest.mark.parametrize(
    ("name", "caveat"),
    [
        ("modelmesh", "per_model_metrics=true"),
        ("ovms", "without a _total suffix"),
        ("kserve", "1.19"),
        ("istio", 'reporter="destination"'),
        ("trustyai", "modelId"),
        ("trustyai", "p-values"),
        ("trustyai-py", "not p-values"),
        ("trustyai-py", "protectedAttribute"),
        ("vllm", "0.11"),
        ("vllm", "finished_reason"),
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
