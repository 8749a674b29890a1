"""Today's Open Data Hub end to end, on the simulated fleet and the real Prometheus: the fleet
serves by the weights in Git and remote-writes the runtimes' real metric names (OVMS, vLLM, both
TrustyAI services), and the engine reconciles once a minute (Engine.reconcile_once, what
`policyengine reconcile` runs each pass).

- examples/kserve-standard-canary: a healthy v2 in spec.canary[] is promoted; the manifest then
  has v2 as spec.predictor and no canary entry.
- examples/llm-canary: v2 behind its own InferencePool, with first tokens 3x later, is rolled
  back on the TTFT objective.
- A drift objective rolls back on the Python TrustyAI service when the statistic rises above its
  bound (max), and on the Java service when the p-value falls below its bound (min).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from ruamel.yaml import YAML

from policyengine.demo.scenario import LLM_EXAMPLE, LLM_EXAMPLE_POLICY, DemoRelease
from policyengine.documents import load_documents
from policyengine.sim.exposition import Exposition
from policyengine.sim.fleet import VersionProfile
from policyengine.strategies import Phase
from tests.integration.test_e2e_fleet import Run, release, start_run

__all__ = ["start_run"]  # the fixture, imported for its name

pytestmark = pytest.mark.prometheus


def test_a_kserve_standard_canary_is_promoted_into_spec_predictor(
    start_run: Callable[..., Run],
) -> None:
    good = DemoRelease(
        folder="fraud-scorer",
        namespace="payments",
        name="fraud-scorer",
        baseline=VersionProfile(
            "v1", "isvc.fraud-scorer-predictor", error_rate=0.004, latency_p99_ms=80.0
        ),
        candidate=VersionProfile(
            "v2", "isvc.fraud-scorer-v2-predictor", error_rate=0.004, latency_p99_ms=80.0
        ),
        expected="promote",
        story="v2 is as good as v1",
        example="kserve-standard-canary",
        example_policy="payments/fraud-scorer",
    )
    run = start_run((good,), (Exposition.OVMS,))
    assert run.until_concluded((good.key,)) == {good.key: Phase.SUCCEEDED}
    history = [(e.decision, e.weights) for e in run.history(good.key)]
    assert [d for d, _ in history] == ["advance"] * 4 + ["promote"]
    assert history[-1] == ("promote", "v1=0,v2=100")
    text = (run.repository.checkout / "fraud-scorer/manifests/inferenceservice.yaml").read_text()
    [service] = load_documents(text).documents
    assert service["spec"]["predictor"]["name"] == "v2"
    assert service["spec"]["predictor"]["model"]["storageUri"].endswith("/fraud-scorer/v2")
    assert "canary" not in service["spec"]
    # the fleet follows Git: the promoted predictor takes everything
    assert run.loop.serve_minute().splits[good.key].as_dict() == {"v1": 0, "v2": 100}


def test_an_llm_canary_with_slow_first_tokens_is_rolled_back(
    start_run: Callable[..., Run],
) -> None:
    slow = DemoRelease(
        folder="support-chat",
        namespace="llm-serving",
        name="support-chat",
        baseline=VersionProfile(
            "v1", "support-chat-v1", error_rate=0.004, latency_p50_ms=250, latency_p99_ms=1200
        ),
        candidate=VersionProfile(
            "v2", "support-chat-v2", error_rate=0.004, latency_p50_ms=750, latency_p99_ms=3600
        ),
        expected="rollback",
        story="v2's first tokens come 3x later",
        example=LLM_EXAMPLE,
        example_policy=LLM_EXAMPLE_POLICY,
        rps=40.0,
    )
    run = start_run((slow,), (Exposition.VLLM,))
    assert run.until_concluded((slow.key,)) == {slow.key: Phase.FAILED}
    final = run.history(slow.key)[-1]
    assert (final.decision, final.weights) == ("rollback", "v1=100,v2=0")
    assert final.reason.startswith("objective failed: slow-first-token on v2"), final.reason
    assert "error-rate" not in final.reason
    text = (run.repository.checkout / "support-chat/manifests/httproute.yaml").read_text()
    weights = [
        ref["weight"]
        for ref in load_documents(text).documents[0]["spec"]["rules"][0]["backendRefs"]
    ]
    assert weights == [100, 0]


def drift_objective(metric_set: str, objective: dict[str, object]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        yaml = YAML(typ="rt")
        document = yaml.load(text)
        document["spec"]["objectives"] = [objective]
        document["spec"]["metrics"]["set"] = metric_set
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        return buffer.getvalue()

    return edit


def test_a_drift_statistic_above_its_bound_rolls_back_on_the_python_service(
    start_run: Callable[..., Run],
) -> None:
    drifting = release("merchant-risk", "rollback", drift_statistic=0.35)
    run = start_run(
        (drifting,),
        (Exposition.MODELMESH, Exposition.TRUSTYAI_PY),
        drift_objective("trustyai-py", {"metric": "kstest", "max": 0.2}),
    )
    assert run.until_concluded((drifting.key,)) == {drifting.key: Phase.FAILED}
    final = run.history(drifting.key)[-1]
    assert (final.decision, final.weights) == ("rollback", "v1=100,v2=0")
    assert final.reason.startswith("objective failed: kstest on v2 fail"), final.reason


def test_a_drift_p_value_below_its_bound_rolls_back_on_the_java_service(
    start_run: Callable[..., Run],
) -> None:
    drifting = release("card-fraud", "rollback", drift_p_value=0.01)
    run = start_run(
        (drifting,),
        (Exposition.MODELMESH, Exposition.TRUSTYAI),
        drift_objective("trustyai", {"metric": "meanshift", "min": 0.05}),
    )
    assert run.until_concluded((drifting.key,)) == {drifting.key: Phase.FAILED}
    final = run.history(drifting.key)[-1]
    assert (final.decision, final.weights) == ("rollback", "v1=100,v2=0")
    assert final.reason.startswith("objective failed: meanshift on v2 fail"), final.reason
