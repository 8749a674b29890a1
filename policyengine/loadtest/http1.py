"""The load generator's HTTP/1.1 client: a pool of keep-alive connections on asyncio protocols,
responses parsed by httptools (llhttp, Node.js's parser, in C).

Why not aiohttp on the hot path: at 1,000 requests/s on a 2-core machine the generator shares the
CPU with the server it measures, and aiohttp spends about 0.6 ms of CPU per request (its request
and response objects, header multidicts, per-request timers), which waits for a core and lands in
the measured latency. Here a request is one cached head plus the body written to the transport,
and a response is parsed by callbacks that only keep the status and the body: about 0.1–0.2 ms.
The time a response is complete is taken in the parser's callback, like wrk does, not when the
awaiting task next runs, so a busy event loop does not add to the latency it reports.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import cast
from urllib.parse import urlsplit

import httptools


@dataclass(frozen=True)
class Response:
    """`written`: the perf_counter time the request was handed to the socket (its first attempt's,
    when a dropped idle connection made it go again); `finished`: when the last byte of the
    response was parsed."""

    status: int
    body: bytes
    finished: float
    written: float


class _Reopen(ConnectionError):
    """The server closed a kept-alive connection before a byte of our response came: it had
    timed the connection out (or crashed); sending again on a fresh connection is safe."""


class _Connection(asyncio.Protocol):
    """One connection; at most one request in flight on it (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self._parser = httptools.HttpResponseParser(self)
        self._chunks: list[bytes] = []
        self._waiter: asyncio.Future[Response] | None = None
        self._answered = False  # a byte of the current response has arrived
        self.written = 0.0  # perf_counter time of the current request's write

    def send(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self._answered = False
        self.written = time.perf_counter()  # before the write, as wrk takes its start
        self.transport.write(data)
        return waiter

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio's, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(ConnectionError(f"not an HTTP/1.1 response: {error}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        reason = str(exc) if exc else "the server closed the connection"
        self._fail(ConnectionError(reason) if self._answered else _Reopen(reason))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        finished = time.perf_counter()
        self.keep_alive = self._parser.should_keep_alive()
        body = b"".join(self._chunks)
        self._chunks = []
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result(Response(status, body, finished, self.written))

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class Http1Pool:
    """Up to `limit` keep-alive connections to the origin of `url`; its path is a prefix of every
    request's. Requests beyond the limit wait for a connection, first come first served.

    A request cancelled while in flight (a timeout) aborts its connection: the answer may still
    come, and nothing else may read it.
    """

    def __init__(
        self,
        url: str,
        *,
        limit: int = 64,
        headers: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self._prefix = parts.path.rstrip("/")
        self._header_lines = "".join(
            f"{name}: {value}\r\n"
            for name, value in {"Host": parts.netloc, **(headers or {})}.items()
        )
        self._limit = max(1, limit)
        self._opened = 0  # connections open or being opened
        self._idle: collections.deque[_Connection] = collections.deque()
        self._busy: set[_Connection] = set()
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._heads: dict[tuple[str, str, int], bytes] = {}

    def encode(self, method: str, path: str, body: bytes = b"") -> bytes:
        """The request as sent; the head is cached per method, path and body length, as a load
        test sends the same few requests many thousand times."""
        key = (method, path, len(body))
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= 4096:
                self._heads.clear()
            head = (
                f"{method} {self._prefix}{path} HTTP/1.1\r\n{self._header_lines}"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode("latin-1")
            self._heads[key] = head
        return head + body

    async def request(self, method: str, path: str, body: bytes = b"") -> Response:
        """Raises ConnectionError (or OSError) when no answer could be had."""
        data = self.encode(method, path, body)
        first_written: float | None = None
        for attempt in range(2):
            connection, reused = await self._acquire()
            try:
                response = await connection.send(data)
            except _Reopen as error:
                self._discard(connection)
                if reused and attempt == 0:
                    first_written = connection.written
                    continue
                raise ConnectionError(str(error)) from None
            except BaseException:
                connection.abort()
                self._discard(connection)
                raise
            if connection.keep_alive and not connection.closed:
                self._release(connection)
            else:
                connection.abort()
                self._discard(connection)
            if first_written is not None:
                response = replace(response, written=first_written)
            return response
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for connection in [*self._idle, *self._busy]:
            connection.abort()
        self._idle.clear()
        self._busy.clear()
        self._opened = 0
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the pool is closed"))
        self._waiters.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    async def _acquire(self) -> tuple[_Connection, bool]:
        while True:
            while self._idle:
                connection = self._idle.pop()  # the most recently used: least likely timed out
                if not connection.closed:
                    self._busy.add(connection)
                    return connection, True
                self._opened -= 1
            if self._opened < self._limit:
                self._opened += 1
                try:
                    connection = await self._connect()
                except BaseException:
                    self._opened -= 1
                    self._wake(None)
                    raise
                self._busy.add(connection)
                return connection, False
            waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Handed a connection (or a free slot) just as we were cancelled: pass it on.
                    given = waiter.result()
                    if given is None:
                        self._wake(None)
                    else:
                        self._release(given)
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if handed is not None and not handed.closed:
                self._busy.add(handed)
                return handed, True
            if handed is not None:
                self._opened -= 1

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(
            _Connection,
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl else None,
        )
        # uvloop may call connection_made a loop turn after create_connection returns.
        protocol.transport = _as_transport(transport)
        return protocol

    def _release(self, connection: _Connection) -> None:
        self._busy.discard(connection)
        if not self._wake(connection):
            self._idle.append(connection)

    def _discard(self, connection: _Connection) -> None:
        self._busy.discard(connection)
        self._opened -= 1
        self._wake(None)

    def _wake(self, connection: _Connection | None) -> bool:
        """Hand `connection` (or, when None, a free slot) to the longest waiter; False if none."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False


def _as_transport(transport: asyncio.BaseTransport) -> asyncio.Transport:
    # Typeshed's create_connection returns BaseTransport in some releases and Transport in
    # others, and uvloop's transports subclass neither at run time; a cast from the declared
    # base keeps mypy quiet under both without an isinstance check uvloop would fail.
    return cast(asyncio.Transport, transport)
