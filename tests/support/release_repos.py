"""Config repositories built from `examples/` for the reconciler's end-to-end tests, and the CLI
driven against them: a bare remote (receive.denyNonFastForwards), human clones, engine passes.

Policies are taken from the examples with their metrics removed (objectives, metric source,
minSamples, pull-request write-back) so that they progress on time alone.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from ruamel.yaml import YAML

from policyengine.cli import main
from policyengine.documents import load_documents
from policyengine.gitops.commits import format_rfc3339
from policyengine.gitops.status import STATUS_DIR, parse_status
from tests.support.crd_schemas import validate_manifest, weight_problems
from tests.support.gitrepos import LoggedCommit, git, human_push, make_remote, remote_log

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
ENGINE_EMAIL = "policyengine@users.noreply.local"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
# The engine's trailers: the contract `history`, `git log` and reviewers rely on.
TRAILER_KEYS = ("Policy", "Decision", "Weights", "Evaluated-At")


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _dump(document: Any) -> str:
    buffer = io.StringIO()
    _round_trip().dump(document, buffer)
    return buffer.getvalue()


def policy_on_time_alone(text: str, **strategy: Any) -> str:
    """An example policy without metrics, so that it progresses on time alone.

    `strategy` overrides fields of spec.strategy (camelCase keys; None removes one).
    """
    document = _round_trip().load(text)
    spec = document["spec"]
    for key in ("objectives", "metrics", "writeBack", "onInconclusive", "analysis"):
        spec.pop(key, None)
    spec["strategy"].pop("minSamples", None)
    for key, value in strategy.items():
        if value is None:
            spec["strategy"].pop(key, None)
        else:
            spec["strategy"][key] = value
    return _dump(document)


def edit_policy(text: str, *, paused: bool | None = None) -> str:
    """The policy with spec.paused set (True/False) or removed (None)."""
    document = _round_trip().load(text)
    if paused is None:
        document["spec"].pop("paused", None)
    else:
        document["spec"]["paused"] = paused
    return _dump(document)


def example_files(name: str, policy_path: str = "policy.yaml", **strategy: Any) -> dict[str, str]:
    """Every file of examples/<name>, its policy (renamed to `policy_path`) on time alone."""
    folder = EXAMPLES / name
    files: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            relative = path.relative_to(folder).as_posix()
            files[relative] = path.read_text(encoding="utf-8")
    files[policy_path] = policy_on_time_alone(files.pop("policy.yaml"), **strategy)
    return files


def modelmesh_baseline_files() -> dict[str, str]:
    """examples/modelmesh-canary before the release: v1 only, at 100 %, and no policy.

    Derived from the example: its VirtualService without v2's destination, its InferenceService
    file without v2's document.
    """
    folder = EXAMPLES / "modelmesh-canary"
    service = _round_trip().load((folder / "manifests/virtualservice.yaml").read_text("utf-8"))
    routes = service["spec"]["http"][0]["route"]
    kept = [r for r in routes if r["headers"]["request"]["set"]["mm-vmodel-id"].endswith("-v1")]
    assert len(kept) == 1 and kept[0]["weight"] == 100, "the example's v1 serves 100 %"
    del routes[1:]
    isvcs = (folder / "manifests/inferenceservices.yaml").read_text("utf-8")
    # the file is a comment, then one `---` document per version: keep the header and v1
    header, v1, v2 = isvcs.split("---\n")
    assert "name: fraud-detector-v1" in v1 and "name: fraud-detector-v2" in v2
    return {
        "argocd/application.yaml": (folder / "argocd/application.yaml").read_text("utf-8"),
        "manifests/virtualservice.yaml": _dump(service),
        "manifests/inferenceservices.yaml": f"{header}---\n{v1}",
    }


def modelmesh_candidate_files() -> dict[str, str]:
    """The human commit that starts the release: the policy, v2's InferenceService, v2 at 0 %."""
    return {
        path: text
        for path, text in example_files("modelmesh-canary").items()
        if path
        in ("policy.yaml", "manifests/virtualservice.yaml", "manifests/inferenceservices.yaml")
    }


def rfc3339(instant: datetime) -> str:
    return format_rfc3339(instant)


