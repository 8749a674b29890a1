"""What a load test measured, and how it is told: recording into HDR histograms, the summary (a
plain JSON-able value), Markdown and text. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0),
    ("p90", 90.0),
    ("p95", 95.0),
    ("p99", 99.0),
    ("p99.9", 99.9),
)
# Latencies are recorded in microseconds from 1 µs to 10 minutes at 3 significant digits (0.1 %).
_LOWEST_US = 1
_HIGHEST_US = 600_000_000
_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, _DIGITS)


def record_seconds(histogram: HdrHistogram, seconds: float) -> None:
    """Record a duration; values outside the range are clamped to it, never dropped."""
    micros = round(seconds * 1e6)
    histogram.record_value(min(max(micros, _LOWEST_US), _HIGHEST_US))


@dataclass(frozen=True)
class Distribution:
    """Percentiles of one quantity, in its unit (milliseconds for latencies)."""

    count: int
    mean: float
    max: float
    percentiles: Mapping[str, float]

    @classmethod
    def of(cls, histogram: HdrHistogram, scale: float = 1e-3) -> Distribution | None:
        """From a histogram of microseconds; `scale` turns a recorded value into the unit."""
        count = int(histogram.get_total_count())
        if count == 0:
            return None
        return cls(
            count=count,
            mean=float(histogram.get_mean_value()) * scale,
            max=float(histogram.get_max_value()) * scale,
            percentiles={
                name: float(histogram.get_value_at_percentile(p)) * scale for name, p in PERCENTILES
            },
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean": round(self.mean, 3),
            "max": round(self.max, 3),
            **{name: round(value, 3) for name, value in self.percentiles.items()},
        }


@dataclass(frozen=True)
class Bucket:
    """Requests whose latency fell in (previous upper bound, upper_ms]."""

    upper_ms: float
    count: int


def buckets(histogram: HdrHistogram) -> tuple[Bucket, ...]:
    """Logarithmic buckets (doubling from 0.1 ms) up to the largest recorded value: the chart."""
    if histogram.get_total_count() == 0:
        return ()
    return tuple(
        Bucket(item.value_iterated_to / 1e3, int(item.count_added_in_this_iter_step))
        for item in histogram.get_log_iterator(100, 2)
    )


@dataclass(frozen=True)
class LoadTestResult:
    """One run, summarised. `latency` covers successful requests, from their intended send time."""

    protocol: str
    target: str
    model: str | None
    intended_rps: float  # the mean rate the schedule meant (a ramp's mean)
    start_rps: float
    end_rps: float | None  # a ramp's final rate; None: a constant rate
    duration_s: float  # the measured span the schedule intended
    warmup_s: float
    sent: int  # measured requests sent
    ok: int
    errors: Mapping[str, int]  # by status: HTTP code, gRPC status name, timeout, connection
    sent_rps: float  # measured requests sent per second of the sending span
    achieved_rps: float  # responses completed within the measured span, per second
    latency: Distribution | None
    histogram: tuple[Bucket, ...] = ()
    service_time: Distribution | None = None  # from the actual send: what a closed loop sees
    send_lag: Distribution | None = None  # how late the generator sent, after the intended time
    ttft: Distribution | None = None  # streaming: time to the first token
    itl: Distribution | None = None  # streaming: gaps between tokens
    output_tokens: int = 0
    output_tokens_per_s: float | None = None  # all output tokens per second of the measured span
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return self.error_count / self.sent if self.sent else 0.0

    @property
    def rate_error(self) -> float:
        """Relative shortfall (or excess) of the achieved rate against the intended one."""
        return (self.achieved_rps - self.intended_rps) / self.intended_rps

    def to_json(self) -> dict[str, Any]:
        def dist(value: Distribution | None) -> dict[str, Any] | None:
            return value.to_json() if value is not None else None

        return {
            "protocol": self.protocol,
            "target": self.target,
            "model": self.model,
            "intended_rps": self.intended_rps,
            "start_rps": self.start_rps,
            "end_rps": self.end_rps,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "sent": self.sent,
            "ok": self.ok,
            "errors": dict(sorted(self.errors.items())),
            "error_rate": round(self.error_rate, 6),
            "sent_rps": round(self.sent_rps, 3),
            "achieved_rps": round(self.achieved_rps, 3),
            "rate_error": round(self.rate_error, 6),
            "latency_ms": dist(self.latency),
            "service_time_ms": dist(self.service_time),
            "send_lag_ms": dist(self.send_lag),
            "ttft_ms": dist(self.ttft),
            "itl_ms": dist(self.itl),
            "output_tokens": self.output_tokens,
            "output_tokens_per_s": (
                round(self.output_tokens_per_s, 3) if self.output_tokens_per_s is not None else None
            ),
            "histogram_ms": [[b.upper_ms, b.count] for b in self.histogram],
            "notes": list(self.notes),
        }

    def metrics(self) -> dict[str, float]:
        """Every figure an SLO may name: p99, errorRate, ttft.p95, itl.p50, tokensPerSecond, ..."""
        values: dict[str, float] = {
            "errorRate": self.error_rate,
            "achievedRate": self.achieved_rps,
            "rateError": abs(self.rate_error),
        }
        for prefix, dist in (
            ("", self.latency),
            ("latency.", self.latency),
            ("ttft.", self.ttft),
            ("itl.", self.itl),
        ):
            if dist is None:
                continue
            values[f"{prefix}mean"] = dist.mean
            values[f"{prefix}max"] = dist.max
            for name, value in dist.percentiles.items():
                values[f"{prefix}{name}"] = value
        if self.output_tokens_per_s is not None:
            values["tokensPerSecond"] = self.output_tokens_per_s
        return values


def count_errors(statuses: Sequence[str]) -> dict[str, int]:
    return dict(Counter(statuses))


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} ms"


def summary_line(result: LoadTestResult) -> str:
    """One line: rate, latency percentiles, errors (status files, commit subjects)."""
    latency = result.latency
    parts = [
        f"{result.achieved_rps:.1f}/{result.intended_rps:g} req/s",
        f"p50 {_ms(latency.percentiles['p50'] if latency else None)}",
        f"p99 {_ms(latency.percentiles['p99'] if latency else None)}",
        f"errors {result.error_count}/{result.sent}",
    ]
    if result.ttft is not None:
        parts.append(f"ttft p95 {_ms(result.ttft.percentiles['p95'])}")
    return ", ".join(parts)


def render_markdown(result: LoadTestResult) -> str:
    """The report as Markdown: what ran, rate, latency table, errors by status."""
    rate = (
        f"{result.intended_rps:g} req/s"
        if result.end_rps is None
        else f"a ramp from {result.start_rps:g} to {result.end_rps:g} req/s"
    )
    lines = [
        f"**Load test** of `{result.target}` ({result.protocol}"
        + (f", model `{result.model}`" if result.model else "")
        + f") at {rate} for {result.duration_s:g} s after {result.warmup_s:g} s of warm-up (open loop)",
        "",
        "| | value |",
        "|---|---|",
        f"| requests sent | {result.sent} |",
        f"| intended rate (mean) | {result.intended_rps:g} req/s |",
        f"| achieved rate | {result.achieved_rps:.1f} req/s ({result.rate_error:+.2%}) |",
        f"| errors | {result.error_count} ({result.error_rate:.2%}) |",
    ]
    if result.output_tokens_per_s is not None:
        lines.append(f"| output tokens/s | {result.output_tokens_per_s:.1f} |")
    lines += ["", _distribution_table(result)]
    if result.errors:
        lines += ["", "| status | requests |", "|---|---|"]
        lines += [f"| {status} | {count} |" for status, count in sorted(result.errors.items())]
    if result.notes:
        lines += ["", *(f"_{note}_" for note in result.notes)]
    return "\n".join(lines).rstrip() + "\n"


def _distribution_table(result: LoadTestResult) -> str:
    names = [name for name, _ in PERCENTILES]
    rows = [
        ("latency (from intended send)", result.latency),
        ("service time (from actual send)", result.service_time),
        ("send lag (generator, behind schedule)", result.send_lag),
        ("time to first token", result.ttft),
        ("inter-token latency", result.itl),
    ]
    header = "| ms | " + " | ".join(names) + " | max |"
    lines = [header, "|---" * (len(names) + 2) + "|"]
    for label, dist in rows:
        if dist is None:
            continue
        cells = [f"{dist.percentiles[n]:.2f}" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {dist.max:.2f} |")
    if len(lines) == 2:
        lines.append("| no successful request | " + " | ".join("–" for _ in names) + " | – |")
    return "\n".join(lines)
