"""The router interface: read the traffic split from a manifest, render a new one into it.

Routers are pure: they get an already-parsed ruamel.yaml round-trip document, read or change it in
place, and never touch the disk. The reconciler loads and dumps (policyengine/documents.py).
The functions below are what every router shares: checking a split, naming objects in errors,
and editing round-trip mappings without disturbing their comments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.tokens import CommentToken

from policyengine.documents import describe
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy, Version
from policyengine.routekey import PIN_HEADER
from policyengine.values import TrafficSplit

Node = Any
"""A node of a ruamel.yaml round-trip document (CommentedMap, CommentedSeq or a scalar)."""


class Router(Protocol):
    kind: str  # the Kubernetes kind this router edits (VirtualService, InferenceService, HTTPRoute)

    def read(self, document: Any, policy: ReleasePolicy) -> TrafficSplit:
        """The split currently written in the document. Raises RenderError when the route is missing."""
        ...

    def render(self, document: Any, policy: ReleasePolicy, split: TrafficSplit) -> None:
        """Write the split into the document in place, changing only the values that differ."""
        ...


def require_kind(document: Any, kind: str, api_versions: Iterable[str]) -> Node:
    """The document itself, once it is known to be an object of that kind and API version."""
    accepted = sorted(api_versions)
    if (
        not isinstance(document, dict)
        or document.get("kind") != kind
        or document.get("apiVersion") not in accepted
    ):
        found = describe(document)
        if isinstance(document, dict):
            found += f" ({document.get('apiVersion')})"
        raise RenderError(f"expected a {kind} ({' or '.join(accepted)}), found {found}")
    return document


def version_named(policy: ReleasePolicy, name: str, where: str) -> Version:
    for version in policy.spec.versions:
        if version.name == name:
            return version
    known = ", ".join(v.name for v in policy.spec.versions)
    raise RenderError(f"{where}: {name!r} is not a version of policy {policy.key} ({known})")


def check_split(policy: ReleasePolicy, split: TrafficSplit, where: str) -> dict[str, int]:
    """The split's weight for every version of the policy (0 when absent), once it is sound.

    A router writes what it is told, so a split that would produce a broken manifest is refused
    here rather than written: unknown versions, weights outside 0-100, a sum other than 100.
    """
    given = split.as_dict()
    for name in given:
        version_named(policy, name, where)
    weights = {v.name: given.get(v.name, 0) for v in policy.spec.versions}
    out_of_range = {n: w for n, w in weights.items() if not 0 <= w <= 100}
    if out_of_range:
        raise RenderError(f"{where}: weights must be 0-100, got {out_of_range}")
    if sum(weights.values()) != 100:
        raise RenderError(f"{where}: weights must sum to 100, got {split.trailer()}")
    if split.mirror_to is not None:
        version_named(policy, split.mirror_to, where)
        if not 0 < split.mirror_percent <= 100:
            raise RenderError(
                f"{where}: mirror percentage must be in (0, 100], got {split.mirror_percent:g}"
            )
    return weights


def split_of(
    policy: ReleasePolicy,
    weights: Mapping[str, int],
    mirror_to: str | None = None,
    mirror_percent: float = 0.0,
) -> TrafficSplit:
    """A TrafficSplit listing every version of the policy, in the policy's order."""
    ordered = {v.name: weights.get(v.name, 0) for v in policy.spec.versions}
    return TrafficSplit.of(ordered, mirror_to, mirror_percent)


def percentages(shares: Mapping[str, float]) -> dict[str, int]:
    """Proportional shares as whole percentages summing to 100 (largest remainder first)."""
    total = sum(shares.values())
    exact = {name: share * 100 / total for name, share in shares.items()}
    result = {name: int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: exact[name] - result[name], reverse=True)
    for name in by_remainder[: 100 - sum(result.values())]:
        result[name] += 1
    return result


def number_value(value: float) -> int | float:
    """10.0 is written as 10: the schemas take either, and people write integers."""
    return int(value) if float(value).is_integer() else value


def same_number(existing: Any, wanted: float) -> bool:
    """Whether a value already in the manifest equals the wanted number (10 == 10.0)."""
    return (
        isinstance(existing, int | float)
        and not isinstance(existing, bool)
        and float(existing) == float(wanted)
    )


def insert_key(
    mapping: Node, key: str, value: Any, *, before: str | None = None, after: str | None = None
) -> None:
    """Add a key beside a sibling (so new keys land where people put them), else at the end."""
    keys = list(mapping.keys())
    if after is not None and after in keys:
        mapping.insert(keys.index(after) + 1, key, value)
    elif before is not None and before in keys:
        mapping.insert(keys.index(before), key, value)
    else:
        mapping[key] = value


def plain_copy(node: Any) -> Any:
    """A copy of a round-trip node without its comments (a cloned entry must not repeat them)."""
    if isinstance(node, dict):
        copied = CommentedMap()
        for key, value in node.items():
            copied[key] = plain_copy(value)
        return copied
    if isinstance(node, list):
        return CommentedSeq(plain_copy(item) for item in node)
    return node


