"""A loopback stand-in for the one Kubernetes API endpoint the Argo CD sync gate reads.

Implements GET /apis/argoproj.io/v1alpha1/namespaces/{namespace}/applications/{name} (the
documented custom-resource path), answering the stored Application or a 404 Status, after checking
`Authorization: Bearer <token>` (401 Status otherwise). Every Application stored is first
validated against the Argo CD CRD schema in tests/schemas (Draft 2020-12).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema

from tests.support.crd_schemas import SCHEMAS_DIR

APPLICATION_SCHEMA = SCHEMAS_DIR / "argoproj.v1alpha1.Application.json"
_PATH = re.compile(r"/apis/argoproj\.io/v1alpha1/namespaces/([^/]+)/applications/([^/?]+)")


@cache
def _validator() -> jsonschema.Draft202012Validator:
    # A missing schema file is an error, never a skip: the tests depend on it.
    schema = json.loads(APPLICATION_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_application(document: Mapping[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless the document is a valid Argo CD Application."""
    _validator().validate(document)
    assert document.get("apiVersion") == "argoproj.io/v1alpha1"
    assert document.get("kind") == "Application"


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubeApi:
    """Serves Argo CD Applications over HTTP on 127.0.0.1 and a free port."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.applications: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads: list[str] = []
        self.forbidden_namespaces: set[str] = set()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = fake.answer(self.path, self.headers.get("Authorization", ""))
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def put_application(self, document: Mapping[str, Any]) -> None:
        validate_application(document)
        metadata = document["metadata"]
        with self._lock:
            self.applications[(metadata["namespace"], metadata["name"])] = copy.deepcopy(
                dict(document)
            )

    def answer(self, path: str, authorization: str) -> tuple[int, dict[str, Any]]:
        if authorization != f"Bearer {self.token}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        match = _PATH.fullmatch(path.split("?", 1)[0])
        if match is None:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        namespace, name = match.groups()
        with self._lock:
            self.reads.append(f"{namespace}/{name}")
            if namespace in self.forbidden_namespaces:
                return 403, _status(
                    403,
                    "Forbidden",
                    f'applications.argoproj.io "{name}" is forbidden: User '
                    '"system:serviceaccount:policyengine:engine" cannot get resource '
                    f'"applications" in API group "argoproj.io" in the namespace "{namespace}"',
                )
            document = self.applications.get((namespace, name))
        if document is None:
            return 404, _status(404, "NotFound", f'applications.argoproj.io "{name}" not found')
        return 200, document

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing the production kubernetes client at this server."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "engine", "user": {"token": self.token}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "engine"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def running_kube_api(token: str) -> Iterator[FakeKubeApi]:
    api = FakeKubeApi(token)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def application(
    name: str = "fraud-detector",
    namespace: str = "argocd",
    *,
    revision: str,
    sync_status: str = "Synced",
    health: str = "Healthy",
    operation_revision: str | None = None,
    phase: str = "Succeeded",
    finished_at: str = "2024-05-01T10:02:30Z",
) -> dict[str, Any]:
    """An Argo CD Application as the API server returns it, with the status fields the gate reads."""
    source = {
        "repoURL": "https://git.example.com/acme/models.git",
        "path": "deploy/prod",
        "targetRevision": "main",
    }
    destination = {"server": "https://kubernetes.default.svc", "namespace": "models"}
    status: dict[str, Any] = {
        "sync": {
            "status": sync_status,
            "revision": revision,
            "comparedTo": {"source": source, "destination": destination},
        },
        "health": {"status": health, "lastTransitionTime": "2024-05-01T10:02:40Z"},
        "reconciledAt": "2024-05-01T10:03:00Z",
        "sourceType": "Directory",
    }
    if operation_revision is not None:
        status["operationState"] = {
            "operation": {
                "sync": {"revision": operation_revision},
                "initiatedBy": {"automated": True},
            },
            "phase": phase,
            "message": "successfully synced (all tasks run)",
            "startedAt": "2024-05-01T10:02:00Z",
            "finishedAt": finished_at,
            "syncResult": {"revision": operation_revision, "source": source, "resources": []},
        }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "4711"},
        "spec": {
            "project": "default",
            "source": source,
            "destination": destination,
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
        "status": status,
    }
