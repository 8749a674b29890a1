"""A small OpenAI-compatible streaming completions server on loopback, for the LLM path of the
load generator (no model weights can be downloaded here, so no real vLLM).

`POST /v1/completions` and `/v1/chat/completions` with `stream: true` answer server-sent events:
the first token after `ttft` seconds, then one token every `itl` seconds, `max_tokens` tokens,
a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`.
Run as `python -m tests.support.openai_server PORT TTFT ITL`; it runs until terminated.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from aiohttp import web

from tests.support.ports import free_port


def make_app(ttft: float, itl: float) -> web.Application:
    async def complete(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body.get("model") not in (None, "tiny"):
            return web.json_response({"error": {"message": "model not found"}}, status=404)
        chat = request.path.endswith("/chat/completions")
        tokens = int(body.get("max_tokens", 16))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(ttft)
        for i in range(tokens):
            if i:
                await asyncio.sleep(itl)
            piece = f" t{i}"
            choice = (
                {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
            )
            chunk = {"id": "cmpl-1", "model": "tiny", "choices": [choice]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5}
            chunk = {"id": "cmpl-1", "model": "tiny", "choices": [], "usage": usage}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/completions", complete)
    app.router.add_post("/v1/chat/completions", complete)
    app.router.add_get("/health", health)
    return app


@contextmanager
def running_openai_server(ttft: float = 0.05, itl: float = 0.01) -> Iterator[str]:
    """The server in a child process (its own CPU, not the generator's); yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_server", str(port), str(ttft), str(itl)],
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the OpenAI-compatible test server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


if __name__ == "__main__":
    port, ttft, itl = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    web.run_app(make_app(ttft, itl), host="127.0.0.1", port=port, print=None, access_log=None)
