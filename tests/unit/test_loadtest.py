"""The load generator's pure parts: schedules, SLOs, summaries, payloads, the gRPC messages."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from policyengine.loadtest.html import render_html
from policyengine.loadtest.payloads import PayloadError, from_metadata, read_jsonl
from policyengine.loadtest.result import (
    Distribution,
    LoadTestResult,
    buckets,
    new_histogram,
    record_seconds,
    render_markdown,
)
from policyengine.loadtest.schedule import Schedule
from policyengine.loadtest.slo import Slo, assess, parse_all
from policyengine.loadtest.v2grpc import infer_request, message_class

PROTO_DIR = Path(__file__).resolve().parents[2] / "policyengine" / "loadtest" / "proto"


def test_constant_rate_sends_at_even_intervals_after_the_warmup() -> None:
    offsets = list(Schedule(rate=100, duration=2, warmup=0.5).offsets())
    warm = [o for o, measured in offsets if not measured]
    measured = [o for o, m in offsets if m]
    assert len(warm) == 50 and len(measured) == 200
    assert measured[0] == pytest.approx(0.5)
    assert measured[1] - measured[0] == pytest.approx(0.01)
    assert measured[-1] == pytest.approx(0.5 + 1.99)


def test_the_request_count_and_the_duration_both_bound_a_run() -> None:
    assert sum(m for _, m in Schedule(rate=100, duration=10, requests=30).offsets()) == 30
    assert sum(m for _, m in Schedule(rate=100, duration=0.2, requests=30).offsets()) == 20
    assert Schedule(rate=50, requests=100).measured_span == pytest.approx(2.0)


def test_a_ramp_sends_its_mean_rate_and_speeds_up() -> None:
    schedule = Schedule(rate=10, end_rate=90, duration=4)
    offsets = [o for o, _ in schedule.offsets()]
    assert len(offsets) == pytest.approx(200, abs=1)  # mean 50 req/s for 4 s
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert gaps[0] > gaps[-1] * 5
    assert schedule.intended_rate() == 50


@pytest.mark.parametrize(
    "kwargs",
    [{"rate": 0, "duration": 1}, {"rate": 10}, {"rate": 10, "requests": 5, "end_rate": 20}],
)
def test_bad_schedules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Schedule(**kwargs)  # type: ignore[arg-type]


def test_slos_parse_units_and_assess_each_figure() -> None:
    slos = parse_all(
        ["p99 <= 200ms", "errorRate <= 1%", "ttft.p95 <= 0.5s", "tokensPerSecond >= 20"]
    )
    assert [s.bound for s in slos] == [200.0, 0.01, 500.0, 20.0]
    checks = assess({"p99": 250.0, "errorRate": 0.0, "ttft.p95": 100.0}, slos)
    assert [c.passed for c in checks] == [False, True, True, False]
    assert checks[3].value is None  # not measured fails: no tokens, no evidence
    assert "MISSED" in checks[0].describe()


@pytest.mark.parametrize("text", ["p98 <= 1ms", "p99 = 3", "errorRate <= 3ms", "p99 <= 5%", ""])
def test_malformed_slos_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"SLO|unit|time"):
        Slo.parse(text)


def _result(latencies_ms: list[float], errors: dict[str, int]) -> LoadTestResult:
    histogram = new_histogram()
    for value in latencies_ms:
        record_seconds(histogram, value / 1e3)
    return LoadTestResult(
        protocol="v2-rest",
        target="http://127.0.0.1:1",
        model="iris",
        intended_rps=100,
        start_rps=100,
        end_rps=None,
        duration_s=1,
        warmup_s=0,
        sent=len(latencies_ms) + sum(errors.values()),
        ok=len(latencies_ms),
        errors=errors,
        sent_rps=100,
        achieved_rps=99,
        latency=Distribution.of(histogram),
        histogram=buckets(histogram),
    )


def test_the_summary_reports_percentiles_errors_by_status_and_rate() -> None:
    result = _result([1.0] * 98 + [100.0, 1000.0], {"500": 3, "timeout": 1})
    assert result.latency is not None
    assert result.latency.percentiles["p50"] == pytest.approx(1.0, rel=0.01)
    assert result.latency.percentiles["p99.9"] == pytest.approx(1000.0, rel=0.01)
    assert result.error_rate == pytest.approx(4 / 104)
    assert result.rate_error == pytest.approx(-0.01)
    document = json.loads(json.dumps(result.to_json()))
    assert document["errors"] == {"500": 3, "timeout": 1}
    assert sum(count for _, count in document["histogram_ms"]) == 100
    markdown = render_markdown(result)
    assert "| 500 | 3 |" in markdown and "p99.9" in markdown
    page = render_html(result, assess(result.metrics(), parse_all(["p99 <= 50ms"])))
    assert page.count("<rect") == len(result.histogram) and "missed" in page


def test_payloads_are_made_up_from_metadata_with_variable_dimensions_filled() -> None:
    request = from_metadata({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]})
    assert request["inputs"][0]["shape"] == [1, 4]
    assert len(request["inputs"][0]["data"]) == 4
    with pytest.raises(PayloadError, match="lists no inputs"):
        from_metadata({"name": "iris", "inputs": []})


def test_a_bad_payload_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "payloads.jsonl"
    path.write_text('{"inputs": []}\n\n[1, 2]\n')
    with pytest.raises(PayloadError, match=r"payloads.jsonl:3: expected a JSON object"):
        read_jsonl(path)


def test_v2_json_becomes_a_typed_model_infer_request() -> None:
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [[1.5, 2.5]]},
            {"name": "s", "datatype": "BYTES", "shape": [1], "data": ["hi"]},
        ]
    }
    message = infer_request(body, "iris", "v1")
    decoded = message_class("ModelInferRequest").FromString(message.SerializeToString())
    assert decoded.model_name == "iris" and decoded.model_version == "v1"  # type: ignore[attr-defined]
    assert list(decoded.inputs[0].contents.fp64_contents) == [1.5, 2.5]  # type: ignore[attr-defined]
    assert list(decoded.inputs[1].contents.bytes_contents) == [b"hi"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="FP16"):
        infer_request({"inputs": [{"name": "h", "datatype": "FP16", "data": [1]}]}, "m")


def test_the_shipped_descriptor_set_is_generated_from_the_shipped_proto(tmp_path: Path) -> None:
    out = tmp_path / "regenerated.desc"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--descriptor_set_out={out}",
            "grpc_predict_v2.proto",
        ],
        check=True,
    )
    assert out.read_bytes() == (PROTO_DIR / "grpc_predict_v2.desc").read_bytes(), (
        "run `make proto` after editing grpc_predict_v2.proto"
    )
