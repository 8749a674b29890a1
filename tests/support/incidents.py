"""Data builders for the decision tests: ModelMesh canary repositories with metric objectives,
simulated traffic under the real metric names, closed-loop releases (the fleet serves the weights
the engine last pushed, the engine decides every minute) and stored incidents for promtool.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from policyengine.metrics.prometheus import PrometheusProvider
from policyengine.metrics.provider import QueryResult
from policyengine.metrics.remote_write import RemoteWriteClient
from policyengine.policy.models import Provider, ReleasePolicy
from policyengine.reconciler import Engine, EngineSettings, PassResult, PolicyPlan
from policyengine.sim.exposition import Exposition, expose
from policyengine.sim.fleet import (
    Fleet,
    FleetState,
    IntervalResult,
    ModelProfile,
    VersionProfile,
)
from policyengine.sim.manifests import split_in_manifest
from policyengine.sim.writer import FleetWriter
from policyengine.values import Decision, TrafficSplit
from tests.support.gitrepos import make_remote
from tests.support.prometheus import Sample, openmetrics
from tests.support.release_repos import EXAMPLES, ReleaseRepo

T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
"""Simulated start of every release here (a Monday morning, far in the past for Prometheus)."""
MINUTE = timedelta(minutes=1)
POLICY = "fraud-detection/fraud-detector"
NAMESPACE, MODEL = POLICY.split("/")
BASELINE_LABEL = "fraud-detector-v1"
CANDIDATE_LABEL = "fraud-detector-v2"
SERVICE = "manifests/virtualservice.yaml"
STATUS = f".policyengine/status/{POLICY}.yaml"
UNUSED_URL = "http://prometheus.invalid:9090"
"""The URL in the policies: every test passes the real server with --prometheus / settings."""

ERROR_RATE = {"metric": "error-rate", "max": 0.02, "maxIncrease": 0.005}
SLOW_REQUESTS = {
    "name": "slow-requests",
    "metric": "latency",
    "threshold": 200,  # ms, a bucket bound of modelmesh_api_request_milliseconds
    "max": 0.05,
    "maxIncrease": 0.01,
}


def version(name: str, label: str, **behaviour: Any) -> VersionProfile:
    """A version as the fleet serves it; by default 0.5 % errors, p50 20 ms, p99 150 ms."""
    defaults: dict[str, Any] = {
        "error_rate": 0.005,
        "latency_p50_ms": 20.0,
        "latency_p99_ms": 150.0,
    }
    return VersionProfile(name, metric_label=label, **(defaults | behaviour))


def fleet(
    baseline: VersionProfile, candidate: VersionProfile, rps: float, model: str = MODEL
) -> Fleet:
    """One model, flat traffic (no diurnal swing: tests reason about exact minutes)."""
    profile = ModelProfile(
        POLICY, NAMESPACE, model, (baseline, candidate), rps=rps, diurnal_amplitude=0.0
    )
    return Fleet((profile,))


# -- repositories ------------------------------------------------------------------------------


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def canary_policy(
    objectives: Sequence[Mapping[str, Any]],
    *,
    metric_set: str = "modelmesh",
    steps: Sequence[int] = (10, 20, 30, 40, 50),
    min_dwell: str = "2m",
    baseline_label: str = BASELINE_LABEL,
    candidate_label: str = CANDIDATE_LABEL,
    analysis: Mapping[str, Any] | None = None,
) -> str:
    """examples/modelmesh-canary/policy.yaml with these objectives and metric set, no secrets
    (the provider's URL is overridden by every test), no Argo CD gate, commit write-back."""
    document = _yaml().load((EXAMPLES / "modelmesh-canary/policy.yaml").read_text("utf-8"))
    spec = document["spec"]
    spec["versions"][0]["metricLabel"] = baseline_label
    spec["versions"][1]["metricLabel"] = candidate_label
    spec["strategy"]["steps"] = list(steps)
    spec["strategy"]["minDwell"] = min_dwell
    spec["strategy"].pop("minSamples", None)
    spec["objectives"] = [dict(o) for o in objectives]
    spec["metrics"] = {"provider": {"url": UNUSED_URL}, "set": metric_set}
    spec.pop("argocd", None)
    spec.pop("writeBack", None)
    if analysis is not None:
        spec["analysis"] = dict(analysis)
    buffer = io.StringIO()
    _yaml().dump(document, buffer)
    return buffer.getvalue()


def release_files(policy_text: str) -> dict[str, str]:
    """Every file of examples/modelmesh-canary (v2 deployed at 0 %) with this policy."""
    folder = EXAMPLES / "modelmesh-canary"
    files = {
        path.relative_to(folder).as_posix(): path.read_text("utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    files["policy.yaml"] = policy_text
    return files


def release_repo(base: Path, policy_text: str) -> ReleaseRepo:
    """A bare remote holding the release, an engine cache folder and room for human clones."""
    base.mkdir(parents=True, exist_ok=True)
    remote = make_remote(base, release_files(policy_text))
    return ReleaseRepo(remote, base / "cache", base / "humans")


def policy_model(policy_text: str) -> ReleasePolicy:
    return ReleasePolicy.model_validate(YAML(typ="safe").load(policy_text))


class RecordingProvider:
    """The real PrometheusProvider, keeping each query the engine sent and what came back."""

    def __init__(self, real: PrometheusProvider) -> None:
        self.real = real
        self.answers: list[tuple[str, QueryResult]] = []

    @property
    def url(self) -> str:
        return self.real.url

    def query(self, promql: str, at: datetime) -> QueryResult:
        answer = self.real.query(promql, at)
        self.answers.append((promql, answer))
        return answer

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> QueryResult:
        answer = self.real.query_range(promql, start, end, step)
        self.answers.append((promql, answer))
        return answer

    def is_up(self) -> bool:
        return self.real.is_up()


# -- a live release: the fleet and the engine taking turns -------------------------------------


@dataclass
class LiveRelease:
    """The fleet serves what the remote's manifests say (Argo CD applied at once), remote-writes
    each minute into Prometheus, and the engine reconciles every minute on the real git remote."""

    repo: ReleaseRepo
    policy: ReleasePolicy
    fleet: Fleet
    prometheus_url: str
    seed: int = 7
    fleet_at: Callable[[int], Fleet] | None = None  # behaviour by minute (an incident mid-release)
    traffic_at: Callable[[TrafficSplit], TrafficSplit] | None = None  # what the cluster serves
    other_splits: Mapping[str, TrafficSplit] = field(default_factory=dict)  # other models' traffic
    passes: list[tuple[datetime, PassResult]] = field(default_factory=list)
    intervals: list[IntervalResult] = field(default_factory=list)  # what each minute served

    def __post_init__(self) -> None:
        self.providers: list[RecordingProvider] = []
        self.engine = Engine(
            EngineSettings(
                repo=str(self.repo.remote),
                cache_dir=self.repo.cache,
                prometheus_url=self.prometheus_url,
            ),
            provider_factory=self._provider,
        )
        self._sink = RemoteWriteClient(self.prometheus_url)
        self._writer = FleetWriter(
            self._sink, self.fleet, (Exposition.MODELMESH, Exposition.TRUSTYAI)
        )
        self._rng = random.Random(self.seed)
        self.state = self.fleet.start(T0)
        self._writer.write(self.state)
        self.minute = 0

    def _provider(self, policy: ReleasePolicy, url: str | None) -> RecordingProvider:
        source = policy.spec.metrics
        real = PrometheusProvider.from_settings(source.provider if source else Provider(), url)
        provider = RecordingProvider(real)
        self.providers.append(provider)
        return provider

    def answers(self) -> list[QueryResult]:
        """What Prometheus answered to every query the engine sent, oldest first."""
        return [answer for provider in self.providers for _, answer in provider.answers]

    @property
    def now(self) -> datetime:
        return T0 + self.minute * MINUTE

    def served_split(self) -> TrafficSplit:
        """The weights in the remote's manifests, as Argo CD would apply them."""
        in_git = split_in_manifest(self.policy, self.repo.file(SERVICE), SERVICE)
        return self.traffic_at(in_git) if self.traffic_at else in_git

    def reconcile(self) -> PolicyPlan:
        result = self.engine.reconcile_once(self.now)
        self.passes.append((self.now, result))
        [plan] = result.plan.policies
        return plan

    def serve_minute(self) -> None:
        current = self.fleet_at(self.minute) if self.fleet_at else self.fleet
        split = self.served_split()
        splits = {**self.other_splits, POLICY: split}
        self.state, served = current.advance(self.state, splits, self._rng)
        self.intervals.append(served)
        self._writer.write(self.state)
        self.minute += 1

    def run_until(self, decisions: Iterable[Decision], max_minutes: int) -> PolicyPlan:
        """Reconcile, serve a minute, and again, until one of `decisions` (or the cap)."""
        wanted = set(decisions)
        while True:
            plan = self.reconcile()
            if plan.outcome is not None and plan.outcome.decision in wanted:
                return plan
            if self.minute >= max_minutes:
                return plan
            self.serve_minute()

    def decisions(self) -> list[tuple[datetime, str, str]]:
        """(time, decision, weights) of every pass so far, for assertion messages."""
        found = []
        for at, result in self.passes:
            [plan] = result.plan.policies
            if plan.outcome is not None:
                found.append((at, str(plan.outcome.decision), plan.outcome.split.trailer()))
        return found

    def close(self) -> None:
        self._sink.close()
        for provider in self.providers:
            provider.real.close()


# -- a stored incident -------------------------------------------------------------------------


def scheduled_split(steps: Sequence[int], dwell_minutes: int) -> Callable[[int], TrafficSplit]:
    """The candidate weight a canary with these steps and dwell serves in each minute."""

    def at(minute: int) -> TrafficSplit:
        weight = steps[min(minute // dwell_minutes, len(steps) - 1)]
        return TrafficSplit.of({"v1": 100 - weight, "v2": weight})

    return at


@dataclass(frozen=True)
class Incident:
    """Traffic of a release whose candidate changes behaviour at `jump_minute`."""

    before: Fleet
    after: Fleet
    jump_minute: int
    minutes: int
    split_at: Callable[[int], TrafficSplit]
    seed: int = 11

    def states(self) -> list[FleetState]:
        """The fleet at T0, T0 + 1m, ... T0 + minutes."""
        rng = random.Random(self.seed)
        state = self.before.start(T0)
        states = [state]
        for minute in range(self.minutes):
            current = self.before if minute < self.jump_minute else self.after
            state, _ = current.advance(state, {POLICY: self.split_at(minute)}, rng)
            states.append(state)
        return states

    def openmetrics(self, expositions: Sequence[Exposition] = (Exposition.MODELMESH,)) -> str:
        """Every series at every minute, grouped by metric name, for promtool's backfill."""
        by_name: dict[str, list[Sample]] = {}
        for state in self.states():
            for sample in expose(self.before, state, expositions):
                by_name.setdefault(sample.name, []).append(
                    Sample(dict(sample.labels), state.at, sample.value)
                )
        text = []
        for name, samples in by_name.items():
            # OpenMetrics wants each series' samples together and in time order.
            samples.sort(key=lambda s: (sorted(s.labels.items()), s.at))
            text.append(openmetrics(name, samples))
        return "".join(text)
