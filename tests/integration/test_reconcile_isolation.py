"""Isolation: a broken policy file and a policy whose router fails on its manifest are reported and
skipped; a valid policy beside them still reconciles; the pass exits 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.release_repos import (
    T0,
    ReleaseRepo,
    example_files,
    trailers_of,
)

CANARY = "fraud-detection/fraud-detector"
MIRROR = "vision/image-classifier"
BLUE_GREEN_FILE = "policies/churn-predictor.yaml"

BROKEN = {
    "invalid-yaml": lambda text: text.replace("  strategy:\n", "  strategy: [\n", 1),
    "schema-error": lambda text: text.replace("type: blueGreen", "type: blueGren"),
}


def three_policies(broken: str) -> dict[str, str]:
    """The three examples in one repository: the canary valid, the mirror's route missing from its
    HTTPRoute, the blue-green's file broken."""
    canary = example_files("modelmesh-canary", "policies/fraud-detector.yaml")
    mirror = example_files("gateway-mirror", "policies/image-classifier.yaml")
    mirror["policies/image-classifier.yaml"] = mirror["policies/image-classifier.yaml"].replace(
        "route: infer", "route: predict"
    )
    green = example_files("kserve-bluegreen", BLUE_GREEN_FILE)
    green[BLUE_GREEN_FILE] = BROKEN[broken](green[BLUE_GREEN_FILE])
    assert green[BLUE_GREEN_FILE] != example_files("kserve-bluegreen")["policy.yaml"]
    files = {**green, **mirror, **canary}
    return {path: text for path, text in files.items() if not path.startswith("argocd/")}


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_broken_policies_are_reported_and_skipped_and_the_valid_one_reconciles(
    tmp_path: Path, broken: str
) -> None:
    repo = ReleaseRepo.create(tmp_path, three_policies(broken))
    start = repo.head()

    plan = repo.plan(T0, "json")
    assert plan.exit_code == 1
    payload = json.loads(plan.stdout)
    assert payload["exitCode"] == 1
    assert [e["path"] for e in payload["errors"]] == [BLUE_GREEN_FILE]
    by_key = {p["policy"]: p for p in payload["policies"]}
    assert set(by_key) == {CANARY, MIRROR}
    assert by_key[CANARY]["decision"] == "advance" and by_key[CANARY]["error"] is None
    assert by_key[MIRROR]["decision"] is None and "'predict'" in by_key[MIRROR]["error"]

    result = repo.reconcile(T0, expect_exit=1)

    [commit] = repo.engine_commits(since=start)
    assert trailers_of(commit.message)["Policy"] == CANARY
    assert trailers_of(commit.message)["Weights"] == "v1=90,v2=10"
    assert f"{BLUE_GREEN_FILE}:" in result.stderr
    assert f"policies/image-classifier.yaml: error: {MIRROR}:" in result.stderr
    assert "predict" in result.stderr
    assert f"{CANARY}: advance v1=90,v2=10" in result.stdout
    # the broken ones stay broken, the valid one keeps going: still exit 1, one more step
    repo.reconcile(T0.replace(minute=10), expect_exit=1)
    assert len(repo.engine_commits(since=start)) == 2
