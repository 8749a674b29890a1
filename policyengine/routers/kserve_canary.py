"""KServe Standard (RawDeployment) router: the `spec.canary[]` list of a v0.20 InferenceService.

KServe v0.20 runs each `spec.canary[]` entry as its own Deployment and Service
(`{isvc}-{predictor.name}-predictor`), built from `spec.predictor` with the entry's predictor
merged over it, and gives it `trafficPercent` of the traffic; the stable `spec.predictor` takes
the rest. There is one entry per candidate, so the router works for any number of candidates.

A version is found by its predictor name (`backend.predictor`, default the version name): the
stable predictor's `spec.predictor.name`, or an entry's `predictor.name`. A stable predictor
without a name is the baseline's (the usual manifest before any promotion).

Promotion follows KServe's own recipe ("set predictor.name to the canary name and remove the
canary entry"): the entry's predictor is merged into `spec.predictor` and the entry removed, so
the promoted version becomes the stable predictor without a restart. Rollback writes
`trafficPercent: 0` and keeps the entry, so the candidate's spec stays in Git beside the release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml.comments import CommentedMap

from policyengine.documents import describe
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy, Version
from policyengine.routers.base import Node, append_key, check_split, require_kind, split_of
from policyengine.values import TrafficSplit

API_VERSIONS = frozenset({"serving.kserve.io/v1beta1"})
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
# spec.canary is implemented by the Standard (raw Deployment) reconciler only; KServe's webhook
# refuses it in any other mode. RawDeployment is the deprecated spelling of Standard.
KNATIVE_MODES = frozenset({"Knative", "Serverless"})
FIELD = "trafficPercent"


def predictor_name(version: Version) -> str:
    """The predictor.name that stands for a version in spec.predictor or spec.canary[]."""
    return version.backend.predictor or version.name


@dataclass(frozen=True)
class CanaryProblem:
    """Something wrong in an InferenceService's canary list, at a path inside the manifest."""

    field: tuple[str | int, ...]
    message: str


@dataclass(frozen=True)
class _Service:
    """The parts of the InferenceService the router reads, with the versions found in them."""

    spec: Node
    predictor: Node
    entries: list[Node]
    stable: Version
    by_entry: dict[str, int]  # version name -> index of its spec.canary[] entry
    where: str


