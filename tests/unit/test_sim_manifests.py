"""The split the simulator serves is the one the manifests in Git hold, read through the routers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from policyengine.policy.models import ReleasePolicy
from policyengine.sim.manifests import split_in_manifest, splits_in_checkout

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "modelmesh-canary"


def policy() -> ReleasePolicy:
    return ReleasePolicy.model_validate(yaml.safe_load((EXAMPLE / "policy.yaml").read_text()))


def test_the_example_checkout_serves_its_baseline() -> None:
    splits = splits_in_checkout(EXAMPLE, [policy()])
    assert splits == {"fraud-detection/fraud-detector": splits[policy().key]}
    assert splits[policy().key].as_dict() == {"v1": 100, "v2": 0}


@pytest.mark.parametrize(("baseline", "candidate"), [(90, 10), (50, 50), (0, 100)])
def test_a_commit_that_changes_the_weights_changes_what_is_served(
    tmp_path: Path, baseline: int, candidate: int
) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "repo")
    path = tmp_path / "repo" / "manifests" / "virtualservice.yaml"
    text = path.read_text()
    text = text.replace("weight: 100  # stable", f"weight: {baseline}  # stable")
    text = text.replace("weight: 0\n", f"weight: {candidate}\n")
    path.write_text(text)
    split = splits_in_checkout(tmp_path / "repo", [policy()])[policy().key]
    assert split.as_dict() == {"v1": baseline, "v2": candidate}
    assert split_in_manifest(policy(), text, str(path)) == split
