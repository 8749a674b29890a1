"""End to end on the simulated fleet and the real Prometheus: the fleet serves by the weights in
Git, remote-writes its metrics with simulated time, and the engine reconciles once a minute.

A good candidate is promoted, a bad one (errors, latency, fairness) rolled back, and a Prometheus
outage mid-release holds the release (exit 3 naming the URL) until Prometheus is back.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from policyengine.cli import main
from policyengine.demo.repository import DemoRepository
from policyengine.demo.run import SIMULATED_START, FleetLoop, demo_engine
from policyengine.demo.scenario import DemoRelease, demo_fleet, example_files, repository_files
from policyengine.gitops.commits import format_rfc3339
from policyengine.gitops.history import HistoryEntry, release_history
from policyengine.metrics.remote_write import RemoteWriteClient
from policyengine.reconciler import PassResult
from policyengine.sim.exposition import Exposition
from policyengine.sim.fleet import FleetState, VersionProfile
from policyengine.sim.writer import FleetWriter
from policyengine.strategies import Decision, Phase
from tests.support.prometheus import PrometheusServer
from tests.support.release_repos import EXAMPLES

pytestmark = pytest.mark.prometheus

RPS = 400.0
MAX_MINUTES = 90


def version(name: str, label: str, **behaviour: float) -> VersionProfile:
    defaults = {"error_rate": 0.005, "latency_p50_ms": 20.0, "latency_p99_ms": 120.0}
    return VersionProfile(name, metric_label=label, **{**defaults, **behaviour})


def release(name: str, expected: str, **candidate: float) -> DemoRelease:
    return DemoRelease(
        folder=name,
        namespace=f"{name}-ns",
        name=name,
        baseline=version("v1", f"{name}-v1"),
        candidate=version("v2", f"{name}-v2", **candidate),
        expected=expected,
        story=f"{name}: {candidate or 'same as v1'}",
    )


@dataclass
class Run:
    """One simulated release run: the repository, the fleet loop and the Prometheus it writes to."""

    repository: DemoRepository
    loop: FleetLoop
    prometheus: PrometheusServer
    tmp_path: Path

    def minute(self) -> PassResult:
        self.loop.serve_minute()
        return self.loop.reconcile()

    def until_concluded(self, keys: tuple[str, ...]) -> dict[str, Phase]:
        phases: dict[str, Phase] = {}
        for _ in range(MAX_MINUTES):
            for plan in self.minute().plan.policies:
                assert plan.error is None, plan.error
                if plan.status is not None:
                    phases[plan.key] = plan.status.phase
            if all(phases.get(k) in (Phase.SUCCEEDED, Phase.FAILED) for k in keys):
                break
        return phases

    def history(self, key: str) -> list[HistoryEntry]:
        self.repository.sync()
        return release_history(self.repository.checkout, "main", key)


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    servers: list[PrometheusServer] = []
    clients: list[RemoteWriteClient] = []

    def start(
        releases: tuple[DemoRelease, ...],
        expositions: tuple[Exposition, ...] = (Exposition.MODELMESH,),
        edit_policy: Callable[[str], str] | None = None,
        seed: int = 7,
    ) -> Run:
        prometheus = PrometheusServer(tmp_path / "prometheus")
        servers.append(prometheus)
        prometheus.start()
        others = {r.example: example_files(EXAMPLES, r.example) for r in releases}
        files = repository_files(example_files(EXAMPLES), releases, others)
        if edit_policy is not None:
            for r in releases:
                files[f"{r.folder}/policy.yaml"] = edit_policy(files[f"{r.folder}/policy.yaml"])
        repository = DemoRepository.create(
            tmp_path / "remote.git", tmp_path / "checkout", files, SIMULATED_START
        )
        fleet = demo_fleet(releases, rps=RPS)
        client = RemoteWriteClient(prometheus.url)
        clients.append(client)
        writer = FleetWriter(client, fleet, expositions)

        def record(state: FleetState) -> None:
            # While Prometheus is down its samples are lost, as a scrape gap would lose them.
            if prometheus.running:
                writer.write(state)

        engine = demo_engine(repository.remote, tmp_path / "engine", prometheus.url)
        loop = FleetLoop(repository, fleet, record, engine, seed)
        return Run(repository, loop, prometheus, tmp_path)

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


def test_a_good_candidate_is_promoted_and_a_bad_one_rolled_back(
    start_run: Callable[..., Run],
) -> None:
    good = release("ranker", "promote")  # identical to its baseline
    bad = release("scorer", "rollback", error_rate=0.015)  # 3x the baseline's errors
    run = start_run((good, bad))
    phases = run.until_concluded((good.key, bad.key))
    assert phases == {good.key: Phase.SUCCEEDED, bad.key: Phase.FAILED}
    good_history = [(e.decision, e.weights) for e in run.history(good.key)]
    assert good_history[-1] == ("promote", "v1=0,v2=100")
    assert [d for d, _ in good_history] == ["advance"] * 5 + ["promote"]
    bad_history = run.history(bad.key)
    assert (bad_history[-1].decision, bad_history[-1].weights) == ("rollback", "v1=100,v2=0")
    assert "error-rate" in bad_history[-1].reason
    # What the fleet serves follows Git: the next minute is all v2 for one, all v1 for the other.
    last = run.loop.serve_minute().splits
    assert last[good.key].as_dict() == {"v1": 0, "v2": 100}
    assert last[bad.key].as_dict() == {"v1": 100, "v2": 0}


def test_a_latency_regression_is_rolled_back(start_run: Callable[..., Run]) -> None:
    slow = release("slowpoke", "rollback", latency_p50_ms=60.0, latency_p99_ms=900.0)
    run = start_run((slow,))
    assert run.until_concluded((slow.key,)) == {slow.key: Phase.FAILED}
    final = run.history(slow.key)[-1]
    assert (final.decision, final.weights) == ("rollback", "v1=100,v2=0")
    assert final.reason.startswith("objective failed: slow-requests on v2 fail"), final.reason
    assert "error-rate" not in final.reason


def test_a_fairness_gauge_out_of_its_range_is_rolled_back(start_run: Callable[..., Run]) -> None:
    unfair = DemoRelease(
        folder="lender",
        namespace="lending",
        name="lender",
        baseline=version("v1", "lender-v1", spd=0.02),
        candidate=version("v2", "lender-v2", spd=-0.18, fairness_noise=0.01),
        expected="rollback",
        story="v2 favours the privileged group",
    )
    run = start_run((unfair,), (Exposition.MODELMESH, Exposition.TRUSTYAI), spd_objective)
    assert run.until_concluded((unfair.key,)) == {unfair.key: Phase.FAILED}
    final = run.history(unfair.key)[-1]
    assert (final.decision, final.weights) == ("rollback", "v1=100,v2=0")
    assert final.reason.startswith("objective failed: spd on v2 fail"), final.reason


def spd_objective(text: str) -> str:
    """The policy judged on TrustyAI's statistical parity difference only: within ±0.1."""
    yaml = YAML(typ="rt")
    document = yaml.load(text)
    document["spec"]["objectives"] = [{"metric": "spd", "min": -0.1, "max": 0.1}]
    document["spec"]["metrics"]["set"] = "trustyai"
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def test_prometheus_down_mid_release_holds_then_the_release_carries_on(
    start_run: Callable[..., Run],
) -> None:
    good = release("steady", "promote", error_rate=0.004)
    run = start_run((good,))
    for _ in range(12):  # step 2 (20 %) is reached at minute 11
        run.minute()
    before = run.history(good.key)
    assert [e.weights for e in before] == ["v1=90,v2=10", "v1=80,v2=20"]

    run.prometheus.stop()
    for _ in range(3):
        result = run.minute()
        (plan,) = result.plan.policies
        assert result.exit_code == 3
        assert plan.outcome is not None and plan.outcome.decision is Decision.HOLD
        assert plan.unreachable is not None and run.prometheus.url in plan.unreachable
        assert not result.commits
    cli = CliRunner().invoke(
        main,
        [
            "reconcile",
            "--once",
            "--repo",
            str(run.repository.remote),
            "--cache-dir",
            str(run.tmp_path / "cli-cache"),
            "--prometheus",
            run.prometheus.url,
            "--now",
            format_rfc3339(run.loop.now),
        ],
        catch_exceptions=False,
    )
    assert cli.exit_code == 3, cli.output
    assert run.prometheus.url in cli.output
    assert run.history(good.key) == before  # nothing was written while blind

    run.prometheus.start()
    assert run.until_concluded((good.key,)) == {good.key: Phase.SUCCEEDED}
    weights = [e.weights for e in run.history(good.key)]
    assert weights == [
        "v1=90,v2=10",
        "v1=80,v2=20",
        "v1=70,v2=30",
        "v1=60,v2=40",
        "v1=50,v2=50",
        "v1=0,v2=100",
    ]
