"""What one call to an inference endpoint returned, as every client reports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Reply:
    """`status`: the HTTP code ("200", "503"), the gRPC status name ("OK", "NOT_FOUND"), or
    "timeout" / "connection" when no answer came. `body`: the decoded answer when the client keeps
    bodies (a replay compares them), else None. Streaming clients add the monotonic time of every
    token chunk and the output token count.
    """

    status: str
    ok: bool
    body: Any = None
    error: str | None = None
    token_times: tuple[float, ...] = ()
    tokens: int = 0
    # perf_counter time the answer was complete, when the client can tell it closer than the
    # awaiting task's next turn on a busy event loop.
    finished: float | None = None
    # perf_counter time the request was handed to the socket, when the client can tell: the open
    # loop times a request that left early from here, and its pacer learns how long the client
    # takes between being called and writing.
    written: float | None = None


TIMEOUT = "timeout"
CONNECTION = "connection"
