"""A release that lasts a month, measured in a real Prometheus (remote-written in time order: a
promtool backfill of a month writes 360 two-hour blocks, minutes on 2 cores) and written to a real
git remote through the CLI.

Prometheus refuses a range query of more than 11,000 points per series; at the 1-minute interval
a release past 7.6 days used to hold for ever on that refusal. Releases reviewed step by step in
pull requests last that long.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from policyengine.gitops.status import parse_status
from policyengine.metrics.remote_write import RemoteWriteClient, SeriesSamples
from tests.support.incidents import (
    BASELINE_LABEL,
    CANDIDATE_LABEL,
    ERROR_RATE,
    STATUS,
    T0,
    canary_policy,
    release_repo,
)
from tests.support.prometheus import PrometheusServer
from tests.support.release_repos import trailers_of

pytestmark = pytest.mark.prometheus

DAYS = 30
SCRAPE = timedelta(seconds=30)  # two samples in every 1-minute window
COUNTER = "modelmesh_api_request_milliseconds_count"


def write_a_month_of_traffic(url: str) -> None:
    """A month of ModelMesh request counters at 90/10: 0.4 % errors on both versions."""
    per_scrape = {  # (vModelId, code) -> requests per scrape
        (BASELINE_LABEL, "OK"): 448.0,
        (BASELINE_LABEL, "Unknown"): 2.0,
        (CANDIDATE_LABEL, "OK"): 49.8,
        (CANDIDATE_LABEL, "Unknown"): 0.2,
    }
    scrapes = int(timedelta(days=DAYS, hours=1) / SCRAPE)
    per_push = int(timedelta(days=1) / SCRAPE)
    client = RemoteWriteClient(url, timeout=60.0)
    try:
        for first in range(0, scrapes + 1, per_push):
            indices = range(first, min(first + per_push, scrapes + 1))
            client.push(
                SeriesSamples(
                    {"__name__": COUNTER, "vModelId": model, "code": code},
                    [(T0 + index * SCRAPE, index * rate) for index in indices],
                )
                for (model, code), rate in per_scrape.items()
            )
    finally:
        client.close()


def test_a_month_long_release_is_still_measured_and_advanced(
    tmp_path: Path, prometheus_server: PrometheusServer
) -> None:
    prometheus_server.start()
    clock = time.monotonic()
    write_a_month_of_traffic(prometheus_server.url)
    print(f"a month of traffic written in {time.monotonic() - clock:.2f}s")
    # One step of a month: a step reviewed in a pull request that stayed open that long.
    policy = canary_policy([ERROR_RATE], steps=(10, 50), min_dwell=f"{DAYS}d")
    repo = release_repo(tmp_path / "repo", policy)
    prometheus = ("--prometheus", prometheus_server.url)

    started = repo.cli("reconcile", "--once", *repo.engine_args(T0), *prometheus)
    assert started.exit_code == 0, started.output
    assert parse_status(repo.file(STATUS)).release_started_at == T0

    later = T0 + timedelta(days=DAYS, minutes=1)
    clock = time.monotonic()
    result = repo.cli("reconcile", "--once", *repo.engine_args(later), *prometheus)
    seconds = time.monotonic() - clock

    assert result.exit_code == 0, result.output
    assert "exceeded maximum resolution" not in result.output
    last = repo.engine_commits()[-1]
    trailers = trailers_of(last.message)
    assert (trailers["Decision"], trailers["Weights"]) == ("advance", "v1=50,v2=50"), result.output
    # Every minute of the month was counted: 100 requests a minute to the candidate, from the
    # window (T0, T0 + 1m] to the one ending at `later`.
    samples = (DAYS * 24 * 60 + 1) * 100
    assert f"| {samples} / " in last.message or f"| {samples} |" in last.message, last.message
    print(f"30-day release pass: {seconds:.2f}s")
    assert seconds < 60, seconds
