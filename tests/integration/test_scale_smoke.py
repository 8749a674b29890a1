"""The scale benchmark at a small size: its JSON shape, and the properties that must hold at any
size (queries per pass independent of the number of policies, one push per pass at most, nothing
written when nothing is due). Real git and the real Prometheus, as the full benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.prometheus import require_binaries

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale.py"
COLUMNS = {
    "policies",
    "seconds_cold",
    "seconds_no_change",
    "seconds_10pct_advance",
    "queries",
    "commits",
    "pushes",
    "peak_rss_mb",
}


def test_scale_bench_at_20_and_50_policies(tmp_path: Path) -> None:
    require_binaries()
    out = tmp_path / "scale.json"
    completed = subprocess.run(
        [sys.executable, str(BENCH), "--out", str(out), "--sizes", "20,50"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "growth exponent" in completed.stdout

    rows = json.loads(out.read_text())["rows"]
    assert [row["policies"] for row in rows] == [20, 50]
    for row in rows:
        assert set(row) >= COLUMNS
        passes = row["per_pass"]
        assert row["pushes"] <= 1
        assert all(p["pushes"] <= 1 for p in passes.values())
        # Generated releases are mid-step: the first two passes have nothing due.
        for quiet in ("cold", "no_change"):
            assert passes[quiet]["commits"] == 0 and passes[quiet]["pushes"] == 0
            assert passes[quiet]["decisions"] == {"hold": row["policies"]}
        # One policy in ten is due on the third pass: one commit each, one push for all.
        advancing = row["policies"] // 10
        assert passes["advance"]["decisions"]["advance"] == advancing
        assert passes["advance"]["commits"] == advancing and passes["advance"]["pushes"] == 1
        assert all(p["errors"] == [] and p["load_errors"] == [] for p in passes.values())
        assert 0 < row["peak_rss_mb"] < 1024
    assert rows[0]["queries"] == rows[1]["queries"] > 0
    assert all(p["queries"] == rows[0]["queries"] for row in rows for p in row["per_pass"].values())
