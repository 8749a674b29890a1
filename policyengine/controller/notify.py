"""Notifications: Slack, Microsoft Teams and a generic JSON webhook, on decisions and long holds.

After each pass the controller hands the result to `Notifier.on_pass`, which only renders and
queues: a background thread delivers, retrying with exponential backoff (and jitter, and the
receiver's Retry-After) on connection errors, 429 and 5xx. A pass never waits for a receiver; a
full queue drops the oldest message (with a warning) rather than grow or block.

Events:
- `decision`: a policy advanced, was promoted or rolled back, and the commit reached the remote
  (or a pull request carries it): the reason, the weights, the evidence summary and the link.
- `hold`: a policy has held for longer than `hold_after` (counted from the first hold this
  process saw; once per stretch of holds, so a restart can only delay it).

The URLs are secrets (a Slack or Teams webhook URL lets anyone post): they come from the
environment or files and are never logged.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from policyengine.errors import PolicyEngineError
from policyengine.reconciler import PassResult, PolicyPlan
from policyengine.strategies import Decision

log = logging.getLogger("policyengine.controller")

SINK_ENV = {
    "slack": "POLICYENGINE_NOTIFY_SLACK_URL",
    "teams": "POLICYENGINE_NOTIFY_TEAMS_URL",
    "webhook": "POLICYENGINE_NOTIFY_WEBHOOK_URL",
}
_MOVES = (Decision.ADVANCE, Decision.PROMOTE, Decision.ROLLBACK)
_EVIDENCE_LIMIT = 2500  # Slack and Teams truncate long messages; the link has the rest


@dataclass(frozen=True)
class Event:
    """One thing worth telling people."""

    kind: str  # "decision" | "hold"
    policy: str
    decision: str
    weights: str
    reason: str
    evidence: str
    link: str
    at: datetime
    held_for: timedelta | None = None

    @property
    def title(self) -> str:
        if self.kind == "hold":
            minutes = int((self.held_for or timedelta()).total_seconds() // 60)
            return f"{self.policy} has held for {minutes} min at {self.weights}"
        return f"{self.policy}: {self.decision} to {self.weights}"


@dataclass(frozen=True)
class NotifySettings:
    sinks: Mapping[str, str]  # sink kind -> URL
    hold_after: timedelta = timedelta(minutes=30)
    link_template: str = ""  # e.g. https://github.com/org/repo/commit/{sha}
    attempts: int = 5
    backoff: float = 1.0  # seconds before the second attempt; doubles, capped at max_backoff
    max_backoff: float = 60.0
    timeout: float = 10.0
    queue_size: int = 1000

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> NotifySettings:
        """Each sink's URL from POLICYENGINE_NOTIFY_<SINK>_URL, else the file ..._URL_FILE names."""
        env = os.environ if environ is None else environ
        sinks: dict[str, str] = {}
        for sink, variable in SINK_ENV.items():
            value = env.get(variable, "").strip()
            path = env.get(f"{variable}_FILE", "").strip()
            if not value and path:
                try:
                    value = Path(path).read_text(encoding="utf-8").strip()
                except OSError as error:
                    raise PolicyEngineError(
                        f"cannot read {variable}_FILE {path}: {error.strerror}"
                    ) from error
            if value:
                sinks[sink] = value
        return cls(sinks=sinks, **overrides)


# -- rendering (pure) --------------------------------------------------------------------------


def events_of(
    result: PassResult,
    now: datetime,
    holding_since: dict[str, datetime],
    notified: set[str],
    hold_after: timedelta,
    link_template: str,
) -> list[Event]:
    """The events of one pass. `holding_since` and `notified` carry the hold clocks from pass to
    pass (updated here)."""
    proposals = {p.policy: p.url for p in result.proposals if p.url}
    events: list[Event] = []
    for plan in result.plan.policies:
        outcome = plan.outcome
        if outcome is None:
            continue
        if outcome.decision is Decision.HOLD:
            since = holding_since.setdefault(plan.key, now)
            if now - since >= hold_after and plan.key not in notified:
                notified.add(plan.key)
                events.append(
                    _event(
                        "hold",
                        plan,
                        now,
                        _link(plan.key, result, proposals, link_template),
                        now - since,
                    )
                )
            continue
        holding_since.pop(plan.key, None)
        notified.discard(plan.key)
        if outcome.decision not in _MOVES:
            continue
        link = _link(plan.key, result, proposals, link_template)
        if plan.key in result.commit_of or plan.key in proposals:
            events.append(_event("decision", plan, now, link))
    return events


def _event(
    kind: str, plan: PolicyPlan, now: datetime, link: str, held_for: timedelta | None = None
) -> Event:
    assert plan.outcome is not None
    evidence = plan.evidence.strip()
    if len(evidence) > _EVIDENCE_LIMIT:
        evidence = evidence[:_EVIDENCE_LIMIT].rstrip() + "\n…"
    return Event(
        kind=kind,
        policy=plan.key,
        decision=str(plan.outcome.decision),
        weights=plan.outcome.split.trailer(),
        reason=plan.outcome.reason,
        evidence=evidence,
        link=link,
        at=now,
        held_for=held_for,
    )


