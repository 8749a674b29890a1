"""The checkout is self-contained: the tests pass in a copy with nothing beside it.

The copy holds what `git clone` would give once the working tree is committed (tracked files plus
untracked, not-ignored ones), placed alone in an otherwise empty folder, so a test that reads
`../shared` or any other path outside the checkout fails there. It runs the tests that read data
files (CRD schemas, examples, golden manifests, the policy schema) with this interpreter; the
copy's own `policyengine` package is the one imported (checked first).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The tests that read files shipped in the repository: CRD schemas, examples, goldens, schemas/.
DATA_READING_TESTS = [
    "tests/unit/test_example_manifests.py",
    "tests/unit/test_schema.py",
    "tests/unit/test_metric_sets.py",
    "tests/golden",
    "tests/integration/test_argocd_sync_gate.py",
]


def _checkout_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    return [name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def test_the_data_reading_tests_pass_in_a_copy_with_nothing_beside_it(tmp_path: Path) -> None:
    alone = tmp_path / "empty" / "p"
    for name in _checkout_files():
        target = alone / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    assert sorted(path.name for path in alone.parent.iterdir()) == ["p"]
    assert (alone / "tests" / "schemas" / "argoproj.v1alpha1.Application.json").is_file()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("POLICYENGINE_", "PYTEST_", "PYTHON"))
    }
    env["HOME"] = str(tmp_path)

    imported = subprocess.run(
        [sys.executable, "-c", "import policyengine; print(policyengine.__file__)"],
        cwd=alone,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    assert Path(imported).is_relative_to(alone), imported

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *DATA_READING_TESTS],
        cwd=alone,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-2000:]
