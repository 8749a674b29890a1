"""Golden-file checks for routers: render a `<case>.before.yaml`, compare with `<case>.after.yaml`.

Set POLICYENGINE_UPDATE_GOLDEN=1 to (re)write the `.after.yaml` files, then read their diffs.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from policyengine.documents import find_document, load_documents
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.values import TrafficSplit
from tests.support.crd_schemas import require_schemas, validate_manifest, weight_problems

GOLDEN = Path(__file__).parent
UPDATE_ENV = "POLICYENGINE_UPDATE_GOLDEN"
WEIGHT_LINE = r"^\s*(- )?(weight|canaryTrafficPercent): \d+\b"


@dataclass(frozen=True)
class GoldenCase:
    case: str
    split: TrafficSplit
    # every line the diff adds or removes must match this (weights only, by default)
    changed: str = WEIGHT_LINE
    changed_lines: int | None = None  # how many lines the diff removes plus adds, when pinned
    tags: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        return self.case


def changed_lines(before: str, after: str) -> list[str]:
    """The lines a unified diff removes or adds, with their +/- sign."""
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def check_golden(router_kind: str, policy: ReleasePolicy, case: GoldenCase) -> None:
    """Render the case; exact bytes, only the expected lines changed, valid, idempotent."""
    require_schemas()
    before_path = GOLDEN / router_kind / f"{case.case}.before.yaml"
    after_path = GOLDEN / router_kind / f"{case.case}.after.yaml"
    before = before_path.read_text(encoding="utf-8")
    router = router_for(router_kind)

    file = load_documents(before, str(before_path))
    assert file.round_trips_exactly(), "the before file itself must round-trip"
    document = find_document(file, router.kind)
    router.render(document, policy, case.split)
    after = file.dump()
    if os.environ.get(UPDATE_ENV) and not os.environ.get("CI"):
        after_path.write_text(after, encoding="utf-8")
    assert after == after_path.read_text(encoding="utf-8"), f"{after_path} differs"

    changes = changed_lines(before, after)
    unexpected = [line for line in changes if not re.match(case.changed, line[1:])]
    assert not unexpected, f"lines changed beyond the expected values: {unexpected}"
    if case.changed_lines is not None:
        assert len(changes) == case.changed_lines, changes

    reloaded = load_documents(after)
    rendered = find_document(reloaded, router.kind)
    assert router.read(rendered, policy) == case.split
    assert validate_manifest(rendered) == []
    assert weight_problems(rendered) == []
    router.render(rendered, policy, case.split)
    assert reloaded.dump() == after, "rendering the same split twice must change nothing"
