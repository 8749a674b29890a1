"""Scale-out on shard Leases: 3 replicas, 12 shards, 300 policies, one replica killed mid-pass.

No Kubernetes API server can run here: the Leases live in a loopback HTTP stand-in of the
`coordination.k8s.io/v1` Lease API (tests/support/fake_leases.py) that enforces resourceVersion
conflicts as the API server does (409 on a stale PUT, 409 AlreadyExists on a second POST). Each
replica talks to it through the real `kubernetes` client, with its own `ShardLeaser` (background
renew thread), its own `Controller` and `Engine` and its own clone of one real bare Git remote.

Passes run in rounds: in each round every live replica runs one pass (`Controller.run_pass`)
at the same simulated instant, concurrently. Every policy is a canary on time alone whose next
step is due every round, so every policy reconciled in a round is one engine commit on the remote
carrying `Policy`, `Evaluated-At` and `Holder` trailers.

The kill: in one round, replica C's pass is stopped at its fence (after planning and committing
its ~100 policies locally, before any push) and its Lease thread is stopped without releasing
anything, as a SIGKILL would leave it. Once A and B have taken C's shards and reconciled them, C's
frozen pass is let go: the fence must refuse its push (a paused process waking up after losing its
Leases). Lease duration 3 s, renewed every 0.5 s (the API takes whole seconds).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from policyengine.controller.leases import LeaseApi, LeaseSettings, ShardLeaser
from policyengine.controller.loop import Controller
from policyengine.controller.shards import shard_of
from policyengine.reconciler import Engine, EngineSettings, PassResult, PassScope
from tests.support.fake_leases import FakeLeaseApi, lease_client, running_lease_api
from tests.support.gitrepos import make_remote, remote_log
from tests.support.release_repos import trailers_of

REPLICAS, SHARDS, POLICIES = 3, 12, 300
DURATION, RENEW = 3, 0.5
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
STEPS = list(range(5, 100, 5))


def _policy(namespace: str, name: str) -> str:
    return f"""\
apiVersion: policyengine.io/v1alpha1
kind: ReleasePolicy
metadata:
  name: {name}
  namespace: {namespace}
spec:
  target:
    router: istio-modelmesh
    manifests:
      - path: models/{namespace}/{name}/virtualservice.yaml
    route: inference
  versions:
    - name: v1
      role: baseline
      metricLabel: {name}-v1
      backend:
        header: {name}-v1
    - name: v2
      role: candidate
      metricLabel: {name}-v2
      backend:
        header: {name}-v2
  strategy:
    type: canary
    steps: {STEPS}
    minDwell: 1m
"""


def _virtual_service(namespace: str, name: str) -> str:
    routes = "".join(
        f"""\
        - destination:
            host: modelmesh-serving.{namespace}.svc.cluster.local
            port:
              number: 8033
          headers:
            request:
              set:
                mm-vmodel-id: {name}-{version}
          weight: {weight}
"""
        for version, weight in (("v1", 100), ("v2", 0))
    )
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {namespace}
spec:
  hosts:
    - {name}.models.example.com
  http:
    - name: inference
      route:
{routes}"""


def _files() -> tuple[dict[str, str], list[str]]:
    files: dict[str, str] = {}
    keys = []
    for index in range(POLICIES):
        namespace, name = f"team-{index % 20:02d}", f"model-{index:03d}"
        files[f"models/{namespace}/{name}/policy.yaml"] = _policy(namespace, name)
        files[f"models/{namespace}/{name}/virtualservice.yaml"] = _virtual_service(namespace, name)
        keys.append(f"{namespace}/{name}")
    return files, keys


class FreezableScopes:
    """The replica's ShardLeaser as the loop sees it; `freeze_next` stops the next pass at its
    fence until `thaw` (the test's stand-in for a process killed or paused before pushing)."""

    def __init__(self, leaser: ShardLeaser) -> None:
        self.leaser = leaser
        self.freeze_next = False
        self.frozen = threading.Event()
        self.thawed = threading.Event()
        self.fence_answers: list[bool] = []

    def begin_pass(self) -> PassScope | None:
        scope = self.leaser.begin_pass()
        if scope is None or not self.freeze_next:
            return scope
        self.freeze_next = False

        def frozen_fence(keys: list[str]) -> bool:
            self.frozen.set()
            self.thawed.wait(60)
            answer = self.leaser.may_push(keys)
            self.fence_answers.append(answer)
            return answer

        return replace(scope, may_push=frozen_fence)

    def end_pass(self) -> None:
        self.leaser.end_pass()

    def participating(self) -> bool:
        return self.leaser.participating()


@dataclass
class Replica:
    name: str
    controller: Controller
    scopes: FreezableScopes
    now: list[datetime] = field(default_factory=lambda: [T0])
    alive: bool = True

    @property
    def leaser(self) -> ShardLeaser:
        return self.scopes.leaser


def _replica(name: str, remote: Path, cache: Path, fake: FakeLeaseApi) -> Replica:
    engine = Engine(
        EngineSettings(
            repo=str(remote),
            cache_dir=cache,
            author=("policyengine", "policyengine@users.noreply.local"),
            push_attempts=10,  # three replicas push to one branch at once: a few rejections
        )
    )
    leaser = ShardLeaser(
        LeaseApi(lease_client(fake.url)),
        LeaseSettings("policyengine", name, SHARDS, duration=DURATION, renew_every=RENEW),
    )
    scopes = FreezableScopes(leaser)
    clock = [T0]
    controller = Controller(engine, 3600, scopes=scopes, wall=lambda: clock[0])
    return Replica(name, controller, scopes, clock)


@dataclass
class Round:
    index: int
    started: float
    ended: float
    reconciled: dict[str, set[str]]  # replica -> policies its completed pass reconciled


