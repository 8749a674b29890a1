"""`policyengine run` end to end: the installed console script as a process, a real bare Git
remote, webhooks over loopback HTTP signed as GitHub signs them.

A person pushes the commit that starts a release and GitHub delivers the push webhook: the pass it
starts must have pushed the engine's commit within 2 s of the delivery (the loop's own interval is
an hour, so only the webhook can have started it). A delivery with a wrong signature gets 401 and
its body never reaches the log. /metrics shows the passes and the webhook; SIGTERM exits 0.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from policyengine.controller.loop import Controller
from policyengine.controller.server import ControllerServer, ServerSettings
from policyengine.reconciler import Engine, EngineSettings
from tests.support.fake_leases import running_lease_api
from tests.support.receivers import Receiver
from tests.support.release_repos import (
    ReleaseRepo,
    console_script,
    modelmesh_baseline_files,
    modelmesh_candidate_files,
)

SECRET = "s3cret-webhook-key"
MARKER = "body-marker-7f3a"  # must never appear in the engine's output


def _wait_for(predicate: Callable[[], object], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _github_headers(body: bytes, secret: str) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "delivery-1",
        "X-Hub-Signature-256": f"sha256={signature}",
    }


def test_a_signed_push_webhook_starts_a_pass_that_commits_within_2_seconds(
    tmp_path: Path,
) -> None:
    repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
    output = tmp_path / "run.out"
    receiver = Receiver()  # the generic JSON notification webhook
    notify = {
        "POLICYENGINE_NOTIFY_WEBHOOK_URL": receiver.url("/hook"),
        "POLICYENGINE_NOTIFY_LINK": "https://forge.example/commit/{sha}",
    }
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [
                str(console_script()),
                "run",
                "--interval",
                "1h",
                "--listen",
                "127.0.0.1:0",
                "--repo",
                str(repo.remote),
                "--cache-dir",
                str(repo.cache),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "POLICYENGINE_WEBHOOK_SECRET": SECRET,
                **notify,
            },
        )
        try:
            assert _wait_for(lambda: "listening on" in output.read_text(), 30, 0.1)
            port = re.search(r"listening on 127\.0\.0\.1:(\d+)", output.read_text())
            assert port, output.read_text()
            base = f"http://127.0.0.1:{port.group(1)}"
            assert _get(f"{base}/healthz")[0] == 200
            # Ready once the first pass completed (nothing to do: no policy yet).
            assert _wait_for(lambda: _get(f"{base}/readyz")[0] == 200, 30, 0.1), output.read_text()

            before = repo.human_push(modelmesh_candidate_files(), "Release fraud-detector v2")
            body = json.dumps({"ref": "refs/heads/main", "after": before, "note": MARKER}).encode()

            # A wrong signature: 401, and nothing starts.
            bad = _github_headers(body, "not-the-secret")
            assert _post(f"{base}/webhooks/github", body, bad) == 401
            missing = {"Content-Type": "application/json", "X-GitHub-Event": "push"}
            assert _post(f"{base}/webhooks/github", body, missing) == 401
            time.sleep(0.5)
            assert repo.head() == before

            sent = time.monotonic()
            assert _post(f"{base}/webhooks/github", body, _github_headers(body, SECRET)) == 202
            assert _wait_for(lambda: repo.head() != before, 2.0), output.read_text()
            latency = time.monotonic() - sent
            commits = repo.engine_commits(since=before)
            assert len(commits) == 1
            assert "advance v1=90,v2=10" in commits[0].subject
            print(f"webhook to pushed commit: {latency:.2f} s")

            assert _wait_for(
                lambda: 'passes_total{result="ok"} 2.0' in _get(f"{base}/metrics")[1], 10
            )
            status, metrics = _get(f"{base}/metrics")
            assert status == 200
            assert 'policyengine_passes_total{result="ok"} 2.0' in metrics
            assert "policyengine_pass_duration_seconds_count 2.0" in metrics
            assert 'policyengine_decisions_total{decision="advance"} 1.0' in metrics
            assert "policyengine_git_commits_total 1.0" in metrics
            assert "policyengine_git_pushes_total 1.0" in metrics
            assert 'policyengine_webhooks_total{forge="github",result="triggered"} 1.0' in metrics
            assert (
                'policyengine_webhooks_total{forge="github",result="unauthorized"} 2.0' in metrics
            )

            # The decision was notified, with a link to the pushed commit.
            assert _wait_for(lambda: receiver.received, 10)
            [(_, notified)] = receiver.received
            assert (
                notified["decision"] == "advance"
                and notified["policy"] == "fraud-detection/fraud-detector"
            )
            assert notified["link"] == f"https://forge.example/commit/{commits[0].sha}"
            assert _wait_for(
                lambda: (
                    'policyengine_notifications_total{result="sent",sink="webhook"} 1.0'
                    in _get(f"{base}/metrics")[1]
                ),
                10,
            ), _get(f"{base}/metrics")[1]

            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            receiver.stop()
            if process.poll() is None:
                process.kill()
                process.wait()
    text = output.read_text()
    assert "refused a github webhook from 127.0.0.1: bad or missing signature" in text
    assert MARKER not in text
    assert SECRET not in text
    assert "received SIGTERM: finishing the pass" in text


def test_gitlab_and_gitea_webhooks_wake_the_loop_and_bad_ones_get_401(tmp_path: Path) -> None:
    """In process: the same server and loop, each forge's authentication, health before and after
    the first pass."""
    repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
    engine = Engine(EngineSettings(repo=str(repo.remote), cache_dir=repo.cache))
    controller = Controller(engine, interval=3600)
    server = ControllerServer(
        controller, ServerSettings(host="127.0.0.1", port=0, webhook_secret=SECRET.encode())
    )
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    assert _get(f"{base}/readyz")[0] == 503  # no pass yet
    loop = threading.Thread(target=controller.run)
    loop.start()
    try:
        assert _wait_for(lambda: controller.state.passes == 1, 30)
        assert _get(f"{base}/readyz") == (200, "ok\n")
        push = _json_bytes({"ref": "refs/heads/main"})
        gitlab = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
        assert _post(f"{base}/webhooks/gitlab", push, gitlab) == 202
        assert _wait_for(lambda: controller.state.passes == 2, 10)
        gitlab_bad = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "guess"}
        assert _post(f"{base}/webhooks/gitlab", push, gitlab_bad) == 401
        signature = hmac.new(SECRET.encode(), push, hashlib.sha256).hexdigest()
        forgejo = {"X-Forgejo-Event": "push", "X-Forgejo-Signature": signature}
        assert _post(f"{base}/webhooks/gitea", push, forgejo) == 202
        assert _wait_for(lambda: controller.state.passes == 3, 10)
        assert _post(f"{base}/webhooks/gitea", push + b" ", forgejo) == 401
        other_branch = _json_bytes({"ref": "refs/heads/feature"})
        gitlab_other = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
        assert _post(f"{base}/webhooks/gitlab", other_branch, gitlab_other) == 200
        assert _post(f"{base}/webhooks/bitbucket", push, {}) == 404
        assert _get(f"{base}/nothing")[0] == 404
    finally:
        controller.stop()
        loop.join(timeout=30)
        server.stop()
    assert controller.state.passes == 3
    assert controller.ready() == (False, "stopping")
    text = controller.metrics.exposition().decode()
    assert 'policyengine_webhooks_total{forge="gitlab",result="triggered"} 1.0' in text
    assert 'policyengine_webhooks_total{forge="gitea",result="unauthorized"} 1.0' in text
    assert 'policyengine_webhooks_total{forge="gitlab",result="ignored"} 1.0' in text


def _json_bytes(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_run_with_shards_holds_the_leases_signs_commits_and_releases_on_sigterm(
    tmp_path: Path,
) -> None:
    """`run --shards 2` as a process against the loopback Lease API stand-in
    (tests/support/fake_leases.py, resourceVersion conflicts enforced as the API server does)."""
    repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
    repo.human_push(modelmesh_candidate_files(), "Release fraud-detector v2")
    with running_lease_api() as fake:
        kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
        output = tmp_path / "run.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [
                    str(console_script()),
                    "run",
                    "--interval",
                    "0.5s",
                    "--listen",
                    "127.0.0.1:0",
                    "--shards",
                    "2",
                    "--lease-namespace",
                    "ml-releases",
                    "--identity",
                    "engine-0",
                    "--lease-duration",
                    "3s",
                    "--kubeconfig",
                    str(kubeconfig),
                    "--repo",
                    str(repo.remote),
                    "--cache-dir",
                    str(repo.cache),
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                assert _wait_for(lambda: len(repo.engine_commits()) == 1, 30), output.read_text()
                shard_leases = {
                    name: holder for name, holder in fake.holders("policyengine-shard-").items()
                }
                assert shard_leases == {
                    "policyengine-shard-0-of-2": "engine-0",
                    "policyengine-shard-1-of-2": "engine-0",
                }
                port = re.search(r"listening on 127\.0\.0\.1:(\d+)", output.read_text())
                assert port
                metrics = _get(f"http://127.0.0.1:{port.group(1)}/metrics")[1]
                assert "policyengine_shards_held 2.0" in metrics
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=30) == 0
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        # Released on the way out: another replica takes them at once, not after expiry.
        assert set(fake.holders().values()) == {""}
    commit = repo.engine_commits()[0]
    assert "Holder: engine-0" in commit.message
    assert "shards: 2, Leases in namespace ml-releases as engine-0" in output.read_text()


def test_run_refuses_bad_options_before_starting(tmp_path: Path) -> None:
    repo = ReleaseRepo.create(tmp_path, modelmesh_baseline_files())
    args = ["--repo", str(repo.remote), "--cache-dir", str(repo.cache)]
    for extra, message in (
        (["--listen", "8080"], "is not HOST:PORT"),
        (["--interval", "soon"], "not a duration"),
        (["--now", "0"], "--now applies to one pass"),
        (["--shards", "2", "--lease-duration", "0s"], "lease duration must be at least 1 s"),
        (["--notify-hold-after", "later"], "not a duration"),
    ):
        result = repo.cli("run", *args, *extra)
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)
