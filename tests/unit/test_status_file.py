"""Release-status files: path, exact text, round trip (property), and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyengine.gitops.status import (
    HEADER,
    StatusFileError,
    dump_status,
    parse_status,
    status_path,
)
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Decision, Phase, TrafficSplit

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

EXAMPLE = ReleaseStatus(
    policy="risk/fraud",
    phase=Phase.PROGRESSING,
    release_id="3f2a9c",
    step=1,
    step_started_at=T0 + timedelta(minutes=10),
    release_started_at=T0,
    split=TrafficSplit.of({"v1": 75, "v2": 25}),
    last_decision=Decision.ADVANCE,
    last_reason="step 1 due",
    evaluated_at=T0 + timedelta(minutes=10),
    stable="v1",
    evidence="| objective | verdict |\n|---|---|\n| error-rate | pass |\n",
    extra={"pullRequest": "42"},
)

EXPECTED_TEXT = """\
# written by policyengine; do not edit
policy: risk/fraud
phase: progressing
releaseId: 3f2a9c
step: 1
stepStartedAt: '2024-05-01T12:10:00Z'
releaseStartedAt: '2024-05-01T12:00:00Z'
weights:
  v1: 75
  v2: 25
stable: v1
lastDecision: advance
lastReason: step 1 due
evaluatedAt: '2024-05-01T12:10:00Z'
evidence: |
  | objective | verdict |
  |---|---|
  | error-rate | pass |
extra:
  pullRequest: '42'
"""


def test_dump_exact_text() -> None:
    assert dump_status(EXAMPLE) == EXPECTED_TEXT


def test_parse_exact_text() -> None:
    assert parse_status(EXPECTED_TEXT) == EXAMPLE


def test_mirror_and_empty_fields() -> None:
    status = ReleaseStatus(
        policy="ns/m",
        phase=Phase.IDLE,
        release_id="",
        step=-1,
        step_started_at=T0,
        release_started_at=T0,
        split=TrafficSplit.of({"blue": 100, "green": 0}, mirror_to="green", mirror_percent=12.5),
    )
    text = dump_status(status)
    assert "mirror:\n  to: green\n  percent: 12.5\n" in text
    assert "lastDecision: null\n" in text
    assert parse_status(text) == status


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("risk/fraud", ".policyengine/status/risk/fraud.yaml"),
        ("default/a-b-1", ".policyengine/status/default/a-b-1.yaml"),
    ],
)
def test_status_path(key: str, path: str) -> None:
    assert status_path(key) == path


@pytest.mark.parametrize("key", ["fraud", "/fraud", "risk/", "a/b/c", "../x", "x/.."])
def test_status_path_rejects_non_keys(key: str) -> None:
    with pytest.raises(ValueError):
        status_path(key)


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("- a list\n", "mapping"),
        ("policy: a/b\n", "phase"),
        (EXPECTED_TEXT.replace("progressing", "sideways"), "sideways"),
        (EXPECTED_TEXT.replace("'2024-05-01T12:00:00Z'", "yesterday"), "releaseStartedAt"),
        (EXPECTED_TEXT.replace("'2024-05-01T12:00:00Z'", "'2024-05-01T12:00:00'"), "timezone"),
        (EXPECTED_TEXT.replace("step: 1", "step: [1]"), ""),
        ("policy: [unclosed\n", "YAML"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, mentions: str) -> None:
    with pytest.raises(StatusFileError) as raised:
        parse_status(text)
    assert mentions in str(raised.value)


VERSION = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,10}[A-Za-z0-9])?\Z")
LABEL = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?\Z")
INSTANT = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def statuses(draw: st.DrawFn) -> ReleaseStatus:
    names = draw(st.lists(VERSION, min_size=1, max_size=4, unique=True))
    weights = {name: draw(st.integers(0, 100)) for name in names}
    mirror_to = draw(st.none() | st.sampled_from(names))
    mirror_percent = draw(st.floats(0, 100, allow_nan=False)) if mirror_to else 0.0
    return ReleaseStatus(
        policy=f"{draw(LABEL)}/{draw(LABEL)}",
        phase=draw(st.sampled_from(Phase)),
        release_id=draw(st.text(max_size=20)),
        step=draw(st.integers(-1, 50)),
        step_started_at=draw(INSTANT),
        release_started_at=draw(INSTANT),
        split=TrafficSplit(tuple(weights.items()), mirror_to, mirror_percent),
        last_decision=draw(st.none() | st.sampled_from(Decision)),
        last_reason=draw(st.text()),
        evaluated_at=draw(st.none() | INSTANT),
        stable=draw(st.none() | VERSION),
        evidence=draw(st.text()),
        extra=draw(
            st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=3)
        ),
    )


@settings(max_examples=300, deadline=None)
@given(statuses())
def test_round_trip(status: ReleaseStatus) -> None:
    text = dump_status(status)
    assert text.startswith(HEADER)
    assert parse_status(text) == status
    assert dump_status(parse_status(text)) == text
