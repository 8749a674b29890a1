"""A stand-in for Prometheus when the binary is missing: the simulator's own counters behind the
few Prometheus HTTP API calls the engine makes. It is NOT Prometheus and is announced as such.

It understands only the PromQL shapes of the built-in metric sets — `AGG by (labels) (increase(
selector[window]))`, `AGG by (labels) (selector)`, a bare selector and `vector(1)` — and answers
anything else with Prometheus' own "bad_data" error, so a query it cannot evaluate never passes
for no data.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from policyengine.sim.exposition import Sample

LabelSet = tuple[tuple[str, str], ...]
LOOKBACK_SECONDS = 300.0  # Prometheus' default lookback for instant selectors

_AGGREGATION = re.compile(r"^(sum|min|max|avg)\s+by\s*\(([^)]*)\)\s*\((.*)\)$", re.DOTALL)
_INCREASE = re.compile(r"^increase\s*\((.*)\[(\d+)([smhd])\]\s*\)$", re.DOTALL)
_SELECTOR = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?$", re.DOTALL)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
_VECTOR = re.compile(r"^vector\s*\(\s*([0-9.eE+-]+)\s*\)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}


class UnsupportedQuery(ValueError):
    """PromQL outside the few shapes this backend evaluates."""


@dataclass(frozen=True)
class Matcher:
    label: str
    operator: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.operator == "=":
            return actual == self.value
        if self.operator == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.operator == "=~" else not found


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return labels.get("__name__") == self.name and all(m.matches(labels) for m in self.matchers)


@dataclass(frozen=True)
class ParsedQuery:
    selector: Selector | None  # None: vector(constant)
    window_seconds: float | None = None  # increase() over this window; None: the value itself
    aggregation: str | None = None
    by: tuple[str, ...] = ()
    constant: float = 0.0


def parse_query(promql: str) -> ParsedQuery:
    text = promql.strip()
    constant = _VECTOR.match(text)
    if constant:
        return ParsedQuery(None, constant=float(constant.group(1)))
    aggregation: str | None = None
    by: tuple[str, ...] = ()
    outer = _AGGREGATION.match(text)
    if outer:
        aggregation = outer.group(1)
        by = tuple(label.strip() for label in outer.group(2).split(",") if label.strip())
        text = outer.group(3).strip()
    window = None
    inner = _INCREASE.match(text)
    if inner:
        window = float(inner.group(2)) * _UNIT_SECONDS[inner.group(3)]
        text = inner.group(1).strip()
    return ParsedQuery(_parse_selector(text), window, aggregation, by)


def _parse_selector(text: str) -> Selector:
    found = _SELECTOR.match(text)
    if not found:
        raise UnsupportedQuery(f"the embedded metrics backend cannot evaluate {text!r}")
    body = found.group(2) or ""
    matchers: list[Matcher] = []
    position = 0
    while position < len(body.rstrip()):
        matched = _MATCHER.match(body, position)
        if not matched:
            raise UnsupportedQuery(f"cannot read the label matchers {body!r}")
        matchers.append(Matcher(matched.group(1), matched.group(2), _unquote(matched.group(3))))
        position = matched.end()
    return Selector(found.group(1), tuple(matchers))


def _unquote(content: str) -> str:
    out: list[str] = []
    chars = iter(content)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        escaped = next(chars, "")
        if escaped == "x":
            out.append(chr(int(next(chars, "0") + next(chars, "0"), 16)))
        else:
            out.append(_ESCAPES.get(escaped, "\\" + escaped))
    return "".join(out)


class SampleStore:
    """Every series the fleet exposed, with its samples in time order (seconds since the epoch)."""

    def __init__(self) -> None:
        self._series: dict[LabelSet, list[tuple[float, float]]] = {}
        self._lock = threading.Lock()

    def record(self, samples: Iterable[Sample], at: float) -> None:
        with self._lock:
            for sample in samples:
                key: LabelSet = (("__name__", sample.name), *sample.labels)
                self._series.setdefault(key, []).append((at, sample.value))

    def evaluate(self, query: ParsedQuery, times: Sequence[float]) -> list[dict[str, Any]]:
        """Prometheus' `result` list: one entry per output series, values at `times`."""
        if query.selector is None:
            return [{"metric": {}, "values": [[t, _number(query.constant)] for t in times]}]
        with self._lock:
            chosen = [
                (dict(labels), points)
                for labels, points in self._series.items()
                if query.selector.matches(dict(labels))
            ]
        output: dict[LabelSet, list[list[Any]]] = defaultdict(list)
        for at in times:
            groups: dict[LabelSet, list[float]] = defaultdict(list)
            for labels, points in chosen:
                value = _value_at(points, at, query.window_seconds)
                if value is None:
                    continue
                groups[_output_labels(labels, query)].append(value)
            for key, values in groups.items():
                output[key].append([at, _number(_aggregate(query.aggregation, values))])
        return [{"metric": dict(key), "values": values} for key, values in sorted(output.items())]


