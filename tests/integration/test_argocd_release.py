"""`reconcile --once --kubeconfig` with a policy that names its Argo CD Application.

Real git (a bare remote, the engine's clone, human clones) and the production kubernetes client
against tests/support/fake_kube.py, which fakes one endpoint over HTTP on loopback:
GET /apis/argoproj.io/v1alpha1/namespaces/{namespace}/applications/{name} (bearer token), serving
Applications that validate against the Argo CD CRD schema.

The policy is examples/modelmesh-canary on time alone (steps 10..50 %, 10m dwell, syncTimeout 10m):
the dwell is what the gate moves, so no Prometheus is needed, except where a test shows that the
metrics are not even queried before the sync (a provider on a closed port would make it exit 3).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from tests.support.fake_kube import FakeKubeApi, application, running_kube_api
from tests.support.ports import free_port
from tests.support.release_repos import (
    T0,
    ReleaseRepo,
    modelmesh_baseline_files,
    modelmesh_candidate_files,
    rfc3339,
    trailers_of,
)

POLICY = "fraud-detection/fraud-detector"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class GatedRelease:
    def __init__(self, repo: ReleaseRepo, kube: FakeKubeApi, kubeconfig: Path) -> None:
        self.repo = repo
        self.kube = kube
        self.kubeconfig = kubeconfig

    def reconcile(self, minutes: float, *, expect_exit: int = 0) -> Result:
        result = self.repo.cli(
            "reconcile", "--once", *self.repo.engine_args(at(minutes)),
            "--kubeconfig", str(self.kubeconfig),
        )  # fmt: skip
        assert result.exit_code == expect_exit, (result.exit_code, result.output)
        return result

    def argo_reports(self, revision: str, *, health: str = "Healthy", synced_at: float) -> None:
        """Argo CD synced `revision` at T0 + `synced_at` minutes, with this health."""
        self.kube.put_application(
            application(
                revision=revision,
                health=health,
                operation_revision=revision,
                finished_at=rfc3339(at(synced_at)),
            )
        )

    def engine_commits(self, since: str) -> list[str]:
        return [c.sha for c in self.repo.engine_commits(since=since)]


@pytest.fixture
def release(tmp_path: Path) -> Iterator[GatedRelease]:
    repo = ReleaseRepo.create(tmp_path / "repo", modelmesh_baseline_files())
    human = repo.human_push(modelmesh_candidate_files(), "fraud-detector v2: canary release")
    with running_kube_api(f"kube-{secrets.token_hex(12)}") as kube:
        kube.put_application(application(revision=human, operation_revision=human))
        yield GatedRelease(repo, kube, kube.write_kubeconfig(tmp_path / "kubeconfig"))


def test_a_step_starts_when_argo_cd_has_synced_it_not_when_it_was_committed(
    release: GatedRelease,
) -> None:
    start = release.repo.head()
    release.reconcile(0)
    [first] = release.engine_commits(since=start)

    # Argo CD still shows the human's commit: the step is not measured yet.
    waiting = release.reconcile(9)
    assert f"waiting for Argo CD Application argocd/fraud-detector to sync {first[:10]}" in (
        waiting.output
    )
    assert release.engine_commits(since=first) == []

    # Synced and Healthy at +8m: the 10m dwell runs from there, not from the commit at +0m.
    release.argo_reports(first, synced_at=8)
    held = release.reconcile(15)
    assert f"{POLICY}: hold" in held.output and "held 7m of 10m" in held.output, held.output
    assert release.engine_commits(since=first) == []
    release.reconcile(18)
    [second] = release.repo.engine_commits(since=first)
    assert trailers_of(second.message)["Weights"] == "v1=80,v2=20"

    # A person pushes on top: Argo CD reports that later commit, which carries the engine's.
    later = release.repo.human_push({"README.md": "notes\n"}, "docs")
    release.argo_reports(later, synced_at=19)
    assert "held 1m of 10m" in release.reconcile(20).output


def test_no_sync_within_the_timeout_holds_with_its_reason(release: GatedRelease) -> None:
    start = release.repo.head()
    release.reconcile(0)
    [first] = release.engine_commits(since=start)
    assert "waiting for Argo CD" in release.reconcile(9).output
    timed_out = release.reconcile(10)
    assert (
        f"{POLICY}: hold v1=90,v2=10 (nothing to write) — holding: Argo CD has not applied "
        f"commit {first[:7]} within 10m"
    ) in timed_out.output
    assert release.engine_commits(since=first) == []


def test_degraded_after_the_engines_commit_rolls_back(release: GatedRelease) -> None:
    start = release.repo.head()
    release.reconcile(0)
    [first] = release.engine_commits(since=start)
    release.argo_reports(first, health="Degraded", synced_at=2)
    result = release.reconcile(3)
    [rollback] = release.repo.engine_commits(since=first)
    trailers = trailers_of(rollback.message)
    assert (trailers["Decision"], trailers["Weights"]) == ("rollback", "v1=100,v2=0")
    assert "is Degraded after syncing the engine's commit" in rollback.message
    assert "rollback" in result.output


def test_the_metrics_are_not_queried_before_the_sync(release: GatedRelease) -> None:
    """With an objective and a Prometheus that is down, a query would exit 3 (unreachable)."""
    closed = f"http://127.0.0.1:{free_port()}"
    policy = release.repo.file("policy.yaml").replace(
        "spec:\n", "spec:\n  metrics: {provider: {url: " + closed + "}, set: modelmesh}\n"
        "  objectives: [{metric: error-rate, max: 0.02}]\n", 1
    )  # fmt: skip
    release.repo.human_push({"policy.yaml": policy}, "guard the release with an objective")
    start = release.repo.head()
    release.reconcile(0)  # the first step is not gated on evidence
    [first] = release.engine_commits(since=start)
    release.kube.put_application(application(revision=start, operation_revision=start))
    waiting = release.reconcile(5)  # not measured: exit 0
    assert "waiting for Argo CD" in waiting.output
    release.argo_reports(first, synced_at=6)
    release.reconcile(7, expect_exit=3)  # measured now, and Prometheus is down


def test_an_unreachable_cluster_holds_and_exits_3(release: GatedRelease, tmp_path: Path) -> None:
    start = release.repo.head()
    release.reconcile(0)
    [first] = release.engine_commits(since=start)
    release.kubeconfig = release.kube.write_kubeconfig(tmp_path / "elsewhere")
    release.kubeconfig.write_text(
        release.kubeconfig.read_text().replace(release.kube.url, f"http://127.0.0.1:{free_port()}")
    )
    result = release.reconcile(12, expect_exit=3)
    assert "holding: cannot read Argo CD Application argocd/fraud-detector" in result.output
    assert release.engine_commits(since=first) == []
