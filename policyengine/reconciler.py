"""One pass of the engine: load → observe → assess → decide → render → write.

The plan (steps 1-5) is data: `plan_pass` builds a frozen `PassPlan` that `plan` prints and
`Engine.reconcile_once` applies. A broken policy, or a router failing on one manifest, is reported
and skipped; every other policy still reconciles.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from policyengine.analysis.assessment import assess
from policyengine.analysis.observations import DataStatus, Observations
from policyengine.analysis.rewards import with_rewards
from policyengine.analysis.verdict import NO_OBJECTIVES, Assessment
from policyengine.cache import DocumentCache
from policyengine.documents import find_document, load_documents
from policyengine.errors import (
    GitError,
    GitUnreachableError,
    PolicyEngineError,
    RenderError,
    StorageObjectMissingError,
    StorageUnavailableError,
)
from policyengine.gates.policy_gate import OPEN_GATE, PolicyGate, gated_outcome, gated_status
from policyengine.gitops.commits import engine_commit_message, format_rfc3339
from policyengine.gitops.environment import git_environment
from policyengine.gitops.repo import GitCredentials, Workspace
from policyengine.gitops.signing import CommitSigner, SignatureVerifier
from policyengine.gitops.status import STATUS_DIR, dump_status, status_path
from policyengine.golden.archive import archive_evidence
from policyengine.golden.gate import GateResult, run_golden_gate, run_payload_drift
from policyengine.limits import UnsafeFileError, check_writable, read_repository_text
from policyengine.metrics.catalog import metrics_of
from policyengine.metrics.collector import MetricNeed, collect, needs_of
from policyengine.metrics.prometheus import PrometheusProvider
from policyengine.metrics.provider import MetricsProvider
from policyengine.metrics.settings import ProviderSettings
from policyengine.policy.loader import LoadedPolicy, PolicyIssue
from policyengine.policy.models import ManifestRef, MetricSet, Provider, ReleasePolicy
from policyengine.report import evidence_markdown
from policyengine.routers import router_for
from policyengine.storage.s3 import S3Location
from policyengine.strategies import Decision, Outcome, Phase, TrafficSplit, apply, begin, decide
from policyengine.strategies.splits import baseline_only
from policyengine.strategies.status import ReleaseStatus

if TYPE_CHECKING:
    from policyengine.gates.gatekeeper import Gatekeeper
    from policyengine.gitops.pullrequests import ProposalReport

log = logging.getLogger("policyengine")

# Decisions that change nothing are not written: Git only records what moved.
_QUIET = (Decision.HOLD, Decision.DONE)


@dataclass(frozen=True)
class PolicyPlan:
    """What one policy's pass decided, and the file contents that carry it."""

    key: str
    path: str  # the policy file, repo-relative
    outcome: Outcome | None = None
    assessment: Assessment = NO_OBJECTIVES
    current: TrafficSplit | None = None
    changes: Mapping[str, str] = field(default_factory=dict)  # repo path -> new text
    diffs: Mapping[str, str] = field(default_factory=dict)  # repo path -> unified diff
    message: str = ""  # the commit message, when there are changes
    error: str | None = None  # the policy was skipped: why
    unreachable: str | None = None  # a dependency could not be reached: which
    status: ReleaseStatus | None = None  # the status after this decision
    gate_evidence: str = ""  # what a gate measured (load test, golden test), after the assessment

    @property
    def writes(self) -> bool:
        return bool(self.changes)

    @property
    def evidence(self) -> str:
        evidence = evidence_markdown(self.assessment)
        if not self.gate_evidence:
            return evidence
        return (
            f"{evidence.rstrip()}\n\n{self.gate_evidence}"
            if evidence.strip()
            else self.gate_evidence
        )


@dataclass(frozen=True)
class PassPlan:
    now: datetime
    head: str
    policies: tuple[PolicyPlan, ...]
    load_errors: tuple[PolicyIssue, ...] = ()
    notices: tuple[str, ...] = ()  # what the pass tells beside its decisions (orphaned releases)

    @property
    def exit_code(self) -> int:
        """0 all well, 3 a dependency unreachable, 1 a policy failed (the worse of the two wins)."""
        if any(p.unreachable for p in self.policies):
            return 3
        if self.load_errors or any(p.error for p in self.policies):
            return 1
        return 0


ProviderFactory = Callable[[ReleasePolicy], MetricsProvider]
# The golden gate and payload-drift check of one policy in its current status (golden/gate.py).
GoldenChecks = Callable[[ReleasePolicy, ReleaseStatus], GateResult]


@dataclass
class ManifestTexts:
    """The texts of manifest files as the pass has rendered them so far.

    Two policies may edit different routes of one file: each renders on top of the text the previous
    one produced, so commits made in plan order carry every change.
    """

    root: Path
    texts: dict[str, str] = field(default_factory=dict)
    originals: dict[str, str] = field(default_factory=dict)

    def get(self, path: str) -> str:
        if path not in self.texts:
            # Links, size, UTF-8, alias bombs and depth are refused here, as that policy's error.
            text = read_repository_text(self.root, path)
            self.texts[path] = text
            self.originals[path] = text
        return self.texts[path]


