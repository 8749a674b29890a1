"""HTTPS-style token auth against a real `git http-backend` on 127.0.0.1: clone and push work,
and the token never shows in argv, .git/config, logs or error messages."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.errors import GitError, GitUnreachableError
from policyengine.gitops.commits import engine_commit_message
from policyengine.gitops.repo import GitCredentials, Workspace
from tests.support.gitrepos import make_remote, remote_file, serve_git_over_http

TOKEN = "s3cr3t-token-5a7d1c"
ENGINE = ("policyengine", "policyengine@example.com")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def argv_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on PATH that records its argv, then runs the real git (observed, not mocked)."""
    real_git = shutil.which("git")
    assert real_git is not None
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log_file = tmp_path / "argv.log"
    shim = shim_dir / "git"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log_file}"\nexec "{real_git}" "$@"\n')
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim_dir}:{Path(real_git).parent}:/usr/bin:/bin")
    return log_file


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    root = tmp_path / "projects"
    root.mkdir()
    make_remote(root, {"manifests/vs.yaml": "weights: {v1: 100}\n"}, name="config.git")
    return root


def _assert_token_absent(workspace_root: Path, argv_log: Path, *texts: str) -> None:
    assert TOKEN not in (workspace_root / ".git" / "config").read_text()
    assert argv_log.exists()  # the shim saw the commands
    assert TOKEN not in argv_log.read_text()
    for text in texts:
        assert TOKEN not in text


@pytest.mark.parametrize("source", ["env", "file"])
def test_clone_and_push_with_a_token(
    projects: Path,
    tmp_path: Path,
    argv_log: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    source: str,
) -> None:
    if source == "env":
        monkeypatch.setenv("POLICYENGINE_GIT_TOKEN", TOKEN)
    else:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        monkeypatch.setenv("POLICYENGINE_GIT_TOKEN_FILE", str(token_file))
    caplog.set_level(logging.DEBUG)
    credentials = GitCredentials.from_environment()
    assert TOKEN not in repr(credentials)

    with serve_git_over_http(projects, TOKEN) as server:
        url = server.url_of("config.git")
        workspace = Workspace.open(url, tmp_path / "cache", credentials=credentials)
        message = engine_commit_message("risk/fraud", "advance", "v1=90,v2=10", "due", NOW)
        workspace.commit(
            {"manifests/vs.yaml": b"weights: {v1: 90, v2: 10}\n"}, message, ENGINE, NOW
        )
        result = workspace.push()
        # Reopen: the fetch path authenticates too.
        Workspace.open(url, tmp_path / "cache", credentials=credentials)
        seen = list(server.seen_authorizations)

    assert result.pushed
    assert (
        remote_file(projects / "config.git", "manifests/vs.yaml") == "weights: {v1: 90, v2: 10}\n"
    )
    assert seen and all(header.startswith("Basic ") for header in seen)
    _assert_token_absent(workspace.root, argv_log, caplog.text)


def test_wrong_token_is_a_clear_error_without_the_token(
    projects: Path, tmp_path: Path, argv_log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = GitCredentials(token="wrong-" + TOKEN)
    with serve_git_over_http(projects, TOKEN) as server:
        url = server.url_of("config.git")
        with pytest.raises(GitUnreachableError) as raised:
            Workspace.open(url, tmp_path / "cache", credentials=wrong)
    message = str(raised.value)
    assert url in message and "authentication" in message and "refused" in message
    assert "wrong-" not in message and TOKEN not in message
    assert TOKEN not in caplog.text and TOKEN not in argv_log.read_text()


def test_token_in_the_url_is_moved_out_of_git_config(
    projects: Path, tmp_path: Path, argv_log: Path
) -> None:
    with serve_git_over_http(projects, TOKEN) as server:
        url = server.url_of("config.git")
        with_token = url.replace("http://", f"http://engine:{TOKEN}@")
        workspace = Workspace.open(with_token, tmp_path / "cache")
    assert workspace.remote == url
    assert TOKEN not in (workspace.root / ".git" / "config").read_text()


def test_unreadable_token_file_names_the_file_only(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(GitError) as raised:
        GitCredentials.from_environment({"POLICYENGINE_GIT_TOKEN_FILE": str(missing)})
    assert str(missing) in str(raised.value)


def test_environment_token_wins_over_the_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    both = {"POLICYENGINE_GIT_TOKEN": "from-env", "POLICYENGINE_GIT_TOKEN_FILE": str(token_file)}
    assert GitCredentials.from_environment(both).token == "from-env"
    only_file = {"POLICYENGINE_GIT_TOKEN_FILE": str(token_file)}
    assert GitCredentials.from_environment(only_file).token == "from-file"
    assert GitCredentials.from_environment({}).token is None
