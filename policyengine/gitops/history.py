"""The release timeline, read back from the trailers of engine commits in `git log`.

`parse_history_log` is pure (text in, entries out); `release_history` runs one `git log`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from policyengine.errors import GitError
from policyengine.gitops.commits import POLICY, engine_records, format_rfc3339, parse_rfc3339
from policyengine.gitops.environment import git_environment

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
    return parse_history_log(completed.stdout.decode("utf-8", errors="replace"), policy_key)


def render_history_text(entries: Sequence[HistoryEntry]) -> str:
    """A fixed-width table: time, policy, decision, weights, commit, reason."""
    if not entries:
        return "no engine decisions recorded\n"
    rows = [("TIME", "POLICY", "DECISION", "WEIGHTS", "COMMIT", "REASON")]
    rows += [
        (format_rfc3339(e.time), e.policy, e.decision, e.weights, e.commit[:10], e.reason)
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
        }
        for e in entries
    ]
    return json.dumps(payload, indent=2) + "\n"
