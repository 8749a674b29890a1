"""The release timeline, read back from the trailers of engine commits in `git log`.

In pull-request mode a step's proposal may be replaced on its branch before the merge (the
decision changed while the pull request was open): only the last engine commit a merge brings in
took effect, the earlier ones are marked as replaced proposals. A squash merge whose message lost
the trailers is read from the status file that commit wrote instead.

`parse_history_log` is pure (text in, entries out); `release_history` runs a few `git log`s.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from policyengine.errors import GitError, PolicyEngineError
from policyengine.gitops.commits import POLICY, engine_records, format_rfc3339, parse_rfc3339
from policyengine.gitops.environment import git_environment
from policyengine.gitops.status import STATUS_DIR, parse_status, status_path

# One record per commit: sha, committer date, raw message; separators that never occur in text.
_FIELD = "\x1f"
_RECORD = "\x1e"
LOG_FORMAT = f"%H{_FIELD}%cI{_FIELD}%B{_RECORD}"


@dataclass(frozen=True)
class HistoryEntry:
    time: datetime  # Evaluated-At (the decision's instant); the commit time when missing
    policy: str
    decision: str
    weights: str
    commit: str
    reason: str
    replaced: bool = False  # a proposal replaced on its branch before the merge: never live
    source: str = "commit"  # "status" when read from the status file (trailers squashed away)

    @property
    def label(self) -> str:
        return f"{self.decision} (replaced proposal)" if self.replaced else self.decision


def parse_history_log(log_text: str, policy_key: str | None = None) -> list[HistoryEntry]:
    """Entries from `git log --format=LOG_FORMAT` output, in the order the log lists commits."""
    entries: list[HistoryEntry] = []
    for chunk in log_text.split(_RECORD):
        chunk = chunk.lstrip("\n")
        if not chunk:
            continue
        sha, committed, message = chunk.split(_FIELD, 2)
        commit_time = parse_rfc3339(committed)
        for record in engine_records(message):
            if policy_key is not None and record.policy != policy_key:
                continue
            entries.append(
                HistoryEntry(
                    time=record.evaluated_at or commit_time,
                    policy=record.policy,
                    decision=record.decision,
                    weights=record.weights,
                    commit=sha,
                    reason=record.reason,
                )
            )
    return entries


def release_history(
    repo_dir: Path, branch: str, policy_key: str | None = None
) -> list[HistoryEntry]:
    """Every engine decision on `branch` (or `origin/<branch>`), oldest first, by ancestry."""
    env = git_environment()
    revision = None
    for candidate in (branch, f"refs/remotes/origin/{branch}"):
        probe = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"],
            cwd=repo_dir,
            env=env,
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            revision = probe.stdout.decode().strip()
            break
    if revision is None:
        raise GitError(f"no branch {branch!r} in {repo_dir}")
    grep = f"^{POLICY}: {policy_key}$" if policy_key else f"^{POLICY}: "
    # --grep narrows the walk to candidate commits cheaply; the trailer parser has the last word.
    completed = subprocess.run(
        [
            "git",
            "log",
            "--topo-order",
            "--reverse",
            f"--grep={grep}",
            f"--format={LOG_FORMAT}",
            revision,
        ],
        cwd=repo_dir,
        env=env,
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip()
        raise GitError(f"git log failed in {repo_dir}: {message}")
    entries = parse_history_log(completed.stdout.decode("utf-8", errors="replace"), policy_key)
    replaced = _replaced_proposals(repo_dir, revision, entries)
    entries = [
        HistoryEntry(e.time, e.policy, e.decision, e.weights, e.commit, e.reason, replaced=True)
        if (e.commit, e.policy) in replaced
        else e
        for e in entries
    ]
    recorded = {(e.commit, e.policy) for e in entries}
    from_status = [
        e
        for e in _status_entries(repo_dir, revision, policy_key)
        if (e.commit, e.policy) not in recorded
    ]
    if not from_status:
        return entries
    order = {
        sha: index
        for index, sha in enumerate(
            _git(repo_dir, "rev-list", "--topo-order", "--reverse", revision).split()
        )
    }
    return sorted(entries + from_status, key=lambda e: order.get(e.commit, -1))


def _git(repo_dir: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args], cwd=repo_dir, env=git_environment(), capture_output=True, check=False
    )
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip()
        raise GitError(f"git {args[0]} failed in {repo_dir}: {message}")
    return completed.stdout.decode("utf-8", errors="replace")


def _replaced_proposals(
    repo_dir: Path, revision: str, entries: Sequence[HistoryEntry]
) -> set[tuple[str, str]]:
    """(commit, policy) of engine records a merge brought in but that are not the last one of
    their policy in that merge: proposals replaced on the branch before it was merged."""
    off_chain = {e.commit for e in entries} - set(
        _git(repo_dir, "rev-list", "--first-parent", revision).split()
    )
    if not off_chain:
        return set()
    replaced: set[tuple[str, str]] = set()
    for line in _git(
        repo_dir, "log", "--first-parent", "--merges", "--format=%P", revision
    ).splitlines():
        first, *others = line.split()
        brought = set(_git(repo_dir, "rev-list", *others, f"^{first}").split())
        merged = [e for e in entries if e.commit in brought and e.commit in off_chain]
        last: dict[str, HistoryEntry] = {}
        for entry in merged:  # entries are oldest first
            last[entry.policy] = entry
        replaced |= {(e.commit, e.policy) for e in merged if last[e.policy] is not e}
    return replaced


def _status_entries(repo_dir: Path, revision: str, policy_key: str | None) -> list[HistoryEntry]:
    """Decisions from the status files that single-parent commits of the branch wrote (a squash
    merge keeps the files but may drop the engine's trailers from the message)."""
    path = status_path(policy_key) if policy_key else STATUS_DIR
    log = _git(
        repo_dir,
        "log",
        "--first-parent",
        "--no-merges",
        "--format=\x1e%H %cI",
        "--name-only",
        revision,
        "--",
        path,
    )
    entries = []
    for chunk in log.split("\x1e"):
        lines = [line for line in chunk.splitlines() if line.strip()]
        if not lines:
            continue
        sha, _, committed = lines[0].partition(" ")
        for changed in lines[1:]:
            try:
                text = _git(repo_dir, "show", f"{sha}:{changed}")
                status = parse_status(text)
            except PolicyEngineError:
                continue  # deleted in that commit, or not a status file
            if status.last_decision is None:
                continue
            entries.append(
                HistoryEntry(
                    time=status.evaluated_at or parse_rfc3339(committed),
                    policy=status.policy,
                    decision=str(status.last_decision),
                    weights=status.split.trailer(),
                    commit=sha,
                    reason=status.last_reason,
                    source="status",
                )
            )
    return entries


def render_history_text(entries: Sequence[HistoryEntry]) -> str:
    """A fixed-width table: time, policy, decision, weights, commit, reason."""
    if not entries:
        return "no engine decisions recorded\n"
    rows = [("TIME", "POLICY", "DECISION", "WEIGHTS", "COMMIT", "REASON")]
    rows += [
        (format_rfc3339(e.time), e.policy, e.label, e.weights, e.commit[:10], e.reason)
        for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True))
        + "  "
        + row[5]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render_history_json(entries: Sequence[HistoryEntry]) -> str:
    """A JSON array of entries with RFC 3339 UTC times."""
    payload = [
        {
            "time": format_rfc3339(e.time),
            "policy": e.policy,
            "decision": e.decision,
            "weights": e.weights,
            "commit": e.commit,
            "reason": e.reason,
            "replaced": e.replaced,
            "source": e.source,
        }
        for e in entries
    ]
    return json.dumps(payload, indent=2) + "\n"
