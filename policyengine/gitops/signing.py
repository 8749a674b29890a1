"""Signed commits: the engine signs its own with an SSH key, and checks who signed a policy change.

Signing: `git fast-import` (how the engine writes commits cheaply) cannot sign, so a batch is
signed when it is made visible: each commit object is re-written with a `gpgsig` header holding
an SSH signature (`ssh-keygen -Y sign -n git`, the format `git commit -S` writes with
`gpg.format=ssh`) over the object without that header. Tree, parents' trees, author, committer
and message stay the same; only the ids change, before anything is pushed.

Checking: `git verify-commit` with `gpg.ssh.allowedSignersFile` (SSH signatures; the file lists
the principals and keys that may sign, see ssh-keygen(1) ALLOWED SIGNERS) and the gpg keyring of
$GNUPGHOME (GPG signatures). A signature by any other key, or none, is refused.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from policyengine.errors import GitError

SIGNING_KEY_ENV = "POLICYENGINE_SIGNING_KEY_FILE"
ALLOWED_SIGNERS_ENV = "POLICYENGINE_ALLOWED_SIGNERS"
_TIMEOUT = 60  # seconds for one ssh-keygen or git call: a hang must not stall the pass

GitRunner = Callable[[list[str], bytes | None], bytes]
"""Runs `git <args>` in the repository with the given stdin; returns stdout, raises on failure."""


@dataclass(frozen=True)
class CommitSigner:
    """Signs commit objects with an SSH private key read from a file (never from a terminal)."""

    key_file: Path

    def __post_init__(self) -> None:
        if not self.key_file.is_file():
            raise GitError(f"signing key {self.key_file} does not exist or is not a file")

    def sign(self, payload: bytes) -> bytes:
        """The armored SSH signature of `payload` in the `git` namespace."""
        try:
            completed = subprocess.run(
                ["ssh-keygen", "-q", "-Y", "sign", "-n", "git", "-f", str(self.key_file)],
                input=payload,
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise GitError(f"cannot sign with {self.key_file}: {error}") from error
        if completed.returncode != 0 or b"BEGIN SSH SIGNATURE" not in completed.stdout:
            detail = completed.stderr.decode(errors="replace").strip()[-300:]
            raise GitError(f"ssh-keygen could not sign with {self.key_file}: {detail}")
        return completed.stdout

    def signed_object(self, raw: bytes, parents: Mapping[str, str]) -> bytes:
        """A commit object (as `git cat-file commit` prints it) with its parents renamed by
        `parents` and a fresh signature; any old signature is dropped first."""
        headers, _, message = raw.partition(b"\n\n")
        kept: list[bytes] = []
        in_signature = False
        for line in headers.split(b"\n"):
            if line.startswith(b" ") and in_signature:
                continue  # a continuation line of the old gpgsig header
            in_signature = line.startswith((b"gpgsig ", b"gpgsig-sha256 "))
            if in_signature:
                continue
            if line.startswith(b"parent "):
                old = line[7:].decode()
                line = b"parent " + parents.get(old, old).encode()
            kept.append(line)
        unsigned = b"\n".join(kept) + b"\n\n" + message
        signature = self.sign(unsigned).rstrip(b"\n").replace(b"\n", b"\n ")
        return b"\n".join(kept) + b"\ngpgsig " + signature + b"\n\n" + message


def sign_chain(git: GitRunner, signer: CommitSigner, base: str, head: str) -> str:
    """Re-write the commits of base..head (oldest first) as signed ones; the new head."""
    listed = git(["rev-list", "--reverse", "--topo-order", head, "--not", base], None)
    commits = listed.decode().split()
    renamed: dict[str, str] = {}
    for commit in commits:
        raw = git(["cat-file", "commit", commit], None)
        signed = signer.signed_object(raw, renamed)
        renamed[commit] = git(["hash-object", "-t", "commit", "-w", "--stdin"], signed).decode()
        renamed[commit] = renamed[commit].strip()
    return renamed.get(head, head)


@dataclass
class SignatureVerifier:
    """Whether a commit is signed by an allowed key; answers are kept per commit id."""

    allowed_signers: Path
    _answers: dict[str, str | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.allowed_signers.is_file():
            raise GitError(f"allowed signers file {self.allowed_signers} does not exist")

    def problem(self, repo: Path, env: Mapping[str, str], commit: str) -> str | None:
        """None when `commit` carries a good signature by an allowed key, else why not."""
        if commit in self._answers:
            return self._answers[commit]
        args = [
            "git",
            "-c",
            f"gpg.ssh.allowedSignersFile={self.allowed_signers.resolve()}",
            "verify-commit",
            "--raw",
            commit,
        ]
        try:
            completed = subprocess.run(
                args, cwd=repo, env=dict(env), capture_output=True, timeout=_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"cannot verify commit {commit[:12]}: {error}"
        answer = None
        if completed.returncode != 0:
            detail = " ".join(completed.stderr.decode(errors="replace").split())
            if not detail or "no signature found" in detail:
                answer = f"commit {commit[:12]} is not signed"
            else:
                answer = f"commit {commit[:12]} is not signed by an allowed key ({detail[:200]})"
        self._answers[commit] = answer
        return answer
