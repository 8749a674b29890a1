"""The ReleasePolicy and MetricSet formats (policyengine.io/v1alpha1) as frozen pydantic models.

Every field carries a description: the JSON Schema in `schemas/` is generated from these models,
and editors show the descriptions while people write policies by hand.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from policyengine.policy.base import Duration, Model
from policyengine.policy.golden import GoldenTest
from policyengine.policy.performance import PerformanceGate

API_VERSION = "policyengine.io/v1alpha1"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
VERSION_NAME = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"

Percent = Annotated[float, Field(ge=0, le=100)]
RouterKind = Literal["istio-modelmesh", "istio", "kserve", "kserve-canary", "gatewayapi"]
FailureAction = Literal["rollback", "hold"]
InconclusiveAction = Literal["hold", "rollback", "promote"]


class Metadata(Model):
    name: str = Field(
        pattern=DNS_LABEL,
        max_length=253,
        description="Name of the policy, unique within its namespace (a DNS-1123 label).",
    )
    namespace: str = Field(
        default="default",
        pattern=DNS_LABEL,
        max_length=63,
        description="Kubernetes namespace of the model being released; also used in metric queries.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free-form labels, for selecting policies."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Free-form annotations; ignored by the engine."
    )


class ManifestRef(Model):
    path: str = Field(
        min_length=1,
        description=(
            "Path of a manifest file, relative to the repository root (or to the policy file when "
            "it starts with ./). It must stay inside the repository."
        ),
    )
    kind: str | None = Field(
        default=None,
        description="Kind of the object to edit in that file (when it holds several documents).",
    )
    name: str | None = Field(
        default=None,
        description="metadata.name of the object to edit in that file (when it holds several).",
    )


class Target(Model):
    router: RouterKind = Field(
        description=(
            "How traffic is split: istio-modelmesh (Istio VirtualService routing KServe ModelMesh by "
            "the mm-vmodel-id request header), istio (VirtualService with host/subset "
            "destinations), kserve (KServe Serverless, ODH <= 2.x: InferenceService "
            "spec.predictor.canaryTrafficPercent), kserve-canary (KServe Standard, v0.20+: "
            "InferenceService spec.canary[].trafficPercent, one entry per candidate) or "
            "gatewayapi (HTTPRoute weighted backendRefs to Services or InferencePools, and "
            "RequestMirror)."
        )
    )
    manifests: list[ManifestRef] = Field(
        min_length=1, description="The manifest file(s) whose weights the engine rewrites."
    )
    route: str | None = Field(
        default=None,
        description=(
            "Name of the HTTP route (Istio http[].name, HTTPRoute rules[].name) carrying the "
            "versions; by default the first route that references a version's backend."
        ),
    )


class Backend(Model):
    """Where a version is found in the manifests; which fields matter depends on the router."""

    host: str | None = Field(
        default=None,
        description="istio/istio-modelmesh: destination.host of the version's route destination.",
    )
    subset: str | None = Field(
        default=None, description="istio: destination.subset (a DestinationRule subset)."
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Destination or backendRef port."
    )
    header: str | None = Field(
        default=None,
        description=(
            "istio-modelmesh: value of the mm-vmodel-id request header that selects the version "
            "(the name of its ModelMesh InferenceService)."
        ),
    )
    service: str | None = Field(
        default=None,
        description="gatewayapi: name of the backendRef (a Service, or an InferencePool with kind).",
    )
    kind: Literal["Service", "InferencePool"] | None = Field(
        default=None,
        description=(
            "gatewayapi: kind of the backendRef: Service (the default), or InferencePool (Gateway API "
            "Inference Extension, group inference.networking.k8s.io or the older "
            "inference.networking.x-k8s.io)."
        ),
    )
    group: str | None = Field(
        default=None,
        description=(
            "gatewayapi: API group of the backendRef; with kind InferencePool the default is "
            "inference.networking.k8s.io."
        ),
    )
    predictor: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "kserve-canary: predictor.name of the version in the InferenceService "
            "(spec.predictor.name, or a spec.canary[].predictor.name); defaults to the version name."
        ),
    )
    namespace: str | None = Field(
        default=None, description="gatewayapi: namespace of the backendRef, when not the route's."
    )


class Version(Model):
    name: str = Field(
        pattern=VERSION_NAME,
        max_length=63,
        description="Name of the version, unique in the policy (used in weights and commit trailers).",
    )
    role: Literal["baseline", "candidate"] = Field(
        description="baseline: the version serving today (exactly one); candidate: a new version."
    )
    metric_label: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Value of the metric set's version label that identifies this version in Prometheus "
            "(vModelId for ModelMesh, name for OVMS, ...). Defaults to name."
        ),
    )
    serving: ManifestRef | None = Field(
        default=None,
        description=(
            "The object that serves this version, e.g. its InferenceService in a manifest the "
            "policy does not route through (path, kind, name). When a candidate's object is no "
            "longer in that file, the engine holds the release (never advances or promotes) and "
            "names the missing object. Router manifests are checked anyway: a target manifest "
            "without its object is that policy's error."
        ),
    )
    backend: Backend = Field(
        default_factory=Backend, description="How the router finds this version in the manifests."
    )

    @property
    def label_value(self) -> str:
        return self.metric_label or self.name


class CanaryStrategy(Model):
    type: Literal["canary"] = Field(description="Progressive canary: candidate weight in steps.")
    steps: list[Annotated[int, Field(ge=0, le=100)]] | None = Field(
        default=None,
        min_length=1,
        description="Explicit candidate weights, strictly increasing, each 0-100 (e.g. [10, 20, 50]).",
    )
    step_weight: int | None = Field(
        default=None, ge=1, le=100, description="Weight added per step (instead of steps)."
    )
    max_weight: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Last candidate weight before promotion (with stepWeight; default 50).",
    )
    min_dwell: Duration = Field(
        default="5m", description="Minimum time at each step before it may advance."
    )
    min_samples: int = Field(
        default=0,
        ge=0,
        description="Minimum requests per version in a step before it may advance.",
    )

    @model_validator(mode="after")
    def _one_way_of_stepping(self) -> CanaryStrategy:
        if self.steps is not None and self.step_weight is not None:
            raise ValueError("give either steps or stepWeight/maxWeight, not both")
        if self.steps is None and self.step_weight is None:
            raise ValueError("give steps (e.g. [10, 20, 50]) or stepWeight (with maxWeight)")
        return self

    def weights(self) -> list[int]:
        """Candidate weight of every step, in order."""
        if self.steps is not None:
            return list(self.steps)
        assert self.step_weight is not None
        top = self.max_weight or 50
        return list(range(self.step_weight, top + 1, self.step_weight)) or [top]


class BlueGreenStrategy(Model):
    type: Literal["blueGreen"] = Field(
        description="Blue-green: validate the candidate, then switch all traffic at once."
    )
    validation_window: Duration = Field(
        default="10m",
        description="How long the candidate is validated before the switch.",
    )
    validation_traffic: Literal["none", "mirror"] = Field(
        default="none",
        description=(
            "Traffic the candidate sees while it is validated: none (0 % of live traffic; only "
            "test traffic sent to it directly) or mirror (a copy of live traffic)."
        ),
    )
    mirror_percentage: Percent = Field(
        default=100,
        description="With validationTraffic mirror: share of live traffic copied to the candidate.",
    )
    min_samples: int = Field(
        default=0, ge=0, description="Minimum candidate requests before the switch."
    )


class MirrorStrategy(Model):
    type: Literal["mirror"] = Field(
        description="Shadow: copy live traffic to the candidate, observe, then stop; no switch."
    )
    percentage: Percent = Field(
        default=100, description="Share of live traffic mirrored to the candidate."
    )
    observation_window: Duration = Field(default="30m", description="How long mirroring stays on.")
    min_samples: int = Field(
        default=0, ge=0, description="Minimum mirrored requests before the outcome is recorded."
    )


class AbnStrategy(Model):
    type: Literal["abn"] = Field(
        description=(
            "A/B/n: every version serves live traffic, traffic learns which one earns the best "
            "reward (spec.rewards), and a winner is declared on evidence (docs/abn.md)."
        )
    )
    allocation: Literal["fixed", "thompson", "topTwoThompson"] = Field(
        default="thompson",
        description=(
            "How traffic moves between passes: fixed (an even split throughout), thompson (each "
            "version's share follows its probability of being best) or topTwoThompson (shares "
            "follow the top-two Thompson sampling probabilities: faster to a winner, more regret)."
        ),
    )
    floor: int = Field(
        default=5,
        ge=0,
        le=50,
        description="Minimum weight (%) of every live version, so no version stops learning.",
    )
    holdout: int = Field(
        default=5,
        ge=0,
        le=100,
        description=(
            "Minimum weight (%) of the baseline, so that winner − baseline keeps being measured."
        ),
    )
    max_change: int = Field(
        default=10,
        ge=1,
        le=100,
        description="Largest change of any version's weight (percentage points) in one pass.",
    )
    winner_probability: float = Field(
        default=0.95,
        gt=0.5,
        lt=1,
        description="Posterior probability of being best that a winner needs.",
    )
    max_expected_loss: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Largest expected loss of choosing the winner, in the reward's unit (0.0005 = 0.05 "
            "percentage points of a rate); default: 1 % of the baseline's reward."
        ),
    )
    min_duration: Duration = Field(
        default="30m", description="No winner is declared before the experiment has run this long."
    )
    sticky_users: bool = Field(
        default=False,
        description=(
            "Pin users: the router adds one route per serving version that matches the "
            "x-policyengine-version request header (set by an edge service from "
            "`policyengine route-key`), ahead of the weighted route (istio, istio-modelmesh, "
            "gatewayapi)."
        ),
    )
    on_winner: Literal["promote", "propose"] = Field(
        default="promote",
        description=(
            "promote: the winner gets 100 % at once; propose: the winner's 100 % waits in a pull "
            "request for a person to merge (needs writeBack.mode pullRequest, with promote not "
            "in autoMerge)."
        ),
    )


Strategy = Annotated[
    CanaryStrategy | BlueGreenStrategy | MirrorStrategy | AbnStrategy, Field(discriminator="type")
]


class Objective(Model):
    """A guardrail: an absolute bound on the candidate and/or a bound relative to the baseline."""

    name: str | None = Field(
        default=None, description="Name shown in evidence; defaults to the metric name."
    )
    metric: str = Field(
        min_length=1, description="Name of a metric in the policy's metric set or templates."
    )
    threshold: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Histogram metrics only: latency bound T, on a bucket bound, in the metric's unit. "
            "The objective is then about the fraction of requests slower than T "
            "(p99 <= 500 ms is threshold: 500 with max: 0.01)."
        ),
    )
    max: float | None = Field(
        default=None, description="Absolute upper bound on the candidate's value."
    )
    min: float | None = Field(
        default=None, description="Absolute lower bound on the candidate's value."
    )
    max_increase: float | None = Field(
        default=None,
        ge=0,
        description="Largest increase over the baseline allowed, in the metric's unit (0.001 = +0.1 pp).",
    )
    max_relative_increase: float | None = Field(
        default=None,
        ge=0,
        description="Largest increase over the baseline allowed, relative (0.2 = +20 %).",
    )
    on_fail: FailureAction = Field(
        default="rollback", description="What a failed objective does: rollback or hold."
    )

    @model_validator(mode="after")
    def _has_a_bound(self) -> Objective:
        bounds = (self.max, self.min, self.max_increase, self.max_relative_increase)
        if all(b is None for b in bounds):
            raise ValueError("an objective needs max, min, maxIncrease or maxRelativeIncrease")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.metric


class Reward(Model):
    """A business metric to maximise among versions that meet every objective (A/B/n)."""

    metric: str = Field(
        min_length=1, description="Name of a metric in the metric set or templates."
    )
    direction: Literal["maximize", "minimize"] = Field(
        default="maximize", description="Whether more or less of the metric is better."
    )
    type: Literal["rate", "mean"] = Field(
        default="rate",
        description=(
            "rate: events per request, from a proportion metric whose events and total are two "
            "counters (recommendations accepted / served); mean: a value per request, from a "
            "proportion metric whose events is the _sum and total the _count counter (revenue "
            "per request)."
        ),
    )


class Analysis(Model):
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Family-wise false-rollback rate over all objectives, under continuous monitoring.",
    )
    beta: float = Field(
        default=0.05,
        gt=0,
        lt=0.5,
        description="Per-objective rate of promoting a version that breaks its margin.",
    )
    interval: Duration = Field(
        default="1m",
        description="Width of the concurrent windows that baseline and candidate are compared on.",
    )
    max_duration: Duration = Field(
        default="2h",
        description="After this long without a conclusion the release is inconclusive.",
    )
    srm_p_value: float = Field(
        default=0.001,
        gt=0,
        lt=1,
        description="p-value under which observed traffic is a sample-ratio mismatch.",
    )
    min_events: int = Field(
        default=10,
        ge=0,
        description="Expected events per version before any statistical decision.",
    )


class BasicAuth(Model):
    """HTTP basic authentication of a provider in the engine's provider settings."""

    username_env: str | None = Field(
        default=None, description="Environment variable with the user."
    )
    username: str | None = Field(default=None, description="User name (not a secret).")
    password_env: str | None = Field(
        default=None, description="Environment variable holding the password."
    )
    password_file: str | None = Field(default=None, description="File holding the password.")


