"""The collector's pure halves: planning one query per template, and fanning results back."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from policyengine.analysis.observations import DataStatus, GaugePoint, WindowCounts
from policyengine.metrics.catalog import builtin_metric_sets
from policyengine.metrics.collector import (
    MAX_POINTS_PER_QUERY,
    MetricNeed,
    QueryKey,
    joined,
    needs_of,
    observation_key,
    observations_from,
    plan_queries,
    query_key,
)
from policyengine.metrics.provider import Point, QueryResult, Series
from policyengine.policy.models import MetricTemplate, ReleasePolicy

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
MODELMESH = builtin_metric_sets()["modelmesh"].spec.metrics
ERROR_RATE = MODELMESH["error-rate"]
LATENCY = MODELMESH["latency"]
SPD = builtin_metric_sets()["trustyai"].spec.metrics["spd"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def need(
    policy: str = "team/a",
    metric: str = "error-rate",
    template: MetricTemplate = ERROR_RATE,
    versions: Mapping[str, str] | None = None,
    since: datetime = T0,
    threshold: float | None = None,
    traffic: bool = False,
    namespace: str = "team",
    namespace_label: str | None = None,
) -> MetricNeed:
    return MetricNeed(
        policy_key=policy,
        metric_name=metric,
        template=template,
        version_label="vModelId",
        namespace_label=namespace_label,
        namespace=namespace,
        model=None,
        versions=versions if versions is not None else {"v1": "model-v1", "v2": "model-v2"},
        since=since,
        interval=MINUTE,
        threshold=threshold,
        traffic=traffic,
    )


def series(points: Mapping[float, float], **labels: str) -> Series:
    return Series(labels, tuple(Point(at(m), v) for m, v in sorted(points.items())))


def ok(*found: Series) -> QueryResult:
    return QueryResult(DataStatus.OK, tuple(found), query="q")


NO_DATA = QueryResult(DataStatus.NO_DATA, message="no series matched", query="q")


def results_for(
    needs: list[MetricNeed], by_role: Mapping[str, QueryResult]
) -> dict[QueryKey, QueryResult]:
    return {query_key(n, role): by_role[role] for n in needs for role in n.roles()}


def test_policies_sharing_a_set_share_one_query_per_template() -> None:
    needs = [
        need(policy=f"team/p{i}", versions={"v1": f"p{i}-v1", "v2": f"p{i}-v2"}) for i in range(3)
    ] + [
        need(policy=f"team/p{i}", metric="latency", template=LATENCY, threshold=500)
        for i in range(3)
    ]
    plan = plan_queries(needs, at(10))
    assert len(plan.queries) == 3  # events, total, buckets
    events = next(q for q in plan.queries if 'code!="OK"' in q.promql)
    assert 'vModelId=~"p0-v1|p0-v2|p1-v1|p1-v2|p2-v1|p2-v2"' in events.promql
    assert "[1m]" in events.promql and "sum by (vModelId)" in events.promql


def test_templates_using_namespace_are_split_per_namespace() -> None:
    template = MetricTemplate(
        type="proportion",
        events='sum by (${groupBy}) (increase(e{${selector}, ns="${namespace}"}[${window}]))',
        total="sum by (${groupBy}) (increase(t{${selector}}[${window}]))",
    )
    needs = [
        need(policy="a/p", template=template, namespace="a"),
        need(policy="b/p", template=template, namespace="b"),
    ]
    texts = sorted(q.promql for q in plan_queries(needs, at(10)).queries)
    assert len(texts) == 3
    assert [t for t in texts if 'ns="a"' in t] and [t for t in texts if 'ns="b"' in t]


def test_windows_sit_on_interval_multiples_and_start_after_since() -> None:
    # since = T0 + 30 s: the first whole window (T0+1m, T0+2m] ends at T0 + 2 m.
    plan = plan_queries([need(since=T0 + timedelta(seconds=30))], at(10) + timedelta(seconds=42))
    assert {(q.start, q.end, q.step) for q in plan.queries} == {(at(2), at(10), MINUTE)}


def test_no_complete_window_yet_sends_nothing_and_reports_no_data() -> None:
    needs = [need(since=at(9.5))]
    plan = plan_queries(needs, at(10.2))
    assert plan.queries == ()
    observations = observations_from(needs, plan.settled)
    metric = observations["team/a"].metrics["error-rate"]
    assert metric.status is DataStatus.NO_DATA
    assert "no complete 1m window" in metric.message


def test_proportion_windows_per_version_with_missing_errors_as_zero() -> None:
    needs = [need(since=at(0))]
    totals = ok(
        series({1: 100, 2: 110, 3: 120}, vModelId="model-v1"),
        series({1: 10, 2: 11, 3: 12}, vModelId="model-v2"),
        series({1: 999}, vModelId="someone-else"),
    )
    events = ok(series({2: 3}, vModelId="model-v1"))
    observed = observations_from(needs, results_for(needs, {"events": events, "total": totals}))
    metric = observed["team/a"].metrics["error-rate"]
    assert metric.status is DataStatus.OK
    assert metric.windows == {
        "v1": (
            WindowCounts(at(0), 0, 100),
            WindowCounts(at(1), 3, 110),
            WindowCounts(at(2), 0, 120),
        ),
        "v2": (WindowCounts(at(0), 0, 10), WindowCounts(at(1), 0, 11), WindowCounts(at(2), 0, 12)),
    }


def test_windows_before_since_are_dropped() -> None:
    needs = [need(since=at(2))]
    totals = ok(
        series({1: 1, 2: 2, 3: 3, 4: 4}, vModelId="model-v1"),
        series({1: 1, 2: 2, 3: 3, 4: 4}, vModelId="model-v2"),
    )
    observed = observations_from(needs, results_for(needs, {"events": NO_DATA, "total": totals}))
    windows = observed["team/a"].metrics["error-rate"].windows["v1"]
    assert [w.start for w in windows] == [at(2), at(3)]


def test_a_version_without_series_is_no_data_never_zero() -> None:
    needs = [need()]
    totals = ok(series({1: 100}, vModelId="model-v1"))
    observed = observations_from(needs, results_for(needs, {"events": NO_DATA, "total": totals}))
    metric = observed["team/a"].metrics["error-rate"]
    assert metric.status is DataStatus.NO_DATA
    assert "v2" in metric.message and "model-v2" in metric.message
    assert metric.windows["v2"] == ()


@pytest.mark.parametrize(
    ("events", "total", "expected"),
    [
        (NO_DATA, NO_DATA, DataStatus.NO_DATA),
        (QueryResult(DataStatus.QUERY_ERROR, message="bad"), NO_DATA, DataStatus.QUERY_ERROR),
        (
            QueryResult(DataStatus.QUERY_ERROR, message="bad"),
            QueryResult(DataStatus.UNREACHABLE, message="down"),
            DataStatus.UNREACHABLE,
        ),
    ],
)
def test_the_worst_status_of_a_metric_wins(
    events: QueryResult, total: QueryResult, expected: DataStatus
) -> None:
    needs = [need()]
    observed = observations_from(needs, results_for(needs, {"events": events, "total": total}))
    assert observed["team/a"].metrics["error-rate"].status is expected


def buckets(version: str, counts: Mapping[str, Mapping[float, float]]) -> list[Series]:
    return [series(points, vModelId=version, le=le) for le, points in counts.items()]


def test_histogram_becomes_slower_than_threshold_over_total() -> None:
    needs = [need(metric="latency", template=LATENCY, threshold=500)]
    result = ok(
        *buckets("model-v1", {"100": {1: 50}, "500": {1: 90}, "+Inf": {1: 100}}),
        *buckets("model-v2", {"100": {1: 5}, "500.0": {1: 10}, "+Inf": {1: 10}}),
    )
    observed = observations_from(needs, results_for(needs, {"buckets": result}))
    metric = observed["team/a"].metrics[observation_key("latency", 500)]
    assert metric.status is DataStatus.OK
    assert metric.kind == "proportion" and metric.threshold == 500
    assert metric.windows == {
        "v1": (WindowCounts(at(0), 10, 100),),
        "v2": (WindowCounts(at(0), 0, 10),),
    }


def test_threshold_off_the_bucket_bounds_is_a_query_error_naming_them() -> None:
    needs = [need(metric="latency", template=LATENCY, threshold=250)]
    result = ok(*buckets("model-v1", {"100": {1: 5}, "500": {1: 9}, "+Inf": {1: 10}}))
    observed = observations_from(needs, results_for(needs, {"buckets": result}))
    metric = observed["team/a"].metrics["latency@250"]
    assert metric.status is DataStatus.QUERY_ERROR
    assert "250" in metric.message and "100, 500" in metric.message


def test_gauges_per_version() -> None:
    needs = [need(metric="spd", template=SPD, since=at(1))]
    result = ok(
        series({0: 0.5, 1: 0.01, 2: 0.02}, vModelId="model-v1"),
        series({1: -0.2}, vModelId="model-v2"),
    )
    observed = observations_from(needs, results_for(needs, {"query": result}))
    metric = observed["team/a"].metrics["spd"]
    assert metric.status is DataStatus.OK and metric.kind == "gauge"
    assert metric.gauges == {
        "v1": (GaugePoint(at(1), 0.01), GaugePoint(at(2), 0.02)),
        "v2": (GaugePoint(at(1), -0.2),),
    }


def test_ambiguous_gauges_are_a_query_error() -> None:
    needs = [need(metric="spd", template=SPD)]
    result = ok(
        series({1: 0.1}, vModelId="model-v1", request="a"),
        series({1: 0.3}, vModelId="model-v1", request="b"),
    )
    observed = observations_from(needs, results_for(needs, {"query": result}))
    assert observed["team/a"].metrics["spd"].status is DataStatus.QUERY_ERROR


def test_namespace_label_filters_client_side() -> None:
    needs = [
        need(policy="a/p", namespace="a", namespace_label="ns"),
        need(policy="b/p", namespace="b", namespace_label="ns"),
    ]
    totals = ok(
        series({1: 1}, vModelId="model-v1", ns="a"),
        series({1: 2}, vModelId="model-v2", ns="a"),
        series({1: 30}, vModelId="model-v1", ns="b"),
        series({1: 40}, vModelId="model-v2", ns="b"),
    )
    observed = observations_from(needs, results_for(needs, {"events": NO_DATA, "total": totals}))
    assert observed["a/p"].metrics["error-rate"].windows["v2"][0].total == 2
    assert observed["b/p"].metrics["error-rate"].windows["v2"][0].total == 40


def test_traffic_comes_from_the_request_total() -> None:
    needs = [need(), need(traffic=True)]
    totals = ok(series({1: 100}, vModelId="model-v1"), series({1: 10}, vModelId="model-v2"))
    plan = plan_queries(needs, at(10))
    assert len(plan.queries) == 2  # traffic reuses error-rate's total
    observed = observations_from(needs, results_for(needs, {"events": NO_DATA, "total": totals}))
    assert observed["team/a"].traffic_status is DataStatus.OK
    assert observed["team/a"].traffic == {
        "v1": (WindowCounts(at(0), 0, 100),),
        "v2": (WindowCounts(at(0), 0, 10),),
    }


def test_unreachable_is_the_observations_message() -> None:
    needs = [need(), need(traffic=True)]
    down = QueryResult(DataStatus.UNREACHABLE, message="Prometheus at http://p:9090 is unreachable")
    observed = observations_from(needs, results_for(needs, {"events": down, "total": down}))
    assert observed["team/a"].traffic_status is DataStatus.UNREACHABLE
    assert "http://p:9090" in observed["team/a"].message


def test_a_broken_custom_template_is_a_query_error_for_its_metric_only() -> None:
    broken = MetricTemplate(type="gauge", query="m{${selector}, x=${unknown}}")
    needs = [need(metric="custom", template=broken), need()]
    plan = plan_queries(needs, at(10))
    assert len(plan.queries) == 2
    totals = ok(series({1: 1}, vModelId="model-v1"), series({1: 1}, vModelId="model-v2"))
    good = results_for(needs[1:], {"events": NO_DATA, "total": totals})
    observed = observations_from(needs, {**good, **plan.settled})
    assert observed["team/a"].metrics["error-rate"].status is DataStatus.OK
    assert observed["team/a"].metrics["custom"].status is DataStatus.QUERY_ERROR
    assert "unknown" in observed["team/a"].metrics["custom"].message


POLICY = {
    "apiVersion": "policyengine.io/v1alpha1",
    "kind": "ReleasePolicy",
    "metadata": {"name": "fraud", "namespace": "team"},
    "spec": {
        "target": {"router": "istio-modelmesh", "manifests": [{"path": "vs.yaml"}]},
        "versions": [
            {"name": "v1", "role": "baseline", "metricLabel": "fraud-v1"},
            {"name": "v2", "role": "candidate"},
        ],
        "strategy": {"type": "canary", "steps": [10, 50]},
        "objectives": [
            {"metric": "error-rate", "maxIncrease": 0.001},
            {"metric": "latency", "threshold": 500, "max": 0.01},
            {"metric": "latency", "threshold": 1000, "max": 0.001},
        ],
        "analysis": {"interval": "30s"},
        "metrics": {"set": "modelmesh"},
    },
}


def test_needs_of_a_policy() -> None:
    policy = ReleasePolicy.model_validate(POLICY)
    metric_set = builtin_metric_sets()["modelmesh"]
    needs = needs_of(policy, metric_set, metric_set.spec.metrics, T0)
    assert [(n.observation_key, n.traffic) for n in needs] == [
        ("error-rate", False),
        ("latency@500", False),
        ("latency@1000", False),
        ("error-rate", True),
    ]
    first = needs[0]
    assert first.versions == {"v1": "fraud-v1", "v2": "v2"}
    assert first.version_label == "vModelId" and first.interval == timedelta(seconds=30)
    assert first.policy_key == "team/fraud"
    assert len(plan_queries(needs, at(10)).queries) == 3


def test_a_metric_with_its_own_version_label_is_selected_and_grouped_by_it() -> None:
    """TrustyAI's SPD names versions by `model`, ModelMesh by `vModelId`: one policy uses both."""
    spd = SPD.model_copy(update={"version_label": "model"})
    spec = {
        **POLICY["spec"],  # type: ignore[dict-item]
        "objectives": [
            {"metric": "error-rate", "maxIncrease": 0.001},
            {"metric": "spd", "min": -0.1, "max": 0.1},
        ],
        "metrics": {"set": "modelmesh", "templates": {"spd": spd.model_dump(by_alias=True)}},
    }
    policy = ReleasePolicy.model_validate({**POLICY, "spec": spec})
    metric_set = builtin_metric_sets()["modelmesh"]
    metrics = {**metric_set.spec.metrics, "spd": spd}
    needs = {
        n.observation_key: n for n in needs_of(policy, metric_set, metrics, T0) if not n.traffic
    }
    assert needs["error-rate"].version_label == "vModelId"
    assert needs["spd"].version_label == "model"
    spd_query = next(
        q.promql for q in plan_queries([needs["spd"]], at(10)).queries if "trustyai_spd" in q.promql
    )
    assert 'model=~"fraud-v1|v2"' in spd_query and "vModelId" not in spd_query