def append_key(mapping: Node, key: str, value: Any) -> None:
    """Add a key at the end of a mapping, keeping comments that follow the mapping below it.

    ruamel hangs the comment lines after a block on its last scalar; appended naively, the new
    key would land under those lines, away from its siblings.
    """
    holder, last = _last_leaf(mapping)
    mapping[key] = value
    _carry_trailing_comment(holder, last, mapping)


def append_item(sequence: Node, item: Any) -> None:
    """Append to a block sequence, keeping comments that follow the sequence below it."""
    holder, last = _last_leaf(sequence)
    sequence.append(item)
    _carry_trailing_comment(holder, last, sequence)


def insert_after(mapping: Node, after: str, key: str, value: Any) -> None:
    """Insert a key right after a sibling, below that sibling's block but above its comments."""
    holder, last = _last_leaf(mapping[after]) if after in mapping else (None, None)
    insert_key(mapping, key, value, after=after)
    _carry_trailing_comment(holder, last, value)


def _carry_trailing_comment(holder: Node, last: Any, block: Node) -> None:
    if holder is None:
        return
    slot = 0 if isinstance(holder, list) else 2
    entry = holder.ca.items.get(last)
    token = entry[slot] if entry and len(entry) > slot else None
    if token is None or "\n" not in token.value:
        return
    end_of_line, _, following = token.value.partition("\n")
    new_holder, new_last = _last_leaf(block)
    if not following or new_holder is None or (new_holder is holder and new_last == last):
        return
    token.value = end_of_line + "\n"
    moved = CommentToken("\n" + following, token.start_mark, None)
    comments = new_holder.ca.items
    if isinstance(new_holder, list):
        comments[new_last] = [moved, None]
    else:
        comments[new_last] = [None, None, moved, None]


def _last_leaf(node: Node) -> tuple[Node, Any]:
    """The innermost collection holding the last scalar of a block, and that scalar's key."""
    holder, last = None, None
    while isinstance(node, dict | list) and len(node) > 0:
        holder, last = node, (list(node.keys())[-1] if isinstance(node, dict) else len(node) - 1)
        node = node[last]
    return holder, last


def write_weights(
    items: list[Node], matched: dict[str, int | None], wanted: dict[str, int]
) -> None:
    """Set each matched destination's `weight`, touching only the values that differ.

    A lone destination without `weight` already gets 100 % (Istio's and Gateway API's default):
    it keeps its shape rather than gaining a line the diff would show.
    """
    alone = len(items) == 1
    for name, index in matched.items():
        if index is None:
            continue
        item = items[index]
        if "weight" not in item:
            if not (alone and wanted[name] == 100):
                item["weight"] = wanted[name]
        elif item["weight"] != wanted[name]:
            item["weight"] = wanted[name]


def pins_wanted(policy: ReleasePolicy) -> bool:
    """Whether the policy pins users to versions by header (A/B/n with stickyUsers)."""
    strategy = policy.spec.strategy
    return strategy.type == "abn" and strategy.sticky_users


def pinned_version(route: Any) -> str | None:
    """The version a sticky-user pin route (Istio http[] or Gateway API rules[]) matches, if any."""
    matches = route.get("match") if "match" in route else route.get("matches")
    if not isinstance(matches, list):
        return None
    for condition in matches:
        headers = condition.get("headers") if isinstance(condition, dict) else None
        if isinstance(headers, dict):  # Istio: {name: {exact: value}}
            value = headers.get(PIN_HEADER)
            if isinstance(value, dict) and isinstance(value.get("exact"), str):
                return str(value["exact"])
        if isinstance(headers, list):  # Gateway API: [{name, value, type}]
            for header in headers:
                if isinstance(header, dict) and str(header.get("name", "")).lower() == PIN_HEADER:
                    return str(header.get("value"))
    return None


def pin_matches(matches: Any) -> CommentedSeq:
    """The weighted route's match conditions, copied for a pin (one empty condition if none)."""
    if isinstance(matches, list) and matches:
        return CommentedSeq(plain_copy(m) for m in matches)
    return CommentedSeq([CommentedMap()])


def reconcile_pins(
    routes: list[Any], policy: ReleasePolicy, matched: dict[str, int | None], wanted: dict[str, int]
) -> list[tuple[str, int]]:
    """Drop the pin routes nobody can be assigned to any more from `routes` (in place), and say
    which versions still need a pin: (version, index of its entry in the weighted route).

    Pins matter only while several versions serve: one version alone needs none, and a pin to a
    version at 0 % is removed so its pinned users fall through to the weighted route.
    """
    existing = {
        name: r for r in routes if isinstance(r, dict) and (name := pinned_version(r)) is not None
    }
    serving = sum(1 for weight in wanted.values() if weight > 0)
    for name, pin in existing.items():
        if wanted.get(name, 0) == 0 or serving < 2:
            routes.remove(pin)
    if serving < 2:
        return []
    missing = []
    for version in policy.spec.versions:
        index = matched.get(version.name)
        if wanted[version.name] == 0 or version.name in existing or index is None:
            continue
        missing.append((version.name, index))
    return missing
