"""The release-status file `.policyengine/status/<namespace>/<name>.yaml`: its path, dump and parse.

Written only by the engine, so a plain generated document (fixed key order, PyYAML) is enough;
ruamel's round trip is for files people edit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml

from policyengine.errors import InvalidPolicyError
from policyengine.gitops.commits import format_rfc3339, parse_rfc3339
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Phase, TrafficSplit

STATUS_DIR = ".policyengine/status"
HEADER = "# written by policyengine; do not edit\n"


class StatusFileError(InvalidPolicyError):
    """A release-status file cannot be read back (hand-edited or truncated)."""


def status_path(policy_key: str) -> str:
    """Repository-relative path of a policy's status file (POSIX separators)."""
    namespace, sep, name = policy_key.partition("/")
    if not sep or not namespace or not name or "/" in name or ".." in (namespace, name):
        raise ValueError(f"not a policy key <namespace>/<name>: {policy_key!r}")
    return f"{STATUS_DIR}/{namespace}/{name}.yaml"


# The C emitter and parser when libyaml is there: a cold pass reads thousands of status files.
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StatusDumper(_Dumper):  # type: ignore[valid-type,misc]
    """Multi-line text (reasons, evidence tables) as literal blocks, readable in a diff."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_StatusDumper.add_representer(str, _represent_text)


def dump_status(status: ReleaseStatus) -> str:
    """The file's text: header comment, then keys in a fixed order, times in RFC 3339 UTC."""
    document: dict[str, Any] = {
        "policy": status.policy,
        "phase": status.phase.value,
        "releaseId": status.release_id,
        "step": status.step,
        "stepStartedAt": format_rfc3339(status.step_started_at),
        "releaseStartedAt": format_rfc3339(status.release_started_at),
        "weights": dict(status.split.weights),
    }
    if status.split.mirror_to is not None:
        document["mirror"] = {"to": status.split.mirror_to, "percent": status.split.mirror_percent}
    document["stable"] = status.stable
    document["lastDecision"] = status.last_decision.value if status.last_decision else None
    document["lastReason"] = status.last_reason
    document["evaluatedAt"] = format_rfc3339(status.evaluated_at) if status.evaluated_at else None
    document["evidence"] = status.evidence
    document["extra"] = dict(sorted(status.extra.items()))
    body = yaml.dump(
        document,
        Dumper=_StatusDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return HEADER + body


def _time(value: object, key: str) -> datetime:
    if isinstance(value, datetime):  # an unquoted timestamp, if someone wrote one by hand
        if value.tzinfo is None:
            raise StatusFileError(f"{key}: timestamp without a timezone")
        return parse_rfc3339(value.isoformat())
    if not isinstance(value, str):
        raise StatusFileError(f"{key}: expected an RFC 3339 timestamp, got {value!r}")
    try:
        return parse_rfc3339(value)
    except ValueError as error:
        raise StatusFileError(f"{key}: {error}") from error


def _text(value: object, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StatusFileError(f"{key}: expected text, got {value!r}")
    return value


def parse_status(text: str) -> ReleaseStatus:
    """Read a status file back; raises StatusFileError with the offending key."""
    try:
        document = yaml.load(text, Loader=_Loader)  # a safe loader (C or Python)
    except yaml.YAMLError as error:
        raise StatusFileError(f"not YAML: {error}") from error
    if not isinstance(document, dict):
        raise StatusFileError("expected a mapping at the top level")
    try:
        weights_doc = document.get("weights") or {}
        if not isinstance(weights_doc, dict):
            raise StatusFileError("weights: expected a mapping of version to percent")
        weights = tuple((str(name), int(weight)) for name, weight in weights_doc.items())
        mirror = document.get("mirror")
        mirror_to: str | None = None
        mirror_percent = 0.0
        if mirror is not None:
            if not isinstance(mirror, dict) or "to" not in mirror:
                raise StatusFileError("mirror: expected {to, percent}")
            mirror_to = str(mirror["to"])
            mirror_percent = float(mirror.get("percent", 0.0))
        last_decision = document.get("lastDecision")
        evaluated_at = document.get("evaluatedAt")
        extra = document.get("extra") or {}
        if not isinstance(extra, dict):
            raise StatusFileError("extra: expected a mapping")
        stable = document.get("stable")
        return ReleaseStatus(
            policy=_text(document["policy"], "policy"),
            phase=Phase(document["phase"]),
            release_id=_text(document.get("releaseId"), "releaseId"),
            step=int(document["step"]),
            step_started_at=_time(document["stepStartedAt"], "stepStartedAt"),
            release_started_at=_time(document["releaseStartedAt"], "releaseStartedAt"),
            split=TrafficSplit(weights, mirror_to, mirror_percent),
            last_decision=Decision(last_decision) if last_decision is not None else None,
            last_reason=_text(document.get("lastReason"), "lastReason"),
            evaluated_at=_time(evaluated_at, "evaluatedAt") if evaluated_at is not None else None,
            stable=str(stable) if stable is not None else None,
            evidence=_text(document.get("evidence"), "evidence"),
            extra={str(k): _text(v, f"extra.{k}") for k, v in extra.items()},
        )
    except KeyError as error:
        raise StatusFileError(f"missing key {error.args[0]}") from error
    except (TypeError, ValueError) as error:
        raise StatusFileError(str(error)) from error