def test_a_month_long_release_is_planned_as_consecutive_ranges_under_the_point_limit() -> None:
    # Prometheus refuses a range of more than 11,000 points: at a 1-minute interval a release
    # past 7.6 days would hold for ever on "exceeded maximum resolution".
    now = at(30 * 24 * 60)
    plan = plan_queries([need(since=T0)], now)
    ranges = sorted({(q.start, q.end) for q in plan.queries})
    assert len(plan.queries) == 2 * len(ranges)  # events and total, each split alike
    assert ranges[0][0] == at(1) and ranges[-1][1] == now
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert start == end + MINUTE  # consecutive, no window lost or counted twice
    assert all((end - start) / MINUTE + 1 <= MAX_POINTS_PER_QUERY for start, end in ranges)


def test_consecutive_ranges_are_joined_into_the_same_windows_as_one_range() -> None:
    needs = [need(since=at(0))]
    first = ok(series({1: 100, 2: 110}, vModelId="model-v1"), series({1: 10}, vModelId="model-v2"))
    second = ok(series({3: 120}, vModelId="model-v1"), series({3: 12}, vModelId="model-v2"))
    joined_result = joined([first, NO_DATA, second])
    assert joined_result.status is DataStatus.OK
    observed = observations_from(
        needs, results_for(needs, {"events": NO_DATA, "total": joined_result})
    )
    windows = observed["team/a"].metrics["error-rate"].windows
    assert [w.total for w in windows["v1"]] == [100, 110, 120]
    assert [w.total for w in windows["v2"]] == [10, 12]
    failed = QueryResult(DataStatus.QUERY_ERROR, message="exceeded maximum resolution")
    assert joined([first, failed, second]) is failed
