"""The performance gate end to end: `reconcile --once` against a real bare remote load-tests the
candidate's own endpoint — a real MLServer 1.7.1 on 127.0.0.1 (the `mlserver` fixture) — before
the first traffic step. A candidate that misses its p99 SLO is rolled back before any user traffic
reaches it, with the load test's report in the commit body and the status file; one that meets
its SLOs starts its canary with the same evidence.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.gitops.status import parse_status, status_path
from tests.support.mlserver import MLServer
from tests.support.release_repos import T0, ReleaseRepo, example_files, trailers_of

CANARY = "fraud-detection/fraud-detector"


@pytest.fixture(autouse=True)
def engine_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLICYENGINE_AUTHOR_NAME", raising=False)
    monkeypatch.delenv("POLICYENGINE_AUTHOR_EMAIL", raising=False)


def _release(base: Path, performance: dict[str, Any]) -> ReleaseRepo:
    files = example_files("modelmesh-canary")
    policy = yaml.safe_load(files["policy.yaml"])
    policy["spec"].pop("argocd", None)
    policy["spec"]["performance"] = performance
    files["policy.yaml"] = yaml.safe_dump(policy, sort_keys=False)
    return ReleaseRepo.create(base, files)


def _candidate_weights(repo: ReleaseRepo) -> list[str]:
    return [trailers_of(c.message)["Weights"] for c in repo.engine_commits()]


def test_a_candidate_missing_its_p99_slo_is_rolled_back_before_any_traffic(
    tmp_path: Path, mlserver: MLServer
) -> None:
    # The slow model answers after 50 ms: p99 <= 20ms cannot hold, whatever the machine's load.
    repo = _release(
        tmp_path,
        {
            "endpoint": mlserver.url,
            "model": "slow",
            "vmodelId": "fraud-detector-v2",
            "rate": 20,
            "requests": 40,
            "warmup": "0s",
            "slos": ["p99 <= 20ms", "errorRate <= 0.01"],
        },
    )
    repo.reconcile(T0)
    commits = repo.engine_commits()
    assert len(commits) == 1
    rollback = commits[0]
    trailers = trailers_of(rollback.message)
    assert trailers["Decision"] == "rollback"
    assert trailers["Weights"] == "v1=100,v2=0"
    assert "performance gate before the first traffic step" in rollback.message
    assert "p99 <= 20ms" in rollback.message and "FAILED" in rollback.message
    assert "| requests sent | 40 |" in rollback.message  # the report is the evidence
    status = parse_status(repo.file(status_path(CANARY)))
    assert status.phase.value == "failed" and "missed p99 <= 20ms" in status.extra["performance"]
    assert "Performance gate" in status.evidence

    # Nothing more happens: the release is over and the candidate never served.
    repo.reconcile(T0 + timedelta(minutes=30))
    assert len(repo.engine_commits()) == 1
    assert _candidate_weights(repo) == ["v1=100,v2=0"]


def test_a_candidate_meeting_its_slos_starts_the_canary_with_the_report(
    tmp_path: Path, mlserver: MLServer
) -> None:
    repo = _release(
        tmp_path,
        {
            "endpoint": mlserver.grpc_target,
            "protocol": "v2-grpc",
            "model": "iris",
            "vmodelId": "fraud-detector-v2",
            "rate": 20,
            "requests": 40,
            "warmup": "0s",
            "slos": ["p50 <= 5s", "errorRate <= 0.01"],
        },
    )
    repo.reconcile(T0)
    (advance,) = repo.engine_commits()
    assert trailers_of(advance.message)["Decision"] == "advance"
    assert trailers_of(advance.message)["Weights"] == "v1=90,v2=10"
    assert "Performance gate** before the first traffic step: passed" in advance.message
    status = parse_status(repo.file(status_path(CANARY)))
    assert "SLOs met" in status.extra["performance"]

    # The gate was for the first step only: the next step does not load-test again.
    repo.reconcile(T0 + timedelta(minutes=11))
    commits = repo.engine_commits()
    assert len(commits) == 2 and "Performance gate" not in commits[1].message


def test_an_unreachable_candidate_endpoint_holds_and_exits_3(tmp_path: Path) -> None:
    repo = _release(
        tmp_path,
        {
            "endpoint": "http://127.0.0.1:9",  # discard: nothing listens
            "model": "iris",
            "rate": 10,
            "requests": 5,
            "warmup": "0s",
            "timeout": "2s",
            "slos": ["p99 <= 200ms"],
        },
    )
    repo.reconcile(T0, expect_exit=3)
    assert repo.engine_commits() == []  # no traffic moved, nothing recorded


def test_every_step_load_tests_again_before_moving_on(tmp_path: Path, mlserver: MLServer) -> None:
    repo = _release(
        tmp_path,
        {
            "endpoint": mlserver.url,
            "model": "iris",
            "rate": 20,
            "requests": 20,
            "warmup": "0s",
            "slos": ["p50 <= 5s"],
            "at": "everyStep",
        },
    )
    repo.reconcile(T0)
    repo.reconcile(T0 + timedelta(minutes=11))
    first, second = repo.engine_commits()
    assert "Performance gate** before the first traffic step: passed" in first.message
    assert trailers_of(second.message)["Weights"] == "v1=80,v2=20"
    assert "Performance gate** at step 1: passed" in second.message
    status = parse_status(repo.file(status_path(CANARY)))
    assert status.extra["performance"].startswith("at step 1:")
