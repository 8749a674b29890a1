"""Pushes the fleet's samples into Prometheus by remote write, stamped with simulated time.

The only I/O of the simulator besides reading manifests: everything it sends is computed by the
pure fleet and exposition modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from policyengine.metrics.remote_write import SeriesSamples
from policyengine.sim.exposition import Exposition, Sample, expose
from policyengine.sim.fleet import Fleet, FleetState

# Prometheus accepts large write requests, but a few thousand series keep each body well below
# the receiver's default limits while still making one request per interval for a demo fleet.
DEFAULT_SERIES_PER_REQUEST = 5000


class RemoteWriteSink(Protocol):
    """What the writer needs of `RemoteWriteClient`: one POST of a batch of series."""

    def push(self, series: Iterable[SeriesSamples]) -> None: ...


@dataclass(frozen=True)
class FleetWriter:
    sink: RemoteWriteSink
    fleet: Fleet
    expositions: tuple[Exposition, ...]
    series_per_request: int = DEFAULT_SERIES_PER_REQUEST

    def write(self, state: FleetState) -> int:
        """Push every series at state.at; returns how many series were sent."""
        return self.write_states([state])

    def write_states(self, states: Sequence[FleetState]) -> int:
        """Push several consecutive states at once (each series' samples in time order)."""
        if not states:
            return 0
        per_series: dict[tuple[tuple[str, str], ...], list[tuple[datetime, float]]] = {}
        for state in states:
            for sample in expose(self.fleet, state, self.expositions):
                points = per_series.setdefault(series_labels(sample), [])
                if points and points[-1][0] >= state.at:
                    # Two versions with the same labels (or states out of order) would make
                    # Prometheus reject the batch or, worse, mix two versions in one series.
                    raise ValueError(
                        f"series {sample.name}{dict(sample.labels)} gets two samples at "
                        f"{state.at.isoformat()}: give the versions distinct metric labels"
                    )
                points.append((state.at, sample.value))
        batch: list[SeriesSamples] = []
        for labels, points in per_series.items():
            batch.append(SeriesSamples(dict(labels), points))
            if len(batch) >= self.series_per_request:
                self.sink.push(batch)
                batch = []
        if batch:
            self.sink.push(batch)
        return len(per_series)


def series_labels(sample: Sample) -> tuple[tuple[str, str], ...]:
    """The full label set of a sample's series, `__name__` included."""
    return (("__name__", sample.name), *sample.labels)
