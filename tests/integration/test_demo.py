"""`policyengine demo` end to end, as a newcomer runs it: exit 0 with one canary promoted and two
rolled back, one of them the LLM canary on vLLM's time to first token, and an A/B/n winner
promoted (read from the kept repository's trailers), a self-contained HTML report with charts,
and the embedded metrics backend deciding exactly as the real Prometheus does.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import pytest

from policyengine.demo.run import DemoOptions, run_demo
from policyengine.routekey import parse_weights
from tests.support.gitrepos import git
from tests.support.prometheus import require_binaries
from tests.support.release_repos import console_script, trailers_of

pytestmark = pytest.mark.prometheus

HEALTHY = "fraud-detection/fraud-detector"
BAD = "credit-risk/credit-scorer"
LLM = "llm-serving/support-chat"
ABN = "shop/recommender"
# Anything a browser would fetch or follow off the page.
NETWORK_REFERENCE = re.compile(
    r"https?:|ftp:|wss?:|//[\w.-]+\.\w|127\.0\.0\.1|localhost|\bsrc\s*=|\bhref\s*=\s*\"(?!#)"
    r"|url\(|@import|<script|<link|<img|<iframe",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def demo_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    require_binaries()
    base = tmp_path_factory.mktemp("demo")
    keep, report = base / "repo", base / "report.html"
    completed = subprocess.run(
        [
            str(console_script()),
            "demo",
            "--seed",
            "1",
            "--keep",
            str(keep),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=600,  # a bound against a hang; one loaded core needs minutes
        check=False,
    )
    return completed, keep, report


def engine_decisions(repo: Path) -> list[dict[str, str]]:
    """The trailers of every engine commit, oldest first, from `git -C DIR log`."""
    log = git(repo, "log", "--reverse", "--format=%B%x00")
    return [trailers_of(message) for message in log.split("\0") if "Decision: " in message]


def test_the_demo_promotes_rolls_back_and_finds_the_abn_winner(
    demo_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    completed, keep, report = demo_run
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Prometheus (" in completed.stdout and "EMBEDDED" not in completed.stdout
    decisions = engine_decisions(keep)
    final = {
        d["Policy"]: d["Decision"] for d in decisions if d["Decision"] in ("promote", "rollback")
    }
    assert final == {HEALTHY: "promote", BAD: "rollback", LLM: "rollback", ABN: "promote"}
    llm = [d for d in decisions if d["Policy"] == LLM]
    assert llm[-1]["Weights"] == "v1=100,v2=0"
    assert "objective failed: slow-first-token on v2" in completed.stdout  # from `history`
    # The A/B/n test opens evenly, moves at most maxChange (10) a pass, and v2 wins.
    abn = [d["Weights"] for d in decisions if d["Policy"] == ABN]
    assert abn[0] == "v1=34,v2=33,v3=33" and abn[-1] == "v1=0,v2=100,v3=0"
    steps = [parse_weights(w) for w in abn[:-1]]
    for before, after in itertools.pairwise(steps):
        assert sum(after.values()) == 100
        assert max(abs(after[v] - before[v]) for v in after) <= 10
    healthy = [d for d in decisions if d["Policy"] == HEALTHY]
    assert [d["Weights"] for d in healthy] == [
        "v1=90,v2=10",
        "v1=80,v2=20",
        "v1=70,v2=30",
        "v1=60,v2=40",
        "v1=50,v2=50",
        "v1=0,v2=100",
    ]
    assert all(d["Evaluated-At"].endswith("Z") for d in decisions)
    assert [d["Weights"] for d in decisions if d["Policy"] == BAD][-1] == "v1=100,v2=0"
    # The kept clone stands alone and clean: its temporary remote is gone.
    assert git(keep, "remote").strip() == ""
    assert git(keep, "status", "--porcelain").strip() == ""
    # The run ends with `history` and the report's path.
    assert "$ policyengine history" in completed.stdout
    assert f"report: {report}" in completed.stdout


def test_the_report_has_charts_and_no_network_reference(
    demo_run: tuple[subprocess.CompletedProcess[str], Path, Path],
) -> None:
    completed, _, report = demo_run
    assert completed.returncode == 0, completed.stderr
    page = report.read_text(encoding="utf-8")
    assert NETWORK_REFERENCE.search(page) is None, NETWORK_REFERENCE.search(page)
    # Per release: the weights and three metric charts.
    assert page.count("<svg") >= 8
    for policy in (HEALTHY, BAD, LLM):
        assert policy.replace("/", "&#47;") in page
    assert "rollback" in page and "promote" in page
    assert "interval" in page  # each decision's evidence table
    # The A/B/n release charts its reward and P(best), and its evidence names both.
    assert ABN.replace("/", "&#47;") in page
    assert "P(best): probability of having the best reward" in page
    assert "reward: accepted" in page and "expected loss" in page


def test_the_embedded_backend_decides_exactly_as_prometheus(
    demo_run: tuple[subprocess.CompletedProcess[str], Path, Path], tmp_path: Path
) -> None:
    """Same seed, same fleet: the stand-in must give the engine the very numbers Prometheus gave,
    so every commit — reasons with their estimates, trailers, times — comes out identical."""
    completed, keep, _ = demo_run
    assert completed.returncode == 0, completed.stderr
    lines: list[str] = []
    result = run_demo(
        DemoOptions(seed=1, keep=tmp_path / "repo", report=tmp_path / "r.html", prometheus=None),
        lines.append,
    )
    assert result.exit_code == 0, "\n".join(lines)
    assert any("EMBEDDED METRICS BACKEND" in line and "NOT Prometheus" in line for line in lines)
    engine_log = ["log", "--format=%H %an%n%B", "--author=policyengine"]
    assert git(tmp_path / "repo", *engine_log) == git(keep, *engine_log)
