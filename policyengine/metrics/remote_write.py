"""A small Prometheus remote-write client: pushes samples with chosen (simulated) timestamps.

The `prometheus.WriteRequest` protobuf is encoded by hand — two nested messages of strings,
doubles and varints — so no generated code is needed; the body is raw-snappy compressed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import cramjam
import requests

from policyengine.errors import ProviderUnavailableError, QueryError

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


@dataclass(frozen=True)
class SeriesSamples:
    """One series (labels including `__name__`) and its samples as (time, value), in time order."""

    labels: Mapping[str, str]
    samples: Sequence[tuple[datetime, float]]


def encode_write_request(series: Iterable[SeriesSamples]) -> bytes:
    """The protobuf bytes of a WriteRequest{timeseries: [TimeSeries{labels, samples}]}."""
    request = bytearray()
    for one in series:
        if "__name__" not in one.labels:
            raise ValueError(f"a series needs a __name__ label: {dict(one.labels)}")
        body = bytearray(_encoded_labels(tuple(sorted(one.labels.items()))))
        for at, value in one.samples:
            milliseconds = round(at.timestamp() * 1000)
            sample = _tag(1, 1) + struct.pack("<d", value) + _tag(2, 0) + _varint(milliseconds)
            body += _length_delimited(2, sample)
        request += _length_delimited(1, bytes(body))
    return bytes(request)


@lru_cache(maxsize=65536)
def _encoded_labels(labels: tuple[tuple[str, str], ...]) -> bytes:
    """The label fields of a TimeSeries, sorted by name as remote write requires.

    A simulator sends the same series every interval: encoding each label set once keeps the
    writer from spending most of its time re-encoding identical bytes.
    """
    encoded = bytearray()
    for name, value in labels:
        encoded += _length_delimited(1, _string_field(1, name) + _string_field(2, value))
    return bytes(encoded)


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


def _tag(field_number: int, wire_type: int) -> bytes:
    return _varint(field_number << 3 | wire_type)


def _varint(number: int) -> bytes:
    number &= (1 << 64) - 1  # int64 as protobuf encodes it: negatives as ten-byte two's complement
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    return _tag(field_number, 2) + _varint(len(payload)) + payload


def _string_field(field_number: int, text: str) -> bytes:
    return _length_delimited(field_number, text.encode("utf-8"))