def plan_pass(
    root: Path,
    loaded: Sequence[LoadedPolicy],
    metric_sets: Mapping[str, MetricSet],
    provider_for: ProviderFactory,
    now: datetime,
    head: str = "",
    load_errors: Sequence[PolicyIssue] = (),
    gates: Mapping[str, PolicyGate] | None = None,
    cache: DocumentCache | None = None,
    trailers: Mapping[str, str] | None = None,
    golden_checks: GoldenChecks | None = None,
    known_keys: Iterable[str] | None = None,
    owns: Callable[[str], bool] | None = None,
) -> PassPlan:
    """Decide every policy as of `now` from the files under `root`; writes nothing.

    `known_keys`: every valid policy of the repository (a sharded pass decides only those it
    `owns`); a release whose key is not among them is reported as abandoned.

    `gates`: what Argo CD and the forge said per policy (gates/gatekeeper.py), applied before deciding.
    `cache`: documents parsed in earlier passes (the engine's); without it every file is read.
    `trailers`: added to every commit message (a sharded replica's holder identity).
    `golden_checks`: runs a policy's golden gate (before its first step) or payload-drift check.
    """
    cache = cache or DocumentCache()
    gates = gates or {}
    manifests = ManifestTexts(root)
    observed: dict[str, tuple[ReleaseStatus, TrafficSplit]] = {}
    failures: dict[str, PolicyPlan] = {}
    abandoned: dict[str, str] = {}  # policy key -> what became of its previous release
    for item in loaded:
        try:
            current = _read_split(item, manifests, cache)
            check_writable(root, status_path(item.policy.key))
            previous = cache.status(root, status_path(item.policy.key))
            status = begin(item.policy, previous, current, now)
            if previous is not None and previous.release_id != status.release_id:
                abandoned[item.key] = _abandoned(previous)
            gate = gates.get(item.key, OPEN_GATE)
            if gate.error is not None:
                failures[item.key] = PolicyPlan(
                    item.key, item.path, current=current, error=gate.error
                )
                continue
            observed[item.key] = (gated_status(status, gate), current)
        except PolicyEngineError as error:
            failures[item.key] = PolicyPlan(item.key, item.path, error=str(error))
        except Exception as error:  # a bug or a library's surprise must not stop the others
            log.exception("policy %s failed unexpectedly", item.key)
            failures[item.key] = PolicyPlan(item.key, item.path, error=_internal(error))

    observations = _observe(loaded, observed, metric_sets, provider_for, now, gates, failures)
    golden: dict[str, GateResult] = {}
    for item in loaded:
        if golden_checks is None or item.key not in observed or item.policy.spec.golden is None:
            continue
        status, _ = observed[item.key]
        if status.phase is not Phase.PROGRESSING or item.policy.spec.paused:
            continue
        try:
            golden[item.key] = golden_checks(item.policy, status)
        except PolicyEngineError as error:
            failures[item.key] = PolicyPlan(item.key, item.path, error=str(error))
        except Exception as error:  # an object store's surprise fails this policy alone
            log.exception("policy %s failed unexpectedly", item.key)
            failures[item.key] = PolicyPlan(item.key, item.path, error=_internal(error))

    plans: list[PolicyPlan] = []
    for item in loaded:
        if item.key in failures:
            plans.append(failures[item.key])
            continue
        status, current = observed[item.key]
        try:
            plans.append(
                _plan_policy(
                    item,
                    status,
                    current,
                    observations.get(item.key),
                    metric_sets,
                    manifests,
                    now,
                    gates.get(item.key, OPEN_GATE),
                    trailers or {},
                    golden.get(item.key),
                    abandoned.get(item.key, ""),
                )
            )
        except PolicyEngineError as error:
            plans.append(PolicyPlan(item.key, item.path, current=current, error=str(error)))
        except Exception as error:  # a bug in one policy's path must not stop the others
            log.exception("policy %s failed unexpectedly", item.key)
            plans.append(PolicyPlan(item.key, item.path, current=current, error=_internal(error)))
    keys = set(known_keys) if known_keys is not None else {item.key for item in loaded}
    notices: list[str] = []
    for key, notice, status in _orphaned_releases(root, cache, keys, bool(load_errors)):
        if owns is not None and not owns(key):
            continue
        notices.append(notice)
        # Acted on only when every policy loaded: an invalid policy is not a deleted one.
        if not load_errors and ABANDONED_AT not in status.extra:
            plans.append(_orphan_plan(key, status, manifests, now, trailers or {}))
    return PassPlan(
        now=now,
        head=head,
        policies=tuple(plans),
        load_errors=tuple(load_errors),
        notices=tuple(notices),
    )


