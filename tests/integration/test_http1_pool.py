"""The load generator's HTTP/1.1 pool (`policyengine/loadtest/http1.py`) against a small HTTP/1.1
server written for these tests on 127.0.0.1 (asyncio streams), which can misbehave on request:
close kept-alive connections, answer chunked, answer late, answer garbage. The pool's real client
code talks to it over real sockets. (MLServer, the real V2 server, is in test_loadtest_mlserver.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from policyengine.loadtest.http1 import Http1Pool
from policyengine.loadtest.reply import CONNECTION, TIMEOUT
from policyengine.loadtest.v2rest import V2RestClient


@dataclass
class Seen:
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


async def _serve_one(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen
) -> None:
    seen.connections += 1
    seen.open_now += 1
    seen.most_open = max(seen.most_open, seen.open_now)
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            method, path, _ = line.decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (header := await reader.readline()) not in (b"\r\n", b""):
                name, value = header.decode().split(":", 1)
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            seen.requests.append((method, path, headers, body))
            if path.endswith("/garbage"):
                writer.write(b"this is not HTTP\r\n\r\n")
                await writer.drain()
                return
            if "/slow" in path:
                await asyncio.sleep(0.5)
            if path.endswith("/chunked"):
                writer.write(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                )
            else:
                answer = f"{method} {path} #{len(seen.requests)}".encode()
                close = path.endswith("/close")
                status = b"404 Not Found" if path.endswith("/missing") else b"200 OK"
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Length: "
                    + str(len(answer)).encode()
                    + (b"\r\nConnection: close" if close else b"")
                    + b"\r\n\r\n"
                    + answer
                )
                if close:
                    await writer.drain()
                    return
            await writer.drain()
            if path.endswith("/then-drop"):  # keep-alive promised, then dropped while idle
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        seen.open_now -= 1
        writer.close()


@asynccontextmanager
async def http_server() -> AsyncIterator[tuple[str, Seen]]:
    seen = Seen()
    server = await asyncio.start_server(
        lambda r, w: _serve_one(r, w, seen), host="127.0.0.1", port=0
    )
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


def test_sequential_requests_share_one_kept_alive_connection() -> None:
    async def go() -> None:
        async with http_server() as (url, seen):
            pool = Http1Pool(url, limit=4)
            for i in range(50):
                response = await pool.request("POST", "/v2/models/m/infer", b"{}")
                assert response.status == 200
                assert response.body == f"POST /v2/models/m/infer #{i + 1}".encode()
            await pool.close()
            assert seen.connections == 1

    asyncio.run(go())


def test_concurrent_requests_beyond_the_limit_wait_for_a_connection() -> None:
    async def go() -> None:
        async with http_server() as (url, seen):
            pool = Http1Pool(url, limit=3)
            answers = await asyncio.gather(*(pool.request("GET", f"/r{i}") for i in range(40)))
            await pool.close()
            assert [a.status for a in answers] == [200] * 40
            assert seen.most_open <= 3
            assert sorted(path for _, path, _, _ in seen.requests) == sorted(
                f"/r{i}" for i in range(40)
            )

    asyncio.run(go())


def test_a_chunked_answer_is_put_together() -> None:
    async def go() -> None:
        async with http_server() as (url, _):
            pool = Http1Pool(url)
            response = await pool.request("GET", "/chunked")
            again = await pool.request("GET", "/after")  # the connection is still usable
            await pool.close()
            assert (response.status, response.body) == (200, b"hello world")
            assert again.status == 200

    asyncio.run(go())


def test_an_idle_connection_the_server_dropped_is_reopened_without_an_error() -> None:
    async def go() -> None:
        async with http_server() as (url, seen):
            pool = Http1Pool(url, limit=1)
            assert (await pool.request("GET", "/then-drop")).status == 200
            await asyncio.sleep(0.05)  # the server has closed it by now
            response = await pool.request("GET", "/next")
            await pool.close()
            assert response.status == 200
            assert seen.connections == 2

    asyncio.run(go())


def test_connection_close_is_honoured_and_the_next_request_opens_a_new_one() -> None:
    async def go() -> None:
        async with http_server() as (url, seen):
            pool = Http1Pool(url, limit=1)
            assert (await pool.request("GET", "/close")).status == 200
            assert (await pool.request("GET", "/next")).status == 200
            await pool.close()
            assert seen.connections == 2

    asyncio.run(go())


def test_a_request_cancelled_in_flight_aborts_its_connection_and_frees_the_slot() -> None:
    async def go() -> None:
        async with http_server() as (url, seen):
            pool = Http1Pool(url, limit=1)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await pool.request("GET", "/slow")
            # The slow answer must not be read as this one's: a fresh connection serves it.
            response = await pool.request("GET", "/after")
            await pool.close()
            assert response.body.startswith(b"GET /after")
            assert seen.connections == 2

    asyncio.run(go())


def test_garbage_and_refused_connections_raise_connection_errors_and_free_the_slot() -> None:
    async def go() -> None:
        async with http_server() as (url, _):
            pool = Http1Pool(url, limit=1)
            with pytest.raises(ConnectionError):
                await pool.request("GET", "/garbage")
            assert (await pool.request("GET", "/fine")).status == 200
            await pool.close()
        refused = Http1Pool(url, limit=1)  # the server is gone
        for _ in range(3):  # each failure gives its slot back, or the third would wait forever
            with pytest.raises(OSError):
                async with asyncio.timeout(5):
                    await refused.request("GET", "/x")
        await refused.close()

    asyncio.run(go())


def test_the_url_path_prefixes_every_request_with_the_headers_and_the_time_it_finished() -> None:
    async def go() -> None:
        async with http_server() as (url, seen):
            pool = Http1Pool(f"{url}/gateway/", headers={"X-Tenant": "fraud"})
            before = time.perf_counter()
            response = await pool.request("POST", "/v2/models/m/infer", b'{"a": 1}')
            after = time.perf_counter()
            await pool.close()
            method, path, headers, body = seen.requests[0]
            assert (method, path, body) == ("POST", "/gateway/v2/models/m/infer", b'{"a": 1}')
            assert headers["x-tenant"] == "fraud"
            assert headers["host"] == url.removeprefix("http://")
            assert before < response.written < response.finished <= after
            assert pool.encode("GET", "/a", b"1") == pool.encode("GET", "/a", b"1")  # cached head

    asyncio.run(go())


def test_the_v2_client_maps_statuses_timeouts_and_refusals_to_replies() -> None:
    async def go() -> None:
        async with http_server() as (url, _):
            async with V2RestClient(url, "m", timeout=0.2) as client:
                ok = await client.infer({"inputs": []})
                assert (ok.status, ok.ok, ok.finished is not None) == ("200", True, True)
            async with V2RestClient(url, "missing", timeout=0.2) as client:
                # `/v2/models/missing/infer` does not end in /missing: ask for the metadata
                with pytest.raises(LookupError, match="HTTP 404"):
                    await client.metadata()
            async with V2RestClient(url, "slow", timeout=0.2) as client:
                timed_out = await client.infer(b"{}")
                assert timed_out.status == TIMEOUT and not timed_out.ok
        async with V2RestClient(url, "m", timeout=0.5) as client:  # the server is gone
            refused = await client.infer(b"{}")
            assert refused.status == CONNECTION and not refused.ok
            assert not await client.ready()

    asyncio.run(go())