PROVIDER_URL = r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(:[0-9]{1,5})?([/?#][^\s]*)?$"
"""http(s), a host and an optional port, and no user or password: a policy never carries one."""

MOVED_PROVIDER_AUTH = (
    "credentials are no longer read from policies (a policy could send the engine's secrets to "
    "any URL): configure the provider, with its URL and credentials, in the engine's provider "
    "settings (`--providers FILE`, see docs/metrics.md) and name it here with "
    "spec.metrics.provider.name"
)


class Provider(Model):
    type: Literal["prometheus"] = Field(default="prometheus", description="Metrics provider type.")
    name: str | None = Field(
        default=None,
        pattern=DNS_LABEL,
        max_length=63,
        description=(
            "A provider the operator configured in the engine's provider settings (--providers): "
            "its URL and credentials are used. The only way a policy gets an authenticated "
            "provider."
        ),
    )
    url: str | None = Field(
        default=None,
        pattern=PROVIDER_URL,
        description=(
            "Base URL of an unauthenticated Prometheus HTTP API (no user or password in it); "
            "--prometheus overrides it. Leave it out when naming a provider."
        ),
    )
    timeout: Duration = Field(
        default="10s", description="Deadline of one query, retries and the whole answer included."
    )
    retries: int = Field(default=2, ge=0, le=10, description="Retries on refusals and 5xx.")

    @model_validator(mode="after")
    def _name_or_url(self) -> Provider:
        if self.name is not None and self.url is not None:
            raise ValueError(
                "give either name (a provider of the engine's settings, with its own URL) or url"
            )
        return self


class MetricTemplate(Model):
    type: Literal["proportion", "histogram", "gauge"] = Field(
        description=(
            "proportion: events/total counts per window (errors per request); histogram: bucket "
            "counts, for the fraction slower than a threshold; gauge: a value per version "
            "(fairness)."
        )
    )
    description: str | None = Field(default=None, description="What the metric means.")
    events: str | None = Field(
        default=None,
        description="proportion: PromQL counting the events (errors) per version in ${window}.",
    )
    total: str | None = Field(
        default=None,
        description="proportion and histogram: PromQL counting all requests per version in ${window}.",
    )
    buckets: str | None = Field(
        default=None,
        description="histogram: PromQL of cumulative bucket counts per version and le in ${window}.",
    )
    query: str | None = Field(default=None, description="gauge: PromQL of the value per version.")
    unit: str | None = Field(default=None, description="Unit of the value (ms, s, ratio).")
    direction: Literal["higherIsWorse", "lowerIsWorse"] | None = Field(
        default=None,
        description=(
            "Which way the value gets worse: higherIsWorse (error rates, latencies, drift test "
            "statistics, a probability of drift; bound it with max) or lowerIsWorse (a drift "
            "test's p-value; bound it with min). Unset: either way (fairness near 0 or 1)."
        ),
    )
    version_label: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description=(
            "This metric's own version label, when it differs from the set's (e.g. TrustyAI's "
            "`model` beside ModelMesh's `vModelId` in one policy)."
        ),
    )
    namespace_label: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="With versionLabel: this metric's namespace label, if it has one.",
    )

    @model_validator(mode="after")
    def _queries_match_type(self) -> MetricTemplate:
        needed = {
            "proportion": ("events", "total"),
            "histogram": ("buckets",),
            "gauge": ("query",),
        }[self.type]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.type} metric needs {', '.join(missing)}")
        return self

    def queries(self) -> dict[str, str]:
        """The PromQL templates of this metric, by role."""
        roles = ("events", "total", "buckets", "query")
        return {role: q for role in roles if (q := getattr(self, role)) is not None}


