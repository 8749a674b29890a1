"""A metric family that does not exist is a query error that holds, never zero errors.

End to end through the CLI (`policyengine reconcile --once --now`) against the real Prometheus,
fed by remote write from the simulated ModelMesh fleet: a repository's own MetricSet whose error
counter is misspelt must hold the release and never promote it, while the built-in set (whose
`code!="OK"` series may simply not exist yet) carries the same release to promotion.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from policyengine.cli import main
from policyengine.gitops.status import parse_status
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Phase
from tests.support.gitrepos import make_remote
from tests.support.incidents import (
    BASELINE_LABEL,
    CANDIDATE_LABEL,
    STATUS,
    LiveRelease,
    canary_policy,
    fleet,
    policy_model,
    release_files,
    version,
)
from tests.support.prometheus import PrometheusServer
from tests.support.release_repos import ReleaseRepo

pytestmark = pytest.mark.prometheus

MISSPELT = "modelmesh_api_request_millisecond_count"  # the real one ends in "milliseconds_count"
TYPO_SET = f"""\
apiVersion: policyengine.io/v1alpha1
kind: MetricSet
metadata:
  name: modelmesh-typo
spec:
  versionLabel: vModelId
  metrics:
    error-rate:
      type: proportion
      events: >-
        sum by (${{groupBy}}) (increase({MISSPELT}{{${{selector}}, code!="OK"}}[${{window}}]))
      total: >-
        sum by (${{groupBy}}) (increase(modelmesh_api_request_milliseconds_count{{${{selector}}}}[${{window}}]))
"""


def _run(
    tmp_path: Path, prometheus: PrometheusServer, metric_set: str, minutes: int
) -> tuple[list[str], ReleaseStatus]:
    # An absolute bound alone: zero errors read from a missing counter would pass it at once.
    objective = {"metric": "error-rate", "max": 0.01}
    text = canary_policy([objective], metric_set=metric_set, steps=(50,), min_dwell="2m")
    files = {**release_files(text), "metricsets/typo.yaml": TYPO_SET}
    base = tmp_path / metric_set
    base.mkdir()
    repo = ReleaseRepo(make_remote(base, files), base / "cache", base / "humans")
    # No errors at all: the code!="OK" series never appear, only the family's OK series do.
    flawless = fleet(
        version("v1", BASELINE_LABEL, error_rate=0.0),
        version("v2", CANDIDATE_LABEL, error_rate=0.0),
        200.0,
    )
    live = LiveRelease(repo, policy_model(text), flawless, prometheus.url)
    outputs = []
    try:
        for _ in range(minutes):
            result = CliRunner().invoke(
                main,
                [
                    "reconcile",
                    "--once",
                    *repo.engine_args(live.now),
                    "--prometheus",
                    prometheus.url,
                ],
                catch_exceptions=False,
            )
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
            if parse_status(repo.file(STATUS)).phase is not Phase.PROGRESSING:
                break
            live.serve_minute()
    finally:
        live.close()
    return outputs, parse_status(repo.file(STATUS))


def test_a_misspelt_error_counter_holds_and_never_promotes(
    tmp_path: Path, prometheus_server: PrometheusServer
) -> None:
    prometheus_server.start()
    outputs, status = _run(tmp_path, prometheus_server, "modelmesh-typo", minutes=8)
    assert status.phase is Phase.PROGRESSING, outputs[-1]
    assert status.split.weight("v2") == 50  # started, then held at its only step
    assert "query_error" in outputs[-1] and MISSPELT in outputs[-1], outputs[-1]
    assert not any("promote" in output for output in outputs)


def test_the_same_release_with_the_real_counter_is_promoted(
    tmp_path: Path, prometheus_server: PrometheusServer
) -> None:
    # No error series yet (code!="OK" appears on the first failure) is zero errors: promoted.
    prometheus_server.start()
    promoted, status = _run(tmp_path, prometheus_server, "modelmesh", minutes=8)
    assert status.phase is Phase.SUCCEEDED, promoted[-1]
