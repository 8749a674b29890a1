"""The router interface: read the traffic split from a manifest, render a new one into it.

Routers are pure: they get an already-parsed ruamel.yaml round-trip document, read or change it in
place, and never touch the disk. The reconciler loads and dumps (policyengine/documents.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from policyengine.policy.models import ReleasePolicy
from policyengine.strategies.decision import TrafficSplit


class Router(Protocol):
    kind: str  # the Kubernetes kind this router edits (VirtualService, InferenceService, HTTPRoute)

    def read(self, document: Any, policy: ReleasePolicy) -> TrafficSplit:
        """The split currently written in the document. Raises RenderError when the route is missing."""
        ...

    def render(self, document: Any, policy: ReleasePolicy, split: TrafficSplit) -> None:
        """Write the split into the document in place, changing only the values that differ."""
        ...
