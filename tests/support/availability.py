"""What a test does when a real part it needs (Prometheus, Ceph, MLServer, kubectl…) is missing:
a developer's machine skips with the way to install it; CI fails, so a missing install step can
never turn into a green run that tested nothing."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
