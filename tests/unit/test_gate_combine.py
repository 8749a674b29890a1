"""Combining a policy's gates keeps every reason, including a gate that could not be read."""

from __future__ import annotations

from datetime import UTC, datetime

from policyengine.gates.policy_gate import OPEN_GATE, PolicyGate, combine

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_a_gate_that_could_not_be_read_keeps_its_error_when_combined() -> None:
    failed = PolicyGate(hold="holding: its gates could not be read", error="unexpected KeyError")
    combined = combine(PolicyGate(step_started_at=T0), failed)
    assert combined.error == "unexpected KeyError" and combined.hold == failed.hold
    assert combined.step_started_at == T0
    assert combine(failed, OPEN_GATE).error == "unexpected KeyError"
    assert combine(OPEN_GATE, OPEN_GATE).error is None
