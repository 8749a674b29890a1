"""A fuzz run of `policyengine validate` on mutated policies: never a traceback, bounded time and
memory.

Hypothesis mutates the shipped example policies two ways: as text (characters that mean something
to YAML inserted, deleted or replaced anywhere) and as data (a value somewhere replaced by another
type, a huge or non-finite number, a long string, deep nesting; a key dropped or added). Whatever
comes out, `validate` must exit 0 or 1 with its report, never raise, within a time and memory
bound; an invalid file is reported with its path.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from policyengine.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    path for path in (REPO / "examples").iterdir() if (path / "policy.yaml").is_file()
)
SECONDS_PER_RUN = 20.0  # generous for one loaded core; a normal run takes a few hundredths
PEAK_BYTES = 64 * 1024 * 1024
FUZZ_SETTINGS = settings(
    max_examples=40,
    deadline=None,  # bounded below by SECONDS_PER_RUN, measured, not by hypothesis' timer
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples on every run: a failure reproduces, never flickers
)

YAML_CHARACTERS = st.sampled_from(list(":-{}[],&*!|>'\"#%@`?\t\n \\0123456789aZ.~ü\x00"))
# An alias bomb (the "billion laughs" shape): nine levels of nine references.
ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join(f'*a{i - 1}' for _ in range(9))}]\n" for i in range(1, 9)
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.just("x" * 20_000),
    st.sampled_from(["", "1e999", "-0", "NaN", ".inf", "5m", "-5m", "v1", "100%"]),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def data_mutations(draw: st.DrawFn, text: str) -> str:
    document = yaml.safe_load(text)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(document)))
        if not path:
            document = draw(values)
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "drop", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "drop":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(values)
        else:
            parent.append(draw(values))
        if not isinstance(document, dict | list):
            break
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


@st.composite
def text_mutations(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        chunk = draw(st.text(YAML_CHARACTERS, min_size=1, max_size=6))
        if action == "insert":
            text = text[:at] + chunk + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + len(chunk) :]
        elif action == "replace":
            text = text[:at] + chunk + text[at + len(chunk) :]
        else:
            line_start = text.rfind("\n", 0, at) + 1
            line_end = text.find("\n", at)
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            text = text[:line_start] + (line + "\n") * draw(st.integers(2, 50)) + text[line_start:]
    return text


@st.composite
def mutated_policies(draw: st.DrawFn) -> tuple[Path, str]:
    example_dir = draw(st.sampled_from(EXAMPLES))
    text = (example_dir / "policy.yaml").read_text(encoding="utf-8")
    mutate = draw(st.sampled_from([text_mutations, data_mutations]))
    return example_dir, draw(mutate(text))


def _validate(example_dir: Path, policy_text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        root = Path(scratch) / "repo"
        shutil.copytree(example_dir, root)
        (root / "policy.yaml").write_text(policy_text, encoding="utf-8", errors="surrogatepass")
        tracemalloc.start()
        started = time.monotonic()
        try:
            result = CliRunner().invoke(main, ["validate", str(root), "--repo", str(root)])
        finally:
            elapsed = time.monotonic() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    assert result.exit_code in (0, 1), (result.exit_code, result.output, result.exception)
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert "policy.yaml" in result.output, result.output
    assert elapsed < SECONDS_PER_RUN, f"validate took {elapsed:.1f} s"
    assert peak < PEAK_BYTES, f"validate peaked at {peak / 2**20:.0f} MiB"


@FUZZ_SETTINGS
@given(case=mutated_policies())
@example(case=(EXAMPLES[0], ALIAS_BOMB))
# found by this fuzz: an unhashable kind was a TypeError in the loader
@example(case=(EXAMPLES[0], "apiVersion: policyengine.io/v1alpha1\nkind: []\nspec: {}\n"))
@example(case=(EXAMPLES[0], "apiVersion: policyengine.io/v1alpha1\nkind: {a: 1}\n"))
@example(case=(EXAMPLES[0], "spec: " + "[" * 5000 + "]" * 5000 + "\n"))
@example(case=(EXAMPLES[0], "\ufeff\x00\x01"))
def test_validate_survives_mutated_policies(case: tuple[Path, str]) -> None:
    _validate(*case)


def test_the_unmutated_examples_are_valid() -> None:
    """The fuzz starts from valid files: otherwise it would only test the error path."""
    for example_dir in EXAMPLES:
        result = CliRunner().invoke(
            main, ["validate", str(example_dir), "--repo", str(example_dir)]
        )
        assert result.exit_code == 0, result.output
