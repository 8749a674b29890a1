"""The ports the tests give real servers: distinct, free, and never ones the kernel hands out
to outgoing connections (a Ceph monitor once lost its port to one between probe and bind)."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.ports import free_ports

# The suite runs on Linux (Debian's prometheus, Ceph, timerfd): the range is always there.
RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def test_the_ports_are_distinct_and_free() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    for port in ports:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", port))


def test_the_ports_lie_below_the_ephemeral_range() -> None:
    low = int(RANGE.read_text().split()[0])
    assert all(port < low for port in free_ports(20))
