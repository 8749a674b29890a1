"""Routers: read and write traffic splits in manifests; `router_for` picks one by policy kind."""

from __future__ import annotations

from policyengine.errors import RenderError
from policyengine.routers.base import Router
from policyengine.routers.gatewayapi import GatewayAPIRouter
from policyengine.routers.istio import IstioRouter
from policyengine.routers.kserve import KServeRouter
from policyengine.routers.kserve_canary import KServeCanaryRouter

__all__ = [
    "GatewayAPIRouter",
    "IstioRouter",
    "KServeCanaryRouter",
    "KServeRouter",
    "Router",
    "router_for",
]

_ROUTERS: dict[str, Router] = {
    "istio-modelmesh": IstioRouter(modelmesh=True),
    "istio": IstioRouter(modelmesh=False),
    "kserve": KServeRouter(),
    "kserve-canary": KServeCanaryRouter(),
    "gatewayapi": GatewayAPIRouter(),
}


def router_for(kind: str) -> Router:
    """The router of a policy's `spec.target.router`; an unknown kind is an error, not a default."""
    try:
        return _ROUTERS[kind]
    except KeyError:
        known = ", ".join(sorted(_ROUTERS))
        raise RenderError(f"unknown router {kind!r} (known: {known})") from None