def _link(key: str, result: PassResult, proposals: Mapping[str, str], template: str) -> str:
    if key in proposals:
        return proposals[key]
    sha = result.commit_of.get(key)
    if sha and template:
        return template.format(sha=sha)
    return sha or ""


def slack_payload(event: Event) -> dict[str, Any]:
    """An incoming-webhook message: `text` for notifications, blocks for the channel."""
    lines = [f"*{event.title}*", event.reason]
    if event.link:
        lines.append(f"<{event.link}|{'pull request' if '/pull' in event.link else 'commit'}>")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}
    ]
    if event.evidence:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{event.evidence}```"}}
        )
    return {"text": event.title, "blocks": blocks}


def teams_payload(event: Event) -> dict[str, Any]:
    """A Teams Workflows webhook message carrying one Adaptive Card."""
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": event.title, "weight": "Bolder", "wrap": True},
        {"type": "TextBlock", "text": event.reason, "wrap": True},
    ]
    if event.evidence:
        body.append(
            {"type": "TextBlock", "text": event.evidence, "wrap": True, "fontType": "Monospace"}
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if event.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": event.link}]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def webhook_payload(event: Event) -> dict[str, Any]:
    """The generic JSON document."""
    return {
        "event": event.kind,
        "policy": event.policy,
        "decision": event.decision,
        "weights": event.weights,
        "reason": event.reason,
        "evidence": event.evidence,
        "link": event.link,
        "at": event.at.isoformat(),
        "heldForSeconds": event.held_for.total_seconds() if event.held_for else None,
    }


PAYLOADS: dict[str, Callable[[Event], dict[str, Any]]] = {
    "slack": slack_payload,
    "teams": teams_payload,
    "webhook": webhook_payload,
}


# -- delivery (a thread) ---------------------------------------------------------------------


@dataclass
class _Message:
    sink: str
    url: str
    payload: dict[str, Any]
    title: str


@dataclass
class NotifierStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    attempts: int = 0
    by_sink: dict[str, int] = field(default_factory=dict)


class Notifier:
    """A pass listener: renders events and queues them for the delivery thread."""

    def __init__(
        self,
        settings: NotifySettings,
        *,
        on_result: Callable[[str, str], None] | None = None,  # (sink, "sent"|"failed"|"dropped")
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.stats = NotifierStats()
        self._on_result = on_result
        self._queue: queue.Queue[_Message | None] = queue.Queue(maxsize=settings.queue_size)
        self._holding_since: dict[str, datetime] = {}
        self._notified: set[str] = set()
        self._stopping = threading.Event()
        self._sleep = sleep or self._interruptible_sleep
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._deliver_all, name="notifier", daemon=True)
        self._thread.start()

    @property
    def enabled(self) -> bool:
        return bool(self.settings.sinks)

    def on_pass(self, result: PassResult, now: datetime) -> None:
        """Render and queue; returns at once."""
        events = events_of(
            result,
            now,
            self._holding_since,
            self._notified,
            self.settings.hold_after,
            self.settings.link_template,
        )
        for event in events:
            for sink, url in self.settings.sinks.items():
                self._put(_Message(sink, url, PAYLOADS[sink](event), event.title))

    def _put(self, message: _Message) -> None:
        while True:
            try:
                self._queue.put_nowait(message)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if dropped is not None:
                    self.stats.dropped += 1
                    self._report(dropped.sink, "dropped")
                    log.warning("notification queue full: dropped %r", dropped.title)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued message was delivered or given up (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued within `timeout`, then stop retrying."""
        self.flush(timeout)
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=timeout)

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _deliver_all(self) -> None:
        while True:
            message = self._queue.get()
            try:
                if message is None:
                    return
                self._deliver(message)
            except Exception:  # a bug here must not kill the thread
                log.exception("notification to %s failed unexpectedly", message and message.sink)
            finally:
                self._queue.task_done()

    def _deliver(self, message: _Message) -> None:
        s = self.settings
        delay = s.backoff
        for attempt in range(1, s.attempts + 1):
            self.stats.attempts += 1
            retry_after: float | None = None
            try:
                response = self._session.post(message.url, json=message.payload, timeout=s.timeout)
                if response.status_code < 300:
                    self.stats.sent += 1
                    self.stats.by_sink[message.sink] = self.stats.by_sink.get(message.sink, 0) + 1
                    self._report(message.sink, "sent")
                    return
                if response.status_code != 429 and response.status_code < 500:
                    # The receiver refuses this message (a bad URL or payload): retrying won't help.
                    why = f"HTTP {response.status_code}"
                    break
                why = f"HTTP {response.status_code}"
                retry_after = _seconds(response.headers.get("Retry-After"))
            except requests.RequestException as error:
                # The URL is a secret: name the sink and the error class only.
                why = type(error).__name__
            if attempt == s.attempts or self._stopping.is_set():
                break
            wait = retry_after if retry_after is not None else delay * random.uniform(0.5, 1.5)
            self._sleep(min(wait, s.max_backoff))
            delay = min(delay * 2, s.max_backoff)
        self.stats.failed += 1
        self._report(message.sink, "failed")
        log.warning("notification to %s not delivered (%s): %s", message.sink, why, message.title)

    def _report(self, sink: str, result: str) -> None:
        if self._on_result is not None:
            self._on_result(sink, result)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
