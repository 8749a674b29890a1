"""Engine commit messages: a readable subject and body, machine-readable trailers, and their parsing.

Pure text in, text out: no git process is involved, so the reconciler and `history` agree on one
format without a round trip through `git interpret-trailers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from policyengine.values import Decision

POLICY = "Policy"
DECISION = "Decision"
WEIGHTS = "Weights"
EVALUATED_AT = "Evaluated-At"
REASON = "Reason"
SUBJECT_PREFIX = "policyengine:"

# Git's own trailer rule: a token of letters, digits and dashes, a colon, a value; continuation
# lines start with whitespace. We accept nothing looser, so prose ending in "Note: x" in an
# evidence table never becomes a trailer unless it is the whole last paragraph.
_TRAILER_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):[ \t]*(.*)$")
_DECISIONS = frozenset(d.value for d in Decision)


@dataclass(frozen=True)
class EngineRecord:
    """One policy's decision as recorded in an engine commit's trailers."""

    policy: str
    decision: str
    weights: str
    evaluated_at: datetime | None
    reason: str = ""  # from a Reason trailer (grouped commits) or the body (single commits)
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PolicyDecisionNote:
    """What a grouped commit says about one policy (the input of `grouped_commit_message`)."""

    policy_key: str
    decision: Decision | str
    weights_trailer: str
    reason: str
    extra_trailers: Mapping[str, str] = field(default_factory=dict)


def format_rfc3339(instant: datetime) -> str:
    """RFC 3339 in UTC with a Z; sub-second digits only when there are any."""
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant!r}: pass an aware datetime (UTC)")
    utc = instant.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_rfc3339(text: str) -> datetime:
    """Inverse of `format_rfc3339`; also accepts offsets other than Z. Raises ValueError."""
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a timezone: {text!r}")
    return parsed.astimezone(UTC)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _trailer_lines(
    policy_key: str,
    decision: Decision | str,
    weights_trailer: str,
    evaluated_at: datetime,
    extra: Mapping[str, str],
    reason: str | None,
) -> list[str]:
    lines = [
        f"{POLICY}: {policy_key}",
        f"{DECISION}: {Decision(decision).value}",
        f"{WEIGHTS}: {weights_trailer}",
        f"{EVALUATED_AT}: {format_rfc3339(evaluated_at)}",
    ]
    if reason is not None:
        lines.append(f"{REASON}: {_one_line(reason)}")
    for key, value in extra.items():
        if not _TRAILER_LINE.match(f"{key}: x") or key in {POLICY, DECISION, WEIGHTS, REASON}:
            raise ValueError(f"not a usable trailer key: {key!r}")
        lines.append(f"{key}: {_one_line(value)}")
    return lines


def engine_commit_message(
    policy_key: str,
    decision: Decision | str,
    weights_trailer: str,
    reason: str,
    evaluated_at: datetime,
    evidence_markdown: str = "",
    extra_trailers: Mapping[str, str] | None = None,
) -> str:
    """The message of a commit carrying one policy's decision."""
    decision_value = Decision(decision).value
    subject = f"{SUBJECT_PREFIX} {policy_key} {decision_value} {weights_trailer}"
    paragraphs = [subject]
    if reason.strip():
        paragraphs.append(reason.strip())
    if evidence_markdown.strip():
        paragraphs.append(evidence_markdown.strip())
    trailers = _trailer_lines(
        policy_key, decision, weights_trailer, evaluated_at, extra_trailers or {}, reason=None
    )
    paragraphs.append("\n".join(trailers))
    return "\n\n".join(paragraphs) + "\n"