class KServeCanaryRouter:
    """Edits `spec.canary[].trafficPercent`; promotion moves the entry into spec.predictor."""

    kind = "InferenceService"

    def read(self, document: Any, policy: ReleasePolicy) -> TrafficSplit:
        service = self._service(document, policy)
        weights = {name: service.entries[i][FIELD] for name, i in service.by_entry.items()}
        weights[service.stable.name] = 100 - sum(weights.values())
        return split_of(policy, weights)

    def render(self, document: Any, policy: ReleasePolicy, split: TrafficSplit) -> None:
        service = self._service(document, policy)
        where = service.where
        if split.mirror_to is not None:
            raise RenderError(
                f"{where}: the kserve-canary router cannot mirror traffic (KServe has no "
                "mirroring); use validationTraffic: none, or route with Istio or Gateway API"
            )
        wanted = check_split(policy, split, where)
        promoted = [
            name for name, weight in wanted.items() if weight == 100 and name != service.stable.name
        ]
        for version in policy.spec.versions:
            if version.name == service.stable.name or version.name in service.by_entry:
                continue
            if wanted[version.name] > 0:
                raise RenderError(
                    f"{where}: version {version.name!r} has no spec.canary[] entry with "
                    f"predictor.name {predictor_name(version)!r}; add one (trafficPercent: 0) "
                    "holding the version's predictor"
                )
        for name, index in service.by_entry.items():
            entry = service.entries[index]
            if entry[FIELD] != wanted[name]:
                entry[FIELD] = wanted[name]
        if promoted:
            self._promote(service, promoted[0])

    def problems(self, document: Any, policy: ReleasePolicy) -> list[CanaryProblem]:
        """What `validate` reports about the manifest, each at its path (empty when sound)."""
        try:
            self._service(document, policy)
        except _Located as located:
            return [CanaryProblem(located.field, located.message)]
        except RenderError as error:
            return [CanaryProblem(("spec",), str(error))]
        return []

    # promotion

    def _promote(self, service: _Service, name: str) -> None:
        entry = service.entries[service.by_entry[name]]
        _merge_into(service.predictor, entry["predictor"])
        service.entries.remove(entry)
        if not service.entries:
            del service.spec["canary"]

    # reading the InferenceService

    def _service(self, document: Any, policy: ReleasePolicy) -> _Service:
        service = require_kind(document, self.kind, API_VERSIONS)
        where = f"{describe(service)}, spec.canary"
        metadata = service.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        mode = annotations.get(DEPLOYMENT_MODE) if isinstance(annotations, dict) else None
        if mode in KNATIVE_MODES or mode == "ModelMesh":
            raise _Located(
                ("metadata", "annotations", DEPLOYMENT_MODE),
                f"{where}: {DEPLOYMENT_MODE} is {mode}; spec.canary needs Standard mode. "
                + (
                    "For Knative use the kserve router (canaryTrafficPercent)"
                    if mode != "ModelMesh"
                    else "For ModelMesh use the istio-modelmesh router"
                ),
            )
        spec = service.get("spec")
        predictor = spec.get("predictor") if isinstance(spec, dict) else None
        if not isinstance(predictor, dict):
            raise _Located(("spec", "predictor"), f"{describe(service)}: spec.predictor is missing")
        raw = spec.get("canary", [])
        if not isinstance(raw, list):
            raise _Located(("spec", "canary"), f"{where}: must be a list of entries")
        names = {predictor_name(v): v for v in policy.spec.versions}
        known = ", ".join(f"{n} ({v.name})" for n, v in names.items())
        stable_name = predictor.get("name")
        if stable_name in (None, ""):
            stable = policy.spec.baseline
        elif stable_name in names:
            stable = names[stable_name]
        else:
            raise _Located(
                ("spec", "predictor", "name"),
                f"{describe(service)}: spec.predictor.name {stable_name!r} is none of the "
                f"policy's predictors: {known}",
            )
        by_entry: dict[str, int] = {}
        total = 0
        for index, entry in enumerate(raw):
            at: tuple[str | int, ...] = ("spec", "canary", index)
            name = _entry_name(entry, at, where)
            version = names.get(name)
            if version is None:
                raise _Located(
                    (*at, "predictor", "name"),
                    f"{where}[{index}]: predictor {name!r} is none of policy {policy.key}'s "
                    f"predictors: {known}",
                )
            if version.name == stable.name:
                raise _Located(
                    (*at, "predictor", "name"),
                    f"{where}[{index}]: predictor {name!r} is also spec.predictor (KServe "
                    "refuses a canary named like the stable predictor)",
                )
            if version.name in by_entry:
                raise _Located(
                    (*at, "predictor", "name"),
                    f"{where}[{index}]: predictor {name!r} has two entries",
                )
            percent = entry.get(FIELD)
            if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
                raise _Located(
                    (*at, FIELD), f"{where}[{index}]: {percent!r} is not a percentage 0-100"
                )
            total += percent
            by_entry[version.name] = index
        if total > 100:
            raise _Located(
                ("spec", "canary"),
                f"{where}: the trafficPercent values sum to {total}; KServe allows at most 100",
            )
        return _Service(spec, predictor, raw, stable, by_entry, where)


class _Located(RenderError):
    """A RenderError that knows which field of the manifest it is about (for validate)."""

    def __init__(self, field: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _entry_name(entry: Any, at: tuple[str | int, ...], where: str) -> str:
    index = at[-1]
    if not isinstance(entry, dict):
        raise _Located(at, f"{where}[{index}]: an entry must be a mapping")
    predictor = entry.get("predictor")
    if not isinstance(predictor, dict):
        raise _Located((*at, "predictor"), f"{where}[{index}]: predictor is missing")
    name = predictor.get("name")
    if not isinstance(name, str) or not name:
        raise _Located(
            (*at, "predictor"),
            f"{where}[{index}]: predictor.name is required (it names the Deployment)",
        )
    return name


def _merge_into(target: Node, source: Node) -> None:
    """Merge a canary predictor into the stable one as KServe builds the canary's pods.

    Mappings merge key by key, anything else replaces; empty values do not override (KServe
    merges with mergo, which skips zero values).
    """
    for key, value in source.items():
        if value in (None, "") or (isinstance(value, dict | list) and not value):
            continue
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            _merge_into(current, value)
        elif key not in target:
            if key == "name" and isinstance(target, CommentedMap):
                target.insert(0, key, value)  # where people write a predictor's name
            else:
                append_key(target, key, value)
        elif current != value:
            target[key] = value
            _drop_end_of_line_comment(target, key)


def _drop_end_of_line_comment(mapping: Node, key: str) -> None:
    """A remark beside a replaced value spoke of the old one (`# trained 2026-10`): drop it.

    Comment lines that follow it belong to the next block and stay.
    """
    comments = getattr(mapping, "ca", None)
    entry: list[Any] | None = comments.items.get(key) if comments is not None else None
    if entry is None or len(entry) < 3 or entry[2] is None:
        return
    token = entry[2]
    _, _, following = token.value.partition("\n")
    if following:
        token.value = "\n" + following
    else:
        entry[2] = None
