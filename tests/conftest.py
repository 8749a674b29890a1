"""Shared fixtures: every test runs git with a clean, pinned environment; no module leaves a
process running."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.processes import live_children

PINNED_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "A U Thor",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "C O Mitter",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}


@pytest.fixture(autouse=True)
def clean_git_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No GIT_* leaked from a hook or a parent git; a pinned identity; no personal git config.

    Like pre-commit's testing fixtures: a developer's ~/.gitconfig (signing, hooks, default
    branch) must not change what the tests see.
    """
    for key in list(os.environ):
        if key.startswith("GIT_"):
            monkeypatch.delenv(key)
    for key, value in PINNED_GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    global_config = tmp_path_factory.getbasetemp() / "gitconfig"
    if not global_config.exists():
        global_config.write_text("[init]\n\tdefaultBranch = main\n", encoding="utf-8")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("POLICYENGINE_GIT_TOKEN", raising=False)
    monkeypatch.delenv("POLICYENGINE_GIT_TOKEN_FILE", raising=False)
    yield


@pytest.fixture(scope="module", autouse=True)
def no_process_left_running() -> Iterator[None]:
    """Fail the module that leaves a child process running (a module-scoped Prometheus is
    stopped before this check: this fixture is set up first, so it is torn down last)."""
    before = set(live_children())
    yield
    left = [child for child in live_children() if child not in before]
    if left:
        pytest.fail(f"child processes left running: {left}")
