"""The engine killed by SIGKILL at random points of 50 passes (`policyengine reconcile --once` as a
subprocess, its whole process group killed, the remote served over smart HTTP so that the server
outlives its client) never leaves the remote invalid, and the next pass converges to exactly what
an uninterrupted run has at the same instant.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from policyengine.gitops.repo import TOKEN_VARIABLE
from tests.support.gitrepos import git, serve_git_over_http
from tests.support.processes import running
from tests.support.release_repos import (
    T0,
    ReleaseRepo,
    console_script,
    example_files,
    rfc3339,
    tree_of,
    tree_problems,
)

PASSES = 50
STEP = timedelta(minutes=10)
TOKEN = "kill-test-token"  # a throwaway credential of the loopback test server
SEED = int(os.environ.get("POLICYENGINE_KILL_SEED", "20240501"))


def course_files() -> dict[str, str]:
    """The ModelMesh canary in 49 steps of 2 % (one a pass, then promotion), beside the blue-green
    and the mirror examples, so that some passes carry several commits."""
    canary = example_files(
        "modelmesh-canary",
        "policies/fraud-detector.yaml",
        steps=None,
        stepWeight=2,
        maxWeight=98,
    )
    green = example_files(
        "kserve-bluegreen", "policies/churn-predictor.yaml", validationWindow="1h"
    )
    mirror = example_files("gateway-mirror", "policies/image-classifier.yaml")
    files = {**green, **mirror, **canary}
    return {path: text for path, text in files.items() if not path.startswith("argocd/")}


@dataclass
class Tally:
    finished: int = 0
    killed: int = 0
    unpushed: int = 0  # killed with commits in its cache that the remote did not have yet
    pushed_then_killed: int = 0  # killed after its push landed


def _cache_head(cache: Path) -> str:
    if not (cache / ".git").is_dir():
        return ""  # killed before its first clone finished
    probe = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
        cwd=cache,
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.stdout.strip()


def check_remote_state(repo: ReleaseRepo, sha: str, scratch: Path) -> None:
    """What `policyengine validate` says of the remote at `sha`, plus CRD schemas and status."""
    exported = repo.export(scratch / sha, sha)
    result = repo.cli("validate", str(exported), "--repo", str(exported))
    assert result.exit_code == 0, f"remote at {sha} fails validate:\n{result.output}"
    assert tree_problems(tree_of(repo.remote, sha)) == [], sha


@pytest.mark.slow
def test_sigkill_at_random_points_never_breaks_the_remote_and_the_next_pass_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = course_files()
    reference = ReleaseRepo.create(tmp_path / "reference", files)
    victim = ReleaseRepo.create(tmp_path / "victim", files)
    assert reference.head() == victim.head()
    script = console_script()
    rng = random.Random(SEED)
    tally = Tally()
    monkeypatch.setenv(TOKEN_VARIABLE, TOKEN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICYENGINE_AUTHOR")}

    with (
        serve_git_over_http(victim.remote.parent, TOKEN) as server,
        tempfile.TemporaryFile() as engine_log,
    ):
        url = server.url_of(victim.remote.name)
        engine_args = ["--repo", url, "--cache-dir", str(victim.cache)]

        def converge(now: str) -> None:
            result = victim.cli("reconcile", "--once", *engine_args, "--now", now)
            assert result.exit_code == 0, f"the pass after the kill failed:\n{result.output}"

        pending_check: str | None = None
        duration = 0.0  # of an uninterrupted pass, measured on the first one
        for index in range(PASSES):
            now = rfc3339(T0 + index * STEP)
            before = victim.head()
            started = time.monotonic()
            engine_log.seek(0)
            engine_log.truncate()
            with running(
                [str(script), "reconcile", "--once", *engine_args, "--now", now],
                group=True,  # its own process group: the kill takes its git children
                env=env,
                stdout=engine_log,
                stderr=subprocess.STDOUT,
            ) as engine:
                deadline = started + rng.uniform(0.3, 1.1) * duration if index else float("inf")
                # Use the wait: the uninterrupted run's pass, and the check of the previous kill.
                reference.reconcile(T0 + index * STEP)
                if pending_check is not None:
                    check_remote_state(victim, pending_check, tmp_path / "checks")
                    pending_check = None
                try:
                    engine.wait(timeout=min(60.0, max(0.0, deadline - time.monotonic())))
                    engine_log.seek(0)
                    assert engine.returncode == 0, (
                        f"pass {index} failed on its own:\n{engine_log.read().decode()[-3000:]}"
                    )
                    duration = duration or time.monotonic() - started
                    tally.finished += 1
                except subprocess.TimeoutExpired:
                    os.killpg(engine.pid, signal.SIGKILL)
                    engine.wait()
                    tally.killed += 1
            head = victim.head()
            if head != before:
                tally.pushed_then_killed += engine.returncode != 0
                pending_check = head
            elif _cache_head(victim.cache) not in ("", head):
                tally.unpushed += 1

            converge(now)
            if victim.head() != reference.head():
                assert victim.tree() == reference.tree(), f"pass {index} did not converge"
                pytest.fail(f"pass {index}: same files, but the history differs")
        if pending_check is not None:
            check_remote_state(victim, pending_check, tmp_path / "checks")

    print(f"seed {SEED}: {tally}")
    assert tally.killed >= PASSES // 4, tally
    final = reference.tree()
    assert "phase: succeeded" in final[".policyengine/status/fraud-detection/fraud-detector.yaml"]
    subjects = [c.subject for c in victim.log()]
    assert len(subjects) == 1 + PASSES + 4, subjects  # seed, 49 steps + promote, 2 + 2 others
    git(victim.remote, "fsck", "--no-progress", "--connectivity-only")
