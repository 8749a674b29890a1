"""Backtest: replay one policy over stored Prometheus history, instant by instant, writing nothing.

Each instant runs the reconciler's own `plan_pass` on a temporary copy of the repository and applies
the plan's file changes to that copy, so the next instant starts from the weights and status a live
engine would have committed. The repository and the remote are never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from policyengine.analysis.assessment import evidence_rows
from policyengine.errors import GitError, InvalidPolicyError, ProviderUnavailableError
from policyengine.gitops.commits import format_rfc3339, parse_rfc3339
from policyengine.gitops.repo import GitCredentials, Workspace
from policyengine.gitops.status import status_path
from policyengine.metrics.prometheus import PrometheusProvider
from policyengine.metrics.provider import MetricsProvider
from policyengine.metrics.settings import ProviderSettings
from policyengine.policy.duration import format_duration
from policyengine.policy.loader import load_tree
from policyengine.policy.models import Provider, ReleasePolicy
from policyengine.policy.validation import check_repository
from policyengine.reconciler import PolicyPlan, ProviderFactory, plan_pass
from policyengine.values import Decision, Phase, TrafficSplit

MAX_INSTANTS = 20_000
"""More instants than this is almost certainly a mistaken --step (a week at 30 s is 20,160)."""

_TERMINAL = (Phase.SUCCEEDED, Phase.FAILED, Phase.INCONCLUSIVE)


def parse_instant(text: str) -> datetime:
    """RFC 3339 (with a zone) or unix seconds, as UTC. Raises ValueError."""
    stripped = text.strip()
    try:
        return datetime.fromtimestamp(float(stripped), UTC)
    except ValueError:
        pass
    try:
        return parse_rfc3339(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither RFC 3339 with a zone (2026-11-25T10:00:00Z) nor unix seconds"
        ) from None


def check_policy_key(text: str) -> str:
    """`text` when it is a policy key, namespace/name. Raises ValueError."""
    status_path(text)  # the same rule the status file's path follows
    return text


def replay_instants(start: datetime, end: datetime, step: timedelta) -> tuple[datetime, ...]:
    """start, start + step, ... up to end inclusive. Raises ValueError on an empty or huge range."""
    if step <= timedelta(0):
        raise ValueError("the step must be positive")
    if end < start:
        raise ValueError(f"--to {format_rfc3339(end)} is before --from {format_rfc3339(start)}")
    count = int((end - start) / step) + 1
    if count > MAX_INSTANTS:
        raise ValueError(
            f"{count} instants between --from and --to at this step; at most {MAX_INSTANTS}"
        )
    return tuple(start + index * step for index in range(count))


@dataclass(frozen=True)
class BacktestStep:
    """What the engine would have decided at one instant, with the evidence behind it."""

    at: datetime
    plan: PolicyPlan

    @property
    def decision(self) -> Decision | None:
        return self.plan.outcome.decision if self.plan.outcome else None

    @property
    def split(self) -> TrafficSplit | None:
        return self.plan.outcome.split if self.plan.outcome else None


@dataclass(frozen=True)
class Backtest:
    policy: str
    start: datetime
    end: datetime
    step: timedelta
    head: str  # the commit the replay started from ("" for a working tree outside Git)
    steps: tuple[BacktestStep, ...]
    stopped: str = ""  # why the replay ended before `end`, if it did

    @property
    def moves(self) -> tuple[BacktestStep, ...]:
        """The instants whose decision a live engine would have committed."""
        return tuple(s for s in self.steps if s.plan.writes)


def run_backtest(
    root: Path,
    policy_key: str,
    instants: Sequence[datetime],
    provider_for: ProviderFactory,
    head: str = "",
) -> Backtest:
    """Replay `policy_key` at each instant over the files under `root`, which it rewrites.

    `root` must be a scratch copy: the plan's changes (manifests, status file) are written into it
    between instants. Stops early once the release is over, since nothing can move it again.
    """
    if not instants:
        raise ValueError("no instants to replay")
    report = check_repository(load_tree([root], root), root)
    loaded = [item for item in report.policies if item.key == policy_key]
    if not loaded:
        raise InvalidPolicyError(
            _not_found(policy_key, report.errors, [p.key for p in report.policies])
        )
    metric_sets = {name: item.metric_set for name, item in report.metric_sets.items()}
    steps: list[BacktestStep] = []
    stopped = ""
    for at in instants:
        [plan] = plan_pass(root, loaded, metric_sets, provider_for, at, head=head).policies
        if plan.unreachable:
            raise ProviderUnavailableError(
                f"backtest of {policy_key} at {format_rfc3339(at)}: {plan.unreachable}"
            )
        if plan.error:
            raise InvalidPolicyError(
                f"{plan.path}: {policy_key} at {format_rfc3339(at)}: {plan.error}"
            )
        steps.append(BacktestStep(at, plan))
        for path, text in plan.changes.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        outcome = plan.outcome
        if outcome is not None and outcome.phase in _TERMINAL and at != instants[-1]:
            stopped = f"release {outcome.phase} at {format_rfc3339(at)}; nothing left to replay"
            break
    return Backtest(
        policy=policy_key,
        start=instants[0],
        end=instants[-1],
        step=instants[1] - instants[0] if len(instants) > 1 else timedelta(0),
        head=head,
        steps=tuple(steps),
        stopped=stopped,
    )


def _not_found(policy_key: str, errors: Sequence[object], valid: Sequence[str]) -> str:
    message = f"no valid ReleasePolicy {policy_key} in the repository"
    if valid:
        message += f"; valid policies: {', '.join(sorted(valid))}"
    if errors:
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        message += f"; invalid documents: {shown}{more}"
    return message


# -- the shell: a scratch copy of the repository and the provider ------------------------------


def backtest_repository(
    repo: str,
    policy_key: str,
    instants: Sequence[datetime],
    *,
    branch: str = "main",
    prometheus_url: str | None = None,
    fresh: bool = False,
    known_providers: Mapping[str, ProviderSettings] | None = None,
) -> Backtest:
    """Replay a policy of `repo` (a working tree, a bare repository or a URL) over `instants`.

    Starts from the policy's status at the repository's head (a fresh release when it has none,
    or when `fresh`), on a temporary copy deleted afterwards.
    """
    providers: dict[str, PrometheusProvider] = {}

    def provider_for(policy: ReleasePolicy) -> MetricsProvider:
        source = policy.spec.metrics
        settings = source.provider if source else Provider()
        key = settings.model_dump_json()
        if key not in providers:
            providers[key] = PrometheusProvider.from_settings(
                settings, prometheus_url, known=known_providers
            )
        return providers[key]

    with scratch_copy(repo, branch) as (root, head):
        if fresh:
            (root / status_path(policy_key)).unlink(missing_ok=True)
        try:
            return run_backtest(root, policy_key, instants, provider_for, head)
        finally:
            for provider in providers.values():
                provider.close()


@contextmanager
def scratch_copy(repo: str, branch: str = "main") -> Iterator[tuple[Path, str]]:
    """A temporary copy of the repository's files and the commit they come from.

    A local working tree is copied as it is, uncommitted edits included (so a policy change can be
    tried before it is pushed); a bare repository or a URL is cloned at `branch`.
    """
    with tempfile.TemporaryDirectory(prefix="policyengine-backtest-") as scratch:
        root = Path(scratch) / "tree"
        local = Path(repo)
        if (
            "://" not in repo
            and not repo.startswith("git@")
            and local.is_dir()
            and not _is_bare(local)
        ):
            head = _copy_working_tree(local, root)
        else:
            workspace = Workspace.open(
                repo, Path(scratch) / "clone", branch, GitCredentials.from_environment()
            )
            shutil.copytree(workspace.root, root, ignore=shutil.ignore_patterns(".git"))
            head = workspace.head()
        yield root, head


def _is_bare(path: Path) -> bool:
    return (
        not (path / ".git").exists() and (path / "HEAD").is_file() and (path / "objects").is_dir()
    )


def _copy_working_tree(source: Path, dest: Path) -> str:
    """Tracked and untracked-but-not-ignored files of a Git working tree (everything elsewhere)."""
    listed = _git(source, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if listed is None:
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".git"))
        return ""
    dest.mkdir(parents=True)
    for relative in sorted(set(filter(None, listed.split("\0")))):
        origin = source / relative
        if origin.is_file():  # a tracked file deleted in the work tree is gone here too
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, target)
    return (_git(source, "rev-parse", "--verify", "--quiet", "HEAD") or "").strip()


def _git(cwd: Path, *args: str) -> str | None:
    """stdout of a read-only git command, or None when `cwd` is not in a Git working tree."""
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, check=False, timeout=60
        )
    except FileNotFoundError:
        return None
    except subprocess.TimeoutExpired as error:
        raise GitError(f"git {' '.join(args)} timed out in {cwd}") from error
    if completed.returncode != 0:
        return None
    return completed.stdout.decode("utf-8", errors="surrogateescape")


# -- output ------------------------------------------------------------------------------------


def backtest_text(result: Backtest) -> str:
    """One line per instant (time, decision, weights, reason), the evidence indented below it."""
    where = result.head[:10] or "working tree"
    lines = [
        f"backtest of {result.policy} from {format_rfc3339(result.start)} to "
        f"{format_rfc3339(result.end)} every {format_duration(result.step)} on {where} "
        "(nothing is written)"
    ]
    for step in result.steps:
        outcome = step.plan.outcome
        assert outcome is not None
        mark = "*" if step.plan.writes else " "
        lines.append(
            f"{format_rfc3339(step.at)} {mark} {outcome.decision:<8} {outcome.split.trailer()}"
            f"  — {outcome.reason}"
        )
        for row in evidence_rows(step.plan.assessment):
            lines.append(
                f"      {row['version']} {row['objective']} ({row['check']}): " + _numbers(row)
            )
    lines.append("* the decisions a live engine would have committed")
    lines.append(_summary(result))
    if result.stopped:
        lines.append(f"stopped early: {result.stopped}")
    return "\n".join(lines) + "\n"


def _numbers(row: dict[str, str]) -> str:
    """A verdict with its estimate, interval, baseline and samples; the reason when unmeasured."""
    if row["estimate"] == "–":
        return f"{row['verdict']} — {row['reason']}"
    text = f"{row['verdict']} — estimate {row['estimate']}"
    if row["interval"] != "–":
        text += f" {row['interval']}"
    if row["baseline"] != "–":
        text += f", baseline {row['baseline']}"
    if row["samples"] != "0":
        text += f", n={row['samples']}"
    return text


def _summary(result: Backtest) -> str:
    moves = [
        f"{s.decision} to {s.split.trailer()} at {format_rfc3339(s.at)}"
        for s in result.moves
        if s.decision is not None and s.split is not None and s.decision is not Decision.HOLD
    ]
    last = result.steps[-1].plan.outcome if result.steps else None
    final = f"final: {last.phase}, {last.split.trailer()}" if last else "final: nothing replayed"
    return f"{final}; " + ("; ".join(moves) if moves else "no change would have been committed")


def backtest_json(result: Backtest) -> str:
    def one(step: BacktestStep) -> dict[str, object]:
        outcome = step.plan.outcome
        assert outcome is not None
        return {
            "at": format_rfc3339(step.at),
            "decision": str(outcome.decision),
            "weights": outcome.split.as_dict(),
            "mirror": (
                {"to": outcome.split.mirror_to, "percent": outcome.split.mirror_percent}
                if outcome.split.mirror_to
                else None
            ),
            "phase": str(outcome.phase),
            "step": outcome.step,
            "reason": outcome.reason,
            "writes": step.plan.writes,
            "evidence": evidence_rows(step.plan.assessment),
            "holdReasons": list(step.plan.assessment.hold_reasons),
            "samples": dict(step.plan.assessment.samples),
        }

    last = result.steps[-1].plan.outcome if result.steps else None
    payload = {
        "policy": result.policy,
        "from": format_rfc3339(result.start),
        "to": format_rfc3339(result.end),
        "stepSeconds": result.step.total_seconds(),
        "commit": result.head,
        "steps": [one(s) for s in result.steps],
        "final": {"phase": str(last.phase), "weights": last.split.as_dict()} if last else None,
        "stopped": result.stopped or None,
    }
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
