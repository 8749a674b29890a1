"""Prometheus failing in every way we know: the release holds, the message says what went wrong,
the pass ends in bounded time and exits 3 (a dependency failed); no traceback, no rollback.

The real Prometheus (backfilled with a healthy release by promtool) produces what it can: NaN,
±Inf, negative and huge values (through PromQL arithmetic in a custom template) and a hang (the
process stopped with SIGSTOP). What a real Prometheus never answers (a 500, a body that is not
JSON, a 200 without `data`, a series without `values`, a non-numeric sample, a body trickled a
byte every two seconds) comes from a loopback HTTP stand-in (tests/support/http_standin.py).
"""

from __future__ import annotations

import io
import os
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from policyengine.analysis.observations import DataStatus
from policyengine.cli import main
from policyengine.metrics.prometheus import PrometheusProvider
from tests.support.http_standin import Answer, serve
from tests.support.incidents import (
    BASELINE_LABEL,
    CANDIDATE_LABEL,
    MINUTE,
    POLICY,
    T0,
    Incident,
    canary_policy,
    fleet,
    release_repo,
    scheduled_split,
    version,
)
from tests.support.prometheus import PrometheusServer
from tests.support.release_repos import ReleaseRepo, rfc3339

pytestmark = pytest.mark.prometheus

HEALTHY = fleet(version("v1", BASELINE_LABEL), version("v2", CANDIDATE_LABEL), rps=50.0)
INCIDENT = Incident(HEALTHY, HEALTHY, 0, 20, scheduled_split((10, 20, 30, 40, 50), 5))
COUNT = "modelmesh_api_request_milliseconds_count"
EVENTS = f'sum by (${{groupBy}}) (increase({COUNT}{{${{selector}}, code!="OK"}}[${{window}}]))'
TOTAL = f"sum by (${{groupBy}}) (increase({COUNT}{{${{selector}}}}[${{window}}]))"
MEASURED_AT = T0 + 8 * MINUTE
"""The second pass: the release started at T0, so its first window has data to measure."""


def policy_with(events: str, timeout: str = "3s") -> str:
    """The canary on a custom `faulty` error rate whose events query is `events`."""
    yaml = YAML(typ="rt")
    document = yaml.load(canary_policy([{"metric": "faulty", "max": 0.5}], min_dwell="5m"))
    metrics = document["spec"]["metrics"]
    metrics["provider"]["timeout"] = timeout
    metrics["provider"]["retries"] = 1
    metrics["templates"] = {"faulty": {"type": "proportion", "events": events, "total": TOTAL}}
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stored(prometheus_module: PrometheusServer) -> PrometheusServer:
    prometheus_module.backfill(INCIDENT.openmetrics())
    return prometheus_module


def started(tmp_path: Path, prometheus: str, events: str = EVENTS) -> ReleaseRepo:
    """A release begun at T0 (10 % to v2) and measured once, healthy, against `prometheus`."""
    repo = release_repo(tmp_path / "repo", policy_with(events))
    result = reconcile(repo, prometheus, T0)
    assert result.exit_code == 0, result.output
    assert "advance v1=90,v2=10" in result.stdout
    return repo


def reconcile(repo: ReleaseRepo, prometheus: str, now: datetime = MEASURED_AT) -> Result:
    args = ["reconcile", "--once", "--repo", str(repo.remote), "--cache-dir", str(repo.cache)]
    return CliRunner().invoke(
        main, [*args, "--prometheus", prometheus, "--now", rfc3339(now)], catch_exceptions=False
    )


def assert_held(result: Result, *phrases: str) -> None:
    assert result.exit_code == 3, result.output
    assert f"{POLICY}: hold" in result.stdout, result.output
    problem = [line for line in result.stderr.splitlines() if line.startswith(f"error: {POLICY}")]
    assert problem, result.stderr
    for phrase in phrases:
        assert phrase in problem[0], problem[0]
    assert "Traceback" not in result.output


def test_a_healthy_release_is_measured_and_advances(
    stored: PrometheusServer, tmp_path: Path
) -> None:
    """The control: the same policy and data without a fault measure and move on."""
    repo = started(tmp_path, stored.url)
    result = reconcile(repo, stored.url, T0 + 5 * MINUTE + timedelta(seconds=30))
    assert result.exit_code == 0, result.output
    assert "advance v1=80,v2=20" in result.stdout, result.output


IMPOSSIBLE = {
    "NaN": (f"({EVENTS}) * 0 / 0", "impossible count nan"),
    "+Inf": (f"({EVENTS}) * 0 + 1 / 0", "impossible count inf"),
    "-Inf": (f"({EVENTS}) * 0 - 1 / 0", "impossible count -inf"),
    "negative": (f"({EVENTS}) * 0 - 5", "impossible count -5.0"),
    "huge": (f"({EVENTS}) * 0 + 1e308", "impossible count 1e+308"),
}


