"""Notifications from real passes (a real Git remote and engine) to loopback HTTP receivers that
stand in for Slack's incoming webhooks, a Teams Workflows webhook and a generic JSON endpoint
(none of them can be reached from here). The receivers can answer errors, Retry-After, or hang.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from policyengine.controller.notify import Notifier, NotifySettings
from policyengine.reconciler import Engine, EngineSettings
from tests.support.receivers import Receiver, receiving
from tests.support.release_repos import ReleaseRepo, example_files

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LINK = "https://forge.example/org/releases/commit/{sha}"


def _engine(tmp_path: Path, **strategy: Any) -> tuple[ReleaseRepo, Engine]:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary", **strategy))
    return repo, Engine(EngineSettings(repo=str(repo.remote), cache_dir=repo.cache))


def _settings(receiver: Receiver, **overrides: Any) -> NotifySettings:
    return NotifySettings(
        sinks={
            "slack": receiver.url("/slack"),
            "teams": receiver.url("/teams"),
            "webhook": receiver.url("/webhook"),
        },
        link_template=LINK,
        **{"backoff": 0.05, "max_backoff": 0.5, **overrides},
    )


def test_a_decision_reaches_slack_teams_and_the_webhook_with_its_evidence_and_commit(
    tmp_path: Path,
) -> None:
    repo, engine = _engine(tmp_path)
    with receiving() as receiver:
        notifier = Notifier(_settings(receiver))
        result = engine.reconcile_once(T0)
        notifier.on_pass(result, T0)
        assert notifier.flush(10)
        notifier.stop()
    head = repo.head()
    by_path = dict(receiver.received)
    assert set(by_path) == {"/slack", "/teams", "/webhook"}

    generic = by_path["/webhook"]
    assert generic["event"] == "decision"
    assert generic["policy"] == "fraud-detection/fraud-detector"
    assert generic["decision"] == "advance"
    assert generic["weights"] == "v1=90,v2=10"
    assert generic["link"] == LINK.format(sha=head)
    assert generic["reason"]

    slack = by_path["/slack"]
    assert slack["text"] == "fraud-detection/fraud-detector: advance to v1=90,v2=10"
    assert f"<{LINK.format(sha=head)}|commit>" in slack["blocks"][0]["text"]["text"]

    teams = by_path["/teams"]
    card = teams["attachments"][0]
    assert teams["type"] == "message"
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    assert card["content"]["actions"][0]["url"] == LINK.format(sha=head)


def test_holds_longer_than_the_limit_are_notified_once(tmp_path: Path) -> None:
    _, engine = _engine(tmp_path, minDwell="1h")
    with receiving() as receiver:
        notifier = Notifier(
            NotifySettings(
                sinks={"webhook": receiver.url("/webhook")}, hold_after=timedelta(minutes=10)
            )
        )
        for minute in (0, 1, 5, 12, 13, 20):  # advance at 0, then holds (1 h dwell)
            now = T0 + timedelta(minutes=minute)
            notifier.on_pass(engine.reconcile_once(now), now)
        assert notifier.flush(10)
        notifier.stop()
    events = [(payload["event"], payload["decision"]) for _, payload in receiver.received]
    assert events == [("decision", "advance"), ("hold", "hold")]
    hold = receiver.received[1][1]
    assert hold["heldForSeconds"] == 11 * 60  # first hold at +1 min, noticed at +12
    assert hold["weights"] == "v1=90,v2=10" and "held" in hold["reason"]


def test_failures_are_retried_with_backoff_and_retry_after(tmp_path: Path) -> None:
    _, engine = _engine(tmp_path)
    with receiving() as receiver:
        receiver.script = [(503, {}), (429, {"Retry-After": "0.3"}), (200, {})]
        notifier = Notifier(NotifySettings(sinks={"webhook": receiver.url("/w")}, backoff=0.05))
        notifier.on_pass(engine.reconcile_once(T0), T0)
        assert notifier.flush(10)
        notifier.stop()
    assert len(receiver.received) == 1
    assert notifier.stats.attempts == 3 and notifier.stats.sent == 1
    gaps = [b - a for a, b in zip(receiver.arrivals, receiver.arrivals[1:], strict=False)]
    assert gaps[1] >= 0.3  # the receiver's Retry-After, not the 0.1 s backoff


def test_a_refusal_is_not_retried_and_a_dead_receiver_is_given_up(tmp_path: Path) -> None:
    _, engine = _engine(tmp_path)
    result = engine.reconcile_once(T0)
    with receiving() as receiver:
        receiver.script = [(400, {})]
        notifier = Notifier(NotifySettings(sinks={"webhook": receiver.url("/w")}, backoff=0.01))
        notifier.on_pass(result, T0)
        assert notifier.flush(10)
        notifier.stop()
    assert notifier.stats.attempts == 1 and notifier.stats.failed == 1
    dead = Notifier(
        NotifySettings(sinks={"webhook": "http://127.0.0.1:9/"}, attempts=3, backoff=0.01)
    )
    dead.on_pass(result, T0)
    assert dead.flush(10)
    dead.stop()
    assert dead.stats.attempts == 3 and dead.stats.failed == 1


def test_a_hanging_receiver_never_blocks_a_pass(tmp_path: Path) -> None:
    _, engine = _engine(tmp_path)
    result = engine.reconcile_once(T0)
    with receiving() as receiver:
        receiver.delay = 2.0
        notifier = Notifier(
            NotifySettings(
                sinks={"webhook": receiver.url("/w")}, timeout=0.5, attempts=1, queue_size=2
            )
        )
        started = time.monotonic()
        for _ in range(5):  # the first is in flight, two wait, the rest push the oldest out
            notifier.on_pass(result, T0)
        took = time.monotonic() - started
        assert took < 0.1, took
        assert notifier.stats.dropped >= 2
        notifier.stop(timeout=5)