@dataclass(frozen=True)
class ReleaseRepo:
    """A bare remote, the engine's cache folder and a folder for human clones."""

    remote: Path
    cache: Path
    humans: Path

    @classmethod
    def create(cls, base: Path, files: Mapping[str, str]) -> ReleaseRepo:
        base.mkdir(parents=True, exist_ok=True)
        remote = make_remote(base, files)
        return cls(remote, base / "cache", base / "humans")

    # -- the engine, through the CLI -----------------------------------------------------------

    def cli(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    def engine_args(self, now: datetime | None) -> list[str]:
        args = ["--repo", str(self.remote), "--cache-dir", str(self.cache)]
        if now is not None:
            args += ["--now", rfc3339(now)]
        return args

    def reconcile(self, now: datetime, *, expect_exit: int = 0) -> Result:
        result = self.cli("reconcile", "--once", *self.engine_args(now))
        assert result.exit_code == expect_exit, (result.exit_code, result.output)
        return result

    def plan(self, now: datetime, output: str = "text") -> Result:
        return self.cli("plan", *self.engine_args(now), "--output", output)

    def history(self, *args: str) -> Result:
        result = self.cli("history", *args, *self.engine_args(None))
        assert result.exit_code == 0, result.output
        return result

    # -- people and the remote -----------------------------------------------------------------

    def human_push(self, files: Mapping[str, str | bytes | None], message: str) -> str:
        return human_push(self.remote, self.humans, files, message)

    def head(self) -> str:
        return git(self.remote, "rev-parse", "refs/heads/main").strip()

    def refs(self) -> str:
        return git(self.remote, "for-each-ref", "--format=%(objectname) %(refname)")

    def log(self) -> list[LoggedCommit]:
        return remote_log(self.remote)

    def engine_commits(self, since: str | None = None) -> list[LoggedCommit]:
        """Engine commits (by author) after `since` on the remote branch, oldest first."""
        log = self.log()
        if since is not None:
            shas = [c.sha for c in log]
            log = log[shas.index(since) + 1 :]
        return [c for c in log if c.author_email == ENGINE_EMAIL]

    def file(self, path: str, revision: str = "main") -> str:
        return git(self.remote, "show", f"{revision}:{path}")

    def tree(self, revision: str = "main") -> dict[str, str]:
        """Every file at `revision`, as text."""
        return tree_of(self.remote, revision)

    def export(self, dest: Path, revision: str = "main") -> Path:
        return export_tree(self.remote, revision, dest)


def tree_of(repo: Path, revision: str = "main") -> dict[str, str]:
    listed = git(repo, "ls-tree", "-r", "--name-only", "-z", revision)
    return {path: git(repo, "show", f"{revision}:{path}") for path in listed.split("\0") if path}


def export_tree(repo: Path, revision: str, dest: Path) -> Path:
    """The files of `revision` written to `dest` (a fresh folder)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=repo, capture_output=True, check=True
    ).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def commit_diff(repo: Path, sha: str, paths: Sequence[str] = ()) -> str:
    """The unified diff a commit makes (against its first parent), limited to `paths`."""
    return git(repo, "diff", "--no-color", "--no-ext-diff", f"{sha}^", sha, "--", *paths)


def changed_paths(repo: Path, sha: str) -> list[str]:
    return git(repo, "diff", "--name-only", f"{sha}^", sha).split()


def trailers_of(message: str) -> dict[str, str]:
    """The last paragraph's `Key: value` lines (the engine writes one record per commit)."""
    last = message.strip().split("\n\n")[-1]
    return dict(line.split(": ", 1) for line in last.splitlines() if ": " in line)


def tree_problems(files: Mapping[str, str]) -> list[str]:
    """What is wrong with a repository state besides `policyengine validate`: manifests that do
    not validate against the CRD schemas or make an unsound split, and unreadable status files."""
    problems: list[str] = []
    for path, text in sorted(files.items()):
        if path.startswith(STATUS_DIR + "/"):
            try:
                parse_status(text)
            except Exception as error:  # any failure to read it back is the finding
                problems.append(f"{path}: {error}")
        elif path.startswith("manifests/"):
            for document in load_documents(text, path).documents:
                found = validate_manifest(document) + weight_problems(document)
                problems += [f"{path}: {problem}" for problem in found]
    return problems


def console_script() -> Path:
    """The installed `policyengine` entry point beside this interpreter (never skipped: the
    package must be installed in the environment the tests run in)."""
    script = Path(sys.executable).parent / "policyengine"
    assert script.is_file(), f"{script} is missing: pip install -e . in this environment"
    return script
