"""When each request is meant to leave: offsets in seconds from the start of a run. Pure."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """A constant rate, or a linear ramp from `rate` to `end_rate` over the measured `duration`.

    The warm-up runs first at the starting rate and is not measured. `requests` bounds the
    measured requests (None: the duration alone bounds the run); `duration` None: the count alone.
    """

    rate: float
    duration: float | None = None
    requests: int | None = None
    warmup: float = 0.0
    end_rate: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or (self.end_rate is not None and self.end_rate <= 0):
            raise ValueError("the rate must be positive")
        if self.duration is None and self.requests is None:
            raise ValueError("bound the run by a duration, a request count or both")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("the duration must be positive")
        if self.requests is not None and self.requests <= 0:
            raise ValueError("the request count must be positive")
        if self.warmup < 0:
            raise ValueError("the warm-up must not be negative")
        if self.end_rate is not None and self.duration is None:
            raise ValueError("a ramp needs a duration")

    @property
    def measured_span(self) -> float:
        """Seconds of the measured phase: the duration, or the time the count takes at the rate."""
        if self.duration is not None:
            span = self.duration
            if self.requests is not None and self.end_rate is None:
                span = min(span, self.requests / self.rate)
            return span
        assert self.requests is not None
        return self.requests / self.rate

    def intended_rate(self) -> float:
        """The mean rate the measured phase is meant to reach."""
        if self.end_rate is None:
            return self.rate
        return (self.rate + self.end_rate) / 2

    def offsets(self) -> Iterator[tuple[float, bool]]:
        """(seconds from the start, measured?) of every request, in order."""
        period = 1.0 / self.rate
        warmups = math.floor(self.warmup * self.rate + 1e-9)
        for i in range(warmups):
            yield i * period, False
        start = self.warmup
        if self.end_rate is None:
            limit = self.requests
            if self.duration is not None:
                in_time = math.ceil(self.duration * self.rate - 1e-9)
                limit = in_time if limit is None else min(limit, in_time)
            assert limit is not None
            for i in range(limit):
                yield start + i * period, True
            return
        # Linear ramp r(t) = r0 + (r1 - r0) t / T: the i-th request leaves when the integral of
        # the rate reaches i, the root of a quadratic.
        assert self.duration is not None
        r0, r1, span = self.rate, self.end_rate, self.duration
        slope = (r1 - r0) / span
        i = 0
        while self.requests is None or i < self.requests:
            if abs(slope) < 1e-12:
                t = i / r0
            else:
                t = (-r0 + math.sqrt(max(r0 * r0 + 2 * slope * i, 0.0))) / slope
            if t >= span - 1e-9:
                return
            yield start + t, True
            i += 1
