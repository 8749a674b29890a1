"""The Lease stand-in's concurrency rules and the ShardLeaser's behaviour on them, through the real
`kubernetes` client over loopback HTTP (no API server can run here; tests/support/fake_leases.py
enforces resourceVersion conflicts as the API server does).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from policyengine.controller.leases import LeaseApi, LeaseSettings, ShardLeaser, micro_time
from policyengine.controller.loop import Controller
from policyengine.controller.shards import shard_of
from policyengine.reconciler import Engine, EngineSettings
from tests.support.fake_leases import lease_client, running_lease_api
from tests.support.release_repos import ReleaseRepo, modelmesh_baseline_files


def _lease(name: str, holder: str, resource_version: str | None = None) -> dict[str, object]:
    metadata: dict[str, object] = {"name": name}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 10,
            "renewTime": micro_time(datetime.now(UTC)),
        },
    }


def test_the_stand_in_refuses_stale_writes_and_duplicates_like_the_api_server() -> None:
    with running_lease_api() as fake:
        api = client.CoordinationV1Api(lease_client(fake.url))
        created = api.create_namespaced_lease("ns", _lease("l", "a"))
        with pytest.raises(ApiException) as duplicate:
            api.create_namespaced_lease("ns", _lease("l", "b"))
        assert duplicate.value.status == 409 and "AlreadyExists" in str(duplicate.value.body)
        version = created.metadata.resource_version
        renewed = api.replace_namespaced_lease("l", "ns", _lease("l", "a", version))
        assert renewed.metadata.resource_version != version
        with pytest.raises(ApiException) as stale:  # b read before a's renewal
            api.replace_namespaced_lease("l", "ns", _lease("l", "b", version))
        assert stale.value.status == 409 and "Conflict" in str(stale.value.body)
        bad_time = _lease("m", "a")
        bad_time["spec"]["renewTime"] = "2026-11-25T10:00:00+00:00"  # type: ignore[index]
        with pytest.raises(ApiException) as invalid:
            api.create_namespaced_lease("ns", bad_time)
        assert invalid.value.status == 422
        assert fake.holders() == {"l": "a"}


def _leaser(url: str, identity: str, shards: int = 4) -> ShardLeaser:
    return ShardLeaser(
        LeaseApi(lease_client(url)),
        LeaseSettings("ns", identity, shards, duration=2, renew_every=0.25),
    )


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_shard_in_use_is_not_handed_over_until_the_pass_ends() -> None:
    with running_lease_api() as fake:
        first = _leaser(fake.url, "first")
        first.start()
        try:
            assert _wait_for(lambda: len(first.held_shards()) == 4, 5)
            scope = first.begin_pass()  # a pass on all four shards
            assert scope is not None
            second = _leaser(fake.url, "second")
            second.start()
            try:
                time.sleep(1.0)  # several ticks: the second replica is known, target 2 each
                assert len(first.held_shards()) == 4 and not second.held_shards()
                keys = [f"team/model-{i}" for i in range(40)]
                assert scope.may_push(keys)
                first.end_pass()
                assert _wait_for(lambda: len(second.held_shards()) == 2, 5)
                assert len(first.held_shards()) == 2
                # A push for a policy of a shard handed over is fenced.
                moved = next(k for k in keys if shard_of(k, 4) in second.held_shards())
                assert not scope.may_push([moved])
                assert scope.owns(moved)  # the old pass's view; the fence is what stops it
            finally:
                second.stop()
        finally:
            first.stop()
        assert set(fake.holders("policyengine-shard-").values()) == {""}


def test_a_replica_whose_renewals_stop_is_fenced_before_anyone_takes_over() -> None:
    with running_lease_api() as fake:
        lonely = _leaser(fake.url, "lonely", shards=1)
        lonely.start()
        assert _wait_for(lambda: lonely.held_shards() == {0}, 5)
        scope = lonely.begin_pass()
        assert scope is not None and scope.may_push(["a/b"])
        lonely.stop(release=False)  # paused: no renewals
        # After duration - renew period (1.75 s) the fence says no, even with nobody else around.
        assert _wait_for(lambda: not scope.may_push(["a/b"]), 3)
        assert fake.holders("policyengine-shard-") == {"policyengine-shard-0-of-1": "lonely"}


def test_a_standby_replica_is_ready_and_takes_over_when_the_holder_hands_back(
    tmp_path: Path,
) -> None:
    """One shard, two replicas (a rolling update): the new pod must be ready while the old one
    holds the Lease, or the update would wait forever; it reconciles once the old one leaves."""
    repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
    with running_lease_api() as fake:
        old, new = (_leaser(fake.url, name, shards=1) for name in ("old", "new"))
        controllers = {
            leaser.settings.identity: Controller(
                Engine(
                    EngineSettings(
                        repo=str(repo.remote), cache_dir=tmp_path / leaser.settings.identity
                    )
                ),
                3600,
                scopes=leaser,
            )
            for leaser in (old, new)
        }
        old.start()
        assert _wait_for(lambda: old.held_shards() == {0}, 5)
        new.start()
        try:
            assert _wait_for(new.participating, 5)
            assert controllers["old"].run_pass() is not None
            assert controllers["new"].run_pass() is None  # nothing held: no pass
            assert controllers["old"].ready() == (True, "ok")
            assert controllers["new"].ready() == (True, "ok (standby: no shard held)")
            old.stop(release=True)  # SIGTERM on the old pod
            assert _wait_for(lambda: new.held_shards() == {0}, 5)
            assert controllers["new"].run_pass() is not None
            assert controllers["new"].ready() == (True, "ok")
        finally:
            new.stop()
        # The Lease API gone: a replica cut off from it stops being ready.
        cut_off = _leaser("http://127.0.0.1:9", "cut-off", shards=1)
        controller = Controller(controllers["new"].engine, 3600, scopes=cut_off)
        assert controller.ready()[0] is False
