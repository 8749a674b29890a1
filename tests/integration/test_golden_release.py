"""Golden tests and drift end to end: `reconcile --once` against a real Ceph RGW holding the dataset
and the evidence archive, and a real MLServer serving the versions (scikit-learn models trained
here). Git is a real bare remote. Nothing is stood in for.

The data: two regions (x0 = 0 for eu, 1 for us) and a label that is x1 > 0. The baseline learnt it;
`slice` is wrong on us rows with 0 < x1 < 0.5 only (a regression on one slice); `drift` moved its
threshold to x1 > -0.8 (its predictions lean to 1); `same` is the baseline retrained.
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

from tests.support.ceph_rgw import RadosGateway, running_gateway
from tests.support.mlserver import MLServer, mlserver_binary
from tests.support.release_repos import T0, ReleaseRepo, example_files

MODELS = ("golden-v1", "golden-slice", "golden-drift", "golden-same")

TRAIN = """
import json, sys
import joblib
from sklearn.tree import DecisionTreeClassifier

folder = sys.argv[1]
grid = [(x0, i / 100) for x0 in (0, 1) for i in range(-300, 301)]

def fit(rule):
    X = [[x0, x1] for x0, x1 in grid]
    y = [int(rule(x0, x1)) for x0, x1 in grid]
    return DecisionTreeClassifier(random_state=0).fit(X, y)

rules = {
    "golden-v1": lambda x0, x1: x1 > 0,
    "golden-same": lambda x0, x1: x1 > 0,
    "golden-slice": lambda x0, x1: x1 > 0 and not (x0 == 1 and x1 < 0.5),
    "golden-drift": lambda x0, x1: x1 > -0.8,
}
for name, rule in rules.items():
    joblib.dump(fit(rule), f"{folder}/{name}/model.joblib")
