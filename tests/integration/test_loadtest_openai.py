"""The LLM path of the load generator against a loopback OpenAI-compatible streaming server
(tests/support/openai_server.py, written for these tests: no model weights can be downloaded
here, so no real vLLM). The server's first token comes after 50 ms, then one every 10 ms.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from policyengine.cli import main
from policyengine.loadtest.openai import CHAT_COMPLETIONS
from policyengine.loadtest.runner import LoadTestConfig, run_loadtest
from policyengine.loadtest.schedule import Schedule
from tests.support.openai_server import running_openai_server


@pytest.fixture(scope="module")
def llm() -> Iterator[str]:
    with running_openai_server(ttft=0.05, itl=0.01) as url:
        yield url


def test_streaming_completions_report_ttft_inter_token_latency_and_tokens(llm: str) -> None:
    result = run_loadtest(
        LoadTestConfig(
            url=llm,
            protocol="openai",
            model="tiny",
            schedule=Schedule(rate=20, requests=30),
            max_tokens=8,
        )
    )
    assert result.sent == 30 and result.ok == 30 and not result.errors
    assert result.output_tokens == 30 * 8  # from the usage chunk
    assert result.ttft is not None and result.itl is not None and result.latency is not None
    assert 50 <= result.ttft.percentiles["p50"] < 500
    assert result.itl.count == 30 * 7
    assert 10 <= result.itl.percentiles["p50"] < 100
    assert result.latency.percentiles["p50"] >= result.ttft.percentiles["p50"]
    assert result.output_tokens_per_s is not None and result.output_tokens_per_s > 0


def test_chat_completions_and_an_unknown_model(llm: str) -> None:
    chat = run_loadtest(
        LoadTestConfig(
            url=llm,
            protocol="openai",
            model="tiny",
            openai_path=CHAT_COMPLETIONS,
            schedule=Schedule(rate=20, requests=10),
            max_tokens=4,
        )
    )
    assert chat.ok == 10 and chat.output_tokens == 40
    missing = run_loadtest(
        LoadTestConfig(
            url=llm, protocol="openai", model="other", schedule=Schedule(rate=20, requests=10)
        )
    )
    assert missing.errors == {"404": 10} and missing.ttft is None


def test_the_command_checks_a_ttft_slo_with_a_progress_bar(llm: str) -> None:
    args = [
        "loadtest", llm, "--protocol", "openai", "--model", "tiny", "--rate", "20",
        "--requests", "20", "--warmup", "0s", "--max-tokens", "4", "--output", "json",
        "--slo", "ttft.p95 <= 5s", "--slo", "tokensPerSecond >= 1", "--progress",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "in flight" in result.stderr  # the progress bar
    document = json.loads(result.stdout)
    assert document["ttft_ms"]["count"] == 20 and all(s["passed"] for s in document["slos"])
