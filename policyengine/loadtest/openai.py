"""OpenAI-compatible completions with streaming (vLLM, TGI's and KServe's OpenAI routes), with
aiohttp: server-sent events, one `data: {json}` per chunk, ending in `data: [DONE]`.

The client stamps every chunk that carries text (the time to the first token, the gaps between
tokens) and counts output tokens from the final usage block when the server sends one
(`stream_options.include_usage`), else one per text chunk, as vLLM streams a token per chunk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp

from policyengine.loadtest.reply import CONNECTION, TIMEOUT, Reply

COMPLETIONS = "/v1/completions"
CHAT_COMPLETIONS = "/v1/chat/completions"


def _chunk_text(chunk: Mapping[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "text" in choice:
        return str(choice.get("text") or "")
    delta = choice.get("delta") or {}
    return str(delta.get("content") or "")


class OpenAIStreamClient:
    """Use as `async with OpenAIStreamClient(url, model) as client: await client.complete(body)`."""

    def __init__(
        self,
        base_url: str,
        model: str | None,
        *,
        path: str = COMPLETIONS,
        headers: Mapping[str, str] | None = None,
        connections: int = 64,
        timeout: float = 60.0,
        keep_body: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.path = path
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._connections = connections
        self._timeout = timeout
        self._keep_body = keep_body
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> OpenAIStreamClient:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections),
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
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
        if self._session is not None:
            await self._session.close()
            self._session = None

    def body(self, request: Mapping[str, Any]) -> bytes:
        """The request with streaming on, usage asked for and the model filled in."""
        merged: dict[str, Any] = dict(request)
        if self.model and "model" not in merged:
            merged["model"] = self.model
        merged["stream"] = True
        merged.setdefault("stream_options", {"include_usage": True})
        return json.dumps(merged).encode()

    async def complete(self, request: Mapping[str, Any] | bytes) -> Reply:
        if self._session is None:
            raise RuntimeError("use the client inside `async with`")
        body = request if isinstance(request, bytes) else self.body(request)
        stamps: list[float] = []
        usage: int | None = None
        text: list[str] = []
        try:
            async with self._session.post(self.base_url + self.path, data=body) as response:
                if response.status != 200:
                    payload = await response.read()
                    return Reply(
                        str(response.status), False, error=payload[:200].decode("utf-8", "replace")
                    )
                async for raw in response.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        break
                    chunk = json.loads(data)
                    piece = _chunk_text(chunk)
                    if piece:
                        stamps.append(time.perf_counter())
                        if self._keep_body:
                            text.append(piece)
                    counted = (chunk.get("usage") or {}).get("completion_tokens")
                    if counted is not None:
                        usage = int(counted)
        except TimeoutError:
            return Reply(TIMEOUT, False, error="no complete answer within the timeout")
        except aiohttp.ClientError as error:
            return Reply(CONNECTION, False, error=str(error) or type(error).__name__)
        except json.JSONDecodeError as error:
            return Reply("bad-stream", False, error=f"a chunk is not JSON: {error}")
        tokens = usage if usage is not None else len(stamps)
        return Reply(
            "200", True, "".join(text) if self._keep_body else None, None, tuple(stamps), tokens
        )