def _value_at(
    points: Sequence[tuple[float, float]], at: float, window: float | None
) -> float | None:
    if window is None:
        recent = [value for t, value in points if at - LOOKBACK_SECONDS < t <= at]
        return recent[-1] if recent else None
    # Samples sit exactly on interval ends and counters never reset, so the difference of the
    # window's first and last samples is exactly Prometheus' increase() without extrapolation.
    inside = [value for t, value in points if at - window <= t <= at]
    return inside[-1] - inside[0] if len(inside) >= 2 else None


def _output_labels(labels: Mapping[str, str], query: ParsedQuery) -> LabelSet:
    if query.aggregation is not None:
        return tuple((name, labels[name]) for name in query.by if name in labels)
    if query.window_seconds is not None:  # functions drop the metric name
        return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
    return tuple(sorted(labels.items()))


def _aggregate(aggregation: str | None, values: Sequence[float]) -> float:
    if aggregation is None or aggregation == "sum":
        return math.fsum(values)
    if aggregation == "min":
        return min(values)
    if aggregation == "max":
        return max(values)
    return math.fsum(values) / len(values)


def _number(value: float) -> str:
    return repr(float(value))


class EmbeddedMetricsServer:
    """The store behind /api/v1/query and /api/v1/query_range on 127.0.0.1 and a free port."""

    def __init__(self, store: SampleStore) -> None:
        self.store = store
        handler = type("Handler", (_Handler,), {"answer": staticmethod(self._answer)})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def _answer(self, path: str, params: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            query = parse_query(params.get("query", ""))
            if path == "/api/v1/query":
                at = float(params.get("time", "0"))
                result = self.store.evaluate(query, [at])
                vector = [{"metric": r["metric"], "value": r["values"][-1]} for r in result]
                return 200, _success("vector", vector)
            start, end = float(params["start"]), float(params["end"])
            step = _seconds(params["step"])
            count = math.floor((end - start) / step + 1e-9) + 1
            times = [start + i * step for i in range(max(0, count))]
            return 200, _success("matrix", self.store.evaluate(query, times))
        except (UnsupportedQuery, KeyError, ValueError, re.error) as error:
            return 400, {"status": "error", "errorType": "bad_data", "error": str(error)}


def _seconds(text: str) -> float:
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if not found:
        raise ValueError(f"bad step {text!r}")
    return float(found.group(1)) * _UNIT_SECONDS.get(found.group(2) or "s", 1)


def _success(kind: str, result: list[dict[str, Any]]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": kind, "result": result}}


class _Handler(BaseHTTPRequestHandler):
    answer: ClassVar[Callable[[str, Mapping[str, str]], tuple[int, dict[str, Any]]]]
    routes = ("/api/v1/query", "/api/v1/query_range")

    def do_GET(self) -> None:
        self._respond(parse_qs(urlsplit(self.path).query))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8"))
        query = parse_qs(urlsplit(self.path).query)
        self._respond({**query, **form})

    def _respond(self, raw: Mapping[str, list[str]]) -> None:
        path = urlsplit(self.path).path
        if path == "/-/ready":
            self._send(200, b"ready\n", "text/plain")
            return
        if path not in self.routes:
            self._send(404, b"not found\n", "text/plain")
            return
        status, body = type(self).answer(path, {k: v[-1] for k, v in raw.items()})
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the demo prints progress
        return
