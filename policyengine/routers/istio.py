"""Istio VirtualService router: weighted destinations of one HTTP route, plus mirror.

Two ways of telling versions apart: ModelMesh style (every destination is the modelmesh-serving
Service; each sets the `mm-vmodel-id` request header to its InferenceService) and plain style
(each version is its own host, or subset of a DestinationRule).
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.comments import CommentedMap

from policyengine.documents import describe
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy, Version
from policyengine.routekey import PIN_HEADER
from policyengine.routers.base import (
    Node,
    append_item,
    check_split,
    insert_after,
    number_value,
    pin_matches,
    pinned_version,
    pins_wanted,
    plain_copy,
    reconcile_pins,
    require_kind,
    same_number,
    split_of,
    version_named,
    write_weights,
)
from policyengine.values import TrafficSplit

API_VERSIONS = frozenset(
    {"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"}
)
MODELMESH_HEADER = "mm-vmodel-id"


class IstioRouter:
    """Edits `spec.http[].route[].weight` and the route's `mirror` / `mirrorPercentage`."""

    kind = "VirtualService"

    def __init__(self, *, modelmesh: bool) -> None:
        self.modelmesh = modelmesh

    def read(self, document: Any, policy: ReleasePolicy) -> TrafficSplit:
        route, where = self._route(document, policy)
        entries = self._entries(route, where)
        matched = self._match(entries, policy, where)
        weights = self._weights(entries, matched, where)
        if sum(weights.values()) != 100:
            raise RenderError(f"{where}: route weights sum to {sum(weights.values())}, not 100")
        mirror_to, percent = self._mirror(route, policy)
        return split_of(policy, weights, mirror_to, percent)

    def render(self, document: Any, policy: ReleasePolicy, split: TrafficSplit) -> None:
        route, where = self._route(document, policy)
        wanted = check_split(policy, split, where)
        entries = self._entries(route, where)
        matched = self._match(entries, policy, where)
        if self._weights(entries, matched, where) != wanted:
            self._write_weights(entries, matched, policy, wanted, where)
        self._write_mirror(route, policy, split, where)
        if pins_wanted(policy):
            self._write_pins(document["spec"]["http"], route, entries, matched, policy, wanted)

    # sticky users: one header-match route per serving version, ahead of the weighted route

    def _write_pins(
        self,
        http: Node,
        route: Node,
        entries: list[Node],
        matched: dict[str, int | None],
        policy: ReleasePolicy,
        wanted: dict[str, int],
    ) -> None:
        base = route.get("name") or policy.metadata.name
        for name, index in reconcile_pins(http, policy, matched, wanted):
            destination = plain_copy(entries[index])
            destination.pop("weight", None)
            pin = CommentedMap()
            pin["name"] = f"{base}-pin-{name}"
            pin["match"] = pin_matches(route.get("match"))
            for condition in pin["match"]:
                condition.setdefault("headers", CommentedMap())[PIN_HEADER] = CommentedMap(
                    exact=name
                )
            pin["route"] = [destination]
            http.insert(http.index(route), pin)

    # finding the route and the versions in it

    def _route(self, document: Any, policy: ReleasePolicy) -> tuple[Node, str]:
        service = require_kind(document, self.kind, API_VERSIONS)
        spec = service.get("spec")
        http = spec.get("http") if isinstance(spec, dict) else None
        routes = [r for r in http if isinstance(r, dict)] if isinstance(http, list) else []
        wanted = policy.spec.target.route
        if wanted is not None:
            for route in routes:
                if route.get("name") == wanted:
                    return route, f"{describe(service)}, http route {wanted!r}"
            names = ", ".join(repr(r.get("name")) for r in routes if r.get("name")) or "none"
            raise RenderError(
                f"{describe(service)}: no http route named {wanted!r} (named routes: {names})"
            )
        for index, route in enumerate(routes):
            if pinned_version(route):
                continue  # a sticky-user pin, not the weighted route
            entries = route.get("route")
            if isinstance(entries, list) and any(
                isinstance(entry, dict) and self._is_version(entry, version)
                for entry in entries
                for version in policy.spec.versions
            ):
                label = repr(route["name"]) if route.get("name") else f"#{index}"
                return route, f"{describe(service)}, http route {label}"
        raise RenderError(
            f"{describe(service)}: no http route has a destination of "
            f"{', '.join(self._version_keys(policy))} (policy {policy.key})"
        )

    def _entries(self, route: Node, where: str) -> list[Node]:
        entries = route.get("route")
        if not isinstance(entries, list) or not entries:
            raise RenderError(f"{where}: the route has no destinations")
        if not all(isinstance(entry, dict) for entry in entries):
            raise RenderError(f"{where}: every route[] entry must be a mapping")
        return entries

    def _match(
        self, entries: list[Node], policy: ReleasePolicy, where: str
    ) -> dict[str, int | None]:
        """Index of each version's destination in route[], None when it has none yet."""
        for version in policy.spec.versions:
            self._check_backend(version, where)
        matched: dict[str, int | None] = {}
        for version in policy.spec.versions:
            hits = [i for i, entry in enumerate(entries) if self._is_version(entry, version)]
            if len(hits) > 1:
                raise RenderError(
                    f"{where}: {len(hits)} destinations match version {version.name!r}; "
                    "give its backend a subset or port to tell them apart"
                )
            matched[version.name] = hits[0] if hits else None
        claimed = [i for i in matched.values() if i is not None]
        if len(claimed) != len(set(claimed)):
            raise RenderError(f"{where}: two versions match the same destination")
        return matched

    def _check_backend(self, version: Version, where: str) -> None:
        backend = version.backend
        if self.modelmesh and not backend.header:
            raise RenderError(
                f"{where}: version {version.name!r} needs backend.header "
                f"(the {MODELMESH_HEADER} value, its InferenceService name)"
            )
        if not self.modelmesh and not backend.host:
            raise RenderError(f"{where}: version {version.name!r} needs backend.host")

    def _is_version(self, entry: Node, version: Version) -> bool:
        if self.modelmesh:
            if version.backend.header is None:
                return False
            if _modelmesh_header(entry) != version.backend.header:
                return False
            destination = entry.get("destination")
            return version.backend.host is None or _same_destination(destination, version)
        return _same_destination(entry.get("destination"), version)

    def _version_keys(self, policy: ReleasePolicy) -> list[str]:
        if self.modelmesh:
            return [f"{MODELMESH_HEADER}={v.backend.header}" for v in policy.spec.versions]
        return [
            f"{v.backend.host}{'/' + v.backend.subset if v.backend.subset else ''}"
            for v in policy.spec.versions
        ]

    # weights

    def _weights(
        self, entries: list[Node], matched: dict[str, int | None], where: str
    ) -> dict[str, int]:
        # Istio: a lone destination takes all traffic; among several, a missing weight is 0.
        def weight_of(entry: Node) -> int:
            value = entry.get("weight")
            if value is None:
                return 100 if len(entries) == 1 else 0
            if isinstance(value, bool) or not isinstance(value, int):
                raise RenderError(f"{where}: weight {value!r} is not an integer")
            return value

        owned = {i for i in matched.values() if i is not None}
        foreign = [i for i in range(len(entries)) if i not in owned and weight_of(entries[i]) > 0]
        if foreign:
            hosts = ", ".join(_destination_text(entries[i]) for i in foreign)
            raise RenderError(
                f"{where}: destinations that are none of the policy's versions carry traffic "
                f"({hosts}); the split cannot be expressed over the versions"
            )
        return {name: 0 if i is None else weight_of(entries[i]) for name, i in matched.items()}

    def _write_weights(
        self,
        entries: list[Node],
        matched: dict[str, int | None],
        policy: ReleasePolicy,
        wanted: dict[str, int],
        where: str,
    ) -> None:
        for version in policy.spec.versions:
            if matched[version.name] is None and wanted[version.name] > 0:
                append_item(entries, self._new_destination(entries, matched, policy, version))
                matched[version.name] = len(entries) - 1
        write_weights(entries, matched, wanted)

    def _new_destination(
        self,
        entries: list[Node],
        matched: dict[str, int | None],
        policy: ReleasePolicy,
        version: Version,
    ) -> Node:
        """A destination for a version the route lacks, cloned from the baseline's."""
        template_index = matched.get(policy.spec.baseline.name)
        template = entries[template_index if template_index is not None else 0]
        entry: CommentedMap = plain_copy(template)
        destination = entry.setdefault("destination", CommentedMap())
        backend = version.backend
        if backend.host is not None:
            destination["host"] = backend.host
        if not self.modelmesh:
            if backend.subset is not None:
                destination["subset"] = backend.subset
            else:
                destination.pop("subset", None)
        if backend.port is not None:
            destination["port"] = CommentedMap(number=backend.port)
        if self.modelmesh:
            headers = entry.setdefault("headers", CommentedMap())
            request = headers.setdefault("request", CommentedMap())
            setters = request.setdefault("set", CommentedMap())
            key = next((k for k in setters if str(k).lower() == MODELMESH_HEADER), MODELMESH_HEADER)
            setters[key] = backend.header
        entry.pop("weight", None)
        return entry

    # mirror

    def _mirror(self, route: Node, policy: ReleasePolicy) -> tuple[str | None, float]:
        version = self._mirrored_version(route, policy)
        if version is None:
            return None, 0.0
        percentage = route.get("mirrorPercentage")
        value = percentage.get("value") if isinstance(percentage, dict) else None
        # Istio mirrors everything when mirrorPercentage is absent
        return version.name, 100.0 if value is None else float(value)

    def _mirrored_version(self, route: Node, policy: ReleasePolicy) -> Version | None:
        """The version the route mirrors to; a mirror elsewhere is a person's, not ours."""
        mirror = route.get("mirror")
        if self.modelmesh or not isinstance(mirror, dict):
            # every ModelMesh version shares one host: a mirror cannot be told apart by version
            return None
        for version in policy.spec.versions:
            if version.backend.host and _same_destination(mirror, version):
                return version
        return None

    def _write_mirror(
        self, route: Node, policy: ReleasePolicy, split: TrafficSplit, where: str
    ) -> None:
        current = self._mirrored_version(route, policy)
        if split.mirror_to is None:
            if current is not None:
                del route["mirror"]
                route.pop("mirrorPercentage", None)
            return
        if self.modelmesh:
            raise RenderError(
                f"{where}: istio-modelmesh cannot mirror: an Istio mirror has no header rewrite, "
                f"so mirrored requests would keep the caller's {MODELMESH_HEADER} and reach the "
                "same model; use the gatewayapi or istio router with a Service per version"
            )
        version = version_named(policy, split.mirror_to, where)
        if route.get("mirror") is not None and current is None:
            raise RenderError(
                f"{where}: the route already mirrors to {_destination_text(route)}, which is "
                "none of the policy's versions; remove that mirror first"
            )
        mirror = route["mirror"] if current is not None else CommentedMap()
        if mirror.get("host") != version.backend.host:
            mirror["host"] = version.backend.host
        if version.backend.subset is not None:
            if mirror.get("subset") != version.backend.subset:
                mirror["subset"] = version.backend.subset
        else:
            mirror.pop("subset", None)
        if version.backend.port is not None:
            port = mirror.get("port")
            if not isinstance(port, dict) or port.get("number") != version.backend.port:
                mirror["port"] = CommentedMap(number=version.backend.port)
        if current is None:
            insert_after(route, "route", "mirror", mirror)
        self._write_mirror_percentage(route, split.mirror_percent)

    def _write_mirror_percentage(self, route: Node, percent: float) -> None:
        percentage = route.get("mirrorPercentage")
        if not isinstance(percentage, dict):
            if percent == 100 and "mirrorPercentage" not in route:
                return
            insert_after(
                route, "mirror", "mirrorPercentage", CommentedMap(value=number_value(percent))
            )
        elif not same_number(percentage.get("value"), percent):
            percentage["value"] = number_value(percent)


def _modelmesh_header(entry: Node) -> Any:
    headers = entry.get("headers")
    request = headers.get("request") if isinstance(headers, dict) else None
    setters = request.get("set") if isinstance(request, dict) else None
    if not isinstance(setters, dict):
        return None
    # HTTP header names are case-insensitive
    return next((v for k, v in setters.items() if str(k).lower() == MODELMESH_HEADER), None)


def _same_destination(destination: Any, version: Version) -> bool:
    """host (+ subset and port when the version names them) equal; the mirror has the same shape."""
    if not isinstance(destination, dict):
        return False
    backend = version.backend
    if destination.get("host") != backend.host:
        return False
    if backend.subset is not None and destination.get("subset") != backend.subset:
        return False
    if backend.port is not None:
        port = destination.get("port")
        if not isinstance(port, dict) or port.get("number") != backend.port:
            return False
    return True


def _destination_text(entry: Any) -> str:
    destination = entry.get("destination") or entry.get("mirror") or {}
    if not isinstance(destination, dict):
        return "?"
    text = str(destination.get("host"))
    if destination.get("subset"):
        text += f"/{destination['subset']}"
    header = _modelmesh_header(entry)
    return f"{text} ({MODELMESH_HEADER}={header})" if header else text
