"""`reconcile --once` walks the examples' releases end to end against a real bare remote: one engine
commit per step with its trailers, diffs that touch only weights and mirrors (golden files), valid
manifests, `history` in order, nothing written when nothing is due, pauses and new releases.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from policyengine.gitops.status import status_path
from tests.support.crd_schemas import require_schemas
from tests.support.gitrepos import git
from tests.support.release_repos import (
    T0,
    TRAILER_KEYS,
    ReleaseRepo,
    changed_paths,
    commit_diff,
    edit_policy,
    example_files,
    modelmesh_baseline_files,
    modelmesh_candidate_files,
    rfc3339,
    trailers_of,
    tree_problems,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "reconcile"
UPDATE_ENV = "POLICYENGINE_UPDATE_GOLDEN"
CANARY = "fraud-detection/fraud-detector"
# What an engine commit may change in a manifest: a weight, canaryTrafficPercent, or the mirror.
MIRROR_OR_WEIGHT = re.compile(
    r"^\s*(- )?(weight|canaryTrafficPercent): \d+\b"
    r"|^\s*(- )?(filters|type: RequestMirror|requestMirror|backendRef|name|port|percent|"
    r"mirror|host|mirrorPercentage|value)\b"
)


@pytest.fixture(autouse=True)
def engine_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLICYENGINE_AUTHOR_NAME", raising=False)
    monkeypatch.delenv("POLICYENGINE_AUTHOR_EMAIL", raising=False)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclass(frozen=True)
class Course:
    """An example's release and the passes that walk it: (minutes after T0, decision written)."""

    example: str
    policy: str
    manifests: tuple[str, ...]
    passes: tuple[tuple[int, str | None], ...]

    def __str__(self) -> str:
        return self.example


COURSES = [
    Course(
        "modelmesh-canary",
        CANARY,
        ("manifests/virtualservice.yaml",),
        (
            (0, "advance"),
            (5, None),
            (10, "advance"),
            (20, "advance"),
            (25, None),
            (30, "advance"),
            (40, "advance"),
            (50, "promote"),
            (60, None),
        ),
    ),
    Course(
        "kserve-bluegreen",
        "customer-analytics/churn-predictor",
        ("manifests/inferenceservice.yaml",),
        ((0, "advance"), (10, None), (20, "promote"), (30, None)),
    ),
    Course(
        "gateway-mirror",
        "vision/image-classifier",
        ("manifests/httproute.yaml",),
        ((0, "advance"), (30, None), (60, "done"), (90, None)),
    ),
]
CANARY_WEIGHTS = [
    "v1=90,v2=10",
    "v1=80,v2=20",
    "v1=70,v2=30",
    "v1=60,v2=40",
    "v1=50,v2=50",
    "v1=0,v2=100",
]


def start_release(tmp_path: Path, course: Course) -> ReleaseRepo:
    """The remote after the human commits that start the release."""
    if course.example == "modelmesh-canary":
        repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
        repo.human_push(modelmesh_candidate_files(), "fraud-detector v2: canary release")
    else:
        repo = ReleaseRepo.create(tmp_path, example_files(course.example))
    return repo


def walk(repo: ReleaseRepo, course: Course) -> list[str]:
    """Every pass of the course; asserts one engine commit per decision written, none otherwise."""
    written: list[str] = []
    for minutes, decision in course.passes:
        before = repo.head()
        result = repo.reconcile(at(minutes))
        new = repo.engine_commits(since=before)
        if decision is None:
            assert new == [], f"+{minutes}m wrote {[c.subject for c in new]}:\n{result.output}"
            assert "(nothing to write)" in result.output
            continue
        assert len(new) == 1, f"+{minutes}m: {[c.subject for c in new]}\n{result.output}"
        commit = new[0]
        trailers = trailers_of(commit.message)
        assert trailers["Policy"] == course.policy
        assert trailers["Decision"] == decision
        assert trailers["Evaluated-At"] == rfc3339(at(minutes))
        assert commit.subject == f"policyengine: {course.policy} {decision} {trailers['Weights']}"
        assert "pushed 1 commit(s)" in result.output
        written.append(commit.sha)
    return written


