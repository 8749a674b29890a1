"""A loopback HTTP server that records every request and answers as a test scripts it.

For what a real Prometheus cannot be made to answer (a 200 without `data`, a non-numeric sample, a
body trickled a byte at a time) and for a server an attacker controls (does the engine send it any
credential?). Bound to 127.0.0.1 on a free port; every request's line, headers and body are kept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    """What to send: a status and a body, optionally trickled `trickle` bytes at a time with
    `pause` seconds between pieces (or held `pause` seconds before anything when trickle is 0)."""

    status: int = 200
    body: bytes = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
    content_type: str = "application/json"
    trickle: int = 0
    pause: float = 0.0


@dataclass
class StandIn:
    url: str
    answer: Callable[[Seen], Answer]
    seen: list[Seen] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)


def _handler(stand_in: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, dict(self.headers.items()), body)
            stand_in.seen.append(seen)
            answer = stand_in.answer(seen)
            if answer.pause and not answer.trickle:
                stand_in.stopping.wait(answer.pause)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            try:
                if not answer.trickle:
                    self.wfile.write(answer.body)
                    return
                for start in range(0, len(answer.body), answer.trickle):
                    if stand_in.stopping.is_set():
                        return
                    self.wfile.write(answer.body[start : start + answer.trickle])
                    self.wfile.flush()
                    time.sleep(answer.pause)
            except OSError:
                pass  # the client gave up, as it should

        do_GET = _serve
        do_POST = _serve

    return Handler


@contextmanager
def serve(answer: Callable[[Seen], Answer] | None = None) -> Iterator[StandIn]:
    """A running stand-in answering `answer(request)` (by default: an empty matrix)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(StandIn("", lambda _: Answer())))
    server.daemon_threads = True
    host, port = server.server_address[:2]
    stand_in = StandIn(f"http://{host!s}:{port}", answer or (lambda _: Answer()))
    server.RequestHandlerClass = _handler(stand_in)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        stand_in.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
