"""Real git repositories for tests: a bare remote from a template tree, human clones, and a
token-protected smart-HTTP server (`git http-backend` behind http.server) on 127.0.0.1.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

HUMAN = ("Human Operator", "human@example.com")


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    """Run git as the test process (pinned identity from tests/conftest.py); return stdout."""
    completed = subprocess.run(
        ["git", *args], cwd=cwd, input=input, capture_output=True, check=False
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"git {' '.join(args)} failed in {cwd}: {completed.stderr.decode(errors='replace')}"
        )
    return completed.stdout.decode()


def write_files(root: Path, files: Mapping[str, str | bytes | None]) -> None:
    for path, content in files.items():
        target = root / path
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)


def make_remote(
    base: Path,
    files: Mapping[str, str | bytes] | None = None,
    *,
    template: Path | None = None,
    branch: str = "main",
    name: str = "remote.git",
) -> Path:
    """A bare repository refusing non-fast-forward pushes, seeded with one human commit made
    from `template` (a folder, e.g. examples/modelmesh-canary) and/or `files`."""
    remote = base / name
    git(base, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(remote))
    git(remote, "config", "receive.denyNonFastForwards", "true")
    git(remote, "config", "receive.denyDeletes", "true")
    seed = base / f"{name}-seed"
    git(base, "init", "--quiet", f"--initial-branch={branch}", str(seed))
    # A detached auto-gc would still be deleting objects while we remove the folder.
    git(seed, "config", "gc.auto", "0")
    if template is not None:
        shutil.copytree(template, seed, dirs_exist_ok=True)
    write_files(seed, files or {})
    git(seed, "add", "--all")
    human_commit(seed, {}, "Initial configuration", allow_empty=True)
    git(seed, "push", "--quiet", str(remote), f"HEAD:refs/heads/{branch}")
    shutil.rmtree(seed)
    return remote


def clone(remote: Path | str, dest: Path, branch: str = "main") -> Path:
    git(dest.parent, "clone", "--quiet", "--branch", branch, str(remote), str(dest))
    return dest


def human_commit(
    repo: Path,
    files: Mapping[str, str | bytes | None],
    message: str,
    *,
    author: tuple[str, str] = HUMAN,
    allow_empty: bool = False,
) -> str:
    """Write, stage and commit as a person would (porcelain `git commit`); returns the sha."""
    write_files(repo, files)
    git(repo, "add", "--all")
    args = [
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        message,
        f"--author={author[0]} <{author[1]}>",
    ]
    if allow_empty:
        args.append("--allow-empty")
    git(repo, *args)
    return git(repo, "rev-parse", "HEAD").strip()


def push(repo: Path, branch: str = "main") -> None:
    git(repo, "pull", "--quiet", "--rebase", "origin", branch)
    git(repo, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")


def human_push(
    remote: Path, scratch: Path, files: Mapping[str, str | bytes | None], message: str
) -> str:
    """Clone, commit and push as a human in one go; returns the pushed sha."""
    scratch.mkdir(parents=True, exist_ok=True)
    work = scratch / f"human-{len(list(scratch.iterdir()))}"
    clone(remote, work)
    sha = human_commit(work, files, message)
    push(work)
    return sha


@dataclass(frozen=True)
class LoggedCommit:
    sha: str
    author_email: str
    subject: str
    message: str


def remote_log(remote: Path, branch: str = "main") -> list[LoggedCommit]:
    """The remote branch's first-parent history, oldest first."""
    out = git(
        remote, "log", "--reverse", "--first-parent", "--format=%H%x1f%ae%x1f%s%x1f%B%x1e", branch
    )
    commits = []
    for record in out.split("\x1e"):
        record = record.strip("\n")
        if record:
            sha, email, subject, message = record.split("\x1f", 3)
            commits.append(LoggedCommit(sha, email, subject, message))
    return commits


def remote_file(remote: Path, path: str, branch: str = "main") -> str:
    return git(remote, "show", f"{branch}:{path}")


# -- smart HTTP -------------------------------------------------------------------------------


def _make_handler(project_root: Path, token: str) -> type[BaseHTTPRequestHandler]:
    expected = {f"Bearer {token}"}

    class GitHttpHandler(BaseHTTPRequestHandler):
        """Authorization first, then hand the request to `git http-backend` as CGI would."""

        seen_authorizations: ClassVar[list[str]] = []

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            self.seen_authorizations.append(header)
            if header in expected:
                return True
            if header.startswith("Basic "):
                try:
                    _, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    return False
                return password == token
            return False

        def _serve(self) -> None:
            if not self._authorized():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = self._request_body()
            path, _, query = self.path.partition("?")
            env = {
                "PATH": "/usr/bin:/bin:/usr/local/bin",
                "GIT_PROJECT_ROOT": str(project_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "engine",
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_CONFIG_NOSYSTEM": "1",
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            completed = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            )
            head, _, payload = completed.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = completed.stdout.partition(b"\n\n")
            status = 200
            headers = []
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.strip().split()[0])
                elif key:
                    headers.append((key, value.strip()))
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _request_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        do_GET = _serve
        do_POST = _serve

    return GitHttpHandler


@dataclass(frozen=True)
class GitHttpServer:
    base_url: str  # http://127.0.0.1:PORT
    handler: type[BaseHTTPRequestHandler]

    def url_of(self, repo_name: str) -> str:
        return f"{self.base_url}/{repo_name}"

    @property
    def seen_authorizations(self) -> list[str]:
        return self.handler.seen_authorizations  # type: ignore[attr-defined,no-any-return]


@contextmanager
def serve_git_over_http(project_root: Path, token: str) -> Iterator[GitHttpServer]:
    """Serve the bare repositories under `project_root` on 127.0.0.1 and a free port, requiring
    `Authorization: Bearer <token>` or basic auth with the token as password."""
    handler = _make_handler(project_root, token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield GitHttpServer(f"http://127.0.0.1:{server.server_address[1]}", handler)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
