"""Object storage against a real Ceph RGW (started by the test module, stopped at its end):
datasets cached by ETag, missing keys named, an unreachable gateway distinct from a missing object,
the evidence archive, and KServe logger payloads read back for drift."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from policyengine.errors import StorageObjectMissingError, StorageUnavailableError
from policyengine.golden.payload_logs import read_logged_values
from policyengine.storage.s3 import S3Location, S3Settings, S3Store
from tests.support.ceph_rgw import RadosGateway, restart_gateway, running_gateway, stop_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadosGateway]:
    with running_gateway(tmp_path_factory.mktemp("ceph")) as started:
        yield started


@pytest.fixture
def s3_env(gateway: RadosGateway, monkeypatch: pytest.MonkeyPatch) -> RadosGateway:
    for name, value in gateway.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POLICYENGINE_S3_ENDPOINT_URL", gateway.endpoint_url)
    return gateway


def raw_client(gateway: RadosGateway):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint_url,
        aws_access_key_id=gateway.access_key,
        aws_secret_access_key=gateway.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


def test_a_dataset_is_downloaded_once_per_etag(s3_env: RadosGateway, tmp_path: Path) -> None:
    client = raw_client(s3_env)
    client.create_bucket(Bucket="golden-cache")
    client.put_object(Bucket="golden-cache", Key="iris/v1.jsonl", Body=b'{"a": 1}\n')
    store = S3Store(S3Settings.from_environment())
    where = S3Location.parse("s3://golden-cache/iris/v1.jsonl")
    first = store.fetch_cached(where, tmp_path)
    assert first.read_bytes() == b'{"a": 1}\n'
    stamp = first.stat().st_mtime_ns
    again = store.fetch_cached(where, tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp  # not downloaded again
    client.put_object(Bucket="golden-cache", Key="iris/v1.jsonl", Body=b'{"a": 2}\n')
    changed = store.fetch_cached(where, tmp_path)
    assert changed != first and changed.read_bytes() == b'{"a": 2}\n'
    assert not list(tmp_path.glob(".partial-*"))


def test_a_missing_object_is_named_and_is_not_an_outage(
    s3_env: RadosGateway, tmp_path: Path
) -> None:
    raw_client(s3_env).create_bucket(Bucket="golden-missing")
    store = S3Store(S3Settings.from_environment())
    with pytest.raises(
        StorageObjectMissingError, match=re.escape("s3://golden-missing/no/such.jsonl")
    ):
        store.fetch_cached(S3Location.parse("s3://golden-missing/no/such.jsonl"), tmp_path)
    with pytest.raises(StorageObjectMissingError, match="no such object"):
        store.fetch_cached(S3Location.parse("s3://no-such-bucket/x.jsonl"), tmp_path)


def test_a_stopped_gateway_is_an_outage_in_bounded_time(
    s3_env: RadosGateway, tmp_path: Path
) -> None:
    store = S3Store(S3Settings.from_environment())
    stop_gateway(s3_env)
    try:
        with pytest.raises(StorageUnavailableError, match="unreachable"):
            store.fetch_cached(S3Location.parse("s3://golden-cache/iris/v1.jsonl"), tmp_path)
    finally:
        restart_gateway(s3_env)
    # Ceph kept the data while the gateway was down.
    assert store.get(S3Location.parse("s3://golden-cache/iris/v1.jsonl")) == b'{"a": 2}\n'


def _log_object(kind: str, payload: dict[str, object]) -> bytes:
    record = {
        "Id": "x",
        "ReqType": f"org.kubeflow.serving.inference.{kind}",
        "ContentType": "application/json",
        "Namespace": "fraud",
        "InferenceService": "fraud",
        "Component": "predictor",
        "Bytes": base64.b64encode(json.dumps(payload).encode()).decode(),
    }
    return json.dumps([record]).encode()


def test_kserve_logger_payloads_are_read_back_per_feature(s3_env: RadosGateway) -> None:
    client = raw_client(s3_env)
    client.create_bucket(Bucket="payload-logs")
    prefix = "logs/fraud/fraud-v2/predictor"
    for i in range(3):
        request = {
            "inputs": [{"name": "amount", "shape": [2], "datatype": "FP64", "data": [i, i + 0.5]}]
        }
        response = {
            "outputs": [{"name": "predict", "shape": [2], "datatype": "INT64", "data": [i % 2, 1]}]
        }
        client.put_object(
            Bucket="payload-logs",
            Key=f"{prefix}/id{i}-request.json",
            Body=_log_object("request", request),
        )
        client.put_object(
            Bucket="payload-logs",
            Key=f"{prefix}/id{i}-response.json",
            Body=_log_object("response", response),
        )
    client.put_object(Bucket="payload-logs", Key=f"{prefix}/garbage.json", Body=b"not json")
    store = S3Store(S3Settings.from_environment())
    values = read_logged_values(
        store, S3Location.parse(f"s3://payload-logs/{prefix}"), ["amount", "prediction"], 100
    )
    assert sorted(values["amount"]) == [0, 0.5, 1, 1.5, 2, 2.5]
    assert sorted(values["prediction"]) == [0, 0, 1, 1, 1, 1]
    capped = read_logged_values(
        store, S3Location.parse(f"s3://payload-logs/{prefix}"), ["amount", "prediction"], 2
    )
    assert len(capped["amount"]) + len(capped["prediction"]) <= 4
