"""Shard Leases: which replica reconciles which policies, decided on Kubernetes itself.

Policies are spread over N shards by a stable hash (`shards.shard_of`). Each shard has a Lease
(`coordination.k8s.io/v1`) in the controller's namespace; the replica named in its
`holderIdentity` reconciles that shard's policies. Each replica also keeps a *member* Lease of its
own, so every replica knows how many are alive and takes a fair share: ceil(N / live replicas).

The rules, on every tick (a third of the lease duration):

- renew the member Lease and every held shard Lease (a PUT carrying the resourceVersion read: the
  API server refuses it with 409 Conflict when someone else wrote in between, and the shard is
  then lost);
- a Lease is *expired* when its resourceVersion has not changed for a whole lease duration on
  this replica's own clock (client-go's rule: no comparison of clocks between machines);
- holding more than the fair share: release the surplus, but never a shard a pass is using;
- holding less: acquire free or expired shards, each replica trying them in its own order
  (rendezvous hashing) so that replicas do not all race for the same one.

Fencing: before every push the engine asks `may_push` whether this replica still holds the shard
of every policy it committed for: the last renew must be recent on the local clock and a fresh
read of the Leases must still name this replica as the holder. The holder
identity goes into every commit as the `Holder` trailer.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from policyengine.controller.shards import lease_name, shard_of
from policyengine.errors import ClusterError
from policyengine.reconciler import PassScope

log = logging.getLogger("policyengine.controller")

GROUP_LABEL = "policyengine.io/lease-group"
ROLE_LABEL = "policyengine.io/lease-role"
HOLDER_TRAILER = "Holder"


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    identity: str  # this replica: the pod name
    shards: int
    duration: int = 15  # seconds; the Lease API takes whole seconds
    renew_every: float = 5.0  # seconds between ticks
    prefix: str = "policyengine"

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError("--shards must be at least 1")
        if self.duration < 1:
            raise ValueError("the lease duration must be at least 1 s")
        if not 0 < self.renew_every < self.duration:
            raise ValueError("leases must be renewed more often than they last")


@dataclass
class _Seen:
    """A Lease as this replica last read it, and when its resourceVersion last changed."""

    resource_version: str
    holder: str
    changed_at: float  # local monotonic clock


@dataclass
class _Held:
    resource_version: str
    renewed_at: float  # local monotonic time the renewing request was sent


@dataclass
class LeaseState:
    held: dict[int, _Held] = field(default_factory=dict)
    seen: dict[str, _Seen] = field(default_factory=dict)
    in_use: frozenset[int] = frozenset()
    ticks: int = 0
    last_good_tick: float | None = None  # local monotonic time the last round succeeded


class LeaseApi:
    """The four Lease calls, through the `kubernetes` client (the Lease API's own client)."""

    def __init__(self, api_client: Any, timeout: float = 5.0) -> None:
        from kubernetes import client

        # Any: the bodies are plain dicts (MicroTime formatted here), which the client sends as is.
        self._api: Any = client.CoordinationV1Api(api_client)
        self._timeout = timeout

    @classmethod
    def from_cluster(cls, kubeconfig: str | None, in_cluster: bool) -> LeaseApi:
        """The named kubeconfig; else the pod's service account in a cluster; else ~/.kube/config."""
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if kubeconfig is None and (in_cluster or os.environ.get("KUBERNETES_SERVICE_HOST")):
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError) as error:
            raise ClusterError(f"cannot reach the Kubernetes API for Leases: {error}") from error
        return cls(client.ApiClient(configuration))

    def list(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        answer = self._api.list_namespaced_lease(
            namespace, label_selector=selector, _request_timeout=self._timeout
        )
        return [_plain(item) for item in answer.items]

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return _plain(
            self._api.create_namespaced_lease(namespace, body, _request_timeout=self._timeout)
        )

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return _plain(
            self._api.replace_namespaced_lease(
                name, namespace, body, _request_timeout=self._timeout
            )
        )


def _plain(lease: Any) -> dict[str, Any]:
    """The fields of a V1Lease this module reads."""
    spec = lease.spec
    return {
        "name": lease.metadata.name,
        "resourceVersion": lease.metadata.resource_version or "",
        "labels": dict(lease.metadata.labels or {}),
        "holder": (spec.holder_identity or "") if spec else "",
        "transitions": (spec.lease_transitions or 0) if spec else 0,
    }


def _conflict(error: Exception) -> bool:
    return getattr(error, "status", None) == 409


def micro_time(instant: datetime) -> str:
    """MicroTime as the API server parses it: RFC 3339 with exactly six fractional digits."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def member_lease_name(prefix: str, identity: str) -> str:
    """A DNS-1123 name for the member Lease of `identity` (a hash suffix keeps it unique)."""
    clean = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")[:40] or "replica"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:8]
    return f"{prefix}-member-{clean}-{digest}"


class ShardLeaser:
    """Takes, renews and releases shard Leases on a background thread; the loop's ScopeSource."""

    def __init__(
        self,
        api: LeaseApi,
        settings: LeaseSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        self.api = api
        self.settings = settings
        self._clock = clock
        self._wall = wall
        self._on_change = on_change
        self._lock = threading.Lock()
        self.state = LeaseState()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._member = member_lease_name(settings.prefix, settings.identity)

    # -- the background thread --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"leases-{self.settings.identity}", daemon=True
        )
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop renewing; `release` hands the shards back at once (a clean shutdown) instead of
        letting them expire."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if release:
            with self._lock:
                held = dict(self.state.held)
            for shard, lease in held.items():
                self._release(shard, lease)
            seen = self.state.seen.get(self._member)
            if seen is not None:  # the others rebalance at once instead of after expiry
                body = self._body(self._member, "member", None, seen.resource_version)
                try:
                    self.api.replace(self.settings.namespace, self._member, body)
                except Exception as error:
                    log.info("releasing the member Lease failed (%s); it will expire", error)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as error:  # the API down: keep what is still valid, try again
                log.warning("lease tick failed: %s", error)
            self._stop.wait(self.settings.renew_every)

    # -- one round ---------------------------------------------------------------------------

    def tick(self) -> None:
        s = self.settings
        now = self._clock()
        self._renew_member(now)
        leases = self.api.list(s.namespace, f"{GROUP_LABEL}={s.prefix}")
        shard_leases: dict[str, dict[str, Any]] = {}
        members: list[str] = []
        for lease in leases:
            self._observe(lease, now)
            role = lease["labels"].get(ROLE_LABEL)
            alive = lease["holder"] and not self._expired(lease)
            if role == "member" and (lease["name"] == self._member or alive):
                members.append(lease["name"])
            elif role == "shard":
                shard_leases[lease["name"]] = lease
        if self._member not in members:
            members.append(self._member)
        self.state.last_good_tick = now
        target = math.ceil(s.shards / len(members))
        with self._lock:
            self.state.ticks += 1
            first_tick = self.state.ticks == 1
            held = dict(self.state.held)
            in_use = self.state.in_use
        for shard in held:
            listed = shard_leases.get(self._name(shard))
            if listed is None or listed["holder"] != s.identity:
                self._lose(shard, "another replica holds it now")
                continue
            self._renew(shard, listed)
        with self._lock:
            held = dict(self.state.held)
        surplus = len(held) - target
        for shard in sorted(held, key=self._preference, reverse=True):
            if surplus <= 0:
                break
            if shard not in in_use:
                self._release(shard, held[shard])
                surplus -= 1
        # The first tick only announces this replica: others see it before it takes anything,
        # so a replica starting a moment before the others does not grab every shard.
        if first_tick:
            return
        want = target - len(self.state.held)
        for shard in sorted(range(s.shards), key=self._preference):
            if want <= 0:
                break
            if shard in self.state.held:
                continue
            listed = shard_leases.get(self._name(shard))
            if listed is not None and listed["holder"] and not self._expired(listed):
                continue
            if self._acquire(shard, listed):
                want -= 1

    def _name(self, shard: int) -> str:
        return lease_name(self.settings.prefix, shard, self.settings.shards)

    def _preference(self, shard: int) -> str:
        return hashlib.sha256(f"{self.settings.identity}/{shard}".encode()).hexdigest()

    def _observe(self, lease: dict[str, Any], now: float) -> None:
        seen = self.state.seen.get(lease["name"])
        if seen is None or seen.resource_version != lease["resourceVersion"]:
            self.state.seen[lease["name"]] = _Seen(lease["resourceVersion"], lease["holder"], now)

    def _expired(self, lease: dict[str, Any]) -> bool:
        seen = self.state.seen.get(lease["name"])
        if seen is None:
            return False
        return self._clock() - seen.changed_at > self.settings.duration

    def _body(
        self, name: str, role: str, holder: str | None, resource_version: str | None, **spec: Any
    ) -> dict[str, Any]:
        labels = {GROUP_LABEL: self.settings.prefix, ROLE_LABEL: role}
        if role == "shard":
            labels["policyengine.io/shards"] = str(self.settings.shards)
        metadata: dict[str, Any] = {"name": name, "namespace": self.settings.namespace}
        metadata["labels"] = labels
        if resource_version:
            metadata["resourceVersion"] = resource_version
        body_spec: dict[str, Any] = {"leaseDurationSeconds": self.settings.duration, **spec}
        if holder is not None:
            body_spec["holderIdentity"] = holder
            body_spec["renewTime"] = micro_time(self._wall())
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": body_spec,
        }

    def _renew_member(self, now: float) -> None:
        seen = self.state.seen.get(self._member)
        body = self._body(
            self._member,
            "member",
            self.settings.identity,
            seen.resource_version if seen else None,
        )
        try:
            if seen is None:
                try:
                    answer = self.api.create(self.settings.namespace, body)
                except Exception as error:
                    if not _conflict(error):
                        raise
                    return  # left over from an earlier run of this pod: updated next tick
            else:
                answer = self.api.replace(self.settings.namespace, self._member, body)
        except Exception as error:
            if _conflict(error):
                return  # read again on this tick's list, renewed on the next
            raise
        self.state.seen[self._member] = _Seen(answer["resourceVersion"], answer["holder"], now)

    def _renew(self, shard: int, listed: dict[str, Any]) -> None:
        sent = self._clock()
        body = self._body(
            self._name(shard),
            "shard",
            self.settings.identity,
            listed["resourceVersion"],
            leaseTransitions=listed["transitions"],
        )
        try:
            answer = self.api.replace(self.settings.namespace, self._name(shard), body)
        except Exception as error:
            if _conflict(error):
                self._lose(shard, "renewal conflicted with another writer")
                return
            raise
        with self._lock:
            if shard in self.state.held:
                self.state.held[shard] = _Held(answer["resourceVersion"], sent)
        self.state.seen[self._name(shard)] = _Seen(
            answer["resourceVersion"], answer["holder"], sent
        )

    def _acquire(self, shard: int, listed: dict[str, Any] | None) -> bool:
        sent = self._clock()
        name = self._name(shard)
        now = micro_time(self._wall())
        try:
            if listed is None:
                body = self._body(
                    name, "shard", self.settings.identity, None, acquireTime=now, leaseTransitions=0
                )
                answer = self.api.create(self.settings.namespace, body)
            else:
                body = self._body(
                    name,
                    "shard",
                    self.settings.identity,
                    listed["resourceVersion"],
                    acquireTime=now,
                    leaseTransitions=listed["transitions"] + 1,
                )
                answer = self.api.replace(self.settings.namespace, name, body)
        except Exception as error:
            if _conflict(error):
                return False  # another replica was first
            raise
        with self._lock:
            self.state.held[shard] = _Held(answer["resourceVersion"], sent)
            count = len(self.state.held)
        self.state.seen[name] = _Seen(answer["resourceVersion"], answer["holder"], sent)
        log.info("%s acquired shard %d of %d", self.settings.identity, shard, self.settings.shards)
        if self._on_change is not None:
            self._on_change(count)
        return True

    def _release(self, shard: int, held: _Held) -> None:
        with self._lock:
            self.state.held.pop(shard, None)
            count = len(self.state.held)
        body = self._body(self._name(shard), "shard", None, held.resource_version)
        try:
            self.api.replace(self.settings.namespace, self._name(shard), body)
            log.info("%s released shard %d", self.settings.identity, shard)
        except Exception as error:  # it will expire instead
            log.info("releasing shard %d failed (%s); it will expire", shard, error)
        if self._on_change is not None:
            self._on_change(count)

    def _lose(self, shard: int, why: str) -> None:
        with self._lock:
            self.state.held.pop(shard, None)
            count = len(self.state.held)
        log.warning("%s lost shard %d: %s", self.settings.identity, shard, why)
        if self._on_change is not None:
            self._on_change(count)

    # -- what the loop asks --------------------------------------------------------------------

    def held_shards(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self.state.held)

    def begin_pass(self) -> PassScope | None:
        with self._lock:
            shards = frozenset(self.state.held)
            self.state.in_use = shards
        if not shards:
            return None
        count = self.settings.shards

        def owns(key: str) -> bool:
            return shard_of(key, count) in shards

        return PassScope(
            owns=owns,
            may_push=self.may_push,
            trailers={HOLDER_TRAILER: self.settings.identity},
        )

    def end_pass(self) -> None:
        with self._lock:
            self.state.in_use = frozenset()

    def participating(self) -> bool:
        last = self.state.last_good_tick
        return last is not None and self._clock() - last < self.settings.duration

    def may_push(self, keys: Sequence[str]) -> bool:
        """The fence: every shard of `keys` renewed recently and still ours on the API server."""
        s = self.settings
        needed = {shard_of(key, s.shards) for key in keys}
        # The margin leaves time for the push itself: a renewal older than this may expire
        # (on another replica's clock) while the push is on its way.
        valid_for = s.duration - s.renew_every
        with self._lock:
            held = {shard: self.state.held.get(shard) for shard in needed}
        now = self._clock()
        for shard, lease in held.items():
            if lease is None or now - lease.renewed_at > valid_for:
                log.warning("fence: shard %d is no longer held by %s", shard, s.identity)
                return False
        try:
            listed = {
                lease["name"]: lease
                for lease in self.api.list(s.namespace, f"{GROUP_LABEL}={s.prefix}")
            }
        except Exception as error:
            log.warning("fence: cannot read the Leases (%s); not pushing", error)
            return False
        # The holder is enough: only the holder writes its own name into a Lease, and a replica
        # that lost a shard and took it again would know (its `held` says so).
        for shard in held:
            current = listed.get(self._name(shard))
            if current is None or current["holder"] != s.identity:
                log.warning("fence: shard %d changed hands; not pushing", shard)
                return False
        return True
