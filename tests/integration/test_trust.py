"""Trust: with --allowed-signers the engine acts only on policies whose last change is in a commit
signed by an allowed key, and with --signing-key it signs its own commits.

Real keys (ssh-keygen, ed25519), real SSH-signed commits (`git commit -S`, gpg.format=ssh), real
`git verify-commit`, a bare remote; two policies, so a held one is seen not to block the other.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.gitrepos import clone, git, push, write_files
from tests.support.release_repos import (
    T0,
    ReleaseRepo,
    example_files,
    trailers_of,
)

CANARY = "fraud-detection/fraud-detector"
MIRROR = "vision/image-classifier"
CANARY_FILE = "policies/fraud-detector.yaml"
MIRROR_FILE = "policies/image-classifier.yaml"


def _keygen(folder: Path, name: str) -> tuple[Path, str]:
    """An unencrypted ed25519 key pair; the private key's path and the public key line."""
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is missing: install openssh-client (make test installs it)")
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True,
        timeout=60,
    )
    return key, key.with_suffix(".pub").read_text().strip()


def _signed_push(repo: ReleaseRepo, work: Path, key: Path | None, files: dict[str, str]) -> str:
    """Clone, commit (signed with `key`, or not at all) and push as a person; the new sha."""
    if not work.exists():
        clone(repo.remote, work)
    else:
        git(work, "pull", "--quiet", "--ff-only")
    write_files(work, files)
    git(work, "add", "--all")
    signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"] if key else []
    git(work, *signing, "commit", "--quiet", "--no-verify", *(["-S"] if key else []), "-m", "edit")
    push(work)
    return git(work, "rev-parse", "HEAD").strip()


def _verified(remote: Path, allowed: Path, commit: str) -> bool:
    completed = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", commit],
        cwd=remote,
        capture_output=True,
        timeout=60,
        check=False,
    )
    return completed.returncode == 0


def test_only_signed_policy_changes_are_acted_on_and_engine_commits_are_signed(
    tmp_path: Path,
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    alice, alice_public = _keygen(keys, "alice")
    mallory, _ = _keygen(keys, "mallory")
    engine_key, engine_public = _keygen(keys, "engine")
    allowed = keys / "allowed_signers"
    allowed.write_text(
        f"alice@example.com {alice_public}\npolicyengine@example.com {engine_public}\n"
    )

    canary = example_files("modelmesh-canary", CANARY_FILE)
    mirror = example_files("gateway-mirror", MIRROR_FILE)
    everything = {k: v for k, v in {**mirror, **canary}.items() if not k.startswith("argocd/")}
    policies = {path: everything.pop(path) for path in (CANARY_FILE, MIRROR_FILE)}
    repo = ReleaseRepo.create(tmp_path / "r", everything)  # manifests only, an unsigned seed
    alice_work = tmp_path / "alice"
    _signed_push(repo, alice_work, alice, policies)  # the policies arrive signed by alice
    trust = ["--allowed-signers", str(allowed), "--signing-key", str(engine_key)]

    # both policies are trusted: both start, and the engine's commit is signed by its key
    start = repo.head()
    result = repo.cli("reconcile", "--once", *repo.engine_args(T0), *trust)
    assert result.exit_code == 0, result.output
    engine_commits = repo.engine_commits(since=start)
    assert {trailers_of(c.message)["Policy"] for c in engine_commits} == {CANARY, MIRROR}
    assert all(_verified(repo.remote, allowed, c.sha) for c in engine_commits)
    assert not _verified(repo.remote, allowed, repo.log()[0].sha)  # the seed is unsigned

    # an unsigned change of the canary's policy holds the canary; the mirror keeps going
    changed = policies[CANARY_FILE].replace("minDwell:", "# reviewed\n    minDwell:", 1)
    assert changed != policies[CANARY_FILE]
    mallory_work = tmp_path / "mallory"
    unsigned = _signed_push(repo, mallory_work, None, {CANARY_FILE: changed})
    plan = repo.cli("plan", *repo.engine_args(T0), *trust, "--output", "json")
    assert plan.exit_code == 1, plan.output
    payload = json.loads(plan.stdout)
    [error] = payload["errors"]
    assert error["path"] == CANARY_FILE
    assert f"policy {CANARY} held" in error["message"]
    assert f"commit {unsigned[:12]} is not signed" in error["message"]
    assert {p["policy"] for p in payload["policies"]} == {MIRROR}

    # signed, but by a key that is not allowed: still held, and said so
    wrong = _signed_push(repo, mallory_work, mallory, {MIRROR_FILE: policies[MIRROR_FILE] + "\n"})
    plan = repo.cli("plan", *repo.engine_args(T0), *trust, "--output", "json")
    payload = json.loads(plan.stdout)
    messages = {e["path"]: e["message"] for e in payload["errors"]}
    assert set(messages) == {CANARY_FILE, MIRROR_FILE}
    assert f"commit {wrong[:12]} is not signed by an allowed key" in messages[MIRROR_FILE]
    assert payload["policies"] == []

    # the engine writes nothing for held policies
    before = repo.head()
    result = repo.cli("reconcile", "--once", *repo.engine_args(T0), *trust)
    assert result.exit_code == 1
    assert repo.head() == before
    assert "held: its last change is not trusted" in result.stderr

    # alice signs the canary's change: the canary is released, the mirror stays held
    _signed_push(repo, alice_work, alice, {CANARY_FILE: changed + "# signed off\n"})
    plan = repo.cli("plan", *repo.engine_args(T0), *trust, "--output", "json")
    payload = json.loads(plan.stdout)
    assert [e["path"] for e in payload["errors"]] == [MIRROR_FILE]
    assert {p["policy"] for p in payload["policies"]} == {CANARY}

    # without --allowed-signers nothing is checked (the default): both are planned
    plan = repo.cli("plan", *repo.engine_args(T0), "--output", "json")
    assert {p["policy"] for p in json.loads(plan.stdout)["policies"]} == {CANARY, MIRROR}
