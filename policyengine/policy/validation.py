"""Validation of policy documents: their shape (schema and models), then their meaning within a repository.

Shape checks are pure; the semantic pass also checks that referenced manifests exist on disk.
"""

from __future__ import annotations

import difflib
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel, to_snake

from policyengine.errors import InvalidPolicyError
from policyengine.gitops.status import status_path
from policyengine.limits import link_on_the_way
from policyengine.metrics.catalog import known_metric_set_names, metric_set_named
from policyengine.metrics.promql import check_template
from policyengine.policy.models import (
    MOVED_PROVIDER_AUTH,
    POLICY_KINDS,
    MetricSet,
    MetricTemplate,
    Objective,
    ReleasePolicy,
)
from policyengine.policy.schema import schema_for
from policyengine.routers import router_for

if TYPE_CHECKING:
    from policyengine.policy.loader import LoadedMetricSet, LoadedPolicy, LoadResult

FieldPath = tuple[str | int, ...]
"""Where a problem is in a document: keys and list indexes from the root, e.g. spec.versions[0]."""


def format_field(field: FieldPath) -> str:
    """spec.strategy.steps[2] from ("spec", "strategy", "steps", 2)."""
    text = ""
    for part in field:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class PolicyIssue:
    """One error, where it is: rendered as `path:line:col: error: field: message`."""

    path: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}: error: "
        return where + (f"{self.field}: {self.message}" if self.field else self.message)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
        }


@dataclass(frozen=True)
class FieldProblem:
    """A problem found in one document before it has a location in a file."""

    field: FieldPath
    message: str


@dataclass(frozen=True)
class DocumentCheck:
    """The model of a valid document, or the problems of an invalid one."""

    model: BaseModel | None
    problems: tuple[FieldProblem, ...]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'; did you mean X?' when a choice is close to `word` (or its camelCase spelling), else ''."""
    options = sorted(set(choices))
    camel = to_camel(word)
    if camel != word and camel in options:
        return f"; did you mean {camel!r}? (fields are camelCase)"
    folded = {option.lower(): option for option in options}
    if word.lower() in folded:
        return f"; did you mean {folded[word.lower()]!r}?"
    extending = [option for option in options if option.startswith(word) and len(word) >= 3]
    if len(extending) == 1:
        return f"; did you mean {extending[0]!r}?"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_document(data: Mapping[str, Any], kind: str) -> DocumentCheck:
    """Check one ReleasePolicy or MetricSet document against its model (pure).

    The models are the gate: strict and by alias, they accept exactly what the JSON Schema
    generated from them accepts (tests/unit/test_schema.py holds them to it), at a thirtieth of
    jsonschema's cost per document. The schema still names the fields for did-you-mean hints.
    """
    model = POLICY_KINDS[kind]
    try:
        validated = model.model_validate(data, strict=True, by_alias=True, by_name=False)
    except ValidationError as error:
        problems = [
            _problem_of(entry, data, schema_for(kind))
            for entry in error.errors(include_url=False, include_input=False)
        ]
        return DocumentCheck(None, tuple(dict.fromkeys(problems)))
    return DocumentCheck(validated, ())


def _problem_of(entry: Any, data: Mapping[str, Any], schema: Mapping[str, Any]) -> FieldProblem:
    loc: tuple[str | int, ...] = tuple(entry["loc"])
    field = _data_path(loc, data)
    kind = entry["type"]
    context = entry.get("ctx") or {}
    if kind == "missing":
        return FieldProblem(field, "required field is missing")
    if kind == "extra_forbidden" and field == ("spec", "metrics", "provider", "auth"):
        return FieldProblem(field, MOVED_PROVIDER_AUTH)
    if kind == "extra_forbidden":
        allowed = _property_names(_schema_at(schema, loc[:-1]))
        name = str(loc[-1])
        return FieldProblem(field, f"unknown field {name!r}" + did_you_mean(name, allowed))
    if kind == "union_tag_not_found":
        tags = _tags_at(schema, loc)
        return FieldProblem((*field, "type"), f"required field is missing (one of {tags})")
    if kind == "union_tag_invalid":
        tag = str(context.get("tag"))
        choices = _mapping_keys(_schema_at(schema, loc))
        hint = did_you_mean(tag, choices)
        message = f"unknown type {tag!r}{hint} (expected one of {', '.join(choices)})"
        return FieldProblem((*field, "type"), message)
    if kind == "literal_error":
        value = _value_at(data, field)
        expected = str(context.get("expected", ""))
        choices = [
            choice.strip().strip("'") for choice in expected.replace(" or ", ", ").split(",")
        ]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return FieldProblem(field, f"{_reworded(entry['msg'])}, not {_short(value)}{hint}")
    message = str(entry["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return FieldProblem(field, _reworded(message))


def _reworded(message: str) -> str:
    """Pydantic's "Input should be a valid integer" as "must be a valid integer"."""
    for subject in ("Input", "String", "List", "Dictionary", "Value", "Object"):
        message = message.replace(f"{subject} should", "must")
    return message


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _data_path(loc: Sequence[str | int], data: Any) -> FieldPath:
    """Pydantic's error location without the union tags it inserts (spec.strategy.canary.steps)."""
    path: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, Mapping) and part not in current and current.get("type") == part:
            continue
        path.append(part)
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            current = None
    return tuple(part for part in path if part != "[key]")


