"""Git beyond the tracked branch: the engine's proposal branches (fetched, extended, pushed; never
forced) and where a policy's decision landed on the tracked branch (for the dwell and Argo CD).

Runs git in the engine's cache clone; the Workspace keeps owning the tracked branch itself.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from policyengine.errors import GitConflictError, GitError, GitUnreachableError
from policyengine.gitops.commits import parse_rfc3339
from policyengine.gitops.environment import git_environment
from policyengine.gitops.repo import GitCredentials
from policyengine.gitops.status import status_path

log = logging.getLogger(__name__)

BRANCH_PREFIX = "policyengine/"
_REMOTE_REFS = "refs/remotes/origin/"
# Argo CD reports the head of the tracked branch; more descendants than this are not looked at.
MAX_LATER_COMMITS = 500


def proposal_branch(policy_key: str) -> str:
    """The branch carrying a policy's proposals: policyengine/<namespace>/<name>."""
    status_path(policy_key)  # validates the key's shape
    return BRANCH_PREFIX + policy_key


@dataclass(frozen=True)
class Landing:
    """The commit that put a policy's current status on the tracked branch.

    In commit mode the engine's own commit; in pull-request mode the merge (or squash, or rebased)
    commit, whose committer time is when the step was approved.
    """

    commit: str
    committed_at: datetime
    later: tuple[str, ...]  # commits on the branch after it: Argo CD may report any of them


@dataclass(frozen=True)
class DecisionPoint:
    """An engine decision on the tracked branch's first-parent line, for the release chart."""

    commit: str
    committed_at: datetime
    message: str


_FIELD = "\x1f"
_RECORD = "\x1e"


