"""Regenerate the CRD schemas in this folder from the upstream CustomResourceDefinitions.

Each JSON file is the `spec.versions[].schema.openAPIV3Schema` of one upstream CRD at a pinned
release tag (SOURCES below), unmodified, wrapped with `$schema`, `$id`, `title`, `$comment` and
`x-kubernetes-group-version-kind` (see README.md). The tests read only these copies, so a clone
of the project validates manifests with nothing beside it and without network.

    python -m tests.schemas.generate                  # fetch the pinned commits from GitHub
    python -m tests.schemas.generate --mirror DIR     # read DIR/<owner>+<name>[/repo] git dirs
    python -m tests.schemas.generate --check          # exit 1 if a file would change

Only the pinned commit is fetched (`git fetch --depth 1 <commit>`); the tag is checked to point
at it when the tag is there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Source:
    """One CRD version at one upstream release: where it is and what file it becomes."""

    out: str
    repo: str
    tag: str
    commit: str
    path: str
    group: str
    kind: str
    version: str


KSERVE = ("kserve/kserve", "v0.20.0", "1fb781055dd1567164358233e1125142ca6ef1fe")
ISTIO = ("istio/api", "1.30.3", "2e43f07b30b6744bc8252fce39fb58b03f85ff8b")
GATEWAY = ("kubernetes-sigs/gateway-api", "v1.6.1", "8bb74df00e56ec8f944d48c25e6c1c9c2f6848e3")
ARGOCD = ("argoproj/argo-cd", "v3.5.1", "109ca7ca71139e514114499d294a492e7910a965")
GIE = (
    "kubernetes-sigs/gateway-api-inference-extension",
    "v1.6.0",
    "992e5c292afb248801ce8d9234eb5b9d28eea231",
)
# v1.4.0 is the last release that ships the experimental x-k8s.io InferencePool (v1alpha2);
# from v1.5.0 on only the GA group inference.networking.k8s.io serves it.
GIE_X = (
    "kubernetes-sigs/gateway-api-inference-extension",
    "v1.4.0",
    "6e787dd396f0228c31cf6fc5187a13c6b4991a0b",
)
ISTIO_CRDS = "kubernetes/customresourcedefinitions.gen.yaml"

SOURCES: tuple[Source, ...] = (
    Source(
        "kserve.serving.v1beta1.InferenceService",
        *KSERVE,
        "config/crd/full/serving.kserve.io_inferenceservices.yaml",
        "serving.kserve.io",
        "InferenceService",
        "v1beta1",
    ),
    Source(
        "kserve.serving.v1alpha1.ServingRuntime",
        *KSERVE,
        "config/crd/full/serving.kserve.io_servingruntimes.yaml",
        "serving.kserve.io",
        "ServingRuntime",
        "v1alpha1",
    ),
    Source(
        "istio.networking.v1.VirtualService",
        *ISTIO,
        ISTIO_CRDS,
        "networking.istio.io",
        "VirtualService",
        "v1",
    ),
    Source(
        "istio.networking.v1beta1.VirtualService",
        *ISTIO,
        ISTIO_CRDS,
        "networking.istio.io",
        "VirtualService",
        "v1beta1",
    ),
    Source(
        "istio.networking.v1.DestinationRule",
        *ISTIO,
        ISTIO_CRDS,
        "networking.istio.io",
        "DestinationRule",
        "v1",
    ),
    Source(
        "istio.networking.v1beta1.DestinationRule",
        *ISTIO,
        ISTIO_CRDS,
        "networking.istio.io",
        "DestinationRule",
        "v1beta1",
    ),
    Source(
        "gateway.networking.v1.HTTPRoute",
        *GATEWAY,
        "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io",
        "HTTPRoute",
        "v1",
    ),
    Source(
        "argoproj.v1alpha1.Application",
        *ARGOCD,
        "manifests/crds/application-crd.yaml",
        "argoproj.io",
        "Application",
        "v1alpha1",
    ),
    Source(
        "inference.networking.v1.InferencePool",
        *GIE,
        "config/crd/bases/inference.networking.k8s.io_inferencepools.yaml",
        "inference.networking.k8s.io",
        "InferencePool",
        "v1",
    ),
    Source(
        "inference.networking.x-k8s.v1alpha2.InferencePool",
        *GIE_X,
        "config/crd/bases/inference.networking.x-k8s.io_inferencepools.yaml",
        "inference.networking.x-k8s.io",
        "InferencePool",
        "v1alpha2",
    ),
)


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
    ).stdout


def _git_dir(repo: str, mirror: Path | None, scratch: Path, commits: set[str]) -> Path:
    """A git dir holding the commits: the local mirror if given, else a shallow fetch."""
    if mirror is not None:
        for candidate in (
            mirror / repo.replace("/", "+") / "repo",
            mirror / repo.replace("/", "+"),
        ):
            if candidate.is_dir():
                return candidate
        raise SystemExit(f"{repo}: not found under {mirror}")
    git_dir = scratch / repo.replace("/", "+")
    if not git_dir.is_dir():
        subprocess.run(["git", "init", "--quiet", "--bare", str(git_dir)], check=True)
        for commit in sorted(commits):
            subprocess.run(
                ["git", f"--git-dir={git_dir}", "fetch", "--quiet", "--depth", "1",
                 f"https://github.com/{repo}.git", commit],
                check=True,
            )  # fmt: skip
    return git_dir


def extract(source: Source, git_dir: Path) -> dict[str, Any]:
    """The wrapped openAPIV3Schema of one CRD version, as written to `<out>.json`."""
    tag_commit = subprocess.run(
        ["git", f"--git-dir={git_dir}", "rev-parse", "--verify", "--quiet",
         f"refs/tags/{source.tag}^{{commit}}"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    if tag_commit and tag_commit != source.commit:
        raise SystemExit(f"{source.repo} tag {source.tag} is {tag_commit}, not {source.commit}")
    text = _git(git_dir, "show", f"{source.commit}:{source.path}")
    for document in yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
            continue
        spec = document["spec"]
        if spec["group"] != source.group or spec["names"]["kind"] != source.kind:
            continue
        for version in spec["versions"]:
            if version["name"] != source.version:
                continue
            body = version["schema"]["openAPIV3Schema"]
            name = document["metadata"]["name"]
            comment = (
                f"openAPIV3Schema of CRD {name} version {source.version} "
                f"(served={version.get('served')}, storage={version.get('storage')}) from "
                f"{source.repo} {source.path} at {source.tag} ({source.commit}); Apache-2.0. "
                "Body unmodified."
            )
            return {
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": f"urn:k8s-schemas:{source.out}",
                "title": f"{source.kind} {source.group}/{source.version}",
                "$comment": comment,
                "x-kubernetes-group-version-kind": [
                    {"group": source.group, "version": source.version, "kind": source.kind}
                ],
                **body,
            }
    raise SystemExit(
        f"{source.out}: no {source.group}/{source.version} {source.kind} in {source.path}"
    )


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, help="folder of <owner>+<name> git dirs")
    parser.add_argument("--out", type=Path, default=HERE, help="where the JSON files go")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file would change")
    options = parser.parse_args(argv)
    stale = []
    with tempfile.TemporaryDirectory(prefix="crd-schemas-") as scratch:
        for source in SOURCES:
            commits = {s.commit for s in SOURCES if s.repo == source.repo}
            git_dir = _git_dir(source.repo, options.mirror, Path(scratch), commits)
            text = render(extract(source, git_dir))
            target = options.out / f"{source.out}.json"
            current = target.read_text(encoding="utf-8") if target.exists() else None
            if current == text:
                continue
            stale.append(target.name)
            if not options.check:
                target.write_text(text, encoding="utf-8")
    verb = "would change" if options.check else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "all schemas up to date")
    return 1 if options.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
