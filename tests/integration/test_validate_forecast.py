"""`validate --prometheus URL` forecasts the time to decision from the baseline's last hour in the
real Prometheus (fed by remote write from the simulated ModelMesh fleet) and warns when the
schedule and maxDuration cannot reach one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyengine.cli import main
from tests.support.incidents import (
    BASELINE_LABEL,
    CANDIDATE_LABEL,
    LiveRelease,
    canary_policy,
    fleet,
    policy_model,
    release_files,
    release_repo,
    version,
)
from tests.support.prometheus import PrometheusServer
from tests.support.release_repos import rfc3339

pytestmark = pytest.mark.prometheus

ERRORS = {"metric": "error-rate", "max": 0.02, "maxIncrease": 0.005}
# 20 % of ~0.4 % slow requests, with no `max` to give the margin a floor: 0.08 pp.
RARE = {"name": "slow-requests", "metric": "latency", "threshold": 200, "maxRelativeIncrease": 0.2}


def test_validate_forecasts_time_to_decision_and_warns_when_it_cannot_conclude(
    tmp_path: Path, prometheus_server: PrometheusServer
) -> None:
    prometheus_server.start()
    text = canary_policy([ERRORS, RARE], min_dwell="6m")
    quiet = fleet(version("v1", BASELINE_LABEL), version("v2", CANDIDATE_LABEL), 10.0)
    live = LiveRelease(
        release_repo(tmp_path / "repo", text), policy_model(text), quiet, prometheus_server.url
    )
    try:
        for _ in range(60):  # an hour of the baseline alone (v2 is deployed at 0 %)
            live.serve_minute()
    finally:
        live.close()
    folder = tmp_path / "checkout"
    for path, content in release_files(text).items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(content, encoding="utf-8")
    result = CliRunner().invoke(
        main,
        [
            "validate",
            str(folder),
            "--repo",
            str(folder),
            "--prometheus",
            prometheus_server.url,
            "--now",
            rfc3339(live.now),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    [errors] = [line for line in lines if ": error-rate: baseline" in line]
    assert "warning" not in errors
    assert re.search(r"expected to pass in ~\d+ (min|\.\d h)", errors), errors
    assert re.search(r"at (9\.\d+|10(\.\d+)?) req/s", errors), errors
    [rare] = [line for line in lines if ": slow-requests: baseline" in line]
    assert "warning" in rare and "cannot reach a decision" in rare, rare
    assert "maxDuration 2.0 h" in rare and "the smallest margin provable in 2.0 h is" in rare, rare