def test_impossible_values_from_the_real_prometheus_hold(
    stored: PrometheusServer, tmp_path: Path
) -> None:
    """One release; each fault committed in turn as the events query, each pass holds."""
    repo = started(tmp_path, stored.url)
    for fault, (events, phrase) in IMPOSSIBLE.items():
        repo.human_push({"policy.yaml": policy_with(events)}, f"the events query now gives {fault}")
        result = reconcile(repo, stored.url)
        assert_held(result, phrase, CANDIDATE_LABEL)
        assert "rollback" not in result.stdout, (fault, result.stdout)


def test_a_hanging_prometheus_holds_within_the_deadline(
    stored: PrometheusServer, tmp_path: Path
) -> None:
    repo = started(tmp_path, stored.url)
    process = stored._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        began = time.monotonic()
        result = reconcile(repo, stored.url)
        seconds = time.monotonic() - began
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert_held(result, "no complete answer within the deadline of 3 s")
    assert seconds < 12, seconds


def json_answer(body: bytes, status: int = 200) -> Answer:
    return Answer(status=status, body=body)


SERIES = (
    b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"vModelId":"'
    + CANDIDATE_LABEL.encode()
    + b'"},'
)
MALFORMED = {
    "HTTP 500": (json_answer(b'{"status":"error","error":"overloaded"}', 500), "HTTP 500"),
    "not JSON": (json_answer(b"<html>gateway</html>"), "not JSON"),
    "no data": (json_answer(b'{"status":"success"}'), "no data.result"),
    "no values": (json_answer(SERIES + b'"value":[1,"2"]}]}}'), "has no samples"),
    "non-numeric": (json_answer(SERIES + b'"values":[[1,"many"]]}]}}'), "malformed sample"),
    "trickled": (Answer(body=b" " * 100, trickle=1, pause=0.5), "deadline of 3 s"),
}


@pytest.fixture(scope="module")
def release(stored: PrometheusServer, tmp_path_factory: pytest.TempPathFactory) -> ReleaseRepo:
    """One release started and measured healthy, shared: the faulty passes below write nothing
    (a hold on unreachable data changes no status), so each sees the same repository."""
    return started(tmp_path_factory.mktemp("release"), stored.url)


def test_malformed_answers_hold_with_a_clear_message(release: ReleaseRepo) -> None:
    head = release.head()
    for fault, (answer, phrase) in MALFORMED.items():
        with serve(lambda _, a=answer: a) as broken:  # type: ignore[misc]
            began = time.monotonic()
            result = reconcile(release, broken.url)
            seconds = time.monotonic() - began
            sent = list(broken.seen)
        assert_held(result, phrase, broken.url)
        assert seconds < 12, (fault, seconds)
        # POSTed as a form: the query is in the body, not in the URL (nor in access logs)
        assert sent and all(s.method == "POST" and "?" not in s.path for s in sent), fault
        assert all(b"query=" in s.body for s in sent), fault
    assert release.head() == head


def test_a_4xx_with_a_json_list_body_is_a_rejected_query(release: ReleaseRepo) -> None:
    with serve(lambda _: json_answer(b'["no", "such", "thing"]', 422)) as broken:
        result = reconcile(release, broken.url)
    assert f"{POLICY}: hold" in result.stdout, result.output
    assert "HTTP 422" in result.output and "Traceback" not in result.output


def test_credentials_in_the_prometheus_url_are_never_shown(release: ReleaseRepo) -> None:
    echoing = json_answer(b'{"status":"error","error":"bad header Authorization: Basic ZW5n"}', 503)
    with serve(lambda _: echoing) as broken:
        url = broken.url.replace("//", "//engine:hunter2secret@")
        result = reconcile(release, url)
        seen = list(broken.seen)
    assert result.exit_code == 3, result.output
    assert "hunter2secret" not in result.output and "ZW5n" not in result.output
    assert "Basic ***" in result.output
    assert seen and seen[0].headers.get("Authorization", "").startswith("Basic ")


def test_one_pass_budget_bounds_all_queries_to_a_provider() -> None:
    """Finding 5: the per-query deadline alone lets many slow queries add up; the pass's budget
    caps their sum. A loopback stand-in holds every answer for 5 s."""
    with serve(lambda _: Answer(pause=5.0)) as hanging:
        provider = PrometheusProvider(hanging.url, timeout=0.6, retries=0, pass_budget=1.0)
        provider.new_pass()
        began = time.monotonic()
        results = [provider.query("up", T0) for _ in range(5)]
        seconds = time.monotonic() - began
        provider.close()
    assert seconds < 2.5, seconds
    assert all(r.status is DataStatus.UNREACHABLE for r in results)
    assert "deadline of 0.6 s" in results[0].message
    assert "budget of 1 s" in results[-1].message and "not sent" in results[-1].message
