"""The performance gate as the reconciler's shell runs it: decide whether a policy's load test is
due, run it against the candidate's own endpoint, and hand the result to the pure verdict.

Due: before the first traffic step of a release (its status at step -1, or no status yet for this
release); with `at: everyStep`, also once at each later step. A result is kept in memory for the
step it was measured for, so a pass that could not push does not load the endpoint again; after a
restart a step's test runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from policyengine.errors import InvalidPolicyError
from policyengine.gates.policy_gate import PolicyGate
from policyengine.loadtest.result import LoadTestResult
from policyengine.loadtest.runner import LoadTestConfig, run_loadtest
from policyengine.loadtest.schedule import Schedule
from policyengine.loadtest.verdict import performance_gate, unreachable_gate
from policyengine.policy.duration import parse_duration
from policyengine.policy.models import ReleasePolicy
from policyengine.policy.performance import PerformanceGate
from policyengine.strategies.release import release_id
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Phase

log = logging.getLogger(__name__)

Runner = Callable[[LoadTestConfig], LoadTestResult]


def due_step(policy: ReleasePolicy, recorded: ReleaseStatus | None) -> int | None:
    """The step a load test is due for, or None. -1: before the candidate's first traffic."""
    spec = policy.spec.performance
    if spec is None or policy.spec.paused:
        return None
    identity = release_id(policy)
    if recorded is None or recorded.release_id != identity:
        return -1  # a new release: the next decision may send it traffic
    if recorded.phase is not Phase.PROGRESSING:
        return None
    if recorded.step < 0:
        return -1
    return recorded.step if spec.at == "everyStep" else None


def config_of(spec: PerformanceGate, repo_root: Path) -> LoadTestConfig:
    payloads = None
    if spec.payloads is not None:
        payloads = (repo_root / spec.payloads).resolve()
        if not payloads.is_relative_to(repo_root.resolve()):
            raise InvalidPolicyError(
                f"performance.payloads {spec.payloads!r} leaves the repository"
            )
    return LoadTestConfig(
        url=spec.endpoint,
        protocol=spec.protocol,
        schedule=Schedule(
            rate=spec.rate,
            end_rate=spec.end_rate,
            duration=parse_duration(spec.duration).total_seconds(),
            requests=spec.requests,
            warmup=parse_duration(spec.warmup).total_seconds(),
        ),
        model=spec.model,
        version=spec.model_version,
        vmodel_id=spec.vmodel_id,
        payloads=payloads,
        timeout=parse_duration(spec.timeout).total_seconds(),
        openai_path=spec.openai_path,
        max_tokens=spec.max_tokens,
    )


class PerformanceGates:
    def __init__(self, runner: Runner | None = None) -> None:
        self._run = runner or (lambda config: run_loadtest(config))
        self._measured: dict[tuple[str, str, int, str], PolicyGate] = {}

    def gate(
        self, policy: ReleasePolicy, recorded: ReleaseStatus | None, repo_root: Path
    ) -> PolicyGate | None:
        spec = policy.spec.performance
        step = due_step(policy, recorded)
        if spec is None or step is None:
            return None
        identity = release_id(policy)
        key = (policy.key, identity, step, spec.model_dump_json())
        if key in self._measured:
            return self._measured[key]
        log.info(
            "%s: load-testing %s %s",
            policy.key,
            spec.endpoint,
            "before traffic" if step < 0 else f"at step {step + 1}",
        )
        try:
            result = self._run(config_of(spec, repo_root))
        except InvalidPolicyError as error:  # payloads that cannot be read or made up
            return PolicyGate(
                hold=f"holding: performance gate: {error}", release_id=identity, step=step
            )
        except (LookupError, OSError) as error:  # metadata unreachable, connection refused
            return unreachable_gate(spec, str(error), identity, step)
        if result.sent and result.ok == 0 and set(result.errors) <= {"connection"}:
            return unreachable_gate(spec, "no connection could be made", identity, step)
        gate = performance_gate(spec, result, identity, step)
        self._measured[key] = gate
        return gate
