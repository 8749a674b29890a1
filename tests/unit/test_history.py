"""History from `git log` text: records per policy, filtering, and both renderings."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from policyengine.gitops.commits import (
    PolicyDecisionNote,
    engine_commit_message,
    grouped_commit_message,
)
from policyengine.gitops.history import (
    HistoryEntry,
    parse_history_log,
    render_history_json,
    render_history_text,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _log(*commits: tuple[str, str, str]) -> str:
    return "".join(f"{sha}\x1f{date}\x1f{message}\x1e\n" for sha, date, message in commits)


LOG = _log(
    ("a" * 40, "2024-05-01T11:00:00+00:00", "Add fraud v2 candidate\n\nby a person\n"),
    (
        "b" * 40,
        "2024-05-01T12:00:05+00:00",
        engine_commit_message("risk/fraud", "advance", "v1=90,v2=10", "step 1 due", T0),
    ),
    (
        "c" * 40,
        "2024-05-01T12:10:05+02:00",
        grouped_commit_message(
            [
                PolicyDecisionNote("risk/fraud", "advance", "v1=50,v2=50", "step 2 due"),
                PolicyDecisionNote("ads/ctr", "rollback", "v1=100,v2=0", "latency p99 > 300ms"),
            ],
            T0 + timedelta(minutes=10),
        ),
    ),
)


def test_every_policy_gets_its_own_timeline() -> None:
    entries = parse_history_log(LOG)
    assert [(e.policy, e.decision, e.weights, e.commit[0], e.reason) for e in entries] == [
        ("risk/fraud", "advance", "v1=90,v2=10", "b", "step 1 due"),
        ("risk/fraud", "advance", "v1=50,v2=50", "c", "step 2 due"),
        ("ads/ctr", "rollback", "v1=100,v2=0", "c", "latency p99 > 300ms"),
    ]
    assert entries[0].time == T0  # Evaluated-At, not the commit time


def test_filter_by_policy() -> None:
    assert [e.commit[0] for e in parse_history_log(LOG, "ads/ctr")] == ["c"]
    assert parse_history_log(LOG, "nobody/none") == []


def test_commit_time_when_evaluated_at_is_missing() -> None:
    log = _log(("d" * 40, "2024-05-01T14:00:00+02:00", "s\n\nr\n\nPolicy: a/b\nDecision: hold\n"))
    (entry,) = parse_history_log(log)
    assert entry.time == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


ENTRIES = [
    HistoryEntry(T0, "risk/fraud", "advance", "v1=90,v2=10", "b" * 40, "step 1 due"),
    HistoryEntry(
        T0 + timedelta(minutes=10), "ads/ctr", "rollback", "v1=100,v2=0", "c" * 40, "slow"
    ),
]


def test_render_text() -> None:
    assert render_history_text(ENTRIES) == (
        "TIME                  POLICY      DECISION  WEIGHTS      COMMIT      REASON\n"
        "2024-05-01T12:00:00Z  risk/fraud  advance   v1=90,v2=10  bbbbbbbbbb  step 1 due\n"
        "2024-05-01T12:10:00Z  ads/ctr     rollback  v1=100,v2=0  cccccccccc  slow\n"
    )
    assert render_history_text([]) == "no engine decisions recorded\n"


def test_render_json() -> None:
    payload = json.loads(render_history_json(ENTRIES))
    assert payload[1] == {
        "time": "2024-05-01T12:10:00Z",
        "policy": "ads/ctr",
        "decision": "rollback",
        "weights": "v1=100,v2=0",
        "commit": "c" * 40,
        "reason": "slow",
        "replaced": False,
        "source": "commit",
    }
    assert json.loads(render_history_json([])) == []


def test_a_replaced_proposal_is_marked_in_the_text() -> None:
    replaced = dataclasses.replace(ENTRIES[0], replaced=True)
    assert "advance (replaced proposal)" in render_history_text([replaced])
