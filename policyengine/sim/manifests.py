"""The traffic split the fleet serves: read from the manifests in a checkout, as Argo CD applies them.

Reads through the same routers the engine writes with, so what the simulator serves is exactly what
the engine's last commit says.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from policyengine.documents import find_document, load_documents
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.values import TrafficSplit


def split_in_manifest(policy: ReleasePolicy, text: str, source: str = "<string>") -> TrafficSplit:
    """The split a policy's first target manifest holds (the one its router reads)."""
    router = router_for(policy.spec.target.router)
    target = policy.spec.target.manifests[0]
    document = find_document(load_documents(text, source), target.kind or router.kind, target.name)
    return router.read(document, policy)


def splits_in_checkout(root: Path, policies: Iterable[ReleasePolicy]) -> dict[str, TrafficSplit]:
    """The split of every policy, by policy key, from the files under a working tree."""
    splits: dict[str, TrafficSplit] = {}
    for policy in policies:
        path = policy.spec.target.manifests[0].path
        text = (root / path).read_text(encoding="utf-8")
        splits[policy.key] = split_in_manifest(policy, text, path)
    return splits
