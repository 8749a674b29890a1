"""The demo's GitOps repository: a bare remote the engine pushes to, and a working clone that
stands in for Argo CD (synced before every simulated minute, so the fleet serves what Git says).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from policyengine.errors import GitError
from policyengine.gitops.commits import format_rfc3339
from policyengine.gitops.environment import git_environment

BRANCH = "main"
PLATFORM_TEAM = ("ML Platform Team", "ml-platform@example.com")


@dataclass(frozen=True)
class DemoRepository:
    remote: Path  # bare, refuses non-fast-forward pushes like a forge's protected branch
    checkout: Path  # the working clone the fleet reads (Argo CD's view)

    @classmethod
    def create(
        cls, remote: Path, checkout: Path, files: Mapping[str, str], at: datetime
    ) -> DemoRepository:
        """A bare remote seeded with one commit of `files` by the platform team, and its clone."""
        remote.parent.mkdir(parents=True, exist_ok=True)
        _git(remote.parent, "init", "--quiet", "--bare", f"--initial-branch={BRANCH}", str(remote))
        _git(remote, "config", "receive.denyNonFastForwards", "true")
        checkout.parent.mkdir(parents=True, exist_ok=True)
        _git(checkout.parent, "init", "--quiet", f"--initial-branch={BRANCH}", str(checkout))
        for path, text in files.items():
            target = checkout / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        _git(checkout, "add", "--all")
        _git(
            checkout,
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            "Start three canary releases: fraud-detector v2, credit-scorer v2 and support-chat v2",
            at=at,
        )
        _git(checkout, "remote", "add", "origin", str(remote))
        _git(checkout, "push", "--quiet", "origin", f"HEAD:refs/heads/{BRANCH}")
        _git(checkout, "branch", "--quiet", f"--set-upstream-to=origin/{BRANCH}")
        return cls(remote, checkout)

    def sync(self) -> str:
        """Bring the working clone to the remote's head, as Argo CD would; returns the commit."""
        _git(self.checkout, "fetch", "--quiet", "origin", BRANCH)
        _git(self.checkout, "reset", "--quiet", "--hard", f"origin/{BRANCH}")
        return _git(self.checkout, "rev-parse", "HEAD").strip()

    def keep(self) -> None:
        """Make the clone stand alone (its remote lives in a temporary folder about to go)."""
        self.sync()
        _git(self.checkout, "remote", "remove", "origin")


def prepare_keep_folder(folder: Path) -> None:
    """--keep DIR: a new or empty folder, never someone's files."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder} exists and is not an empty folder")
    if folder.exists():
        shutil.rmtree(folder)


def _git(cwd: Path, *args: str, at: datetime | None = None) -> str:
    identity = {
        "GIT_AUTHOR_NAME": PLATFORM_TEAM[0],
        "GIT_AUTHOR_EMAIL": PLATFORM_TEAM[1],
        "GIT_COMMITTER_NAME": PLATFORM_TEAM[0],
        "GIT_COMMITTER_EMAIL": PLATFORM_TEAM[1],
    }
    if at is not None:
        identity["GIT_AUTHOR_DATE"] = identity["GIT_COMMITTER_DATE"] = format_rfc3339(at)
    completed = subprocess.run(
        ["git", "-c", "gc.auto=0", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        env=git_environment(identity),
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip()
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {detail}")
    return completed.stdout.decode()
