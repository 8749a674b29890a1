"""The controller's HTTP endpoints: /metrics, /healthz, /readyz and /webhooks/<forge>.

One small threaded server from the standard library: the endpoints are few and cheap, and the
pass never runs on a request thread (a webhook only wakes the loop).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from policyengine.controller.loop import Controller
from policyengine.controller.metrics import CONTENT_TYPE
from policyengine.controller.webhooks import FORGES, authentic, interpret
from policyengine.errors import PolicyEngineError

log = logging.getLogger("policyengine.controller")

# GitHub caps payloads at 25 MB; a push event is far smaller. Anything larger is refused unread.
MAX_BODY = 25 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    host: str = "0.0.0.0"
    port: int = 8080
    webhook_secret: bytes = b""  # empty: webhooks are refused (401), the interval still runs
    branch: str = "main"
    stuck_after: float = 600.0  # /healthz fails when one pass runs longer than this


class ControllerServer:
    """Serves the controller's endpoints on a background thread."""

    def __init__(self, controller: Controller, settings: ServerSettings) -> None:
        self.controller = controller
        self.settings = settings
        handler = _handler_class(self)
        self._httpd = ThreadingHTTPServer((settings.host, settings.port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="policyengine-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _handler_class(server: ControllerServer) -> type[BaseHTTPRequestHandler]:
    controller = server.controller
    settings = server.settings

    class Handler(BaseHTTPRequestHandler):
        server_version = "policyengine"

        def log_message(self, format: str, *args: Any) -> None:
            # Access lines at debug: probes and scrapes every few seconds would drown the log.
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, controller.metrics.exposition(), CONTENT_TYPE)
            elif path == "/healthz":
                ok, why = controller.healthy(settings.stuck_after)
                self._send(200 if ok else 503, f"{why}\n".encode())
            elif path == "/readyz":
                ok, why = controller.ready()
                self._send(200 if ok else 503, f"{why}\n".encode())
            else:
                self._send(404, b"not found\n")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            forge = path.removeprefix("/webhooks/")
            if not path.startswith("/webhooks/") or forge not in FORGES:
                self._send(404, b"not found\n")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self._send(400, b"bad Content-Length\n")
                return
            if length > MAX_BODY:
                controller.metrics.webhooks.labels(forge=forge, result="too-large").inc()
                self._send(413, b"payload too large\n")
                return
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            if not authentic(forge, settings.webhook_secret, headers, body):
                controller.metrics.webhooks.labels(forge=forge, result="unauthorized").inc()
                # Who and what, never the body: it is unauthenticated input, and may be large.
                log.warning(
                    "refused a %s webhook from %s: bad or missing signature (delivery %s, %d bytes)",
                    forge,
                    self.client_address[0],
                    _delivery_id(headers),
                    len(body),
                )
                self._send(401, b"bad signature\n")
                return
            delivery = interpret(forge, headers, body, settings.branch)
            if delivery.trigger:
                controller.metrics.webhooks.labels(forge=forge, result="triggered").inc()
                controller.trigger(f"{forge} webhook: {delivery.detail}")
                self._send(202, b"pass started\n")
            else:
                controller.metrics.webhooks.labels(forge=forge, result="ignored").inc()
                log.info("ignored a %s webhook: %s", forge, delivery.detail)
                self._send(200, f"ignored: {delivery.detail}\n".encode())

    return Handler


def _delivery_id(headers: dict[str, str]) -> str:
    for name in (
        "x-github-delivery",
        "x-gitlab-event-uuid",
        "x-forgejo-delivery",
        "x-gitea-delivery",
    ):
        if name in headers:
            return headers[name]
    return "-"


SECRET_ENV = "POLICYENGINE_WEBHOOK_SECRET"
SECRET_FILE_ENV = "POLICYENGINE_WEBHOOK_SECRET_FILE"


def webhook_secret(environ: Mapping[str, str] | None = None) -> bytes:
    """The webhook secret from POLICYENGINE_WEBHOOK_SECRET, else the file ..._FILE names; empty
    when neither is set (webhooks are then refused)."""
    env = os.environ if environ is None else environ
    value = env.get(SECRET_ENV, "").strip()
    if value:
        return value.encode()
    path = env.get(SECRET_FILE_ENV, "").strip()
    if not path:
        return b""
    try:
        return Path(path).read_text(encoding="utf-8").strip().encode()
    except OSError as error:
        raise PolicyEngineError(
            f"cannot read the webhook secret file {path}: {error.strerror}"
        ) from error
