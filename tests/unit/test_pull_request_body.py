"""The pull request's title, body and chart (policyengine/gitops/pullrequest_body.py): pure text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policyengine.analysis.verdict import Assessment, Evidence, ObjectiveResult, Verdict
from policyengine.gitops.commits import engine_commit_message
from policyengine.gitops.pullrequest_body import (
    ChartPoint,
    ProposalText,
    chart_points,
    key_metric,
    proposal_matches,
    pull_request_body,
    pull_request_title,
    release_chart,
    weights_of,
)
from policyengine.report import evidence_markdown
from policyengine.values import Decision, Outcome, Phase, TrafficSplit

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
KEY = "fraud-detection/fraud-detector"
ADVANCE = Outcome(
    Decision.ADVANCE,
    "step 2/5 sends 20 % to v2 after step 1/5 (10 %) held 10m with no objective failing",
    TrafficSplit.of({"v1": 80, "v2": 20}),
    Phase.PROGRESSING,
    1,
)
ROLLBACK = Outcome(
    Decision.ROLLBACK,
    "objective failed: error-rate",
    TrafficSplit.of({"v1": 100, "v2": 0}),
    Phase.FAILED,
    1,
)
EVIDENCE = evidence_markdown(
    Assessment(
        results=(
            ObjectiveResult(
                "error-rate",
                "v2",
                Verdict.PASS,
                "below 0.02",
                Evidence(estimate=0.041, lower=0.02, upper=0.06, samples=1200),
            ),
        ),
        samples={"v1": 10800, "v2": 1200},
    )
)


def text(outcome: Outcome = ADVANCE, **overrides: object) -> ProposalText:
    fields: dict[str, object] = {
        "policy_key": KEY,
        "outcome": outcome,
        "evidence": EVIDENCE,
        "baseline": "v1",
        "branch": f"policyengine/{KEY}",
        "base_branch": "main",
    }
    fields.update(overrides)
    return ProposalText(**fields)  # type: ignore[arg-type]


def message(outcome: Outcome, at: datetime, evidence: str = "") -> str:
    return engine_commit_message(
        KEY, outcome.decision, outcome.split.trailer(), outcome.reason, at, evidence
    )


@pytest.mark.parametrize(
    ("outcome", "title"),
    [
        (ADVANCE, f"policyengine: {KEY} advance v1=80,v2=20"),
        (ROLLBACK, f"policyengine: {KEY} rollback v1=100,v2=0"),
    ],
)
def test_the_title_states_the_decision_and_weights(outcome: Outcome, title: str) -> None:
    assert pull_request_title(KEY, outcome) == title


@pytest.mark.parametrize(
    ("trailer", "weights"),
    [
        ("v1=90,v2=10", {"v1": 90, "v2": 10}),
        ("v1=100,v2=0,mirror=v2:10", {"v1": 100, "v2": 0}),
        ("", {}),
        ("v1=x,v2=5", {"v2": 5}),
    ],
)
def test_weights_are_read_back_from_the_trailer(trailer: str, weights: dict[str, int]) -> None:
    assert weights_of(trailer) == weights


@pytest.mark.parametrize(
    ("evidence", "metric"),
    [
        (EVIDENCE, "error-rate v2 = 0.041"),
        ("", None),
        ("- hold: no traffic yet", None),
        (
            "| version | objective | verdict | estimate |\n|---|---|---|---|\n| v2 | lat | ⏳ | – |",
            None,
        ),
        ("| objective | estimate | version |\n|---|---|---|\n| lat | 12 | v3 |", "lat v3 = 12"),
    ],
)
def test_the_key_metric_is_the_first_estimate_of_the_table(
    evidence: str, metric: str | None
) -> None:
    assert key_metric(evidence) == metric


@pytest.mark.parametrize(
    ("outcome", "expected", "unexpected"),
    [
        (ADVANCE, ["Merging sends v1=80,v2=20 live", "measured from the merge"], ["autoMerge"]),
        (ROLLBACK, ["all traffic back to v1", "ends as failed"], ["measured from"]),
    ],
)
def test_the_body_holds_reason_evidence_next_step_and_chart(
    outcome: Outcome, expected: list[str], unexpected: list[str]
) -> None:
    body = pull_request_body(text(outcome), chart_points(KEY, [], outcome, T0, EVIDENCE))
    assert f"**Reason:** {outcome.reason}" in body
    assert EVIDENCE in body
    assert "### Next step" in body and "### The release so far" in body
    assert "Closing this pull request without merging holds the release" in body
    for phrase in expected:
        assert phrase in body
    for phrase in unexpected:
        assert phrase not in body


def test_the_body_names_argo_cd_and_auto_merge_when_the_policy_does() -> None:
    body = pull_request_body(
        text(argocd_application="argocd/fraud-detector", argocd_gated=True, auto_merge=True), []
    )
    assert "once Argo CD Application argocd/fraud-detector has synced the merge" in body
    assert "(`autoMerge`): the engine merges it itself" in body


def test_without_cluster_access_the_body_does_not_promise_to_wait_for_argo_cd() -> None:
    body = pull_request_body(text(argocd_application="argocd/fraud-detector"), [])
    assert "has synced the merge" not in body
    assert "measured from the merge (the engine has no cluster access" in body
    assert "does not wait for Argo CD Application argocd/fraud-detector" in body


def test_the_next_move_comes_in_a_new_pull_request_after_the_merge() -> None:
    body = pull_request_body(text(ADVANCE), [])
    assert "proposes the next move here" not in body
    assert "opens a new pull request for the next move" in body
    assert "updates this pull request instead" in body


def test_a_release_without_objectives_says_so_instead_of_an_empty_table() -> None:
    body = pull_request_body(text(evidence=""), [])
    assert "_No objectives: this release progresses on time alone._" in body


def test_the_chart_has_a_row_per_decision_then_the_proposal() -> None:
    first = Outcome(
        Decision.ADVANCE,
        "release started",
        TrafficSplit.of({"v1": 90, "v2": 10}),
        Phase.PROGRESSING,
        0,
    )
    other = engine_commit_message(
        "other/policy", "advance", "a=50,b=50", "not ours", T0 + timedelta(minutes=1)
    )
    history = [(T0, message(first, T0)), (T0 + timedelta(minutes=1), other)]
    points = chart_points(KEY, history, ADVANCE, T0 + timedelta(minutes=12), EVIDENCE)
    assert points == [
        ChartPoint(T0, "advance", {"v1": 90, "v2": 10}),
        ChartPoint(
            T0 + timedelta(minutes=12),
            "advance",
            {"v1": 80, "v2": 20},
            "error-rate v2 = 0.041",
            proposed=True,
        ),
    ]
    assert release_chart(points, "v1").splitlines() == [
        "| time (UTC) | decision | v1 | v2 | candidates | key metric |",
        "|---|---|---|---|---|---|",
        "| 2024-05-01 10:00 | advance | 90 | 10 | `█░░░░░░░░░` 10 % | – |",
        "| 2024-05-01 10:12 | **advance** (proposed) | 80 | 20 | `██░░░░░░░░` 20 % "
        "| error-rate v2 = 0.041 |",
    ]


@pytest.mark.parametrize(
    ("proposed", "now", "matches"),
    [
        (ADVANCE, ADVANCE, True),
        (ADVANCE, ROLLBACK, False),
        (
            ADVANCE,
            Outcome(
                Decision.ADVANCE, "", TrafficSplit.of({"v1": 70, "v2": 30}), Phase.PROGRESSING, 2
            ),
            False,
        ),
    ],
)
def test_a_proposal_matches_only_the_same_decision_and_weights(
    proposed: Outcome, now: Outcome, matches: bool
) -> None:
    assert proposal_matches(message(proposed, T0), now) is matches
