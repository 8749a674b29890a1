"""The `performance` gate of a ReleasePolicy: a load test against the candidate's own endpoint,
with SLOs, before the first traffic step (and optionally at every step). Its own module so the
format's other parts stay untouched; the SLO grammar is the load test's (loadtest/slo.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from policyengine.loadtest.slo import Slo
from policyengine.policy.duration import DURATION_PATTERN

# The same conventions as models.Model (frozen, strict, camelCase), declared here because models.py
# imports this module.
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]


class PerformanceGate(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    endpoint: str = Field(
        min_length=1,
        description=(
            "The candidate's own endpoint, not the routed one (no user traffic goes through it): "
            "http(s)://host:port for v2-rest and openai, host:port for v2-grpc."
        ),
    )
    protocol: Literal["v2-rest", "v2-grpc", "openai"] = Field(
        default="v2-rest",
        description=(
            "KServe V2 / Open Inference Protocol over REST or gRPC, or OpenAI-compatible "
            "streaming completions (vLLM)."
        ),
    )
    model: str | None = Field(
        default=None,
        min_length=1,
        description="Model name in the request (V2: required; OpenAI: the request's model).",
    )
    model_version: str | None = Field(default=None, description="V2 model version (optional).")
    vmodel_id: str | None = Field(
        default=None,
        description="ModelMesh: the mm-vmodel-id header / gRPC metadata that selects the predictor.",
    )
    rate: float = Field(gt=0, le=100000, description="Requests per second, sent open loop.")
    end_rate: float | None = Field(
        default=None,
        gt=0,
        le=100000,
        description="A linear ramp from rate to endRate over the duration (optional).",
    )
    duration: Duration = Field(default="30s", description="Measured time, after the warm-up.")
    warmup: Duration = Field(default="5s", description="Sent but not measured.")
    requests: int | None = Field(
        default=None, ge=1, description="Stop after this many measured requests (optional)."
    )
    timeout: Duration = Field(default="10s", description="Timeout of one request.")
    payloads: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "JSON lines of request bodies, relative to the repository root; by default V2 requests "
            "are made up from the model's metadata and OpenAI ones from a few short prompts."
        ),
    )
    max_tokens: int = Field(
        default=64, ge=1, description="openai: max_tokens of the made-up completion requests."
    )
    openai_path: str = Field(
        default="/v1/completions", description="openai: the completions route."
    )
    slos: list[str] = Field(
        min_length=1,
        description=(
            "Objectives on the result, each METRIC OP VALUE: 'p99 <= 200ms', 'errorRate <= 0.01', "
            "'ttft.p95 <= 500ms', 'tokensPerSecond >= 20' (see docs/performance.md)."
        ),
        json_schema_extra={"examples": [["p99 <= 200ms", "errorRate <= 0.01"]]},
    )
    at: Literal["firstStep", "everyStep"] = Field(
        default="firstStep",
        description=(
            "firstStep: once, before the candidate gets any traffic; everyStep: also once at each "
            "later step."
        ),
    )
    on_fail: Literal["rollback", "hold"] = Field(
        default="rollback", description="What a missed SLO does to the release."
    )

    @field_validator("slos")
    @classmethod
    def _slos_parse(cls, slos: list[str]) -> list[str]:
        for text in slos:
            Slo.parse(text)  # raises ValueError with the grammar in its message
        return slos
