"""A real KServe V2 model server for tests and benchmarks: MLServer 1.7.1 on 127.0.0.1.

MLServer lives in its own virtualenv (`make mlserver` builds `.venv-mlserver`): its pins (pandas,
scikit-learn, its own protobuf stubs) stay out of the project's environment and out of the test
process. Missing, it skips a test locally and fails it under CI.

Models: `iris` (scikit-learn LogisticRegression through mlserver-sklearn, trained here), `slow`
(a custom runtime that answers after a fixed delay) and `stall` (a custom runtime that blocks the
whole server for a second once every ten seconds, like a long garbage-collection pause).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.availability import unavailable
from tests.support.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]

RUNTIMES = '''
import asyncio
import time

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


def _answer(name: str) -> InferenceResponse:
    return InferenceResponse(
        model_name=name,
        outputs=[ResponseOutput(name="predict", shape=[1], datatype="INT64", data=[0])],
    )


class SlowModel(MLModel):
    """Answers after `delay` seconds without holding up other requests."""

    async def load(self) -> bool:
        extra = self.settings.parameters.extra or {}
        self._delay = float(extra.get("delay", 0.05))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        await asyncio.sleep(self._delay)
        return _answer(self.name)


class StallModel(MLModel):
    """Blocks the event loop (the whole server) for `stall` seconds once per `period` seconds."""

    async def load(self) -> bool:
        extra = self.settings.parameters.extra or {}
        self._stall = float(extra.get("stall", 1.0))
        self._period = float(extra.get("period", 10.0))
        self._next = time.monotonic() + self._period
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._period
            time.sleep(self._stall)
        return _answer(self.name)
'''

TRAIN = """
import sys
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
joblib.dump(LogisticRegression(max_iter=500).fit(X, y), sys.argv[1])
"""

IRIS_INPUTS = [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]


def mlserver_binary() -> Path:
    """The mlserver executable: $POLICYENGINE_MLSERVER, else .venv-mlserver (make mlserver)."""
    configured = os.environ.get("POLICYENGINE_MLSERVER")
    path = Path(configured) if configured else ROOT / ".venv-mlserver" / "bin" / "mlserver"
    if not path.is_file():
        reason = f"MLServer not found at {path}: run `make mlserver`"
        unavailable(reason)
    return path


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def build_models(
    folder: Path, python: Path, slow_delay: float = 0.05, stall_period: float = 10.0
) -> None:
    """The model repository: iris (trained now), slow and stall."""
    (folder / "iris").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(python), "-c", TRAIN, str(folder / "iris" / "model.joblib")], check=True, timeout=120
    )
    _write_json(
        folder / "iris" / "model-settings.json",
        {
            "name": "iris",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "inputs": IRIS_INPUTS,
            "parameters": {"uri": "./model.joblib", "version": "v1"},
        },
    )
    (folder / "policyengine_test_runtimes.py").write_text(RUNTIMES, encoding="utf-8")
    _write_json(
        folder / "slow" / "model-settings.json",
        {
            "name": "slow",
            "implementation": "policyengine_test_runtimes.SlowModel",
            "inputs": IRIS_INPUTS,
            "parameters": {"extra": {"delay": slow_delay}},
        },
    )
    _write_json(
        folder / "stall" / "model-settings.json",
        {
            "name": "stall",
            "implementation": "policyengine_test_runtimes.StallModel",
            "inputs": IRIS_INPUTS,
            "parameters": {"extra": {"stall": 1.0, "period": stall_period}},
        },
    )


class MLServer:
    def __init__(self, workdir: Path, slow_delay: float = 0.05, stall_period: float = 10.0) -> None:
        self.binary = mlserver_binary()
        self.workdir = workdir
        self.models = workdir / "models"
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.log = workdir / "mlserver.log"
        self._slow_delay = slow_delay
        self._stall_period = stall_period
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        build_models(
            self.models, self.binary.parent / "python", self._slow_delay, self._stall_period
        )
        # settings.json wins over MLSERVER_* variables: everything that matters is set here.
        _write_json(
            self.models / "settings.json",
            {
                "host": "127.0.0.1",
                "http_port": self.http_port,
                "grpc_port": self.grpc_port,
                "metrics_port": self.metrics_port,
                "parallel_workers": 0,
                # debug (on by default) logs every request: CPU a benchmark should not spend.
                "debug": False,
            },
        )
        env = {**os.environ, "MLSERVER_PARALLEL_WORKERS": "0"}
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "start", str(self.models)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"MLServer exited: {self.log.read_text()[-2000:]}")
            try:
                if all(
                    requests.get(f"{self.url}/v2/models/{m}/ready", timeout=1).status_code == 200
                    for m in ("iris", "slow", "stall")
                ):
                    self._warm()
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"MLServer not ready in {timeout} s: {self.log.read_text()[-2000:]}")

    def _warm(self) -> None:
        """One inference per model: the first one loads lazily imported code for seconds, which
        is the server starting, not the load test's business."""
        body = {"inputs": [{**IRIS_INPUTS[0], "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
        for model in ("iris", "slow"):
            requests.post(f"{self.url}/v2/models/{model}/infer", json=body, timeout=30)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


@contextmanager
def running_mlserver(
    workdir: Path, slow_delay: float = 0.05, stall_period: float = 10.0
) -> Iterator[MLServer]:
    server = MLServer(workdir, slow_delay, stall_period)
    server.start()
    try:
        yield server
    finally:
        server.stop()
