"""The real Prometheus for the demo: the `prometheus` binary on 127.0.0.1 and a free port, over a
fresh data folder, accepting the simulator's samples by remote write.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

from policyengine.errors import ProviderUnavailableError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def find_prometheus() -> str | None:
    return shutil.which("prometheus")


class PrometheusProcess:
    """One Prometheus child process; `stop` is safe to call twice and from `finally`."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "prometheus.yml"
        config.write_text("# no scrapes: the simulated fleet pushes by remote write\n")
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-remote-write-receiver",
                    # Simulated time sits in the past: keep it from being deleted as expired.
                    "--storage.tsdb.retention.time=100y",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Ctrl-C reaches the demo, which stops Prometheus itself, in order.
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise ProviderUnavailableError(f"prometheus exited at start: {tail}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise ProviderUnavailableError(f"prometheus at {self.url} not ready after {timeout:.0f} s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
