"""Gateway API HTTPRoute router: weighted `backendRefs` of one rule, and a RequestMirror filter.

A backendRef is a Service, or an InferencePool of the Gateway API Inference Extension: weighted
backendRefs between two pools are an LLM canary as llm-d documents it.

Gateway API weights are proportions, not percentages (weight/sum of weights, default 1); the
router reads any proportions and writes percentages.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from policyengine.documents import describe
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy, Version
from policyengine.routekey import PIN_HEADER
from policyengine.routers.base import (
    Node,
    append_item,
    check_split,
    insert_key,
    percentages,
    pin_matches,
    pinned_version,
    pins_wanted,
    plain_copy,
    reconcile_pins,
    require_kind,
    split_of,
    version_named,
    write_weights,
)
from policyengine.values import TrafficSplit

API_VERSIONS = frozenset({"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"})
MIRROR = "RequestMirror"
INFERENCE_POOL_GROUP = "inference.networking.k8s.io"
_FRACTION_DENOMINATOR = 10000  # for mirror percentages with decimals (percent is an integer)


class GatewayAPIRouter:
    """Edits `spec.rules[].backendRefs[].weight` and the rule's RequestMirror filter."""

    kind = "HTTPRoute"

    def read(self, document: Any, policy: ReleasePolicy) -> TrafficSplit:
        rule, namespace, where = self._rule(document, policy)
        refs = self._refs(rule, where)
        matched = self._match(refs, namespace, policy, where)
        weights = self._weights(refs, matched, where)
        if weights is None:
            raise RenderError(f"{where}: every backendRef has weight 0; the rule serves nothing")
        mirror = self._mirror_filter(rule, namespace, policy)
        if mirror is None:
            return split_of(policy, weights)
        version, entry = mirror
        return split_of(policy, weights, version.name, _mirror_percent(entry))

    def render(self, document: Any, policy: ReleasePolicy, split: TrafficSplit) -> None:
        rule, namespace, where = self._rule(document, policy)
        wanted = check_split(policy, split, where)
        refs = self._refs(rule, where)
        matched = self._match(refs, namespace, policy, where)
        if self._weights(refs, matched, where) != wanted:
            self._write_weights(refs, matched, policy, wanted)
        self._write_mirror(rule, namespace, matched, refs, policy, split, where)
        if pins_wanted(policy):
            self._write_pins(document["spec"]["rules"], rule, refs, matched, policy, wanted)

    # sticky users: one header-match rule per serving version (more header matches take
    # precedence in Gateway API, whatever the order of the rules)

    def _write_pins(
        self,
        rules: Node,
        rule: Node,
        refs: list[Node],
        matched: dict[str, int | None],
        policy: ReleasePolicy,
        wanted: dict[str, int],
    ) -> None:
        base = rule.get("name") or policy.metadata.name
        for name, index in reconcile_pins(rules, policy, matched, wanted):
            ref = plain_copy(refs[index])
            ref.pop("weight", None)
            pin = CommentedMap()
            pin["name"] = f"{base}-pin-{name}"
            pin["matches"] = pin_matches(rule.get("matches"))
            for condition in pin["matches"]:
                headers = condition.setdefault("headers", CommentedSeq())
                headers.append(CommentedMap(type="Exact", name=PIN_HEADER, value=name))
            pin["backendRefs"] = [ref]
            rules.insert(rules.index(rule), pin)

    # finding the rule and the versions in it

    def _rule(self, document: Any, policy: ReleasePolicy) -> tuple[Node, str | None, str]:
        route = require_kind(document, self.kind, API_VERSIONS)
        metadata = route.get("metadata")
        namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
        spec = route.get("spec")
        found = spec.get("rules") if isinstance(spec, dict) else None
        rules = [r for r in found if isinstance(r, dict)] if isinstance(found, list) else []
        wanted = policy.spec.target.route
        if wanted is not None:
            for rule in rules:
                if rule.get("name") == wanted:
                    return rule, namespace, f"{describe(route)}, rule {wanted!r}"
            names = ", ".join(repr(r.get("name")) for r in rules if r.get("name")) or "none"
            raise RenderError(f"{describe(route)}: no rule named {wanted!r} (named rules: {names})")
        for index, rule in enumerate(rules):
            if pinned_version(rule):
                continue  # a sticky-user pin, not the weighted rule
            refs = rule.get("backendRefs")
            if isinstance(refs, list) and any(
                _is_version(ref, version, namespace)
                for ref in refs
                for version in policy.spec.versions
            ):
                label = repr(rule["name"]) if rule.get("name") else f"#{index}"
                return rule, namespace, f"{describe(route)}, rule {label}"
        services = ", ".join(str(v.backend.service) for v in policy.spec.versions)
        raise RenderError(
            f"{describe(route)}: no rule has a backendRef to {services} (policy {policy.key})"
        )

    def _refs(self, rule: Node, where: str) -> list[Node]:
        refs = rule.get("backendRefs")
        if not isinstance(refs, list) or not refs:
            raise RenderError(f"{where}: the rule has no backendRefs")
        if not all(isinstance(ref, dict) for ref in refs):
            raise RenderError(f"{where}: every backendRefs[] entry must be a mapping")
        return refs

    def _match(
        self, refs: list[Node], namespace: str | None, policy: ReleasePolicy, where: str
    ) -> dict[str, int | None]:
        matched: dict[str, int | None] = {}
        for version in policy.spec.versions:
            if not version.backend.service:
                raise RenderError(f"{where}: version {version.name!r} needs backend.service")
            hits = [i for i, ref in enumerate(refs) if _is_version(ref, version, namespace)]
            if len(hits) > 1:
                raise RenderError(
                    f"{where}: {len(hits)} backendRefs match version {version.name!r}; "
                    "give its backend a port or namespace to tell them apart"
                )
            matched[version.name] = hits[0] if hits else None
        claimed = [i for i in matched.values() if i is not None]
        if len(claimed) != len(set(claimed)):
            raise RenderError(f"{where}: two versions match the same backendRef")
        return matched

    # weights

    def _weights(
        self, refs: list[Node], matched: dict[str, int | None], where: str
    ) -> dict[str, int] | None:
        """Percentages per version; None when no backendRef has any weight."""

        def weight_of(ref: Node) -> int:
            value = ref.get("weight", 1)  # the Gateway API default
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RenderError(f"{where}: weight {value!r} is not a non-negative integer")
            return value

        owned = {i for i in matched.values() if i is not None}
        foreign = [i for i in range(len(refs)) if i not in owned and weight_of(refs[i]) > 0]
        if foreign:
            names = ", ".join(str(refs[i].get("name")) for i in foreign)
            raise RenderError(
                f"{where}: backendRefs that are none of the policy's versions carry traffic "
                f"({names}); the split cannot be expressed over the versions"
            )
        shares = {name: 0 if i is None else weight_of(refs[i]) for name, i in matched.items()}
        if sum(shares.values()) == 0:
            return None
        return percentages(shares)

    def _write_weights(
        self,
        refs: list[Node],
        matched: dict[str, int | None],
        policy: ReleasePolicy,
        wanted: dict[str, int],
    ) -> None:
        for version in policy.spec.versions:
            if matched[version.name] is None and wanted[version.name] > 0:
                append_item(refs, self._new_ref(refs, matched, policy, version))
                matched[version.name] = len(refs) - 1
        write_weights(refs, matched, wanted)

    def _new_ref(
        self,
        refs: list[Node],
        matched: dict[str, int | None],
        policy: ReleasePolicy,
        version: Version,
    ) -> Node:
        template_index = matched.get(policy.spec.baseline.name)
        ref = plain_copy(refs[template_index if template_index is not None else 0])
        backend = version.backend
        ref["name"] = backend.service
        if _kind_of(version) == "Service":
            ref.pop("group", None)
            ref.pop("kind", None)
        else:
            ref["group"] = _group_of(version)
            ref["kind"] = _kind_of(version)
        if backend.namespace is not None:
            ref["namespace"] = backend.namespace
        else:
            ref.pop("namespace", None)
        if backend.port is not None:
            ref["port"] = backend.port
        ref.pop("weight", None)
        return ref

    # mirror

    def _mirror_filter(
        self, rule: Node, namespace: str | None, policy: ReleasePolicy
    ) -> tuple[Version, Node] | None:
        """The RequestMirror filter to a version, and that version; other mirrors are people's."""
        filters = rule.get("filters")
        if not isinstance(filters, list):
            return None
        for entry in filters:
            if not isinstance(entry, dict) or entry.get("type") != MIRROR:
                continue
            mirror = entry.get("requestMirror")
            ref = mirror.get("backendRef") if isinstance(mirror, dict) else None
            for version in policy.spec.versions:
                if _is_version(ref, version, namespace):
                    return version, entry
        return None

    def _write_mirror(
        self,
        rule: Node,
        namespace: str | None,
        matched: dict[str, int | None],
        refs: list[Node],
        policy: ReleasePolicy,
        split: TrafficSplit,
        where: str,
    ) -> None:
        current = self._mirror_filter(rule, namespace, policy)
        if split.mirror_to is None:
            if current is not None:
                filters = rule["filters"]
                filters.remove(current[1])
                if not filters:
                    del rule["filters"]
            return
        version = version_named(policy, split.mirror_to, where)
        port = version.backend.port
        index = matched.get(version.name)
        if port is None and index is not None:
            port = refs[index].get("port")
        if port is None:
            raise RenderError(
                f"{where}: mirroring to {version.name!r} needs a port (HTTPRoute requires one "
                "for a Service backendRef); set backend.port"
            )
        if current is None:
            entry = CommentedMap(type=MIRROR, requestMirror=CommentedMap(backendRef=CommentedMap()))
            if not isinstance(rule.get("filters"), list):
                insert_key(rule, "filters", CommentedSeq(), before="backendRefs")
            rule["filters"].append(entry)
        else:
            entry = current[1]
        mirror = entry["requestMirror"]
        ref = mirror["backendRef"]
        if ref.get("name") != version.backend.service:
            ref["name"] = version.backend.service
        if version.backend.namespace is not None:
            if ref.get("namespace") != version.backend.namespace:
                ref["namespace"] = version.backend.namespace
        else:
            ref.pop("namespace", None)
        if ref.get("port") != port:
            ref["port"] = port
        if _mirror_percent(entry) != split.mirror_percent:
            _write_mirror_percent(mirror, split.mirror_percent)


