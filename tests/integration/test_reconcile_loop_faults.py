"""`reconcile --interval` outlives every dependency failing in turn: the Git remote gone, the engine's
clone broken, Prometheus answering 500, hanging, answering garbage. Each failing pass is reported,
the next one runs, and once everything is back the release is measured again.

Real git and the installed console script in its own process; Prometheus is a loopback HTTP
stand-in (tests/support/http_standin.py) because the test must switch its answers pass by pass.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from policyengine.gitops.commits import format_rfc3339
from tests.support.http_standin import Answer, Seen, serve
from tests.support.incidents import POLICY, canary_policy, release_repo
from tests.support.release_repos import console_script

FAULTS = {
    "ok": Answer(),
    "500": Answer(status=500, body=b'{"status":"error","error":"overloaded"}'),
    "hang": Answer(pause=6.0),
    "garbage": Answer(body=b"<html>proxy error</html>"),
}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout} s for {what}:\n{log.read_text()}")


def shown(phrase: str, log: Path) -> Callable[[], bool]:
    return lambda: phrase in log.read_text()


def test_the_loop_survives_every_dependency_failing_in_turn(tmp_path: Path) -> None:
    text = canary_policy([{"metric": "error-rate", "max": 0.02}], min_dwell="2m")
    text = text.replace("    provider:\n", "    provider:\n      timeout: 2s\n      retries: 0\n")
    assert "timeout: 2s" in text
    repo = release_repo(tmp_path / "repo", text)
    state = {"fault": "ok"}

    def answer(_: Seen) -> Answer:
        return FAULTS[state["fault"]]

    with serve(answer) as prometheus:
        # The release began an hour ago, so every wall-clock pass has windows to measure.
        began = datetime.now(UTC) - timedelta(hours=1)
        args = ["--repo", str(repo.remote), "--cache-dir", str(repo.cache)]
        args += ["--prometheus", prometheus.url]
        first = subprocess.run(
            [str(console_script()), "reconcile", "--once", *args, "--now", format_rfc3339(began)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert first.returncode == 0 and "advance v1=90,v2=10" in first.stdout, first
        log = tmp_path / "loop.out"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [str(console_script()), "reconcile", "--interval", "1s", *args],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:

                def queried_after(count: int) -> Callable[[], bool]:
                    return lambda: len(prometheus.seen) > count

                wait_for(queried_after(0), 30, "a measured pass", log)
                for fault, phrase in (
                    ("500", "HTTP 500"),
                    ("hang", "deadline of 2 s"),
                    ("garbage", "unreadable body"),
                ):
                    state["fault"] = fault
                    seen = len(prometheus.seen)
                    wait_for(queried_after(seen), 30, f"a pass against {fault}", log)
                    wait_for(shown(phrase, log), 30, phrase, log)
                state["fault"] = "ok"
                # Git: the remote disappears, then the engine's own clone is broken.
                gone = repo.remote.with_name("moved.git")
                repo.remote.rename(gone)
                mark = log.read_text().count("error:")
                wait_for(lambda: log.read_text().count("error:") > mark, 30, "git error", log)
                gone.rename(repo.remote)
                shutil.rmtree(repo.cache / ".git" / "refs")
                seen = len(prometheus.seen)
                wait_for(queried_after(seen + 1), 40, "measured again", log)
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=30) == 0, log.read_text()
            finally:
                if process.poll() is None:
                    process.kill()
    output = log.read_text()
    assert "Traceback" not in output, output
    assert f"{POLICY}: hold" in output
    assert "received SIGTERM: finishing the pass" in output