def _run_round(index: int, replicas: list[Replica], now: datetime) -> Round:
    results: dict[str, PassResult | None] = {}

    def one(replica: Replica) -> None:
        replica.now[0] = now
        results[replica.name] = replica.controller.run_pass()

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    ended = time.monotonic()
    reconciled: dict[str, set[str]] = {}
    for name, result in results.items():
        if result is None or result.fenced or result.plan.exit_code:
            reconciled[name] = set()
            continue
        assert result.pushed, f"{name}: round {index} committed but did not push"
        reconciled[name] = {p.key for p in result.plan.policies if p.writes}
    return Round(index, started, ended, reconciled)


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.02)
    return False


def test_three_replicas_twelve_shards_one_killed_mid_pass(tmp_path: Path) -> None:
    files, keys = _files()
    remote = make_remote(tmp_path, files)
    with running_lease_api() as fake:
        replicas = [
            _replica(name, remote, tmp_path / f"cache-{name}", fake) for name in ("a", "b", "c")
        ]
        for replica in replicas:
            replica.leaser.start()
        try:
            # Balanced: 4 shards each (the first tick only announces a replica).
            assert _wait_for(lambda: all(len(r.leaser.held_shards()) == 4 for r in replicas), 10), [
                sorted(r.leaser.held_shards()) for r in replicas
            ]
            rounds: list[Round] = []
            now = T0
            rounds.append(_run_round(0, replicas, now))  # everyone alive
            now += timedelta(minutes=2)

            # Round 1: C is killed at its fence, mid-pass.
            a, b, c = replicas
            c_shards = c.leaser.held_shards()
            c.scopes.freeze_next = True
            c_thread = threading.Thread(target=c.controller.run_pass)
            c.now[0] = now
            c_thread.start()
            assert c.scopes.frozen.wait(60), "C never reached its fence"
            c.leaser.stop(release=False)  # killed: no renewals, nothing released
            killed_at = time.monotonic()
            c.alive = False
            rounds.append(_run_round(1, [a, b], now))
            now += timedelta(minutes=2)

            # A and B take C's shards once its Leases expire (read back from the stand-in's
            # record of accepted writes), then the next round reconciles every policy.
            def taken() -> float | None:
                names = {f"policyengine-shard-{shard}-of-{SHARDS}" for shard in c_shards}
                firsts: dict[str, float] = {}
                for write in fake.writes:
                    if write.name in names and write.at > killed_at and write.holder in ("a", "b"):
                        firsts.setdefault(write.name, write.at)
                return max(firsts.values()) if len(firsts) == len(names) else None

            assert _wait_for(lambda: taken() is not None, 30), "C's shards were never taken over"
            taken_at = taken()
            assert taken_at is not None
            # (the replicas record an acquisition when its answer arrives, just after the write)
            assert _wait_for(
                lambda: len(a.leaser.held_shards() | b.leaser.held_shards()) == SHARDS, 5
            )
            takeover = taken_at - killed_at
            rounds.append(_run_round(2, [a, b], now))
            pass_seconds = max(r.ended - r.started for r in rounds)

            # C wakes up after losing its Leases: the fence refuses, nothing is pushed.
            c.scopes.thawed.set()
            c_thread.join(timeout=60)
            assert c.scopes.fence_answers == [False]
        finally:
            for replica in replicas:
                if replica.alive:
                    replica.leaser.stop()
                replica.scopes.thawed.set()

        # Every round: no policy reconciled by two replicas.
        for round_ in rounds:
            seen = Counter(k for ks in round_.reconciled.values() for k in ks)
            assert max(seen.values()) == 1, f"round {round_.index}: {seen.most_common(3)}"
        # Before the kill, and in the first round that started after the takeover: each of the
        # 300 policies by exactly one replica.
        for round_ in (rounds[0], rounds[-1]):
            covered = sorted(k for ks in round_.reconciled.values() for k in ks)
            assert covered == sorted(keys), f"round {round_.index}: {len(covered)} of {POLICIES}"
        # In the kill round, exactly C's policies were left out.
        c_policies = {k for k in keys if shard_of(k, SHARDS) in c_shards}
        kill_round = rounds[1].reconciled
        assert set(keys) - (kill_round["a"] | kill_round["b"]) == c_policies
        # Takeover within the lease duration + one pass (in practice: + two renew ticks).
        assert takeover <= DURATION + pass_seconds, (takeover, pass_seconds)

    # The remote: one commit per (policy, round), each by the replica whose pass reconciled it.
    commits = [
        trailers_of(c.message) for c in remote_log(remote) if "Policy" in trailers_of(c.message)
    ]
    per_round = Counter((t["Policy"], t["Evaluated-At"]) for t in commits)
    double_pushes = sum(count - 1 for count in per_round.values())
    assert double_pushes == 0
    by_round = {T0 + timedelta(minutes=2 * r.index): r for r in rounds}
    for trailer in commits:
        round_ = by_round[datetime.fromisoformat(trailer["Evaluated-At"].replace("Z", "+00:00"))]
        assert trailer["Policy"] in round_.reconciled[trailer["Holder"]]
    assert not any(t["Holder"] == "c" for t in commits[-len(keys) :])
    assert len(commits) == sum(len(ks) for r in rounds for ks in r.reconciled.values())
    print(
        f"rounds {len(rounds)}, commits {len(commits)}, double pushes {double_pushes}, "
        f"takeover {takeover:.2f} s (lease {DURATION} s), longest round {pass_seconds:.2f} s, "
        f"kill round ended {rounds[1].ended - killed_at:.2f} s after the kill, "
        f"lease conflicts {fake.conflicts}, rounds {[round(r.ended - r.started, 2) for r in rounds]}"
    )