"""


def golden_rows(seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for region, x0, count in (("eu", 0, 400), ("us", 1, 100)):
        for _ in range(count):
            x1 = round(rng.gauss(0, 1), 3)
            rows.append({"x0": x0, "x1": x1, "region": region, "label": int(x1 > 0)})
    return rows


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadosGateway]:
    with running_gateway(tmp_path_factory.mktemp("ceph")) as started:
        client = s3_client(started)
        for bucket in ("golden", "evidence"):
            client.create_bucket(Bucket=bucket)
        body = "".join(json.dumps(row) + "\n" for row in golden_rows())
        client.put_object(Bucket="golden", Key="fraud/golden-v3.jsonl", Body=body.encode())
        yield started


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    server = MLServer(tmp_path_factory.mktemp("mlserver"))
    for name in MODELS:
        folder = server.models / name
        folder.mkdir(parents=True)
        (folder / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib", "version": "v1"},
                }
            )
        )
    subprocess.run(
        [str(mlserver_binary().parent / "python"), "-c", TRAIN, str(server.models)],
        check=True,
        timeout=120,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def s3_client(gateway: RadosGateway) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=gateway.endpoint_url,
        aws_access_key_id=gateway.access_key,
        aws_secret_access_key=gateway.secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_environment(gateway: RadosGateway, monkeypatch: pytest.MonkeyPatch) -> RadosGateway:
    for name, value in gateway.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POLICYENGINE_S3_ENDPOINT_URL", gateway.endpoint_url)
    monkeypatch.setenv("POLICYENGINE_EVIDENCE_ARCHIVE", "s3://evidence/archive")
    return gateway


def endpoint(server: MLServer, model: str, grpc: bool) -> dict[str, str]:
    if grpc:
        return {"url": server.grpc_target, "model": model, "protocol": "v2-grpc"}
    return {"url": server.url, "model": model}


def release(
    tmp_path: Path, server: MLServer, candidate: str, grpc: bool = False, **golden: Any
) -> ReleaseRepo:
    files = example_files("modelmesh-canary")
    policy = yaml.safe_load(files["policy.yaml"])
    policy["spec"]["golden"] = {
        "dataset": "s3://golden/fraud/golden-v3.jsonl",
        "features": ["x0", "x1"],
        "label": "label",
        "sliceBy": ["region"],
        "metrics": ["accuracy"],
        "maxDegradation": 0.1,
        "minSliceRows": 30,
        "endpoints": {
            "v1": endpoint(server, "golden-v1", grpc),
            "v2": endpoint(server, candidate, grpc),
        },
        **golden,
    }
    files["policy.yaml"] = yaml.safe_dump(policy, sort_keys=False)
    return ReleaseRepo.create(tmp_path / "repo", files)


def test_a_candidate_worse_on_one_slice_is_rolled_back_naming_the_slice(
    tmp_path: Path, s3_environment: RadosGateway, models: MLServer
) -> None:
    repo = release(tmp_path, models, "golden-slice")
    result = repo.reconcile(T0)
    (commit,) = repo.engine_commits()
    assert "Decision: rollback" in commit.message, commit.message
    assert "Weights: v1=100,v2=0" in commit.message
    # Overall the candidate is within maxDegradation 0.1 (0.058 worse); the us slice is not.
    assert "region=us (100 rows): accuracy" in commit.message
    assert "| region=us | accuracy | 100 |" in commit.message
    assert "| overall | accuracy | 500 | 0.936 | 0.994 | +0.058 | pass |" in commit.message
    assert "| region=eu | accuracy | 400 | 0.995 | 0.995 | +0 | pass |" in commit.message
    assert "region=us" in result.output
    # The evidence is archived, and the commit names the object.
    archived = next(
        line.split(": ", 1)[1]
        for line in commit.message.splitlines()
        if line.startswith("Evidence-Archive: ")
    )
    assert archived.startswith("s3://evidence/archive/fraud-detection/fraud-detector/")
    key = archived.removeprefix("s3://evidence/")
    client = s3_client(s3_environment)
    document = json.loads(client.get_object(Bucket="evidence", Key=key)["Body"].read())
    assert document["decision"] == "rollback" and "region=us" in document["gates"]
    page = client.get_object(Bucket="evidence", Key=key.replace(".json", ".html"))
    assert b"<table>" in page["Body"].read()


def test_the_replay_over_grpc_judges_the_same_way(
    tmp_path: Path, s3_environment: RadosGateway, models: MLServer
) -> None:
    repo = release(tmp_path, models, "golden-slice", grpc=True)
    repo.reconcile(T0)
    (commit,) = repo.engine_commits()
    assert "Decision: rollback" in commit.message, commit.message
    assert "| region=us | accuracy | 100 | 0.7 | 0.99 | +0.29 | **FAIL** |" in commit.message


def test_a_drifted_candidate_is_rolled_back_with_the_drift_evidence(
    tmp_path: Path, s3_environment: RadosGateway, models: MLServer
) -> None:
    repo = release(
        tmp_path,
        models,
        "golden-drift",
        maxDegradation=None,
        beatTrivial=False,
        drift={"features": ["prediction"], "maxPsi": 0.25},
    )
    repo.reconcile(T0)
    (commit,) = repo.engine_commits()
    assert "Decision: rollback" in commit.message, commit.message
    assert "drift prediction" in commit.message and "PSI" in commit.message
    assert "#### Drift: v2 vs v1" in commit.message


def test_an_equivalent_candidate_passes_and_the_release_starts(
    tmp_path: Path, s3_environment: RadosGateway, models: MLServer
) -> None:
    repo = release(
        tmp_path, models, "golden-same", minAccuracy=0.95, drift={"features": ["prediction"]}
    )
    repo.reconcile(T0)
    (commit,) = repo.engine_commits()
    assert "Decision: advance" in commit.message, commit.message
    assert "golden test" in commit.message and "500 rows" in commit.message
    # The second pass does not replay again: the release is past its first step.
    repo.reconcile(T0.replace(minute=7))


def test_an_unreachable_s3_holds_and_exits_3(
    tmp_path: Path, s3_environment: RadosGateway, models: MLServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICYENGINE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    repo = release(tmp_path, models, "golden-same")
    result = repo.reconcile(T0, expect_exit=3)
    assert repo.engine_commits() == []
    assert "golden test cannot run" in result.output and "127.0.0.1:9" in result.output


def test_a_missing_dataset_is_an_error_naming_the_key(
    tmp_path: Path, s3_environment: RadosGateway, models: MLServer
) -> None:
    repo = release(tmp_path, models, "golden-same", dataset="s3://golden/fraud/golden-v4.jsonl")
    result = repo.reconcile(T0, expect_exit=1)
    assert repo.engine_commits() == []
    assert "s3://golden/fraud/golden-v4.jsonl" in result.output


def _logged(kind: str, payload: dict[str, Any]) -> bytes:
    record = {
        "Id": "r",
        "ReqType": f"org.kubeflow.serving.inference.{kind}",
        "Namespace": "fraud-detection",
        "Component": "predictor",
        "Bytes": base64.b64encode(json.dumps(payload).encode()).decode(),
    }
    return json.dumps([record]).encode()


def log_payloads(client: Any, prefix: str, amounts: list[float], predictions: list[int]) -> None:
    """What KServe's logger writes: one request and one response object per call."""
    for i in range(0, len(amounts), 10):
        request = {
            "inputs": [
                {"name": "amount", "shape": [10], "datatype": "FP64", "data": amounts[i : i + 10]}
            ]
        }
        response = {
            "outputs": [
                {
                    "name": "predict",
                    "shape": [10],
                    "datatype": "INT64",
                    "data": predictions[i : i + 10],
                }
            ]
        }
        client.put_object(
            Bucket="payload-logs",
            Key=f"{prefix}/c{i}-request.json",
            Body=_logged("request", request),
        )
        client.put_object(
            Bucket="payload-logs",
            Key=f"{prefix}/c{i}-response.json",
            Body=_logged("response", response),
        )


def test_drift_in_production_payloads_rolls_back_a_running_release(
    tmp_path: Path, s3_environment: RadosGateway, models: MLServer
) -> None:
    client = s3_client(s3_environment)
    client.create_bucket(Bucket="payload-logs")
    rng = random.Random(9)
    log_payloads(
        client,
        "logs/fraud-detection/fraud-v1/predictor",
        [rng.lognormvariate(3, 1) for _ in range(300)],
        [int(rng.random() < 0.1) for _ in range(300)],
    )
    # The candidate sees the same inputs but flags three times as many transactions.
    log_payloads(
        client,
        "logs/fraud-detection/fraud-v2/predictor",
        [rng.lognormvariate(3, 1) for _ in range(300)],
        [int(rng.random() < 0.3) for _ in range(300)],
    )
    repo = release(
        tmp_path,
        models,
        "golden-same",
        drift={
            "features": ["amount", "prediction"],
            "payloadLogs": {
                "baseline": "s3://payload-logs/logs/fraud-detection/fraud-v1/predictor",
                "candidate": "s3://payload-logs/logs/fraud-detection/fraud-v2/predictor",
            },
        },
    )
    repo.reconcile(T0)  # the golden replay passes: step 1
    repo.reconcile(T0.replace(minute=10))  # the payloads have drifted
    first, second = repo.engine_commits()
    assert "Decision: advance" in first.message
    assert "Decision: rollback" in second.message, second.message
    assert "drift prediction" in second.message and "payload logs" in second.message
    # inputs did not drift: amount is in the table as a pass, below the failing prediction
    assert second.message.index("| prediction |") < second.message.index("| amount |")
