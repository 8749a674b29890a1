"""The example config repos: manifests valid against the CRD schemas, policies found by routers.

Each folder under examples/ is a repository root: policy paths are relative to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.documents import find_document, load_documents
from policyengine.metrics.catalog import metrics_of
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.values import TrafficSplit
from tests.support.crd_schemas import require_schemas, validate_manifest, weight_problems

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_NAMES = [
    "modelmesh-canary",
    "kserve-bluegreen",
    "gateway-mirror",
    "kserve-standard-canary",
    "llm-canary",
    "modelmesh-abn",
]
MANIFESTS = sorted(
    path
    for name in EXAMPLE_NAMES
    for folder in ("manifests", "argocd")
    for path in (EXAMPLES / name / folder).rglob("*.yaml")
)


def manifest_documents() -> list[tuple[str, Any]]:
    found = []
    for path in MANIFESTS:
        for index, document in enumerate(
            load_documents(path.read_text(encoding="utf-8")).documents
        ):
            found.append((f"{path.relative_to(EXAMPLES)}#{index}", document))
    return found


DOCUMENTS = manifest_documents()


def test_the_examples_exist() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(EXAMPLE_NAMES)
    for name in EXAMPLE_NAMES:
        assert (EXAMPLES / name / "README.md").is_file()
        assert (EXAMPLES / name / "argocd" / "application.yaml").is_file()


@pytest.mark.parametrize(("where", "document"), DOCUMENTS, ids=[w for w, _ in DOCUMENTS])
def test_manifest_validates_against_its_crd_schema(where: str, document: Any) -> None:
    require_schemas()
    assert validate_manifest(document) == []
    assert weight_problems(document) == []


def load_policy(name: str) -> ReleasePolicy:
    text = (EXAMPLES / name / "policy.yaml").read_text(encoding="utf-8")
    return ReleasePolicy.model_validate(yaml.safe_load(text))


def target_documents(name: str, policy: ReleasePolicy) -> list[tuple[Any, Any]]:
    """(manifest file, the document the router edits) for each target manifest."""
    router = router_for(policy.spec.target.router)
    found = []
    for ref in policy.spec.target.manifests:
        path = EXAMPLES / name / ref.path
        assert path.is_file(), f"{ref.path} must be relative to the example's root"
        file = load_documents(path.read_text(encoding="utf-8"), ref.path)
        found.append((file, find_document(file, ref.kind or router.kind, ref.name)))
    return found


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_policy_versions_are_found_and_weights_sum_to_100(name: str) -> None:
    policy = load_policy(name)
    router = router_for(policy.spec.target.router)
    for file, document in target_documents(name, policy):
        split = router.read(document, policy)
        assert [version for version, _ in split.weights] == [v.name for v in policy.spec.versions]
        assert sum(split.as_dict().values()) == 100
        assert split.weight(policy.spec.baseline.name) == 100  # nothing released yet
        router.render(document, policy, split)
        assert file.dump() == file.text, "rendering what was read must change nothing"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_policy_metrics_exist_in_its_metric_set(name: str) -> None:
    policy = load_policy(name)
    metric_set, metrics = metrics_of(policy)
    assert metric_set is not None
    for objective in policy.spec.objectives:
        assert objective.metric in metrics, f"{objective.metric} not in {metric_set.metadata.name}"


def course(policy: ReleasePolicy) -> list[TrafficSplit]:
    """The splits a release of the example walks through, in order, then a rollback."""
    baseline, candidate = policy.spec.baseline.name, policy.spec.candidates[0].name
    strategy = policy.spec.strategy

    def at(weight: int, mirror: float = 0) -> TrafficSplit:
        weights = {baseline: 100 - weight, candidate: weight}
        return TrafficSplit.of(weights, candidate if mirror else None, mirror)

    if strategy.type == "canary" and policy.spec.target.router == "kserve-canary":
        # promotion moves the canary entry into spec.predictor for good (checked on its own)
        return [*(at(w) for w in strategy.weights()), at(0)]
    if strategy.type == "canary":
        return [*(at(w) for w in strategy.weights()), at(100), at(0)]
    if strategy.type == "mirror":
        return [at(0, strategy.percentage), at(0)]
    if strategy.type == "abn":  # every version serves, traffic learns, a winner, then back
        names = [v.name for v in policy.spec.versions]
        return [
            TrafficSplit.of(dict(zip(names, weights, strict=True)))
            for weights in ((34, 33, 33), (20, 70, 10), (5, 90, 5), (0, 100, 0), (100, 0, 0))
        ]
    return [at(0), at(100), at(0)]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_a_whole_release_renders_valid_manifests(name: str) -> None:
    require_schemas()
    policy = load_policy(name)
    router = router_for(policy.spec.target.router)
    for file, document in target_documents(name, policy):
        for split in course(policy):
            router.render(document, policy, split)
            rendered = find_document(load_documents(file.dump()), router.kind)
            assert router.read(rendered, policy) == split
            assert validate_manifest(rendered) == []
            assert weight_problems(rendered) == []
        # the release ends where it began: the example's bytes come back
        assert file.dump() == file.text


@pytest.mark.parametrize("name", [n for n in EXAMPLE_NAMES if "standard" in n])
def test_promotion_renders_a_valid_inference_service(name: str) -> None:
    require_schemas()
    policy = load_policy(name)
    router = router_for(policy.spec.target.router)
    baseline, candidate = policy.spec.baseline.name, policy.spec.candidates[0].name
    promoted = TrafficSplit.of({baseline: 0, candidate: 100})
    for file, document in target_documents(name, policy):
        router.render(document, policy, promoted)
        rendered = find_document(load_documents(file.dump()), router.kind)
        assert router.read(rendered, policy) == promoted
        assert validate_manifest(rendered) == []
        assert "canary" not in rendered["spec"]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_argocd_application_deploys_the_manifests_folder(name: str) -> None:
    application = yaml.safe_load((EXAMPLES / name / "argocd" / "application.yaml").read_text())
    assert application["kind"] == "Application"
    assert application["spec"]["source"]["path"] == "manifests"
    assert (EXAMPLES / name / "manifests").is_dir()


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda route: route.update(mirrorPercentag={"value": 5}),
            "'mirrorPercentag' was unexpected",
        ),
        (lambda route: route["route"][0].update(weight="90"), "'90' is not of type 'integer'"),
        (lambda route: route["route"][0].update(weight=90), "do not sum to 100"),
    ],
)
def test_the_validation_catches_broken_manifests(edit: Any, problem: str) -> None:
    require_schemas()
    text = (EXAMPLES / "modelmesh-canary/manifests/virtualservice.yaml").read_text()
    document = load_documents(text).documents[0]
    edit(document["spec"]["http"][0])
    problems = validate_manifest(document) + weight_problems(document)
    assert any(problem in p for p in problems), problems
