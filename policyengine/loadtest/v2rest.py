"""KServe V2 / Open Inference Protocol over REST: `POST /v2/models/{m}/infer`,
`GET /v2/models/{m}` (metadata) and `GET /v2/models/{m}/ready`.

On `http1.Http1Pool` (httptools on asyncio protocols), not aiohttp: the generator's own CPU time
per request lands in the latency it measures (docs/performance.md, "The generator's own time").
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

from policyengine.loadtest.http1 import Http1Pool, Response
from policyengine.loadtest.reply import CONNECTION, TIMEOUT, Reply


def model_path(model: str, version: str | None) -> str:
    path = f"/v2/models/{quote(model, safe='')}"
    if version:
        path += f"/versions/{quote(version, safe='')}"
    return path


class V2RestClient:
    """Use as `async with V2RestClient(url, model) as client: await client.infer(request)`.

    `base_url` may carry a path (a gateway's prefix), which goes before `/v2/...`.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        version: str | None = None,
        headers: Mapping[str, str] | None = None,
        connections: int = 64,
        timeout: float = 10.0,
        keep_body: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.version = version
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._connections = connections
        self._timeout = timeout
        self._keep_body = keep_body
        self._ssl_context = ssl_context
        self._pool: Http1Pool | None = None
        self._path = model_path(model, version)

    @property
    def infer_url(self) -> str:
        return f"{self.base_url}{self._path}/infer"

    async def __aenter__(self) -> V2RestClient:
        self._pool = Http1Pool(
            self.base_url,
            limit=self._connections,
            headers=self._headers,
            ssl_context=self._ssl_context,
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _open(self) -> Http1Pool:
        if self._pool is None:
            raise RuntimeError("use the client inside `async with`")
        return self._pool

    async def _get(self, path: str) -> Response:
        async with asyncio.timeout(self._timeout):
            return await self._open().request("GET", path)

    async def metadata(self) -> dict[str, Any]:
        """The model's metadata (name, platform, inputs and outputs with datatype and shape)."""
        url = f"{self.base_url}{self._path}"
        try:
            response = await self._get(self._path)
        except (TimeoutError, OSError) as error:
            raise LookupError(f"GET {url}: {error or type(error).__name__}") from error
        text = response.body.decode("utf-8", "replace")
        if response.status != 200:
            raise LookupError(f"GET {url}: HTTP {response.status}: {text[:200]}")
        answer: dict[str, Any] = json.loads(text)
        return answer

    async def ready(self) -> bool:
        try:
            response = await self._get(f"{self._path}/ready")
        except (TimeoutError, OSError):
            return False
        return response.status == 200

    async def infer(self, request: Mapping[str, Any] | bytes) -> Reply:
        """One inference; `request` is the V2 JSON body, or it already encoded.

        A connection error is retried (twice at most): servers (uvicorn under MLServer among them)
        close a keep-alive connection after an unhandled error without saying so, and the next
        request on it meets a reset before the server read it.
        """
        body = request if isinstance(request, bytes) else json.dumps(request).encode()
        reply = await self._post(body)
        for _ in range(2):
            if reply.status != CONNECTION:
                break
            reply = await self._post(body)
        return reply

    async def _post(self, body: bytes) -> Reply:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._open().request("POST", f"{self._path}/infer", body)
        except TimeoutError:
            return Reply(TIMEOUT, False, error="no answer within the timeout")
        except OSError as error:  # ConnectionError and refused or unreachable hosts
            return Reply(CONNECTION, False, error=str(error) or type(error).__name__)
        ok = response.status == 200
        decoded = json.loads(response.body) if self._keep_body and response.body else None
        error_text = None if ok else response.body[:200].decode("utf-8", "replace")
        return Reply(
            str(response.status),
            ok,
            decoded,
            error_text,
            finished=response.finished,
            written=response.written,
        )
