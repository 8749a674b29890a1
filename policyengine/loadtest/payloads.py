"""Request bodies: read from a JSON lines file, or made up from the model's metadata."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from policyengine.errors import InvalidPolicyError

_INTEGER = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_FLOAT = {"FP16", "FP32", "FP64"}


class PayloadError(InvalidPolicyError):
    """A payload file or a model's metadata that cannot give request bodies."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per non-blank line; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PayloadError(f"{path}: cannot read payloads: {error.strerror or error}") from error
    bodies: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise PayloadError(f"{path}:{number}: not JSON: {error.msg}") from error
        if not isinstance(value, dict):
            raise PayloadError(
                f"{path}:{number}: expected a JSON object, got {type(value).__name__}"
            )
        bodies.append(value)
    if not bodies:
        raise PayloadError(f"{path}: no payloads (one JSON object per line)")
    return bodies


def _value(datatype: str, index: int) -> Any:
    # Small, varied, deterministic values: the same run sends the same bodies.
    if datatype == "BOOL":
        return index % 2 == 0
    if datatype in _INTEGER:
        return index % 7
    if datatype in _FLOAT:
        return round(0.5 + (index % 10) / 10, 2)
    return f"sample {index}"


def from_metadata(metadata: Mapping[str, Any], batch: int = 1) -> dict[str, Any]:
    """A V2 inference request with every declared input filled: -1 dimensions become `batch` (the
    first) or 1."""
    inputs = metadata.get("inputs") or []
    if not inputs:
        name = metadata.get("name", "the model")
        raise PayloadError(
            f"the metadata of {name} lists no inputs, so no request can be made up: give payloads "
            "(a JSON lines file of V2 inference requests)"
        )
    request_inputs = []
    for item in inputs:
        shape = [int(d) for d in item.get("shape") or [1]]
        shape = [(batch if i == 0 else 1) if d < 0 else d for i, d in enumerate(shape)]
        datatype = str(item.get("datatype", "FP32")).upper()
        size = math.prod(shape)
        request_inputs.append(
            {
                "name": item["name"],
                "datatype": datatype,
                "shape": shape,
                "data": [_value(datatype, i) for i in range(size)],
            }
        )
    return {"inputs": request_inputs}


def openai_prompts(
    bodies: Sequence[Mapping[str, Any]] | None, max_tokens: int
) -> list[dict[str, Any]]:
    """Completion requests: the file's, or a few short prompts asking for `max_tokens` tokens."""
    if bodies:
        return [dict(body) for body in bodies]
    prompts = [
        "Summarise the release notes of a model server in one paragraph.",
        "Explain canary releases to a new engineer.",
        "List three reasons a latency tail grows under load.",
    ]
    return [{"prompt": p, "max_tokens": max_tokens, "temperature": 0} for p in prompts]
