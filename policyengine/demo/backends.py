"""Where the demo's metrics live: the real Prometheus fed by remote write, or — only when the
binary is missing — the embedded stand-in that answers the engine's queries from the fleet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from policyengine.demo.embedded_metrics import EmbeddedMetricsServer, SampleStore
from policyengine.demo.prometheus_process import PrometheusProcess
from policyengine.metrics.remote_write import RemoteWriteClient
from policyengine.sim.exposition import Exposition, expose
from policyengine.sim.fleet import Fleet, FleetState
from policyengine.sim.writer import FleetWriter


class FleetMetrics(Protocol):
    """A metrics backend the fleet writes to and the engine queries."""

    @property
    def url(self) -> str: ...

    @property
    def name(self) -> str:
        """What it is, without its address (the report references no network address)."""
        ...

    @property
    def description(self) -> str: ...

    def record(self, state: FleetState) -> None: ...

    def stop(self) -> None: ...


class PrometheusBackend:
    def __init__(
        self, binary: str, workdir: Path, fleet: Fleet, expositions: tuple[Exposition, ...]
    ) -> None:
        self._process = PrometheusProcess(binary, workdir)
        self._client: RemoteWriteClient | None = None
        self._fleet = fleet
        self._expositions = expositions
        self._writer: FleetWriter | None = None

    @property
    def url(self) -> str:
        return self._process.url

    @property
    def name(self) -> str:
        return "Prometheus (the real one, fed by remote write with simulated time)"

    @property
    def description(self) -> str:
        return f"Prometheus ({self._process.binary}) at {self.url}, fresh TSDB, fed by remote write"

    def start(self) -> None:
        self._process.start()
        self._client = RemoteWriteClient(self.url)
        self._writer = FleetWriter(self._client, self._fleet, self._expositions)

    def record(self, state: FleetState) -> None:
        assert self._writer is not None, "start() first"
        self._writer.write(state)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._process.stop()


class EmbeddedBackend:
    def __init__(self, fleet: Fleet, expositions: tuple[Exposition, ...]) -> None:
        self._store = SampleStore()
        self._server = EmbeddedMetricsServer(self._store)
        self._fleet = fleet
        self._expositions = expositions

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def name(self) -> str:
        return "the embedded metrics backend (NOT Prometheus: the binary was missing)"

    @property
    def description(self) -> str:
        return (
            f"EMBEDDED METRICS BACKEND at {self.url} - NOT Prometheus: the `prometheus` binary "
            "was not found, so an in-process stand-in answers the engine's queries from the "
            "simulator's own counters. Install Prometheus (make prometheus) for the real thing."
        )

    def start(self) -> None:
        self._server.start()

    def record(self, state: FleetState) -> None:
        self._store.record(expose(self._fleet, state, self._expositions), state.at.timestamp())

    def stop(self) -> None:
        self._server.stop()