def _orphaned_releases(
    root: Path, cache: DocumentCache, keys: set[str], errors: bool
) -> list[tuple[str, str, ReleaseStatus]]:
    """Releases under way whose policy is no longer among the valid ones: said every pass, so
    that a deleted policy never leaves a half-done split looking managed."""
    if cache.entries is None:
        return []
    notices = []
    prefix = STATUS_DIR + "/"
    for path in sorted(cache.entries):
        if not path.startswith(prefix) or not path.endswith(".yaml"):
            continue
        key = path[len(prefix) : -len(".yaml")]
        if key in keys or key.count("/") != 1:
            continue
        try:
            status = cache.status(root, path)
        except PolicyEngineError:
            continue
        if status is None or status.phase is not Phase.PROGRESSING:
            continue
        why = (
            "no valid policy defines it (deleted, or failing validation above)"
            if errors
            else "its policy was deleted"
        )
        notices.append(
            (
                key,
                f"{key}: the release at {status.split.trailer()} is abandoned: {why}; "
                + (
                    "the weights go back to the baseline (onDelete: rollback)"
                    if _on_delete(status).get("mode") == "rollback"
                    else "the weights are left as they are (restore the policy to resume, or set "
                    "them by hand)"
                ),
                status,
            )
        )
    return notices


ON_DELETE = "onDelete"
"""Status `extra` key: the policy's onDelete: rollback, with what a rollback needs once the policy
file is gone (the policy as validated, its manifests as repository paths), as JSON."""

ABANDONED_AT = "abandonedAt"
"""Status `extra` key: when the engine committed that a deleted policy's release was left as is
(so that it is committed once, not every pass)."""


