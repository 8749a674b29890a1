"""A long-lived `git fast-import` that writes many commits with one process (one per batch).

Commits land on a private scratch ref; the caller moves its branch with an old-value check once
the stream is closed, so a commit costs a few kilobytes on a pipe instead of several processes.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from policyengine.errors import GitError

SCRATCH_REF = "refs/policyengine/import"


@dataclass(frozen=True)
class SetFile:
    path: str
    mode: str  # 100644 or 100755
    blob: str | None = None  # an existing blob id ...
    content: bytes | None = None  # ... or new content


@dataclass(frozen=True)
class DeleteFile:
    path: str


FileOperation = SetFile | DeleteFile


def _check_path(path: str) -> bytes:
    if "\n" in path or path.startswith('"'):
        raise ValueError(f"path unsupported by fast-import without quoting: {path!r}")
    return path.encode()


def _check_identity_line(line: str) -> bytes:
    """`Name <email> <unix seconds> <+hhmm>`: fast-import's raw date format."""
    if "\n" in line or line.count("<") != 1 or line.count(">") != 1:
        raise ValueError(f"malformed identity for a commit: {line!r}")
    return line.encode()


class CommitStream:
    """One fast-import session; `commit` returns the new commit id immediately (get-mark)."""

    def __init__(self, repo: Path, env: Mapping[str, str]) -> None:
        subprocess.run(
            ["git", "update-ref", "-d", SCRATCH_REF], cwd=repo, env=env, capture_output=True
        )
        # A file, not a pipe: nobody reads stderr until the end, and a full pipe would block.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()/abort()
        self._process = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--done", "--date-format=raw"],
            cwd=repo,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._repo = repo
        self._env = env
        self._marks = 0
        # fast-import resolves its own new commits by mark only, not by id.
        self._mark_of: dict[str, int] = {}
        self.commits = 0
        self.last: str | None = None

    def commit(
        self,
        parent: str,
        author: str,
        committer: str,
        message: bytes,
        operations: Sequence[FileOperation],
    ) -> str:
        """Write one commit on top of `parent` (a commit id); returns its id."""
        self._marks += 1
        mark = self._marks
        parts = [
            f"commit {SCRATCH_REF}\nmark :{mark}\n".encode(),
            b"author " + _check_identity_line(author) + b"\n",
            b"committer " + _check_identity_line(committer) + b"\n",
            b"data %d\n" % len(message),
            message,
            f"\nfrom {self._reference(parent)}\n".encode(),
        ]
        for operation in operations:
            path = _check_path(operation.path)
            if isinstance(operation, DeleteFile):
                parts.append(b"D " + path + b"\n")
            elif operation.content is not None:
                parts.append(f"M {operation.mode} inline ".encode() + path + b"\n")
                parts.append(b"data %d\n" % len(operation.content) + operation.content + b"\n")
            elif operation.blob is not None:
                parts.append(f"M {operation.mode} {operation.blob} ".encode() + path + b"\n")
            else:
                raise ValueError(f"SetFile {operation.path} needs a blob or content")
        parts.append(f"\nget-mark :{mark}\n".encode())
        sha = self._request(b"".join(parts))
        self._mark_of[sha] = mark
        self.commits += 1
        self.last = sha
        return sha

    def _reference(self, commit: str) -> str:
        mark = self._mark_of.get(commit)
        return f":{mark}" if mark is not None else commit

    def _request(self, payload: bytes) -> str:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(payload)
            stdin.flush()
            line = stdout.readline()
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            self._process.kill()
            self._process.wait()
            error = self._error_text()
            self._release()
            raise GitError(f"git fast-import failed in {self._repo}: {error}")
        return line.decode().strip()

    def close(self) -> None:
        """Finish the stream: objects become visible and the scratch ref points at `last`."""
        stdin = self._process.stdin
        assert stdin is not None
        try:
            stdin.write(b"done\n")
            stdin.close()
        except (BrokenPipeError, OSError):
            pass
        code = self._process.wait()
        error = self._error_text() if code != 0 else ""
        self._release()
        if code != 0:
            raise GitError(f"git fast-import failed in {self._repo}: {error}")
        subprocess.run(
            ["git", "update-ref", "-d", SCRATCH_REF],
            cwd=self._repo,
            env=dict(self._env),
            capture_output=True,
        )

    def abort(self) -> None:
        """Stop without writing anything: the batch's objects and ref update are discarded."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        self._release()

    def _release(self) -> None:
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):
                    stream.close()
        if not self._stderr.closed:
            self._stderr.close()

    def __del__(self) -> None:
        # A workspace dropped mid-batch must not leave a fast-import process or open pipes.
        if hasattr(self, "_process"):
            self.abort()

    def _error_text(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return " / ".join(lines[-3:]) or f"exit code {self._process.returncode}"
