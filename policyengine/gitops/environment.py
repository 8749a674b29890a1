"""The environment every git child process runs with: inherited `GIT_*` variables scrubbed.

A `GIT_DIR` or `GIT_INDEX_FILE` leaked from a hook or a parent git would point our commands at
someone else's repository; transport settings a user configures on purpose are kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Transport and TLS knobs a deployment sets deliberately (as pre-commit keeps them).
KEPT_GIT_VARIABLES = frozenset(
    {
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_SSH_VARIANT",
        "GIT_SSL_CAINFO",
        "GIT_SSL_NO_VERIFY",
        "GIT_HTTP_PROXY_AUTHMETHOD",
        "GIT_ALLOW_PROTOCOL",
    }
)


def git_environment(
    extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """`base` (default: os.environ) without inherited GIT_* variables, plus `extra`."""
    source = os.environ if base is None else base
    env = {
        key: value
        for key, value in source.items()
        if not key.startswith("GIT_") or key in KEPT_GIT_VARIABLES
    }
    # Never wait for a password on a terminal nobody watches; fail and say so instead.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env["LC_ALL"] = "C"  # git's messages are parsed (push rejections); keep them in English
    env.update(extra or {})
    return env
