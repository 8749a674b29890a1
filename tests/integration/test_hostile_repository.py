"""Hostile files in the config repository: each fails only the policies that read it, is reported
with its file and the reason, and nothing is read or written outside the repository.

Real Git (a bare remote, human clones, symbolic links committed as Git stores them) and the real
CLI. The "attacker's server" a policy points its provider at is a loopback HTTP stand-in
(tests/support/http_standin.py), so the test can see every header the engine sends it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyengine.cli import main
from tests.support.gitrepos import clone, git, make_remote, push
from tests.support.http_standin import serve
from tests.support.release_repos import (
    EXAMPLES,
    T0,
    ReleaseRepo,
    example_files,
    policy_on_time_alone,
    trailers_of,
)

Files = dict[str, str | bytes]
CANARY = "fraud-detection/fraud-detector"
BLUE_GREEN = "customer-analytics/churn-predictor"
GIT_TOKEN = "git-token-5f1e0c2a"
THANOS_TOKEN = "thanos-token-9b7d33e1"

MIRROR_TEXT = (EXAMPLES / "gateway-mirror/policy.yaml").read_text("utf-8")
ROUTE = (EXAMPLES / "gateway-mirror/manifests/httproute.yaml").read_text("utf-8")
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)
"""Nine levels of ten aliases each: 10^9 nodes once expanded (the billion laughs)."""


def hostile_policy(name: str, *, manifest: str | None = None, metrics: str | None = None) -> str:
    """The mirror example as policy `<name>/<name>` (its own namespace, so its own status
    folder) targeting `hostile/<name>/route.yaml`; `metrics` replaces the on-time-alone policy's
    (absent) metrics block with objectives and this provider block."""
    text = policy_on_time_alone(MIRROR_TEXT)
    if metrics is not None:
        text = MIRROR_TEXT.replace(
            MIRROR_TEXT[MIRROR_TEXT.index("  metrics:\n") : MIRROR_TEXT.index("    set: istio")],
            f"  metrics:\n{metrics}",
        )
    renamed = text.replace(
        "name: image-classifier\n  namespace: vision", f"name: {name}\n  namespace: {name}"
    ).replace(
        "- path: manifests/httproute.yaml", f"- path: {manifest or f'hostile/{name}/route.yaml'}"
    )
    assert renamed.count(f"{name}\n") >= 2, "the example's layout changed"
    return renamed


def with_route(name: str, policy: str | None = None, route: str | bytes = ROUTE) -> Files:
    return {
        f"hostile/{name}.yaml": policy or hostile_policy(name),
        f"hostile/{name}/route.yaml": route,
    }


def outside_policy_file(outside: Path) -> Path:
    """A valid policy kept outside the repository (what a link would smuggle in)."""
    folder = outside / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "outsider.yaml"
    file.write_text(hostile_policy("outsider", manifest="manifests/httproute.yaml"))
    return file


def hostile_case(name: str, outside: Path) -> tuple[Files, dict[str, str], str, str]:
    """(files, symbolic links path -> target, the file the error names, a phrase of the reason)."""
    if name == "alias-bomb-in-manifest":  # finding 1
        return (
            with_route("bomb", route=ROUTE + "---\n" + BOMB),
            {},
            "hostile/bomb/route.yaml",
            "alias bomb",
        )
    if name == "status-folder-link":  # finding 2
        return (
            with_route("escape"),
            {".policyengine/status/escape": str(outside / "status")},
            "hostile/escape.yaml",
            "symbolic link",
        )
    if name == "passwd-link":  # finding 7
        return {}, {"passwd.yaml": "/etc/passwd"}, "passwd.yaml", "symbolic link to /etc/passwd"
    if name == "dev-zero-link":  # finding 7
        return {}, {"zero.yaml": "/dev/zero"}, "zero.yaml", "symbolic link to /dev/zero"
    if name == "outside-policy-link":  # finding 7
        target = outside_policy_file(outside)
        return {}, {"outsider.yaml": str(target)}, "outsider.yaml", "outside the repository"
    if name == "dangling-status-link":  # finding 4: a link to nowhere
        links = {".policyengine/status/dangling": str(outside / "nowhere")}
        return with_route("dangling"), links, "hostile/dangling.yaml", "symbolic link"
    if name == "missing-token-file":  # finding 4: the operator's provider cannot read its token
        block = "    provider:\n      name: broken\n"
        files = with_route("tokenless", hostile_policy("tokenless", metrics=block))
        return files, {}, "hostile/tokenless.yaml", "cannot read the bearer token file"
    if name == "manifest-link":  # finding 2: a link on the way to a manifest
        return (
            {"hostile/linked.yaml": hostile_policy("linked")},
            {"hostile/linked": str(outside / "linked")},
            "hostile/linked.yaml",
            "symbolic link",
        )
    if name == "kind-is-a-map":  # finding 4: a Helm values file
        values = "kind: {name: web}\napiVersion: [v1]\nreplicas: 2\n---\nkind: [a, b]\n"
        return {"charts/web/values.yaml": values}, {}, "", ""
    if name == "not-utf8-manifest":  # finding 4
        latin = ROUTE.replace("# Image", "# Caf\xe9 image").encode("latin-1")
        return with_route("latin", route=latin), {}, "hostile/latin/route.yaml", "not UTF-8"
    if name == "unparseable-provider-url":  # finding 4
        block = "    provider:\n      url: http://[::1\n"
        return (
            with_route("badurl", hostile_policy("badurl", metrics=block)),
            {},
            "hostile/badurl.yaml",
            "spec.metrics.provider.url",
        )
    if name == "unknown-provider-name":  # finding 3 and 4: not in the operator's settings
        block = "    provider:\n      name: ghost\n"
        return (
            with_route("ghost", hostile_policy("ghost", metrics=block)),
            {},
            "hostile/ghost.yaml",
            "no provider 'ghost'",
        )
    if name == "credentials-in-policy":  # finding 3: the old format, refused with its migration
        block = "    provider:\n      url: http://127.0.0.1:9/\n      auth:\n        bearerTokenEnv: POLICYENGINE_GIT_TOKEN\n"
        return (
            with_route("thief", hostile_policy("thief", metrics=block)),
            {},
            "hostile/thief.yaml",
            "no longer read from policies",
        )
    if name == "deep-manifest":  # finding 10
        return (
            with_route("deep", route=ROUTE + "---\n" + "[" * 990 + "]" * 990 + "\n"),
            {},
            "hostile/deep/route.yaml",
            "nested more than 100",
        )
    if name == "policy-as-list-item":  # finding 11
        listed = "- " + hostile_policy("listed").replace("\n", "\n  ").rstrip() + "\n"
        return {"hostile/listed.yaml": listed}, {}, "hostile/listed.yaml", "list item"
    if name == "huge-manifest":  # finding 12
        huge = ROUTE + "# " + "x" * (3 * 1024 * 1024) + "\n"
        return with_route("huge", route=huge), {}, "hostile/huge/route.yaml", "above the limit"
    raise AssertionError(name)


CASES = (
    "alias-bomb-in-manifest",
    "status-folder-link",
    "passwd-link",
    "dev-zero-link",
    "outside-policy-link",
    "manifest-link",
    "dangling-status-link",
    "missing-token-file",
    "kind-is-a-map",
    "not-utf8-manifest",
    "unparseable-provider-url",
    "unknown-provider-name",
    "credentials-in-policy",
    "deep-manifest",
    "policy-as-list-item",
    "huge-manifest",
)


def valid_files(*, blue_green: bool = False) -> Files:
    files = example_files("modelmesh-canary", "policies/fraud-detector.yaml")
    if blue_green:
        files |= example_files("kserve-bluegreen", "policies/churn-predictor.yaml")
    return {path: text for path, text in files.items() if not path.startswith("argocd/")}


def create(base: Path, files: Files, links: Mapping[str, str]) -> ReleaseRepo:
    base.mkdir(parents=True, exist_ok=True)
    repo = ReleaseRepo(make_remote(base, files), base / "cache", base / "humans")
    if links:
        work = clone(repo.remote, base / "linker")
        for path, target in links.items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, work / path)
        git(work, "add", "--all")
        git(work, "commit", "--quiet", "-m", "hostile links")
        push(work)
    return repo


def outside_is_untouched(outside: Path, before: set[Path]) -> None:
    assert set(outside.rglob("*")) == before, "the engine wrote outside the repository"


def providers_file(folder: Path, thanos_url: str = "http://127.0.0.1:9") -> Path:
    """The operator's providers: `thanos` with a token file, `broken` whose token file is gone."""
    token = folder / "thanos-token"
    token.write_text(THANOS_TOKEN)
    file = folder / "providers.yaml"
    file.write_text(
        "providers:\n"
        f"  - name: thanos\n    url: {thanos_url}\n    bearerTokenFile: {token}\n"
        f"  - name: broken\n    url: {thanos_url}\n    bearerTokenFile: {folder / 'gone'}\n"
    )
    return file


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_file_fails_alone_and_the_valid_policy_advances(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLICYENGINE_PROVIDERS", str(providers_file(tmp_path)))
    outside = tmp_path / "outside"
    (outside / "status").mkdir(parents=True)
    (outside / "linked").mkdir()
    (outside / "linked" / "route.yaml").write_text(ROUTE)
    files, links, where, reason = hostile_case(case, outside)
    repo = create(tmp_path / "repo", valid_files() | files, links)
    before = set(outside.rglob("*"))
    start = repo.head()

    validated = CliRunner().invoke(main, ["validate", str(clone(repo.remote, tmp_path / "tree"))])
    result = CliRunner().invoke(
        main, ["reconcile", "--once", *repo.engine_args(T0)], catch_exceptions=False
    )

    assert result.exit_code == (1 if where else 0), result.output
    [commit] = repo.engine_commits(since=start)
    assert trailers_of(commit.message)["Policy"] == CANARY
    assert trailers_of(commit.message)["Weights"] == "v1=90,v2=10"
    if where:
        problems = [line for line in result.stderr.splitlines() if line.startswith(where)]
        assert problems and reason in problems[0], result.stderr
        if case not in ("unknown-provider-name", "missing-token-file"):
            # only the engine knows the operator's providers
            assert validated.exit_code == 1 and where in validated.output, validated.output
            assert reason in validated.output or case.endswith("-link"), validated.output
    assert "Traceback" not in result.output
    outside_is_untouched(outside, before)
    if case == "huge-manifest":  # refused, so neither parsed nor rewritten
        assert repo.file("hostile/huge/route.yaml") == files["hostile/huge/route.yaml"]


def test_validate_reports_links_on_the_way_to_status_and_manifests(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "linked").mkdir(parents=True)
    (outside / "linked" / "route.yaml").write_text(ROUTE)
    files = valid_files() | with_route("escape") | {"hostile/linked.yaml": hostile_policy("linked")}
    links = {".policyengine/status/escape": str(outside), "hostile/linked": str(outside / "linked")}
    repo = create(tmp_path / "repo", files, links)
    tree = clone(repo.remote, tmp_path / "tree")
    result = CliRunner().invoke(main, ["validate", str(tree)])
    assert result.exit_code == 1
    assert (
        "hostile/escape.yaml" in result.output
        and ".policyengine/status/escape is a symbolic link" in result.output
    )
    assert "hostile/linked.yaml" in result.output and "through a symbolic link" in result.output


def test_now_out_of_range_is_a_usage_error(tmp_path: Path) -> None:  # finding 10
    repo = create(tmp_path, valid_files(), {})
    for now in ("1e20", "-1e20", "nan", "inf"):
        args = ["reconcile", "--once", "--repo", str(repo.remote), "--cache-dir", str(repo.cache)]
        result = CliRunner().invoke(main, [*args, "--now", now])
        assert result.exit_code == 2, (now, result.output)
        assert "--now" in result.output and "out of range" in result.output
    assert not repo.engine_commits()


def test_the_hostile_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hostile file above in one repository beside two valid policies, one pass of the real
    CLI in its own process: both valid policies advance, every hostile one is reported with its
    file and reason, nothing is written outside the repository, no credential reaches the
    attacker's server, and the pass stays under 200 MB and 30 s."""
    outside = tmp_path / "outside"
    (outside / "status").mkdir(parents=True)
    (outside / "linked").mkdir()
    (outside / "linked" / "route.yaml").write_text(ROUTE)
    files: Files = valid_files(blue_green=True)
    links: dict[str, str] = {}
    expected: list[tuple[str, str]] = []
    for case in CASES:
        case_files, case_links, where, reason = hostile_case(case, outside)
        files |= case_files
        links |= case_links
        if where:
            expected.append((where, reason))

    with serve() as evil, serve() as thanos:
        block = f"    provider:\n      url: {evil.url}/\n"
        files |= with_route("exfil", hostile_policy("exfil", metrics=block))
        providers = providers_file(tmp_path, thanos.url)
        repo = create(tmp_path / "repo", files, links)
        before = set(outside.rglob("*"))
        start = repo.head()
        env = {
            **os.environ,
            "POLICYENGINE_GIT_TOKEN": GIT_TOKEN,
            "POLICYENGINE_PROVIDERS": str(providers),
        }
        measure = (
            "import resource, subprocess, sys, json\n"
            "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "print(json.dumps({'rc': done.returncode, 'out': done.stdout, 'err': done.stderr,"
            " 'rss_kib': rss}))\n"
        )
        began = time.monotonic()
        completed = subprocess.run(
            [
                sys.executable,
                "-c",
                measure,
                sys.executable,
                "-c",
                "from policyengine.cli import main; main()",
                "reconcile",
                "--once",
                *repo.engine_args(T0),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        seconds = time.monotonic() - began
        run = json.loads(completed.stdout)
        commits = repo.engine_commits(since=start)
        # a second pass: the exfil policy's release is under way, so its provider is queried
        for name in ("POLICYENGINE_GIT_TOKEN", "POLICYENGINE_PROVIDERS"):
            monkeypatch.setenv(name, env[name])
        later = CliRunner().invoke(
            main, ["reconcile", "--once", *repo.engine_args(T0 + timedelta(minutes=10))]
        )
        assert later.exit_code == 1 and "Traceback" not in later.output, later.output
        seen = list(evil.seen) + list(thanos.seen)

    assert run["rc"] == 1, run
    advanced = {
        trailers_of(c.message)["Policy"]: trailers_of(c.message)["Weights"] for c in commits
    }
    assert advanced[CANARY] == "v1=90,v2=10" and BLUE_GREEN in advanced
    # the exfil policy is valid (an unauthenticated URL): it starts mirroring, it just gets
    # nothing from the engine but queries; no hostile one moves
    assert set(advanced) == {CANARY, BLUE_GREEN, "exfil/exfil"}
    lines = run["err"].splitlines()
    for where, reason in expected:
        assert any(line.startswith(where) and reason in line for line in lines), (where, run["err"])
    assert "Traceback" not in run["err"]
    outside_is_untouched(outside, before)
    assert "outsider" not in run["out"]
    assert evil.seen, "the exfil policy's provider was queried"
    for request in seen:
        sent = json.dumps(request.headers) + request.path + request.body.decode("utf-8", "replace")
        assert GIT_TOKEN not in sent and THANOS_TOKEN not in sent
        assert "authorization" not in {name.lower() for name in request.headers}
    assert not thanos.seen  # no policy named it
    rss_mib = run["rss_kib"] / 1024
    print(f"hostile repository: one pass {seconds:.1f} s, peak RSS {rss_mib:.0f} MiB")
    assert rss_mib < 200, rss_mib
    assert seconds < 30, seconds
