"""The demo's imperative shell: repository, metrics backend, then pass after pass on simulated time
(the fleet serves a minute by the weights in Git, the metrics land, the engine reconciles), and at
the end `history` and the HTML report.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from policyengine.analysis.rewards import RewardAssessment
from policyengine.demo.backends import EmbeddedBackend, FleetMetrics, PrometheusBackend
from policyengine.demo.progress import ReleaseLine, format_line, release_line
from policyengine.demo.prometheus_process import find_prometheus
from policyengine.demo.repository import BRANCH, DemoRepository, prepare_keep_folder
from policyengine.demo.scenario import (
    EXAMPLE,
    DemoRelease,
    demo_fleet,
    demo_releases,
    example_files,
    repository_files,
)
from policyengine.demo.timelines import release_timeline
from policyengine.errors import InvalidPolicyError
from policyengine.gitops.history import release_history, render_history_text
from policyengine.policy.loader import LoadedPolicy, load_tree
from policyengine.policy.validation import check_repository
from policyengine.reconciler import Engine, EngineSettings, PassResult, manifest_path
from policyengine.report_html import render_report
from policyengine.sim.exposition import Exposition
from policyengine.sim.fleet import Fleet, FleetState, IntervalResult
from policyengine.sim.manifests import split_in_manifest
from policyengine.strategies import Phase, TrafficSplit

SIMULATED_START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
MAX_MINUTES = 180  # past the example's 2 h maxDuration: the engine concludes before this
TRAILING_MINUTES = 5  # served after the last conclusion, so the charts show where traffic went
EXPOSITIONS = (
    Exposition.MODELMESH,
    Exposition.VLLM,
    Exposition.BUSINESS,
)  # business: the A/B/n reward
ENGINE_AUTHOR = ("policyengine", "policyengine@users.noreply.local")
DEFAULT_EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_TERMINAL = (Phase.SUCCEEDED, Phase.FAILED, Phase.INCONCLUSIVE)


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 1
    keep: Path | None = None  # keep the Git repository (a standalone clone) here
    report: Path | None = None  # the HTML report; default: a new temporary folder
    examples: Path = DEFAULT_EXAMPLES
    prometheus: str | None = field(default_factory=find_prometheus)  # None: embedded backend
    max_minutes: int = MAX_MINUTES


@dataclass(frozen=True)
class DemoResult:
    outcomes: dict[str, str]  # policy key -> "promote", "rollback" or the phase it stopped in
    expected: dict[str, str]
    report: Path
    repository: Path | None
    minutes: int
    seconds: float
    backend: str  # the metrics backend's name

    @property
    def as_expected(self) -> bool:
        return self.outcomes == self.expected

    @property
    def exit_code(self) -> int:
        return 0 if self.as_expected else 1


Echo = Callable[[str], None]


def run_demo(
    options: DemoOptions, echo: Echo, on_line: Callable[[ReleaseLine], None] | None = None
) -> DemoResult:
    """Run the whole demo; Prometheus and temporary folders are cleaned up however it ends.

    `on_line` sees every release's line after every pass (the terminal's live bars)."""
    began = time.perf_counter()
    if options.keep is not None:
        prepare_keep_folder(options.keep)
    work = Path(tempfile.mkdtemp(prefix="policyengine-demo-"))
    backend: FleetMetrics | None = None
    try:
        releases = demo_releases()
        checkout = options.keep.resolve() if options.keep else work / "checkout"
        repository = DemoRepository.create(
            work / "remote.git",
            checkout,
            repository_files(
                example_files(options.examples),
                releases,
                {
                    r.example: example_files(options.examples, r.example)
                    for r in releases
                    if r.example != EXAMPLE
                },
            ),
            SIMULATED_START,
        )
        echo(f"GitOps repository: {repository.remote} (bare), working clone {checkout}")
        fleet = demo_fleet(releases)
        backend = _start_backend(options, work, fleet)
        if isinstance(backend, EmbeddedBackend):
            echo("!" * 78)
            echo(f"metrics: {backend.description}")
            echo("!" * 78)
        else:
            echo(f"metrics: {backend.description}")
        for release in releases:
            echo(f"release {release.key}: {release.story}")
        echo("")
        passes = _run_passes(options, repository, releases, fleet, backend, work, echo, on_line)
        result = _finish(options, repository, releases, passes, backend, began, echo)
        if options.keep is not None:
            repository.keep()
        return result
    finally:
        if backend is not None:
            backend.stop()
        shutil.rmtree(work, ignore_errors=True)


def _start_backend(options: DemoOptions, work: Path, fleet: Fleet) -> FleetMetrics:
    if options.prometheus is not None:
        prometheus = PrometheusBackend(options.prometheus, work / "prometheus", fleet, EXPOSITIONS)
        prometheus.start()
        return prometheus
    embedded = EmbeddedBackend(fleet, EXPOSITIONS)
    embedded.start()
    return embedded


@dataclass
class _Passes:
    """What the run accumulated: the intervals served, evidence by decision, the last pass."""

    intervals: list[IntervalResult] = field(default_factory=list)
    evidence: dict[tuple[str, datetime], str] = field(default_factory=dict)
    phases: dict[str, Phase] = field(default_factory=dict)
    rewards: dict[str, list[tuple[datetime, RewardAssessment]]] = field(default_factory=dict)
    minutes: int = 0


class FleetLoop:
    """The simulation's clock: each minute the fleet serves by what Git holds (the working clone
    synced as Argo CD would), the metrics land in the backend, then the engine may run a pass."""

    def __init__(
        self,
        repository: DemoRepository,
        fleet: Fleet,
        record: Callable[[FleetState], None],
        engine: Engine,
        seed: int,
        start: datetime = SIMULATED_START,
    ) -> None:
        self.repository = repository
        self.fleet = fleet
        self.engine = engine
        self._record = record
        self._rng = random.Random(seed)
        self._policies = load_policies(repository.checkout)
        self.state = fleet.start(start)
        self.intervals: list[IntervalResult] = []
        record(self.state)

    @property
    def now(self) -> datetime:
        return self.state.at

    def serve_minute(self) -> IntervalResult:
        self.repository.sync()
        self.state, interval = self.fleet.advance(
            self.state, _splits(self._policies, self.repository.checkout), self._rng
        )
        self._record(self.state)
        self.intervals.append(interval)
        return interval

    def reconcile(self) -> PassResult:
        return self.engine.reconcile_once(self.state.at)


def demo_engine(remote: Path, cache_dir: Path, prometheus_url: str) -> Engine:
    return Engine(
        EngineSettings(
            repo=str(remote),
            cache_dir=cache_dir,
            branch=BRANCH,
            prometheus_url=prometheus_url,
            author=ENGINE_AUTHOR,
        )
    )


def _run_passes(
    options: DemoOptions,
    repository: DemoRepository,
    releases: Sequence[DemoRelease],
    fleet: Fleet,
    backend: FleetMetrics,
    work: Path,
    echo: Echo,
    on_line: Callable[[ReleaseLine], None] | None = None,
) -> _Passes:
    engine = demo_engine(repository.remote, work / "engine", backend.url)
    loop = FleetLoop(repository, fleet, backend.record, engine, options.seed)
    candidates = {r.key: r.candidate.name for r in releases}
    passes = _Passes(loop.intervals)
    shown: dict[str, ReleaseLine] = {}
    width = max(len(key) for key in candidates)
    concluded_at: int | None = None
    for minute in range(1, options.max_minutes + 1):
        loop.serve_minute()
        result = loop.reconcile()
        passes.minutes = minute
        _remember(result, passes)
        for plan in result.plan.policies:
            line = release_line(plan, candidates.get(plan.key, ""))
            if on_line is not None:
                on_line(line)
            if line.differs_from(shown.get(plan.key)):
                echo(format_line(line, loop.now, minute, width))
                shown[plan.key] = line
        if concluded_at is None and all(passes.phases.get(k) in _TERMINAL for k in candidates):
            concluded_at = minute
        if concluded_at is not None and minute >= concluded_at + TRAILING_MINUTES:
            break
    return passes


def load_policies(root: Path) -> list[LoadedPolicy]:
    report = check_repository(load_tree([root], root), root)
    if report.errors:
        problems = "\n".join(str(issue) for issue in report.errors)
        raise InvalidPolicyError(f"the demo repository does not validate:\n{problems}")
    return list(report.policies)


def _splits(policies: Sequence[LoadedPolicy], root: Path) -> dict[str, TrafficSplit]:
    """What Argo CD would have applied: the split in each policy's manifest in the checkout."""
    splits: dict[str, TrafficSplit] = {}
    for item in policies:
        path = manifest_path(item, item.policy.spec.target.manifests[0], root)
        text = (root / path).read_text(encoding="utf-8")
        splits[item.key] = split_in_manifest(item.policy, text, path)
    return splits