def _is_version(ref: Any, version: Version, route_namespace: str | None) -> bool:
    """A backendRef of the version's kind and name (+ namespace and port when given).

    A Service is in the core group; an InferencePool in the Gateway API Inference Extension's
    group (inference.networking.k8s.io, or the older inference.networking.x-k8s.io when the
    version names it).
    """
    backend = version.backend
    if not isinstance(ref, dict) or backend.service is None or ref.get("name") != backend.service:
        return False
    if ref.get("kind", "Service") != _kind_of(version) or ref.get("group", "") != _group_of(
        version
    ):
        return False
    ref_namespace = ref.get("namespace", route_namespace)
    if backend.namespace is not None and ref_namespace != backend.namespace:
        return False
    if backend.namespace is None and ref.get("namespace") not in (None, route_namespace):
        return False
    return backend.port is None or ref.get("port") == backend.port


def _kind_of(version: Version) -> str:
    return version.backend.kind or "Service"


def _group_of(version: Version) -> str:
    backend = version.backend
    if backend.group is not None:
        return backend.group
    return INFERENCE_POOL_GROUP if backend.kind == "InferencePool" else ""


def _mirror_percent(entry: Node) -> float:
    mirror = entry.get("requestMirror") or {}
    if mirror.get("percent") is not None:
        return float(mirror["percent"])
    fraction = mirror.get("fraction")
    if isinstance(fraction, dict) and fraction.get("numerator") is not None:
        return float(fraction["numerator"]) * 100 / float(fraction.get("denominator", 100))
    return 100.0  # neither percent nor fraction: everything is mirrored


def _write_mirror_percent(mirror: Node, percent: float) -> None:
    # percent and fraction are mutually exclusive (a CEL rule of the CRD)
    if float(percent).is_integer():
        mirror.pop("fraction", None)
        mirror["percent"] = int(percent)
    else:
        mirror.pop("percent", None)
        numerator = round(percent * _FRACTION_DENOMINATOR / 100)
        mirror["fraction"] = CommentedMap(numerator=numerator, denominator=_FRACTION_DENOMINATOR)