def grouped_commit_message(
    notes: Sequence[PolicyDecisionNote], evaluated_at: datetime, evidence_markdown: str = ""
) -> str:
    """One commit for several policies' decisions: one trailer record per policy.

    All records sit in the single final trailer paragraph (so `git interpret-trailers` and
    `git log --format=%(trailers)` see every one); each record starts at its `Policy:` line and
    carries its own `Reason:`, which is how `history` gives every policy its own timeline.
    """
    if not notes:
        raise ValueError("a grouped commit needs at least one decision")
    if len(notes) == 1:
        only = notes[0]
        return engine_commit_message(
            only.policy_key,
            only.decision,
            only.weights_trailer,
            only.reason,
            evaluated_at,
            evidence_markdown,
            only.extra_trailers,
        )
    counts: dict[str, int] = {}
    for note in notes:
        value = Decision(note.decision).value
        counts[value] = counts.get(value, 0) + 1
    summary = ", ".join(f"{n} {d}" for d, n in sorted(counts.items()))
    subject = f"{SUBJECT_PREFIX} {len(notes)} decisions ({summary})"
    body = "\n".join(
        f"- {n.policy_key} {Decision(n.decision).value} {n.weights_trailer}: {_one_line(n.reason)}"
        for n in notes
    )
    paragraphs = [subject, body]
    if evidence_markdown.strip():
        paragraphs.append(evidence_markdown.strip())
    trailers: list[str] = []
    for note in notes:
        trailers += _trailer_lines(
            note.policy_key,
            note.decision,
            note.weights_trailer,
            evaluated_at,
            note.extra_trailers,
            reason=note.reason,
        )
    paragraphs.append("\n".join(trailers))
    return "\n\n".join(paragraphs) + "\n"


def _paragraphs(message: str) -> list[list[str]]:
    paragraphs: list[list[str]] = []
    current: list[str] = []
    for line in message.replace("\r\n", "\n").split("\n"):
        if line.startswith("#"):
            continue  # git strips comment lines from messages it edits; so do we
        if line.strip():
            current.append(line.rstrip())
        elif current:
            paragraphs.append(current)
            current = []
    if current:
        paragraphs.append(current)
    return paragraphs


def parse_trailers(message: str) -> list[tuple[str, str]]:
    """The trailers of a message, in order, repeated keys kept.

    Like `git interpret-trailers --parse` for messages the engine writes: only the last
    paragraph counts, it must not be the subject, and every line in it must be a trailer or a
    continuation line; otherwise the message has no trailers.
    """
    paragraphs = _paragraphs(message)
    if len(paragraphs) < 2:
        return []
    trailers: list[tuple[str, str]] = []
    for line in paragraphs[-1]:
        if line[:1] in (" ", "\t") and trailers:
            key, value = trailers[-1]
            trailers[-1] = (key, f"{value} {line.strip()}".strip())
            continue
        match = _TRAILER_LINE.match(line)
        if match is None:
            return []
        trailers.append((match.group(1), match.group(2).strip()))
    return trailers


def _body_reason(message: str) -> str:
    paragraphs = _paragraphs(message)
    # subject, reason, [evidence], trailers: the reason is the paragraph after the subject.
    if len(paragraphs) >= 3:
        return " ".join(line.strip() for line in paragraphs[1])
    return ""


def engine_records(message: str) -> list[EngineRecord]:
    """Every policy decision an engine commit records (one for single, several for grouped)."""
    trailers = parse_trailers(message)
    groups: list[list[tuple[str, str]]] = []
    for key, value in trailers:
        if key.lower() == POLICY.lower():
            groups.append([(POLICY, value)])
        elif groups:
            groups[-1].append((key, value))
    records: list[EngineRecord] = []
    for group in groups:
        fields: dict[str, str] = {}
        extra: list[tuple[str, str]] = []
        for key, value in group:
            canonical = next(
                (
                    k
                    for k in (POLICY, DECISION, WEIGHTS, EVALUATED_AT, REASON)
                    if k.lower() == key.lower()
                ),
                None,
            )
            if canonical is None:
                extra.append((key, value))
            else:
                fields.setdefault(canonical, value)
        if fields.get(DECISION) not in _DECISIONS:
            continue  # a Policy trailer without a decision is not an engine record
        try:
            evaluated = parse_rfc3339(fields[EVALUATED_AT]) if EVALUATED_AT in fields else None
        except ValueError:
            evaluated = None
        records.append(
            EngineRecord(
                policy=fields[POLICY],
                decision=fields[DECISION],
                weights=fields.get(WEIGHTS, ""),
                evaluated_at=evaluated,
                reason=fields.get(REASON, ""),
                extra=tuple(extra),
            )
        )
    if len(records) == 1 and not records[0].reason:
        only = records[0]
        records = [
            EngineRecord(
                only.policy,
                only.decision,
                only.weights,
                only.evaluated_at,
                _body_reason(message),
                only.extra,
            )
        ]
    return records


def is_engine_commit(message: str) -> bool:
    """True when the message carries at least one engine decision record (so never a release)."""
    return bool(engine_records(message))


def policies_of(message: str) -> tuple[str, ...]:
    """The policy keys an engine commit is about, in order, without duplicates."""
    return tuple(dict.fromkeys(record.policy for record in engine_records(message)))
