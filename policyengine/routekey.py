"""Sticky users for A/B/n: which version serves a user key, by weighted rendezvous hashing.

Every version scores −w/ln(U), U uniform in (0, 1) from a keyed hash of (seed, version, user); the
highest score wins. −ln U is exponential, so version i wins with probability exactly w_i/Σw
(proportional, unlike −ln(U)/w-style scores that over-serve the heavy version), and when weights
change a user only moves towards a version that gained weight: the fewest users move. The seed is
kept in the release's status file (`extra.routeSeed`), so assignments survive a restart of anything.

An edge service calls `route_key` (or `policyengine route-key`) once per user and sends the result
in the pin header; the router's header-match routes then pin the user to that version.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

PIN_HEADER = "x-policyengine-version"
"""Request header naming the version a user is pinned to (matched by the routers' pin routes)."""
SEED_KEY = "routeSeed"
"""Key of the seed in the release status file's `extra` mapping."""

_SCALE = float(1 << 64)


def release_seed(release_id: str) -> str:
    """The seed of a release: fixed by its identity, written once into its status file."""
    return hashlib.sha256(f"route-key:{release_id}".encode()).hexdigest()[:32]


def uniform(seed: str, version: str, key: str) -> float:
    """U in (0, 1) from a keyed BLAKE2b hash; never 0 or 1, so ln U is finite and negative."""
    digest = hashlib.blake2b(
        f"{version}\0{key}".encode(), key=seed.encode()[:64], digest_size=8
    ).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _SCALE


def route_key(key: str, weights: Mapping[str, float], seed: str) -> str:
    """The version serving user `key` under `weights` (versions at 0 serve nobody)."""
    best: str | None = None
    best_score = -math.inf
    for version in sorted(weights):
        weight = weights[version]
        if weight <= 0:
            continue
        score = -weight / math.log(uniform(seed, version, key))
        if score > best_score:
            best, best_score = version, score
    if best is None:
        raise ValueError("no version has a positive weight")
    return best


def parse_weights(text: str) -> dict[str, float]:
    """`v1=90,v2=10` (the commit trailer's spelling) as a mapping."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or not name:
            raise ValueError(f"not a weight: {part!r} (expected name=number, e.g. v1=90)")
        if name == "mirror":
            continue
        try:
            weights[name] = float(value)
        except ValueError as error:
            raise ValueError(f"weight of {name} is not a number: {value!r}") from error
        if weights[name] < 0:
            raise ValueError(f"weight of {name} is negative: {value}")
    return weights
