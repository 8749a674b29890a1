"""A loopback stand-in for the Kubernetes Lease API (`coordination.k8s.io/v1`).

No API server can run here, so the shard Lease tests talk to this one, through the real
`kubernetes` client over HTTP. It implements what the controller uses, with the API server's
concurrency rules:

- `GET .../namespaces/{ns}/leases?labelSelector=k=v,...` (equality selectors), `GET .../{name}`;
- `POST .../namespaces/{ns}/leases`: 201, or 409 `AlreadyExists` when the name is taken;
- `PUT .../namespaces/{ns}/leases/{name}`: optimistic concurrency. A body whose
  `metadata.resourceVersion` is not the stored one gets 409 `Conflict` ("the object has been
  modified; please apply your changes to the latest version and try again"); an empty one is an
  unconditional update (Leases allow it, as the API server does). Every write gets a new
  resourceVersion from one cluster-wide counter.
- Bodies are checked as the server would: apiVersion/kind, name matching the path, spec fields of
  the right types, and MicroTime values in RFC 3339 with six fractional digits (what the Go
  server parses); a bad one is 422 `Invalid`.

It also records every accepted write (`writes`), so tests can replay who held what when.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

_COLLECTION = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([a-z0-9-]+)/leases$")
_ITEM = re.compile(r"^/apis/coordination\.k8s\.io/v1/namespaces/([a-z0-9-]+)/leases/([a-z0-9.-]+)$")
_MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")
_SPEC_TYPES: dict[str, type | tuple[type, ...]] = {
    "holderIdentity": str,
    "leaseDurationSeconds": int,
    "acquireTime": str,
    "renewTime": str,
    "leaseTransitions": int,
    "preferredHolder": str,
    "strategy": str,
}


@dataclass(frozen=True)
class Write:
    at: float  # monotonic
    name: str
    holder: str
    resource_version: str


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


class FakeLeaseApi:
    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[Write] = []
        self.conflicts = 0
        self.requests = 0
        self._version = 100
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, body = fake.handle(method, self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def do_PUT(self) -> None:
                self._answer("PUT")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig pointing the production kubernetes client at this server."""
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "engine", "user": {"token": "lease-token"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "engine"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    def holders(self, prefix: str = "") -> dict[str, str]:
        with self._lock:
            return {
                name: (lease["spec"].get("holderIdentity") or "")
                for (_, name), lease in self.leases.items()
                if name.startswith(prefix)
            }

    # -- the API -------------------------------------------------------------------------------

    def handle(self, method: str, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        with self._lock:
            self.requests += 1
            collection = _COLLECTION.match(parts.path)
            item = _ITEM.match(parts.path)
            if method == "GET" and collection:
                return 200, self._list(collection.group(1), parse_qs(parts.query))
            if method == "GET" and item:
                found = self.leases.get((item.group(1), item.group(2)))
                if found is None:
                    return 404, _status(404, "NotFound", f'leases "{item.group(2)}" not found')
                return 200, copy.deepcopy(found)
            if method in ("POST", "PUT"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    return 400, _status(400, "BadRequest", "the body is not JSON")
                problem = _invalid(body)
                if problem:
                    return 422, _status(422, "Invalid", problem)
                if method == "POST" and collection:
                    return self._create(collection.group(1), body)
                if method == "PUT" and item:
                    return self._replace(item.group(1), item.group(2), body)
            return 404, _status(404, "NotFound", f"{method} {parts.path}")

    def _list(self, namespace: str, query: dict[str, list[str]]) -> dict[str, Any]:
        selector = dict(
            term.split("=", 1)
            for text in query.get("labelSelector", [])
            for term in text.split(",")
            if "=" in term
        )
        items = [
            copy.deepcopy(lease)
            for (ns, _), lease in sorted(self.leases.items())
            if ns == namespace
            and all(lease["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
        ]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "LeaseList",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _stored(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["namespace"] = namespace
        stored["metadata"]["resourceVersion"] = str(self._version)
        stored.setdefault("spec", {})
        name = stored["metadata"]["name"]
        self.leases[(namespace, name)] = stored
        holder = stored["spec"].get("holderIdentity") or ""
        self.writes.append(Write(time.monotonic(), name, holder, str(self._version)))
        return copy.deepcopy(stored)

    def _create(self, namespace: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        name = body["metadata"]["name"]
        if (namespace, name) in self.leases:
            self.conflicts += 1
            return 409, _status(
                409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists'
            )
        body["metadata"].pop("resourceVersion", None)
        return 201, self._stored(namespace, body)

    def _replace(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if body["metadata"]["name"] != name:
            return 400, _status(400, "BadRequest", "the name of the object does not match the URL")
        current = self.leases.get((namespace, name))
        if current is None:
            return 404, _status(404, "NotFound", f'leases.coordination.k8s.io "{name}" not found')
        given = body["metadata"].get("resourceVersion")
        if given and given != current["metadata"]["resourceVersion"]:
            self.conflicts += 1
            return 409, _status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on leases.coordination.k8s.io "{name}": the object '
                "has been modified; please apply your changes to the latest version and try again",
            )
        return 200, self._stored(namespace, body)


def _invalid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "the body is not an object"
    if body.get("apiVersion") != "coordination.k8s.io/v1" or body.get("kind") != "Lease":
        return f"not a coordination.k8s.io/v1 Lease: {body.get('apiVersion')} {body.get('kind')}"
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        return "metadata.name: Required value"
    if (
        not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", metadata["name"])
        or len(metadata["name"]) > 253
    ):
        return f"metadata.name: Invalid value: {metadata['name']!r}: a DNS-1123 subdomain"
    spec = body.get("spec", {})
    if not isinstance(spec, dict):
        return "spec: must be an object"
    for key, value in spec.items():
        if key not in _SPEC_TYPES:
            return f"spec.{key}: unknown field"
        if value is not None and not isinstance(value, _SPEC_TYPES[key]):
            return f"spec.{key}: wrong type {type(value).__name__}"
        if key in ("acquireTime", "renewTime") and value and not _MICRO_TIME.match(value):
            return f"spec.{key}: Invalid value: {value!r}: not RFC 3339 MicroTime"
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        return "spec.leaseDurationSeconds: must be greater than 0"
    return None


@contextmanager
def running_lease_api() -> Iterator[FakeLeaseApi]:
    api = FakeLeaseApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()


def lease_client(url: str) -> Any:
    """A `kubernetes` ApiClient for the stand-in: no retries (a refused request fails at once)."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    configuration.retries = 0
    return client.ApiClient(configuration)
