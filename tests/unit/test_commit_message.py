"""Engine commit messages: exact format, trailer parsing, recognising engine commits."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta, timezone

import pytest

from policyengine.gitops.commits import (
    EngineRecord,
    PolicyDecisionNote,
    engine_commit_message,
    engine_records,
    format_rfc3339,
    grouped_commit_message,
    is_engine_commit,
    parse_rfc3339,
    parse_trailers,
    policies_of,
)
from policyengine.values import Decision

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_single_decision_message_exact_text() -> None:
    message = engine_commit_message(
        "risk/fraud",
        Decision.ADVANCE,
        "v1=90,v2=10",
        "step 1 of 4 due: dwell 10m passed",
        NOW,
        evidence_markdown="| objective | verdict |\n|---|---|\n| error-rate | pass |",
        extra_trailers={"Release-Id": "abc123"},
    )
    assert message == (
        "policyengine: risk/fraud advance v1=90,v2=10\n"
        "\n"
        "step 1 of 4 due: dwell 10m passed\n"
        "\n"
        "| objective | verdict |\n|---|---|\n| error-rate | pass |\n"
        "\n"
        "Policy: risk/fraud\n"
        "Decision: advance\n"
        "Weights: v1=90,v2=10\n"
        "Evaluated-At: 2024-05-01T12:00:00Z\n"
        "Release-Id: abc123\n"
    )


def test_trailers_agree_with_git_interpret_trailers() -> None:
    message = engine_commit_message(
        "risk/fraud", "rollback", "v1=100,v2=0", "error rate 4% > 1%", NOW, "evidence: table"
    )
    completed = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=message.encode(),
        capture_output=True,
        check=True,
    )
    from_git = [
        tuple(part.strip() for part in line.split(":", 1))
        for line in completed.stdout.decode().splitlines()
    ]
    assert parse_trailers(message) == from_git


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Subject only", []),
        ("Subject\n\nPolicy: a/b", [("Policy", "a/b")]),
        ("Subject\n\nbody\n\nPolicy: a/b\nnot a trailer", []),
        (
            "Subject\n\nKey: one\n  continued\nOther: two\n",
            [("Key", "one continued"), ("Other", "two")],
        ),
        ("Policy: a/b\n", []),  # a subject is never a trailer block
        ("Subject\n\nPolicy: a/b\n\n", [("Policy", "a/b")]),
        ("Subject\r\n\r\nPolicy: a/b\r\n", [("Policy", "a/b")]),
    ],
)
def test_parse_trailers_table(message: str, expected: list[tuple[str, str]]) -> None:
    assert parse_trailers(message) == expected


@pytest.mark.parametrize(
    ("message", "engine"),
    [
        (engine_commit_message("a/b", "hold", "v1=100", "waiting", NOW), True),
        ("Add candidate v2\n\nPolicy: a/b\n", False),  # a person naming a policy is not us
        ("Bump image\n\nSigned-off-by: Someone <s@example.com>\n", False),
        ("Revert\n\nPolicy: a/b\nDecision: maybe\n", False),
        ("Subject\n\nPolicy: a/b\nDecision: done\n", True),
    ],
)
def test_is_engine_commit(message: str, engine: bool) -> None:
    assert is_engine_commit(message) is engine


def test_single_record_takes_reason_from_body() -> None:
    message = engine_commit_message("ns/m", "promote", "v2=100", "all steps passed", NOW, "ev")
    assert engine_records(message) == [
        EngineRecord("ns/m", "promote", "v2=100", NOW, "all steps passed", ())
    ]


def test_grouped_commit_gives_each_policy_its_own_record() -> None:
    notes = [
        PolicyDecisionNote("a/one", Decision.ADVANCE, "v1=75,v2=25", "step 2 due"),
        PolicyDecisionNote(
            "b/two", "rollback", "v1=100,v2=0", "error rate\nabove 1%", {"Release-Id": "r2"}
        ),
        PolicyDecisionNote("c/three", "advance", "v1=50,v2=50", "step 3 due"),
    ]
    message = grouped_commit_message(notes, NOW)
    assert message.splitlines()[0] == "policyengine: 3 decisions (2 advance, 1 rollback)"
    records = engine_records(message)
    assert [(r.policy, r.decision, r.weights, r.reason) for r in records] == [
        ("a/one", "advance", "v1=75,v2=25", "step 2 due"),
        ("b/two", "rollback", "v1=100,v2=0", "error rate above 1%"),
        ("c/three", "advance", "v1=50,v2=50", "step 3 due"),
    ]
    assert records[1].extra == (("Release-Id", "r2"),)
    assert policies_of(message) == ("a/one", "b/two", "c/three")
    completed = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=message.encode(),
        capture_output=True,
        check=True,
    )
    assert completed.stdout.decode().count("Policy: ") == 3


def test_grouped_with_one_note_is_a_single_commit_message() -> None:
    note = PolicyDecisionNote("a/one", "hold", "v1=100", "dwell")
    assert grouped_commit_message([note], NOW) == engine_commit_message(
        "a/one", "hold", "v1=100", "dwell", NOW
    )


@pytest.mark.parametrize(
    ("instant", "text"),
    [
        (NOW, "2024-05-01T12:00:00Z"),
        (NOW.replace(microsecond=250000), "2024-05-01T12:00:00.250000Z"),
        (datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T12:00:00Z"),
    ],
)
def test_rfc3339_round_trip(instant: datetime, text: str) -> None:
    assert format_rfc3339(instant) == text
    assert parse_rfc3339(text) == instant


@pytest.mark.parametrize(
    "call",
    [
        lambda: format_rfc3339(datetime(2024, 5, 1)),
        lambda: engine_commit_message("a/b", "sideways", "v1=100", "", NOW),
        lambda: engine_commit_message(
            "a/b", "hold", "v1=100", "", NOW, extra_trailers={"Policy": "x"}
        ),
        lambda: engine_commit_message(
            "a/b", "hold", "v1=100", "", NOW, extra_trailers={"bad key": "x"}
        ),
        lambda: grouped_commit_message([], NOW),
    ],
)
def test_invalid_inputs_raise_value_error(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]