class EngineGit:
    """Read-only git queries and proposal-branch writes in the engine's cache clone."""

    def __init__(self, root: Path, remote: str, credentials: GitCredentials | None = None) -> None:
        self._root = root
        self._remote = remote
        self._credentials = credentials or GitCredentials()
        self._env = git_environment(self._credentials.git_config_for(self._remote))

    # -- plumbing --------------------------------------------------------------------------

    def _run(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        env_extra: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        env = {**self._env, **env_extra} if env_extra else self._env
        completed = subprocess.run(
            ["git", *args], cwd=self._root, env=env, input=input, capture_output=True, check=False
        )
        if check and completed.returncode != 0:
            detail = self._credentials.redact(completed.stderr.decode(errors="replace")).strip()
            raise GitError(f"git {args[0]} failed in {self._root}: {detail[-500:]}")
        return completed

    def _text(self, *args: str) -> str:
        return self._run(args).stdout.decode("utf-8", errors="replace")

    # -- proposal branches -----------------------------------------------------------------

    def fetch_proposals(self) -> None:
        """Every proposal branch in one fetch; branches deleted on the remote are forgotten."""
        refspec = f"+refs/heads/{BRANCH_PREFIX}*:{_REMOTE_REFS}{BRANCH_PREFIX}*"
        completed = self._run(
            ["fetch", "--quiet", "--prune", "--no-tags", "origin", refspec], check=False
        )
        if completed.returncode != 0:
            detail = self._credentials.redact(completed.stderr.decode(errors="replace")).strip()
            raise GitUnreachableError(
                f"cannot fetch proposal branches from {self._remote}: {detail}"
            )

    def head_of(self, branch: str) -> str | None:
        """The fetched head of a remote branch, or None when the remote has no such branch."""
        completed = self._run(
            ["rev-parse", "--verify", "--quiet", f"{_REMOTE_REFS}{branch}^{{commit}}"], check=False
        )
        return completed.stdout.decode().strip() or None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        completed = self._run(["merge-base", "--is-ancestor", ancestor, descendant], check=False)
        if completed.returncode not in (0, 1):
            raise GitError(f"git merge-base failed: {completed.stderr.decode(errors='replace')}")
        return completed.returncode == 0

    def blob_id(self, revision: str, path: str) -> str | None:
        completed = self._run(
            ["rev-parse", "--verify", "--quiet", f"{revision}:{path}"], check=False
        )
        return completed.stdout.decode().strip() or None

    def message(self, revision: str) -> str:
        return self._text("log", "-1", "--format=%B", revision)

    def commit_proposal(
        self,
        parents: Sequence[str],
        tree_of: str,
        changes: Mapping[str, str],
        message: str,
        author: tuple[str, str],
        now: datetime,
    ) -> str:
        """A commit whose tree is `tree_of`'s with `changes` written over it, on `parents`."""
        with tempfile.TemporaryDirectory(prefix="policyengine-proposal-") as scratch:
            index = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
            self._run(["read-tree", tree_of], env_extra=index)
            entries = []
            for path, text in sorted(changes.items()):
                blob = (
                    self._run(["hash-object", "-w", "--stdin"], input=text.encode("utf-8"))
                    .stdout.decode()
                    .strip()
                )
                entries.append(f"100644 {blob}\t{path}\n")
            self._run(
                ["update-index", "--add", "--index-info"],
                input="".join(entries).encode("utf-8"),
                env_extra=index,
            )
            tree = self._run(["write-tree"], env_extra=index).stdout.decode().strip()
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        stamp = f"{int(now.timestamp())} +0000"
        name, email = author
        identity = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_AUTHOR_DATE": stamp,
            "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": stamp,
        }
        parent_args = [arg for parent in parents for arg in ("-p", parent)]
        completed = self._run(
            ["commit-tree", tree, *parent_args, "-F", "-"],
            input=message.encode("utf-8"),
            env_extra=identity,
        )
        return completed.stdout.decode().strip()

    def push_proposal(self, commit: str, branch: str) -> None:
        """Fast-forward the remote branch to `commit`; never forced."""
        completed = self._run(
            ["push", "--porcelain", "--no-verify", "origin", f"{commit}:refs/heads/{branch}"],
            check=False,
        )
        if completed.returncode == 0:
            self._run(["update-ref", f"{_REMOTE_REFS}{branch}", commit])
            return
        stdout = self._credentials.redact(completed.stdout.decode(errors="replace"))
        rejected = [line for line in stdout.splitlines() if line.startswith("!")]
        if rejected:
            raise GitConflictError(
                f"push of {branch} rejected ({rejected[0].split(chr(9))[-1]}): someone pushed to "
                "the branch meanwhile; the next pass proposes on top of it"
            )
        detail = self._credentials.redact(completed.stderr.decode(errors="replace")).strip()
        raise GitUnreachableError(f"cannot push {branch} to {self._remote}: {detail[-500:]}")

    # -- the tracked branch ----------------------------------------------------------------

    def landing(self, revision: str, policy_key: str) -> Landing | None:
        """The first-parent commit of `revision` that last changed the policy's status file.

        Trailers name the engine's own commit, but a merge, squash or rebase done on a forge is
        the commit that brought the decision to the branch (and Argo CD): the status file, written
        by the engine alone, tells it whatever way the pull request was merged.
        """
        found = self._text(
            "log",
            "-1",
            "--first-parent",
            "--format=%H %cI",
            revision,
            "--",
            status_path(policy_key),
        ).split()
        if not found:
            return None
        commit, committed = found
        later = self._text(
            "rev-list",
            f"--max-count={MAX_LATER_COMMITS}",
            "--ancestry-path",
            f"{commit}..{revision}",
        ).split()
        return Landing(commit, parse_rfc3339(committed), tuple(later))

    def decisions(self, revision: str, policy_key: str, since: datetime) -> list[DecisionPoint]:
        """The engine's decisions for a policy since `since`, oldest first (for the chart)."""
        output = self._text(
            "log",
            "--reverse",
            f"--since={int(since.timestamp())}",
            f"--grep=^Policy: {policy_key}$",
            f"--format=%H{_FIELD}%cI{_FIELD}%B{_RECORD}",
            revision,
        )
        points = []
        for record in output.split(_RECORD):
            record = record.strip("\n")
            if record:
                commit, committed, message = record.split(_FIELD, 2)
                points.append(DecisionPoint(commit, parse_rfc3339(committed), message))
        return points