class MetricsSource(Model):
    provider: Provider = Field(default_factory=Provider, description="Where metrics come from.")
    set: str | None = Field(
        default=None,
        description=(
            "Built-in or repository metric set: modelmesh, ovms, kserve, istio, vllm, trustyai "
            "(Java service, p-values), trustyai-py (Python service, test statistics), or the "
            "name of a MetricSet document in the repository."
        ),
    )
    templates: dict[str, MetricTemplate] = Field(
        default_factory=dict,
        description="Custom metrics by name; they add to (or replace) the set's metrics.",
    )
    model: str | None = Field(
        default=None, description="Model name, for templates that use ${model}."
    )
    version_label: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description=(
            "Prometheus label identifying a version in custom templates (default: the set's "
            "versionLabel, else `version`)."
        ),
    )
    namespace_label: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Prometheus label holding the namespace in custom templates, if any.",
    )


class PullRequestSettings(Model):
    labels: list[str] = Field(default_factory=list, description="Labels put on the pull request.")
    reviewers: list[str] = Field(default_factory=list, description="Reviewers requested.")
    auto_merge: list[Literal["advance", "promote", "rollback"]] = Field(
        default_factory=list,
        description="Decisions safe enough to merge without review (for example [rollback]).",
    )


class WriteBack(Model):
    mode: Literal["commit", "pullRequest"] = Field(
        default="commit",
        description="commit: push each decision to the branch; pullRequest: open one per release.",
    )
    pull_request: PullRequestSettings = Field(
        default_factory=PullRequestSettings, description="Settings of pullRequest mode."
    )


