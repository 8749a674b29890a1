"""`reconcile --interval`: pass after pass on the wall clock; SIGTERM lets the pass finish, then exits.

Real git (a bare remote with receive.denyNonFastForwards) and the installed console script.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.support.processes import running
from tests.support.release_repos import ReleaseRepo, console_script, example_files

PATIENCE = 120.0  # seconds; the test passes in a few, the bound only stops a hang


def _wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return True
        time.sleep(0.1)
    return False


def test_the_loop_reconciles_then_sigterm_finishes_the_pass_and_exits(tmp_path: Path) -> None:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary"))
    before = repo.head()
    output = tmp_path / "loop.out"
    with (
        output.open("wb") as sink,
        running(
            [
                str(console_script()),
                "reconcile",
                "--interval",
                "1s",
                "--repo",
                str(repo.remote),
                "--cache-dir",
                str(repo.cache),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        ) as process,
    ):
        # Generous bounds: on one loaded core a pass takes seconds, not milliseconds.
        # The first pass starts the release on the wall clock: one engine commit pushed.
        assert _wait_for(lambda: repo.head() != before, PATIENCE), output.read_text()
        # A later pass has nothing due (the step dwells for minutes): it writes nothing.
        assert _wait_for(lambda: output.read_text().count("plan at") >= 2, PATIENCE)
        head_after_start = repo.head()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=PATIENCE) == 0, output.read_text()
    text = output.read_text()
    assert "received SIGTERM: finishing the pass" in text
    assert "advance v1=90,v2=10" in text
    assert repo.head() == head_after_start
    assert len(repo.engine_commits()) == 1


def test_interval_and_once_exclude_each_other(tmp_path: Path) -> None:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary"))
    result = repo.cli("reconcile", "--once", "--interval", "30s", *repo.engine_args(None))
    assert result.exit_code == 2
    assert "exactly one of --once and --interval" in result.output
    result = repo.cli("reconcile", "--interval", "soon", *repo.engine_args(None))
    assert result.exit_code == 2
    assert "not a duration" in result.output
