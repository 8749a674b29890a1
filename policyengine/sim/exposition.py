"""The fleet's state as Prometheus samples, with the real metric names and labels of each runtime.

Names and labels follow docs/serving-metrics.md: KServe ModelMesh, Istio, OpenVINO Model
Server, KServe serverless (Knative <= 1.18 `revision_*`) and TrustyAI. Labels a scrape would add
(`namespace`, `job`) are added here, since remote write has no scrape to add them.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from policyengine.sim.fleet import Fleet, FleetState, LatencyCounts, VersionKey, VersionTraffic
from policyengine.sim.latency import (
    ISTIO_BOUNDS_MS,
    KNATIVE_BOUNDS_MS,
    LATENCY_GRID_MS,
    MODELMESH_BOUNDS_MS,
    OVMS_BOUNDS_US,
    VLLM_E2E_BOUNDS_S,
    VLLM_ITL_BOUNDS_S,
    VLLM_TTFT_BOUNDS_S,
    us_to_ms,
)

Labels = tuple[tuple[str, str], ...]


class Exposition(StrEnum):
    """The metric families the simulator can expose; values match built-in metric set names."""

    MODELMESH = "modelmesh"
    ISTIO = "istio"
    OVMS = "ovms"
    KSERVE = "kserve"  # serverless: Knative queue-proxy revision_* metrics
    TRUSTYAI = "trustyai"  # the Java service: p-values, label model
    TRUSTYAI_PY = "trustyai-py"  # the Python service: test statistics, label modelId
    VLLM = "vllm"
    BUSINESS = "business"  # the reward: an application counter of conversions


@dataclass(frozen=True)
class Sample:
    """One series' current value; the writer stamps it with the interval's end time."""

    name: str
    labels: Labels
    value: float


@dataclass(frozen=True)
class _Served:
    """What a version looks like to the exposition functions."""

    namespace: str
    model: str
    label: str
    policy: str
    traffic: VersionTraffic
    spd: float
    dir: float
    drift_statistic: float
    drift_p_value: float


# A request's outcome as each runtime labels it: (success, failure).
_MODELMESH_CODES = ("OK", "INTERNAL")
_HTTP_CODES = ("200", "500")


def java_float(value: float) -> str:
    """`le` as the Prometheus Java simpleclient 0.9 (ModelMesh) writes it: 1.0, 0.5, +Inf."""
    return "+Inf" if math.isinf(value) else repr(float(value))


def plain_float(value: float) -> str:
    """`le` as Go, C++ and Envoy exporters write our bounds: 1, 0.5, 300000, +Inf."""
    if math.isinf(value):
        return "+Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def expose(
    fleet: Fleet, state: FleetState, expositions: Iterable[Exposition | str]
) -> list[Sample]:
    """Every series of every simulated version, for the chosen metric families."""
    chosen = [Exposition(e) for e in expositions]
    samples: list[Sample] = []
    for served in _served_versions(fleet, state):
        for exposition in chosen:
            samples.extend(_EXPOSERS[exposition](served))
    return samples


def _served_versions(fleet: Fleet, state: FleetState) -> Iterator[_Served]:
    for model in fleet.models:
        for version in model.versions:
            key = VersionKey(model.policy, version.name)
            fairness = state.fairness[key]
            yield _Served(
                model.namespace,
                model.model,
                version.label,
                model.policy,
                state.totals[key],
                fairness.spd,
                fairness.dir,
                version.drift_statistic,
                version.drift_p_value,
            )


def _histogram(
    name: str,
    labels: Labels,
    counts: LatencyCounts,
    bounds_ms: Iterable[float],
    le_text: Callable[[float], str],
    unit_per_ms: float = 1.0,
    bounds_in_unit: Iterable[float] | None = None,
) -> Iterator[Sample]:
    cumulative = counts.cumulative()
    unit_bounds = list(bounds_in_unit) if bounds_in_unit is not None else None
    for index, bound_ms in enumerate(bounds_ms):
        shown = unit_bounds[index] if unit_bounds is not None else bound_ms
        yield Sample(f"{name}_bucket", (*labels, ("le", le_text(shown))), cumulative[bound_ms])
    yield Sample(f"{name}_bucket", (*labels, ("le", "+Inf")), counts.count)
    yield Sample(f"{name}_count", labels, counts.count)
    yield Sample(f"{name}_sum", labels, counts.sum_ms * unit_per_ms)


def _modelmesh(served: _Served) -> Iterator[Sample]:
    # ModelMesh Serving names the concrete model <predictor>__<source>-<hash of the spec>.
    digest = hashlib.sha256(f"{served.policy}/{served.label}".encode()).hexdigest()[:10]
    base: Labels = (
        ("job", "modelmesh-serving"),
        ("namespace", served.namespace),
        ("method", "ModelInfer"),
        ("modelId", f"{served.label}__isvc-{digest}"),
        ("vModelId", served.label),
    )
    for code, counts in zip(
        _MODELMESH_CODES, (served.traffic.ok, served.traffic.failed), strict=True
    ):
        yield from _histogram(
            "modelmesh_api_request_milliseconds",
            (*base, ("code", code)),
            counts,
            (float(b) for b in MODELMESH_BOUNDS_MS),
            java_float,
        )


def _istio(served: _Served) -> Iterator[Sample]:
    host = f"{served.model}.{served.namespace}.svc.cluster.local"
    base: Labels = (
        ("namespace", served.namespace),
        ("reporter", "destination"),
        ("source_workload", "istio-ingressgateway"),
        ("source_workload_namespace", "istio-system"),
        # The built-in istio set tells versions apart by destination_workload (one Deployment
        # per version); destination_version and the canonical revision carry the same name so a
        # set keyed on the pod's version label works too.
        ("destination_workload", served.label),
        ("destination_workload_namespace", served.namespace),
        ("destination_app", served.model),
        ("destination_version", served.label),
        ("destination_service", host),
        ("destination_service_name", served.model),
        ("destination_service_namespace", served.namespace),
        ("destination_canonical_service", served.model),
        ("destination_canonical_revision", served.label),
        ("request_protocol", "http"),
        ("response_flags", "-"),
        ("connection_security_policy", "mutual_tls"),
    )
    for code, counts in zip(_HTTP_CODES, (served.traffic.ok, served.traffic.failed), strict=True):
        labels = (*base, ("response_code", code))
        yield Sample("istio_requests_total", labels, counts.count)
        yield from _histogram(
            "istio_request_duration_milliseconds",
            labels,
            counts,
            (float(b) for b in ISTIO_BOUNDS_MS),
            plain_float,
        )


def _ovms(served: _Served) -> Iterator[Sample]:
    # The built-in ovms set tells versions apart by `name`: each version is served under its own
    # model name (its metric label), as model version 1.
    request: Labels = (
        ("namespace", served.namespace),
        ("api", "KServe"),
        ("interface", "gRPC"),
        ("method", "ModelInfer"),
        ("name", served.label),
        ("version", "1"),
        # KServe's pod label app=isvc.<Deployment>, as a PodMonitor's podTargetLabels copies it
        ("app", served.label),
    )
    yield Sample("ovms_requests_success", request, served.traffic.ok.count)
    yield Sample("ovms_requests_fail", request, served.traffic.failed.count)
    timing: Labels = (
        ("namespace", served.namespace),
        ("interface", "gRPC"),
        ("name", served.label),
        ("version", "1"),
        ("app", served.label),
    )
    yield from _histogram(
        "ovms_request_time_us",
        timing,
        served.traffic.latency,
        (us_to_ms(b) for b in OVMS_BOUNDS_US),
        plain_float,
        unit_per_ms=1000.0,
        bounds_in_unit=(float(b) for b in OVMS_BOUNDS_US),
    )


def _kserve(served: _Served) -> Iterator[Sample]:
    service = f"{served.model}-predictor"
    base: Labels = (
        ("namespace", served.namespace),
        ("namespace_name", served.namespace),
        ("service_name", service),
        ("configuration_name", service),
        ("revision_name", served.label),
        ("pod_name", f"{served.label}-deployment-0"),
        ("container_name", "queue-proxy"),
    )
    for code, counts in zip(_HTTP_CODES, (served.traffic.ok, served.traffic.failed), strict=True):
        labels = (*base, ("response_code", code), ("response_code_class", f"{code[0]}xx"))
        yield Sample("revision_request_count", labels, counts.count)
        yield from _histogram(
            "revision_request_latencies",
            labels,
            counts,
            (float(b) for b in KNATIVE_BOUNDS_MS),
            plain_float,
        )


# Drift is scheduled on two feature columns; the second drifts half as much as the first.
_DRIFT_COLUMNS = (("amount", 1.0), ("merchant_category", 0.5))


def _trustyai(served: _Served) -> Iterator[Sample]:
    yield from _trustyai_fairness(served)
    # The Java service's drift gauges are p-values per column; FOURIERMMD is a probability of drift.
    for metric in ("MEANSHIFT", "KSTEST", "APPROXKSTEST", "FOURIERMMD"):
        request = uuid.uuid5(uuid.NAMESPACE_URL, f"sim:{served.policy}/{served.label}/{metric}")
        for column, share in _DRIFT_COLUMNS:
            # the weaker-drifting column has the larger p-value
            p_value = 1.0 - (1.0 - served.drift_p_value) * share
            value = 1.0 - p_value if metric == "FOURIERMMD" else p_value
            labels: Labels = (
                ("namespace", served.namespace),
                ("metricName", metric),
                ("model", served.label),
                ("request", str(request)),
                ("batch_size", "5000"),
                ("subcategory", column),
            )
            yield Sample(f"trustyai_{metric.lower()}", labels, value)


def _trustyai_py(served: _Served) -> Iterator[Sample]:
    for metric, value in (("SPD", served.spd), ("DIR", served.dir)):
        request = uuid.uuid5(uuid.NAMESPACE_URL, f"sim-py:{served.policy}/{served.label}/{metric}")
        labels: Labels = (
            ("namespace", served.namespace),
            ("metricName", metric),
            ("modelId", served.label),
            ("request", str(request)),
            ("protectedAttribute", "gender"),
            ("outcomeName", "approved"),
        )
        yield Sample(f"trustyai_{metric.lower()}", labels, value)
    # The Python service publishes test statistics per column (high is drift); MMD is one value.
    for metric in ("CompareMeans", "KSTest", "KSTESTSTREAMING", "JensenShannon", "MMD"):
        request = uuid.uuid5(uuid.NAMESPACE_URL, f"sim-py:{served.policy}/{served.label}/{metric}")
        base: Labels = (
            ("namespace", served.namespace),
            ("metricName", metric),
            ("modelId", served.label),
            ("request", str(request)),
            ("referenceTag", "training"),
        )
        if metric == "MMD":
            yield Sample("trustyai_mmd", base, served.drift_statistic)
            continue
        for column, share in _DRIFT_COLUMNS:
            labels = (*base, ("subcategory", column))
            yield Sample(f"trustyai_{metric.lower()}", labels, served.drift_statistic * share)


# vLLM: the fleet's latency draw is the time to first token; inter-token latency and end-to-end
# latency are the same draw scaled (÷ 8 and × 20), not modelled on their own.
_ITL_PER_TTFT = 1 / 8
_E2E_PER_TTFT = 20.0
_FINISHED = ("stop", "length", "abort", "error", "repetition")


def _vllm(served: _Served) -> Iterator[Sample]:
    base: Labels = (
        ("namespace", served.namespace),
        ("model_name", served.label),
        ("engine", "0"),
    )
    ok, failed = served.traffic.ok, served.traffic.failed
    length = ok.count // 10  # a tenth of the good answers stop at max_tokens
    aborted = failed.count // 4  # a quarter of the failures are client aborts
    counts = (ok.count - length, length, aborted, failed.count - aborted, 0)
    for reason, count in zip(_FINISHED, counts, strict=True):
        yield Sample("vllm:request_success_total", (*base, ("finished_reason", reason)), count)
    latency = served.traffic.latency
    for name, bounds, scale in (
        ("vllm:time_to_first_token_seconds", VLLM_TTFT_BOUNDS_S, 1.0),
        ("vllm:inter_token_latency_seconds", VLLM_ITL_BOUNDS_S, _ITL_PER_TTFT),
        ("vllm:e2e_request_latency_seconds", VLLM_E2E_BOUNDS_S, _E2E_PER_TTFT),
    ):
        yield from _scaled_histogram(name, base, latency, bounds, scale)
    yield Sample("vllm:num_requests_waiting", base, 0.0)


def _scaled_histogram(
    name: str, labels: Labels, counts: LatencyCounts, bounds_s: Iterable[float], scale: float
) -> Iterator[Sample]:
    """A seconds histogram of the draw × scale on vLLM's own bounds.

    A bound b holds the requests at or below the largest grid bound ≤ b / scale (the grid is
    finer than vLLM's buckets), so the counts stay cumulative and never exceed the total.
    """
    cumulative = counts.cumulative()
    for bound in bounds_s:
        limit_ms = bound * 1000.0 / scale
        below = [g for g in LATENCY_GRID_MS if g <= limit_ms]
        value = cumulative[below[-1]] if below else 0
        yield Sample(f"{name}_bucket", (*labels, ("le", plain_float(bound))), value)
    yield Sample(f"{name}_bucket", (*labels, ("le", "+Inf")), counts.count)
    yield Sample(f"{name}_count", labels, counts.count)
    yield Sample(f"{name}_sum", labels, counts.sum_ms * scale / 1000.0)


def _trustyai_fairness(served: _Served) -> Iterator[Sample]:
    for metric, value in (("SPD", served.spd), ("DIR", served.dir)):
        # TrustyAI names each scheduled request by a UUID; a stable one keeps the series stable.
        request = uuid.uuid5(uuid.NAMESPACE_URL, f"sim:{served.policy}/{served.label}/{metric}")
        labels: Labels = (
            ("namespace", served.namespace),
            ("metricName", metric),
            ("model", served.label),
            ("request", str(request)),
            ("batch_size", "5000"),
            ("outcome", "approved"),
            ("favorable_value", "1"),
            ("protected", "gender"),
            ("privileged", "1"),
            ("unprivileged", "0"),
        )
        yield Sample(f"trustyai_{metric.lower()}", labels, value)


def _business(served: _Served) -> Iterator[Sample]:
    labels: Labels = (
        ("namespace", served.namespace),
        ("model", served.model),
        ("version", served.label),
    )
    yield Sample("business_conversions_total", labels, served.traffic.conversions)
    # The same reward as a recommender application counts it: recommendations served (live
    # successful responses; mirror copies are dropped) and those the user accepted.
    traffic = served.traffic
    served_live = max(0, traffic.ok.count - traffic.mirrored)
    yield Sample("recommendations_served_total", labels, served_live)
    yield Sample("recommendations_accepted_total", labels, traffic.conversions)


_EXPOSERS: dict[Exposition, Callable[[_Served], Iterator[Sample]]] = {
    Exposition.MODELMESH: _modelmesh,
    Exposition.ISTIO: _istio,
    Exposition.OVMS: _ovms,
    Exposition.KSERVE: _kserve,
    Exposition.TRUSTYAI: _trustyai,
    Exposition.TRUSTYAI_PY: _trustyai_py,
    Exposition.VLLM: _vllm,
    Exposition.BUSINESS: _business,
}
