"""evaluate_sync: the Argo CD sync gate decided from literal Application documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policyengine.cluster.argocd import SyncState, evaluate_sync

ENGINE = "a" * 40
OLDER = "b" * 40
LATER = "c" * 40  # a human commit on top of the engine's
COMMITTED = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
FINISHED = "2024-05-01T10:02:30Z"
TIMEOUT = timedelta(minutes=10)
SOON = COMMITTED + timedelta(minutes=3)
LATE = COMMITTED + timedelta(minutes=10)


def app(
    revision: str | None = ENGINE,
    sync: str = "Synced",
    health: str = "Healthy",
    operation_revision: str | None = ENGINE,
    phase: str = "Succeeded",
    revisions: list[str] | None = None,
    health_message: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"sync": {"status": sync}, "health": {"status": health}}
    if revision is not None:
        status["sync"]["revision"] = revision
    if revisions is not None:
        status["sync"]["revisions"] = revisions
    if health_message:
        status["health"]["message"] = health_message
    if operation_revision is not None:
        status["operationState"] = {
            "operation": {"sync": {"revision": operation_revision}},
            "phase": phase,
            "startedAt": "2024-05-01T10:02:00Z",
            "finishedAt": FINISHED,
            "message": "one or more objects failed to apply" if phase == "Failed" else "done",
            "syncResult": {"revision": operation_revision},
        }
    return {"metadata": {"name": "fraud", "namespace": "argocd"}, "status": status}


SYNCED_AT = datetime(2024, 5, 1, 10, 2, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("case", "application", "now", "state", "synced_at", "reason_has"),
    [
        ("synced and healthy", app(), SOON, SyncState.SYNCED, SYNCED_AT, "Healthy"),
        ("still at the old commit", app(OLDER, operation_revision=OLDER), SOON,
         SyncState.WAITING, None, "not yet at the engine's commit aaaaaaa"),
        ("refreshed, not synced yet", app(sync="OutOfSync", operation_revision=OLDER), SOON,
         SyncState.WAITING, None, "OutOfSync at aaaaaaa"),
        ("synced, still progressing", app(health="Progressing"), SOON,
         SyncState.WAITING, None, "Progressing, not Healthy"),
        ("sync operation running", app(phase="Running"), SOON,
         SyncState.WAITING, None, "still syncing"),
        ("degraded after the engine's commit",
         app(health="Degraded", health_message="Deployment exceeded its progress deadline"),
         SOON, SyncState.DEGRADED, SYNCED_AT, "progress deadline"),
        ("degraded before the engine's commit is applied",
         app(OLDER, health="Degraded", operation_revision=OLDER), SOON,
         SyncState.WAITING, None, "not yet at"),
        ("degraded, refreshed but not synced", app(sync="OutOfSync", health="Degraded"), SOON,
         SyncState.WAITING, None, "OutOfSync"),
        ("failed sync, then the timeout", app(sync="OutOfSync", phase="Failed"), LATE,
         SyncState.TIMED_OUT, None, "failed to apply"),
        ("timeout at the old commit", app(OLDER, operation_revision=OLDER), LATE,
         SyncState.TIMED_OUT, None, "within 10m"),
        ("just before the timeout", app(OLDER), LATE - timedelta(seconds=1),
         SyncState.WAITING, None, "not yet at"),
        ("no status yet", {"metadata": {"name": "fraud", "namespace": "argocd"}}, SOON,
         SyncState.WAITING, None, "no status"),
        ("multi-source revisions contain the commit",
         app(None, revisions=[OLDER, ENGINE], operation_revision=None), SOON,
         SyncState.SYNCED, None, "Healthy"),
        ("synced without an operation of ours: time unknown",
         app(operation_revision=OLDER), SOON, SyncState.SYNCED, None, "Healthy"),
        ("synced late still counts", app(), LATE + timedelta(hours=1),
         SyncState.SYNCED, SYNCED_AT, "Healthy"),
        ("suspended is not healthy", app(health="Suspended"), LATE,
         SyncState.TIMED_OUT, None, "Suspended"),
    ],
)  # fmt: skip
def test_evaluate_sync(
    case: str,
    application: dict[str, Any],
    now: datetime,
    state: SyncState,
    synced_at: datetime | None,
    reason_has: str,
) -> None:
    gate = evaluate_sync(application, ENGINE, COMMITTED, TIMEOUT, now)
    assert (gate.state, gate.synced_at) == (state, synced_at), case
    assert reason_has in gate.reason, gate.reason
    assert "argocd/fraud" in gate.reason


def test_a_later_commit_containing_the_engines_counts_when_the_caller_says_so() -> None:
    later = app(LATER, operation_revision=LATER)

    assert evaluate_sync(later, ENGINE, COMMITTED, TIMEOUT, SOON).state is SyncState.WAITING
    gate = evaluate_sync(later, ENGINE, COMMITTED, TIMEOUT, SOON, accepted_revisions=[LATER])
    assert (gate.state, gate.synced_at) == (SyncState.SYNCED, SYNCED_AT)


def test_the_revision_comparison_ignores_case() -> None:
    gate = evaluate_sync(app(ENGINE.upper()), ENGINE, COMMITTED, TIMEOUT, SOON)
    assert gate.state is SyncState.SYNCED
