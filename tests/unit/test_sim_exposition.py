"""The fleet as samples: the real metric names and labels of each runtime, histograms consistent."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from policyengine.sim.exposition import Exposition, Sample, expose, java_float, plain_float
from policyengine.sim.fleet import Fleet, FleetState, ModelProfile, VersionProfile, splits_of
from policyengine.sim.latency import VLLM_E2E_BOUNDS_S, VLLM_ITL_BOUNDS_S, VLLM_TTFT_BOUNDS_S

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FLEET = Fleet(
    (
        ModelProfile(
            "models/fraud",
            "models",
            "fraud",
            (
                VersionProfile("v1", metric_label="fraud-v1", spd=0.01, dir=0.95),
                VersionProfile("v2", metric_label="fraud-v2", error_rate=0.2),
            ),
            rps=5.0,
        ),
    )
)


def states(intervals: int = 3) -> list[FleetState]:
    rng = random.Random(9)
    state = FLEET.start(T0)
    out = [state]
    for _ in range(intervals):
        state, _ = FLEET.advance(state, splits_of({"models/fraud": {"v1": 50, "v2": 50}}), rng)
        out.append(state)
    return out


def of(samples: list[Sample], metric: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in samples
        if s.name == metric and all(dict(s.labels).get(k) == v for k, v in labels.items())
    ]


@pytest.mark.parametrize(
    ("exposition", "names", "version_label", "labels"),
    [
        (
            Exposition.MODELMESH,
            {
                "modelmesh_api_request_milliseconds_bucket",
                "modelmesh_api_request_milliseconds_count",
                "modelmesh_api_request_milliseconds_sum",
            },
            "vModelId",
            {"method", "code", "modelId", "vModelId", "namespace", "job"},
        ),
        (
            Exposition.ISTIO,
            {
                "istio_requests_total",
                "istio_request_duration_milliseconds_bucket",
                "istio_request_duration_milliseconds_count",
                "istio_request_duration_milliseconds_sum",
            },
            "destination_workload",
            {
                "reporter",
                "destination_workload",
                "destination_workload_namespace",
                "destination_version",
                "destination_service",
                "response_code",
                "response_flags",
            },
        ),
        (
            Exposition.OVMS,
            {
                "ovms_requests_success",
                "ovms_requests_fail",
                "ovms_request_time_us_bucket",
                "ovms_request_time_us_count",
                "ovms_request_time_us_sum",
            },
            "name",
            {"name", "version", "interface", "app"},
        ),
        (
            Exposition.KSERVE,
            {
                "revision_request_count",
                "revision_request_latencies_bucket",
                "revision_request_latencies_count",
                "revision_request_latencies_sum",
            },
            "revision_name",
            {
                "namespace_name",
                "service_name",
                "configuration_name",
                "revision_name",
                "pod_name",
                "container_name",
                "response_code",
                "response_code_class",
            },
        ),
        (
            Exposition.TRUSTYAI,
            {
                "trustyai_spd",
                "trustyai_dir",
                "trustyai_meanshift",
                "trustyai_kstest",
                "trustyai_approxkstest",
                "trustyai_fouriermmd",
            },
            "model",
            {"metricName", "model", "request"},
        ),
        (
            Exposition.TRUSTYAI_PY,
            {
                "trustyai_spd",
                "trustyai_dir",
                "trustyai_comparemeans",
                "trustyai_kstest",
                "trustyai_ksteststreaming",
                "trustyai_jensenshannon",
                "trustyai_mmd",
            },
            "modelId",
            {"metricName", "modelId", "request"},
        ),
        (
            Exposition.VLLM,
            {
                "vllm:request_success_total",
                "vllm:num_requests_waiting",
                *(
                    f"vllm:{name}_seconds_{part}"
                    for name in (
                        "time_to_first_token",
                        "inter_token_latency",
                        "e2e_request_latency",
                    )
                    for part in ("bucket", "count", "sum")
                ),
            },
            "model_name",
            {"model_name", "engine"},
        ),
        (
            Exposition.BUSINESS,
            {
                "business_conversions_total",
                "recommendations_served_total",
                "recommendations_accepted_total",
            },
            "version",
            {"namespace", "model", "version"},
        ),
    ],
)
def test_each_runtime_has_its_real_names_and_labels(
    exposition: Exposition, names: set[str], version_label: str, labels: set[str]
) -> None:
    samples = expose(FLEET, states()[-1], [exposition])
    assert {s.name for s in samples} == names
    for sample in samples:
        assert labels <= set(dict(sample.labels)), sample
    assert {dict(s.labels)[version_label] for s in samples} == {"fraud-v1", "fraud-v2"}
    identities = Counter((s.name, s.labels) for s in samples)
    assert max(identities.values()) == 1, "two samples of one series"


@pytest.mark.parametrize(
    ("exposition", "name", "le_values"),
    [
        (
            Exposition.MODELMESH,
            "modelmesh_api_request_milliseconds_bucket",
            ["0.5", "1.0", "100.0", "300000.0", "+Inf"],
        ),
        (
            Exposition.ISTIO,
            "istio_request_duration_milliseconds_bucket",
            ["0.5", "1", "250", "3600000", "+Inf"],
        ),
        (
            Exposition.OVMS,
            "ovms_request_time_us_bucket",
            ["10", "18", "67466", "1474755971", "+Inf"],
        ),
        (Exposition.KSERVE, "revision_request_latencies_bucket", ["5", "150", "100000", "+Inf"]),
    ],
)
def test_bucket_bounds_are_written_as_each_exporter_writes_them(
    exposition: Exposition, name: str, le_values: list[str]
) -> None:
    samples = expose(FLEET, states()[-1], [exposition])
    written = {dict(s.labels)["le"] for s in samples if s.name == name}
    assert set(le_values) <= written


@pytest.mark.parametrize(
    ("prefix", "series_key"),
    [
        ("modelmesh_api_request_milliseconds", "code"),
        ("istio_request_duration_milliseconds", "response_code"),
        ("revision_request_latencies", "response_code"),
        ("ovms_request_time_us", "name"),
    ],
)
def test_histograms_are_cumulative_and_end_at_their_count(prefix: str, series_key: str) -> None:
    samples = expose(FLEET, states()[-1], list(Exposition))
    for count in of(samples, f"{prefix}_count"):
        same = dict(count.labels)
        buckets = [
            s
            for s in samples
            if s.name == f"{prefix}_bucket" and {k: v for k, v in s.labels if k != "le"} == same
        ]
        values = sorted(buckets, key=lambda s: float(dict(s.labels)["le"].replace("+Inf", "inf")))
        running = [b.value for b in values]
        assert running == sorted(running)
        assert running[-1] == count.value
        assert same[series_key]


def test_counters_only_grow_and_errors_carry_failure_codes() -> None:
    timeline = [expose(FLEET, state, list(Exposition)) for state in states(5)]
    counters = [
        {(s.name, s.labels): s.value for s in samples if not s.name.startswith("trustyai_")}
        for samples in timeline
    ]
    assert all(value == 0 for value in counters[0].values())
    for before, after in itertools.pairwise(counters):
        assert before.keys() == after.keys()
        assert all(after[key] >= before[key] for key in before)
    last = timeline[-1]
    failed = of(
        last, "modelmesh_api_request_milliseconds_count", vModelId="fraud-v2", code="INTERNAL"
    )
    failed_http = of(
        last, "istio_requests_total", destination_workload="fraud-v2", response_code="500"
    )
    failed_ovms = of(last, "ovms_requests_fail", name="fraud-v2")
    assert failed[0].value == failed_http[0].value == failed_ovms[0].value > 0
    assert of(last, "trustyai_dir", model="fraud-v1")[0].value == 0.95


def test_the_sum_is_in_the_runtimes_unit() -> None:
    last = expose(FLEET, states()[-1], [Exposition.MODELMESH, Exposition.OVMS])
    ms = sum(
        s.value for s in of(last, "modelmesh_api_request_milliseconds_sum", vModelId="fraud-v1")
    )
    us = of(last, "ovms_request_time_us_sum", name="fraud-v1")[0].value
    assert us == pytest.approx(ms * 1000)


@pytest.mark.parametrize(
    ("value", "java", "plain"),
    [
        (0.5, "0.5", "0.5"),
        (1.0, "1.0", "1"),
        (300000.0, "300000.0", "300000"),
        (float("inf"), "+Inf", "+Inf"),
    ],
)
def test_float_formats(value: float, java: str, plain: str) -> None:
    assert java_float(value) == java
    assert plain_float(value) == plain


def test_an_unknown_exposition_is_an_error() -> None:
    with pytest.raises(ValueError, match="prometheus"):
        expose(FLEET, states(0)[0], ["prometheus"])


def test_vllm_histograms_are_cumulative_on_vllms_own_bounds() -> None:
    samples = expose(FLEET, states()[-1], [Exposition.VLLM])
    for name, bounds in (
        ("vllm:time_to_first_token_seconds", VLLM_TTFT_BOUNDS_S),
        ("vllm:inter_token_latency_seconds", VLLM_ITL_BOUNDS_S),
        ("vllm:e2e_request_latency_seconds", VLLM_E2E_BOUNDS_S),
    ):
        for model in ("fraud-v1", "fraud-v2"):
            buckets = [
                s
                for s in samples
                if s.name == f"{name}_bucket" and dict(s.labels)["model_name"] == model
            ]
            les = [dict(s.labels)["le"] for s in buckets]
            assert les == [plain_float(b) for b in bounds] + ["+Inf"]
            values = [s.value for s in buckets]
            assert values == sorted(values) and values[-1] > 0
    finished = {
        dict(s.labels)["finished_reason"] for s in samples if s.name == "vllm:request_success_total"
    }
    assert finished == {"stop", "length", "abort", "error", "repetition"}


def test_trustyai_drift_gauges_point_the_right_way() -> None:
    """Java p-values fall with drift (fouriermmd rises); Python statistics rise with drift."""
    drifting = Fleet(
        (
            ModelProfile(
                "risk/scorer",
                "risk",
                "scorer",
                (
                    VersionProfile("v1", "scorer-v1"),
                    VersionProfile("v2", "scorer-v2", drift_statistic=0.4, drift_p_value=0.01),
                ),
            ),
        )
    )
    state = drifting.start(T0)
    java = expose(drifting, state, [Exposition.TRUSTYAI])
    python = expose(drifting, state, [Exposition.TRUSTYAI_PY])

    def worst(
        samples: list[Sample], name: str, label: str, version: str, pick: Callable[..., float]
    ) -> float:
        return pick(s.value for s in samples if s.name == name and dict(s.labels)[label] == version)

    assert worst(java, "trustyai_meanshift", "model", "scorer-v2", min) == pytest.approx(0.01)
    assert worst(java, "trustyai_meanshift", "model", "scorer-v1", min) == pytest.approx(0.6)
    assert worst(java, "trustyai_fouriermmd", "model", "scorer-v2", max) == pytest.approx(0.99)
    assert worst(python, "trustyai_kstest", "modelId", "scorer-v2", max) == pytest.approx(0.4)
    assert worst(python, "trustyai_kstest", "modelId", "scorer-v1", max) == pytest.approx(0.02)
    assert {
        dict(s.labels).get("protectedAttribute") for s in python if s.name == "trustyai_spd"
    } == {"gender"}
