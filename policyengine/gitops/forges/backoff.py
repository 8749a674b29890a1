"""Bounded backoff for forge API calls: which failures are worth retrying, and for how long to wait.

`retry_delay` is pure (the time is passed in); `Backoff.call` runs an operation with it through
tenacity, sleeping through an injectable `sleep` so tests never wait.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from policyengine.errors import ForgeError, ForgeUnreachableError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class HttpFailure:
    """What a failed forge call looked like on the wire; status None means no answer at all."""

    status: int | None
    headers: Mapping[str, str]
    message: str

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.message})"
        return f"HTTP {self.status}: {self.message}" if self.message else f"HTTP {self.status}"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts in all, the first backoff, and the longest wait accepted."""

    max_attempts: int = 5
    first_delay: float = 1.0
    max_delay: float = 60.0


DEFAULT_RETRY = RetryPolicy()


def _seconds_header(failure: HttpFailure, name: str, now: float) -> float | None:
    """Retry-After in seconds or as an HTTP date (RFC 9110), as seconds from now."""
    value = failure.header(name)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _reset_header(failure: HttpFailure, now: float) -> float | None:
    """GitHub's X-RateLimit-Reset and GitLab's RateLimit-Reset: UTC epoch seconds."""
    for name in ("X-RateLimit-Reset", "RateLimit-Reset"):
        value = failure.header(name)
        if value is not None:
            try:
                return max(0.0, float(value) - now)
            except ValueError:
                return None
    return None


def _rate_limited(failure: HttpFailure) -> bool:
    if failure.status == 429:
        return True
    if failure.status != 403:
        return False
    # A plain 403 is a missing permission; GitHub signals its limits with these headers or words.
    remaining = failure.header("X-RateLimit-Remaining") or failure.header("RateLimit-Remaining")
    return (
        failure.header("Retry-After") is not None
        or remaining == "0"
        or "rate limit" in failure.message.lower()
    )


def retry_delay(
    failure: HttpFailure, attempt: int, policy: RetryPolicy, now: float
) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None when the failure is not transient."""
    exponential = policy.first_delay * 2 ** (attempt - 1)
    if _rate_limited(failure):
        asked = _seconds_header(failure, "Retry-After", now)
        if asked is None:
            remaining = failure.header("X-RateLimit-Remaining") or failure.header(
                "RateLimit-Remaining"
            )
            asked = _reset_header(failure, now) if remaining == "0" else None
        # GitHub: a secondary limit without headers asks for at least a minute.
        return asked if asked is not None else max(exponential, 60.0)
    if failure.status is None or failure.status >= 500:
        asked = _seconds_header(failure, "Retry-After", now)
        return asked if asked is not None else exponential
    return None


@dataclass(frozen=True)
class Backoff:
    """Runs forge calls, retrying transient failures within a RetryPolicy (with tenacity)."""

    classify: Callable[[Exception], HttpFailure | None]
    policy: RetryPolicy = DEFAULT_RETRY
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = field(default=time.time)

    def call(self, what: str, operation: Callable[[], T]) -> T:
        # The delay each failed attempt asks for, worked out once (the clock is read once).
        delays: dict[int, float | None] = {}

        def transient(state: tenacity.RetryCallState) -> bool:
            error = state.outcome.exception() if state.outcome is not None else None
            failure = self.classify(error) if isinstance(error, Exception) else None
            if failure is None:
                return False
            delay = retry_delay(failure, state.attempt_number, self.policy, self.clock())
            delays[state.attempt_number] = delay
            return delay is not None and delay <= self.policy.max_delay

        def announce(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            failure = self.classify(error) if isinstance(error, Exception) else None
            log.warning(
                "forge: %s failed (%s); retrying in %.1fs (attempt %d of %d)",
                what,
                failure.describe() if failure else error,
                delays[state.attempt_number] or 0.0,
                state.attempt_number + 1,
                self.policy.max_attempts,
            )

        retrying = tenacity.Retrying(
            retry=transient,
            wait=lambda state: delays[state.attempt_number] or 0.0,
            stop=tenacity.stop_after_attempt(self.policy.max_attempts),
            sleep=self.sleep,
            before_sleep=announce,
            reraise=True,  # the operation's own exception, not tenacity's RetryError
        )
        try:
            return retrying(operation)
        except Exception as exc:
            failure = self.classify(exc)
            if failure is None:
                raise
            attempt = max(delays, default=1)
            delay = delays.get(attempt)
            if delay is None:
                raise ForgeError(f"{what} failed: {failure.describe()}") from exc
            # A transient failure that outlasts the retries is an outage (exit 3), not a refusal
            # of what the engine asked (exit 1).
            if delay > self.policy.max_delay:
                raise ForgeUnreachableError(
                    f"{what} failed: rate limited for {delay:.0f}s more, longer than the "
                    f"{self.policy.max_delay:.0f}s the engine waits ({failure.describe()})"
                ) from exc
            raise ForgeUnreachableError(
                f"{what} failed after {attempt} attempts: {failure.describe()}"
            ) from exc