class ArgoCDGate(Model):
    application: str = Field(
        min_length=1, description="Argo CD Application that deploys the manifests."
    )
    namespace: str = Field(default="argocd", description="Namespace of the Application.")
    sync_timeout: Duration = Field(
        default="10m", description="How long to wait for Argo CD to sync the engine's commit."
    )


class ReleasePolicySpec(Model):
    paused: bool = Field(default=False, description="Hold the release where it is (a human pause).")
    target: Target = Field(description="The router and manifests whose traffic split is changed.")
    versions: list[Version] = Field(
        min_length=2,
        description="Exactly one baseline and one or more candidates.",
    )
    strategy: Strategy = Field(description="canary, blueGreen, mirror or abn.")
    objectives: list[Objective] = Field(
        default_factory=list,
        description="Guardrails; without any, the release progresses on time alone.",
    )
    rewards: list[Reward] = Field(
        default_factory=list,
        description=(
            "Business metrics of an A/B/n test (strategy abn): the first is maximised (or "
            "minimised) among the versions that meet every objective; the others are reported."
        ),
    )
    on_delete: Literal["leave", "rollback"] = Field(
        default="leave",
        description=(
            "What happens to a release under way when this policy file is deleted: leave (the "
            "weights stay as they are; the abandonment is committed once to the status and told "
            "every pass) or rollback (the next pass writes all traffic to the baseline, once). "
            "The engine records this, with what a rollback needs, in the release status it writes."
        ),
    )
    on_inconclusive: InconclusiveAction = Field(
        default="hold",
        description=(
            "What happens when analysis.maxDuration passes without a conclusion: hold (wait for "
            "a person), rollback, or promote. A person decides a release waiting in phase "
            "inconclusive by committing promote or rollback here."
        ),
    )
    analysis: Analysis = Field(default_factory=Analysis, description="Statistical settings.")
    metrics: MetricsSource | None = Field(
        default=None, description="Metrics source; needed when there are objectives."
    )
    write_back: WriteBack = Field(default_factory=WriteBack, description="How decisions reach Git.")
    argocd: ArgoCDGate | None = Field(
        default=None, description="Measure a step only after Argo CD has synced it."
    )
    performance: PerformanceGate | None = Field(
        default=None,
        description=(
            "Load-test the candidate's own endpoint against SLOs before it gets traffic; a miss "
            "rolls the release back with the report as evidence."
        ),
    )
    golden: GoldenTest | None = Field(
        default=None,
        description=(
            "A golden test replayed against the candidate before any user traffic reaches it "
            "(and drift checks); a failure rolls the release back."
        ),
    )

    @field_validator("versions")
    @classmethod
    def _one_baseline(cls, versions: list[Version]) -> list[Version]:
        baselines = [v.name for v in versions if v.role == "baseline"]
        if len(baselines) != 1:
            raise ValueError(f"exactly one version must have role baseline, found {len(baselines)}")
        names = [v.name for v in versions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"version names must be unique: {', '.join(duplicates)}")
        return versions

    @property
    def baseline(self) -> Version:
        return next(v for v in self.versions if v.role == "baseline")

    @property
    def candidates(self) -> list[Version]:
        return [v for v in self.versions if v.role == "candidate"]


