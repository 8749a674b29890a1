"""Where the forge token comes from: the environment or a file, never the policy or the command line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from policyengine.errors import ForgeError

TOKEN_ENV = "POLICYENGINE_FORGE_TOKEN"
TOKEN_FILE_ENV = "POLICYENGINE_FORGE_TOKEN_FILE"


def load_token(environ: Mapping[str, str] | None = None) -> str:
    """The token from POLICYENGINE_FORGE_TOKEN, else from the file POLICYENGINE_FORGE_TOKEN_FILE names."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        return token
    path = env.get(TOKEN_FILE_ENV, "").strip()
    if not path:
        raise ForgeError(f"no forge token: set {TOKEN_ENV} or {TOKEN_FILE_ENV}")
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        # The path is not a secret; the OSError text carries only the path and the reason.
        raise ForgeError(f"cannot read the forge token file {path}: {exc.strerror}") from exc
    if not token:
        raise ForgeError(f"the forge token file {path} is empty")
    return token


_CREDENTIAL_HEADER = re.compile(r"(?i)\b(token|bearer|basic|private-token:?)\s+[^\s'\",;]+")


def redact_token(text: str, environ: Mapping[str, str] | None = None) -> str:
    """The text with the forge token and any `token X` / `Bearer X` credential blanked out.

    For the messages of exceptions the engine did not raise itself (a client library's), which
    may quote a request's headers.
    """
    try:
        token = load_token(environ)
    except ForgeError:
        token = ""
    if token:
        text = text.replace(token, "***")
    return _CREDENTIAL_HEADER.sub(lambda m: f"{m.group(1)} ***", text)
