"""Round-trip manifest I/O: untouched files dump byte for byte; edits change only their lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from policyengine.documents import Indentation, detect_indentation, find_document, load_documents
from policyengine.errors import RenderError
from tests.golden.harness import changed_lines

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_YAML = sorted((REPO / "examples").rglob("*.yaml"))

STYLES = {
    "kubectl": "apiVersion: v1\nkind: A\nspec:\n  containers:\n  - name: a\n    image: x\n",
    "indented-sequences": "spec:\n  items:\n    - name: a  # eol\n      value: 'quoted'\n",
    "four-spaces": 'spec:\n    items:\n        - name: a\n          v: "double"\n',
    "leading-separator": "---\n# about a\na: 1\n---\n# about b\nb: [1, 2]\n",
    "comment-before-first-separator": "# header\n---\na: 1\n",
    "trailing-separator": "a: 1\n---\n",
    "blank-lines-and-trailing-comments": "a: 1\n\n\nb:\n  c: 2\n\n# tail\n\n",
    "no-final-newline": "a: 1\nb: [1, 2]",
    "crlf": "a: 1\r\nb:\r\n  - x\r\n",
    "flow-and-block-scalars": "a: {b: 1, c: [x, y]}\nd: |\n  line 1\n  line 2\ne: >-\n  folded\n",
    "document-end-marker": "a: 1\n...\n---\nb: 2\n",
    "mixed-indentation": "spec:\n  a:\n  - x\n  b:\n    - y\n  w: 1\n",
    "long-line": "image: "
    + "x" * 300
    + "\nquery: sum(rate(a[5m])) by (le) / ignoring(x) group_left sum(b)\n",
    "unicode": "description: Modèle de détection — v2 ✓\n",
}


@pytest.mark.parametrize("path", EXAMPLE_YAML, ids=lambda p: str(p.relative_to(REPO)))
def test_every_example_round_trips_byte_for_byte(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    file = load_documents(text, str(path))
    assert file.dump() == text
    assert file.round_trips_exactly(), "ruamel must re-create it, so an edit touches one line"


@pytest.mark.parametrize("text", STYLES.values(), ids=list(STYLES))
def test_untouched_files_dump_identically(text: str) -> None:
    assert load_documents(text).dump() == text
    assert not load_documents(text).is_modified()


@pytest.mark.parametrize(
    ("text", "edit", "expected"),
    [
        (STYLES["kubectl"], ("spec", "containers", 0, "image"), "    image: y\n"),
        (STYLES["indented-sequences"], ("spec", "items", 0, "value"), "      value: 'y'\n"),
        (STYLES["four-spaces"], ("spec", "items", 0, "v"), '          v: "y"\n'),
        # ruamel cannot write both sequence styles of this document; the merge keeps them
        (STYLES["mixed-indentation"], ("spec", "w"), "  w: y\n"),
        (STYLES["no-final-newline"], ("a",), "a: y\n"),
    ],
)
def test_an_edit_changes_only_its_line(
    text: str, edit: tuple[str | int, ...], expected: str
) -> None:
    file = load_documents(text)
    node = file.documents[0]
    for key in edit[:-1]:
        node = node[key]
    original = node[edit[-1]]
    node[edit[-1]] = type(original)("y") if isinstance(original, str) else "y"
    after = file.dump()
    changes = changed_lines(text, after)
    assert len(changes) == 2, changes
    assert changes[1] == "+" + expected.rstrip("\n")
    assert after.endswith("\n") == text.endswith("\n")


def test_crlf_files_keep_crlf_after_an_edit() -> None:
    file = load_documents(STYLES["crlf"])
    file.documents[0]["a"] = 2
    assert file.dump() == "a: 2\r\nb:\r\n  - x\r\n"


def test_editing_one_document_leaves_the_others_byte_for_byte() -> None:
    text = "# first\na:   1   # odd spacing kept\n---\nb: 1\n---\nc: 'x'\n"
    file = load_documents(text)
    file.documents[1]["b"] = 2
    assert file.dump() == text.replace("b: 1", "b: 2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (STYLES["kubectl"], Indentation(mapping=2, sequence=2, offset=0)),
        (STYLES["indented-sequences"], Indentation(mapping=2, sequence=4, offset=2)),
        (STYLES["four-spaces"], Indentation(mapping=4, sequence=6, offset=4)),
        ("a:\n    b:\n        -   c: 1\n", Indentation(mapping=4, sequence=8, offset=4)),
        ("a: 1\n", Indentation(mapping=2, sequence=2, offset=0)),
    ],
)
def test_detect_indentation(text: str, expected: Indentation) -> None:
    assert detect_indentation(text) == expected


MULTI = """\
apiVersion: v1
kind: Service
metadata: {name: model-v1}
---
apiVersion: v1
kind: Service
metadata: {name: model-v2}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: model}
"""


@pytest.mark.parametrize(
    ("kind", "name", "found"),
    [
        ("VirtualService", None, "model"),
        ("Service", "model-v2", "model-v2"),
        (None, "model-v1", "model-v1"),
    ],
)
def test_find_document(kind: str | None, name: str | None, found: str) -> None:
    file = load_documents(MULTI, "manifests/all.yaml")
    assert find_document(file, kind, name)["metadata"]["name"] == found


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("Service", None, "manifests/all.yaml: 2 documents match Service"),
        ("HTTPRoute", None, "manifests/all.yaml: no HTTPRoute (the file holds: Service model-v1"),
        ("Service", "model-v3", "no Service named 'model-v3'"),
    ],
)
def test_find_document_refuses_to_guess(kind: str, name: str | None, message: str) -> None:
    with pytest.raises(RenderError) as raised:
        find_document(load_documents(MULTI, "manifests/all.yaml"), kind, name)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\n---\nb: [1, 2\n", "bad.yaml:4: not valid YAML"),
        ("a: 1\na: 2\n", "bad.yaml:2: not valid YAML"),
        ("a: 1\n--- {b: 2}\n", "not supported"),
    ],
)
def test_invalid_yaml_is_a_render_error_with_the_line(text: str, message: str) -> None:
    with pytest.raises(RenderError) as raised:
        load_documents(text, "bad.yaml")
    assert message in str(raised.value)
