"""The reconcile loop: a pass every interval, or at once when a webhook asks, until stopped.

`policyengine reconcile --interval` and `policyengine run` both run this loop; `run` adds the
HTTP server (metrics, health, webhooks), shard Leases and notifications around it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from policyengine.controller.metrics import ControllerMetrics
from policyengine.errors import GitError, PolicyEngineError, ProviderUnavailableError
from policyengine.reconciler import Engine, PassResult, PassScope

log = logging.getLogger("policyengine.controller")


class ScopeSource(Protocol):
    """Where a sharded replica gets the policies it may reconcile (the shard Leases)."""

    def begin_pass(self) -> PassScope | None:
        """The scope of the pass about to start; None: nothing is held, skip the pass."""

    def end_pass(self) -> None:
        """The pass ended: shards it used may be released again."""

    def participating(self) -> bool:
        """The replica takes part: its last round with the Lease API succeeded recently."""


class PassListener(Protocol):
    def on_pass(self, result: PassResult, now: datetime) -> None: ...


@dataclass
class LoopState:
    """What /healthz and /readyz report."""

    started: float
    passes: int = 0
    last_pass_ended: float | None = None
    last_error: str | None = None
    in_pass_since: float | None = None
    stopping: bool = False
    standby: bool = False  # sharded, holding no shard: nothing to reconcile, ready to take over


class Controller:
    """Runs `Engine.reconcile_once` pass after pass; thread-safe `trigger` and `stop`."""

    def __init__(
        self,
        engine: Engine,
        interval: float,
        *,
        metrics: ControllerMetrics | None = None,
        scopes: ScopeSource | None = None,
        listeners: tuple[PassListener, ...] = (),
        report: Callable[[PassResult], None] | None = None,
        report_error: Callable[[str], None] | None = None,
        jitter: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.metrics = metrics or ControllerMetrics()
        self._scopes = scopes
        self._listeners = listeners
        self._report = report
        self._report_error = report_error
        self._jitter = jitter
        self._clock = clock
        self._wall = wall  # the instant each pass evaluates at (the engine reads no other clock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.state = LoopState(started=clock())

    # -- control, from any thread ----------------------------------------------------------

    def trigger(self, why: str) -> None:
        """Start a pass now (or right after the running one: a push seen mid-pass is not lost)."""
        log.info("pass requested: %s", why)
        self._wake.set()

    def stop(self) -> None:
        """The running pass finishes (its push included); then the loop ends."""
        self.state.stopping = True
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            self.run_pass()
            if self._stopping.is_set():
                break
            # Jitter spreads replicas and avoids lockstep with Argo CD's own polling.
            self._wake.wait(self.interval * random.uniform(1 - self._jitter, 1 + self._jitter))

    def run_pass(self) -> PassResult | None:
        """One pass with its bookkeeping; errors of Git or Prometheus are reported, not raised
        (the next tick retries)."""
        scope: PassScope | None = None
        if self._scopes is not None:
            scope = self._scopes.begin_pass()
            if scope is None:
                self._scopes.end_pass()
                self.state.standby = True
                log.info("no shard held: skipping the pass")
                return None
            self.state.standby = False
        started = self._clock()
        self.state.in_pass_since = started
        result: PassResult | None = None
        failure: str | None = None
        message = ""
        try:
            result = self.engine.reconcile_once(self._wall(), scope)
        except GitError as error:
            failure, message = "git-error", str(error)
        except ProviderUnavailableError as error:
            failure, message = "prometheus-error", str(error)
        except PolicyEngineError as error:
            failure, message = "error", str(error)
        except Exception as error:
            # Policies fail one by one inside the pass; this is what is left (a library's
            # surprise outside any policy). The loop must outlive it: say what, then go on.
            log.exception("the pass failed unexpectedly")
            failure = "error"
            message = f"the pass failed: {type(error).__name__}: {str(error)[:500]}"
        finally:
            if self._scopes is not None:
                self._scopes.end_pass()
        ended = self._clock()
        self.state.in_pass_since = None
        self.metrics.observe_pass(
            result,
            ended - started,
            time.time(),
            queries=self.engine.queries_sent,
            provider_errors=self.engine.provider_errors,
            pushes=self.engine.pushes,
            failure=failure,
        )
        if result is None:
            self.state.last_error = message
            log.error("pass failed: %s", message)
            if self._report_error is not None:
                self._report_error(message)
            return None
        self.state.passes += 1
        self.state.last_pass_ended = ended
        self.state.last_error = None
        if self._report is not None:
            self._report(result)
        now = self._wall()
        for listener in self._listeners:
            try:
                listener.on_pass(result, now)
            except Exception:  # a notifier's bug must not stop the loop
                log.exception("pass listener %r failed", listener)
        return result

    # -- health ----------------------------------------------------------------------------

    def healthy(self, stuck_after: float) -> tuple[bool, str]:
        """Alive unless a pass has run for longer than `stuck_after` seconds (hung on I/O)."""
        since = self.state.in_pass_since
        if since is not None and self._clock() - since > stuck_after:
            return False, f"a pass has been running for {self._clock() - since:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready once a pass has completed (or, sharded, once it takes part in the Leases while
        holding no shard: a standby must be ready, or a rolling update would wait for it while
        the old pod keeps the Lease), and until the process is asked to stop."""
        if self.state.stopping:
            return False, "stopping"
        if self._scopes is not None and not self._scopes.participating():
            return False, "not taking part in the shard Leases (the Lease API is unreachable)"
        if self.state.passes == 0 and not self.state.standby:
            return False, self.state.last_error or "the first pass has not completed yet"
        return True, "ok" if not self.state.standby else "ok (standby: no shard held)"
