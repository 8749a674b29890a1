"""The simulated fleet through remote write into the real Prometheus: `increase()` over an interval
gives back exactly what the fleet drew in it, under each runtime's real metric names and labels.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from policyengine.metrics.catalog import builtin_metric_sets
from policyengine.metrics.promql import build_selector, group_by, render
from policyengine.metrics.remote_write import RemoteWriteClient
from policyengine.sim.exposition import Exposition
from policyengine.sim.fleet import (
    Fleet,
    FleetState,
    IntervalResult,
    ModelProfile,
    VersionKey,
    VersionProfile,
)
from policyengine.sim.writer import FleetWriter
from policyengine.values import TrafficSplit
from tests.support.prometheus import T0, PrometheusServer

pytestmark = pytest.mark.prometheus

MM = "models/fraud"
OV = "models/ranker"
INTERVALS = 30
FLEET = Fleet(
    (
        ModelProfile(
            MM,
            "models",
            "fraud",
            (
                VersionProfile("v1", metric_label="fraud-v1", error_rate=0.01, spd=0.02),
                VersionProfile("v2", metric_label="fraud-v2", error_rate=0.05, spd=-0.15),
            ),
            rps=20.0,
        ),
        ModelProfile(
            OV,
            "models",
            "ranker",
            (
                VersionProfile(
                    "stable", metric_label="ranker-1", latency_p50_ms=5, latency_p99_ms=40
                ),
                VersionProfile(
                    "next", metric_label="ranker-2", latency_p50_ms=8, latency_p99_ms=90
                ),
            ),
            rps=10.0,
        ),
    )
)


def split_at(index: int) -> dict[str, TrafficSplit]:
    """Weights change twice, and the second model mirrors for a while."""
    if index < 10:
        return {MM: TrafficSplit.of({"v1": 90, "v2": 10}), OV: TrafficSplit.of({"stable": 100})}
    if index < 20:
        return {
            MM: TrafficSplit.of({"v1": 50, "v2": 50}),
            OV: TrafficSplit.of({"stable": 100, "next": 0}, mirror_to="next", mirror_percent=50),
        }
    return {MM: TrafficSplit.of({"v1": 0, "v2": 100}), OV: TrafficSplit.of({"next": 100})}


@pytest.fixture(scope="module")
def simulated(
    prometheus_module: PrometheusServer,
) -> Iterator[tuple[PrometheusServer, list[FleetState], list[IntervalResult]]]:
    client = RemoteWriteClient(prometheus_module.url)
    writer = FleetWriter(client, FLEET, tuple(Exposition))
    rng = random.Random(2024)
    state = FLEET.start(T0)
    states, results = [state], []
    began = time.perf_counter()
    writer.write(state)
    for index in range(INTERVALS):
        state, result = FLEET.advance(state, split_at(index), rng)
        writer.write(state)
        states.append(state)
        results.append(result)
    elapsed = time.perf_counter() - began
    # ~300 series per interval: half an hour of simulated time must take well under real seconds.
    assert elapsed < 15, f"writing {INTERVALS} intervals took {elapsed:.1f} s"
    yield prometheus_module, states, results
    client.close()


def query(server: PrometheusServer, promql: str, at: datetime) -> dict[tuple[str, ...], float]:
    response = requests.get(
        f"{server.url}/api/v1/query",
        params={"query": promql, "time": str(at.timestamp())},
        timeout=10,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    assert body["status"] == "success", body
    return {
        tuple(f"{k}={v}" for k, v in sorted(item["metric"].items())): float(item["value"][1])
        for item in body["data"]["result"]
    }


def one(server: PrometheusServer, promql: str, at: datetime) -> float:
    result = query(server, promql, at)
    assert len(result) == 1, f"{promql} at {at}: {result}"
    return next(iter(result.values()))


@pytest.mark.parametrize("index", [0, 9, 10, 15, 20, 29])
def test_modelmesh_increase_over_an_interval_is_exactly_what_the_fleet_drew(
    simulated: tuple[PrometheusServer, list[FleetState], list[IntervalResult]], index: int
) -> None:
    server, _, results = simulated
    interval = results[index]
    for version, label in (("v1", "fraud-v1"), ("v2", "fraud-v2")):
        drawn = interval.traffic[VersionKey(MM, version)]
        selector = f'vModelId="{label}",method="ModelInfer"'
        by_code = query(
            server,
            f"sum by (code) (increase(modelmesh_api_request_milliseconds_count{{{selector}}}[1m]))",
            interval.end,
        )
        assert by_code == {("code=OK",): drawn.ok.count, ("code=INTERNAL",): drawn.failed.count}
        fast = one(
            server,
            f'sum(increase(modelmesh_api_request_milliseconds_bucket{{{selector},le="100.0"}}[1m]))',
            interval.end,
        )
        assert fast == drawn.requests - drawn.latency.slower_than(100.0)
        latency_sum = one(
            server,
            f"sum(increase(modelmesh_api_request_milliseconds_sum{{{selector}}}[1m]))",
            interval.end,
        )
        assert latency_sum == pytest.approx(drawn.latency.sum_ms, rel=1e-9, abs=1e-6)


def test_a_longer_window_sums_its_intervals(
    simulated: tuple[PrometheusServer, list[FleetState], list[IntervalResult]],
) -> None:
    server, _, results = simulated
    window = results[8:13]  # spans the first weight change
    end = window[-1].end
    key = VersionKey(MM, "v2")
    drawn = sum(r.traffic[key].requests for r in window)
    errors = sum(r.traffic[key].errors for r in window)
    assert (
        one(server, 'sum(increase(istio_requests_total{destination_workload="fraud-v2"}[5m]))', end)
        == drawn
    )
    assert (
        one(
            server,
            'sum(increase(revision_request_count{revision_name="fraud-v2",response_code_class="5xx"}[5m]))',
            end,
        )
        == errors
    )
    assert (
        one(
            server,
            'sum(increase(istio_requests_total{reporter="destination",'
            'destination_version="fraud-v2",response_code="500"}[5m]))',
            end,
        )
        == errors
    )


def test_ovms_counts_include_the_mirrored_copies_and_use_microseconds(
    simulated: tuple[PrometheusServer, list[FleetState], list[IntervalResult]],
) -> None:
    server, _, results = simulated
    mirrored = results[15]
    shadow = mirrored.traffic[VersionKey(OV, "next")]
    assert shadow.requests == shadow.mirrored > 0
    labels = 'name="ranker-2",version="1"'
    success = one(server, f"increase(ovms_requests_success{{{labels}}}[1m])", mirrored.end)
    fail = one(server, f"increase(ovms_requests_fail{{{labels}}}[1m])", mirrored.end)
    assert (success, fail) == (shadow.ok.count, shadow.failed.count)
    under_67ms = one(
        server, f'increase(ovms_request_time_us_bucket{{{labels},le="67466"}}[1m])', mirrored.end
    )
    assert under_67ms == shadow.requests - shadow.latency.slower_than(67.466)
    before = results[5].traffic[VersionKey(OV, "next")]
    assert before.requests == 0
    assert one(server, f"increase(ovms_requests_success{{{labels}}}[1m])", results[5].end) == 0


def test_counters_never_go_down_and_gauges_carry_fairness(
    simulated: tuple[PrometheusServer, list[FleetState], list[IntervalResult]],
) -> None:
    server, states, _ = simulated
    end = states[-1].at
    resets = query(server, "resets(modelmesh_api_request_milliseconds_count[1h])", end)
    assert resets and set(resets.values()) == {0.0}
    total = one(
        server,
        'sum(modelmesh_api_request_milliseconds_count{vModelId="fraud-v2"})',
        end,
    )
    assert total == states[-1].totals[VersionKey(MM, "v2")].requests
    # the Java service's series carry `model`, the Python service's `modelId`
    spd = query(server, 'trustyai_spd{metricName="SPD",model=~".+"}', end)
    assert sorted(spd.values()) == pytest.approx([-0.15, 0.0, 0.0, 0.02])
    spd_py = query(server, 'trustyai_spd{metricName="SPD",modelId=~".+"}', end)
    assert sorted(spd_py.values()) == pytest.approx([-0.15, 0.0, 0.0, 0.02])
    conversions = one(server, 'business_conversions_total{model="fraud",version="fraud-v1"}', end)
    assert conversions == states[-1].totals[VersionKey(MM, "v1")].conversions
    assert end - states[0].at == timedelta(minutes=INTERVALS)


# Each built-in set as the engine renders it, over the fleet exposed as that runtime. The ranker's
# versions are checked on the ovms set, the fraud model's on the request-metric sets.
BUILT_IN_SETS = [
    ("modelmesh", MM, 100.0, {"v1": "fraud-v1", "v2": "fraud-v2"}),
    ("istio", MM, 100.0, {"v1": "fraud-v1", "v2": "fraud-v2"}),
    ("kserve", MM, 100.0, {"v1": "fraud-v1", "v2": "fraud-v2"}),
    ("ovms", OV, 67466.0, {"stable": "ranker-1", "next": "ranker-2"}),
]


@pytest.mark.parametrize(("set_name", "policy", "threshold", "labels"), BUILT_IN_SETS)
def test_the_built_in_metric_sets_read_back_what_the_fleet_drew(
    simulated: tuple[PrometheusServer, list[FleetState], list[IntervalResult]],
    set_name: str,
    policy: str,
    threshold: float,
    labels: dict[str, str],
) -> None:
    server, _, results = simulated
    metric_set = builtin_metric_sets()[set_name]
    spec = metric_set.spec
    selector = build_selector(spec.version_label, labels.values(), spec.namespace_label, ["models"])
    grouping = group_by(spec.version_label, spec.namespace_label)
    error_rate = spec.metrics["error-rate"]
    latency = spec.metrics["latency"]
    assert error_rate.events and error_rate.total and latency.buckets

    def ask(template: str, at: datetime) -> dict[str, float]:
        promql = render(template, selector=selector, group_by_labels=grouping, window="5m")
        result = query(server, promql, at)
        by_label: dict[str, float] = {}
        for key, value in result.items():
            fields = dict(part.split("=", 1) for part in key)
            if "le" in fields and float(fields["le"]) != threshold:
                continue
            by_label[fields[spec.version_label]] = value
        return by_label

    window = results[14:19]  # five intervals, across the mirror and the 50/50 split
    end = window[-1].end
    expected_errors = {
        label: float(sum(r.traffic[VersionKey(policy, v)].errors for r in window))
        for v, label in labels.items()
    }
    expected_total = {
        label: float(sum(r.traffic[VersionKey(policy, v)].requests for r in window))
        for v, label in labels.items()
    }
    expected_fast = {
        label: float(
            sum(
                r.traffic[VersionKey(policy, v)].requests
                - r.traffic[VersionKey(policy, v)].latency.slower_than(
                    threshold / 1000 if set_name == "ovms" else threshold
                )
                for r in window
            )
        )
        for v, label in labels.items()
    }
    assert ask(error_rate.events, end) == expected_errors
    assert ask(latency.buckets, end) == expected_fast
    assert ask(error_rate.total, end) == expected_total
