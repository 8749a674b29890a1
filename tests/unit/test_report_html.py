"""The HTML report: self-contained (nothing loads from a network), one chart per series, and every
decision with its evidence rendered as a table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from policyengine.report_html import (
    DecisionRecord,
    MetricSeries,
    ReleaseTimeline,
    WeightPoint,
    evidence_html,
    render_report,
)
from policyengine.values import TrafficSplit

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
EVIDENCE = (
    "| version | objective | check | verdict | estimate | interval | baseline | samples | test |\n"
    "|---|---|---|---|---|---|---|---|\n"
    "| v2 | error-rate | ❌ fail | 0.031 | [0.02, 0.04] | 0.004 | 900 / 8100 | a \\| b |\n"
    "- hold: sample ratio mismatch\n"
    "- requests this step: v1=8100, v2=900"
)


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def timeline(policy: str = "models/fraud") -> ReleaseTimeline:
    weights = (
        WeightPoint(minutes(0), TrafficSplit.of({"v1": 90, "v2": 10})),
        WeightPoint(minutes(10), TrafficSplit.of({"v1": 50, "v2": 50}, "v3", 20)),
        WeightPoint(minutes(20), TrafficSplit.of({"v1": 100, "v2": 0})),
    )
    error_rate = MetricSeries(
        "error rate",
        "%",
        (
            ("v1", tuple((minutes(i), 0.4) for i in range(1, 31))),
            ("v2", tuple((minutes(i), None if i > 20 else 3.1) for i in range(1, 31))),
        ),
        bound=1.0,
    )
    rate = MetricSeries("requests per minute", "req/min", (("v1", ((minutes(1), 1800.0),)),))
    decisions = (
        DecisionRecord(minutes(10), "advance", weights[1].split, "step 1 passed", ""),
        DecisionRecord(
            minutes(20),
            "rollback",
            weights[2].split,
            "error-rate failed; Prometheus was http://127.0.0.1:9090 <b>",
            EVIDENCE,
        ),
    )
    return ReleaseTimeline(policy, weights, (error_rate, rate), decisions, "rolled back v2")


def test_the_report_is_self_contained() -> None:
    report = render_report([timeline(), timeline("other/model")], generated_at=T0)
    for forbidden in ("http://", "https://", "//", "<script", "<link", "<img", "url(", "@import"):
        assert forbidden not in report.lower(), forbidden
    for reference in re.findall(r'(?:href|src)="([^"]*)"', report):
        assert reference.startswith(("#", "data:")), reference


def test_text_that_mentions_a_url_is_shown_but_never_a_reference() -> None:
    report = render_report([timeline()])
    assert "http:&#47;&#47;127.0.0.1:9090 &lt;b&gt;" in report
    assert "<b>" not in report


def test_one_svg_per_chart_and_a_section_per_release() -> None:
    report = render_report([timeline(), timeline("other/model")])
    # Per release: the weights chart and the two metric charts.
    assert report.count("<svg") == 6
    assert report.count("</svg>") == 6
    assert 'id="release-models-fraud"' in report
    assert 'href="#release-other-model"' in report
    assert "rolled back v2" in report


def test_weights_are_step_lines_and_the_mirror_is_dashed() -> None:
    report = render_report([timeline()])
    weights_svg = report.split("<svg", 2)[1]
    paths = re.findall(r'<path d="([^"]+)"[^>]*stroke="(#[0-9A-Fa-f]{6})"([^>]*)>', weights_svg)
    assert len(paths) == 3  # v1, v2, and v3's mirror share
    for d, _, _ in paths:
        assert re.fullmatch(r"M[\d.]+,[\d.]+(H[\d.]+V[\d.]+)*H[\d.]+", d), d
    dashed = [colour for _, colour, rest in paths if "stroke-dasharray" in rest]
    assert len(dashed) == 1
    assert "rollback" in weights_svg and "advance" in weights_svg


def test_a_gap_in_a_metric_breaks_its_line_and_the_bound_is_drawn() -> None:
    report = render_report([timeline()])
    error_svg = report.split("<svg")[2]
    assert "bound 1" in error_svg
    v2_path = re.findall(r'<path d="([^"]+)"', error_svg)[1]
    assert v2_path.count("M") == 1 and v2_path.count("L") == 19


def test_each_decision_is_a_row_with_its_evidence_as_a_table() -> None:
    report = render_report([timeline()])
    assert report.count('class="badge"') == 2
    assert "<code>v1=50,v2=50,mirror=v3:20</code>" in report
    assert "<th>objective</th>" in report
    assert "<td>a | b</td>" in report
    assert "<li>hold: sample ratio mismatch</li>" in report


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        (
            "| a | b |\n|---|---|\n| 1 | 2 |",
            "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>",
        ),
        ("| not | a table |\n| no separator |", "<pre>| not | a table |\n| no separator |</pre>"),
        ("- one\n- `two`", "<ul><li>one</li><li><code>two</code></li></ul>"),
        ("plain **bold** & <tag>", "<p>plain <strong>bold</strong> &amp; &lt;tag&gt;</p>"),
        ("", ""),
    ],
)
def test_evidence_markdown_becomes_html(markdown: str, expected: str) -> None:
    assert evidence_html(markdown) == expected


def test_an_empty_release_still_renders() -> None:
    report = render_report([ReleaseTimeline("ns/empty", ())])
    assert report.count("<svg") == 1
    assert "No decisions recorded." in report
