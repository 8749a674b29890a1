"""The Argo CD sync gate: has the Application applied the engine's commit, synced and healthy?

`evaluate_sync` is pure (the Application document and `now` are passed in); `ApplicationReader`
is the shell that reads the Application through the Kubernetes API.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from policyengine.errors import ClusterError
from policyengine.policy.duration import format_duration, parse_duration
from policyengine.policy.models import ArgoCDGate

log = logging.getLogger(__name__)

GROUP = "argoproj.io"
VERSION = "v1alpha1"
PLURAL = "applications"


class SyncState(StrEnum):
    WAITING = "waiting"  # not yet synced to the engine's commit: do not measure
    SYNCED = "synced"  # the engine's commit is applied and healthy: measure from synced_at
    TIMED_OUT = "timed_out"  # no sync within the policy's timeout: hold, with the reason
    DEGRADED = "degraded"  # the engine's commit is applied and the app is Degraded: roll back


@dataclass(frozen=True)
class SyncGate:
    state: SyncState
    reason: str
    synced_at: datetime | None = None  # when the sync of the engine's commit finished, if known


def _short(revision: str | None) -> str:
    return revision[:7] if revision else "none"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _revisions(holder: Mapping[str, Any]) -> list[str]:
    """revision (single source) and revisions (multi-source) of a sync status or sync result."""
    found = [holder["revision"]] if isinstance(holder.get("revision"), str) else []
    many = holder.get("revisions")
    if isinstance(many, list):
        found += [r for r in many if isinstance(r, str)]
    return [r for r in found if r]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def evaluate_sync(
    application: Mapping[str, Any],
    engine_commit: str,
    committed_at: datetime,
    timeout: timedelta,
    now: datetime,
    *,
    accepted_revisions: Collection[str] = (),
) -> SyncGate:
    """Where the Application stands with respect to the engine's commit, as of `now`.

    accepted_revisions: later commits that contain the engine's commit (a person pushed on top of
    it); Argo CD then reports one of those, and the engine's change is applied all the same.
    """
    metadata = _mapping(application.get("metadata"))
    name = f"{metadata.get('namespace', '?')}/{metadata.get('name', '?')}"
    wanted = {engine_commit.lower(), *(r.lower() for r in accepted_revisions)}
    status = _mapping(application.get("status"))
    sync = _mapping(status.get("sync"))
    health = _mapping(status.get("health"))
    operation = _mapping(status.get("operationState"))
    sync_status = str(sync.get("status", "Unknown"))
    health_status = str(health.get("status", "Unknown"))
    revisions = _revisions(sync)
    at_engine_commit = any(r.lower() in wanted for r in revisions)

    sync_result = _mapping(operation.get("syncResult"))
    operation_is_ours = any(r.lower() in wanted for r in _revisions(sync_result))
    finished_at = _parse_time(operation.get("finishedAt")) if operation_is_ours else None
    phase = str(operation.get("phase", ""))
    commit = _short(engine_commit)

    if not status:
        waiting = f"Argo CD Application {name} reports no status yet"
    elif not at_engine_commit:
        seen = ", ".join(_short(r) for r in revisions) or "no revision"
        waiting = (
            f"Argo CD Application {name} is at {seen} ({sync_status}), not yet at the engine's "
            f"commit {commit}"
        )
    elif sync_status != "Synced":
        waiting = f"Argo CD Application {name} is {sync_status} at {commit}"
        if operation_is_ours and phase in ("Failed", "Error"):
            waiting += f"; its sync {phase.lower()}: {operation.get('message', 'no message')}"
    elif operation_is_ours and phase in ("Running", "Terminating"):
        waiting = f"Argo CD is still syncing {name} to {commit} ({phase})"
    elif health_status == "Degraded":
        message = health.get("message")
        detail = f": {message}" if message else ""
        return SyncGate(
            SyncState.DEGRADED,
            f"Argo CD Application {name} is Degraded after syncing the engine's commit "
            f"{commit}{detail}",
            finished_at,
        )
    elif health_status == "Healthy":
        # Without an operation for this commit (nothing to apply), the time is unknown: the
        # caller starts the dwell when it first sees the sync.
        when = f" at {finished_at.isoformat()}" if finished_at else ""
        return SyncGate(
            SyncState.SYNCED,
            f"Argo CD Application {name} synced {commit}{when} and is Healthy",
            finished_at,
        )
    else:
        waiting = f"Argo CD Application {name} synced {commit} but is {health_status}, not Healthy"

    if now - committed_at >= timeout:
        return SyncGate(
            SyncState.TIMED_OUT,
            f"holding: Argo CD has not applied commit {commit} within {format_duration(timeout)} "
            f"({waiting})",
        )
    return SyncGate(SyncState.WAITING, waiting)


class ApplicationReader:
    """Reads Argo CD Applications through the Kubernetes API (needs get on applications.argoproj.io)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self._api_client = api_client
        self._custom = client.CustomObjectsApi(api_client)

    @classmethod
    def from_kubeconfig(
        cls, config_file: str | None = None, context: str | None = None
    ) -> ApplicationReader:
        from kubernetes import config

        try:
            api_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=config_file, context=context
            )
        except (config.ConfigException, OSError) as exc:
            raise ClusterError(f"cannot load the kubeconfig: {exc}") from exc
        return cls(api_client)

    @classmethod
    def in_cluster(cls) -> ApplicationReader:
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException as exc:
            raise ClusterError(f"not running in a cluster: {exc}") from exc
        return cls(client.ApiClient(configuration))

    @classmethod
    def from_environment(cls, config_file: str | None = None) -> ApplicationReader:
        """In-cluster when running in a pod (and no kubeconfig is named), else the kubeconfig."""
        if config_file is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            return cls.in_cluster()
        return cls.from_kubeconfig(config_file)

    def read(self, namespace: str, name: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        where = f"Argo CD Application {namespace}/{name}"
        try:
            document = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=30
            )
        except ApiException as exc:
            if exc.status == 404:
                raise ClusterError(f"{where} not found") from exc
            if exc.status in (401, 403):
                raise ClusterError(
                    f"{where}: access denied (HTTP {exc.status}); the engine needs get on "
                    f"applications.argoproj.io in namespace {namespace}"
                ) from exc
            raise ClusterError(f"{where}: HTTP {exc.status} {exc.reason}") from exc
        except HTTPError as exc:
            raise ClusterError(f"{where}: the Kubernetes API is unreachable ({exc})") from exc
        if not isinstance(document, dict):
            raise ClusterError(
                f"{where}: the API answered {type(document).__name__}, not an object"
            )
        log.debug("argocd: read %s", where)
        return document

    def close(self) -> None:
        self._api_client.close()


def check_sync(
    reader: ApplicationReader,
    gate: ArgoCDGate,
    engine_commit: str,
    committed_at: datetime,
    now: datetime,
    *,
    accepted_revisions: Collection[str] = (),
) -> SyncGate:
    """Read the policy's Application and evaluate it; ClusterError when it cannot be read."""
    application = reader.read(gate.namespace, gate.application)
    return evaluate_sync(
        application,
        engine_commit,
        committed_at,
        parse_duration(gate.sync_timeout),
        now,
        accepted_revisions=accepted_revisions,
    )