def check_golden(path: Path, actual: str) -> None:
    if os.environ.get(UPDATE_ENV) and not os.environ.get("CI"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with {UPDATE_ENV}=1 and review the file"
    assert actual == path.read_text(encoding="utf-8"), f"{path} differs"


def test_canary_walks_every_step_and_promotes_with_one_trailered_commit_per_step(
    tmp_path: Path,
) -> None:
    course = COURSES[0]
    repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
    # Before any policy, the engine has nothing to do.
    baseline_head = repo.head()
    result = repo.reconcile(at(-60))
    assert repo.head() == baseline_head and "no valid policies found" in result.output
    human = repo.human_push(modelmesh_candidate_files(), "fraud-detector v2: canary release")

    written = walk(repo, course)

    log = repo.log()
    assert [c.sha for c in log][:2] == [baseline_head, human]
    engine = repo.engine_commits(since=human)
    assert [c.sha for c in engine] == written == [c.sha for c in log[2:]]
    assert [trailers_of(c.message)["Weights"] for c in engine] == CANARY_WEIGHTS
    assert [trailers_of(c.message)["Decision"] for c in engine] == ["advance"] * 5 + ["promote"]
    # git itself reads the trailers (what reviewers and tools see in `git log`)
    for commit in engine:
        parsed = git(repo.remote, "log", "-1", "--format=%(trailers:only,unfold)", commit.sha)
        keys = [line.split(":", 1)[0] for line in parsed.splitlines() if line]
        assert keys[: len(TRAILER_KEYS)] == list(TRAILER_KEYS), parsed
    final = yaml.safe_load(repo.file(status_path(CANARY)))
    assert (final["phase"], final["stable"], final["weights"]) == (
        "succeeded",
        "v2",
        {"v1": 0, "v2": 100},
    )

    text = repo.history().output.splitlines()
    assert text[0].split() == ["TIME", "POLICY", "DECISION", "WEIGHTS", "COMMIT", "REASON"]
    rows = [line.split()[:5] for line in text[1:]]
    expected_minutes = [m for m, decision in course.passes if decision]
    assert rows == [
        [rfc3339(at(m)), CANARY, trailers_of(c.message)["Decision"], w, c.sha[:10]]
        for m, c, w in zip(expected_minutes, engine, CANARY_WEIGHTS, strict=True)
    ]
    entries = json.loads(repo.history(CANARY, "--output", "json").output)
    assert [(e["commit"], e["decision"], e["weights"], e["time"]) for e in entries] == [
        (c.sha, trailers_of(c.message)["Decision"], w, rfc3339(at(m)))
        for m, c, w in zip(expected_minutes, engine, CANARY_WEIGHTS, strict=True)
    ]
    assert entries[0]["reason"].startswith("release started")
    assert entries[-1]["reason"].startswith("promoted v2 to 100 %")
    assert json.loads(repo.history("other/policy", "--output", "json").output) == []


@pytest.mark.parametrize("course", COURSES, ids=str)
def test_engine_commits_change_only_weights_and_mirrors(tmp_path: Path, course: Course) -> None:
    require_schemas()
    repo = start_release(tmp_path, course)
    start = repo.head()

    written = walk(repo, course)

    status_file = status_path(course.policy)
    golden = GOLDEN / course.example
    for index, sha in enumerate(written, 1):
        decision = trailers_of(repo.engine_commits(since=start)[index - 1].message)["Decision"]
        name = f"{index:02d}-{decision}"
        assert set(changed_paths(repo.remote, sha)) <= {status_file, *course.manifests}
        assert status_file in changed_paths(repo.remote, sha)
        diff = commit_diff(repo.remote, sha, course.manifests)
        check_golden(golden / f"{name}.diff", diff)
        check_golden(golden / f"{name}.status.yaml", repo.file(status_file, sha))
        changed = [
            line[1:]
            for line in diff.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        assert all(MIRROR_OR_WEIGHT.match(line) for line in changed), changed
        tree = repo.tree(sha)
        assert tree_problems(tree) == []
        exported = repo.export(tmp_path / f"at-{index}", sha)
        check = repo.cli("validate", str(exported), "--repo", str(exported))
        assert check.exit_code == 0, check.output
    final = yaml.safe_load(repo.file(status_file))
    assert final["phase"] == "succeeded"
    assert final["lastDecision"] == course.passes[-2][1]


def test_blue_green_switches_once_after_its_window_and_mirror_turns_on_then_off(
    tmp_path: Path,
) -> None:
    """The courses' manifests as Argo CD would see them at each step."""
    green = start_release(tmp_path / "bg", COURSES[1])
    walk(green, COURSES[1])
    commits = green.engine_commits()
    percents = [
        yaml.safe_load(green.file("manifests/inferenceservice.yaml", c.sha))["spec"]["predictor"][
            "canaryTrafficPercent"
        ]
        for c in commits
    ]
    assert percents == [0, 100]

    shadow = start_release(tmp_path / "mirror", COURSES[2])
    walk(shadow, COURSES[2])
    rules = [
        yaml.safe_load(shadow.file("manifests/httproute.yaml", c.sha))["spec"]["rules"][0]
        for c in shadow.engine_commits()
    ]
    assert [[ref["weight"] for ref in rule["backendRefs"]] for rule in rules] == [[100, 0]] * 2
    mirror = rules[0]["filters"][0]
    assert mirror["type"] == "RequestMirror"
    assert mirror["requestMirror"]["backendRef"] == {
        "name": "image-classifier-v2",
        "port": 8000,
    }
    assert mirror["requestMirror"]["percent"] == 50
    assert not rules[1].get("filters")


def test_nothing_due_writes_no_commit(tmp_path: Path) -> None:
    repo = start_release(tmp_path, COURSES[0])
    repo.reconcile(at(0))
    head = repo.head()
    git(repo.remote, "config", "core.logAllRefUpdates", "true")

    for minutes in (0, 1, 9):
        result = repo.reconcile(at(minutes))
        assert "(nothing to write)" in result.output
        assert "pushed" not in result.output
    # a restarted engine (no cache) resumes from the status in Git: still nothing due
    shutil.rmtree(repo.cache)
    repo.reconcile(at(9.5))

    assert repo.head() == head
    assert not (repo.remote / "logs" / "refs" / "heads" / "main").exists()


def test_pause_holds_until_a_person_resumes(tmp_path: Path) -> None:
    repo = start_release(tmp_path, COURSES[0])
    repo.reconcile(at(0))
    policy = repo.file("policy.yaml")
    paused = repo.human_push({"policy.yaml": edit_policy(policy, paused=True)}, "pause fraud")

    for minutes in (10, 30, 120):
        result = repo.reconcile(at(minutes))
        assert "paused by a person" in result.output
        assert repo.head() == paused
    plan = json.loads(repo.plan(at(240), "json").stdout)
    assert (plan["policies"][0]["decision"], plan["policies"][0]["writes"]) == ("hold", False)

    resumed = repo.human_push({"policy.yaml": edit_policy(policy, paused=False)}, "resume")
    repo.reconcile(at(121))
    [commit] = repo.engine_commits(since=resumed)
    assert trailers_of(commit.message)["Weights"] == "v1=80,v2=20"


def test_a_new_candidate_starts_a_new_release_and_engine_commits_never_do(
    tmp_path: Path,
) -> None:
    repo = start_release(tmp_path, COURSES[0])
    human = repo.head()
    repo.reconcile(at(0))
    # the engine restarted with an empty cache between passes: it resumes, it does not restart
    shutil.rmtree(repo.cache)
    repo.reconcile(at(10))
    # a person edits the policy without changing its candidate: the release goes on
    tuned = repo.file("policy.yaml").replace("minDwell: 10m", "minDwell: 15m")
    repo.human_push({"policy.yaml": tuned}, "slower steps")
    repo.reconcile(at(20))  # 10 minutes at step 2 < 15: hold
    repo.reconcile(at(25))
    first = [yaml.safe_load(repo.file(status_path(CANARY), c.sha)) for c in repo.engine_commits()]
    assert [s["step"] for s in first] == [0, 1, 2]
    assert {s["releaseId"] for s in first} == {first[0]["releaseId"]}
    assert {s["releaseStartedAt"] for s in first} == {rfc3339(at(0))}
    assert [trailers_of(c.message)["Weights"] for c in repo.engine_commits(since=human)] == [
        "v1=90,v2=10",
        "v1=80,v2=20",
        "v1=70,v2=30",
    ]

    # v3 replaces v2 mid-release: its InferenceService, the route entry, the policy's candidate
    files = {
        "policy.yaml": tuned.replace("fraud-detector-v2", "fraud-detector-v3").replace(
            "name: v2", "name: v3"
        ),
        "manifests/virtualservice.yaml": re.sub(
            r"weight: 70 +# stable",
            "weight: 100  # stable",
            repo.file("manifests/virtualservice.yaml"),
        )
        .replace("mm-vmodel-id: fraud-detector-v2", "mm-vmodel-id: fraud-detector-v3")
        .replace("weight: 30", "weight: 0"),
        "manifests/inferenceservices.yaml": repo.file("manifests/inferenceservices.yaml").replace(
            "v2", "v3"
        ),
    }
    replaced = repo.human_push(files, "fraud-detector v3 replaces v2")
    repo.reconcile(at(26))
    [restart] = repo.engine_commits(since=replaced)
    assert trailers_of(restart.message)["Weights"] == "v1=90,v3=10"
    assert "release started" in restart.message
    status = yaml.safe_load(repo.file(status_path(CANARY)))
    assert status["releaseId"] != first[0]["releaseId"]
    assert (status["step"], status["releaseStartedAt"]) == (0, rfc3339(at(26)))
    repo.reconcile(at(41))
    assert yaml.safe_load(repo.file(status_path(CANARY)))["weights"] == {"v1": 80, "v3": 20}
