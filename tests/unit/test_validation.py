"""Semantic validation: each rule in a table, conflicts between files, and manifest paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from policyengine.errors import InvalidPolicyError
from policyengine.policy.loader import load_tree
from policyengine.policy.validation import (
    ValidationReport,
    check_repository,
    did_you_mean,
    resolve_manifest,
)
from tests.unit.test_loader import METRIC_SET, POLICY, VIRTUAL_SERVICE, line_of, presets, write_repo

__all__ = ["presets"]  # the fixture, imported for its name

pytestmark = pytest.mark.usefixtures("presets")


def validate(root: Path) -> ValidationReport:
    return check_repository(load_tree([root], root), root)


def edited(*changes: tuple[str, str]) -> str:
    text = POLICY
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


GATEWAY_POLICY = edited(
    ("router: istio-modelmesh", "router: gatewayapi"),
    (
        "backend: {host: modelmesh-serving.models.svc.cluster.local, header: fraud-detector-v1}",
        "backend: {service: fraud-v1}",
    ),
    (
        "backend: {host: modelmesh-serving.models.svc.cluster.local, header: fraud-detector-v2}",
        "backend: {service: fraud-v2}",
    ),
)
KSERVE_POLICY = edited(
    ("router: istio-modelmesh", "router: kserve"),
    (
        "backend: {host: modelmesh-serving.models.svc.cluster.local, header: fraud-detector-v1}",
        "backend: {}",
    ),
    (
        "backend: {host: modelmesh-serving.models.svc.cluster.local, header: fraud-detector-v2}",
        "backend: {}",
    ),
)
THIRD_VERSION = (
    "  strategy:\n",
    "    - {name: v3, role: candidate, backend: {host: h, header: v3}}\n  strategy:\n",
)

# name, policy text, expected field, expected line (0: not checked), words in the message
RULES: list[tuple[str, str, str, int, tuple[str, ...]]] = [
    (
        "steps not increasing",
        edited(("[10, 20, 30, 40, 50]", "[10, 30, 30, 20]")),
        "spec.strategy.steps[2]",
        line_of(POLICY, "steps:"),
        ("increase strictly", "30 comes after 30"),
    ),
    (
        "step weight above max weight",
        edited(("steps: [10, 20, 30, 40, 50]", "stepWeight: 60\n    maxWeight: 40")),
        "spec.strategy.stepWeight",
        line_of(POLICY, "steps:"),
        ("above maxWeight 40",),
    ),
    (
        "weight above 100",
        edited(("[10, 20, 30, 40, 50]", "[10, 120]")),
        "spec.strategy.steps[1]",
        line_of(POLICY, "steps:"),
        ("less than or equal to 100",),
    ),
    (
        "two baselines",
        edited(("role: candidate", "role: baseline")),
        "spec.versions",
        line_of(POLICY, "versions:"),
        ("exactly one version must have role baseline",),
    ),
    (
        "duplicate version names",
        edited(("name: v2", "name: v1")),
        "spec.versions",
        0,
        ("unique: v1",),
    ),
    (
        "two candidates in a canary",
        edited(THIRD_VERSION),
        "spec.versions[2]",
        line_of(POLICY, "strategy:"),
        ("exactly one candidate, found 2", "strategy abn"),
    ),
    (
        "same metric label twice",
        edited(("metricLabel: fraud-detector-v2", "metricLabel: fraud-detector-v1")),
        "spec.versions[1].metricLabel",
        line_of(POLICY, "metricLabel: fraud-detector-v2"),
        ("also the label of v1",),
    ),
    (
        "istio-modelmesh without header",
        edited(
            (
                "host: modelmesh-serving.models.svc.cluster.local, header: fraud-detector-v2",
                "host: h",
            )
        ),
        "spec.versions[1].backend.header",
        line_of(POLICY, "header: fraud-detector-v2"),
        ("router istio-modelmesh needs backend.header",),
    ),
    (
        "istio without host",
        edited(
            ("router: istio-modelmesh", "router: istio"),
            (
                "host: modelmesh-serving.models.svc.cluster.local, header: fraud-detector-v1",
                "subset: v1",
            ),
        ),
        "spec.versions[0].backend.host",
        line_of(POLICY, "header: fraud-detector-v1"),
        ("router istio needs backend.host",),
    ),
    (
        "gatewayapi without service",
        GATEWAY_POLICY.replace("{service: fraud-v2}", "{port: 8080}"),
        "spec.versions[1].backend.service",
        line_of(POLICY, "header: fraud-detector-v2"),
        ("router gatewayapi needs backend.service",),
    ),
    (
        "kserve cannot mirror",
        KSERVE_POLICY.replace(
            "type: canary\n    steps: [10, 20, 30, 40, 50]\n    minDwell: 6m\n", "type: mirror\n"
        ),
        "spec.strategy.type",
        line_of(POLICY, "type: canary"),
        ("kserve cannot mirror",),
    ),
    (
        "modelmesh cannot mirror",
        edited(
            ("type: canary\n    steps: [10, 20, 30, 40, 50]\n    minDwell: 6m\n", "type: mirror\n")
        ),
        "spec.strategy.type",
        line_of(POLICY, "type: canary"),
        ("istio-modelmesh cannot mirror", "mm-vmodel-id"),
    ),
    (
        "kserve blue-green cannot validate on mirrored traffic",
        KSERVE_POLICY.replace(
            "type: canary\n    steps: [10, 20, 30, 40, 50]\n    minDwell: 6m\n",
            "type: blueGreen\n    validationTraffic: mirror\n",
        ),
        "spec.strategy.validationTraffic",
        line_of(POLICY, "steps:"),
        ("kserve cannot mirror", "validationTraffic none"),
    ),
    (
        "manifest missing",
        edited(("manifests/virtualservice.yaml", "manifests/nope.yaml")),
        "spec.target.manifests[0].path",
        line_of(POLICY, "- path:"),
        ("'manifests/nope.yaml' does not exist",),
    ),
    (
        "manifest path with ..",
        edited(("manifests/virtualservice.yaml", "manifests/../manifests/virtualservice.yaml")),
        "spec.target.manifests[0].path",
        line_of(POLICY, "- path:"),
        ("'..'",),
    ),
    (
        "absolute manifest path",
        edited(("manifests/virtualservice.yaml", "/etc/passwd")),
        "spec.target.manifests[0].path",
        line_of(POLICY, "- path:"),
        ("absolute",),
    ),
    (
        "manifest symlink escaping the repository",
        edited(("manifests/virtualservice.yaml", "manifests/escape.yaml")),
        "spec.target.manifests[0].path",
        line_of(POLICY, "- path:"),
        ("outside the repository", "symbolic link"),
    ),
    (
        "objectives without metrics",
        edited(
            ("  metrics:\n    set: modelmesh\n", "  paused: false\n"),
            ('    provider: {url: "http://prometheus.monitoring:9090"}\n', ""),
        ),
        "spec.objectives",
        line_of(POLICY, "objectives:"),
        ("need a metrics source",),
    ),
    (
        "unknown metric set",
        edited(("set: modelmesh", "set: modelmash")),
        "spec.metrics.set",
        line_of(POLICY, "set: modelmesh"),
        ("unknown metric set 'modelmash'", "did you mean 'modelmesh'?", "known: modelmesh"),
    ),
    (
        "unknown metric",
        edited(("metric: error-rate", "metric: error_rate")),
        "spec.objectives[0].metric",
        line_of(POLICY, "metric: error-rate"),
        ("unknown metric 'error_rate'", "did you mean 'error-rate'?"),
    ),
    (
        "histogram without threshold",
        edited(("{metric: latency, threshold: 500, max: 0.01}", "{metric: latency, max: 0.01}")),
        "spec.objectives[1]",
        line_of(POLICY, "metric: latency"),
        ("histogram", "threshold"),
    ),
    (
        "threshold on a proportion",
        edited(
            ("{metric: error-rate, max: 0.01,", "{metric: error-rate, threshold: 3, max: 0.01,")
        ),
        "spec.objectives[0].threshold",
        line_of(POLICY, "metric: error-rate"),
        ("histogram metrics only", "proportion"),
    ),
    (
        "reward metric unknown",
        POLICY + "  rewards: [{metric: revenue}]\n",
        "spec.rewards[0].metric",
        len(POLICY.splitlines()) + 1,
        ("unknown metric 'revenue'",),
    ),
]


@pytest.mark.parametrize(
    ("policy", "field", "line", "words"),
    [case[1:] for case in RULES],
    ids=[case[0] for case in RULES],
)
def test_each_rule_reports_the_field_and_its_line(
    tmp_path: Path, policy: str, field: str, line: int, words: tuple[str, ...]
) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(VIRTUAL_SERVICE, encoding="utf-8")
    root = write_repo(tmp_path / "repo", {"policies/fraud.yaml": policy})
    (root / "manifests/escape.yaml").symlink_to(outside)
    report = validate(root)
    assert not report.valid
    assert report.policies == []
    matching = [e for e in report.errors if e.field == field]
    assert len(matching) == 1, report.errors
    [issue] = matching
    assert issue.path == "policies/fraud.yaml", report.errors
    if line:
        assert issue.line == line, str(issue)
    for word in words:
        assert word in issue.message, str(issue)


@pytest.mark.parametrize(
    "policy",
    [
        POLICY,
        GATEWAY_POLICY,
        KSERVE_POLICY,
        edited(("steps: [10, 20, 30, 40, 50]", "stepWeight: 10\n    maxWeight: 50")),
        edited(("manifests/virtualservice.yaml", "./vs.yaml")),
        GATEWAY_POLICY.replace(
            "type: canary\n    steps: [10, 20, 30, 40, 50]\n    minDwell: 6m\n", "type: mirror\n"
        ),
        edited(("metric: latency", "metric: fairness"), ("threshold: 500, ", "")),
    ],
    ids=[
        "modelmesh",
        "gatewayapi",
        "kserve",
        "stepWeight",
        "relative to the policy",
        "mirror",
        "gauge",
    ],
)
def test_valid_policies_pass(tmp_path: Path, policy: str) -> None:
    root = write_repo(
        tmp_path, {"policies/fraud.yaml": policy, "policies/vs.yaml": VIRTUAL_SERVICE}
    )
    report = validate(root)
    assert report.errors == []
    assert len(report.policies) == 1
    assert report.summary() == "1 policy and 0 metric sets valid in 3 files"


def test_a_metric_set_of_the_repository_is_found(tmp_path: Path) -> None:
    own_set = METRIC_SET.replace("name: modelmesh", "name: in-repo")
    policy = edited(("set: modelmesh", "set: in-repo"))
    root = write_repo(tmp_path, {"policies/fraud.yaml": policy, "sets/own.yaml": own_set})
    report = validate(root)
    assert report.errors == []
    assert list(report.metric_sets) == ["in-repo"]


def test_a_duplicate_policy_name_is_reported_at_both_places(tmp_path: Path) -> None:
    root = write_repo(tmp_path, {"policies/again.yaml": POLICY.replace("virtualservice", "other")})
    (root / "manifests/other.yaml").write_text(VIRTUAL_SERVICE, encoding="utf-8")
    report = validate(root)
    name_line = line_of(POLICY, "name: fraud-detector")
    assert sorted(str(e) for e in report.errors) == [
        f"policies/again.yaml:{name_line}:3: error: metadata.name: policy models/fraud-detector "
        f"is also defined at policies/fraud.yaml:{name_line}:3",
        f"policies/fraud.yaml:{name_line}:3: error: metadata.name: policy models/fraud-detector "
        f"is also defined at policies/again.yaml:{name_line}:3",
    ]
    assert report.policies == []


def test_two_policies_on_one_route_are_reported_at_both_places(tmp_path: Path) -> None:
    other = POLICY.replace("name: fraud-detector", "name: fraud-detector-two")
    root = write_repo(tmp_path, {"policies/two.yaml": other})
    report = validate(root)
    path_line = line_of(POLICY, "- path:")
    assert sorted((e.path, e.line, e.field) for e in report.errors) == [
        ("policies/fraud.yaml", path_line, "spec.target.manifests[0].path"),
        ("policies/two.yaml", path_line, "spec.target.manifests[0].path"),
    ]
    assert "also the target of policy models/fraud-detector-two" in report.errors[1].message


def test_routes_that_differ_do_not_conflict(tmp_path: Path) -> None:
    other = POLICY.replace("name: fraud-detector", "name: fraud-detector-two").replace(
        "router: istio-modelmesh", "router: istio-modelmesh\n    route: second"
    )
    root = write_repo(tmp_path, {"policies/two.yaml": other})
    assert validate(root).errors == []


def test_every_file_error_and_every_policy_error_come_in_one_run(tmp_path: Path) -> None:
    root = write_repo(
        tmp_path,
        {
            "policies/a.yaml": edited(
                ("name: fraud-detector", "name: a"),
                ("router: istio-modelmesh", "router: istio-modelmesh\n    route: a"),
                ("set: modelmesh", "set: nope"),
            ),
            "policies/b.yaml": edited(("name: fraud-detector", "name: b"), ("minDwell", "minDwel")),
            "policies/c.yaml": "a: [\n",
        },
    )
    report = validate(root)
    assert {e.path for e in report.errors} == {
        "policies/a.yaml",
        "policies/b.yaml",
        "policies/c.yaml",
    }
    assert [p.path for p in report.policies] == ["policies/fraud.yaml"]
    assert report.failure_summary() == f"{len(report.errors)} errors in 5 files"


@pytest.mark.parametrize(
    ("word", "choices", "hint"),
    [
        ("stpes", ["steps", "stepWeight"], "; did you mean 'steps'?"),
        ("min_dwell", ["minDwell"], "; did you mean 'minDwell'? (fields are camelCase)"),
        ("MINDWELL", ["minDwell"], "; did you mean 'minDwell'?"),
        ("zzz", ["steps"], ""),
    ],
)
def test_did_you_mean(word: str, choices: list[str], hint: str) -> None:
    assert did_you_mean(word, choices) == hint


def test_resolve_manifest_refuses_a_symlink_even_inside(tmp_path: Path) -> None:
    # The engine never reads or writes through a link (it would edit the target while Git
    # records the link): validate says so up front, even for a link staying inside.
    root = write_repo(tmp_path)
    os.symlink("virtualservice.yaml", root / "manifests/alias.yaml")
    with pytest.raises(InvalidPolicyError, match=r"manifests/alias\.yaml is a symbolic link"):
        resolve_manifest(root, root / "policies/fraud.yaml", "manifests/alias.yaml")
    with pytest.raises(InvalidPolicyError, match="not a file"):
        resolve_manifest(root, root / "policies/fraud.yaml", "manifests")
