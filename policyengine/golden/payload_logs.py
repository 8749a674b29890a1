"""Production payloads logged by KServe's inference logger to blob storage (logger.storage,
format json), read back as feature values for drift checks."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

from policyengine.analysis.drift import Value
from policyengine.storage.s3 import S3Location, S3Store

log = logging.getLogger("policyengine")

# The pseudo-feature naming a version's first output.
PREDICTION = "prediction"


def read_logged_values(
    store: S3Store, prefix: S3Location, features: Sequence[str], max_objects: int
) -> dict[str, list[Value]]:
    """Feature values from the most recent logged payloads under `prefix`.

    KServe's logger writes one JSON array of log records per object, keyed
    `<prefix>/<namespace>/<isvc>/<component>/<id>-<request|response>.json`, each record's `Bytes`
    holding the base64 of the V2 (or V1) request or response. Inputs come from requests: a V2
    input tensor named like the feature, or a column of `instances`; `prediction` from responses.
    """
    values: dict[str, list[Value]] = {feature: [] for feature in features}
    keys = _recent_keys(store, prefix, max_objects)
    for key in keys:
        body = store.get(S3Location(prefix.bucket, key))
        try:
            records = json.loads(body)
        except json.JSONDecodeError:
            log.warning("%s: not a JSON log object; skipped", key)
            continue
        for record in records if isinstance(records, list) else [records]:
            payload = _decoded_payload(record)
            if payload is None:
                continue
            kind = str(record.get("ReqType", ""))
            _collect(values, payload, features, response=kind.endswith("response"))
    return values


def _recent_keys(store: S3Store, prefix: S3Location, max_objects: int) -> list[str]:
    listed = store.list_objects(prefix)
    listed.sort(key=lambda item: item[1], reverse=True)
    return [key for key, _ in listed[:max_objects]]


def _decoded_payload(record: Any) -> Any:
    if not isinstance(record, dict) or not record.get("Bytes"):
        return None
    try:
        return json.loads(base64.b64decode(record["Bytes"]))
    except (ValueError, TypeError):
        return None


def _collect(
    values: dict[str, list[Value]], payload: Any, features: Sequence[str], response: bool
) -> None:
    if not isinstance(payload, dict):
        return
    if response:
        if PREDICTION not in values:
            return
        outputs = payload.get("outputs")
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
            values[PREDICTION].extend(_scalars(outputs[0].get("data")))
        elif isinstance(payload.get("predictions"), list):
            values[PREDICTION].extend(_scalars(payload["predictions"]))
        return
    for tensor in payload.get("inputs") or []:
        if isinstance(tensor, dict) and tensor.get("name") in values:
            values[str(tensor["name"])].extend(_scalars(tensor.get("data")))
    for instance in payload.get("instances") or []:
        if isinstance(instance, dict):
            for feature in features:
                if feature in instance and feature != PREDICTION:
                    values[feature].extend(_scalars([instance[feature]]))


def _scalars(data: Any) -> list[Value]:
    if not isinstance(data, list):
        return []
    flat: list[Value] = []
    for item in data:
        if isinstance(item, list):
            flat.extend(_scalars(item))
        elif isinstance(item, bool | int | float | str):
            flat.append(item)
    return flat
