"""Promote, hold and rollback decided from a real Prometheus, written to a real git remote.

The simulated fleet serves the weights the engine last pushed and remote-writes its counters, under
ModelMesh's and TrustyAI's real metric names, one simulated minute at a time; the engine reconciles
every minute (`Engine.reconcile_once`), as it would in a cluster where Argo CD applies at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from policyengine.cli import main
from policyengine.documents import find_document, load_documents
from policyengine.gitops.status import parse_status
from policyengine.sim.fleet import Fleet, ModelProfile, VersionKey
from policyengine.values import Decision, Phase, TrafficSplit
from tests.support.incidents import (
    BASELINE_LABEL,
    CANDIDATE_LABEL,
    ERROR_RATE,
    MINUTE,
    POLICY,
    SERVICE,
    SLOW_REQUESTS,
    STATUS,
    T0,
    LiveRelease,
    canary_policy,
    fleet,
    policy_model,
    release_repo,
    version,
)
from tests.support.prometheus import PrometheusServer
from tests.support.release_repos import ReleaseRepo, rfc3339, trailers_of

pytestmark = pytest.mark.prometheus

RPS = 200.0  # 20 req/s to the candidate at its first step: a minute is ~1,200 requests
TABLE_HEADER = (
    "| version | objective | check | verdict | estimate | interval | baseline | samples | test |"
)


@pytest.fixture
def prometheus(prometheus_server: PrometheusServer) -> PrometheusServer:
    """A Prometheus of the test's own: remote write needs time to only move forward."""
    prometheus_server.start()
    return prometheus_server


@contextmanager
def live_release(
    tmp_path: Path,
    prometheus: PrometheusServer,
    policy_text: str,
    simulated: Fleet,
    **options: Any,
) -> Iterator[LiveRelease]:
    live = LiveRelease(
        release_repo(tmp_path / "repo", policy_text),
        policy_model(policy_text),
        simulated,
        prometheus.url,
        **options,
    )
    try:
        yield live
    finally:
        live.close()


