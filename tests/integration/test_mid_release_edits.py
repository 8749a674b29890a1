"""Edits in the middle of a release: a person's weights put back, a renamed candidate, a deleted
policy (onDelete leave or rollback), a deleted candidate InferenceService. The engine
says what happens, in the pass output and in the status it commits.

Real git (a bare remote, human pushes) and the real CLI; the policy progresses on time alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.support.release_repos import T0, ReleaseRepo, example_files, trailers_of

CANARY = "fraud-detection/fraud-detector"
SERVICE = "manifests/virtualservice.yaml"
ISVCS = "manifests/inferenceservices.yaml"
STATUS = f".policyengine/status/{CANARY}.yaml"
MINUTE = timedelta(minutes=1)


def weights(repo: ReleaseRepo, v1: int, v2: int) -> str:
    """The VirtualService at the remote's head with these weights, as a person writes them."""
    text = repo.file(SERVICE)
    lines = text.splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if line.strip().startswith("weight:")]
    assert len(found) == 2, text
    for index, value in zip(found, (v1, v2), strict=True):
        indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
        lines[index] = f"{indent}weight: {value}\n"
    return "".join(lines)


def test_weights_put_back_after_a_manual_change_restart_the_dwell(tmp_path: Path) -> None:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary", minDwell="10m"))
    assert "advance v1=90,v2=10" in repo.reconcile(T0).stdout
    repo.human_push({SERVICE: weights(repo, 50, 50)}, "ops: half and half while we look")
    held = repo.reconcile(T0 + 2 * MINUTE)
    assert "a person changed the weights" in held.stdout
    assert "weightsOverriddenAt" in repo.file(STATUS)
    repo.reconcile(T0 + 5 * MINUTE)  # still overridden: nothing more is written
    repo.human_push({SERVICE: weights(repo, 90, 10)}, "ops: back to the engine's weights")

    restored = repo.reconcile(T0 + 40 * MINUTE)

    assert "dwell restarts now" in restored.stdout, restored.stdout
    assert "weightsOverriddenAt" not in repo.file(STATUS)
    # the ten minutes of dwell count from the restore, not from the step's start 40 minutes ago
    early = repo.reconcile(T0 + 49 * MINUTE)
    assert "advance" not in early.stdout, early.stdout
    later = repo.reconcile(T0 + 50 * MINUTE)
    assert "advance v1=80,v2=20" in later.stdout, later.stdout


def test_a_renamed_candidate_abandons_the_release_and_says_so(tmp_path: Path) -> None:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary", minDwell="10m"))
    repo.reconcile(T0)
    assert "advance v1=80,v2=20" in repo.reconcile(T0 + 10 * MINUTE).stdout
    policy = repo.file("policy.yaml").replace("- name: v2\n", "- name: v2b\n")
    assert "v2b" in policy
    repo.human_push({"policy.yaml": policy}, "rename the candidate")

    result = repo.reconcile(T0 + 11 * MINUTE)

    line = next(line for line in result.stdout.splitlines() if line.startswith(CANARY))
    assert "the release under way at v1=80,v2=20 was abandoned" in line, result.stdout
    [commit] = repo.engine_commits()[-1:]
    assert "abandoned" in commit.message
    assert trailers_of(commit.message)["Policy"] == CANARY


def test_a_deleted_policy_leaves_its_release_reported_not_silently_orphaned(
    tmp_path: Path,
) -> None:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary", minDwell="10m"))
    repo.reconcile(T0)
    repo.reconcile(T0 + 10 * MINUTE)
    repo.human_push({"policy.yaml": None}, "drop the policy")

    result = repo.reconcile(T0 + 11 * MINUTE)

    assert f"warning: {CANARY}: the release at v1=80,v2=20 is abandoned" in result.stderr
    assert "its policy was deleted" in result.stderr
    assert "weights are left as they are" in result.stderr
    assert "weight: 80" in repo.file(SERVICE)  # nothing moved


