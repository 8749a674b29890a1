"""The controller's own metrics, served on /metrics in the Prometheus text format.

Each controller has its own registry (not the process-global one), so several controllers in one
process (the Lease test runs three) do not share counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from policyengine.reconciler import PassResult, PolicyPlan
from policyengine.strategies import Decision

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Pass durations from a few policies (tens of ms) to a large repository (a minute).
_PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def hold_category(plan: PolicyPlan) -> str:
    """A small, fixed set of label values for the free-text hold reasons (for `holds by reason`;
    a label per distinct sentence would grow without bound)."""
    outcome = plan.outcome
    reason = outcome.reason if outcome is not None else ""
    if plan.unreachable:
        return "unreachable"
    if reason.startswith("paused"):
        return "paused"
    if reason.startswith("the manifests say"):
        return "manual-edit"
    if "sample ratio" in reason or "sample-ratio" in reason:
        return "sample-ratio-mismatch"
    if "traffic not measured" in reason or "no data" in reason:
        return "no-data"
    if "waiting for a person" in reason:
        return "inconclusive"
    if "sync" in reason or "Argo CD" in reason:
        return "argocd-sync"
    if "pull request" in reason:
        return "pull-request"
    if " held " in reason:
        return "dwell"
    return "evidence"


class ControllerMetrics:
    """Counters and histograms of the passes, decisions, webhooks and leases."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.passes = Counter(
            "policyengine_passes", "Reconcile passes, by result.", ["result"], registry=r
        )
        self.pass_duration = Histogram(
            "policyengine_pass_duration_seconds",
            "Wall time of one pass: fetch, plan, commit and push.",
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "policyengine_decisions", "Decisions taken, by kind.", ["decision"], registry=r
        )
        self.holds = Counter(
            "policyengine_holds", "Hold decisions, by reason category.", ["reason"], registry=r
        )
        self.queries = Counter(
            "policyengine_prometheus_queries", "Queries sent to Prometheus.", registry=r
        )
        self.prometheus_errors = Counter(
            "policyengine_prometheus_errors",
            "Prometheus answers that were not data: unreachable, refused or unreadable.",
            registry=r,
        )
        self.pushes = Counter("policyengine_git_pushes", "git push commands run.", registry=r)
        self.commits = Counter(
            "policyengine_git_commits", "Engine commits that reached the remote.", registry=r
        )
        self.git_errors = Counter(
            "policyengine_git_errors", "Passes that failed on Git (fetch or push).", registry=r
        )
        self.fenced = Counter(
            "policyengine_fenced_pushes",
            "Pushes withheld because this replica no longer held the policies' shard.",
            registry=r,
        )
        self.webhooks = Counter(
            "policyengine_webhooks",
            "Forge webhook deliveries, by forge and result.",
            ["forge", "result"],
            registry=r,
        )
        self.notifications = Counter(
            "policyengine_notifications",
            "Notifications sent, by sink and result.",
            ["sink", "result"],
            registry=r,
        )
        self.shards_held = Gauge(
            "policyengine_shards_held", "Shard Leases this replica holds.", registry=r
        )
        self.last_pass = Gauge(
            "policyengine_last_pass_timestamp_seconds",
            "Unix time the last pass ended.",
            registry=r,
        )
        self._queries_seen = 0
        self._errors_seen = 0
        self._pushes_seen = 0

    def observe_pass(
        self,
        result: PassResult | None,
        seconds: float,
        ended_at: float,
        *,
        queries: int,
        provider_errors: int,
        pushes: int,
        failure: str | None = None,
    ) -> None:
        """Record one pass. `queries`, `provider_errors` and `pushes` are the engine's running
        totals; the counters move by the difference since the last pass."""
        self.pass_duration.observe(seconds)
        self.last_pass.set(ended_at)
        self.queries.inc(max(0, queries - self._queries_seen))
        self.prometheus_errors.inc(max(0, provider_errors - self._errors_seen))
        self.pushes.inc(max(0, pushes - self._pushes_seen))
        self._queries_seen, self._errors_seen, self._pushes_seen = queries, provider_errors, pushes
        if failure is not None:
            self.passes.labels(result=failure).inc()
            if failure == "git-error":
                self.git_errors.inc()
            return
        assert result is not None
        self.passes.labels(result="fenced" if result.fenced else "ok").inc()
        if result.fenced:
            self.fenced.inc()
        self.commits.inc(len(result.commits))
        for plan in result.plan.policies:
            if plan.outcome is None:
                continue
            self.decisions.labels(decision=str(plan.outcome.decision)).inc()
            if plan.outcome.decision is Decision.HOLD:
                self.holds.labels(reason=hold_category(plan)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
