"""Fixtures for integration tests: a real Prometheus, one per module unless a test needs its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mlserver import MLServer, running_mlserver
from tests.support.prometheus import PrometheusServer


@pytest.fixture(scope="module")
def prometheus_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A started, empty Prometheus shared by a module; backfill restarts it with the new blocks."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus_server(tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus of this test's own, not yet started: backfill first, then start()."""
    server = PrometheusServer(tmp_path / "prometheus")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    """A real MLServer 1.7.1 (iris, slow, stall) shared by the load-test modules.

    Its stall model pauses the whole server for 1 s every 3 s here (every 10 s in the bench)."""
    with running_mlserver(tmp_path_factory.mktemp("mlserver"), stall_period=3.0) as server:
        yield server