def edited_policy(repo: ReleaseRepo, edit: Callable[[dict[str, Any]], None]) -> str:
    document = yaml.safe_load(repo.file("policy.yaml"))
    edit(document["spec"])
    return yaml.safe_dump(document, sort_keys=False)


def test_a_deleted_policy_with_on_delete_rollback_rolls_back_once(tmp_path: Path) -> None:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary", minDwell="10m"))
    repo.human_push(
        {"policy.yaml": edited_policy(repo, lambda spec: spec.update(onDelete="rollback"))},
        "roll back if this policy goes",
    )
    repo.reconcile(T0)
    assert "advance v1=80,v2=20" in repo.reconcile(T0 + 10 * MINUTE).stdout
    repo.human_push({"policy.yaml": None}, "drop the policy")

    result = repo.reconcile(T0 + 11 * MINUTE)

    assert "the weights go back to the baseline (onDelete: rollback)" in result.stderr
    assert "rollback v1=100,v2=0" in result.stdout, result.stdout
    [commit] = repo.engine_commits()[-1:]
    trailers = trailers_of(commit.message)
    assert trailers["Decision"] == "rollback" and trailers["Policy"] == CANARY, commit.message
    assert "the policy was deleted; onDelete rollback" in commit.message
    service = repo.file(SERVICE)
    assert "weight: 100" in service and "weight: 20" not in service, service
    assert "phase: failed" in repo.file(STATUS)
    # done once: the next pass neither commits nor warns
    before = len(repo.engine_commits())
    again = repo.reconcile(T0 + 20 * MINUTE)
    assert len(repo.engine_commits()) == before and "abandoned" not in again.stderr


def test_a_deleted_policy_left_as_is_is_committed_once(tmp_path: Path) -> None:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary", minDwell="10m"))
    repo.reconcile(T0)
    repo.reconcile(T0 + 10 * MINUTE)
    repo.human_push({"policy.yaml": None}, "drop the policy")

    result = repo.reconcile(T0 + 11 * MINUTE)

    line = next(line for line in result.stdout.splitlines() if line.startswith(CANARY))
    assert "release abandoned at v1=80,v2=20: the policy was deleted; weights left" in line
    [commit] = repo.engine_commits()[-1:]
    assert "weights left as they are" in commit.message
    assert "abandonedAt" in repo.file(STATUS)
    before = len(repo.engine_commits())
    again = repo.reconcile(T0 + 20 * MINUTE)
    assert len(repo.engine_commits()) == before  # not a commit every pass
    assert "is abandoned: its policy was deleted" in again.stderr  # but told every pass
    assert "weight: 80" in repo.file(SERVICE)


def test_a_deleted_candidate_inference_service_holds_the_release(tmp_path: Path) -> None:
    repo = ReleaseRepo.create(tmp_path, example_files("modelmesh-canary", minDwell="10m"))

    def serve(spec: dict[str, Any]) -> None:
        spec["versions"][1]["serving"] = {
            "path": ISVCS,
            "kind": "InferenceService",
            "name": "fraud-detector-v2",
        }

    repo.human_push({"policy.yaml": edited_policy(repo, serve)}, "name v2's InferenceService")
    repo.reconcile(T0)
    assert "advance v1=80,v2=20" in repo.reconcile(T0 + 10 * MINUTE).stdout
    header, v1, v2 = repo.file(ISVCS).split("---\n")
    assert "name: fraud-detector-v2" in v2
    repo.human_push({ISVCS: f"{header}---\n{v1}"}, "delete v2's InferenceService")

    result = repo.reconcile(T0 + 20 * MINUTE)

    line = next(line for line in result.stdout.splitlines() if line.startswith(CANARY))
    assert "hold" in line and "InferenceService named 'fraud-detector-v2'" in line, line
    assert "advance v1=" not in result.stdout
    assert "weight: 20" in repo.file(SERVICE)
