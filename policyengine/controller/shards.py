"""Which shard a policy belongs to: a stable hash of its namespace/name.

Stable across processes, versions and Python's hash randomization (sha256, not `hash`), so every
replica agrees on the assignment without talking to the others.
"""

from __future__ import annotations

import hashlib


def shard_of(policy_key: str, shards: int) -> int:
    """The shard (0..shards-1) of the policy `namespace/name`."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    digest = hashlib.sha256(policy_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def lease_name(prefix: str, shard: int, shards: int) -> str:
    """The Lease of one shard: `policyengine-shard-3-of-12` (the count is in the name, so a
    replica started with another --shards never mistakes a shard of another layout for its own)."""
    return f"{prefix}-shard-{shard}-of-{shards}"
