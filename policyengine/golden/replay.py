"""Replay a golden dataset against one version's KServe V2 endpoint (REST or gRPC), in batches,
with a bounded number of requests in flight, through the load generator's clients."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from policyengine.analysis.golden import OutputSchema
from policyengine.errors import PolicyEngineError
from policyengine.golden.dataset import Row
from policyengine.loadtest.reply import CONNECTION, TIMEOUT, Reply
from policyengine.loadtest.v2grpc import V2GrpcClient, response_as_json
from policyengine.loadtest.v2rest import V2RestClient
from policyengine.policy.golden import GoldenTest, VersionEndpoint


class EndpointUnavailableError(PolicyEngineError):
    """A version's endpoint did not answer (connection refused, timeout): the gate cannot run."""

    exit_code = 3


class ReplayError(PolicyEngineError):
    """A version's endpoint answered, but not with predictions (4xx/5xx, malformed outputs)."""


@dataclass(frozen=True)
class VersionAnswers:
    """One version's first-output prediction per row, and the outputs it declared."""

    version: str
    predictions: tuple[Any, ...]
    outputs: tuple[OutputSchema, ...]


def request_body(rows: Sequence[Row], golden: GoldenTest) -> dict[str, Any]:
    """A V2 inference request holding `rows` as one [batch, features] tensor."""
    data: list[Any] = []
    for row in rows:
        data.extend(row[column] for column in golden.features)
    return {
        "inputs": [
            {
                "name": golden.input_name,
                "shape": [len(rows), len(golden.features)],
                "datatype": golden.datatype,
                "data": data,
            }
        ]
    }


def predictions_of(answer: Any, batch: int, where: str) -> tuple[list[Any], list[OutputSchema]]:
    """The first output's value per row, and every output's declared schema."""
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    if not outputs or not isinstance(outputs, list):
        raise ReplayError(f"{where}: the answer has no outputs")
    schemas = []
    for output in outputs:
        try:
            schemas.append(
                OutputSchema(
                    str(output["name"]),
                    str(output["datatype"]),
                    tuple(int(d) for d in output["shape"]),
                )
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ReplayError(f"{where}: an output lacks name, datatype or shape") from error
    data = outputs[0].get("data")
    if not isinstance(data, list) or len(data) % batch:
        raise ReplayError(f"{where}: output {schemas[0].name!r} does not hold {batch} rows")
    width = len(data) // batch
    # One value per row (predict), or a row of values (probabilities): keep the row's first value
    # for a width of 1 and the whole row otherwise, as a tuple so it can be compared.
    rows = data if width == 1 else [tuple(data[i * width : (i + 1) * width]) for i in range(batch)]
    return list(rows), schemas


async def _replay_version(
    version: str,
    endpoint: VersionEndpoint,
    rows: Sequence[Row],
    golden: GoldenTest,
    timeout: float,
) -> VersionAnswers:
    batches = [rows[i : i + golden.batch_size] for i in range(0, len(rows), golden.batch_size)]
    results: list[list[Any]] = [[] for _ in batches]
    schemas: list[OutputSchema] = []
    limit = asyncio.Semaphore(golden.concurrency)
    where = f"{version} at {endpoint.url}"

    async def send(infer: Any, index: int) -> None:
        async with limit:
            reply: Reply = await infer(request_body(batches[index], golden))
        if reply.status in (CONNECTION, TIMEOUT):
            raise EndpointUnavailableError(f"{where}: {reply.error or reply.status}")
        if not reply.ok:
            raise ReplayError(f"{where}: {reply.status}: {reply.error or ''}".strip())
        body = reply.body if isinstance(reply.body, dict) else response_as_json(reply.body)
        predictions, declared = predictions_of(body, len(batches[index]), where)
        results[index] = predictions
        if not schemas:
            schemas.extend(declared)

    if endpoint.protocol == "v2-grpc":
        async with V2GrpcClient(
            endpoint.url,
            endpoint.model,
            vmodel_id=endpoint.vmodel_id,
            timeout=timeout,
            keep_body=True,
        ) as grpc_client:
            await asyncio.gather(*(send(grpc_client.infer, i) for i in range(len(batches))))
    else:
        async with V2RestClient(
            endpoint.url,
            endpoint.model,
            connections=golden.concurrency,
            timeout=timeout,
            keep_body=True,
        ) as rest_client:
            await asyncio.gather(*(send(rest_client.infer, i) for i in range(len(batches))))
    flat = tuple(p for batch in results for p in batch)
    return VersionAnswers(version, flat, tuple(schemas))


def replay(
    rows: Sequence[Row], golden: GoldenTest, versions: Sequence[str], timeout: float
) -> dict[str, VersionAnswers]:
    """Every version's answers to every row (versions one after the other, batches in parallel)."""
    answers: dict[str, VersionAnswers] = {}
    for version in versions:
        endpoint = golden.endpoints[version]
        answers[version] = asyncio.run(_replay_version(version, endpoint, rows, golden, timeout))
    return answers
