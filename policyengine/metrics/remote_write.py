"""A small Prometheus remote-write client: pushes samples with chosen (simulated) timestamps.

The body is a `prometheus.WriteRequest` protobuf message (remote write 1.0, prometheus/prompb
types.proto and remote.proto), built with the protobuf library from a descriptor declared here
(four small messages; no generated code to keep in sync), then raw-snappy compressed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import cramjam
import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from policyengine.errors import ProviderUnavailableError, QueryError

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
_FIELD = descriptor_pb2.FieldDescriptorProto
# (message, [(field, number, type, repeated, message type)]) as in prometheus/prompb (v1).
_MESSAGES: tuple[tuple[str, tuple[tuple[str, int, int, bool, str], ...]], ...] = (
    (
        "Label",
        (("name", 1, _FIELD.TYPE_STRING, False, ""), ("value", 2, _FIELD.TYPE_STRING, False, "")),
    ),
    (
        "Sample",
        (
            ("value", 1, _FIELD.TYPE_DOUBLE, False, ""),
            ("timestamp", 2, _FIELD.TYPE_INT64, False, ""),
        ),
    ),
    (
        "TimeSeries",
        (
            ("labels", 1, _FIELD.TYPE_MESSAGE, True, ".prometheus.Label"),
            ("samples", 2, _FIELD.TYPE_MESSAGE, True, ".prometheus.Sample"),
        ),
    ),
    ("WriteRequest", (("timeseries", 1, _FIELD.TYPE_MESSAGE, True, ".prometheus.TimeSeries"),)),
)


@cache
def write_request_class() -> Any:
    """The `prometheus.WriteRequest` message class, from a pool of its own (no name clashes)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="policyengine/prometheus_remote_write.proto", package="prometheus", syntax="proto3"
    )
    for name, fields in _MESSAGES:
        message = file.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            message.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=_FIELD.LABEL_REPEATED if repeated else _FIELD.LABEL_OPTIONAL,
                type_name=type_name or None,
            )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


@dataclass(frozen=True)
class SeriesSamples:
    """One series (labels including `__name__`) and its samples as (time, value), in time order."""

    labels: Mapping[str, str]
    samples: Sequence[tuple[datetime, float]]


def encode_write_request(series: Iterable[SeriesSamples]) -> bytes:
    """The protobuf bytes of a WriteRequest{timeseries: [TimeSeries{labels, samples}]}."""
    request = write_request_class()()
    for one in series:
        if "__name__" not in one.labels:
            raise ValueError(f"a series needs a __name__ label: {dict(one.labels)}")
        timeseries = request.timeseries.add()
        # remote write requires the labels sorted by name
        for name, label_value in sorted(one.labels.items()):
            timeseries.labels.add(name=name, value=label_value)
        for at, value in one.samples:
            timeseries.samples.add(value=value, timestamp=round(at.timestamp() * 1000))
    return bytes(request.SerializeToString())


class RemoteWriteClient:
    """POSTs WriteRequests to `<base url>/api/v1/write` (Prometheus with the receiver enabled)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.endpoint = base_url.rstrip("/") + "/api/v1/write"
        self._timeout = timeout
        self._session = requests.Session()

    def push(self, series: Iterable[SeriesSamples]) -> None:
        payload = bytes(cramjam.snappy.compress_raw(encode_write_request(series)))
        try:
            response = self._session.post(
                self.endpoint, data=payload, headers=HEADERS, timeout=self._timeout
            )
        except requests.RequestException as error:
            raise ProviderUnavailableError(f"remote write to {self.endpoint} failed") from error
        if response.status_code >= 500:
            raise ProviderUnavailableError(
                f"remote write to {self.endpoint}: HTTP {response.status_code} {response.text[:200]}"
            )
        if response.status_code >= 300:
            raise QueryError(
                f"remote write to {self.endpoint} rejected: HTTP {response.status_code} "
                f"{response.text[:200]}"
            )

    def close(self) -> None:
        self._session.close()