def _value_at(data: Any, field: FieldPath) -> Any:
    current = data
    for part in field:
        if isinstance(current, Mapping):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            return None
    return current


def _resolve(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        name = str(node["$ref"]).rsplit("/", 1)[-1]
        node = schema["$defs"][name]
    return node


def _unwrap_optional(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    node = _resolve(schema, node)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if _resolve(schema, b).get("type") != "null"]
        if len(branches) == 1:
            return _resolve(schema, branches[0])
    return node


def _schema_at(schema: Mapping[str, Any], loc: Sequence[str | int]) -> Mapping[str, Any]:
    """The schema of the value at a pydantic location (union tags select the branch)."""
    node: Mapping[str, Any] = schema
    for part in loc:
        node = _unwrap_optional(schema, node)
        if isinstance(part, int) and "items" in node:
            node = node["items"]
        elif isinstance(part, str) and part in node.get("properties", {}):
            node = node["properties"][part]
        elif "discriminator" in node and part in node["discriminator"].get("mapping", {}):
            node = {"$ref": node["discriminator"]["mapping"][part]}
        elif isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        else:
            return {}
    return _unwrap_optional(schema, node)


def _property_names(node: Mapping[str, Any]) -> list[str]:
    return list(node.get("properties", {}))


def _mapping_keys(node: Mapping[str, Any]) -> list[str]:
    return list(node.get("discriminator", {}).get("mapping", {}))


def _tags_at(schema: Mapping[str, Any], loc: Sequence[str | int]) -> str:
    return ", ".join(_mapping_keys(_schema_at(schema, loc))) or "see the reference"


# Semantic checks: a policy's meaning, and how policies of a repository fit together.


@dataclass(frozen=True)
class ValidationReport:
    """Everything `validate` found: valid documents and every error of every file."""

    policies: list[LoadedPolicy]
    metric_sets: dict[str, LoadedMetricSet]
    errors: list[PolicyIssue]
    files: int

    @property
    def valid(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        policies = _count(len(self.policies), "policy", "policies")
        sets = _count(len(self.metric_sets), "metric set", "metric sets")
        return f"{policies} and {sets} valid in {_count(self.files, 'file', 'files')}"

    def failure_summary(self) -> str:
        errors = _count(len(self.errors), "error", "errors")
        return f"{errors} in {_count(self.files, 'file', 'files')}"

    def to_dict(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "errors": [issue.to_dict() for issue in self.errors],
            "policies": len(self.policies),
            "metricSets": len(self.metric_sets),
            "files": self.files,
        }


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


SINGLE_CANDIDATE_STRATEGIES = {"canary", "blueGreen", "mirror"}
# Gateway API Inference Extension: v1 (GA) and the older experimental v1alpha2 group
INFERENCE_GROUPS = ("inference.networking.k8s.io", "inference.networking.x-k8s.io")
BACKEND_FIELD_OF_ROUTER = {
    "istio-modelmesh": ("header", "the mm-vmodel-id header value that selects this version"),
    "istio": ("host", "the VirtualService destination host of this version"),
    "gatewayapi": ("service", "the HTTPRoute backendRef Service of this version"),
}


def check_repository(result: LoadResult, repo_root: Path) -> ValidationReport:
    """Every semantic error of every loaded policy, plus the loader's own errors.

    Policies with an error are left out of the report's policies, so callers reconcile only
    the valid ones while every error is still reported.
    """
    metric_set_models = {name: loaded.metric_set for name, loaded in result.metric_sets.items()}
    errors = list(result.errors)
    broken: set[int] = set()
    manifests: list[list[Path | None]] = []
    for index, loaded in enumerate(result.policies):
        located, missing = _locate_manifests(loaded)
        manifests.append(located)
        problems = policy_problems(loaded.policy, metric_set_models) + missing
        linked = link_on_the_way(repo_root, status_path(loaded.policy.key))
        if linked is not None:  # the engine would write the release status through it
            problems.append(FieldProblem(("metadata", "name"), f"release status: {linked}"))
        errors += [loaded.issue(problem.field, problem.message) for problem in problems]
        if problems:
            broken.add(index)
        content = _manifest_content_problems(loaded, located, repo_root)
        errors += content
        if content:
            broken.add(index)
    conflicting, conflicts = _conflicts(result.policies, manifests, repo_root)
    broken |= conflicting
    errors += conflicts
    valid = [loaded for index, loaded in enumerate(result.policies) if index not in broken]
    return ValidationReport(valid, dict(result.metric_sets), errors, result.files)


def policy_problems(
    policy: ReleasePolicy, repository_sets: Mapping[str, MetricSet] | None = None
) -> list[FieldProblem]:
    """Semantic problems of one policy on its own (everything but the file system)."""
    return [
        *_strategy_problems(policy),
        *_version_problems(policy),
        *_router_problems(policy),
        *_metric_problems(policy, repository_sets or {}),
        *_golden_problems(policy),
    ]


def _golden_problems(policy: ReleasePolicy) -> list[FieldProblem]:
    """Every version needs its own endpoint for the golden replay; endpoints name versions."""
    golden = policy.spec.golden
    if golden is None:
        return []
    names = [v.name for v in policy.spec.versions]
    problems = [
        FieldProblem(
            ("spec", "golden", "endpoints"),
            f"no endpoint for version {name}; the golden test replays every version",
        )
        for name in names
        if name not in golden.endpoints
    ]
    problems.extend(
        FieldProblem(
            ("spec", "golden", "endpoints", name),
            f"{name!r} is not a version of this policy{did_you_mean(name, names)}",
        )
        for name in golden.endpoints
        if name not in names
    )
    return problems


def _strategy_problems(policy: ReleasePolicy) -> list[FieldProblem]:
    strategy = policy.spec.strategy
    problems = []
    if strategy.type == "canary":
        steps = strategy.steps or []
        for index in range(1, len(steps)):
            if steps[index] <= steps[index - 1]:
                problems.append(
                    FieldProblem(
                        ("spec", "strategy", "steps", index),
                        f"steps must increase strictly: {steps[index]} comes after "
                        f"{steps[index - 1]}",
                    )
                )
        top = strategy.max_weight or 50
        if strategy.step_weight is not None and strategy.step_weight > top:
            problems.append(
                FieldProblem(
                    ("spec", "strategy", "stepWeight"),
                    f"stepWeight {strategy.step_weight} is above maxWeight {top}",
                )
            )
        if strategy.max_weight is not None and strategy.step_weight is None:
            problems.append(
                FieldProblem(
                    ("spec", "strategy", "maxWeight"),
                    "maxWeight goes with stepWeight; with steps, the last step is the maximum",
                )
            )
    candidates = [i for i, v in enumerate(policy.spec.versions) if v.role == "candidate"]
    if strategy.type in SINGLE_CANDIDATE_STRATEGIES and len(candidates) != 1:
        where: FieldPath = ("spec", "versions")
        if len(candidates) > 1:
            where = ("spec", "versions", candidates[1])
        problems.append(
            FieldProblem(
                where,
                f"a {strategy.type} release takes exactly one candidate, found "
                f"{len(candidates)} (use strategy abn for several candidates)",
            )
        )
    if strategy.type == "abn":
        problems.extend(_abn_problems(policy))
    return problems


def _abn_problems(policy: ReleasePolicy) -> list[FieldProblem]:
    """An A/B/n test needs a reward to maximise, and room for every version's minimum weight."""
    strategy = policy.spec.strategy
    assert strategy.type == "abn"
    problems = []
    if not policy.spec.rewards:
        problems.append(
            FieldProblem(
                ("spec", "rewards"),
                "strategy abn needs at least one reward (the business metric it maximises)",
            )
        )
    write_back = policy.spec.write_back
    if strategy.on_winner == "propose" and (
        write_back.mode != "pullRequest" or "promote" in write_back.pull_request.auto_merge
    ):
        problems.append(
            FieldProblem(
                ("spec", "strategy", "onWinner"),
                "onWinner propose opens a pull request naming the winner for a person to merge: "
                "it needs writeBack.mode pullRequest without promote in autoMerge",
            )
        )
    router = policy.spec.target.router
    if router == "kserve" and len(policy.spec.candidates) > 1:
        problems.append(
            FieldProblem(
                ("spec", "target", "router"),
                "router kserve splits traffic between two revisions (canaryTrafficPercent); an "
                "A/B/n test of more than two versions needs kserve-canary (KServe Standard "
                "spec.canary[]), istio, istio-modelmesh or gatewayapi",
            )
        )
    if router in ("kserve", "kserve-canary") and strategy.sticky_users:
        problems.append(
            FieldProblem(
                ("spec", "strategy", "stickyUsers"),
                f"router {router} has no header routes to pin users with; put a Gateway API "
                "HTTPRoute or an Istio VirtualService in front and use gatewayapi or istio",
            )
        )
    versions = len(policy.spec.versions)
    needed = strategy.floor * (versions - 1) + max(strategy.floor, strategy.holdout)
    if needed > 100:
        problems.append(
            FieldProblem(
                ("spec", "strategy", "floor"),
                f"floor {strategy.floor} % for {versions} versions and holdout "
                f"{strategy.holdout} % for the baseline need {needed} % of traffic (at most 100)",
            )
        )
    return problems


def _version_problems(policy: ReleasePolicy) -> list[FieldProblem]:
    seen: dict[str, int] = {}
    problems = []
    for index, version in enumerate(policy.spec.versions):
        label = version.label_value
        if label in seen:
            problems.append(
                FieldProblem(
                    ("spec", "versions", index, "metricLabel"),
                    f"metric label {label!r} is also the label of "
                    f"{policy.spec.versions[seen[label]].name}; versions must differ in metrics",
                )
            )
        seen.setdefault(label, index)
    return problems


def _router_problems(policy: ReleasePolicy) -> list[FieldProblem]:
    router = policy.spec.target.router
    strategy = policy.spec.strategy
    problems = []
    if router in BACKEND_FIELD_OF_ROUTER:
        field, meaning = BACKEND_FIELD_OF_ROUTER[router]
        for index, version in enumerate(policy.spec.versions):
            if getattr(version.backend, field) is None:
                problems.append(
                    FieldProblem(
                        ("spec", "versions", index, "backend", field),
                        f"router {router} needs backend.{field} ({meaning})",
                    )
                )
    # KServe has no mirroring; an Istio mirror cannot rewrite ModelMesh's mm-vmodel-id header, so
    # mirrored requests would reach the baseline model again.
    for index, version in enumerate(policy.spec.versions):
        backend = version.backend
        if router != "gatewayapi" and (backend.kind is not None or backend.group is not None):
            field = "kind" if backend.kind is not None else "group"
            problems.append(
                FieldProblem(
                    ("spec", "versions", index, "backend", field),
                    f"backend.{field} applies to router gatewayapi only (a backendRef's kind)",
                )
            )
        elif backend.kind == "InferencePool" and backend.group not in (None, *INFERENCE_GROUPS):
            problems.append(
                FieldProblem(
                    ("spec", "versions", index, "backend", "group"),
                    f"an InferencePool is in group {' or '.join(INFERENCE_GROUPS)}, "
                    f"not {backend.group!r}",
                )
            )
        elif backend.kind in (None, "Service") and backend.group not in (None, ""):
            problems.append(
                FieldProblem(
                    ("spec", "versions", index, "backend", "group"),
                    f'a Service is in the core group (""), not {backend.group!r}',
                )
            )
        if router != "kserve-canary" and backend.predictor is not None:
            problems.append(
                FieldProblem(
                    ("spec", "versions", index, "backend", "predictor"),
                    "backend.predictor applies to router kserve-canary only",
                )
            )
    pools = [v.backend.kind == "InferencePool" for v in policy.spec.versions]
    if any(pools) and strategy.type == "mirror":
        problems.append(
            FieldProblem(
                ("spec", "strategy", "type"),
                "router gatewayapi cannot mirror to an InferencePool (RequestMirror takes a "
                "Service); mirror between Services instead",
            )
        )
    why = {
        "kserve": "a KServe InferenceService has no traffic mirroring",
        "kserve-canary": "a KServe InferenceService has no traffic mirroring",
        "istio-modelmesh": (
            "an Istio mirror cannot rewrite the mm-vmodel-id header, so mirrored requests would "
            "reach the same model"
        ),
    }.get(router)
    if why and strategy.type == "mirror":
        problems.append(
            FieldProblem(
                ("spec", "strategy", "type"),
                f"router {router} cannot mirror: {why}; use router istio or gatewayapi",
            )
        )
    if why and strategy.type == "blueGreen" and strategy.validation_traffic == "mirror":
        problems.append(
            FieldProblem(
                ("spec", "strategy", "validationTraffic"),
                f"router {router} cannot mirror: {why}; use validationTraffic none",
            )
        )
    return problems


def _metric_problems(
    policy: ReleasePolicy, repository_sets: Mapping[str, MetricSet]
) -> list[FieldProblem]:
    spec = policy.spec
    source = spec.metrics
    uses_metrics = bool(spec.objectives or spec.rewards)
    if source is None or (source.set is None and not source.templates):
        if uses_metrics:
            field = "objectives" if spec.objectives else "rewards"
            return [
                FieldProblem(
                    ("spec", field),
                    f"{field} need a metrics source: spec.metrics with a set or templates",
                )
            ]
        return []
    metrics: dict[str, MetricTemplate] = {}
    where = "templates"
    if source.set is not None:
        metric_set = metric_set_named(source.set, repository_sets)
        if metric_set is None:
            known = known_metric_set_names(repository_sets)
            hint = did_you_mean(source.set, known)
            listed = ", ".join(known) or "none"
            return [
                FieldProblem(
                    ("spec", "metrics", "set"),
                    f"unknown metric set {source.set!r}{hint} (known: {listed})",
                )
            ]
        metrics.update(metric_set.spec.metrics)
        where = f"metric set {source.set!r}" + (" or templates" if source.templates else "")
    metrics.update(source.templates)
    problems = []
    for name, custom in source.templates.items():
        for role, text in custom.queries().items():
            try:
                check_template(text)
            except InvalidPolicyError as error:
                problems.append(
                    FieldProblem(("spec", "metrics", "templates", name, role), str(error))
                )
    for index, objective in enumerate(spec.objectives):
        base: FieldPath = ("spec", "objectives", index)
        template = metrics.get(objective.metric)
        if template is None:
            problems.append(_unknown_metric((*base, "metric"), objective.metric, where, metrics))
        elif template.type == "histogram" and objective.threshold is None:
            problems.append(
                FieldProblem(
                    base,
                    f"metric {objective.metric!r} is a histogram: give threshold (the latency "
                    "bound) and max (the fraction of requests allowed above it)",
                )
            )
        elif (wrong := _against_direction(objective, template)) is not None:
            problems.append(FieldProblem((*base, wrong[0]), wrong[1]))
        elif template.type != "histogram" and objective.threshold is not None:
            problems.append(
                FieldProblem(
                    (*base, "threshold"),
                    f"threshold applies to histogram metrics only; {objective.metric!r} is a "
                    f"{template.type}",
                )
            )
    for index, reward in enumerate(spec.rewards):
        if reward.metric not in metrics:
            problems.append(
                _unknown_metric(("spec", "rewards", index, "metric"), reward.metric, where, metrics)
            )
        elif metrics[reward.metric].type != "proportion":
            problems.append(
                FieldProblem(
                    ("spec", "rewards", index, "metric"),
                    f"reward {reward.metric!r} is a {metrics[reward.metric].type} metric; a reward "
                    "needs a proportion metric (events and total: accepted and served, or a "
                    "_sum and its _count)",
                )
            )
    return problems


def _against_direction(objective: Objective, template: MetricTemplate) -> tuple[str, str] | None:
    """A bound that guards the side of a metric that is not the bad one, and why.

    A p-value is bad when low (`meanshift < 0.05` is drift), a test statistic when high: an
    alert carried over from one TrustyAI generation to the other would never fire.
    """
    if template.direction == "lowerIsWorse":
        for field in ("max", "maxIncrease", "maxRelativeIncrease"):
            if getattr(objective, to_snake(field)) is not None:
                return field, (
                    f"{objective.metric!r} is worse when lower ({template.unit or 'a p-value'}): "
                    "bound it with min (e.g. min: 0.05), not " + field
                )
    if template.direction == "higherIsWorse" and objective.min is not None:
        return "min", (
            f"{objective.metric!r} is worse when higher ({template.unit or 'a statistic'}): "
            "bound it with max, not min"
        )
    return None


def _unknown_metric(
    field: FieldPath, name: str, where: str, metrics: Mapping[str, MetricTemplate]
) -> FieldProblem:
    known = ", ".join(sorted(metrics)) or "none"
    return FieldProblem(
        field, f"unknown metric {name!r} in {where}{did_you_mean(name, metrics)} (known: {known})"
    )


def _manifest_content_problems(
    loaded: LoadedPolicy, located: Sequence[Path | None], repo_root: Path
) -> list[PolicyIssue]:
    """What the policy's router finds wrong inside its manifests, at the manifest's line.

    Only routers that check a manifest's own rules (KServe's spec.canary[]) take part; the
    others' manifests are read when the engine renders them.
    """
    from policyengine.policy.loader import position_in, round_trip_documents  # loader imports us

    router = router_for(loaded.policy.spec.target.router)
    check = getattr(router, "problems", None)
    if check is None:
        return []
    issues = []
    root = _resolved_root(repo_root)
    for ref, path in zip(loaded.policy.spec.target.manifests, located, strict=True):
        if path is None:
            continue
        shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        documents = round_trip_documents(path)
        matches = [
            d
            for d in documents
            if isinstance(d, dict)
            and d.get("kind") == router.kind
            and (ref.kind is None or d.get("kind") == ref.kind)
            and (ref.name is None or (d.get("metadata") or {}).get("name") == ref.name)
        ]
        if len(matches) != 1:
            continue  # the engine reports a missing or ambiguous object when it renders
        for problem in check(matches[0], loaded.policy):
            line, column = position_in(matches[0], problem.field) or (1, 1)
            issues.append(
                PolicyIssue(shown, line, column, format_field(problem.field), problem.message)
            )
    return issues


def manifest_problems(loaded: LoadedPolicy) -> list[FieldProblem]:
    """Each target manifest must exist and lie inside the repository (reads the file system)."""
    return _locate_manifests(loaded)[1]


def _locate_manifests(loaded: LoadedPolicy) -> tuple[list[Path | None], list[FieldProblem]]:
    """Each target manifest's resolved path (None when it is refused), and why any was refused.

    Resolving reads the file system; the conflict check reuses these paths instead of resolving
    every manifest a second time.
    """
    located: list[Path | None] = []
    problems = []
    for index, ref in enumerate(loaded.policy.spec.target.manifests):
        try:
            located.append(resolve_manifest(loaded.root, loaded.file, ref.path))
        except InvalidPolicyError as error:
            located.append(None)
            problems.append(
                FieldProblem(("spec", "target", "manifests", index, "path"), str(error))
            )
    return located, problems


@lru_cache(maxsize=256)
def _resolved_root(repo_root: Path) -> Path:
    """A config root's real path: one per repository, asked once per manifest of every policy."""
    return repo_root.resolve()


def resolve_manifest(repo_root: Path, policy_file: Path, manifest_path: str) -> Path:
    """The manifest file a policy names, checked to exist inside the repository.

    Paths are relative to the repository root, or to the policy's folder when they start with
    ./; absolute paths, `..` and symlinks leading out of the repository are refused.
    """
    if manifest_path.startswith(("/", "\\")) or Path(manifest_path).is_absolute():
        raise InvalidPolicyError(
            f"{manifest_path!r} is absolute; give a path relative to the repository root"
        )
    if ".." in manifest_path.replace("\\", "/").split("/"):
        raise InvalidPolicyError(
            f"{manifest_path!r} contains '..'; paths stay inside the repository"
        )
    base = policy_file.parent if manifest_path.startswith("./") else repo_root
    candidate = base / manifest_path
    root = _resolved_root(repo_root)
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root):
        raise InvalidPolicyError(
            f"{manifest_path!r} resolves to {resolved}, outside the repository {root} "
            "(through a symbolic link)"
        )
    inside = os.path.relpath(candidate.absolute(), repo_root.absolute())
    if not inside.startswith(".."):
        linked = link_on_the_way(repo_root, Path(inside).as_posix())
        if linked is not None:
            raise InvalidPolicyError(linked)
    if not resolved.exists():
        shown = os.path.relpath(candidate.absolute(), repo_root.absolute())
        raise InvalidPolicyError(f"manifest {shown!r} does not exist (repository root: {root})")
    if not resolved.is_file():
        raise InvalidPolicyError(f"manifest {manifest_path!r} is not a file")
    return resolved


def _conflicts(
    policies: Sequence[LoadedPolicy], manifests: Sequence[Sequence[Path | None]], repo_root: Path
) -> tuple[set[int], list[PolicyIssue]]:
    """Policies that share a name in a namespace, or the route of a manifest.

    Both sides are reported and both are left out: the engine cannot tell which one is meant.
    """
    by_key: dict[str, list[int]] = defaultdict(list)
    by_route: dict[tuple[str, str, str, str], list[tuple[int, int]]] = defaultdict(list)
    root = repo_root.resolve()
    for index, loaded in enumerate(policies):
        by_key[loaded.policy.key].append(index)
        target = loaded.policy.spec.target
        for ref_index, ref in enumerate(target.manifests):
            manifest = manifests[index][ref_index]
            if manifest is None:
                continue
            relative = manifest.relative_to(root) if manifest.is_relative_to(root) else manifest
            route_key = (
                relative.as_posix(),
                ref.kind or "",
                ref.name or "",
                target.route or "",
            )
            by_route[route_key].append((index, ref_index))
    involved: set[int] = set()
    issues: list[PolicyIssue] = []
    for key, indexes in by_key.items():
        first = policies[indexes[0]]
        field: FieldPath = ("metadata", "name")
        for index in indexes[1:]:
            here = policies[index]
            involved |= {indexes[0], index}
            issues.append(
                here.issue(field, f"policy {key} is also defined at {first.where(field)}")
            )
            issues.append(
                first.issue(field, f"policy {key} is also defined at {here.where(field)}")
            )
    for (manifest_name, kind, name, route), users in by_route.items():
        owners = {index for index, _ in users}
        if len(owners) < 2:
            continue
        first_index, first_ref = users[0]
        first = policies[first_index]
        first_field: FieldPath = ("spec", "target", "manifests", first_ref, "path")
        shown = _route_name(manifest_name, kind, name, route)
        for index, ref_index in users[1:]:
            if index == first_index:
                continue
            here = policies[index]
            field = ("spec", "target", "manifests", ref_index, "path")
            involved |= {first_index, index}
            issues.append(
                here.issue(
                    field,
                    f"{shown} is also the target of policy {first.policy.key} at "
                    f"{first.where(first_field)}",
                )
            )
            issues.append(
                first.issue(
                    first_field,
                    f"{shown} is also the target of policy {here.policy.key} at "
                    f"{here.where(field)}",
                )
            )
    return involved, issues


def _route_name(manifest: str, kind: str, name: str, route: str) -> str:
    obj = f" {kind or 'object'} {name}" if kind or name else ""
    return f"route {route or '(default)'} of {manifest}{obj}"
