"""Forge webhooks: is a delivery authentic, and does it ask for a pass?

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`; events in
  `X-GitHub-Event` (`push`, `pull_request`, `ping`).
- GitLab: `X-Gitlab-Token` is the secret itself; events in `X-Gitlab-Event` (`Push Hook`,
  `Merge Request Hook`).
- Gitea and Forgejo: `X-Forgejo-Signature` or `X-Gitea-Signature`, the bare hex HMAC-SHA256 of the
  raw body (Forgejo sends both; when the Forgejo one is present it is the one checked); events in
  `X-Forgejo-Event` / `X-Gitea-Event`.

Signatures are checked in constant time over the bytes received, before the body is parsed. A
push to the reconciled branch, or a pull request merged into it, asks for a pass; anything else
is acknowledged and ignored. Pure functions: the HTTP server calls them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FORGES = ("github", "gitlab", "gitea")


@dataclass(frozen=True)
class Delivery:
    """What a verified delivery means for the engine."""

    trigger: bool  # start a pass now
    event: str  # the forge's event name, for the log
    detail: str  # why it does or does not trigger


def sign(secret: bytes, body: bytes) -> str:
    """The hex HMAC-SHA256 of `body` under `secret` (what GitHub and Gitea compute)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def authentic(forge: str, secret: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether the delivery carries the right signature (or token) for `secret`.

    `headers` must be keyed by lower-case name. An empty secret authenticates nothing.
    """
    if not secret:
        return False
    if forge == "github":
        given = headers.get("x-hub-signature-256", "")
        return hmac.compare_digest(given.encode(), f"sha256={sign(secret, body)}".encode())
    if forge == "gitlab":
        return hmac.compare_digest(headers.get("x-gitlab-token", "").encode(), secret)
    if forge == "gitea":
        given = headers.get("x-forgejo-signature") or headers.get("x-gitea-signature", "")
        return hmac.compare_digest(given.strip().lower().encode(), sign(secret, body).encode())
    raise ValueError(f"unknown forge {forge!r}: one of {', '.join(FORGES)}")


def interpret(forge: str, headers: Mapping[str, str], body: bytes, branch: str) -> Delivery:
    """What an authentic delivery asks for. Unknown events and unreadable bodies never trigger."""
    event = _event_name(forge, headers)
    try:
        payload: Any = json.loads(body or b"{}")
    except ValueError:
        return Delivery(False, event, "the body is not JSON")
    if not isinstance(payload, dict):
        return Delivery(False, event, "the body is not a JSON object")
    ref = f"refs/heads/{branch}"
    if event in ("push", "Push Hook"):
        pushed = payload.get("ref")
        if pushed == ref:
            return Delivery(True, event, f"push to {branch}")
        return Delivery(False, event, f"push to {pushed}, not {ref}")
    if event == "pull_request":  # GitHub, Gitea and Forgejo
        pull = payload.get("pull_request") or {}
        base = (pull.get("base") or {}).get("ref")
        if payload.get("action") == "closed" and pull.get("merged") and base == branch:
            return Delivery(True, event, f"pull request merged into {branch}")
        return Delivery(False, event, f"pull request {payload.get('action')} (base {base})")
    if event == "Merge Request Hook":
        attributes = payload.get("object_attributes") or {}
        target = attributes.get("target_branch")
        if attributes.get("action") == "merge" and target == branch:
            return Delivery(True, event, f"merge request merged into {branch}")
        return Delivery(False, event, f"merge request {attributes.get('action')} ({target})")
    return Delivery(False, event, "event ignored")


def _event_name(forge: str, headers: Mapping[str, str]) -> str:
    if forge == "github":
        return headers.get("x-github-event", "")
    if forge == "gitlab":
        return headers.get("x-gitlab-event", "")
    return headers.get("x-forgejo-event") or headers.get("x-gitea-event", "")
