"""A person pushes while the engine is between its fetch and its push (real remote refusing
non-fast-forwards): an unrelated change is kept and the engine's commit replayed on top of it;
a change to the same lines wins, the engine drops its own and re-plans from the person's state.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from policyengine.gitops.repo import PushResult, Workspace
from policyengine.gitops.status import status_path
from tests.support.gitrepos import git
from tests.support.release_repos import (
    T0,
    ReleaseRepo,
    modelmesh_baseline_files,
    modelmesh_candidate_files,
    trailers_of,
)

CANARY = "fraud-detection/fraud-detector"
SERVICE = "manifests/virtualservice.yaml"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def repo(tmp_path: Path) -> ReleaseRepo:
    """The canary at step 1 (v1=90, v2=10), due for step 2 at +10m."""
    repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
    repo.human_push(modelmesh_candidate_files(), "fraud-detector v2: canary release")
    repo.reconcile(at(0))
    return repo


@pytest.fixture
def push_after_human(
    monkeypatch: pytest.MonkeyPatch, repo: ReleaseRepo
) -> Iterator[Callable[[Callable[[], Mapping[str, str]], str], list[str]]]:
    """Arm a human push that lands after the engine fetched and committed, right before its push."""
    pushed: list[str] = []
    original = Workspace.push

    def arm(files: Callable[[], Mapping[str, str]], message: str) -> list[str]:
        def push(self: Workspace, max_attempts: int = 5) -> PushResult:
            if not pushed:
                assert self.unpushed(), "the engine has committed before it pushes"
                pushed.append(repo.human_push(files(), message))
            return original(self, max_attempts)

        monkeypatch.setattr(Workspace, "push", push)
        return pushed

    yield arm


def test_an_unrelated_human_push_is_kept_and_the_engine_replays_on_top(
    repo: ReleaseRepo,
    push_after_human: Callable[[Callable[[], Mapping[str, str]], str], list[str]],
) -> None:
    before = repo.head()
    # a different file, and different lines of the very file the engine edits
    humans = push_after_human(
        lambda: {
            "README.md": "Fraud detector release repository\n",
            SERVICE: repo.file(SERVICE).replace("/models-gateway", "/public-gateway"),
        },
        "Public gateway, and a README",
    )

    result = repo.reconcile(at(10))

    [human] = humans
    log = repo.log()
    shas = [c.sha for c in log]
    assert shas[-3:] == [before, human, shas[-1]], "the human commit sits intact below the engine's"
    engine = log[-1]
    assert git(repo.remote, "rev-parse", f"{engine.sha}^").strip() == human
    assert trailers_of(engine.message)["Weights"] == "v1=80,v2=20"
    assert "pushed 1 commit(s)" in result.output and "yielded" not in result.output
    service = repo.file(SERVICE)
    assert "istio-system/public-gateway" in service  # the person's line
    assert re.search(r"weight: 80 +# stable", service) and "weight: 20\n" in service  # the engine's
    assert repo.file("README.md") == "Fraud detector release repository\n"
    # the human commit's own tree is untouched: replaying never rewrites it
    assert git(repo.remote, "show", f"{human}:README.md") == repo.file("README.md")
    assert yaml.safe_load(repo.file(status_path(CANARY)))["step"] == 1


def test_a_human_change_to_the_same_lines_wins_and_the_engine_replans(
    repo: ReleaseRepo,
    push_after_human: Callable[[Callable[[], Mapping[str, str]], str], list[str]],
) -> None:
    status_before = repo.file(status_path(CANARY))

    text = re.sub(r"weight: 90( +)# stable", r"weight: 100\1# stable", repo.file(SERVICE))
    back_to_v1 = text.replace("weight: 10\n", "weight: 0\n")
    humans = push_after_human(lambda: {SERVICE: back_to_v1}, "All traffic back to v1 for now")

    result = repo.reconcile(at(10))

    [human] = humans
    assert repo.head() == human, "the engine's commit was dropped, nothing else pushed"
    assert f"{CANARY}: yielded to a human commit" in result.output
    assert repo.file(SERVICE) == back_to_v1
    assert repo.file(status_path(CANARY)) == status_before

    # the next pass plans from the person's weights and does not overwrite them
    plan = json.loads(repo.plan(at(11), "json").stdout)
    [policy] = plan["policies"]
    assert (policy["decision"], policy["weights"], policy["writes"]) == (
        "hold",
        {"v1": 100, "v2": 0},
        True,  # the status notes when the override began (the dwell restarts on its end)
    )
    assert policy["diffs"] == {}, "the person's weights are not touched"
    assert "a person changed the weights" in policy["reason"]
    repo.reconcile(at(11))
    noted = repo.head()
    assert repo.file(SERVICE) == back_to_v1 and "weightsOverriddenAt" in repo.file(
        status_path(CANARY)
    )
    for minutes in (12, 60):  # well past the step's dwell: still the person's weights
        repo.reconcile(at(minutes))
        assert repo.head() == noted
