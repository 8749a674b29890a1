"""The open loop: requests leave at their intended times whatever the server does; each latency
counts from the intended send time, so queueing behind a stalled server is measured, not hidden.

`run` drives any async call; `run_loadtest` wires a protocol's client, payloads and schedule.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from policyengine.loadtest.openai import COMPLETIONS, OpenAIStreamClient
from policyengine.loadtest.pacing import new_pacer
from policyengine.loadtest.payloads import PayloadError, from_metadata, openai_prompts, read_jsonl
from policyengine.loadtest.reply import CONNECTION, TIMEOUT, Reply
from policyengine.loadtest.result import (
    Distribution,
    LoadTestResult,
    buckets,
    new_histogram,
    record_seconds,
)
from policyengine.loadtest.schedule import Schedule
from policyengine.loadtest.v2grpc import V2GrpcClient
from policyengine.loadtest.v2rest import V2RestClient

Protocol = Literal["v2-rest", "v2-grpc", "openai"]
PROTOCOLS: tuple[str, ...] = ("v2-rest", "v2-grpc", "openai")
Call = Callable[[Any], Awaitable[Reply]]


@dataclass
class Progress:
    """Where a run stands, handed to the progress callback about twice a second."""

    elapsed: float
    total: float
    sent: int = 0
    done: int = 0
    errors: int = 0

    @property
    def in_flight(self) -> int:
        return self.sent - self.done


@dataclass
class _Tally:
    latency: Any = field(default_factory=new_histogram)
    service: Any = field(default_factory=new_histogram)
    ttft: Any = field(default_factory=new_histogram)
    itl: Any = field(default_factory=new_histogram)
    lag: Any = field(default_factory=new_histogram)
    statuses: dict[str, int] = field(default_factory=dict)
    ok: int = 0
    sent: int = 0
    tokens: int = 0
    first_intended: float | None = None
    first_done: float | None = None
    answered: int = 0
    last_done: float = 0.0
    first_sent: float | None = None
    last_sent: float = 0.0


async def run(
    call: Call,
    payloads: Sequence[Any],
    schedule: Schedule,
    *,
    protocol: str,
    target: str,
    model: str | None = None,
    timeout: float = 10.0,
    progress: Callable[[Progress], None] | None = None,
) -> LoadTestResult:
    """Send `payloads` round-robin on `schedule` through `call` and summarise what came back."""
    if not payloads:
        raise PayloadError("no payloads to send")
    loop = asyncio.get_running_loop()
    tally = _Tally()
    offsets = list(schedule.offsets())
    total = offsets[-1][0] if offsets else 0.0
    state = Progress(elapsed=0.0, total=total)
    bodies = itertools.cycle(payloads)
    tasks: set[asyncio.Task[None]] = set()
    pacer = new_pacer()

    async def one(body: Any, intended: float, measured: bool) -> None:
        sent = time.perf_counter()
        if measured:
            tally.sent += 1
            tally.first_sent = sent if tally.first_sent is None else tally.first_sent
            tally.last_sent = sent
        try:
            async with asyncio.timeout(timeout):
                reply = await call(body)
        except TimeoutError:
            reply = Reply(TIMEOUT, False, error="no answer within the timeout")
        # When the client saw the answer complete, if it can say: on a busy loop this task
        # resumes later than that, and the wait is the generator's, not the server's.
        done = reply.finished or time.perf_counter()
        # When the request reached the socket: the client's own time between being called and
        # writing (some 50-100 µs of Python) is the generator's. The pacer learns it and wakes that
        # much earlier, so the request *leaves* at its intended time.
        departed = reply.written if reply.written is not None else sent
        pacer.observe(departed - intended)
        if measured:
            record_seconds(tally.lag, max(0.0, departed - intended))
        state.done += 1
        if not reply.ok:
            state.errors += 1
        if not measured:
            return
        if reply.status not in (TIMEOUT, CONNECTION):  # an answer came, if only an error
            tally.answered += 1
            tally.last_done = max(tally.last_done, done)
            tally.first_done = done if tally.first_done is None else min(tally.first_done, done)
        if not reply.ok:
            tally.statuses[reply.status] = tally.statuses.get(reply.status, 0) + 1
            return
        tally.ok += 1
        # From the intended time, or from the actual departure when the request left early: never
        # from a moment after the request left.
        start = min(intended, departed)
        record_seconds(tally.latency, done - start)
        record_seconds(tally.service, done - departed)
        if reply.token_times:
            record_seconds(tally.ttft, reply.token_times[0] - start)
            for before, after in itertools.pairwise(reply.token_times):
                record_seconds(tally.itl, after - before)
        tally.tokens += reply.tokens

    reporter: asyncio.Task[None] | None = None
    # Intended times on the perf_counter clock; the loop's clock only paces the sleeps.
    start = time.perf_counter() + 0.02
    if progress is not None:

        async def report() -> None:
            while True:
                state.elapsed = max(0.0, time.perf_counter() - start)
                progress(state)
                await asyncio.sleep(0.5)

        reporter = loop.create_task(report())
    try:
        for offset, measured in offsets:
            due = start + offset
            await pacer.until(due)  # see pacing.py: asyncio.sleep would bunch the requests
            if measured and tally.first_intended is None:
                tally.first_intended = due
            state.sent += 1
            task = loop.create_task(one(next(bodies), due, measured))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
    finally:
        if reporter is not None:
            reporter.cancel()
            state.elapsed = max(0.0, time.perf_counter() - start)
            progress(state)  # type: ignore[misc]
        for task in tasks:
            task.cancel()
        pacer.close()
    return _summarise(tally, schedule, protocol, target, model)


def _summarise(
    tally: _Tally, schedule: Schedule, protocol: str, target: str, model: str | None
) -> LoadTestResult:
    span = schedule.measured_span
    completed = tally.answered  # timeouts and connection errors are not answers
    # Answers per second over the span in which they arrived (N answers, N-1 gaps from the first
    # to the last): a steady latency cancels out, a server that falls behind and never catches up
    # stretches the span. The sending rate likewise, from the actual send times.
    span_done = tally.last_done - tally.first_done if tally.first_done is not None else 0.0
    achieved = (completed - 1) / span_done if completed > 1 and span_done > 0 else 0.0
    elapsed = (
        tally.last_done - tally.first_intended
        if tally.first_intended is not None and tally.first_done is not None
        else 0.0
    )
    sending = tally.last_sent - tally.first_sent if tally.first_sent is not None else 0.0
    sent_rps = (tally.sent - 1) / sending if tally.sent > 1 and sending > 0 else 0.0
    ttft = Distribution.of(tally.ttft)
    return LoadTestResult(
        protocol=protocol,
        target=target,
        model=model,
        intended_rps=schedule.intended_rate(),
        start_rps=schedule.rate,
        end_rps=schedule.end_rate,
        duration_s=span,
        warmup_s=schedule.warmup,
        sent=tally.sent,
        ok=tally.ok,
        errors=dict(tally.statuses),
        sent_rps=sent_rps,
        achieved_rps=achieved,
        latency=Distribution.of(tally.latency),
        histogram=buckets(tally.latency),
        service_time=Distribution.of(tally.service),
        send_lag=Distribution.of(tally.lag),
        ttft=ttft,
        itl=Distribution.of(tally.itl),
        output_tokens=tally.tokens,
        output_tokens_per_s=(tally.tokens / elapsed if ttft is not None and elapsed > 0 else None),
    )


async def run_closed_loop(
    call: Call, payloads: Sequence[Any], *, connections: int, duration: float, timeout: float = 10.0
) -> Distribution | None:
    """What a closed-loop tool (wrk, Fortio, ghz) measures: `connections` workers each send the
    next request when the last answered, latency from the actual send. For comparison only: a
    stalled server delays the next sends, so the stall is seen by one request per worker."""
    histogram = new_histogram()
    deadline = time.perf_counter() + duration

    async def worker(offset: int) -> None:
        bodies = itertools.islice(itertools.cycle(payloads), offset, None)
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(timeout):
                    reply = await call(next(bodies))
            except TimeoutError:
                continue
            if reply.ok:
                record_seconds(histogram, time.perf_counter() - sent)

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return Distribution.of(histogram)


@dataclass(frozen=True)
class LoadTestConfig:
    """Everything one run needs; the CLI and the policy's performance gate both build one.

    `url`: http(s)://host:port for REST and OpenAI, host:port (or grpc://host:port) for gRPC.
    """

    url: str
    protocol: Protocol
    schedule: Schedule
    model: str | None = None
    version: str | None = None
    vmodel_id: str | None = None  # ModelMesh: the mm-vmodel-id header / metadata
    payloads: Path | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    connections: int = 64
    timeout: float = 10.0
    openai_path: str = COMPLETIONS
    max_tokens: int = 64


def _headers(config: LoadTestConfig) -> dict[str, str]:
    headers = dict(config.headers)
    if config.vmodel_id:
        headers["mm-vmodel-id"] = config.vmodel_id
    return headers


async def run_loadtest_async(
    config: LoadTestConfig, progress: Callable[[Progress], None] | None = None
) -> LoadTestResult:
    bodies = read_jsonl(config.payloads) if config.payloads is not None else None
    common: dict[str, Any] = {
        "schedule": config.schedule,
        "protocol": config.protocol,
        "target": config.url,
        "model": config.model,
        "timeout": config.timeout,
        "progress": progress,
    }
    if config.protocol == "openai":
        async with OpenAIStreamClient(
            config.url,
            config.model,
            path=config.openai_path,
            headers=_headers(config),
            connections=config.connections,
            timeout=config.timeout,
        ) as llm:
            encoded = [llm.body(b) for b in openai_prompts(bodies, config.max_tokens)]
            return await run(llm.complete, encoded, **common)
    if not config.model:
        raise PayloadError(f"{config.protocol} needs the model's name")
    if config.protocol == "v2-grpc":
        metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        async with V2GrpcClient(
            config.url,
            config.model,
            version=config.version,
            vmodel_id=config.vmodel_id,
            metadata=metadata,
            timeout=config.timeout,
        ) as grpc_client:
            requests = bodies or [from_metadata(await grpc_client.metadata())]
            try:
                messages = [grpc_client.request(body) for body in requests]
            except (ValueError, KeyError) as error:
                raise PayloadError(f"payloads: {error}") from error
            return await run(grpc_client.infer, messages, **common)
    async with V2RestClient(
        config.url,
        config.model,
        version=config.version,
        headers=_headers(config),
        connections=config.connections,
        timeout=config.timeout,
    ) as rest:
        requests = bodies or [from_metadata(await rest.metadata())]
        return await run(rest.infer, [json.dumps(body).encode() for body in requests], **common)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's (libuv) when installed: it spends about half of asyncio's CPU per request, and the
    generator's CPU time is inside the latency it measures; else the standard one."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run_loadtest(
    config: LoadTestConfig, progress: Callable[[Progress], None] | None = None
) -> LoadTestResult:
    """One load test, start to finish, on a fresh event loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(run_loadtest_async(config, progress))
