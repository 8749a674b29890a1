"""Child processes the tests start: always waited for, never left running.

`running(argv)` starts a process and, however the test ends (pass, failed assertion, timeout),
stops it on the way out: SIGTERM, a grace period, then SIGKILL, and always a `wait()` so no
Popen is collected while its process runs (Python's "subprocess ... is still running"
ResourceWarning, an error under `filterwarnings = error`). With `group=True` the process gets
its own process group and the signals go to the whole group (its git children too).

`live_children()` lists this interpreter's child processes that still run; tests/conftest.py
fails a test module that leaves one behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

GRACE_SECONDS = 10.0


def _signal(process: subprocess.Popen[Any], signum: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)


def stop(
    process: subprocess.Popen[Any], *, group: bool = False, grace: float = GRACE_SECONDS
) -> None:
    """SIGTERM, up to `grace` seconds, then SIGKILL; returns once the process is reaped."""
    if process.poll() is None:
        _signal(process, signal.SIGTERM, group)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL, group)
            process.wait()
    elif group:
        # the leader is gone; what it started in its group must not outlive the test
        _signal(process, signal.SIGKILL, group)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


@contextmanager
def running(
    argv: Sequence[str], *, group: bool = False, **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    """A started process, stopped and reaped when the block ends, whatever happened in it."""
    process: subprocess.Popen[Any] = subprocess.Popen(list(argv), start_new_session=group, **popen)
    try:
        yield process
    finally:
        stop(process, group=group)


def live_children(pid: int | None = None) -> list[str]:
    """`pid command` of each running (not zombie) child of `pid` (default: this process)."""
    pid = os.getpid() if pid is None else pid
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    stat = Path(f"/proc/{child}/stat").read_text()
                    state = stat[stat.rindex(")") + 2 :].split()[0]
                    if state not in ("Z", "X"):
                        raw = Path(f"/proc/{child}/cmdline").read_bytes()
                        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()
                        found.append(f"{child} {command}")
    return sorted(found)