class ReleasePolicy(Model):
    """A release of one model: the versions, how traffic moves, and what must hold."""

    api_version: Literal["policyengine.io/v1alpha1"] = Field(
        alias="apiVersion", description="Always policyengine.io/v1alpha1."
    )
    kind: Literal["ReleasePolicy"] = Field(description="Always ReleasePolicy.")
    metadata: Metadata = Field(description="Name and namespace.")
    spec: ReleasePolicySpec = Field(description="What to release and how.")

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"


class MetricSetMetadata(Model):
    name: str = Field(pattern=DNS_LABEL, description="Name policies refer to in metrics.set.")


class MetricSetSpec(Model):
    description: str | None = Field(default=None, description="What this set measures.")
    version_label: str = Field(
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Prometheus label whose value identifies a version (vModelId, name, ...).",
    )
    namespace_label: str | None = Field(
        default=None,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$",
        description="Prometheus label holding the Kubernetes namespace, when the metrics carry one.",
    )
    metrics: dict[str, MetricTemplate] = Field(
        min_length=1, description="The metrics of this set, by name."
    )


class MetricSet(Model):
    """A reusable set of PromQL templates for one serving runtime."""

    api_version: Literal["policyengine.io/v1alpha1"] = Field(
        alias="apiVersion", description="Always policyengine.io/v1alpha1."
    )
    kind: Literal["MetricSet"] = Field(description="Always MetricSet.")
    metadata: MetricSetMetadata = Field(description="Name of the set.")
    spec: MetricSetSpec = Field(description="Version label and metric templates.")


POLICY_KINDS = {"ReleasePolicy": ReleasePolicy, "MetricSet": MetricSet}
