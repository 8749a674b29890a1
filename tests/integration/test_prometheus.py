"""The Prometheus provider and the collector against a real Prometheus, backfilled with promtool."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from policyengine.analysis.observations import DataStatus, WindowCounts
from policyengine.errors import InvalidPolicyError
from policyengine.metrics import promql
from policyengine.metrics.catalog import builtin_metric_sets
from policyengine.metrics.collector import collect, needs_of
from policyengine.metrics.prometheus import PrometheusProvider
from policyengine.metrics.remote_write import RemoteWriteClient, SeriesSamples
from policyengine.metrics.settings import ProviderSettings
from policyengine.policy.models import MetricSet, MetricTemplate, Provider, ReleasePolicy
from tests.support.ports import free_port
from tests.support.prometheus import (
    T0,
    PrometheusServer,
    Sample,
    counter_samples,
    openmetrics,
)

pytestmark = pytest.mark.prometheus

MINUTES = 10
SCRAPES_PER_MINUTE = 4
MODELMESH = builtin_metric_sets()["modelmesh"]
ESCAPE_PROBES = [
    'x"}',
    "v1|v2",
    "=~",
    'a=~".*"',
    ".*",
    "a.b",
    "back\\slash",
    "trailing\\",
    "new\nline",
    "tab\there",
    "(group)[class]{1,3}",
    "^anchored$",
    "ünïcødé-模型",
]
INJECTION = 'x"} or vector(1) #'


def ok_per_scrape(policy: int, version: int, minute: int) -> int:
    return 10 + minute + policy + 10 * version


def errors_per_scrape(version: int, minute: int) -> int:
    # Only v2 ever fails, so v1 has no error series at all: that must read as zero errors.
    return minute % 3 if version == 1 else 0


SLOW_AT_500 = {0: 2, 1: 4}  # per scrape, out of 10 bucketed requests


def modelmesh_history() -> str:
    lines = []
    counts, buckets = [], []
    for policy in range(3):
        for version in (0, 1):
            model = f"p{policy}-v{version + 1}"
            per_minute = range(MINUTES)
            ok = [ok_per_scrape(policy, version, m) for m in per_minute]
            failed = [errors_per_scrape(version, m) for m in per_minute]
            labels = {"vModelId": model, "modelId": f"{model}__isvc-1", "method": "ModelInfer"}
            counts += counter_samples(
                {**labels, "code": "OK"}, T0, [n for n in ok for _ in range(SCRAPES_PER_MINUTE)]
            )
            if any(failed):
                counts += counter_samples(
                    {**labels, "code": "INTERNAL"},
                    T0,
                    [n for n in failed for _ in range(SCRAPES_PER_MINUTE)],
                )
            slow = SLOW_AT_500[version]
            for le, per_scrape in (("100", 3), ("500", 10 - slow), ("1000", 10), ("+Inf", 10)):
                buckets += counter_samples(
                    {**labels, "code": "OK", "le": le}, T0, [per_scrape] * (MINUTES * 4)
                )
    lines.append(openmetrics("modelmesh_api_request_milliseconds_count", counts))
    lines.append(openmetrics("modelmesh_api_request_milliseconds_bucket", buckets))
    probes = [
        Sample({"vModelId": value}, T0 + timedelta(minutes=m), index)
        for index, value in enumerate([*ESCAPE_PROBES, "decoy"])
        for m in range(MINUTES)
    ]
    lines.append(openmetrics("escape_probe", probes))
    return "".join(lines)


@pytest.fixture(scope="module")
def prometheus(prometheus_module: PrometheusServer) -> PrometheusServer:
    prometheus_module.backfill(modelmesh_history())
    return prometheus_module


@pytest.fixture
def provider(prometheus: PrometheusServer) -> Iterator[PrometheusProvider]:
    client = PrometheusProvider(prometheus.url, timeout=5, retries=1)
    yield client
    client.close()


def policy(index: int, objectives: list[dict[str, object]] | None = None) -> ReleasePolicy:
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": f"p{index}", "namespace": "team"},
            "spec": {
                "target": {"router": "istio-modelmesh", "manifests": [{"path": "vs.yaml"}]},
                "versions": [
                    {"name": "v1", "role": "baseline", "metricLabel": f"p{index}-v1"},
                    {"name": "v2", "role": "candidate", "metricLabel": f"p{index}-v2"},
                ],
                "strategy": {"type": "canary", "steps": [10, 50]},
                "objectives": objectives
                or [
                    {"metric": "error-rate", "maxIncrease": 0.001},
                    {"metric": "latency", "threshold": 500, "max": 0.01},
                ],
                "metrics": {"set": "modelmesh"},
            },
        }
    )


def expected_error_windows(
    index: int, version: int, since_minute: int = 0
) -> tuple[WindowCounts, ...]:
    return tuple(
        WindowCounts(
            T0 + timedelta(minutes=m),
            SCRAPES_PER_MINUTE * errors_per_scrape(version, m),
            SCRAPES_PER_MINUTE * (ok_per_scrape(index, version, m) + errors_per_scrape(version, m)),
        )
        for m in range(since_minute, MINUTES)
    )


def test_counts_per_window_for_a_counter_and_a_histogram(provider: PrometheusProvider) -> None:
    needs = needs_of(policy(0), MODELMESH, MODELMESH.spec.metrics, T0 + timedelta(minutes=2))
    observations = collect(provider, needs, T0 + timedelta(minutes=MINUTES, seconds=20))["team/p0"]

    errors = observations.metrics["error-rate"]
    assert errors.status is DataStatus.OK, errors.message
    assert errors.windows == {
        "v1": expected_error_windows(0, 0, since_minute=2),
        "v2": expected_error_windows(0, 1, since_minute=2),
    }
    latency = observations.metrics["latency@500"]
    assert latency.status is DataStatus.OK, latency.message
    for name, version in (("v1", 0), ("v2", 1)):
        assert [(w.start, w.events, w.total) for w in latency.windows[name]] == [
            (T0 + timedelta(minutes=m), 4.0 * SLOW_AT_500[version], 40.0) for m in range(2, MINUTES)
        ]
    assert observations.traffic_status is DataStatus.OK
    assert [w.total for w in observations.traffic["v2"]] == [
        w.total for w in expected_error_windows(0, 1, since_minute=2)
    ]


def test_one_query_per_template_for_policies_sharing_a_set(provider: PrometheusProvider) -> None:
    needs = [
        need
        for index in range(3)
        for need in needs_of(policy(index), MODELMESH, MODELMESH.spec.metrics, T0)
    ]
    observed = collect(provider, needs, T0 + timedelta(minutes=MINUTES))
    # error-rate events, error-rate total (shared with traffic) and latency buckets.
    assert provider.queries_sent == 3
    for index in range(3):
        windows = observed[f"team/p{index}"].metrics["error-rate"].windows
        assert windows == {
            "v1": expected_error_windows(index, 0),
            "v2": expected_error_windows(index, 1),
        }


def test_no_data_query_error_and_unreachable_are_distinct(
    provider: PrometheusProvider, prometheus: PrometheusServer
) -> None:
    ghost = policy(0).model_copy(deep=True)
    ghost_versions = [
        v.model_copy(update={"metric_label": f"ghost-{v.name}"}) for v in ghost.spec.versions
    ]
    ghost = ghost.model_copy(
        update={"spec": ghost.spec.model_copy(update={"versions": ghost_versions})}
    )
    now = T0 + timedelta(minutes=MINUTES)
    missing = collect(provider, needs_of(ghost, MODELMESH, MODELMESH.spec.metrics, T0), now)
    assert missing["team/p0"].metrics["error-rate"].status is DataStatus.NO_DATA
    assert missing["team/p0"].traffic_status is DataStatus.NO_DATA

    broken = {
        "error-rate": MetricTemplate(
            type="proportion",
            events="sum by (${groupBy}) (rate(modelmesh_api_request_milliseconds_count{${selector}}))",
            total="sum by (${groupBy}) (increase(modelmesh_api_request_milliseconds_count{${selector}}[${window}]))",
        )
    }
    rejected = collect(provider, needs_of(policy(0), MODELMESH, broken, T0), now)
    error_rate = rejected["team/p0"].metrics["error-rate"]
    assert error_rate.status is DataStatus.QUERY_ERROR
    assert "HTTP 400" in error_rate.message and prometheus.url in error_rate.message

    off_bucket = policy(0, [{"metric": "latency", "threshold": 250, "max": 0.01}])
    needs = needs_of(off_bucket, MODELMESH, MODELMESH.spec.metrics, T0)
    latency = collect(provider, needs, now)["team/p0"].metrics["latency@250"]
    assert latency.status is DataStatus.QUERY_ERROR
    assert "100, 500, 1000" in latency.message

    closed = f"http://127.0.0.1:{free_port()}"
    down = PrometheusProvider(closed, timeout=2, retries=1, backoff=0.01)
    unreachable = collect(down, needs_of(policy(0), MODELMESH, MODELMESH.spec.metrics, T0), now)
    assert down.queries_sent == 1  # the first refusal answers for the rest of the pass
    assert unreachable["team/p0"].metrics["error-rate"].status is DataStatus.UNREACHABLE
    assert unreachable["team/p0"].traffic_status is DataStatus.UNREACHABLE
    assert closed in unreachable["team/p0"].message
    assert not down.is_up()
    assert provider.is_up()


@pytest.mark.parametrize("value", ESCAPE_PROBES)
def test_a_nasty_label_value_selects_exactly_its_series(
    provider: PrometheusProvider, value: str
) -> None:
    matcher = promql.alternation_matcher("vModelId", [value])
    result = provider.query(f"escape_probe{{{matcher}}}", T0 + timedelta(minutes=5))
    assert result.status is DataStatus.OK, result.message
    assert [s.labels["vModelId"] for s in result.series] == [value]
    assert result.series[0].points[0].value == ESCAPE_PROBES.index(value)


def test_an_injection_attempt_selects_nothing(provider: PrometheusProvider) -> None:
    at = T0 + timedelta(minutes=5)
    for matcher in (
        promql.alternation_matcher("vModelId", [INJECTION]),
        promql.equality_matcher("vModelId", INJECTION),
    ):
        result = provider.query(f"escape_probe{{{matcher}}}", at)
        assert result.status is DataStatus.NO_DATA, result.series
    # Beside a regex-looking value, it still selects only the literal ".*" series.
    widened = provider.query(
        f"escape_probe{{{promql.build_selector('vModelId', [INJECTION, '.*'])}}}", at
    )
    assert [s.labels["vModelId"] for s in widened.series] == [".*"]


def test_several_nasty_values_in_one_alternation(provider: PrometheusProvider) -> None:
    chosen = ["v1|v2", ".*", 'x"}', "back\\slash"]
    matcher = promql.alternation_matcher("vModelId", chosen)
    result = provider.query(f"escape_probe{{{matcher}}}", T0 + timedelta(minutes=5))
    assert sorted(s.labels["vModelId"] for s in result.series) == sorted(chosen)


@pytest.mark.parametrize("name", sorted(builtin_metric_sets()))
def test_builtin_templates_are_valid_promql(provider: PrometheusProvider, name: str) -> None:
    metric_set: MetricSet = builtin_metric_sets()[name]
    spec = metric_set.spec
    selector = promql.build_selector(
        spec.version_label, [INJECTION, "v2"], spec.namespace_label, ["team"]
    )
    for metric in spec.metrics.values():
        for text in metric.queries().values():
            query = promql.render(
                text,
                selector=selector,
                group_by_labels=promql.group_by(spec.version_label, spec.namespace_label),
                window="1m",
            )
            result = provider.query(query, T0 + timedelta(minutes=5))
            assert result.status is DataStatus.NO_DATA, (query, result.message)


def test_remote_write_round_trip(
    provider: PrometheusProvider, prometheus: PrometheusServer
) -> None:
    # After the backfilled blocks: the head refuses samples older than the newest block.
    start = T0 + timedelta(hours=1)
    samples = [(start + timedelta(seconds=15 * i), float(3 * i)) for i in range(9)]
    writer = RemoteWriteClient(prometheus.url)
    try:
        writer.push(
            [
                SeriesSamples({"__name__": "rw_probe", "vModelId": 'w"}'}, samples),
                SeriesSamples({"__name__": "rw_probe", "vModelId": "other"}, samples[:2]),
            ]
        )
    finally:
        writer.close()
    matcher = promql.alternation_matcher("vModelId", ['w"}'])
    end = start + timedelta(minutes=2)
    result = provider.query(f"increase(rw_probe{{{matcher}}}[1m])", end)
    assert result.status is DataStatus.OK, result.message
    assert [s.labels["vModelId"] for s in result.series] == ['w"}']
    assert math.isclose(result.series[0].points[0].value, 12.0)
    ranged = provider.query_range(f"rw_probe{{{matcher}}}", start, end, timedelta(seconds=30))
    assert [p.value for p in ranged.series[0].points] == [0.0, 6.0, 12.0, 18.0, 24.0]


def test_stop_and_restart(prometheus_server: PrometheusServer) -> None:
    prometheus_server.backfill(openmetrics("up_probe", [Sample({"job": "x"}, T0, 1.0)]))
    prometheus_server.start()
    client = PrometheusProvider(prometheus_server.url, timeout=2, retries=0)
    assert client.query("up_probe", T0).status is DataStatus.OK
    prometheus_server.stop()
    down = client.query("up_probe", T0)
    assert down.status is DataStatus.UNREACHABLE and prometheus_server.url in down.message
    prometheus_server.start()
    assert client.query("up_probe", T0).status is DataStatus.OK
    assert client.query("up_probe", T0 - timedelta(hours=1)).status is DataStatus.NO_DATA
    client.close()


def bcrypt_hash(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the stdlib's, enough to write a Prometheus web config in a test

    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


def test_basic_auth_from_a_password_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    web_config = f"basic_auth_users:\n  engine: '{bcrypt_hash('s3cret')}'\n"
    server = PrometheusServer(
        tmp_path / "prom", web_config=web_config, basic_auth=("engine", "s3cret")
    )
    server.start()
    try:
        password_file = tmp_path / "password"
        password_file.write_text("s3cret\n")
        known = {
            "central": ProviderSettings.model_validate(
                {
                    "name": "central",
                    "url": server.url,
                    "basicAuth": {"username": "engine", "passwordFile": str(password_file)},
                }
            ),
            "wrong": ProviderSettings.model_validate(
                {
                    "name": "wrong",
                    "url": server.url,
                    "basicAuth": {"username": "engine", "passwordEnv": "PE_TEST_PASSWORD"},
                }
            ),
        }
        named = Provider.model_validate({"name": "central"})
        allowed = PrometheusProvider.from_settings(named, known=known)
        assert allowed.query("vector(1)", T0).status is DataStatus.OK
        monkeypatch.setenv("PE_TEST_PASSWORD", "wrong")
        wrong = Provider.model_validate({"name": "wrong"})
        refused = PrometheusProvider.from_settings(wrong, known=known)
        result = refused.query("vector(1)", T0)
        assert result.status is DataStatus.UNREACHABLE and "HTTP 401" in result.message
        assert "wrong" not in result.message.replace("'wrong'", "")
        monkeypatch.delenv("PE_TEST_PASSWORD")
        with pytest.raises(InvalidPolicyError, match="PE_TEST_PASSWORD"):
            PrometheusProvider.from_settings(wrong, known=known)
        with pytest.raises(InvalidPolicyError, match=r"no provider .thanos.*central, wrong"):
            PrometheusProvider.from_settings(Provider(name="thanos"), known=known)
        # --prometheus http://user:PASS@host: basic auth, and the password in no message
        inline = PrometheusProvider(server.url.replace("//", "//engine:s3cret@"), timeout=3)
        assert inline.query("vector(1)", T0).status is DataStatus.OK
        assert "s3cret" not in inline.url
        failing = inline.query("sum(", T0)
        assert failing.status is DataStatus.QUERY_ERROR and "s3cret" not in failing.message
    finally:
        server.stop()


def test_bearer_token_is_sent_but_never_logged(
    prometheus: PrometheusServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-7f3a9c\n")
    known = {
        "thanos": ProviderSettings(
            name="thanos", url=prometheus.url, bearer_token_file=str(token_file)
        )
    }
    with pytest.raises(InvalidPolicyError, match="--prometheus"):
        PrometheusProvider.from_settings(Provider())
    settings = Provider.model_validate({"name": "thanos", "timeout": "3s", "retries": 0})
    client = PrometheusProvider.from_settings(settings, known=known)
    caplog.set_level("DEBUG")
    result = client.query("escape_probe", T0 + timedelta(minutes=1))
    assert result.status is DataStatus.OK
    assert "escape_probe" in caplog.text
    assert "tok-7f3a9c" not in caplog.text and "Bearer" not in caplog.text
    client.close()
