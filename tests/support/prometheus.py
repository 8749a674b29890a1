"""A real Prometheus for tests: started on 127.0.0.1 and a free port, backfilled with promtool.

Missing binaries skip the test locally and fail it under CI (env CI set): the integration
tests must never pass in CI by not running.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

from tests.support.availability import unavailable
from tests.support.ports import free_port

T0 = datetime(2024, 1, 1, tzinfo=UTC)
"""The simulated start of time that integration tests query around (data far in the past)."""


def require_binaries() -> tuple[str, str]:
    """Paths of prometheus and promtool, or skip (locally) / fail (under CI) when missing."""
    found = {name: shutil.which(name) for name in ("prometheus", "promtool")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        reason = (
            f"{' and '.join(missing)} not on PATH; install Debian's prometheus (make prometheus)"
        )
        unavailable(reason)
    return str(found["prometheus"]), str(found["promtool"])


class PrometheusServer:
    """One Prometheus process over a data folder; stop and start it again on the same port."""

    def __init__(
        self,
        workdir: Path,
        web_config: str | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        """`web_config` is the text of a --web.config.file; `basic_auth` what readiness uses."""
        self.prometheus, self.promtool = require_binaries()
        self.basic_auth = basic_auth
        self.web_config: Path | None = None
        if web_config is not None:
            self.web_config = workdir / "web.yml"
            workdir.mkdir(parents=True, exist_ok=True)
            self.web_config.write_text(web_config)
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "prometheus.yml"
        self.config.write_text("")
        self.log = workdir / "prometheus.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._backfills = 0

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def backfill(self, openmetrics_text: str) -> None:
        """Write blocks with promtool; Prometheus only loads blocks at start, so it restarts."""
        was_running = self.running
        if was_running:
            self.stop()
        self._backfills += 1
        source = self.workdir / f"backfill-{self._backfills}.om"
        text = openmetrics_text.rstrip("\n")
        if not text.endswith("# EOF"):
            text += "\n# EOF"
        text += "\n"
        source.write_text(text, encoding="utf-8")
        result = subprocess.run(
            [
                self.promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                str(source),
                str(self.data_dir),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"promtool failed: {result.stderr or result.stdout}")
        if was_running:
            self.start()

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.prometheus,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-remote-write-receiver",
                    "--storage.tsdb.retention.time=100y",
                    "--log.level=warn",
                    *([f"--web.config.file={self.web_config}"] if self.web_config else []),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log.read_text()[-2000:]}")
            try:
                if (
                    requests.get(f"{self.url}/-/ready", timeout=1, auth=self.basic_auth).status_code
                    == 200
                ):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"prometheus not ready after {timeout}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()  # SIGKILL cannot be ignored: reap it, never leave it running

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    at: datetime
    value: float


def openmetrics(name: str, samples: Iterable[Sample]) -> str:
    """OpenMetrics lines (untyped, timestamps in seconds) for one metric name."""
    return "".join(
        f"{name}{{{_labels(s.labels)}}} {s.value:.17g} {s.at.timestamp():.3f}\n" for s in samples
    )


def counter_samples(
    labels: Mapping[str, str],
    start: datetime,
    increments: Sequence[float],
    scrape_seconds: int = 15,
) -> list[Sample]:
    """A counter scraped every `scrape_seconds` from `start`: increments[i] arrives in scrape i."""
    samples = [Sample(labels, start, 0.0)]
    total = 0.0
    for index, increment in enumerate(increments, start=1):
        total += increment
        samples.append(Sample(labels, _after(start, index * scrape_seconds), total))
    return samples


def _after(start: datetime, seconds: float) -> datetime:
    return datetime.fromtimestamp(start.timestamp() + seconds, tz=UTC)


def _labels(labels: Mapping[str, str]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
