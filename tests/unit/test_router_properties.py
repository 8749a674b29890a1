"""Property-based tests (hypothesis) of every router: render → read round-trips the split exactly,
and a render never changes a byte outside the weight values.

The manifests are the golden `canary-step.before.yaml` of each router, decorated by hypothesis
with comments at the ends of lines and on lines of their own (people annotate manifests; the
engine must leave their notes where they are). Splits are any whole-percent weights over the
policy's versions, with a mirror (a percentage in hundredths) where the router supports one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyengine.documents import find_document, load_documents
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.values import TrafficSplit
from tests.unit import (
    test_router_gatewayapi,
    test_router_istio,
    test_router_kserve,
    test_router_kserve_canary,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
# A weight value and only the value: what a render may change when no mirror is involved.
WEIGHT_VALUE = re.compile(
    r"^(\s*(?:- )?(?:weight|canaryTrafficPercent|trafficPercent): )\d+ *", re.MULTILINE
)
PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,  # one loaded core: the bound is the example count, not per-example time
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure reproduces, never flickers
)


@dataclass(frozen=True)
class RouterCase:
    router: str
    policy: ReleasePolicy
    mirrors: bool  # whether the router can write a mirror
    # kserve-canary: a candidate at 100 % is a promotion, which moves the canary's predictor
    # into spec.predictor (more than weights change, by design); the property covers 0-99
    most_to_candidate: int = 100

    @property
    def manifest(self) -> str:
        return (GOLDEN / self.router / "canary-step.before.yaml").read_text(encoding="utf-8")


CASES = [
    RouterCase("istio-modelmesh", test_router_istio.MODELMESH, mirrors=False),
    RouterCase("istio", test_router_istio.PLAIN, mirrors=True),
    RouterCase("gatewayapi", test_router_gatewayapi.POLICY, mirrors=True),
    RouterCase("kserve", test_router_kserve.POLICY, mirrors=False),
    RouterCase("kserve-canary", test_router_kserve_canary.POLICY, False, most_to_candidate=99),
]


def masked(text: str) -> str:
    # the spaces after a value go with it: the engine keeps a trailing comment in its column
    return WEIGHT_VALUE.sub(r"\1N ", text)


@st.composite
def splits(draw: st.DrawFn, case: RouterCase, mirror: bool) -> TrafficSplit:
    names = [version.name for version in case.policy.spec.versions]
    baseline = draw(st.integers(100 - case.most_to_candidate, 100))
    weights = {names[0]: baseline, names[1]: 100 - baseline}
    if not (mirror and case.mirrors):
        return TrafficSplit.of(weights)
    percent = draw(st.integers(1, 10000)) / 100  # hundredths: what the manifests can say
    return TrafficSplit.of(weights, names[1], percent)


@st.composite
def annotated(draw: st.DrawFn, text: str) -> str:
    """The manifest with comments appended to some lines and comment lines put between some."""
    lines = text.splitlines(keepends=True)
    words = st.text(st.sampled_from("abc xyz-:#0123456789ü"), max_size=12)
    out = []
    for index, line in enumerate(lines):
        if index and draw(st.integers(0, 7)) == 0:
            out.append(f"# {draw(words)}\n".replace(" \n", "\n"))
        if line.strip() and line.rstrip() != "---" and draw(st.integers(0, 3)) == 0:
            line = f"{line.rstrip(chr(10))}  # {draw(words)}\n"
        out.append(line)
    return "".join(out)


def rendered(case: RouterCase, text: str, split: TrafficSplit) -> str:
    file = load_documents(text)
    router = router_for(case.router)
    router.render(find_document(file, router.kind), case.policy, split)
    return file.dump()


def read(case: RouterCase, text: str) -> TrafficSplit:
    router = router_for(case.router)
    return router.read(find_document(load_documents(text), router.kind), case.policy)


def _round_trip(case: RouterCase, data: st.DataObject) -> None:
    text = data.draw(annotated(case.manifest), label="manifest")
    split = data.draw(splits(case, mirror=True), label="split")
    after = rendered(case, text, split)
    assert read(case, after) == split
    # idempotent: the same split again changes nothing
    assert rendered(case, after, split) == after


def _weights_only(case: RouterCase, data: st.DataObject) -> None:
    text = data.draw(annotated(case.manifest), label="manifest")
    original = read(case, text)
    split = data.draw(splits(case, mirror=False), label="split")
    after = rendered(case, text, split)
    assert masked(after) == masked(text), "a byte outside the weight values changed"
    assert read(case, after) == split
    # and back: the original split again, still nothing but weight values changed. (Not always
    # the very bytes: `weight: 0  # c` -> `weight: 100 # c` pushes the comment one column, and
    # it stays there when the value shrinks back, as the engine keeps a comment's column.)
    back = rendered(case, after, original)
    assert masked(back) == masked(text)
    assert read(case, back) == original


@PROPERTY_SETTINGS
@given(data=st.data())
def test_istio_modelmesh_round_trips_and_touches_only_weights(data: st.DataObject) -> None:
    _round_trip(CASES[0], data)
    _weights_only(CASES[0], data)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_istio_round_trips_and_touches_only_weights(data: st.DataObject) -> None:
    _round_trip(CASES[1], data)
    _weights_only(CASES[1], data)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_gatewayapi_round_trips_and_touches_only_weights(data: st.DataObject) -> None:
    _round_trip(CASES[2], data)
    _weights_only(CASES[2], data)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_kserve_round_trips_and_touches_only_weights(data: st.DataObject) -> None:
    _round_trip(CASES[3], data)
    _weights_only(CASES[3], data)


@PROPERTY_SETTINGS
@given(data=st.data())
def test_kserve_canary_round_trips_and_touches_only_weights(data: st.DataObject) -> None:
    _round_trip(CASES[4], data)
    _weights_only(CASES[4], data)


def test_every_router_has_a_property_case() -> None:
    """A router added to the registry without a case here fails (h12/h13 add routers)."""
    from policyengine.routers import _ROUTERS

    missing = set(_ROUTERS) - {case.router for case in CASES}
    assert not missing, f"add a RouterCase for {sorted(missing)} in {Path(__file__).name}"
