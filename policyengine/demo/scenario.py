"""The demo's releases: which example each comes from, how its versions behave, and the files of
the GitOps repository that carries them. Pure: file texts in, file texts out.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

from policyengine.sim.fleet import Fleet, ModelProfile, VersionProfile

EXAMPLE = "modelmesh-canary"
"""The example the first two releases are made from: a ModelMesh canary, 10 → 50 % in five steps."""
EXAMPLE_POLICY = "fraud-detection/fraud-detector"
LLM_EXAMPLE = "llm-canary"
"""The third release's example: an LLM canary between two InferencePools, judged on vLLM metrics."""
LLM_EXAMPLE_POLICY = "llm-serving/support-chat"
ABN_EXAMPLE = "modelmesh-abn"
"""The A/B/n release: three recommender versions, a reward and an error guardrail."""
ABN_EXAMPLE_POLICY = "shop/recommender"


@dataclass(frozen=True)
class DemoRelease:
    """One release of the demo: a copy of the example under its own names, and its fleet model."""

    folder: str  # where the copy lives in the demo repository
    namespace: str
    name: str
    baseline: VersionProfile
    candidate: VersionProfile
    expected: str  # the outcome the demo expects: "promote" or "rollback"
    story: str  # one line for the terminal and the report
    example: str = EXAMPLE  # the folder of examples/ the release is a copy of
    example_policy: str = EXAMPLE_POLICY  # that example's namespace/name, renamed in the copy
    rps: float | None = None  # its own traffic, else the demo's
    more: tuple[VersionProfile, ...] = ()  # further candidates (A/B/n)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def versions(self) -> tuple[VersionProfile, ...]:
        return (self.baseline, self.candidate, *self.more)

    def model(self, rps: float) -> ModelProfile:
        return ModelProfile(
            self.key,
            self.namespace,
            self.name,
            self.versions,
            rps=self.rps if self.rps is not None else rps,
        )


# Traffic high enough that the always-valid intervals shrink within the example's 10-minute steps:
# at 10 % of 400 req/s a candidate serves 2,400 requests a minute.
DEMO_RPS = 400.0


def demo_releases() -> tuple[DemoRelease, ...]:
    """A healthy candidate (slightly better than its baseline), a bad one (3× the errors), an LLM
    with slow first tokens, and an A/B/n test of three recommenders."""
    return (
        DemoRelease(
            folder="fraud-detector",
            namespace="fraud-detection",
            name="fraud-detector",
            baseline=_version("v1", "fraud-detector-v1", error_rate=0.005),
            candidate=_version("v2", "fraud-detector-v2", error_rate=0.004),
            expected="promote",
            story="v2 is retrained and slightly better: it should be promoted step by step",
        ),
        DemoRelease(
            folder="credit-scorer",
            namespace="credit-risk",
            name="credit-scorer",
            baseline=_version("v1", "credit-scorer-v1", error_rate=0.005),
            candidate=_version("v2", "credit-scorer-v2", error_rate=0.015),
            expected="rollback",
            story="v2 fails three times as often as v1: it should be rolled back",
        ),
        DemoRelease(
            folder="support-chat",
            namespace="llm-serving",
            name="support-chat",
            # time to first token: p50 250 ms, p99 1.2 s for v1; v2's first tokens come 3× later
            baseline=VersionProfile(
                "v1", "support-chat-v1", error_rate=0.004, latency_p50_ms=250, latency_p99_ms=1200
            ),
            candidate=VersionProfile(
                "v2", "support-chat-v2", error_rate=0.004, latency_p50_ms=750, latency_p99_ms=3600
            ),
            expected="rollback",
            story=(
                "LLM v2 (two InferencePools, vLLM metrics) answers as often but its first "
                "tokens come 3× later: it should be rolled back"
            ),
            example=LLM_EXAMPLE,
            example_policy=LLM_EXAMPLE_POLICY,
            rps=40.0,
        ),
        DemoRelease(
            folder="recommender",
            namespace="shop",
            name="recommender",
            baseline=_version("v1", "recommender-v1", error_rate=0.005, conversion_rate=0.05),
            candidate=_version("v2", "recommender-v2", error_rate=0.005, conversion_rate=0.06),
            more=(_version("v3", "recommender-v3", error_rate=0.005, conversion_rate=0.045),),
            expected="promote",
            story=(
                "A/B/n: three recommenders, v2 gets 6 % of its recommendations accepted against "
                "5 % for v1 and 4.5 % for v3: traffic should learn it and v2 should win"
            ),
            example=ABN_EXAMPLE,
            example_policy=ABN_EXAMPLE_POLICY,
        ),
    )


def _version(
    name: str, label: str, error_rate: float, conversion_rate: float = 0.05
) -> VersionProfile:
    # A tail that keeps few requests above the example's 200 ms bound, alike in both versions.
    return VersionProfile(
        name,
        metric_label=label,
        error_rate=error_rate,
        latency_p50_ms=20.0,
        latency_p99_ms=120.0,
        conversion_rate=conversion_rate,
    )


def demo_fleet(releases: tuple[DemoRelease, ...], rps: float = DEMO_RPS) -> Fleet:
    return Fleet(tuple(release.model(rps) for release in releases))


def example_files(examples: Path, name: str = EXAMPLE) -> dict[str, str]:
    """Every file of examples/<name>, by path relative to it (the shell reads them)."""
    folder = examples / name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing: run the demo from a policyengine checkout")
    return {
        path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def repository_files(
    example: Mapping[str, str],
    releases: tuple[DemoRelease, ...],
    other_examples: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, str]:
    """The demo repository: one copy of its example per release, renamed, plus a README.

    `example` holds the files of EXAMPLE; `other_examples` those of the other examples releases
    are made from, by folder name.
    """
    files: dict[str, str] = {"README.md": _readme(releases)}
    examples = {EXAMPLE: example, **(other_examples or {})}
    for release in releases:
        original_namespace, original_name = release.example_policy.split("/")
        for path, text in examples[release.example].items():
            renamed = text.replace(original_name, release.name).replace(
                original_namespace, release.namespace
            )
            if path == "policy.yaml":
                renamed = demo_policy(renamed)
            files[f"{release.folder}/{path}"] = renamed
    return files


def demo_policy(text: str) -> str:
    """The example policy as the demo runs it: Prometheus comes from the demo (no in-cluster URL,
    no service-account token), and there is no Argo CD to wait for."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(text)
    spec = document["spec"]
    spec["metrics"].pop("provider", None)
    spec.pop("argocd", None)
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()


def _readme(releases: tuple[DemoRelease, ...]) -> str:
    lines = [
        "# policyengine demo repository",
        "",
        "Made by `policyengine demo` from `examples/modelmesh-canary`, `examples/llm-canary` and",
        "`examples/modelmesh-abn`. Every decision of the engine is a commit with `Policy:`,",
        "`Decision:`, `Weights:` and `Evaluated-At:` trailers:",
        "",
        "    git log",
        "",
        "Releases:",
        "",
    ]
    lines += [f"- `{r.key}` (`{r.folder}/`): {r.story}." for r in releases]
    return "\n".join(lines) + "\n"
