"""Service-level objectives on a load test's result: `p99 <= 200ms`, `errorRate <= 0.01`,
`ttft.p95 <= 500ms`, `tokensPerSecond >= 20`. Parsing and assessment are pure.

Latency figures (p50 … p99.9, mean, max, with an optional `latency.`, `ttft.` or `itl.` prefix)
are in milliseconds; a bound may carry a unit (us, ms, s). Rates and ratios are plain numbers.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

_STAT = r"(?:p50|p90|p95|p99|p99\.9|mean|max)"
METRIC_PATTERN = (
    rf"(?:(?:latency|ttft|itl)\.)?{_STAT}|errorRate|achievedRate|rateError|tokensPerSecond"
)
SLO_PATTERN = (
    rf"^\s*(?P<metric>{METRIC_PATTERN})\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>us|µs|ms|s|%)?\s*$"
)
_OPS: Mapping[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_TO_MS = {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}
_LATENCY = re.compile(rf"^(?:(?:latency|ttft|itl)\.)?{_STAT}$")


@dataclass(frozen=True)
class Slo:
    metric: str
    op: str
    bound: float  # milliseconds for latencies, else the plain value
    text: str

    @classmethod
    def parse(cls, text: str) -> Slo:
        match = re.match(SLO_PATTERN, text)
        if match is None:
            raise ValueError(
                f"{text!r} is not an SLO: write METRIC OP VALUE, e.g. 'p99 <= 200ms', "
                "'errorRate <= 0.01', 'ttft.p95 <= 500ms', 'tokensPerSecond >= 20'"
            )
        metric, unit = match["metric"], match["unit"]
        value = float(match["value"])
        if _LATENCY.match(metric):
            if unit == "%":
                raise ValueError(f"{text!r}: a latency takes a time unit (us, ms, s), not %")
            value *= _TO_MS[unit or "ms"]
        elif unit == "%":
            value /= 100
        elif unit is not None:
            raise ValueError(f"{text!r}: {metric} is not a time; give a plain number or a %")
        return cls(metric, match["op"], value, text.strip())


@dataclass(frozen=True)
class SloCheck:
    slo: Slo
    value: float | None  # None: the run did not measure it (no successful request, no tokens)
    passed: bool

    def describe(self) -> str:
        unit = " ms" if _LATENCY.match(self.slo.metric) else ""
        if self.value is None:
            return f"{self.slo.text}: not measured (no data) — failed"
        verdict = "met" if self.passed else "MISSED"
        return f"{self.slo.text}: {self.value:.4g}{unit} — {verdict}"


def parse_all(texts: Iterable[str]) -> tuple[Slo, ...]:
    return tuple(Slo.parse(text) for text in texts)


def assess(metrics: Mapping[str, float], slos: Sequence[Slo]) -> tuple[SloCheck, ...]:
    """Each SLO against the result's figures (LoadTestResult.metrics()); unmeasured fails."""
    checks = []
    for slo in slos:
        value = metrics.get(slo.metric)
        passed = value is not None and _OPS[slo.op](value, slo.bound)
        checks.append(SloCheck(slo, value, passed))
    return tuple(checks)


def checks_markdown(checks: Sequence[SloCheck]) -> str:
    lines = ["| SLO | measured | verdict |", "|---|---|---|"]
    for check in checks:
        unit = " ms" if _LATENCY.match(check.slo.metric) else ""
        value = "–" if check.value is None else f"{check.value:.4g}{unit}"
        lines.append(f"| `{check.slo.text}` | {value} | {'met' if check.passed else 'missed'} |")
    return "\n".join(lines) + "\n"
