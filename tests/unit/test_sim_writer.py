"""The writer: every series of an interval in few requests, stamped with simulated time."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest

from policyengine.metrics.remote_write import SeriesSamples
from policyengine.sim.exposition import Exposition, expose
from policyengine.sim.fleet import Fleet, FleetState, ModelProfile, VersionProfile, splits_of
from policyengine.sim.writer import FleetWriter

T0 = datetime(2024, 1, 1, tzinfo=UTC)
FLEET = Fleet(
    tuple(
        ModelProfile(
            f"ns/m{i}",
            "ns",
            f"m{i}",
            (
                VersionProfile("v1", metric_label=f"m{i}-v1"),
                VersionProfile("v2", metric_label=f"m{i}-v2"),
            ),
        )
        for i in range(3)
    )
)


class RecordingSink:
    """Keeps what would have been pushed; the real push is tested against Prometheus."""

    def __init__(self) -> None:
        self.requests: list[list[SeriesSamples]] = []

    def push(self, series: Iterable[SeriesSamples]) -> None:
        self.requests.append(list(series))


def states(count: int) -> list[FleetState]:
    rng = random.Random(4)
    state = FLEET.start(T0)
    out = [state]
    splits = splits_of({m.policy: {"v1": 80, "v2": 20} for m in FLEET.models})
    for _ in range(count - 1):
        state, _ = FLEET.advance(state, splits, rng)
        out.append(state)
    return out


def test_one_interval_is_one_request_with_every_series_at_the_simulated_time() -> None:
    sink = RecordingSink()
    writer = FleetWriter(sink, FLEET, (Exposition.MODELMESH, Exposition.BUSINESS))
    state = states(3)[-1]
    sent = writer.write(state)
    assert len(sink.requests) == 1
    series = sink.requests[0]
    assert sent == len(series) == len(expose(FLEET, state, writer.expositions))
    assert all(s.samples == [(state.at, s.samples[0][1])] for s in series)
    assert all("__name__" in s.labels for s in series)
    assert state.at == T0 + timedelta(minutes=2)


def test_large_intervals_are_split_into_batches() -> None:
    sink = RecordingSink()
    writer = FleetWriter(sink, FLEET, (Exposition.ISTIO,), series_per_request=100)
    sent = writer.write(states(1)[0])
    assert sent > 200
    assert [len(r) for r in sink.requests][:-1] == [100] * (len(sink.requests) - 1)
    assert sum(len(r) for r in sink.requests) == sent


def test_several_intervals_go_in_time_order_per_series() -> None:
    sink = RecordingSink()
    writer = FleetWriter(sink, FLEET, (Exposition.OVMS,))
    run = states(4)
    writer.write_states(run)
    assert writer.write_states([]) == 0
    (request,) = sink.requests
    for series in request:
        times = [at for at, _ in series.samples]
        assert times == [s.at for s in run]
        values = [v for _, v in series.samples]
        if series.labels["__name__"] != "ovms_request_time_us_sum":
            assert values == sorted(values)


def test_two_versions_exposed_as_one_series_are_refused() -> None:
    # OVMS tells versions apart by model name only: two models with a version "v1" would collide.
    clash = Fleet(
        tuple(ModelProfile(f"ns/m{i}", "ns", f"m{i}", (VersionProfile("v1"),)) for i in range(2))
    )
    writer = FleetWriter(RecordingSink(), clash, (Exposition.OVMS,))
    with pytest.raises(ValueError, match="ovms_requests_success"):
        writer.write(clash.start(T0))
