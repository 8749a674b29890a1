"""Ports for the real servers the tests start.

A port from `bind(("127.0.0.1", 0))` comes from the kernel's ephemeral range, the same range every
outgoing connection takes its local port from. Between the probe and the server's own bind (Ceph's
monitor binds seconds later, after mkfs), one of the suite's many client connections can take it:
the monitor then fails with "Address already in use". Ports below the ephemeral range are never
handed to outgoing connections, so only another listener can collide, and the probe rules that out.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 20000


def _listen_range() -> range | None:
    try:
        low, _high = (int(part) for part in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return None
    return range(_LOWEST, low) if low - _LOWEST >= 1000 else None


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on 127.0.0.1 that nothing listens on, outside the ephemeral range."""
    candidates = _listen_range()
    chooser = random.SystemRandom()  # parallel test processes must not draw the same sequence
    held: list[socket.socket] = []
    try:
        for _attempt in range(count * 50):
            if len(held) == count:
                break
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                probe.bind(("127.0.0.1", chooser.choice(candidates) if candidates else 0))
            except OSError:
                probe.close()
                continue
            held.append(probe)  # kept bound until all are drawn, so the ports are distinct
        if len(held) < count:
            raise RuntimeError(f"no {count} free ports on 127.0.0.1")
        return [int(probe.getsockname()[1]) for probe in held]
    finally:
        for probe in held:
            probe.close()


def free_port() -> int:
    return free_ports(1)[0]
