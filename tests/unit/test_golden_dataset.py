"""Golden datasets from JSON lines and Parquet files, and their errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from policyengine.golden.dataset import DatasetError, read_rows


def test_json_lines_rows_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text('{"x": 1, "label": 0}\n\n{"x": 2, "label": 1}\n', encoding="utf-8")
    assert read_rows(path, "s3://b/g.jsonl", ["x", "label"]) == [
        {"x": 1, "label": 0},
        {"x": 2, "label": 1},
    ]


def test_parquet_rows(tmp_path: Path) -> None:
    path = tmp_path / "g.parquet"
    pq.write_table(pa.table({"x": [1.5, 2.5], "region": ["eu", "us"], "label": [0, 1]}), path)
    rows = read_rows(path, "s3://b/g.parquet", ["x", "region", "label"])
    assert rows == [
        {"x": 1.5, "region": "eu", "label": 0},
        {"x": 2.5, "region": "us", "label": 1},
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("g.jsonl", '{"x": 1, "label": 0}\n{"x": 2\n', "s3://b/g.jsonl:2: not JSON"),
        ("g.jsonl", "[1, 2]\n", "s3://b/g.jsonl:1: expected a JSON object, got list"),
        ("g.jsonl", '{"x": 1}\n', "row 1 has no column 'label' (columns: x)"),
        ("g.jsonl", "\n", "s3://b/g.jsonl: the dataset has no rows"),
        ("g.csv", "x,label\n", "unknown dataset format"),
        ("g.parquet", "not parquet", "s3://b/g.parquet: not a readable Parquet file"),
    ],
)
def test_errors_name_the_object_and_the_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_rows(path, f"s3://b/{name}", ["x", "label"])


def test_grpc_answers_read_from_typed_and_raw_contents() -> None:
    import struct

    from policyengine.loadtest.v2grpc import message_class, response_as_json

    typed = message_class("ModelInferResponse")(model_name="m")
    out = typed.outputs.add()  # type: ignore[attr-defined]
    out.name, out.datatype = "predict", "INT64"
    out.shape.extend([3])
    out.contents.int64_contents.extend([0, 1, 1])
    assert response_as_json(typed)["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [3], "data": [0, 1, 1]}
    ]
    raw = message_class("ModelInferResponse")(model_name="m")
    out = raw.outputs.add()  # type: ignore[attr-defined]
    out.name, out.datatype = "proba", "FP32"
    out.shape.extend([1, 2])
    raw.raw_output_contents.append(struct.pack("<2f", 0.25, 0.75))  # type: ignore[attr-defined]
    assert response_as_json(raw)["outputs"][0]["data"] == [0.25, 0.75]