def _on_delete(status: ReleaseStatus) -> dict[str, object]:
    try:
        record = json.loads(status.extra.get(ON_DELETE, "{}"))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _on_delete_record(item: LoadedPolicy, root: Path) -> str | None:
    """What the status keeps so that a deleted policy can still be rolled back (None: leave)."""
    policy = item.policy
    if policy.spec.on_delete != "rollback":
        return None
    return json.dumps(
        {
            "mode": "rollback",
            "policy": policy.model_dump(mode="json", by_alias=True, exclude_unset=True),
            "manifests": [
                {"path": manifest_path(item, ref, root), "kind": ref.kind, "name": ref.name}
                for ref in policy.spec.target.manifests
            ],
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def _orphan_plan(
    key: str,
    status: ReleaseStatus,
    manifests: ManifestTexts,
    now: datetime,
    trailers: Mapping[str, str],
) -> PolicyPlan:
    """The one commit a deleted policy's release gets: its rollback (onDelete: rollback), or the
    note that it was abandoned with the weights as they are (leave)."""
    status_file = status_path(key)
    record = _on_delete(status)
    try:
        if record.get("mode") == "rollback":
            policy = ReleasePolicy.model_validate(record["policy"])
            refs = [
                (str(ref["path"]), ref.get("kind"), ref.get("name"))
                for ref in record["manifests"]  # type: ignore[attr-defined]
            ]
            split = baseline_only(policy)
            outcome = Outcome(
                Decision.ROLLBACK,
                "the policy was deleted; onDelete rollback",
                split,
                Phase.FAILED,
                status.step,
            )
            changes = _render_at(policy, refs, split, manifests)
            after = apply(status, outcome, now)
        else:
            outcome = Outcome(
                Decision.HOLD,
                f"release abandoned at {status.split.trailer()}: the policy was deleted; weights "
                "left as they are",
                status.split,
                status.phase,
                status.step,
            )
            changes = {}
            after = replace(
                apply(status, outcome, now),
                extra={**status.extra, ABANDONED_AT: format_rfc3339(now)},
            )
    except PolicyEngineError as error:
        return PolicyPlan(key, status_file, current=status.split, error=str(error))
    except (KeyError, TypeError, ValueError) as error:  # a status record edited by hand
        return PolicyPlan(
            key,
            status_file,
            current=status.split,
            error=f"{status_file}: extra.{ON_DELETE}: {error}",
        )
    changes[status_file] = dump_status(after)
    message = engine_commit_message(
        policy_key=key,
        decision=str(outcome.decision),
        weights_trailer=outcome.split.trailer(),
        reason=outcome.reason,
        evaluated_at=now,
        evidence_markdown="",
        extra_trailers={"Release-Id": status.release_id, **trailers},
    )
    return PolicyPlan(
        key,
        status_file,
        outcome=outcome,
        current=status.split,
        changes=changes,
        diffs={
            path: _diff(path, manifests.originals.get(path, ""), text)
            for path, text in changes.items()
            if path != status_file
        },
        message=message,
        status=after,
    )


def manifest_path(item: LoadedPolicy, ref: ManifestRef, repo_root: Path) -> str:
    """A manifest's path in the repository: from the policy's config root (the folder holding
    `.policyengine/`, else the repository root), or from the policy's folder when it starts ./"""
    base = item.file.parent if ref.path.startswith("./") else item.root
    absolute = os.path.normpath(os.path.join(os.path.abspath(base), ref.path))
    return Path(os.path.relpath(absolute, os.path.abspath(repo_root))).as_posix()


def _read_split(item: LoadedPolicy, manifests: ManifestTexts, cache: DocumentCache) -> TrafficSplit:
    policy = item.policy
    router = router_for(policy.spec.target.router)
    first = policy.spec.target.manifests[0]
    path = manifest_path(item, first, manifests.root)
    kind = first.kind or router.kind
    split = cache.read_split(path, lambda: manifests.get(path), router, kind, first.name, policy)
    if split is None:  # the round trip names the problem (or reads what libyaml could not)
        file = load_documents(manifests.get(path), path)
        split = router.read(find_document(file, kind, first.name), policy)
    # Plain values: a router may hand back ruamel scalars, which the status file cannot hold.
    return TrafficSplit(
        tuple((str(name), int(weight)) for name, weight in split.weights),
        None if split.mirror_to is None else str(split.mirror_to),
        float(split.mirror_percent),
    )


def _observe(
    loaded: Sequence[LoadedPolicy],
    observed: Mapping[str, tuple[ReleaseStatus, TrafficSplit]],
    metric_sets: Mapping[str, MetricSet],
    provider_for: ProviderFactory,
    now: datetime,
    gates: Mapping[str, PolicyGate],
    failures: dict[str, PolicyPlan],
) -> dict[str, Observations]:
    """Metrics of every policy that is releasing, batched: one query per template per provider.

    A policy whose provider cannot be set up (an unknown provider name, a secret that cannot be
    read) fails alone, recorded in `failures`; an unexpected failure while collecting from one
    provider is that provider's policies' error, never the pass's.
    """
    needs_by_provider: dict[str, tuple[MetricsProvider, list[MetricNeed]]] = {}
    for item in loaded:
        spec = item.policy.spec
        if item.key not in observed or not (spec.objectives or spec.rewards):
            continue
        status, _ = observed[item.key]
        if status.phase is not Phase.PROGRESSING or item.policy.spec.paused:
            continue
        if not gates.get(item.key, OPEN_GATE).measures(status):
            continue  # the metrics would describe a split that is not live yet
        try:
            # The provider first: a name missing from the operator's settings is reported on
            # the first pass, not when the first measurement is due.
            provider = provider_for(item.policy)
            metric_set, metrics = metrics_of(item.policy, metric_sets)
            needs = needs_of(item.policy, metric_set, metrics, since=status.release_started_at)
            if not needs:
                continue
        except PolicyEngineError as error:
            failures[item.key] = PolicyPlan(item.key, item.path, error=str(error))
            continue
        except Exception as error:
            log.exception("policy %s failed unexpectedly", item.key)
            failures[item.key] = PolicyPlan(item.key, item.path, error=_internal(error))
            continue
        _, bucket = needs_by_provider.setdefault(provider.url, (provider, []))
        bucket.extend(needs)
    observations: dict[str, Observations] = {}
    paths = {item.key: item.path for item in loaded}
    for provider, needs in needs_by_provider.values():
        start_budget = getattr(provider, "new_pass", None)  # PrometheusProvider's pass budget
        if callable(start_budget):
            start_budget()
        try:
            observations.update(collect(provider, needs, now))
        except Exception as error:
            log.exception("collecting metrics from %s failed unexpectedly", provider.url)
            for key in {need.policy_key for need in needs}:
                failures[key] = PolicyPlan(key, paths[key], error=_internal(error))
    return observations


def _missing_serving(item: LoadedPolicy, manifests: ManifestTexts) -> str:
    """Which candidate's serving object (`versions[].serving`) is gone, if any: its file deleted,
    or the file no longer holds exactly one such object. An unreadable file stays the policy's
    error."""
    for version in item.policy.spec.candidates:
        ref = version.serving
        if ref is None:
            continue
        path = manifest_path(item, ref, manifests.root)
        if not os.path.lexists(manifests.root / path):
            what = " ".join(part for part in (ref.kind, ref.name) if part) or "serving object"
            return f"the candidate {version.name}'s {what} is gone: {path} was deleted"
        try:
            find_document(load_documents(manifests.get(path), path), ref.kind, ref.name)
        except RenderError as error:
            return f"the candidate {version.name}'s serving object is gone: {error}"
    return ""


def _abandoned(previous: ReleaseStatus) -> str:
    """What became of a release whose candidate the policy no longer names."""
    if previous.phase is not Phase.PROGRESSING:
        return f"a new release begins (the previous one ended {previous.phase})"
    return (
        f"the release under way at {previous.split.trailer()} was abandoned: the policy now "
        "names other candidate versions, so a new release begins from the current weights"
    )


def _clone_is_sound(folder: Path) -> bool:
    """Whether git can read the clone's HEAD commit (its refs and objects are there)."""
    try:
        completed = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", "--quiet", "HEAD^{commit}"],
            capture_output=True,
            env=git_environment(),
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


def _internal(error: BaseException) -> str:
    """An unexpected exception as one policy's error: its type and message, never a traceback."""
    return f"internal error: {type(error).__name__}: {str(error)[:500]}"


def _plan_policy(
    item: LoadedPolicy,
    status: ReleaseStatus,
    current: TrafficSplit,
    observations: Observations | None,
    metric_sets: Mapping[str, MetricSet],
    manifests: ManifestTexts,
    now: datetime,
    gate: PolicyGate = OPEN_GATE,
    trailers: Mapping[str, str] | None = None,
    golden: GateResult | None = None,
    restarted: str = "",
) -> PolicyPlan:
    """`restarted`: why an earlier release of this policy was abandoned, told with the decision."""
    policy = item.policy
    assessment = NO_OBJECTIVES
    unreachable = gate.unreachable
    measured = gate.measures(status)
    if (
        (policy.spec.objectives or policy.spec.rewards)
        and status.phase is Phase.PROGRESSING
        and not policy.spec.paused
        and measured
    ):
        _, metrics = metrics_of(policy, metric_sets)
        observations = observations or Observations(
            traffic_status=DataStatus.NO_DATA, message="no metrics were collected"
        )
        assessment = assess(policy, metrics, observations, current, status.step_started_at, now)
        if policy.spec.rewards and policy.spec.strategy.type == "abn":
            assessment = with_rewards(policy, assessment, observations, status, now)
        if _is_unreachable(observations):
            unreachable = observations.message
    golden_evidence = ""
    if golden is not None:
        assessment = golden.merged_into(assessment)
        unreachable = unreachable or golden.unreachable
        golden_evidence = golden.markdown
    gated = gated_outcome(policy, status, gate)
    record: ReleaseStatus | None = None  # a status to write although the decision is a hold
    overridden_at = status.extra.get(OVERRIDDEN_AT)
    missing = _missing_serving(item, manifests) if status.phase is Phase.PROGRESSING else ""
    if gated is not None:
        outcome = gated
    elif missing:
        outcome = Outcome(
            Decision.HOLD,
            f"{missing}: holding; the release neither advances nor promotes until it is back",
            status.split,
            status.phase,
            status.step,
        )
    elif golden is not None and golden.hold_reasons and status.step < 0:
        # Strategies start a release without evidence (there can be none before traffic); a
        # golden test that could not run must not let the first step through.
        outcome = Outcome(
            Decision.HOLD,
            "holding before the first step: " + "; ".join(golden.hold_reasons),
            status.split,
            status.phase,
            status.step,
        )
    elif (
        status.phase is Phase.PROGRESSING and status.step >= 0 and not current.same_as(status.split)
    ):
        outcome = Outcome(
            Decision.HOLD,
            f"the manifests say {current.trailer()} but the engine last wrote {status.split.trailer()}: "
            "a person changed the weights; holding until the manifests agree again or the release "
            "is restarted",
            current,
            status.phase,
            status.step,
        )
        if overridden_at is None:
            # Noted once, with the engine's own weights kept, so that the time spent overridden
            # is known when the weights come back.
            record = replace(
                status,
                extra={**status.extra, OVERRIDDEN_AT: format_rfc3339(now)},
                last_decision=Decision.HOLD,
                last_reason=outcome.reason,
                evaluated_at=now,
            )
    elif overridden_at is not None and status.phase is Phase.PROGRESSING:
        outcome = Outcome(
            Decision.HOLD,
            f"the manifests are back at {current.trailer()}, as the engine last wrote them, after "
            f"a person changed the weights at {overridden_at}: the step's dwell restarts now (the "
            "time overridden does not count)",
            status.split,
            status.phase,
            status.step,
        )
        record = replace(
            status,
            step_started_at=now,
            extra={k: v for k, v in status.extra.items() if k != OVERRIDDEN_AT},
            last_decision=Decision.HOLD,
            last_reason=outcome.reason,
            evaluated_at=now,
        )
    else:
        outcome = decide(policy, status, assessment, now)
    if restarted:
        outcome = replace(outcome, reason=f"{restarted}; {outcome.reason}")
    log.info("%s %s %s: %s", policy.key, outcome.decision, outcome.split.trailer(), outcome.reason)
    plan = PolicyPlan(
        key=item.key,
        path=item.path,
        outcome=outcome,
        assessment=assessment,
        current=current,
        unreachable=unreachable,
        status=status,
        gate_evidence="\n\n".join(
            part
            for part in (gate.evidence if gate.applies_to(status) else "", golden_evidence)
            if part
        ),
    )
    status_file = status_path(policy.key)
    if record is not None:
        changes: dict[str, str] = {status_file: dump_status(record)}
        after = record
    elif not _changes_anything(status, outcome):
        return plan
    else:
        changes = (
            _render(item, outcome.split, manifests) if not outcome.split.same_as(current) else {}
        )
        after = replace(apply(status, outcome, now), evidence=plan.evidence)
        if gate.extra and gate.applies_to(status):
            after = replace(after, extra={**after.extra, **dict(gate.extra)})
        after = replace(after, extra=_with_on_delete(after.extra, item, manifests.root))
        changes[status_file] = dump_status(after)
    diffs = {
        path: _diff(path, manifests.originals.get(path, ""), text)
        for path, text in changes.items()
        if path != status_file
    }
    message = engine_commit_message(
        policy_key=policy.key,
        decision=str(outcome.decision),
        weights_trailer=outcome.split.trailer(),
        reason=outcome.reason,
        evaluated_at=now,
        evidence_markdown=plan.evidence,
        extra_trailers={"Release-Id": status.release_id, **(trailers or {})},
    )
    return replace(plan, changes=changes, diffs=diffs, message=message, status=after)


def _with_on_delete(extra: Mapping[str, str], item: LoadedPolicy, root: Path) -> dict[str, str]:
    """The status's extra with the policy's current onDelete record (a live policy is no longer
    abandoned)."""
    kept = {k: v for k, v in extra.items() if k not in (ON_DELETE, ABANDONED_AT)}
    record = _on_delete_record(item, root)
    return kept if record is None else {**kept, ON_DELETE: record}


OVERRIDDEN_AT = "weightsOverriddenAt"
"""Status `extra` key: when the engine first saw weights it did not write (finding: the time a
person's weights were live must not count as the step's dwell once they are put back)."""


def _is_unreachable(observations: Observations) -> bool:
    return observations.traffic_status is DataStatus.UNREACHABLE or any(
        m.status is DataStatus.UNREACHABLE for m in observations.metrics.values()
    )


def _changes_anything(status: ReleaseStatus, outcome: Outcome) -> bool:
    if outcome.decision not in _QUIET:
        return True
    # A hold or done that moves the phase (for example to inconclusive) is recorded once. A hold
    # on weights a person wrote is not: recording them as the engine's would resume the release
    # from them on the next pass.
    return outcome.phase is not status.phase


def _render(item: LoadedPolicy, split: TrafficSplit, manifests: ManifestTexts) -> dict[str, str]:
    refs = [
        (manifest_path(item, ref, manifests.root), ref.kind, ref.name)
        for ref in item.policy.spec.target.manifests
    ]
    return _render_at(item.policy, refs, split, manifests)


def _render_at(
    policy: ReleasePolicy,
    refs: Sequence[tuple[str, str | None, str | None]],
    split: TrafficSplit,
    manifests: ManifestTexts,
) -> dict[str, str]:
    """Render `split` into the manifests at these repository paths (kind, name) with the policy's
    router; also how a deleted policy with onDelete: rollback is rolled back."""
    router = router_for(policy.spec.target.router)
    changes: dict[str, str] = {}
    for path, kind, name in refs:
        file = load_documents(manifests.get(path), path)
        router.render(find_document(file, kind or router.kind, name), policy, split)
        text = file.dump()
        if text != manifests.get(path):
            changes[path] = text
    # Only now, when every manifest rendered, does the pass's view of the files move on.
    manifests.texts.update(changes)
    return changes


def _diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
    )


@dataclass(frozen=True)
class EngineSettings:
    """Where the engine reads and writes, and as whom."""

    repo: str  # the remote: a path, file://, https:// or ssh
    cache_dir: Path
    branch: str = "main"
    prometheus_url: str | None = None  # overrides every policy's provider URL
    # The operator's providers, by name: the only credentials a policy can use (by naming one).
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    author: tuple[str, str] = ("policyengine", "policyengine@users.noreply.local")
    push_attempts: int = 5
    # s3://bucket/prefix: every decision's evidence (JSON and HTML) is kept there, and the commit
    # names the object in an Evidence-Archive trailer.
    evidence_archive: str | None = None
    signing_key: Path | None = None  # sign the engine's commits with this SSH private key
    allowed_signers: Path | None = None  # act only on policy changes signed by these keys


@dataclass(frozen=True)
class PassResult:
    plan: PassPlan
    commits: tuple[str, ...] = ()
    pushed: bool = False
    yielded: tuple[str, ...] = ()  # policies whose change yielded to a human commit
    proposals: tuple[ProposalReport, ...] = ()  # pull requests opened or updated
    fenced: tuple[str, ...] = ()  # policies whose commits were dropped: their shard was lost
    commit_of: Mapping[str, str] = field(default_factory=dict)  # policy -> its pushed commit

    @property
    def exit_code(self) -> int:
        failed = [p.exit_code for p in self.proposals if p.exit_code]
        return 3 if 3 in failed else max([self.plan.exit_code, *failed])


@dataclass(frozen=True)
class PassScope:
    """The part of the repository one replica reconciles, and the fence on its pushes.

    `owns(key)`: the policy is this replica's (its shard is held). `may_push(keys)`: asked right
    before each push attempt, True only while every one of those policies is still this
    replica's. `trailers` go into every commit message (the holder identity), so history tells
    which replica wrote what.
    """

    owns: Callable[[str], bool]
    may_push: Callable[[Sequence[str]], bool]
    trailers: Mapping[str, str] = field(default_factory=dict)


class Engine:
    """The imperative shell around `plan_pass`: a Git workspace and the metrics providers."""

    def __init__(
        self,
        settings: EngineSettings,
        provider_factory: Callable[[ReleasePolicy, str | None], MetricsProvider] | None = None,
        credentials: GitCredentials | None = None,
        gatekeeper: Gatekeeper | None = None,  # pull requests and the Argo CD gate; None: neither
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self._gatekeeper = gatekeeper
        self._provider_factory = provider_factory or self._prometheus_provider
        self._providers: dict[tuple[str | None, str], MetricsProvider] = {}
        self._workspace: Workspace | None = None
        self._documents = DocumentCache()  # parsed files by blob id, reused pass after pass
        self._signer = CommitSigner(settings.signing_key) if settings.signing_key else None
        self._verifier = (
            SignatureVerifier(settings.allowed_signers) if settings.allowed_signers else None
        )

    @property
    def workspace(self) -> Workspace:
        """The cache clone, fetched and reset to the remote branch."""
        if self._workspace is None:
            self._workspace = self._open_workspace()
            return self._workspace
        try:
            self._workspace.refresh()
        except GitError as error:
            # The remote may be away for a while, or the clone itself broken under a running
            # loop (a disk cleaner, a killed git): open it again, re-cloning if it is unusable,
            # so that the loop recovers on its own once the remote answers.
            log.warning("refreshing the cache clone failed (%s); opening it again", error)
            self._workspace = None
            self._workspace = self._open_workspace()
        return self._workspace

    @property
    def pushes(self) -> int:
        """`git push` commands run so far (the scale benchmark reports them per pass)."""
        return self._workspace.pushes if self._workspace is not None else 0

    @property
    def queries_sent(self) -> int:
        """Queries sent to metrics providers so far (the controller's /metrics)."""
        return sum(getattr(p, "queries_sent", 0) for p in self._providers.values())

    @property
    def provider_errors(self) -> int:
        """Provider answers that were not data so far: unreachable, refused, unreadable."""
        return sum(getattr(p, "errors", 0) for p in self._providers.values())

    def _open_workspace(self) -> Workspace:
        credentials = self._credentials or GitCredentials.from_environment()
        cache = self.settings.cache_dir

        def open_cache() -> Workspace:
            return Workspace.open(
                self.settings.repo, cache, self.settings.branch, credentials, signer=self._signer
            )

        if (cache / ".git").is_dir() and not _clone_is_sound(cache):
            # A broken clone fails even its fetch, which would read as "remote unreachable"
            # for ever: the clone is the engine's own and disposable, so start it afresh.
            log.warning("cache clone %s is broken; cloning it again", cache)
            shutil.rmtree(cache)

        try:
            return open_cache()
        except GitUnreachableError:
            raise
        except GitError as error:
            if not (cache / ".git").is_dir():
                raise
            # The clone is the engine's own and disposable. An engine killed in the middle of a
            # git command leaves it unusable (a stale index.lock, a half-written ref) until
            # someone cleans up by hand: clone afresh instead.
            log.warning("cache clone %s is unusable (%s); cloning it again", cache, error)
            shutil.rmtree(cache)
            return open_cache()

    def provider_for(self, policy: ReleasePolicy) -> MetricsProvider:
        """One provider per URL and credentials, shared by the policies that use it."""
        source = policy.spec.metrics
        provider_settings = source.provider if source else None
        key = (
            self.settings.prometheus_url,
            provider_settings.model_dump_json() if provider_settings else "",
        )
        if key not in self._providers:
            self._providers[key] = self._provider_factory(policy, self.settings.prometheus_url)
        return self._providers[key]

    def _prometheus_provider(
        self, policy: ReleasePolicy, url_override: str | None
    ) -> MetricsProvider:
        source = policy.spec.metrics
        return PrometheusProvider.from_settings(
            source.provider if source else Provider(), url_override, known=self.settings.providers
        )

    def plan(self, now: datetime, scope: PassScope | None = None) -> PassPlan:
        """Steps 1-5 on the remote's current head; nothing is written anywhere."""
        workspace = self.workspace
        return self._plan_on(workspace, now, scope)

    def _plan_on(self, workspace: Workspace, now: datetime, scope: PassScope | None) -> PassPlan:
        root = workspace.root
        report = self._documents.validated(root, workspace.tree_entries())
        gatekeeper = self._gatekeeper
        policies = report.policies
        if scope is not None:
            policies = [item for item in policies if scope.owns(item.key)]
        untrusted: list[PolicyIssue] = []
        if self._verifier is not None:
            policies, untrusted = _trusted(workspace, self._verifier, policies)
        return plan_pass(
            root,
            policies,
            {name: loaded.metric_set for name, loaded in report.metric_sets.items()},
            self.provider_for,
            now,
            head=workspace.head(),
            load_errors=[*report.errors, *untrusted],
            gates=gatekeeper.gates(workspace, policies, now) if gatekeeper else None,
            cache=self._documents,
            trailers=scope.trailers if scope is not None else None,
            golden_checks=self._golden_checks,
            known_keys=[item.key for item in report.policies],
            owns=scope.owns if scope is not None else None,
        )

    def _golden_checks(self, policy: ReleasePolicy, status: ReleaseStatus) -> GateResult:
        if status.step < 0:
            datasets = self.settings.cache_dir.with_name(self.settings.cache_dir.name + "-golden")
            return run_golden_gate(policy, datasets)
        return run_payload_drift(policy)

    def reconcile_once(self, now: datetime, scope: PassScope | None = None) -> PassResult:
        """One full pass: plan, one commit per decision, one push (fenced by `scope`)."""
        workspace = self.workspace
        plan = self._plan_on(workspace, now, scope)
        commits: list[str] = []
        refused: dict[str, str] = {}
        for policy_plan in plan.policies:
            if not policy_plan.writes or self._proposes(policy_plan):
                continue
            try:
                sha = workspace.commit(
                    {path: text.encode("utf-8") for path, text in policy_plan.changes.items()},
                    self._archived(policy_plan, now),
                    self.settings.author,
                    now,
                )
            except UnsafeFileError as error:  # nothing was written: this policy fails alone
                refused[policy_plan.key] = str(error)
                continue
            if sha is not None:
                commits.append(sha)
        if refused:
            plan = replace(
                plan,
                policies=tuple(
                    replace(p, error=refused[p.key], changes={}, diffs={})
                    if p.key in refused
                    else p
                    for p in plan.policies
                ),
            )
        if not commits:
            return PassResult(plan, proposals=self._propose(workspace, plan, now))
        if scope is None:
            pushed = workspace.push(self.settings.push_attempts)
        else:
            writers = [p.key for p in plan.policies if p.writes and not self._proposes(p)]
            pushed = workspace.push(
                self.settings.push_attempts, fence=lambda: scope.may_push(writers)
            )
        if pushed.fenced:
            return PassResult(plan, fenced=tuple(p.key for p in plan.policies if p.writes))
        for dropped in pushed.dropped:
            log.warning(
                "yielded to a human commit: %s (%s); re-planning next pass",
                ", ".join(dropped.policies),
                dropped.reason,
            )
        return PassResult(
            plan,
            commits=pushed.commits,
            pushed=pushed.pushed,
            yielded=pushed.dropped_policies,
            proposals=self._propose(workspace, plan, now),
            commit_of=workspace.commit_policies(pushed.commits) if pushed.pushed else {},
        )

    def _archived(self, policy_plan: PolicyPlan, now: datetime) -> str:
        """The commit message, with an Evidence-Archive trailer once the evidence is stored.

        An archive outage never blocks a decision: the commit then goes without the trailer
        and the pass logs why.
        """
        if not self.settings.evidence_archive or policy_plan.outcome is None:
            return policy_plan.message
        try:
            location = archive_evidence(
                S3Location.parse(self.settings.evidence_archive), policy_plan, now
            )
        except (StorageUnavailableError, StorageObjectMissingError) as error:
            log.warning("%s: evidence not archived: %s", policy_plan.key, error)
            return policy_plan.message
        return policy_plan.message.rstrip("\n") + f"\nEvidence-Archive: {location}\n"

    def _proposes(self, policy_plan: PolicyPlan) -> bool:
        return self._gatekeeper is not None and self._gatekeeper.proposes(policy_plan.key)

    def _propose(
        self, workspace: Workspace, plan: PassPlan, now: datetime
    ) -> tuple[ProposalReport, ...]:
        """Pull requests go after the push: they build on the branch's new head."""
        return self._gatekeeper.propose(workspace, plan, now) if self._gatekeeper else ()


def _trusted(
    workspace: Workspace, verifier: SignatureVerifier, policies: Sequence[LoadedPolicy]
) -> tuple[list[LoadedPolicy], list[PolicyIssue]]:
    """The policies whose file was last changed in a commit signed by an allowed key, and a
    hold, with the reason, for each of the others (they are neither measured nor written)."""
    last = workspace.last_changes(item.path for item in policies)
    kept: list[LoadedPolicy] = []
    held: list[PolicyIssue] = []
    for item in policies:
        commit = last.get(item.path)
        problem = (
            workspace.signature_problem(verifier, commit)
            if commit
            else f"no commit of {item.path} found in the history"
        )
        if problem is None:
            kept.append(item)
            continue
        line, column = item.locator.start
        message = (
            f"policy {item.key} held: its last change is not trusted: {problem}; "
            "sign the change with an allowed key (--allowed-signers) to release it"
        )
        log.warning("%s", message)
        held.append(PolicyIssue(item.path, line, column, "", message))
    return kept, held


def _prometheus_provider(policy: ReleasePolicy, url_override: str | None) -> MetricsProvider:
    source = policy.spec.metrics
    return PrometheusProvider.from_settings(source.provider if source else Provider(), url_override)