def weights_in_remote(repo: ReleaseRepo) -> dict[str, int]:
    service = find_document(
        load_documents(repo.file(SERVICE), SERVICE), "VirtualService", "fraud-detector"
    )
    routes = service["spec"]["http"][0]["route"]
    return {
        route["headers"]["request"]["set"]["mm-vmodel-id"]: int(route["weight"]) for route in routes
    }


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_a_healthy_canary_is_promoted_step_by_step(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    text = canary_policy([ERROR_RATE, SLOW_REQUESTS])
    healthy = fleet(version("v1", BASELINE_LABEL), version("v2", CANDIDATE_LABEL), RPS)
    with live_release(tmp_path, prometheus, text, healthy) as live:
        plan = live.run_until([Decision.PROMOTE, Decision.ROLLBACK], max_minutes=30)

        assert plan.outcome is not None
        assert plan.outcome.decision is Decision.PROMOTE, live.decisions()
        # Five steps of two minutes each: promoted at the end of the schedule, not held past it.
        assert live.minute == 10, live.decisions()
        moves = [(d, w) for _, d, w in live.decisions() if d != "hold"]
        assert moves == [
            ("advance", "v1=90,v2=10"),
            ("advance", "v1=80,v2=20"),
            ("advance", "v1=70,v2=30"),
            ("advance", "v1=60,v2=40"),
            ("advance", "v1=50,v2=50"),
            ("promote", "v1=0,v2=100"),
        ]
        assert weights_in_remote(live.repo) == {BASELINE_LABEL: 0, CANDIDATE_LABEL: 100}
        status = parse_status(live.repo.file(STATUS))
        assert (status.phase, status.stable) == (Phase.SUCCEEDED, "v2")
        last = live.repo.engine_commits()[-1]
        assert trailers_of(last.message)["Decision"] == "promote"
        assert TABLE_HEADER in last.message
        for objective in ("error-rate", "slow-requests"):
            rows = [r for r in last.message.splitlines() if r.startswith(f"| v2 | {objective} |")]
            assert len(rows) == 2 and all("✅ pass" in r for r in rows), rows


def test_a_10x_error_regression_is_rolled_back_with_its_evidence(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    text = canary_policy([ERROR_RATE, SLOW_REQUESTS])
    # 5 % errors against 0.5 %: nine times the allowed +0.5 pp, proven in the first minute.
    regressed = fleet(
        version("v1", BASELINE_LABEL), version("v2", CANDIDATE_LABEL, error_rate=0.05), RPS
    )
    with live_release(tmp_path, prometheus, text, regressed) as live:
        first = live.reconcile()
        assert first.outcome is not None and first.outcome.decision is Decision.ADVANCE
        live.serve_minute()
        # What a reviewer would see in a pull request for this very pass.
        markdown = cli(
            "plan",
            *("--repo", str(live.repo.remote), "--cache-dir", str(tmp_path / "plan-cache")),
            *("--prometheus", prometheus.url, "--now", rfc3339(live.now)),
            *("--output", "markdown"),
        )
        before = live.repo.head()
        plan = live.reconcile()

        assert plan.outcome is not None
        assert plan.outcome.decision is Decision.ROLLBACK, plan.outcome.reason
        assert "error-rate on v2 fail" in plan.outcome.reason
        assert "slow-requests" not in plan.outcome.reason  # latency is not what regressed
        [commit] = live.repo.engine_commits(since=before)
        trailers = trailers_of(commit.message)
        assert (trailers["Policy"], trailers["Decision"], trailers["Weights"]) == (
            POLICY,
            "rollback",
            "v1=100,v2=0",
        )
        assert trailers["Evaluated-At"] == rfc3339(T0 + MINUTE)
        assert plan.outcome.reason in commit.message
        assert weights_in_remote(live.repo) == {BASELINE_LABEL: 100, CANDIDATE_LABEL: 0}
        status = parse_status(live.repo.file(STATUS))
        assert (status.phase, status.last_decision) == (Phase.FAILED, Decision.ROLLBACK)
        assert status.last_reason == plan.outcome.reason

        # One evidence table, the same in the commit body, the status file and the plan.
        table = plan.evidence
        assert table.startswith(TABLE_HEADER)
        assert "| v2 | error-rate | vs baseline | ❌ fail |" in table
        assert table in commit.message
        assert status.evidence == table
        assert markdown.exit_code == 0, markdown.output
        assert f"## {POLICY}: rollback `v1=100,v2=0`" in markdown.stdout
        assert table in markdown.stdout

        # The release is over: the next pass writes nothing.
        head = live.repo.head()
        live.serve_minute()
        done = live.reconcile()
        assert done.outcome is not None and done.outcome.decision is Decision.DONE
        assert live.repo.head() == head


def test_a_latency_regression_is_rolled_back(tmp_path: Path, prometheus: PrometheusServer) -> None:
    text = canary_policy([ERROR_RATE, SLOW_REQUESTS])
    # p99 from 150 ms to 1.5 s: about 11 % of requests slower than 200 ms instead of 0.4 %,
    # more than ten times the allowed +1 pp.
    slower = fleet(
        version("v1", BASELINE_LABEL), version("v2", CANDIDATE_LABEL, latency_p99_ms=1500.0), RPS
    )
    with live_release(tmp_path, prometheus, text, slower) as live:
        plan = live.run_until([Decision.PROMOTE, Decision.ROLLBACK], max_minutes=10)

        assert plan.outcome is not None
        assert plan.outcome.decision is Decision.ROLLBACK, live.decisions()
        assert live.minute <= 2, live.decisions()
        assert "slow-requests on v2 fail" in plan.outcome.reason
        assert "error-rate" not in plan.outcome.reason
        assert weights_in_remote(live.repo) == {BASELINE_LABEL: 100, CANDIDATE_LABEL: 0}
        assert parse_status(live.repo.file(STATUS)).phase is Phase.FAILED


def test_a_trustyai_spd_outside_its_range_is_rolled_back(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    text = canary_policy([{"metric": "spd", "min": -0.1, "max": 0.1}], metric_set="trustyai")
    fair = fleet(
        version("v1", BASELINE_LABEL, spd=0.02, fairness_noise=0.005),
        version("v2", CANDIDATE_LABEL, spd=0.01, fairness_noise=0.005),
        RPS,
    )
    # TrustyAI's scheduled SPD for v2 drifts once it has seen the candidate's predictions.
    biased = fleet(
        version("v1", BASELINE_LABEL, spd=0.02, fairness_noise=0.005),
        version("v2", CANDIDATE_LABEL, spd=-0.25, fairness_noise=0.005),
        RPS,
    )
    with live_release(
        tmp_path, prometheus, text, fair, fleet_at=lambda minute: fair if minute < 3 else biased
    ) as live:
        plan = live.run_until([Decision.PROMOTE, Decision.ROLLBACK], max_minutes=10)

        assert plan.outcome is not None
        assert plan.outcome.decision is Decision.ROLLBACK, live.decisions()
        # The drifted value is first published at T0 + 4m. The range check is on the mean of the
        # step's values, so it trips once the biased values outweigh the four fair ones.
        assert T0 + 4 * MINUTE <= live.now <= T0 + 8 * MINUTE, live.decisions()
        assert all(d == "hold" for at, d, _ in live.decisions()[1:-1]), live.decisions()
        assert "spd on v2 fail" in plan.outcome.reason
        assert "outside [-0.1, 0.1]" in plan.outcome.reason
        assert weights_in_remote(live.repo) == {BASELINE_LABEL: 100, CANDIDATE_LABEL: 0}
        assert "| v2 | spd | range | ❌ fail |" in parse_status(live.repo.file(STATUS)).evidence


def test_no_data_holds_and_says_which_series_is_missing(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    text = canary_policy([ERROR_RATE, SLOW_REQUESTS])
    # The candidate's InferenceService is named fraud-detector-2, the policy says -v2: a typo.
    mislabelled = fleet(version("v1", BASELINE_LABEL), version("v2", "fraud-detector-2"), RPS)
    with live_release(tmp_path, prometheus, text, mislabelled) as live:
        plan = live.run_until([Decision.ADVANCE, Decision.PROMOTE], max_minutes=1)
        assert plan.outcome is not None and plan.outcome.decision is Decision.ADVANCE
        head = live.repo.head()
        live.serve_minute()
        plan = live.run_until([Decision.ADVANCE, Decision.PROMOTE, Decision.ROLLBACK], 6)

        assert plan.outcome is not None
        assert plan.outcome.decision is Decision.HOLD, live.decisions()
        assert plan.outcome.split.trailer() == "v1=90,v2=10"
        reason = plan.outcome.reason
        assert reason.startswith("holding: ")
        assert "no data" in reason
        assert "v2 (vModelId='fraud-detector-v2')" in reason
        assert "modelmesh_api_request_milliseconds" in reason  # the query that found nothing
        assert live.repo.head() == head  # holds are not written
        [(_, last)] = live.passes[-1:]
        assert last.exit_code == 0  # missing data is not an error of the engine


def test_prometheus_down_holds_and_reconcile_exits_3_naming_the_url(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    text = canary_policy([ERROR_RATE, SLOW_REQUESTS])
    healthy = fleet(version("v1", BASELINE_LABEL), version("v2", CANDIDATE_LABEL), RPS)
    with live_release(tmp_path, prometheus, text, healthy) as live:
        live.run_until([Decision.ADVANCE], max_minutes=1)
        for _ in range(3):
            live.serve_minute()
        head = live.repo.head()
        prometheus.stop()

        result = cli(
            "reconcile",
            "--once",
            *("--repo", str(live.repo.remote), "--cache-dir", str(tmp_path / "cli-cache")),
            *("--prometheus", prometheus.url, "--now", rfc3339(live.now)),
        )

        assert result.exit_code == 3, result.output
        assert f"{POLICY}: hold v1=90,v2=10 (nothing to write)" in result.stdout
        assert f"Prometheus at {prometheus.url} is unreachable" in result.stderr
        assert live.repo.head() == head


def test_a_sample_ratio_mismatch_holds_with_the_observed_and_expected_split(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    text = canary_policy([ERROR_RATE, SLOW_REQUESTS])
    healthy = fleet(version("v1", BASELINE_LABEL), version("v2", CANDIDATE_LABEL), RPS)

    def stale_cluster(in_git: TrafficSplit) -> TrafficSplit:
        # The cluster sends 30 % to the candidate whatever Git says (a hand-applied route).
        if in_git.weight("v2") in (0, 100):
            return in_git
        return TrafficSplit.of({"v1": 70, "v2": 30})

    with live_release(tmp_path, prometheus, text, healthy, traffic_at=stale_cluster) as live:
        live.run_until([Decision.ADVANCE], max_minutes=1)
        live.serve_minute()
        plan = live.run_until([Decision.ADVANCE, Decision.PROMOTE, Decision.ROLLBACK], 5)

        assert plan.outcome is not None
        assert plan.outcome.decision is Decision.HOLD, live.decisions()
        assert plan.outcome.split.trailer() == "v1=90,v2=10"
        reason = plan.outcome.reason
        assert "sample ratio mismatch: observed v1 " in reason, reason
        observed = reason.split("observed ", 1)[1].split(";", 1)[0]
        shares = {
            part.split()[0]: float(part.split("(")[1].split()[0]) for part in observed.split(", ")
        }
        assert shares["v2"] == pytest.approx(30.0, abs=2.0) and shares["v1"] == pytest.approx(
            70.0, abs=2.0
        )
        assert "expected v1 90.0 %, v2 10.0 % from the weights in Git" in reason


NASTY_LABELS = [
    'fraud-detector-v2"} or vector(1) or up{job=~".+',  # closes the string, appends an operator
    "fraud-detector-v.*|.+",  # widens the regex to every version
    'v2"=~".*',  # a quote and a regex matcher inside the value
]


@pytest.mark.parametrize("nasty", NASTY_LABELS)
def test_a_metric_label_cannot_change_what_the_query_selects(
    tmp_path: Path, prometheus: PrometheusServer, nasty: str
) -> None:
    text = canary_policy([ERROR_RATE, SLOW_REQUESTS], candidate_label=nasty)
    # Series the engine must never see: a decoy model failing half its requests, whose labels an
    # injected matcher would catch, and the plain label the nasty one starts with.
    decoys = ModelProfile(
        "other/decoy",
        "other",
        "decoy",
        (
            version("plain", "fraud-detector-v2", error_rate=0.5),
            version("wide", "fraud-detector-v9", error_rate=0.5),
            version("bare", "v2", error_rate=0.5),
        ),
        rps=RPS,
        diurnal_amplitude=0.0,
    )
    release = fleet(version("v1", BASELINE_LABEL), version("v2", nasty), RPS)
    simulated = Fleet((*release.models, decoys))
    decoy_traffic = {"other/decoy": TrafficSplit.of({"plain": 34, "wide": 33, "bare": 33})}
    with live_release(tmp_path, prometheus, text, simulated, other_splits=decoy_traffic) as live:
        plan = live.run_until([Decision.PROMOTE, Decision.ROLLBACK], max_minutes=3)

        answers = live.answers()
        assert answers, "the engine sent no query"
        seen = {series.labels.get("vModelId") for answer in answers for series in answer.series}
        assert seen <= {BASELINE_LABEL, nasty}, seen
        assert nasty in seen  # the candidate's own series were found, exactly by their label
        assert plan.outcome is not None
        # Half the decoys' requests fail: had they been selected, v2 would have been rolled back.
        assert plan.outcome.decision is Decision.HOLD, live.decisions()
        assert [d for _, d, _ in live.decisions()] == ["advance", "hold", "advance", "hold"]
        # The candidate's requests in this step are exactly what its own series counted.
        step_started = parse_status(live.repo.file(STATUS)).step_started_at
        drawn = sum(
            interval.traffic[VersionKey(POLICY, "v2")].requests
            for interval in live.intervals
            if step_started <= interval.start <= live.now - MINUTE
        )
        assert drawn > 0
        assert plan.assessment.samples["v2"] == drawn


def test_a_version_name_with_promql_syntax_is_rejected_before_any_query(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    text = canary_policy([ERROR_RATE]).replace("- name: v2\n", '- name: v2"}\n', 1)
    repo = release_repo(tmp_path / "repo", text)
    result = cli(
        "plan",
        *("--repo", str(repo.remote), "--cache-dir", str(tmp_path / "cache")),
        *("--prometheus", prometheus.url, "--now", rfc3339(T0)),
    )
    assert result.exit_code == 1, result.output
    assert "policy.yaml:" in result.stderr and "spec.versions[1].name" in result.stderr
    assert "no valid policies found" in result.stdout