def _remember(result: PassResult, passes: _Passes) -> None:
    for plan in result.plan.policies:
        if plan.status is not None:
            passes.phases[plan.key] = plan.status.phase
        if plan.writes:
            passes.evidence[(plan.key, result.plan.now)] = plan.evidence
        if plan.assessment.rewards is not None:
            passes.rewards.setdefault(plan.key, []).append(
                (result.plan.now, plan.assessment.rewards)
            )


def _finish(
    options: DemoOptions,
    repository: DemoRepository,
    releases: Sequence[DemoRelease],
    passes: _Passes,
    backend: FleetMetrics,
    began: float,
    echo: Echo,
) -> DemoResult:
    repository.sync()
    entries = release_history(repository.checkout, BRANCH)
    echo("")
    echo("$ policyengine history")
    echo(render_history_text(entries).rstrip("\n"))
    policies = {item.key: item.policy for item in load_policies(repository.checkout)}
    timelines = [
        release_timeline(
            policies[release.key],
            entries,
            passes.intervals,
            passes.evidence,
            release.story,
            passes.rewards.get(release.key, ()),
        )
        for release in releases
    ]
    simulated = timedelta(minutes=passes.minutes)
    html = render_report(
        timelines,
        title=(
            "policyengine demo: three canary releases and an A/B/n test on a simulated ModelMesh "
            "and vLLM fleet"
        ),
        generated_at=SIMULATED_START + simulated,
        preamble=(
            f"Seed {options.seed}; {passes.minutes} simulated minutes, one reconciler pass each.",
            f"Metrics: {backend.name}.",
        ),
    )
    report = options.report or Path(tempfile.mkdtemp(prefix="policyengine-report-")) / "demo.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(html, encoding="utf-8")
    decided = {entry.policy: entry.decision for entry in entries if entry.decision in _FINAL}
    outcomes = {r.key: decided.get(r.key, str(passes.phases.get(r.key, "idle"))) for r in releases}
    return DemoResult(
        outcomes=outcomes,
        expected={r.key: r.expected for r in releases},
        report=report,
        repository=options.keep.resolve() if options.keep else None,
        minutes=passes.minutes,
        seconds=time.perf_counter() - began,
        backend=backend.name,
    )


_FINAL = ("promote", "rollback")
