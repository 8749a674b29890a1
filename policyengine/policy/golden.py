"""The `spec.golden` part of a ReleasePolicy: a golden test (and prediction drift check) run against
the candidate before any user traffic reaches it, and drift of production payloads during the
release. Kept apart from models.py so the format of the pre-traffic gates reads on its own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from policyengine.policy.base import Duration, Model

S3_URL = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"
GoldenMetric = Literal["accuracy", "f1", "mae"]


def _accuracy_only() -> list[GoldenMetric]:
    return ["accuracy"]


class VersionEndpoint(Model):
    url: str = Field(
        min_length=1,
        description=(
            "The version's own KServe V2 (Open Inference Protocol) endpoint, reachable from the "
            "engine: http(s)://host:port for v2-rest (e.g. "
            "http://fraud-v2-predictor.fraud.svc:8080), host:port for v2-grpc."
        ),
    )
    model: str = Field(min_length=1, description="Model name in /v2/models/{model}/infer.")
    protocol: Literal["v2-rest", "v2-grpc"] = Field(
        default="v2-rest", description="KServe V2 over REST or over gRPC (ModelInfer)."
    )
    vmodel_id: str | None = Field(
        default=None,
        description="ModelMesh: the mm-vmodel-id gRPC metadata that routes to this version.",
    )

    @model_validator(mode="after")
    def _url_fits_protocol(self) -> VersionEndpoint:
        web = self.url.startswith(("http://", "https://"))
        if self.protocol == "v2-rest" and not web:
            raise ValueError(f"a v2-rest endpoint is an http(s):// URL, not {self.url!r}")
        if self.protocol == "v2-grpc" and web:
            raise ValueError(f"a v2-grpc endpoint is host:port, not {self.url!r}")
        return self


class FeatureDriftLimit(Model):
    max_psi: float | None = Field(
        default=None, gt=0, description="Largest population stability index allowed."
    )
    min_ks_p_value: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Smallest two-sample KS p-value allowed (before the correction over features).",
    )


class PayloadLogs(Model):
    """Where KServe's inference logger stores payloads (logger.storage, format json)."""

    baseline: str = Field(
        pattern=S3_URL, description="s3:// prefix of the baseline's logged payloads."
    )
    candidate: str = Field(
        pattern=S3_URL, description="s3:// prefix of the candidate's logged payloads."
    )
    max_objects: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Most recent logged objects read per version and pass (bounds each pass).",
    )


class DriftCheck(Model):
    """Prediction (and, from payload logs, input) drift between the candidate and the baseline."""

    features: list[str] = Field(
        default_factory=lambda: ["prediction"],
        description=(
            "What to compare: `prediction` (the first output), or input columns by name (from "
            "payload logs, or the dataset's feature columns)."
        ),
    )
    max_psi: float | None = Field(
        default=0.25, gt=0, description="Largest PSI allowed per feature (0.25: 'act')."
    )
    min_ks_p_value: float | None = Field(
        default=0.01,
        gt=0,
        lt=1,
        description="Smallest KS p-value per numeric feature, Bonferroni-corrected over features.",
    )
    per_feature: dict[str, FeatureDriftLimit] = Field(
        default_factory=dict, description="Limits that replace the defaults for one feature."
    )
    min_samples: int = Field(
        default=50, ge=5, description="Values needed from each version before drift is judged."
    )
    payload_logs: PayloadLogs | None = Field(
        default=None,
        description="Also judge drift on production payloads during the release, from S3.",
    )


class GoldenTest(Model):
    """A labelled dataset replayed against the candidate and the baseline before traffic moves."""

    dataset: str = Field(
        pattern=S3_URL,
        description="s3://bucket/key of the dataset: JSON lines (.jsonl) or Parquet (.parquet).",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description=(
            "S3 endpoint (Ceph RGW on Open Data Hub); default: AWS_ENDPOINT_URL or AWS. "
            "Credentials always come from the engine's environment, never from the policy."
        ),
    )
    features: list[str] = Field(
        min_length=1, description="Columns sent, in order, as one input row of the model."
    )
    label: str = Field(min_length=1, description="Column holding the expected answer.")
    input_name: str = Field(default="input-0", description="Name of the V2 input tensor.")
    datatype: Literal["FP32", "FP64", "INT32", "INT64"] = Field(
        default="FP64", description="V2 datatype of the input tensor."
    )
    slice_by: list[str] = Field(
        default_factory=list, description="Columns whose values define slices judged on their own."
    )
    metrics: list[GoldenMetric] = Field(
        default_factory=_accuracy_only, min_length=1, description="accuracy, f1 or mae."
    )
    min_accuracy: float | None = Field(default=None, ge=0, le=1, description="Accuracy floor.")
    min_f1: float | None = Field(default=None, ge=0, le=1, description="Macro-F1 floor.")
    max_mae: float | None = Field(default=None, ge=0, description="Mean absolute error ceiling.")
    max_degradation: float | None = Field(
        default=0.02,
        ge=0,
        description=(
            "How much worse than the baseline each metric may be, overall and on every slice "
            "(0.02 = two points of accuracy)."
        ),
    )
    min_agreement: float | None = Field(
        default=None, ge=0, le=1, description="Share of rows where both versions answer alike."
    )
    agreement_tolerance: float = Field(
        default=0.0, ge=0, description="Regression: answers closer than this agree."
    )
    min_slice_rows: int = Field(
        default=30, ge=1, description="Slices with fewer rows are reported, not judged."
    )
    beat_trivial: bool = Field(
        default=True,
        description="Fail a candidate no better than the majority class (or the mean label).",
    )
    endpoints: dict[str, VersionEndpoint] = Field(
        description="Each version's own endpoint, by version name (the baseline and candidates)."
    )
    batch_size: int = Field(default=32, ge=1, le=1024, description="Rows per inference request.")
    concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight per version.")
    timeout: Duration = Field(default="10s", description="Timeout of one inference request.")
    drift: DriftCheck | None = Field(
        default=None, description="Prediction/input drift between candidate and baseline."
    )

    @model_validator(mode="after")
    def _bounds_match_metrics(self) -> GoldenTest:
        named = {"accuracy": self.min_accuracy, "f1": self.min_f1, "mae": self.max_mae}
        for metric, bound in named.items():
            if bound is not None and metric not in self.metrics:
                raise ValueError(f"a bound on {metric} needs {metric} in metrics")
        if "mae" in self.metrics and len(self.metrics) > 1:
            raise ValueError("mae (regression) cannot be combined with accuracy or f1")
        return self
