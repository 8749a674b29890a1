"""The Argo CD sync gate through the production kubernetes client and a loopback API server.

tests/support/fake_kube.py implements GET /apis/argoproj.io/v1alpha1/namespaces/{ns}/applications/
{name} with bearer-token auth; the client is configured from a kubeconfig written in tmp_path.
Every Application served validates against the Argo CD CRD schema (tests/schemas).
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from policyengine.cluster.argocd import ApplicationReader, SyncState, check_sync
from policyengine.errors import ClusterError
from policyengine.policy.models import ArgoCDGate
from tests.support.fake_kube import FakeKubeApi, application, running_kube_api

ENGINE = "3f5e1c9a7b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f"
OLDER = "9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c"
COMMITTED = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
GATE = ArgoCDGate(application="fraud-detector", namespace="argocd", sync_timeout="10m")


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubeApi, ApplicationReader]]:
    with running_kube_api(f"kube-{secrets.token_hex(12)}") as api:
        reader = ApplicationReader.from_kubeconfig(str(api.write_kubeconfig(tmp_path / "config")))
        yield api, reader
        reader.close()


def test_a_step_is_not_measured_before_argo_cd_syncs_the_engines_commit(
    kube: tuple[FakeKubeApi, ApplicationReader],
) -> None:
    api, reader = kube
    api.put_application(application(revision=OLDER, operation_revision=OLDER))
    now = COMMITTED + timedelta(minutes=2)

    before = check_sync(reader, GATE, ENGINE, COMMITTED, now)
    assert before.state is SyncState.WAITING
    assert "not yet at the engine's commit 3f5e1c9" in before.reason

    api.put_application(application(revision=ENGINE, sync_status="OutOfSync", health="Healthy"))
    assert check_sync(reader, GATE, ENGINE, COMMITTED, now).state is SyncState.WAITING

    api.put_application(
        application(revision=ENGINE, health="Progressing", operation_revision=ENGINE)
    )
    assert check_sync(reader, GATE, ENGINE, COMMITTED, now).state is SyncState.WAITING

    api.put_application(application(revision=ENGINE, operation_revision=ENGINE))
    synced = check_sync(reader, GATE, ENGINE, COMMITTED, now)
    assert synced.state is SyncState.SYNCED
    assert synced.synced_at == datetime(2024, 5, 1, 10, 2, 30, tzinfo=UTC)
    assert api.reads == ["argocd/fraud-detector"] * 4


def test_no_sync_within_the_timeout_holds_with_its_reason(
    kube: tuple[FakeKubeApi, ApplicationReader],
) -> None:
    api, reader = kube
    api.put_application(application(revision=OLDER, operation_revision=OLDER))

    gate = check_sync(reader, GATE, ENGINE, COMMITTED, COMMITTED + timedelta(minutes=10))
    assert gate.state is SyncState.TIMED_OUT
    assert gate.reason.startswith("holding: Argo CD has not applied commit 3f5e1c9 within 10m")
    assert "argocd/fraud-detector" in gate.reason


def test_degraded_after_the_engines_commit_is_reported_for_rollback(
    kube: tuple[FakeKubeApi, ApplicationReader],
) -> None:
    api, reader = kube
    api.put_application(application(revision=ENGINE, health="Degraded", operation_revision=ENGINE))

    gate = check_sync(reader, GATE, ENGINE, COMMITTED, COMMITTED + timedelta(minutes=3))
    assert gate.state is SyncState.DEGRADED
    assert gate.synced_at == datetime(2024, 5, 1, 10, 2, 30, tzinfo=UTC)


def test_a_missing_application_is_a_cluster_error(
    kube: tuple[FakeKubeApi, ApplicationReader],
) -> None:
    _, reader = kube
    with pytest.raises(ClusterError, match="argocd/fraud-detector not found") as caught:
        reader.read("argocd", "fraud-detector")
    assert caught.value.__cause__ is not None


def test_missing_rbac_is_a_cluster_error_naming_the_permission(
    kube: tuple[FakeKubeApi, ApplicationReader],
) -> None:
    api, reader = kube
    api.put_application(application(revision=ENGINE))
    api.forbidden_namespaces.add("argocd")
    with pytest.raises(ClusterError, match=r"needs get on applications\.argoproj\.io"):
        reader.read("argocd", "fraud-detector")


def test_a_wrong_token_is_a_cluster_error_and_the_token_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running_kube_api("right-token-" + secrets.token_hex(8)) as api:
        api.put_application(application(revision=ENGINE))
        good = ApplicationReader.from_kubeconfig(str(api.write_kubeconfig(tmp_path / "good")))
        assert good.read("argocd", "fraud-detector")["status"]["sync"]["revision"] == ENGINE
        good.close()
        api.token = "another-token"
        with pytest.raises(ClusterError, match="HTTP 401") as caught:
            ApplicationReader.from_kubeconfig(str(tmp_path / "good")).read(
                "argocd", "fraud-detector"
            )
    assert "right-token" not in caplog.text
    assert "right-token" not in str(caught.value)


def test_an_unreachable_api_server_is_a_cluster_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on that port any more: connection refused, quickly.
    config = tmp_path / "config"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    reader = ApplicationReader.from_kubeconfig(str(config))
    with pytest.raises(ClusterError, match="unreachable"):
        reader.read("argocd", "fraud-detector")
    reader.close()


def test_a_broken_kubeconfig_is_a_cluster_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="kubeconfig"):
        ApplicationReader.from_kubeconfig(str(tmp_path / "absent"))


def test_the_fake_refuses_applications_that_break_the_crd_schema(
    kube: tuple[FakeKubeApi, ApplicationReader],
) -> None:
    api, _ = kube
    broken = application(revision=ENGINE)
    del broken["status"]["sync"]["status"]
    with pytest.raises(jsonschema.ValidationError):
        api.put_application(broken)
